"""Who a subject is (write/subject_identity.py): raw PatientIDs compared through their keyed hashes, never
by their sanitised labels."""

from __future__ import annotations

import hashlib

from bids_factory.write.subject_identity import SubjectGuard, case_twin, subject_entry

SECRET = b"k" * 32


def _guard(**raw_ids: str) -> SubjectGuard:
    return SubjectGuard({label: subject_entry(SECRET, raw) for label, raw in raw_ids.items()}, SECRET)


def test_two_raw_ids_that_give_one_label_are_two_patients():
    guard = _guard(**{"12343hucheng": "12343@hucheng"})
    assert not guard.taken_by_another("12343hucheng", "12343@hucheng")
    assert guard.taken_by_another("12343hucheng", "12343-hucheng")
    assert not guard.taken_by_another("NEW", "NEW")  # a label nobody has yet


def test_an_ehr_id_is_compared_raw_with_its_usual_spellings():
    guard = _guard(**{"007": "007", "12343hucheng": "12343@hucheng"})
    assert not guard.other_patient("007", " sub-007 ")  # written as a label, spaces around it
    assert guard.other_patient("12343hucheng", "12343-hucheng")  # another raw id giving the same label
    assert not guard.other_patient("unknown", "unknown")  # no images of that label: nothing to contradict
    assert guard.own_id("sub-007") and guard.own_id("12343@hucheng")
    assert not guard.own_id("12343-hucheng") and not guard.own_id("unknown")


def test_a_legacy_entry_is_recognised_and_upgraded_once():
    guard = SubjectGuard({"P1": hashlib.sha256(b"P1").hexdigest()}, SECRET)
    assert not guard.taken_by_another("P1", "P1")
    assert guard.record("P1", "P1") and guard.entries["P1"] == subject_entry(SECRET, "P1")
    assert not guard.record("P1", "P1")  # nothing to write again


def test_labels_that_differ_only_in_case_are_twins():
    assert case_twin("abc", {"ABC", "xyz"}) == "ABC"
    assert case_twin("abc", {"abc", "abd"}) is None
