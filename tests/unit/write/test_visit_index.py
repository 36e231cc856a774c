"""The visit index (code/bids-factory/index.sqlite) is derived from the visit records and states: a lost or
damaged index is built again, a write stopped between a file and its index row is taken up, check names a
difference."""

from __future__ import annotations

import json
from pathlib import Path

from bids_factory.write.dataset_paths import VISIT_INDEX, VISIT_RECORDS, VISIT_STATES
from bids_factory.write.dataset_writer import DatasetWriter
from bids_factory.write.visit_index import RECORD

HELD = {"status": "held-back", "reason": "T1w.schema.json: VoxelSize[0] 2.0 is greater than 1.5",
        "SeriesDescription": "t1_2mm", "SeriesNumber": 3}
UNMATCHED = {"status": "unmatched", "reason": "no heuristic rule matches", "SeriesDescription": "odd", "SeriesNumber": 4}
SCOUT = {"status": "unmatched", "reason": "localizer/scout (name 'scout'): not placed", "SeriesDescription": "scout"}


def _record(sub: str, ses: str, visit: str, files: int, not_placed=(), **extra) -> dict:
    return {"record_version": 2, "scan_research_id": visit, "participant_id": f"sub-{sub}", "session_id": f"ses-{ses}",
            "export_folders": [{"kind": "DICOM", "day": "20240105", "path": f"DICOM/2024/20240105/{visit}"}],
            "files": [{"path": f"anat/sub-{sub}_ses-{ses}_run-{i}_T1w.nii.gz"} for i in range(files)],
            "not_placed": list(not_placed), **extra}


def _dataset(root: Path) -> DatasetWriter:
    writer = DatasetWriter(root)
    writer.write_record("sub-A_ses-1.json", _record("A", "1", "V1", 2, [HELD, SCOUT]))
    writer.write_record("sub-A_ses-2.json", _record("A", "2", "V2", 1, [UNMATCHED], pending_changes=[{"path": "x"}]))
    writer.write_record("sub-B_ses-3.json", _record("B", "3", "V3", 3))
    for visit, status, not_placed in (("V1", "placed", []), ("V2", "placed", []), ("V3", "placed", []),
                                      ("V4", "nothing-to-place", [UNMATCHED])):
        writer.states.write({"scan_research_id": visit, "fingerprint": f"f{visit}", "settings": "s",
                             "status": status, "subject_label": "A", "session_label": visit,
                             "not_placed": not_placed})
    return writer


def _everything(writer: DatasetWriter) -> tuple:
    index = writer.index
    return (index.states(), list(index.visits()), index.counts(), list(index.not_placed()), index.unplaced_visits())


def test_the_index_answers_from_the_records_and_states(tmp_path):
    writer = _dataset(tmp_path)
    counts = writer.index.counts()
    assert counts == {"subjects": 2, "sessions": 3, "images": 6, "not_placed": {"held-back": 1, "unmatched": 3}}
    assert [v["name"] for v in writer.index.visits() if v["pending"]] == ["sub-A_ses-2.json"]
    assert [r["scan_research_id"] for r in writer.pending_records()] == ["V2"]
    assert writer.index.not_gone() == [("sub-A_ses-1.json", "V1"), ("sub-A_ses-2.json", "V2"), ("sub-B_ses-3.json", "V3")]
    assert sorted(writer.index.sessions()) == [("sub-A", "ses-1", "V1"), ("sub-A", "ses-2", "V2"), ("sub-B", "ses-3", "V3")]
    assert writer.states.by_visit()["V4"]["status"] == "nothing-to-place"
    assert [v["scan_research_id"] for v in writer.index.unplaced_visits()] == ["V4"]
    assert writer.index.differences() == []
    groups = writer.index.not_placed_groups(shown=1)
    assert [(g["status"], g["SeriesDescription"], g["count"], g["visit_count"], g["visits"]) for g in groups] == [
        ("held-back", "t1_2mm", 1, 1, ["V1"]), ("unmatched", "odd", 2, 2, ["V2"]), ("unmatched", "scout", 1, 1, ["V1"])]


def test_thumbnail_links_of_every_session_or_of_some(tmp_path):
    writer = DatasetWriter(tmp_path)
    for session in ("sub-A/ses-1", "sub-B/ses-2"):
        (tmp_path / "code" / "bids-factory" / "thumbnails" / session / "anat").mkdir(parents=True)
        (tmp_path / "code" / "bids-factory" / "thumbnails" / session / "anat" / "x_T1w.png").write_bytes(b"png")
    assert writer.report.thumbnail_links() == {"sub-A/ses-1/anat/x_T1w.nii.gz": "thumbnails/sub-A/ses-1/anat/x_T1w.png",
                                        "sub-B/ses-2/anat/x_T1w.nii.gz": "thumbnails/sub-B/ses-2/anat/x_T1w.png"}
    assert list(writer.report.thumbnail_links(sessions=["sub-B/ses-2"])) == ["sub-B/ses-2/anat/x_T1w.nii.gz"]


def test_a_deleted_or_damaged_index_is_built_again_and_loses_nothing(tmp_path):
    before = _everything(_dataset(tmp_path))
    (tmp_path / VISIT_INDEX).unlink()
    assert _everything(DatasetWriter(tmp_path)) == before
    (tmp_path / VISIT_INDEX).write_bytes(b"not a database" * 100)
    assert _everything(DatasetWriter(tmp_path)) == before
    (tmp_path / VISIT_INDEX).write_bytes((tmp_path / VISIT_INDEX).read_bytes()[:2048])  # cut short
    assert _everything(DatasetWriter(tmp_path)) == before


def test_a_write_stopped_between_the_file_and_its_index_row_is_taken_up(tmp_path):
    writer = _dataset(tmp_path)
    record = _record("B", "3", "V3", 5)
    writer.index.will_write(RECORD, "sub-B_ses-3.json")  # what a run killed after writing the file leaves
    (tmp_path / VISIT_RECORDS / "sub-B_ses-3.json").write_text(json.dumps(record))
    writer.index.close()
    assert DatasetWriter(tmp_path).index.counts()["images"] == 8
    writer = DatasetWriter(tmp_path)
    writer.index.will_write(RECORD, "sub-C_ses-9.json")  # killed before the file was written: nothing new
    writer.index.close()
    assert DatasetWriter(tmp_path).index.counts()["sessions"] == 3


def test_check_names_every_difference_between_the_index_and_the_files(tmp_path):
    _dataset(tmp_path).index.close()
    (tmp_path / VISIT_RECORDS / "sub-B_ses-3.json").unlink()
    edited = json.loads((tmp_path / VISIT_RECORDS / "sub-A_ses-1.json").read_text()) | {"not_placed": []}
    (tmp_path / VISIT_RECORDS / "sub-A_ses-1.json").write_text(json.dumps(edited))
    (tmp_path / VISIT_STATES / "V9-by-hand.json").write_text(json.dumps({"scan_research_id": "V9"}))
    assert DatasetWriter(tmp_path).index.differences() == [
        "code/bids-factory/visits/sub-B_ses-3.json: in the index, not on disk",
        "code/bids-factory/visits/sub-A_ses-1.json: the index differs from the file",
        "code/bids-factory/state/V9-by-hand.json: on disk, not in the index"]
    writer = DatasetWriter(tmp_path)
    writer.index.rebuild()
    assert writer.index.differences() == []
