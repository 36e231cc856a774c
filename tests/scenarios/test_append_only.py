"""Append-only unless a person decides: the export is history; a placed image leaves only by a decision.

Real data (the XA30 visit of ``../shared/dicom``), each test asserting the dataset's files before and after.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bids_factory.cli.main import main
from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import GE_T1W, TEST_HEURISTICS, XA30, add_series, assert_valid_bids, real_folders

pytestmark = pytest.mark.realdata

HEURISTIC = TEST_HEURISTICS / "xa30_reproin.json"
SERIES = {p.name.split("_")[0]: p for p in real_folders(XA30, "*/")}
SESSION = Path("sub-12343hucheng") / "ses-VISIT01"
RECORD = Path("code") / "bids-factory" / "visits" / "sub-12343hucheng_ses-VISIT01.json"


def _session_files(bids: Path) -> dict[str, bytes]:
    """Every file of the session folder: path -> bytes."""
    folder = bids / SESSION
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _images(bids: Path) -> list[str]:
    return sorted(p.relative_to(bids / SESSION).as_posix() for p in (bids / SESSION).rglob("*.nii.gz"))


def _subject_page(bids: Path) -> str:
    """The report's page of the subject (line-break opportunities taken out)."""
    return (bids / "code" / "bids-factory" / "report" / "sub-12343hucheng.html").read_text().replace("<wbr />", "")


def _record(bids: Path) -> dict:
    return json.loads((bids / RECORD).read_text())


@pytest.fixture(scope="module")
def schemas(tmp_path_factory) -> Path:
    """The shipped sidecar schemas, with this site's 2 mm T1w accepted (the XA30 T1w is 2 mm)."""
    from bids_factory.resources import shipped_dir

    site = tmp_path_factory.mktemp("schemas") / "sidecar"
    shutil.copytree(shipped_dir("schemas") / "sidecar", site)
    t1w = json.loads((site / "T1w.schema.json").read_text())
    t1w["properties"]["VoxelSize"]["items"]["maximum"] = 2.0
    (site / "T1w.schema.json").write_text(json.dumps(t1w))
    return site


def _run(export: Path, bids: Path, schemas: Path, heuristic: Path = HEURISTIC, **options):
    return convert(ConvertOptions(export=export, bids=bids, heuristic=heuristic, schemas=schemas, validate=False,
                                  **options))


def _notes(report) -> list[str]:
    return [p.reason for p in report.problems if not p.fatal]


def test_a_purged_day_changes_nothing_placed_and_a_late_series_is_numbered_after(export, bids, schemas):
    add_series(export, "20240105", "VISIT01", SERIES["5"])  # day 1: the T1w
    add_series(export, "20240106", "VISIT01", SERIES["8"])  # day 2: the field maps
    add_series(export, "20240106", "VISIT01", SERIES["9"])
    first = _run(export, bids, schemas)
    assert not first.failed
    placed = _session_files(bids)
    assert _images(bids) == ["anat/sub-12343hucheng_ses-VISIT01_acq-tfl_T1w.nii.gz",
                             "fmap/sub-12343hucheng_ses-VISIT01_magnitude1.nii.gz",
                             "fmap/sub-12343hucheng_ses-VISIT01_magnitude2.nii.gz",
                             "fmap/sub-12343hucheng_ses-VISIT01_phasediff.nii.gz"]

    sessions = (bids / "sub-12343hucheng" / "sub-12343hucheng_sessions.tsv").read_text()
    assert "ses-VISIT01\tVISIT01\t20240105,20240106" in sessions
    shutil.rmtree(export / "DICOM" / "2024" / "20240105")  # the hospital purges its oldest day
    assert main(["convert", str(export), str(bids), "--heuristic", str(HEURISTIC), "--schemas", str(schemas),
                 "--no-validate", "--quiet"]) == 0
    assert _session_files(bids) == placed  # every placed image, byte for byte, and the scans.tsv
    assert (bids / "sub-12343hucheng" / "sub-12343hucheng_sessions.tsv").read_text() == sessions  # history
    record = _record(bids)
    assert record["gone_sources"] == ["DICOM/2024/20240105/VISIT01"]
    assert [f["path"] for f in record["export_folders"] if f.get("gone")] == ["DICOM/2024/20240105/VISIT01"]
    assert "DICOM 20240105 DICOM/2024/20240105/VISIT01 (gone from the export)" in _subject_page(bids)
    assert record["pending_changes"] == []
    assert len(record["files"]) == 4

    add_series(export, "20240107", "VISIT01", SERIES["6"])  # a late T1w on a new day
    late = _run(export, bids, schemas)
    assert not late.failed and not _notes(late)
    after = _session_files(bids)
    added = "anat/sub-12343hucheng_ses-VISIT01_acq-tfl_run-02_T1w.nii.gz"
    assert sorted(set(after) - set(placed)) == [added.replace(".nii.gz", ".json"), added]
    scans = "sub-12343hucheng_ses-VISIT01_scans.tsv"
    assert {k: v for k, v in after.items() if k not in (added, added.replace(".nii.gz", ".json"), scans)} == \
        {k: v for k, v in placed.items() if k != scans}  # nothing else changes
    assert sorted(after[scans].decode().splitlines()) == sorted(  # the placed rows stay, the new one is added
        placed[scans].decode().splitlines() + [f"{added}\t20240107\tDICOM/2024/20240107/VISIT01\t6\tt1w-tfl"])
    assert "Placed sub-12343hucheng ses-VISIT01 (1 images)" in (bids / "CHANGES").read_text().split("\n\n")[0]
    assert _record(bids)["gone_sources"] == ["DICOM/2024/20240105/VISIT01"]
    assert_valid_bids(bids)


