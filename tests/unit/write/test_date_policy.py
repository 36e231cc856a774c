"""A date policy tightened later applies to what earlier runs wrote: names with a time get sequence numbers,
the tool's text files are written again masked; a loosening is remembered so that the next tightening applies."""

from __future__ import annotations

import json

from bids_factory.dates import DatePolicy
from bids_factory.write.date_policy import tighten


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _state(tmp_path, policy="keep"):
    state = tmp_path / "code" / "bids-factory"
    _write(state / "date-policy.json", json.dumps({"dates": policy}))
    runs = state / "runs"
    _write(runs / "run-20240312T101500Z-77.json", json.dumps({"started": "2024-03-12T10:15:00"}))
    _write(runs / "run-20240311T090000Z-12.json", json.dumps({"started": "2024-03-11T09:00:00"}))
    _write(runs / "validator-20240311T090000Z-12.json", "not JSON: 2024-03-11\n")
    _write(state / "visits" / "sub-01_ses-1.json", json.dumps({"converted_at": "2024-03-11T09:00:01",
                                                               "participant_id": "sub-01"}))
    _write(state / "replaced" / "sub-01_ses-1" / "20240312T101500Z" / "scans.tsv", "acq_time\n2024-03-12\n")
    _write(state / "replaced" / "sub-01_ses-1" / "20240311T090000Z" / "scans.tsv", "acq_time\n2024-03-11\n")
    _write(state / "lock" / "owner", "2024-03-12")  # not a run's text: never rewritten
    (state / "thumbnails").mkdir()
    (state / "thumbnails" / "a.png").write_bytes(b"\x89PNG 2024-03-12")
    return state


def _files(state):
    return {p.relative_to(state).as_posix(): p.read_bytes() for p in sorted(state.rglob("*")) if p.is_file()}


def test_tightened_to_year_every_name_and_text_earlier_runs_wrote_follows_it(tmp_path):
    state = _state(tmp_path)
    written = []
    assert tighten(state, DatePolicy("year"), lambda p, t: (written.append(p), _write(p, t)))
    files = _files(state)
    assert sorted(n for n in files if n.startswith("runs/")) == [
        "runs/run-n00000001-12.json", "runs/run-n00000002-77.json", "runs/validator-n00000001-12.json"]
    assert json.loads(files["runs/run-n00000001-12.json"]) == {"started": "2024 09:00:00"}  # oldest first
    assert files["runs/validator-n00000001-12.json"] == b"not JSON: 2024\n"  # a .json that is not JSON: as text
    assert json.loads(files["visits/sub-01_ses-1.json"])["converted_at"] == "2024 09:00:01"
    assert files["replaced/sub-01_ses-1/n00000001/scans.tsv"] == b"acq_time\n2024\n"
    assert files["replaced/sub-01_ses-1/n00000002/scans.tsv"] == b"acq_time\n2024\n"
    assert files["lock/owner"] == b"2024-03-12" and files["thumbnails/a.png"] == b"\x89PNG 2024-03-12"
    assert json.loads(files["date-policy.json"]) == {"dates": "year"}
    assert state / "lock" / "owner" not in written


def test_the_same_policy_again_rewrites_nothing_and_numbered_names_keep_their_order(tmp_path):
    state = _state(tmp_path)
    tighten(state, DatePolicy("year"), _write)
    before = _files(state)
    written = []
    assert not tighten(state, DatePolicy("year"), lambda p, t: (written.append(p.name), _write(p, t)))
    assert written == ["date-policy.json"] and _files(state) == before
    _write(state / "runs" / "run-20240401T080000Z-5.json", '{"started": "2024-04-01T08:00:00"}')  # under keep
    tighten(state, DatePolicy("keep"), _write)
    assert json.loads((state / "date-policy.json").read_text()) == {"dates": "keep"}  # the loosest now
    assert tighten(state, DatePolicy("drop"), _write)
    assert sorted(p.name for p in (state / "runs").iterdir() if p.name.startswith("run-")) == [
        "run-n00000001-5.json", "run-n00000002-12.json", "run-n00000003-77.json"]  # stamped first, then numbered
    assert json.loads((state / "runs" / "run-n00000001-5.json").read_text()) == {"started": "08:00:00"}


def test_a_dataset_from_before_the_policy_file_was_written_under_keep_and_a_new_one_under_nothing(tmp_path):
    state = _state(tmp_path)
    (state / "date-policy.json").unlink()
    assert tighten(state, DatePolicy("drop"), _write)
    assert json.loads((state / "visits" / "sub-01_ses-1.json").read_text())["converted_at"] == "09:00:01"
    fresh = tmp_path / "new" / "code" / "bids-factory"
    assert not tighten(fresh, DatePolicy("drop"), _write)
    assert json.loads((fresh / "date-policy.json").read_text()) == {"dates": "drop"}


def test_tightened_from_year_to_drop_no_year_a_year_run_left_remains(tmp_path):
    """``year`` keeps a year where a date was (``2024 09:00:00``, ``DICOM/2024/V1``, ``2024``, a CHANGES
    entry ``1.0.0 2024``); a later ``drop`` removes those too, and keeps what is no date."""
    state = tmp_path / "code" / "bids-factory"
    _write(state / "date-policy.json", json.dumps({"dates": "year"}))
    _write(state / "runs" / "run-n00000001-7.json", json.dumps({
        "finished_at": "2026 05:53:19+00:00", "days": ["2024"], "participant_id": "sub-2024",
        "problems": [{"path": "DICOM/2024/V1/notes.txt", "reason": "not a DICOM file"}],
        "software": "dcm2niix v1.0.20250506", "images": 2024}))
    _write(state / "history.tsv", "when\tpath\n2026 05:53:19+00:00\tEHR/2024/scores.csv\n")
    _write(tmp_path / "CHANGES", "1.0.1 2024\n  - Placed sub-A ses-B (3 images) from visit 2024\n\n"
                                 "1.0.0 2024\n  - Dataset created\n")
    assert tighten(state, DatePolicy("drop"), _write)
    assert json.loads((state / "runs" / "run-n00000001-7.json").read_text()) == {
        "finished_at": "05:53:19+00:00", "days": ["n/a"], "participant_id": "sub-2024",  # a label stays
        "problems": [{"path": "DICOM/V1/notes.txt", "reason": "not a DICOM file"}],
        "software": "dcm2niix v1.0.20250506", "images": 2024}  # a number is no date
    assert (state / "history.tsv").read_text() == "when\tpath\n05:53:19+00:00\tEHR/scores.csv\n"
    assert (tmp_path / "CHANGES").read_text() == ("1.0.1 n/a\n  - Placed sub-A ses-B (3 images) from visit 2024\n"
                                                  "\n1.0.0 n/a\n  - Dataset created\n")  # a person's words stay
