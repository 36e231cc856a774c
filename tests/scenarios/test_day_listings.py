"""A daily run walks only the export's day folders that are new or changed since the last run (their listing is
kept in the visit index); ``--rescan`` walks everything and takes up a file rewritten in place in an old day."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bids_factory.cli.main import main
from bids_factory.discover import visits as discovery
from bids_factory.run.pipeline import ConvertOptions, convert


@pytest.fixture
def converted(tmp_path: Path, converted_demo) -> tuple[Path, Path]:
    return converted_demo(tmp_path)


def _walked(monkeypatch) -> list[str]:
    """The visit folders the run walks (file by file)."""
    walked, real = [], discovery._visit_files

    def spy(root, folder, accepted, problems):
        walked.append(folder.relpath)
        return real(root, folder, accepted, problems)
    monkeypatch.setattr(discovery, "_visit_files", spy)
    return walked


def _statuses(report) -> dict[str, str]:
    return {v.scan_research_id: v.status for v in report.visits}


def test_a_daily_run_walks_no_visit_of_an_unchanged_day_and_reports_them_unchanged(converted, monkeypatch):
    export, bids = converted
    walked = _walked(monkeypatch)
    report = convert(ConvertOptions(export=export, bids=bids, validate=False))
    assert walked == []
    assert _statuses(report) == {"V0001A": "unchanged", "V0001B": "unchanged", "V0002-A": "unchanged"}
    assert not report.failed


def test_a_visit_folder_added_to_an_old_day_is_converted_and_only_that_day_is_walked(converted, monkeypatch):
    export, bids = converted
    old_day = export / "DICOM" / "2024" / "20240311"
    shutil.copytree(old_day / "V0002-A", old_day / "V0003")  # a re-sent visit arrives in an old day
    walked = _walked(monkeypatch)
    report = convert(ConvertOptions(export=export, bids=bids, validate=False))
    assert sorted(walked) == ["DICOM/2024/20240311/V0001A", "DICOM/2024/20240311/V0002-A", "DICOM/2024/20240311/V0003"]
    assert _statuses(report) == {"V0001A": "unchanged", "V0001B": "unchanged", "V0002-A": "unchanged", "V0003": "placed"}
    assert not report.failed


def test_a_file_rewritten_in_place_in_an_old_day_needs_rescan_and_check_names_it(converted, capsys):
    export, bids = converted
    visit = export / "DICOM" / "2024" / "20240312" / "V0001B"
    rewritten = next(p for p in sorted(visit.rglob("*")) if p.is_file())
    later = rewritten.stat().st_mtime_ns + 5_000_000_000
    os.utime(rewritten, ns=(later, later))  # the folder's time does not change
    daily = convert(ConvertOptions(export=export, bids=bids, validate=False))
    assert _statuses(daily)["V0001B"] == "unchanged"
    assert main(["check", str(bids), "--export", str(export)]) == 0  # a note: nothing wrong in the dataset
    out = capsys.readouterr().out
    assert "note: DICOM/2024/20240312/V0001B: visit V0001B: its files changed since it was converted" in out
    assert "--rescan" in out and "V0001A" not in out
    rescan = convert(ConvertOptions(export=export, bids=bids, validate=False, rescan=True))
    assert _statuses(rescan) == {"V0001A": "unchanged", "V0001B": "placed", "V0002-A": "unchanged"}
    assert not rescan.failed


def test_a_deleted_index_walks_everything_once_and_loses_nothing(converted, monkeypatch):
    export, bids = converted
    (bids / "code" / "bids-factory" / "index.sqlite").unlink()
    walked = _walked(monkeypatch)
    report = convert(ConvertOptions(export=export, bids=bids, validate=False))
    assert len(walked) == 3 and set(_statuses(report).values()) == {"unchanged"}
    assert report.dataset == {**report.dataset, "subjects": 2, "sessions": 3, "images placed": 9}
    walked.clear()
    assert set(_statuses(convert(ConvertOptions(export=export, bids=bids, validate=False))).values()) == {"unchanged"}
    assert walked == []
