"""``writer.states`` on its own: one file per visit (its name holds any id), the index row written with it, read
from the index once until a state is written; a dataset not started has none and gets nothing."""

from __future__ import annotations

import json

import pytest

from bids_factory.errors import DatasetError
from bids_factory.model import VISIT_STATE_VERSION
from bids_factory.write.atomic_files import write_text
from bids_factory.write.dataset_paths import VISIT_STATES
from bids_factory.write.visit_index import RECORD, STATE, VisitIndex
from bids_factory.write.visit_states import VisitStates, read_indexed


def _states(root) -> VisitStates:
    return VisitStates(root, VisitIndex(root, read_indexed),
                       lambda relpath, data: write_text(root / relpath, json.dumps(data)))


def _state(visit: str, fingerprint: str = "f") -> dict:
    return {"scan_research_id": visit, "fingerprint": fingerprint, "settings": "s", "status": "placed",
            "subject_label": "A", "session_label": "1"}


def test_a_dataset_not_started_has_no_state_and_asking_creates_nothing(tmp_path):
    assert _states(tmp_path).by_visit() == {}
    assert list(tmp_path.iterdir()) == []


def test_each_visit_has_its_own_file_and_a_written_state_is_read_back_at_once(tmp_path):
    states = _states(tmp_path)
    states.write(_state("V 1"))
    assert states.by_visit()["V 1"]["fingerprint"] == "f"  # read (and kept) from the index
    long_id = "V" * 1000
    for visit in ("V-1", long_id):  # "V-1" has the label of "V 1"; a long id still names a file
        states.write(_state(visit))
    states.write(_state("V 1", "changed"))
    assert {v: s["fingerprint"] for v, s in states.by_visit().items()} == {"V 1": "changed", "V-1": "f", long_id: "f"}
    files = sorted((tmp_path / VISIT_STATES).iterdir())
    assert len(files) == 3 and all(len(p.name) < 255 and p.name.startswith("V") for p in files)
    assert {json.loads(p.read_text())["state_version"] for p in files} == {VISIT_STATE_VERSION}
    assert _states(tmp_path).by_visit() == states.by_visit()  # what another run reads


def test_the_index_reads_only_versions_this_bids_factory_knows(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"record_version": 2, "scan_research_id": "V1"}))
    assert read_indexed(RECORD, path)["scan_research_id"] == "V1"
    path.write_text(json.dumps({"state_version": VISIT_STATE_VERSION + 1, "scan_research_id": "V1"}))
    with pytest.raises(DatasetError, match=f"state_version {VISIT_STATE_VERSION + 1} is not one"):
        read_indexed(STATE, path)
