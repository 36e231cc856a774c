"""A visit exported again under a corrected PatientID: its session moves to the new subject, once, keeping
what a person edited known as edited; a move killed after the new record is finished by the next run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bids_factory.write.dataset_paths import THUMBNAILS, VISIT_RECORDS
from bids_factory.write.dataset_writer import DatasetWriter
from bids_factory.write.session_move import move_session

OLD, NEW, SES = "sub-OLD1", "sub-NEW1", "ses-1"
T1W = f"anat/{OLD}_{SES}_T1w"
FMAP = f"fmap/{OLD}_{SES}_dir-AP_epi"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dataset(root: Path) -> tuple[DatasetWriter, dict]:
    session = root / OLD / SES
    files = {f"{T1W}.nii.gz": b"image", f"{T1W}.json": b'{"SeriesDescription": "T1"}',
             f"{FMAP}.json": json.dumps({"IntendedFor": [f"bids::{OLD}/{SES}/anat/{OLD}_{SES}_T1w.nii.gz"]}).encode(),
             f"{OLD}_{SES}_scans.tsv": f"filename\tacq_time\n{T1W}.nii.gz\tn/a\n".encode()}
    for rel, data in files.items():
        (session / rel).parent.mkdir(parents=True, exist_ok=True)
        (session / rel).write_bytes(data)
    written = {rel: _sha(data) for rel, data in files.items()}
    scans = session / f"{OLD}_{SES}_scans.tsv"  # then a person adds a column: the manifest keeps our hash
    scans.write_text(f"filename\tacq_time\tquality\n{T1W}.nii.gz\tn/a\tgood\n")
    (root / OLD / f"{OLD}_sessions.tsv").write_text("session_id\nses-1\n")
    thumbnails = root / THUMBNAILS / OLD / SES
    thumbnails.mkdir(parents=True)
    (thumbnails / f"{OLD}_{SES}_T1w.png").write_bytes(b"png")
    record = {"participant_id": OLD, "session_id": SES, "scan_research_id": "V1", "written": written,
              "files": [{"path": f"{T1W}.nii.gz", "rule": "T1w"}],
              "pending_changes": [{"path": f"{T1W}.nii.gz", "new_path": None, "kind": "gone"}]}
    writer = DatasetWriter(root)
    writer.write_record(f"{OLD}_{SES}.json", record)
    writer.marks.write_dataset_files_state({"inputs": "as last run"}, {})  # a move makes it stale
    return writer, record


def test_the_session_moves_whole_renamed_and_the_old_subject_goes(tmp_path):
    writer, record = _dataset(tmp_path)
    image_inode = (tmp_path / OLD / SES / f"{T1W}.nii.gz").stat().st_ino
    line = move_session(writer, record, "NEW1", tmp_path / "staging")
    new_t1w = f"anat/{NEW}_{SES}_T1w"
    session = tmp_path / NEW / SES
    assert sorted(p.relative_to(session).as_posix() for p in session.rglob("*") if p.is_file()) == sorted(
        [f"{new_t1w}.nii.gz", f"{new_t1w}.json", f"fmap/{NEW}_{SES}_dir-AP_epi.json", f"{NEW}_{SES}_scans.tsv"])
    assert (session / f"{new_t1w}.nii.gz").stat().st_ino == image_inode  # linked, not copied
    assert json.loads((session / f"fmap/{NEW}_{SES}_dir-AP_epi.json").read_text())["IntendedFor"] == [
        f"bids::{NEW}/{SES}/{new_t1w}.nii.gz"]
    assert (session / f"{NEW}_{SES}_scans.tsv").read_text() == f"filename\tacq_time\tquality\n{new_t1w}.nii.gz\tn/a\tgood\n"
    moved = writer.read_json(VISIT_RECORDS / f"{NEW}_{SES}.json")
    assert moved["participant_id"] == NEW and moved["moved_from"] == [OLD] and moved["left"] == [line]
    assert moved["files"][0]["path"] == f"{new_t1w}.nii.gz" and moved["pending_changes"][0]["path"] == f"{new_t1w}.nii.gz"
    assert line.startswith(f"Moved {OLD}/{SES} to {NEW}/{SES}") and "V1" in line
    assert not (tmp_path / OLD).exists() and writer.read_json(VISIT_RECORDS / f"{OLD}_{SES}.json") is None
    assert not (tmp_path / THUMBNAILS / OLD).exists()
    assert (tmp_path / THUMBNAILS / NEW / SES / f"{NEW}_{SES}_T1w.png").read_bytes() == b"png"
    assert writer.marks.unlisted_subjects() == {OLD, NEW} and writer.marks.dataset_files_state() is None
    assert not (writer.state_dir / "removed" / f"{OLD}__{SES}").exists()


def test_what_a_person_edited_stays_known_as_edited_and_what_is_ours_gets_its_new_hash(tmp_path):
    writer, record = _dataset(tmp_path)
    old_scans_hash = record["written"][f"{OLD}_{SES}_scans.tsv"]
    move_session(writer, record, "NEW1", tmp_path / "staging")
    written = writer.read_json(VISIT_RECORDS / f"{NEW}_{SES}.json")["written"]
    session = tmp_path / NEW / SES
    assert written[f"{NEW}_{SES}_scans.tsv"] == old_scans_hash  # not the hash of its content: edited
    assert written[f"{NEW}_{SES}_scans.tsv"] != _sha((session / f"{NEW}_{SES}_scans.tsv").read_bytes())
    for rel in (f"fmap/{NEW}_{SES}_dir-AP_epi.json", f"anat/{NEW}_{SES}_T1w.nii.gz"):
        assert written[rel] == _sha((session / rel).read_bytes())  # ours: the hash of what it holds now


def test_a_move_killed_after_its_new_record_is_finished_without_a_second_copy(tmp_path):
    writer, record = _dataset(tmp_path)
    (tmp_path / OLD / "ses-2").mkdir()  # the old subject keeps another session: it stays
    move_session(writer, record, "NEW1", tmp_path / "staging")
    moved = (tmp_path / NEW / SES / f"anat/{NEW}_{SES}_T1w.json").read_bytes()
    (tmp_path / OLD / SES / "anat").mkdir(parents=True)  # as if killed before the old folder was removed
    (tmp_path / OLD / SES / "anat" / f"{OLD}_{SES}_T1w.json").write_text("{}")
    writer.write_record(f"{OLD}_{SES}.json", record)
    move_session(writer, record, "NEW1", tmp_path / "staging2")
    assert not (tmp_path / OLD / SES).exists() and writer.read_json(VISIT_RECORDS / f"{OLD}_{SES}.json") is None
    assert not (tmp_path / "staging2" / "moved").exists()  # nothing rebuilt: the new session stays as it was
    assert (tmp_path / NEW / SES / f"anat/{NEW}_{SES}_T1w.json").read_bytes() == moved
    assert (tmp_path / OLD / f"{OLD}_sessions.tsv").exists() and (tmp_path / OLD / "ses-2").is_dir()