@pytest.fixture(scope="module")
def no_t1w_heuristic(tmp_path_factory) -> Path:
    """The XA30 heuristic without its T1w rule: a changed heuristic that no longer places a placed image."""
    heuristic = json.loads(HEURISTIC.read_text())
    heuristic["descriptions"] = [d for d in heuristic["descriptions"] if d["suffix"] != "T1w"]
    path = tmp_path_factory.mktemp("heuristic") / "no-t1w.json"
    path.write_text(json.dumps(heuristic))
    return path


def test_a_heuristic_that_drops_a_placed_image_keeps_it_until_the_reported_command_applies_it(
        export, bids, schemas, no_t1w_heuristic, capsys):
    for number in ("5", "8", "9"):
        add_series(export, "20240105", "VISIT01", SERIES[number])
    assert not _run(export, bids, schemas).failed
    placed = _session_files(bids)
    t1w = "anat/sub-12343hucheng_ses-VISIT01_acq-tfl_T1w"
    changes_before = (bids / "CHANGES").read_text()

    command = ["convert", str(export), str(bids), "--heuristic", str(no_t1w_heuristic), "--schemas", str(schemas),
               "--no-validate"]
    capsys.readouterr()
    assert main(command) == 0
    assert _session_files(bids) == placed  # by default the placed image stays
    assert _record(bids)["pending_changes"] == [{"path": f"{t1w}.nii.gz", "kind": "no-longer-placed", "new_path": None,
                                                 "reason": _record(bids)["pending_changes"][0]["reason"]}]
    assert _record(bids)["pending_changes"][0]["reason"].startswith("unmatched")
    assert len(_record(bids)["files"]) == 4  # counted as placed: it is
    out = capsys.readouterr()
    [line] = [line for line in (out.out + out.err).splitlines() if f"{t1w}.nii.gz" in line]
    assert "would leave the dataset (unmatched" in line
    apply = f"bids-factory convert {export} {bids} --heuristic {no_t1w_heuristic} --schemas {schemas} " \
            "--apply-changes VISIT01"
    assert apply in line
    assert (bids / "CHANGES").read_text() == changes_before  # nothing left the dataset
    page = _subject_page(bids)
    assert "Changes waiting for a decision (1;" in page and f"<code>{t1w}.nii.gz</code>" in page

    assert main(["convert", str(export), str(bids), "--no-validate", "--quiet", "--heuristic", str(no_t1w_heuristic),
                 "--schemas", str(schemas), "--apply-changes", "VISIT01"]) == 0  # the person's decision
    after = _session_files(bids)
    gone = {f"{t1w}.nii.gz", f"{t1w}.json"}
    scans = "sub-12343hucheng_ses-VISIT01_scans.tsv"
    assert set(after) == set(placed) - gone
    assert {k: v for k, v in after.items() if k != scans} == {
        k: v for k, v in placed.items() if k not in gone | {scans}}
    assert t1w not in after[scans].decode()
    replaced = bids / "code" / "bids-factory" / "replaced" / "sub-12343hucheng_ses-VISIT01"
    assert {p.relative_to(replaced).as_posix().split("/", 1)[1]: p.read_bytes()
            for p in replaced.rglob("*") if p.is_file()} == {k: placed[k] for k in gone}
    newest = (bids / "CHANGES").read_text().split("\n\n")[0]
    assert f"Removed sub-12343hucheng/ses-VISIT01/{t1w}.nii.gz (kept at code/bids-factory/replaced/" in newest
    assert "would leave the dataset" not in newest and ".nii.gz): unmatched: not recognised" in newest
    assert "applied with --apply-changes VISIT01" in newest
    record = _record(bids)
    assert record["pending_changes"] == [] and len(record["files"]) == 3
    assert [o["status"] for o in record["not_placed"] if o["SeriesNumber"] == 5] == ["unmatched"]
    capsys.readouterr()
    assert main(command) == 0
    assert "--apply-changes" not in "".join(capsys.readouterr())  # decided: nothing more to report
    assert "Changes waiting for a decision" not in _subject_page(bids)
    assert main(command + ["--apply-changes", "VISIT99"]) == 1  # a decision about nothing is not a success
    assert "VISIT99: visit named with --apply-changes is not in the export" in "".join(capsys.readouterr())
    assert_valid_bids(bids)


