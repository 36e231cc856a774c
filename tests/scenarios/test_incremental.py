"""Daily runs: unchanged visits are not reconverted, changed ones are, the dataset is locked per run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bids_factory.run import batches as conversion
from bids_factory.errors import DatasetLockedError
from bids_factory.run.pipeline import ConvertOptions, convert
from bids_factory.write.dataset_writer import DatasetWriter
from conftest import REPO, TEST_HEURISTICS, TRANSFER_SYNTAXES, XA30, add_series, assert_valid_bids, fingerprint


RUN_OWN = ("history.json", "report.html")  # with runs/: what every run writes about itself


def _mtimes(bids: Path) -> dict[str, int]:
    """Every file's time but a run's own (its record, the report...) and the visit index, which keeps how the
    export's day folders looked (a moved export's folders are listed again)."""
    return {p.relative_to(bids).as_posix(): p.stat().st_mtime_ns for p in bids.rglob("*")
            if p.is_file() and "runs" not in p.parts and p.name not in RUN_OWN and p.name != "index.sqlite"}


def _statuses(report) -> dict[str, str]:
    return {v.scan_research_id: v.status for v in report.visits}


@pytest.fixture
def demo(tmp_path: Path, new_demo) -> Path:
    return new_demo(tmp_path / "export").root


def test_rerun_over_unchanged_export_converts_and_rewrites_nothing(converted_demo, tmp_path, monkeypatch):
    demo, bids = converted_demo(tmp_path)  # the demo export and its first conversion
    before = _mtimes(bids)

    def no_conversion(*args, **kwargs):
        raise AssertionError("an unchanged visit was converted again")

    monkeypatch.setattr(conversion, "extract", no_conversion)
    report = convert(ConvertOptions(export=demo, bids=bids))
    assert _statuses(report) == {"V0001A": "unchanged", "V0001B": "unchanged", "V0002-A": "unchanged"}
    assert not report.failed
    assert _mtimes(bids) == before


@pytest.mark.realdata
def test_a_visit_that_recurs_on_a_later_day_is_reconverted_whole(export, tmp_path):
    series = {p.name.split("_")[0]: p for p in XA30.iterdir() if p.is_dir()}
    add_series(export, "20240105", "VISIT01", series["8"])  # a whole field map: magnitudes and phasediff
    add_series(export, "20240105", "VISIT01", series["9"])
    add_series(export, "20240105", "VISIT02", series["10"])
    bids = tmp_path / "bids"
    heuristic = TEST_HEURISTICS / "xa30_reproin.json"
    first = convert(ConvertOptions(export=export, bids=bids, heuristic=heuristic, validate=False))
    assert _statuses(first) == {"VISIT01": "placed", "VISIT02": "placed"}
    add_series(export, "20240106", "VISIT01", series["7"])  # the next day brings the bold of VISIT01
    second = convert(ConvertOptions(export=export, bids=bids, heuristic=heuristic, validate=False))
    assert _statuses(second) == {"VISIT01": "placed", "VISIT02": "unchanged"}
    session = bids / "sub-12343hucheng" / "ses-VISIT01"
    assert sorted(p.name for p in session.rglob("*.nii.gz")) == [
        "sub-12343hucheng_ses-VISIT01_magnitude1.nii.gz", "sub-12343hucheng_ses-VISIT01_magnitude2.nii.gz",
        "sub-12343hucheng_ses-VISIT01_phasediff.nii.gz", "sub-12343hucheng_ses-VISIT01_task-fa_bold.nii.gz"]
    sessions = (bids / "sub-12343hucheng" / "sub-12343hucheng_sessions.tsv").read_text()
    assert "ses-VISIT01\tVISIT01\t20240105,20240106" in sessions
    assert "Placed sub-12343hucheng ses-VISIT01" in (bids / "CHANGES").read_text().split("\n\n")[0]
    assert_valid_bids(bids)


def test_a_changed_heuristic_or_reconvert_converts_again(converted_demo, tmp_path):
    demo, bids = converted_demo(tmp_path)  # the demo export and its first conversion
    default = json.loads((REPO / "heuristics" / "default.json").read_text())
    default["descriptions"] = [d for d in default["descriptions"] if d["suffix"] != "FLAIR"]
    default["bids_factory"]["fallback_to_default"] = False  # these rules alone (not the default's FLAIR rule)
    changed = tmp_path / "no-flair.json"
    changed.write_text(json.dumps(default))
    flair = sorted(bids.rglob("*_FLAIR.nii.gz"))
    report = convert(ConvertOptions(export=demo, bids=bids, heuristic=changed, validate=False))
    assert set(_statuses(report).values()) == {"placed"}  # converted again...
    assert sorted(bids.rglob("*_FLAIR.nii.gz")) == flair  # ...but a placed image leaves only by a decision
    assert len([p for p in report.problems if "--apply-changes" in p.reason]) == len(flair) > 0
    again = convert(ConvertOptions(export=demo, bids=bids, heuristic=changed, reconvert=True, validate=False))
    assert set(_statuses(again).values()) == {"placed"}


def test_a_second_run_on_the_same_dataset_is_refused(demo, tmp_path):
    bids = tmp_path / "bids"
    with DatasetWriter(bids).lock.held():
        with pytest.raises(DatasetLockedError, match="another bids-factory run is writing"):
            convert(ConvertOptions(export=demo, bids=bids))
    assert not list(bids.glob("sub-*"))


def test_export_unchanged_by_repeated_runs(demo, tmp_path):
    before = fingerprint(demo)
    for _ in range(2):
        convert(ConvertOptions(export=demo, bids=tmp_path / "bids", validate=False))
    assert fingerprint(demo) == before


def test_parallel_runs_on_one_dataset_each_convert_their_visit(demo, tmp_path):
    """As SLURM array tasks do: `visits` lists the ids, each task converts one, writes queue on the lock."""
    import subprocess
    import sys

    listed = subprocess.run([sys.executable, "-m", "bids_factory", "visits", str(demo)],
                            capture_output=True, text=True, check=True).stdout.split()
    assert listed == ["V0001A", "V0001B", "V0002-A"]
    bids = tmp_path / "bids"
    tasks = [subprocess.Popen([sys.executable, "-m", "bids_factory", "convert", str(demo), str(bids), "--visit", visit,
                               "--wait", "120", "--no-validate", "--quiet"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for visit in listed]
    results = [(task.wait(timeout=300), task.stderr.read()) for task in tasks]
    assert [code for code, _ in results] == [0, 0, 0], results
    assert sorted(p.relative_to(bids).as_posix() for p in bids.glob("sub-*/ses-*")) == [
        "sub-DEMO001/ses-V0001A", "sub-DEMO001/ses-V0001B", "sub-DEMO002/ses-V0002A"]
    final = convert(ConvertOptions(export=demo, bids=bids, validate=False))  # the finalize step: nothing left to convert
    assert set(_statuses(final).values()) == {"unchanged"}
    assert not (bids / "code" / "bids-factory" / "staging").exists()
    assert_valid_bids(bids)


def test_unknown_visit_name_is_reported(demo, tmp_path):
    report = convert(ConvertOptions(export=demo, bids=tmp_path / "bids", visits=frozenset({"V0001A", "NOPE"}),
                                    validate=False))
    assert _statuses(report) == {"V0001A": "placed"}
    assert [(p.path, p.fatal) for p in report.problems if "not in the export" in p.reason] == [("NOPE", True)]


@pytest.mark.realdata
def test_a_stopped_long_run_keeps_the_batches_it_placed(export, tmp_path, monkeypatch):
    """Visits are placed batch by batch: what a stopped run converted before is not lost."""
    source = sorted(TRANSFER_SYNTAXES.glob("*.dcm"))[0]
    visits = [f"V{i:02d}" for i in range(6)]
    for visit in visits:
        add_series(export, "20240105", visit, source, subfolder="a")
    heuristic = TEST_HEURISTICS / "transfer_syntaxes.json"
    monkeypatch.setattr(conversion, "BATCH_VISITS", 1)  # batches of 4 visits (4 per job)
    real_place_all, calls = conversion._place_all, []

    def place_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the operator stops the run during its second batch
        return real_place_all(*args, **kwargs)

    monkeypatch.setattr(conversion, "_place_all", place_then_stop)
    bids = tmp_path / "bids"
    with pytest.raises(KeyboardInterrupt):
        convert(ConvertOptions(export=export, bids=bids, heuristic=heuristic, validate=False))
    assert sorted(p.name for p in bids.glob("sub-*/ses-*")) == ["ses-V00", "ses-V01", "ses-V02", "ses-V03"]
    assert not (bids / "code" / "bids-factory" / "staging").exists()
    monkeypatch.setattr(conversion, "_place_all", real_place_all)
    report = convert(ConvertOptions(export=export, bids=bids, heuristic=heuristic, validate=False))
    assert _statuses(report) == {**{v: "unchanged" for v in visits[:4]}, "V04": "placed", "V05": "placed"}
    assert_valid_bids(bids)


def _hard_linked_copy(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")):
        if path.is_file():
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target / path.relative_to(source))


def test_a_moved_or_hard_linked_export_reconverts_nothing(demo, tmp_path, monkeypatch):
    """The state is keyed by what the export holds, not by where it is mounted."""
    bids = tmp_path / "bids"
    first = convert(ConvertOptions(export=demo, bids=bids, validate=False))
    assert set(_statuses(first).values()) == {"placed"}
    moved = tmp_path / "mounted" / "elsewhere" / "export-renamed"
    moved.parent.mkdir(parents=True)
    demo.rename(moved)
    linked = tmp_path / "another-host-path" / "export"
    _hard_linked_copy(moved, linked)
    before = _mtimes(bids)

    def no_conversion(*args, **kwargs):
        raise AssertionError("an unchanged visit was converted again")

    monkeypatch.setattr(conversion, "extract", no_conversion)
    for export in (moved, linked):
        report = convert(ConvertOptions(export=export, bids=bids, validate=False))
        assert set(_statuses(report).values()) == {"unchanged"}, export
        assert not report.failed
    assert _mtimes(bids) == before


def test_a_state_written_with_absolute_paths_reconverts_once_without_error(converted_demo, tmp_path):
    demo, bids = converted_demo(tmp_path)  # the demo export and its first conversion
    states = sorted((bids / "code" / "bids-factory" / "state").glob("*.json"))
    for path in states:  # an older release's state: a fingerprint of absolute paths
        state = json.loads(path.read_text())
        state["fingerprint"] = "0" * 64
        path.write_text(json.dumps(state))
    (bids / "code" / "bids-factory" / "index.sqlite").unlink()  # nor had that release an index of them
    again = convert(ConvertOptions(export=demo, bids=bids, validate=False))
    assert set(_statuses(again).values()) == {"placed"} and not again.failed
    third = convert(ConvertOptions(export=demo, bids=bids, validate=False))
    assert set(_statuses(third).values()) == {"unchanged"}
