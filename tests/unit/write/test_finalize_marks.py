"""``writer.marks`` on its own: what finalize still owes is written, read back and cleared (a killed run leaves it
to the next run: ``test_crash_safety``, ``test_append_only_crash``)."""

from __future__ import annotations

from bids_factory.dates import DatePolicy
from bids_factory.write.dataset_paths import DATASET_FILES_STATE
from bids_factory.write.finalize_marks import FinalizeMarks


def test_unlisted_subjects_are_marked_and_cleared_and_a_dataset_before_the_marks_lists_all(tmp_path):
    marks = FinalizeMarks(tmp_path, DatePolicy())
    assert marks.unlisted_subjects() is None  # before the marks: every subject's sessions.tsv is written
    marks.mark_listed(())
    assert marks.unlisted_subjects() == set()
    for subject in ("sub-A", "sub-B", "sub-A"):
        marks.mark_unlisted(subject)
    assert marks.unlisted_subjects() == {"sub-A", "sub-B"}
    marks.mark_listed({"sub-A"})
    assert FinalizeMarks(tmp_path, DatePolicy()).unlisted_subjects() == {"sub-B"}


def test_a_sessions_changes_line_is_kept_until_changes_holds_it(tmp_path):
    marks = FinalizeMarks(tmp_path, DatePolicy())
    assert marks.unannounced() == {}
    marks.mark_unannounced("sub-A_ses-1", "Placed sub-A ses-1 (2 images) from visit V1\n")
    marks.mark_unannounced("sub-B_ses-2", "Placed sub-B ses-2 (1 images) from visit V2")
    assert marks.unannounced() == {"sub-A_ses-1": "Placed sub-A ses-1 (2 images) from visit V1",
                                   "sub-B_ses-2": "Placed sub-B ses-2 (1 images) from visit V2"}
    marks.mark_announced(["sub-A_ses-1"])
    assert list(marks.unannounced()) == ["sub-B_ses-2"]


def test_the_dataset_files_state_round_trips_its_outcome_under_the_date_policy_until_a_visit_is_placed(tmp_path):
    marks = FinalizeMarks(tmp_path, DatePolicy("year"))
    assert marks.dataset_files_state() is None
    key = {"inputs": {"ehr": "EHR/2024-01-05/a.csv"}, "files": "stamp"}
    marks.write_dataset_files_state(key, {"ehr_problems": [{"path": "EHR/2024-01-05/a.csv"}]})
    assert marks.dataset_files_state() == {"key": key, "outcome": {"ehr_problems": [{"path": "EHR/2024/a.csv"}]}}
    marks.dataset_files_stale()
    assert marks.dataset_files_state() is None
    marks.dataset_files_stale()  # nothing to remove: no error
    for damaged in ("{not json", "[1, 2]"):  # edited by hand: computed again, as if never
        (tmp_path / DATASET_FILES_STATE).write_text(damaged)
        assert marks.dataset_files_state() is None
