"""What a later run reads back is versioned: a record a newer bids-factory wrote stops the run with one clear
line; a record from before versions is version 1. A recorded outcome's group comes from the record or once
from its status and reason."""

from __future__ import annotations

import pytest

from bids_factory.errors import DatasetError
from bids_factory.model import ReasonGroup, outcome_group
from bids_factory.model.records import VISIT_RECORD_VERSION, readable


def test_a_known_version_or_none_is_read_as_it_is():
    record = {"record_version": VISIT_RECORD_VERSION, "participant_id": "sub-01"}
    assert readable(record, "record_version", VISIT_RECORD_VERSION, "visits/sub-01_ses-1.json") is record
    assert readable({"participant_id": "sub-01"}, "record_version", 2, "x.json") == {"participant_id": "sub-01"}


@pytest.mark.parametrize("record", [{"record_version": 3}, {"record_version": 0}, {"record_version": "2"},
                                    {"record_version": None}, ["not", "an", "object"]])
def test_a_version_this_bids_factory_does_not_know_stops_the_run_naming_the_file(record):
    with pytest.raises(DatasetError) as raised:
        readable(record, "record_version", 2, "code/bids-factory/visits/sub-01_ses-1.json")
    assert str(raised.value).startswith("code/bids-factory/visits/sub-01_ses-1.json: record_version ")
    assert "(1 to 2)" in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("outcome, group", [
    ({"group": "supply", "status": "unmatched"}, ReasonGroup.SUPPLY),  # its own group wins
    ({"status": "not-converted", "reason": "no image"}, ReasonGroup.NOTHING),
    ({"status": "unmatched", "reason": "no rule matches"}, ReasonGroup.DECIDE),
    ({"status": "ambiguous", "reason": "two rules"}, ReasonGroup.DECIDE),
    ({"status": "held-back", "reason": "incomplete image: 3 of 176 slices"}, ReasonGroup.FIX_EXPORT),
    ({"status": "held-back", "reason": "M0Type missing"}, ReasonGroup.SUPPLY),
    ({"group": "no such group", "status": "rejected", "reason": "not BIDS"}, ReasonGroup.DECIDE),
])
def test_the_group_of_a_recorded_outcome(outcome, group):
    assert outcome_group(outcome) is group
