"""The dataset-level files from every visit ever placed, merged with what a person wrote: their rows, columns
and wording stay; a file of theirs that is not valid JSON is never overwritten, they are told where."""

from __future__ import annotations

import json

import pytest

from bids_factory.errors import DatasetError
from bids_factory.finalize.dataset_files import dataset_files
from bids_factory.write.dataset_writer import DatasetWriter


def _writer(tmp_path, subjects=("sub-01",)):
    writer = DatasetWriter(tmp_path / "bids")
    for n, subject in enumerate(subjects, start=1):
        writer.write_record(f"{subject}_ses-1.json", {
            "record_version": 2, "scan_research_id": f"V{n}", "participant_id": subject, "session_id": "ses-1",
            "export_folders": [{"kind": "DICOM", "day": "20240311", "path": f"DICOM/2024/20240311/V{n}"}],
            "files": [], "not_placed": []})
    return writer


def test_a_persons_participant_rows_columns_and_descriptions_stay(tmp_path):
    writer = _writer(tmp_path)
    files = dataset_files(writer, "v1")
    assert files["participants.tsv"] == "participant_id\nsub-01\n"
    assert files["sub-01/sub-01_sessions.tsv"].splitlines() == ["session_id\tscan_research_id\texport_days",
                                                                "ses-1\tV1\t20240311"]
    for path, text in files.items():
        writer.write_text(path, text)
    writer.write_text("participants.tsv", "participant_id\tgroup\nsub-01\tpatient\nsub-99\tcontrol\n")
    edited = json.loads(files["participants.json"])
    edited["participant_id"]["Description"] = "Our wording"
    edited["group"] = {"Description": "Study arm"}
    writer.write_text("participants.json", json.dumps(edited))
    writer = _writer(tmp_path, ("sub-01", "sub-02"))
    again = dataset_files(writer, "v1")
    assert again["participants.tsv"] == "participant_id\tgroup\nsub-01\tpatient\nsub-02\tn/a\nsub-99\tcontrol\n"
    sidecar = json.loads(again["participants.json"])
    assert sidecar["participant_id"]["Description"] == "Our wording" and sidecar["group"] == {"Description": "Study arm"}


def test_changes_grow_on_top_and_a_persons_readme_is_never_replaced(tmp_path):
    writer = _writer(tmp_path)
    first = dataset_files(writer, "v1", changes=["Placed sub-01/ses-1"])
    assert first["CHANGES"].startswith("1.0.0 ") and first["CHANGES"].endswith("  - Placed sub-01/ses-1\n")
    writer.write_text("CHANGES", first["CHANGES"])
    (writer.root / "README").write_text("Our study.\n")
    second = dataset_files(writer, "v1", changes=["Placed sub-02/ses-1"])
    assert second["CHANGES"].startswith("1.0.1 ") and second["CHANGES"].endswith("\n" + first["CHANGES"])
    assert "README.md" not in second and "README.md" in first
    assert "CHANGES" not in dataset_files(writer, "v1")  # nothing new: the file stays as it is


def test_a_persons_sidecar_that_is_not_valid_json_is_reported_in_one_line_not_overwritten(tmp_path):
    writer = _writer(tmp_path)
    (writer.root / "participants.json").write_text('{"participant_id": {"Description": "x",}}')
    with pytest.raises(DatasetError) as raised:
        dataset_files(writer, "v1")
    assert "participants.json" in str(raised.value) and "not valid JSON" in str(raised.value)
    assert (writer.root / "participants.json").read_text() == '{"participant_id": {"Description": "x",}}'


def test_a_subject_whose_session_moved_away_keeps_its_row_only_where_a_person_wrote_in_it(tmp_path):
    writer = DatasetWriter(tmp_path / "bids")
    writer.write_text("participants.tsv", "participant_id\tgroup\nsub-OLD1\tpatient\nsub-OLD2\tn/a\n")
    for n, (new, old) in enumerate([("sub-NEW1", "sub-OLD1"), ("sub-NEW2", "sub-OLD2")], start=1):
        writer.write_record(f"{new}_ses-1.json", {
            "record_version": 2, "scan_research_id": f"V{n}", "participant_id": new, "session_id": "ses-1",
            "export_folders": [], "files": [], "not_placed": [], "moved_from": [old]})
    assert dataset_files(writer, "v1")["participants.tsv"].splitlines() == [
        "participant_id\tgroup", "sub-NEW1\tn/a", "sub-NEW2\tn/a", "sub-OLD1\tpatient"]  # sub-OLD2: gone
