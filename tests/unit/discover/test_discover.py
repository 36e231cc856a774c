"""discover: layout rules of the Data Capture export (no conversion involved)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bids_factory.discover.visits import discover
from bids_factory.errors import ExportLayoutError

TODAY = dt.date(2024, 3, 20)


def _file(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _problems(discovery) -> dict[str, str]:
    return {p.path: p.reason for p in discovery.problems}


def test_days_in_date_order_and_visit_is_union_of_days(tmp_path):
    _file(tmp_path / "DICOM/2024/20240312/V1/a/b/img1")
    _file(tmp_path / "DICOM/2023/20231231/V1/img0")
    _file(tmp_path / "DICOM/2024/20240312/V2/img")
    found = discover(tmp_path, today=TODAY)
    assert [v.scan_research_id for v in found.visits] == ["V1", "V2"]
    v1 = found.visits[0]
    assert [f.day for f in v1.folders] == ["20231231", "20240312"]
    assert [s.path.name for s in v1.files] == ["img0", "img1"]
    assert v1.files[1].folder.relpath == "DICOM/2024/20240312/V1"
    assert found.problems == ()


def test_bad_day_folders_are_reported_and_skipped(tmp_path):
    _file(tmp_path / "DICOM/2024/2024-03-12/V1/img")
    _file(tmp_path / "DICOM/2024/20230312/V2/img")
    _file(tmp_path / "DICOM/2024/20240230/V3/img")
    _file(tmp_path / "DICOM/24/20240301/V4/img")
    found = discover(tmp_path, today=TODAY)
    assert found.visits == ()
    problems = _problems(found)
    assert problems["DICOM/2024/2024-03-12"] == "not a <yyyymmdd> day folder: ignored"
    assert problems["DICOM/2024/20230312"] == "day 20230312 is filed under year 2024: ignored"
    assert problems["DICOM/2024/20240230"] == "20240230 is not a calendar date: ignored"
    assert problems["DICOM/24"] == "not a <yyyy> year folder: ignored"
    assert all(p.fatal for p in found.problems)


def test_todays_export_waits_for_its_ready_marker(tmp_path):
    _file(tmp_path / "DICOM/2024/20240320/V1/img")
    found = discover(tmp_path, today=TODAY)
    assert found.visits == () and not found.problems[0].fatal
    assert "no .ready marker" in found.problems[0].reason
    _file(tmp_path / "DICOM/2024/20240320/.ready", "")
    assert [v.scan_research_id for v in discover(tmp_path, today=TODAY).visits] == ["V1"]


def test_phantom_and_deleted_visits_are_skipped(tmp_path):
    _file(tmp_path / "DICOM/2024/20240301/PHANTOM_QA/img")
    _file(tmp_path / "DICOM/2024/20240301/V1_delete/img")
    _file(tmp_path / "DICOM/2024/20240301/V2/img")
    found = discover(tmp_path, today=TODAY)
    assert [v.scan_research_id for v in found.visits] == ["V2"]
    assert {p.fatal for p in found.problems} == {False}


def test_links_out_of_the_export_are_never_followed(tmp_path):
    outside = _file(tmp_path / "outside" / "secret.dcm")
    export = tmp_path / "export"
    _file(export / "DICOM/2024/20240301/V1/ok.dcm")
    (export / "DICOM/2024/20240301/V1/link.dcm").symlink_to(outside)
    (export / "DICOM/2024/20240301/V1/dirlink").symlink_to(outside.parent, target_is_directory=True)
    (export / "DICOM/2024/20240301/V1/inside.dcm").symlink_to(export / "DICOM/2024/20240301/V1/ok.dcm")
    found = discover(export, today=TODAY)
    [visit] = found.visits
    assert sorted(s.path.name for s in visit.files) == ["ok.dcm", "ok.dcm"]
    assert all(s.path.resolve().is_relative_to(export.resolve()) for s in visit.files)
    problems = _problems(found)
    assert problems["DICOM/2024/20240301/V1/link.dcm"] == "symbolic link that points outside the export: not followed"
    assert problems["DICOM/2024/20240301/V1/dirlink"] == "symbolic link to a folder: not followed"


def test_empty_visit_folder_is_reported(tmp_path):
    (tmp_path / "DICOM/2024/20240301/EMPTY/sub").mkdir(parents=True)
    found = discover(tmp_path, today=TODAY)
    assert found.visits == ()
    assert _problems(found) == {"DICOM/2024/20240301/EMPTY": "empty visit folder: no readable file in it"}


def test_not_an_export(tmp_path):
    with pytest.raises(ExportLayoutError, match="no DICOM/, NIFTI/ or EHR/ folder"):
        discover(tmp_path)
    with pytest.raises(ExportLayoutError, match="does not exist"):
        discover(tmp_path / "missing")


def test_unreadable_files_are_reported(tmp_path, monkeypatch):
    """Permissions cannot be tested as root (root reads everything), so access is denied by hand."""
    import os

    secret = _file(tmp_path / "DICOM/2024/20240301/V1/locked.dcm")
    _file(tmp_path / "DICOM/2024/20240301/V1/open.dcm")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != secret and real_access(path, mode))
    found = discover(tmp_path, today=TODAY)
    assert [s.path.name for s in found.visits[0].files] == ["open.dcm"]
    assert _problems(found) == {"DICOM/2024/20240301/V1/locked.dcm": "unreadable file (permission denied)"}
