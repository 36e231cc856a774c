"""The paths an attack took around the allow-list (issue 22), each closed and checked on every byte the tool
leaves: every file of the dataset (a ``.nii.gz`` decompressed whole), every file name, stdout and stderr.

Real data (the GE 3D T1w of ``../shared/dicom``) with a patient's name written into the places an attack used:
a list value (ImageType), a converter that fails with the name in its log, a NIfTI-1 ``data_type``.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import struct
import subprocess
import warnings
from pathlib import Path

import dcm2niix
import nibabel as nib
import pydicom
import pytest
from pydicom.uid import generate_uid

from bids_factory.privacy.deidentify import Deidentification, keep_allowed
from bids_factory.privacy.identifier_match import VisitIdentifiers
from conftest import GE_T1W, REPO, assert_valid_bids

NAME = "ZABRISKIE^JANE"
NAME_WORDS = ("ZABRISKIE", "JANE")
_DATE = re.compile(rb"(?<![0-9A-Za-z.])((19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])|(19|20)\d{2}-\d{2}-\d{2}|"
                   rb"\d{1,2}\.\d{1,2}\.(19|20)\d{2})(?![0-9A-Za-z])")


def found(bids: Path, outputs: str, words=NAME_WORDS, dates: bool = False) -> list[str]:
    """Where a name word (or, with ``dates``, a calendar date) is in the dataset, its file names or ``outputs``."""
    places = {"stdout+stderr": outputs.encode()}
    for path in sorted(bids.rglob("*")):
        places[f"name {path.relative_to(bids)}"] = str(path.relative_to(bids)).encode()
        if path.is_file():
            data = path.read_bytes()
            places[str(path.relative_to(bids))] = gzip.decompress(data) if path.name.endswith(".gz") else data
    lowered = {where: data.lower() for where, data in places.items()}  # once per file, not once per word
    hits = [f"{word} in {where}" for where, data in lowered.items() for word in words if word.lower().encode() in data]
    if dates:  # in a NIfTI image its header and extensions: the voxels are numbers, not text
        text = {where: data[:_voxel_offset(data)] if where.endswith((".nii", ".nii.gz")) and " " not in where
                else data for where, data in places.items()}
        hits += [f"date in {where}: {data[max(m.start() - 60, 0):m.end() + 20]!r}" for where, data in text.items()
                 if (m := _DATE.search(data))]
    return hits


def _voxel_offset(image: bytes) -> int:
    """Where a NIfTI-1 or NIfTI-2 image's voxels start (the header and its extensions end)."""
    if struct.unpack("<i", image[:4])[0] == 540:
        return struct.unpack("<q", image[168:176])[0]
    return int(struct.unpack("<f", image[108:112])[0])


@pytest.fixture
def run(command_runs):
    def convert(export: Path, bids: Path, *args: str) -> tuple[int, str]:
        done = command_runs("convert", export, bids, *args)
        return done.returncode, done.stdout + done.stderr
    return convert


@pytest.fixture(scope="module")
def ge_t1w(tmp_path_factory):
    """``ge_t1w(export, ...)``: the GE 3D T1w under the patient's name (and another ImageType / SeriesNumber: a
    second series; a PatientBirthDate) put into a visit folder of ``export``. Each variant is written once."""
    written: dict[tuple, Path] = {}
    sources = [(source, pydicom.dcmread(source)) for source in sorted(GE_T1W.glob("*.dcm"))]  # read once
    originals = [(ds.ImageType, ds.SeriesNumber, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.get("PatientBirthDate"))
                 for _, ds in sources]

    def variant(image_type, series_number, patient_id, birth_date) -> Path:
        key = (tuple(image_type or ()), series_number, patient_id, birth_date)
        if key not in written:
            folder = written[key] = tmp_path_factory.mktemp("named-t1w")
            series_uid = generate_uid()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for (source, ds), (kind, number, series, instance, born) in zip(sources, originals):
                    ds.PatientID, ds.PatientName = patient_id, NAME
                    ds.ImageType = image_type if image_type is not None else kind
                    ds.SeriesNumber, ds.SeriesInstanceUID, ds.SOPInstanceUID = (
                        (series_number, series_uid, generate_uid()) if series_number is not None
                        else (number, series, instance))
                    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                    if birth_date is not None:
                        ds.PatientBirthDate = birth_date
                    elif born is None:
                        ds.pop("PatientBirthDate", None)
                    else:
                        ds.PatientBirthDate = born
                    ds.save_as(folder / source.name)
        return written[key]

    def put(export: Path, visit: str = "V1", day: str = "20240312", image_type=None, series_number=None,
            folder: str = "t1", patient_id: str = "HOSP-7731", birth_date: str | None = None) -> Path:
        target = export / "DICOM" / day[:4] / day / visit / folder
        shutil.copytree(variant(image_type, series_number, patient_id, birth_date), target)
        return target

    return put


