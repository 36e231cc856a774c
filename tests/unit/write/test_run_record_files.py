"""``writer.runs`` on its own: the names of the run records and the validator's output (their time, or under a
date policy a number, the newest last). Reading records of each version: ``test_run_records``."""

from __future__ import annotations

import json
import os

from bids_factory.dates import DatePolicy
from bids_factory.model import RUN_RECORD_VERSION
from bids_factory.write.atomic_files import write_text
from bids_factory.write.dataset_paths import RUN_RECORDS, STATE_DIR
from bids_factory.write.run_records import RunRecords

PID = os.getpid()


def _runs(root, mode: str = "keep") -> RunRecords:
    return RunRecords(root, DatePolicy(mode), lambda relpath, text: write_text(root / relpath, text))


def _record(finished_at: str) -> dict:
    return {"finished_at": finished_at, "run_record_version": RUN_RECORD_VERSION, "visits": []}


def test_a_run_record_is_named_by_the_time_its_run_finished(tmp_path):
    _runs(tmp_path).write_record(_record("2026-12-01T10:00:00+00:00"))
    assert [p.name for p in (tmp_path / RUN_RECORDS).iterdir()] == [f"run-20261201T100000Z-{PID}.json"]


def test_under_a_date_policy_records_are_numbered_the_newest_last_and_the_validator_output_apart(tmp_path):
    runs = _runs(tmp_path, "drop")
    for finished in ("2026-12-02T10:00:00+00:00", "2026-12-01T10:00:00+00:00"):  # the order written is kept
        runs.write_record(_record(finished))
    assert sorted(p.name for p in (tmp_path / RUN_RECORDS).iterdir()) == [
        f"run-n00000001-{PID}.json", f"run-n00000002-{PID}.json"]
    relpath = runs.write_validator_output('{"issues": []}')
    assert relpath == f"runs/validator-n00000001-{PID}.json"
    assert json.loads((tmp_path / STATE_DIR / relpath).read_text()) == {"issues": []}
    assert [r["finished_at"] for r in runs.records()] == ["2026-12-02T10:00:00+00:00", "2026-12-01T10:00:00+00:00"]
