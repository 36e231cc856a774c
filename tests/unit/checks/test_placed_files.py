"""`bids-factory check`: a session must hold what its visit record says was placed; the rest is a note."""

from __future__ import annotations

from bids_factory.checks.placed_files import session_differences


def _record(files, written=None, subject="sub-01", session="ses-1"):
    return {"participant_id": subject, "session_id": session, "scan_research_id": "V1",
            "files": [{"path": p} for p in files], "written": written or {}}


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_a_placed_image_deleted_by_hand_is_an_error_naming_its_visit(tmp_path):
    _touch(tmp_path / "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz")
    record = _record(["anat/sub-01_ses-1_T1w.nii.gz", "func/sub-01_ses-1_task-rest_bold.nii.gz"])
    [difference] = session_differences(tmp_path, [record])
    assert difference.path == "sub-01/ses-1/func/sub-01_ses-1_task-rest_bold.nii.gz"
    assert difference.error and "visit V1" in difference.reason and "missing" in difference.reason


def test_an_image_no_record_names_and_a_session_without_record_are_notes(tmp_path):
    _touch(tmp_path / "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz")
    _touch(tmp_path / "sub-01/ses-1/fmap/sub-01_ses-1_magnitude1.nii.gz")  # written by the writer, not "files"
    _touch(tmp_path / "sub-01/ses-1/anat/sub-01_ses-1_FLAIR.nii")  # put there by hand
    _touch(tmp_path / "sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz")
    record = _record(["anat/sub-01_ses-1_T1w.nii.gz"], {"fmap/sub-01_ses-1_magnitude1.nii.gz": "hash"})
    found = session_differences(tmp_path, [record])
    assert [(d.path, d.error) for d in found] == [("sub-01/ses-1/anat/sub-01_ses-1_FLAIR.nii", False),
                                                  ("sub-02/ses-1", False)]
    assert "placed by hand" in found[0].reason and "no visit record" in found[1].reason


def test_a_dataset_as_its_records_say_has_no_difference_even_a_record_whose_folder_is_gone(tmp_path):
    _touch(tmp_path / "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz")
    assert session_differences(tmp_path, [_record(["anat/sub-01_ses-1_T1w.nii.gz"])]) == []
    assert session_differences(tmp_path / "empty", [_record([], session="ses-2")]) == []