@pytest.fixture(scope="module")
def t1w_nifti(tmp_path_factory) -> Path:
    """dcm2niix's NIfTI and sidecar of the GE T1w (``t1.nii``, ``t1.json``), made once: copy before changing."""
    folder = tmp_path_factory.mktemp("t1w-nifti")
    subprocess.run([dcm2niix.bin, "-b", "y", "-ba", "y", "-z", "n", "-f", "t1", "-o", str(folder), str(GE_T1W)],
                   check=True, capture_output=True)
    return folder


@pytest.mark.realdata
def test_a_name_word_in_a_list_value_is_dropped_from_the_list_everywhere(tmp_path, run, ge_t1w, t1w_nifti):
    """ImageType ORIGINAL\\PRIMARY\\OTHER\\JANE on the DICOM route and in a NIfTI export's sidecar: the item
    is dropped (the key keeps its vocabulary), the summary, report.html, run record and state never show it;
    a derived series whose ImageType holds the name is reported with ``[removed]``."""
    export, bids = tmp_path / "export", tmp_path / "bids"
    ge_t1w(export, image_type=["ORIGINAL", "PRIMARY", "OTHER", "JANE"])
    ge_t1w(export, image_type=["DERIVED", "SECONDARY", "ZABRISKIE"], series_number=99, folder="derived")
    nifti = export / "NIFTI" / "2024" / "20240312" / "V2"
    shutil.copytree(t1w_nifti, nifti)
    sidecar = json.loads((nifti / "t1.json").read_text())
    sidecar.update(PatientID="HOSP-8842", PatientName=NAME, ImageType=["ORIGINAL", "PRIMARY", "M", "Jane"],
                   DeidentificationMethod=["pseudonymised for Zabriskie"])
    (nifti / "t1.json").write_text(json.dumps(sidecar))
    code, out = run(export, bids)
    assert code == 0, out
    sidecars = {p.parts[-4]: json.loads(p.read_text()) for p in bids.glob("sub-*/ses-*/anat/*_T1w.json")}
    assert sidecars["sub-HOSP7731"]["ImageType"][:3] == ["ORIGINAL", "PRIMARY", "OTHER"]  # dcm2niix adds MAGNITUDE
    assert sidecars["sub-HOSP8842"]["ImageType"] == ["ORIGINAL", "PRIMARY", "M"]
    assert "DeidentificationMethod" not in sidecars["sub-HOSP8842"]  # a list of free text: the key goes
    assert "[removed]" in (bids / "code" / "bids-factory" / "report.html").read_text()
    assert found(bids, out) == []
    assert_valid_bids(bids)


def test_list_items_of_a_coded_key_and_nested_values():
    identifiers = VisitIdentifiers(patient_id="P1", ids=frozenset({"P1"}), names=frozenset({"jane", "primary"}))
    record = Deidentification()
    kept = keep_allowed({"ImageType": ["ORIGINAL", "PRIMARY", "OTHER", "JANE"], "ImageTypeText": ["JANE"],
                         "ShimSetting": [1, 2], "DeidentificationMethodCodeSequence": [{"CodeMeaning": "Jane"}],
                         "IntendedFor": ["bids::sub-01/anat/jane.nii.gz"]},
                        "anat", "T1w", identifiers, record=record)
    # the vocabulary stays (PRIMARY); a BIDS URI is a format value made of the subject label, not free text
    assert kept == {"ImageType": ["ORIGINAL", "PRIMARY", "OTHER"], "ShimSetting": [1, 2],
                    "IntendedFor": ["bids::sub-01/anat/jane.nii.gz"]}
    assert record.identifier_items == {"ImageType": 1}
    # a reason the tool wrote keeps its own BIDS words (a patient named "Asl"), not what it quotes
    from bids_factory.extract.redact import cleaner
    from bids_factory.privacy.deidentify import bids_vocabulary
    asl = VisitIdentifiers(names=frozenset({"asl", "jane"}))
    assert cleaner(asl, spare=bids_vocabulary())("asl: series 'asl_jane'") == "asl: series 'asl_[removed]'"
    assert cleaner(asl)("asl: x") == "[removed]: x"
    assert sorted(record.identifier_keys) == ["DeidentificationMethodCodeSequence", "ImageTypeText"]