def test_a_partial_resend_of_a_placed_series_never_replaces_it(export, bids, tmp_path, capsys):
    """A later day re-sends 10 slices of a placed, complete T1w with new SOPInstanceUIDs: the series is now
    incomplete; the placed image stays and the run says so."""
    import pydicom
    from pydicom.uid import generate_uid

    add_series(export, "20230301", "GE0001", GE_T1W)
    assert main(["convert", str(export), str(bids), "--no-validate", "--quiet"]) == 0
    [session] = bids.glob("sub-*/ses-GE0001")
    before = {p.relative_to(bids).as_posix(): p.read_bytes() for p in session.rglob("*") if p.is_file()}
    assert [p for p in before if p.endswith(".nii.gz")] == [f"{session.relative_to(bids)}/anat/"
                                                           f"{session.parent.name}_ses-GE0001_T1w.nii.gz"]
    resent = export / "DICOM" / "2023" / "20230302" / "GE0001" / "resent"
    resent.mkdir(parents=True)
    for source in sorted(GE_T1W.glob("*.dcm"))[:10]:
        dataset = pydicom.dcmread(source)
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.save_as(resent / source.name)

    capsys.readouterr()
    assert main(["convert", str(export), str(bids), "--no-validate"]) == 0
    after = {p.relative_to(bids).as_posix(): p.read_bytes() for p in session.rglob("*") if p.is_file()}
    assert after == before  # the complete placed image stays, never replaced by an incomplete one
    out = capsys.readouterr()
    [note] = [line for line in (out.out + out.err).splitlines() if "_T1w.nii.gz" in line and "--apply-changes" in line]
    assert "would leave the dataset (held-back: " in note  # dcm2niix makes two partial volumes of it
    assert note.endswith(f"bids-factory convert {export} {bids} --apply-changes GE0001")
    record = json.loads(next((bids / "code" / "bids-factory" / "visits").glob("*.json")).read_text())
    assert [c["kind"] for c in record["pending_changes"]] == ["no-longer-placed"]
    assert [f["path"] for f in record["files"]] == [f"anat/{session.parent.name}_ses-GE0001_T1w.nii.gz"]


def test_check_reports_a_session_whose_placed_files_differ_from_its_visit_record(export, bids, schemas, capsys):
    for number in ("8", "9"):
        add_series(export, "20240105", "VISIT01", SERIES[number])
    assert not _run(export, bids, schemas).failed
    capsys.readouterr()
    assert main(["check", str(bids)]) == 0
    assert "0 placed files missing from their session" in capsys.readouterr().out
    session = bids / SESSION
    magnitude2 = session / "fmap" / "sub-12343hucheng_ses-VISIT01_magnitude2.nii.gz"
    (session / "anat").mkdir()  # a person's doing: magnitude2 moved, taken for a T2w
    magnitude2.rename(session / "anat" / "sub-12343hucheng_ses-VISIT01_T2w.nii.gz")
    magnitude2.with_name(magnitude2.name.replace(".nii.gz", ".json")).rename(
        session / "anat" / "sub-12343hucheng_ses-VISIT01_T2w.json")
    assert main(["check", str(bids)]) == 16  # the validator also finds scans.tsv naming a missing file
    out, err = capsys.readouterr()
    assert (f"error: {SESSION.as_posix()}/fmap/sub-12343hucheng_ses-VISIT01_magnitude2.nii.gz: placed by visit "
            "VISIT01 (its visit record lists it) but missing from the session") in out
    assert f"note: {SESSION.as_posix()}/anat/sub-12343hucheng_ses-VISIT01_T2w.nii.gz: not in the visit record" in out
    assert err.count("\n") == 1 and "1 placed files missing from their session" in err


