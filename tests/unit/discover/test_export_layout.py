"""One walker of the export's day folders for images and EHR (bids_factory.discover.export_layout): the same
folder gets the same treatment whatever it holds, and one odd folder stays local to its visit."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from bids_factory.cli.main import main
from bids_factory.discover.visits import discover
from bids_factory.discover.export_layout import find_ehr_files

TODAY = dt.date(2024, 3, 20)


def _file(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _image_and_ehr_problems(root: Path, day_folder: str) -> tuple[dict, dict]:
    """Put one image visit and one EHR table into DICOM/.../<day_folder> and EHR/.../<day_folder>."""
    _file(root / "DICOM" / day_folder / "V1" / "img")
    _file(root / "EHR" / day_folder / "demo.csv", "patient_id,age\nA,1\n")
    images = {p.path.removeprefix("DICOM/"): (p.reason, p.fatal) for p in discover(root, today=TODAY).problems}
    ehr = {p.path.removeprefix("EHR/"): (p.reason, p.fatal) for p in find_ehr_files(root, TODAY)[1]}
    return images, ehr


@pytest.mark.parametrize("day_folder, reason, fatal", [
    ("2024/2024-03-12", "not a <yyyymmdd> day folder: ignored", True),
    ("2024/20240231", "20240231 is not a calendar date: ignored", True),
    ("2023/20240301", "day 20240301 is filed under year 2023: ignored", True),
    ("2024/20240301_phantom", "skipped: name marks a phantom or deleted export", False),
    ("2024/delete_20240301", "skipped: name marks a phantom or deleted export", False),
    ("2024/.20240301", "hidden folder: ignored", False),
    ("2024/20240320", "skipped: today's export is still being written (no .ready marker)", False),
])
def test_images_and_ehr_treat_a_day_folder_alike(tmp_path, day_folder, reason, fatal):
    images, ehr = _image_and_ehr_problems(tmp_path, day_folder)
    assert images == ehr == {day_folder: (reason, fatal)}


def test_a_linked_day_folder_is_refused_for_images_and_ehr(tmp_path):
    _file(tmp_path / "elsewhere" / "V1" / "img")
    _file(tmp_path / "elsewhere" / "demo.csv", "patient_id,age\nA,1\n")
    for kind in ("DICOM", "EHR"):
        (tmp_path / kind / "2024").mkdir(parents=True)
        (tmp_path / kind / "2024" / "20240301").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    images = {p.path: p.reason for p in discover(tmp_path, today=TODAY).problems}
    ehr = {p.path: p.reason for p in find_ehr_files(tmp_path, TODAY)[1]}
    assert images["DICOM/2024/20240301"] == ehr["EHR/2024/20240301"] == "not a <yyyymmdd> day folder: ignored"
    assert discover(tmp_path, today=TODAY).visits == () and find_ehr_files(tmp_path, TODAY)[0] == []


def test_todays_folder_is_read_once_it_is_ready_for_images_and_ehr(tmp_path):
    _image_and_ehr_problems(tmp_path, "2024/20240320")
    for kind in ("DICOM", "EHR"):
        (tmp_path / kind / "2024" / "20240320" / ".ready").touch()
    assert [v.scan_research_id for v in discover(tmp_path, today=TODAY).visits] == ["V1"]
    assert [f.relpath for f in find_ehr_files(tmp_path, TODAY)[0]] == ["EHR/2024/20240320/demo.csv"]
    assert discover(tmp_path, today=TODAY).problems == () and find_ehr_files(tmp_path, TODAY)[1] == []


def test_hidden_visit_folders_are_named_not_silent(tmp_path):
    _file(tmp_path / "DICOM/2024/20240301/.V1/img")
    _file(tmp_path / "DICOM/2024/20240301/V2/.V3/img")
    _file(tmp_path / "DICOM/2024/20240301/V2/img")
    found = discover(tmp_path, today=TODAY)
    assert [v.scan_research_id for v in found.visits] == ["V2"]
    assert {(p.path, p.fatal) for p in found.problems} == {
        ("DICOM/2024/20240301/.V1", False), ("DICOM/2024/20240301/V2/.V3", False)}


def test_a_symlink_loop_fails_its_visit_only_and_visits_still_lists(tmp_path, capsys):
    _file(tmp_path / "DICOM/2024/20240301/V1/img")
    _file(tmp_path / "DICOM/2024/20240301/V2/img")
    _file(tmp_path / "DICOM/2024/20240302/V2/img2")  # the same visit on another day: not converted in part
    loop = tmp_path / "DICOM/2024/20240301/V2/loop.dcm"
    os.symlink(loop, loop)
    found = discover(tmp_path, today=TODAY)
    assert [v.scan_research_id for v in found.visits] == ["V1"]
    [problem] = found.problems
    assert problem.fatal and "V2" in problem.path and "symbolic link loop" in problem.reason
    assert main(["visits", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == ["V1"]


@pytest.mark.parametrize("name", ["V\t1", "V\n1", "V1\r"])
def test_a_visit_folder_name_with_a_tab_or_line_break_is_refused(tmp_path, name):
    _file(tmp_path / "DICOM/2024/20240301" / name / "img")
    _file(tmp_path / "DICOM/2024/20240301/V2/img")
    found = discover(tmp_path, today=TODAY)
    assert [v.scan_research_id for v in found.visits] == ["V2"]
    [problem] = found.problems
    assert problem.fatal and "tab, a line break" in problem.reason and "\t" not in problem.path


def test_links_into_skipped_or_unfinished_folders_are_not_followed(tmp_path):
    phantom = _file(tmp_path / "DICOM/2024/20240301/PHANTOM_QA/img")
    unfinished = _file(tmp_path / "DICOM/2024/20240320/V9/img")  # today, no .ready
    hidden = _file(tmp_path / "DICOM/2024/20240301/.V8/img")
    kept = _file(tmp_path / "DICOM/2024/20240301/V2/img")
    visit = tmp_path / "DICOM/2024/20240301/V1"
    visit.mkdir(parents=True)
    for name, target in (("a.dcm", phantom), ("b.dcm", unfinished), ("c.dcm", hidden), ("d.dcm", kept)):
        (visit / name).symlink_to(target)
    found = discover(tmp_path, today=TODAY)
    v1 = next(v for v in found.visits if v.scan_research_id == "V1")
    assert [s.path for s in v1.files] == [kept.resolve()]
    reasons = {p.path: p.reason for p in found.problems}
    for name in ("a.dcm", "b.dcm", "c.dcm"):
        assert "not followed" in reasons[f"DICOM/2024/20240301/V1/{name}"]


def test_a_symlink_loop_is_named_as_such_also_where_python_raises_oserror(tmp_path, monkeypatch):
    """Python 3.13 reports a loop as OSError(ELOOP) instead of RuntimeError: the same verdict either way."""
    import errno
    from pathlib import Path

    from bids_factory.discover.export_layout import link_target

    link = tmp_path / "loop.dcm"
    os.symlink(link, link)

    def eloop(self, strict=False):
        raise OSError(errno.ELOOP, "Too many levels of symbolic links", str(self))

    monkeypatch.setattr(Path, "resolve", eloop)
    assert link_target(tmp_path, link, frozenset({tmp_path})) == (None, "symbolic link loop: not followed")