@pytest.mark.realdata
def test_a_failed_conversion_log_never_shows_the_name(tmp_path, run, ge_t1w):
    """dcm2niix fails (its file name, ``-f %n`` repeated, is too long to write) and logs the PatientName:
    the FAILED line on stdout, report.html and the run record carry ``[removed]`` instead."""
    export, bids = tmp_path / "export", tmp_path / "bids"
    ge_t1w(export)
    heuristic = json.loads((REPO / "heuristics" / "default.json").read_text())
    heuristic["dcm2niixOptions"] = "-f " + "%n_" * 20
    (tmp_path / "heuristic.json").write_text(json.dumps(heuristic))
    code, out = run(export, bids, "--heuristic", str(tmp_path / "heuristic.json"))
    assert code != 0 and "dcm2niix produced no image" in out and "[removed]" in out, out
    assert "Traceback" not in out
    assert found(bids, out) == []


@pytest.mark.realdata
def test_nifti1_data_type_with_a_name_word_is_blanked(tmp_path, run, t1w_nifti):
    """A NIfTI export whose header's ``data_type`` (and ``db_name``) hold a name word: blanked when placed."""
    export, bids = tmp_path / "export", tmp_path / "bids"
    nifti = export / "NIFTI" / "2024" / "20240312" / "V2"
    shutil.copytree(t1w_nifti, nifti)
    sidecar = json.loads((nifti / "t1.json").read_text())
    sidecar.update(PatientID="HOSP-8842", PatientName=NAME)
    (nifti / "t1.json").write_text(json.dumps(sidecar))
    with open(nifti / "t1.nii", "r+b") as image:  # NIfTI-1: data_type at byte 4 (10 bytes), db_name at 14 (18)
        image.seek(4)
        image.write(b"JANE".ljust(10, b"\0") + b"ZABRISKIE".ljust(18, b"\0"))
    assert nib.load(nifti / "t1.nii").header["data_type"].tobytes().strip(b"\0") == b"JANE"
    assert b"JANE" in (nifti / "t1.nii").read_bytes()[:348]
    code, out = run(export, bids)
    assert code == 0, out
    [placed] = bids.glob("sub-*/ses-*/anat/*_T1w.nii.gz")
    assert nib.load(placed).header["data_type"].tobytes().strip(b"\0") == b""
    assert found(bids, out) == []
    assert_valid_bids(bids)


@pytest.mark.realdata
def test_patient_ids_differing_only_in_case_are_a_label_collision_also_across_runs(tmp_path, run, ge_t1w):
    """sub-ABC and sub-abc are one folder on a case-insensitive disk: the second is refused, in the same run
    and in a later one (the guard of the dataset's subjects)."""
    export, bids = tmp_path / "export", tmp_path / "bids"
    ge_t1w(export, visit="V1", patient_id="ABC")
    ge_t1w(export, visit="V2", patient_id="abc")
    code, out = run(export, bids)
    assert code != 0 and "differs from sub-ABC only in case" in out, out
    assert sorted(p.name for p in bids.glob("sub-*")) == ["sub-ABC"]
    later = tmp_path / "later"
    ge_t1w(later, visit="V3", day="20240313", patient_id="Abc")
    code, out2 = run(later, bids)
    assert code != 0 and "differs from sub-ABC only in case" in out2, out2
    assert sorted(p.name for p in bids.glob("sub-*")) == ["sub-ABC"]
    assert found(bids, out + out2) == []
    assert_valid_bids(bids)