@pytest.mark.parametrize("person_column", [False, True])
def test_a_corrected_patient_id_moves_the_session_to_the_new_subject(export, bids, schemas, person_column):
    """The hospital re-exports VISIT01 with a corrected PatientID (its first export purged): one session,
    under the new subject; the old session, record, sessions.tsv and (unless a person wrote in it) the
    participants.tsv row move with it; CHANGES says so."""
    import pydicom

    for number in ("8", "9"):
        add_series(export, "20240105", "VISIT01", SERIES[number])
    assert not _run(export, bids, schemas).failed
    old = {p.relative_to(bids / SESSION).as_posix(): p.read_bytes() for p in (bids / SESSION).rglob("*.nii.gz")}
    if person_column:
        participants = bids / "participants.tsv"
        participants.write_text(participants.read_text().replace("participant_id\n", "participant_id\tnote\n")
                                .replace("sub-12343hucheng\n", "sub-12343hucheng\tcalled back\n"))
    shutil.rmtree(export / "DICOM" / "2024" / "20240105")
    for number in ("8", "9"):
        for source in sorted(SERIES[number].glob("*")):
            if source.name == "LICENSE":
                continue
            dataset = pydicom.dcmread(source)
            dataset.PatientID = "P2024"
            target = export / "DICOM" / "2024" / "20240107" / "VISIT01" / SERIES[number].name / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            dataset.save_as(target)

    report = _run(export, bids, schemas)
    assert not report.failed
    assert sorted(p.relative_to(bids).as_posix() for p in bids.glob("sub-*/ses-*")) == ["sub-P2024/ses-VISIT01"]
    assert not (bids / "sub-12343hucheng").exists()
    new = bids / "sub-P2024" / "ses-VISIT01"
    assert {p.relative_to(new).as_posix(): p.read_bytes() for p in new.rglob("*.nii.gz")} == {
        path.replace("sub-12343hucheng_", "sub-P2024_"): data for path, data in old.items()}
    assert not _notes(report) or all("--apply-changes" not in n for n in _notes(report))
    records = sorted(p.name for p in (bids / "code" / "bids-factory" / "visits").glob("*.json"))
    assert records == ["sub-P2024_ses-VISIT01.json"]
    record = json.loads((bids / "code" / "bids-factory" / "visits" / records[0]).read_text())
    assert record["moved_from"] == ["sub-12343hucheng"] and record["participant_id"] == "sub-P2024"
    assert all(f["path"].startswith("fmap/sub-P2024_ses-VISIT01_") for f in record["files"])
    assert "ses-VISIT01\tVISIT01" in (bids / "sub-P2024" / "sub-P2024_sessions.tsv").read_text()
    rows = [line.split("\t")[0] for line in (bids / "participants.tsv").read_text().splitlines()[1:]]
    assert rows == (["sub-12343hucheng", "sub-P2024"] if person_column else ["sub-P2024"])
    newest = (bids / "CHANGES").read_text().split("\n\n")[0]
    assert "Moved sub-12343hucheng/ses-VISIT01 to sub-P2024/ses-VISIT01: visit VISIT01 was exported again" in newest
    assert any("Moved sub-12343hucheng/ses-VISIT01" in n for n in _notes(report))
    assert_valid_bids(bids)


def test_a_visit_deleted_from_the_export_stays_placed_and_its_record_says_so(export, bids, schemas, capsys):
    for number in ("8", "9"):
        add_series(export, "20240105", "VISIT01", SERIES[number])
    add_series(export, "20240106", "VISIT02", SERIES["5"])  # another visit: the export is still there
    assert not _run(export, bids, schemas).failed
    placed = _session_files(bids)
    shutil.rmtree(export / "DICOM" / "2024" / "20240105" / "VISIT01")
    command = ["convert", str(export), str(bids), "--heuristic", str(HEURISTIC), "--schemas", str(schemas),
               "--no-validate"]
    capsys.readouterr()
    assert main(command) == 0
    assert _session_files(bids) == placed
    assert "visit VISIT01 is no longer in the export: its session stays as placed" in capsys.readouterr().out
    record = _record(bids)
    assert record["gone_sources"] == ["DICOM/2024/20240105/VISIT01"]
    assert all(f["gone"] for f in record["export_folders"])
    assert main(command) == 0
    assert "no longer in the export" not in capsys.readouterr().out  # said once
    assert _session_files(bids) == placed
