"""Run records and the run history are typed and versioned like the visit records and states: what a run
writes carries its version, the first format (no version) still reads, a newer one stops the run."""

from __future__ import annotations

import json

import pytest

from bids_factory.errors import DatasetError
from bids_factory.model import HISTORY_VERSION, RUN_RECORD_VERSION, Problem, RunSummary, VisitResult
from bids_factory.report.summary import history_entry, run_record
from bids_factory.run.pipeline import _record_run
from bids_factory.write.dataset_paths import HISTORY, RUN_RECORDS
from bids_factory.write.dataset_writer import DatasetWriter

FIRST_FORMAT_RECORD = {  # a run record as bids-factory 0.1.0 wrote it: no version
    "finished_at": "2026-12-01T10:00:00+00:00", "bids_factory_version": "0.1.0", "failed": False,
    "visits": [{"scan_research_id": "V1", "status": "placed", "participant_id": "sub-P1", "session_id": "ses-V1",
                "placed": 2, "not_placed": []}],
    "problems": [], "non_dicom_files": 0, "non_image_objects": 0, "linkage": {},
    "validator": {"errors": 0, "warnings": 1, "output": None, "issues": []}}


def _summary() -> RunSummary:
    return RunSummary(visits=[VisitResult("V2", "placed", subject_label="P2", session_label="V2", placed=1)],
                      problems=[Problem("DICOM/x", "not a DICOM file: ignored", fatal=False)], validator_errors=0)


def test_what_a_run_writes_carries_its_version_and_the_first_format_still_reads():
    record = run_record(_summary())
    assert record["run_record_version"] == RUN_RECORD_VERSION
    entry = history_entry(record, {"series held back": 3})
    assert entry["history_version"] == HISTORY_VERSION and entry["held back in dataset"] == 3
    assert (entry["visits placed"], entry["series placed"]) == (1, 1)
    old = history_entry(FIRST_FORMAT_RECORD)
    assert (old["finished_at"], old["visits placed"], old["series placed"], old["validator errors"]) == (
        "2026-12-01T10:00:00+00:00", 1, 2, 0)


def test_run_records_and_history_entries_of_a_newer_version_stop_the_run(tmp_path):
    writer = DatasetWriter(tmp_path / "bids")
    runs = writer.root / RUN_RECORDS
    runs.mkdir(parents=True)
    (runs / "run-1.json").write_text(json.dumps(FIRST_FORMAT_RECORD))
    (runs / "run-2.json").write_text(json.dumps({**FIRST_FORMAT_RECORD, "run_record_version": RUN_RECORD_VERSION}))
    assert [r["finished_at"] for r in writer.runs.records()] == [FIRST_FORMAT_RECORD["finished_at"]] * 2

    _record_run(writer, _summary())  # no history yet: rebuilt from the two records, this run's entry added
    history = json.loads((writer.root / HISTORY).read_text())
    assert [e["history_version"] for e in history] == [HISTORY_VERSION] * 3
    (writer.root / HISTORY).write_text(json.dumps([{k: v for k, v in e.items() if k != "history_version"}
                                                   for e in history]))  # the first format: read as version 1
    _record_run(writer, _summary())
    assert len(json.loads((writer.root / HISTORY).read_text())) == 4

    (writer.root / HISTORY).write_text(json.dumps([{**history[0], "history_version": HISTORY_VERSION + 1}]))
    with pytest.raises(DatasetError, match="history_version 2 is not one this bids-factory reads"):
        _record_run(writer, _summary())
    (writer.root / HISTORY).unlink()
    (runs / "run-3.json").write_text(json.dumps({**FIRST_FORMAT_RECORD, "run_record_version": 7}))
    with pytest.raises(DatasetError, match=r"run-3\.json: run_record_version 7 is not one this bids-factory reads"):
        writer.runs.records()


def test_a_run_record_counts_the_visits_it_did_not_work_on_without_listing_them():
    """Version 2: a daily run into 4 000 sessions lists its new visits only; the unchanged ones are a count."""
    from bids_factory.report.summary import run_counts
    summary = _summary()
    summary.visits += [VisitResult(f"U{i}", "unchanged", subject_label=f"P{i}", session_label="V") for i in range(4000)]
    record = run_record(summary)
    assert [v["scan_research_id"] for v in record["visits"]] == ["V2"]
    assert record["visits_counted"] == {"unchanged": 4000}
    assert run_counts(record)["visits unchanged"] == 4000 and run_counts(record)["visits placed"] == 1
    assert history_entry(record)["visits unchanged"] == 4000
    assert run_counts(FIRST_FORMAT_RECORD)["visits placed"] == 1  # version 1 listed every visit: still counted