@pytest.mark.realdata
def test_ehr_columns_cells_and_ids_holding_a_visits_identifiers_are_not_written(tmp_path, run, ge_t1w):
    """A demographics table with the visit's PatientName in a column, its birth date (under --dates drop), a
    name word in one free-text cell, and a second table whose id column holds the name: the name column and
    the birth-date column are dropped with a note naming them, the cell is n/a and counted, the named rows go."""
    export, bids = tmp_path / "export", tmp_path / "bids"
    for visit in ("V1", "V2"):
        ge_t1w(export, visit=visit, folder=f"t1{visit}", birth_date="19630417")
    ehr = export / "EHR" / "2024" / "20240312"
    ehr.mkdir(parents=True)
    (ehr / "demographics.csv").write_text(
        "patient_id,visit_id,patient_name,birth,comment,score\n"
        "HOSP-7731,V1,Zabriskie^Jane,17.04.1963,seen by Jane,12\n"
        "HOSP-7731,V2,ZABRISKIE JANE,17.04.1963,fine,14\n")
    (ehr / "notes.csv").write_text("patient_id,note\nZabriskie^Jane,x\nHOSP-7731,y\n")
    code, out = run(export, bids, "--dates", "drop")
    assert "'patient_name' holds the identifiers" in out and "'birth' holds the identifiers" in out, out
    assert "'comment': 1 cell(s)" in out and "1 patient id(s) of the EHR tables hold a word" in out
    demographics = (bids / "phenotype" / "demographics.tsv").read_text().splitlines()
    assert demographics[0].split("\t") == ["participant_id", "session_id", "comment", "score"]
    assert [line.split("\t")[2] for line in demographics[1:]] == ["n/a", "fine"]
    assert (bids / "phenotype" / "notes.tsv").read_text().splitlines()[1:] == ["sub-HOSP7731\ty"]
    assert code != 0  # the named EHR ids are an error to correct upstream
    assert found(bids, out, dates=True) == []
    # a later day's table, read by a run that converts nothing: the keyed hashes still find the identifiers
    later = export / "EHR" / "2024" / "20240313"
    later.mkdir(parents=True)
    (later / "demographics.csv").write_text("patient_id,visit_id,patient_name,comment\n"
                                            "HOSP-7731,V2,Jane Zabriskie,called Zabriskie\n")
    code, out = run(export, bids, "--dates", "drop")
    assert "'patient_name' holds the identifiers" in out, out
    assert "0 of 2 visits new or changed" in out, out
    assert found(bids, out, dates=True) == []
    assert_valid_bids(bids)


@pytest.mark.realdata
def test_switching_dates_keep_to_drop_leaves_no_date_from_earlier_runs(tmp_path, run, ge_t1w):
    """A run under --dates keep, one under year, files as a keep run names them (a run record, a validator
    output, kept and replaced folders named by their time), the sidecar edited by hand, then a run under
    --dates drop: it renames and rewrites what the earlier runs wrote (the placed image and the edited
    sidecar stay: a placed image leaves only by a person's decision)."""
    export, bids = tmp_path / "export", tmp_path / "bids"
    ge_t1w(export)
    code, out = run(export, bids, "--dates", "keep")
    assert code == 0, out
    [sidecar] = bids.glob("sub-*/ses-*/anat/*_T1w.json")
    edited = json.loads(sidecar.read_text()) | {"Note": "checked"}
    sidecar.write_text(json.dumps(edited))
    code, out = run(export, bids, "--dates", "year")  # reconverted: the edited sidecar is kept aside
    assert code == 0, out
    [sidecar] = bids.glob("sub-*/ses-*/anat/*_T1w.json")
    sidecar.write_text(json.dumps(json.loads(sidecar.read_text()) | {"Note": "checked again"}))
    runs = bids / "code" / "bids-factory" / "runs"
    (runs / "run-20240101T101010Z-1.json").write_text(json.dumps({"finished_at": "2024-01-01T10:10:10+00:00"}))
    (runs / "validator-20240101T101010Z-1.json").write_text('{"issues": "checked on 2024-01-01"}')
    kept = bids / "code" / "bids-factory" / "kept" / "sub-HOSP7731_ses-V1" / "20240101T101010Z"
    kept.mkdir(parents=True)
    (kept / "note.txt").write_text("kept 2024-01-01")
    replaced = bids / "code" / "bids-factory" / "replaced" / "sub-HOSP7731_ses-V1" / "20240101T101010Z"
    replaced.mkdir(parents=True)  # an image a person's --apply-changes took out, set aside under its time
    (replaced / "old.txt").write_text("replaced")
    code, out = run(export, bids, "--dates", "drop")
    assert code == 0, out
    # a placed image and its hand-edited sidecar stay (issue 21); what earlier runs set aside is renamed
    assert sorted(p.name for p in kept.parent.iterdir()) == ["n00000001"]
    assert [p.name for p in replaced.parent.iterdir()] == ["n00000001"]
    assert sorted(p.name.split("-")[1] for p in runs.glob("run-*.json")) == [
        "n00000001", "n00000002", "n00000003", "n00000004"]
    assert found(bids, out, dates=True) == []
    left_by_year = re.compile(rb"(?<![0-9A-Za-z.])(19|20)\d{2} \d{2}:\d{2}|(DICOM|NIFTI|EHR)/(19|20)\d{2}/")
    texts = [p for p in bids.rglob("*") if p.is_file() and p.suffix in (".json", ".tsv", ".html", "") and
             "thumbnails" not in p.parts]
    assert [p.relative_to(bids).as_posix() for p in texts if left_by_year.search(p.read_bytes())] == []
    assert_valid_bids(bids)
