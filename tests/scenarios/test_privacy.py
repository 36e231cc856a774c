"""Privacy by allow-list: no identifier of a visit reaches any file of the dataset, by any field.

Visits are built from real scanner data with identifiers written into places a deny list misses:
the patient's name in StudyDescription and ProtocolName, staff names in OperatorsName,
ReferringPhysicianName and a PN element nested in a sequence, OtherPatientIDs, AccessionNumber, a
birth date, and a NIfTI export whose JSON carries IPP/MRN/name/birth-day keys and whose NIfTI header
``descrip`` holds the name and birth date.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import stat
import subprocess
from pathlib import Path

import dcm2niix
import nibabel as nib
import pydicom
import pytest
from pydicom.dataset import Dataset

from bids_factory.dates import DatePolicy
from bids_factory.privacy.deidentify import Deidentification, keep_allowed
from bids_factory.dates import date_spellings
from bids_factory.privacy.visit_identifiers import VisitIdentifiers, visit_identifiers
from bids_factory.run.pipeline import ConvertOptions, convert
from bids_factory.write.dataset_paths import SUBJECT_KEY, SUBJECTS_FILE
from conftest import GE_T1W, add_series, assert_valid_bids

DICOM_ID, NIFTI_ID = "HOSP-7731", "HOSP-8842"
SECRETS = [
    # DICOM visit: patient, staff (one nested in a sequence), other ids, accession, birth date
    DICOM_ID, "ZABRISKIE", "ODALYS", "QUARTERMAINE", "BENEDIKT", "VANTONGERLOO", "ISOLDE", "HALVORSEN",
    "TRYGVE", "OPID-77331", "ACC5550123", "19630417", "1963-04-17", "17.04.1963",
    # NIfTI visit: the JSON's identity keys and the values dcm2niix -ba n left in it
    NIFTI_ID, "IPP-00417723", "MRN-31337", "MUSTERMANN", "ERIKA", "02.05.1971", "1971-05-02", "19710502",
    "FRUIT",
]
SECRETS += [hashlib.sha256(raw.encode()).hexdigest() for raw in (DICOM_ID, NIFTI_ID)]  # unsalted hashes
_DATE = re.compile(r"(?<![0-9A-Za-z.])((19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])|(19|20)\d{2}-\d{2}-\d{2}|"
                   r"\d{1,2}\.\d{1,2}\.(19|20)\d{2})(?![0-9A-Za-z])")


def _dicom_visit(export: Path, day: str = "20240312", visit: str = "V1") -> Path:
    """The GE 3D T1w with identifiers where a deny list does not look."""
    folder = export / "DICOM" / day[:4] / day / visit / "t1"
    folder.mkdir(parents=True)
    for source in sorted(GE_T1W.glob("*.dcm")):
        ds = pydicom.dcmread(source)
        ds.PatientID, ds.PatientName, ds.PatientBirthDate = DICOM_ID, "ZABRISKIE^ODALYS", "19630417"
        ds.OtherPatientIDs, ds.AccessionNumber = "OPID-77331", "ACC5550123"
        ds.StudyDescription = "Brain MRI Zabriskie Odalys"
        ds.ProtocolName = "SAG SPGR Zabriskie"
        ds.ImageComments = "checked by Quartermaine"
        ds.OperatorsName, ds.ReferringPhysicianName = "QUARTERMAINE^BENEDIKT", "VANTONGERLOO^ISOLDE"
        step = Dataset()
        step.ScheduledPerformingPhysicianName = "HALVORSEN^TRYGVE"
        ds.ScheduledProcedureStepSequence = [step]
        ds.save_as(folder / source.name)
    (folder / "Zabriskie_Odalys_notes.txt").write_text("not an image")  # a PACS names files after patients
    return folder


def _nifti_visit(export: Path, day: str = "20240312", visit: str = "V2") -> Path:
    """The GE T1w as a hospital's NIfTI export (dcm2niix -ba n) with identity keys added."""
    folder = export / "NIFTI" / day[:4] / day / visit
    folder.mkdir(parents=True)
    subprocess.run([dcm2niix.bin, "-b", "y", "-ba", "n", "-z", "n", "-f", "t1", "-o", str(folder),
                    str(GE_T1W)], check=True, capture_output=True)
    sidecar = json.loads((folder / "t1.json").read_text())
    sidecar.update({"PatientID": NIFTI_ID, "IPP": "IPP-00417723", "MRN": "MRN-31337",
                    "patient_name": "Mustermann^Erika", "PatientBirthDay": "02.05.1971",
                    "StudyDescription": "Erika Mustermann follow-up"})
    (folder / "t1.json").write_text(json.dumps(sidecar))
    image = nib.load(folder / "t1.nii")
    image.header["descrip"] = b"Erika Mustermann 1971-05-02"
    nib.save(image, folder / "t1-with-descrip.nii")
    (folder / "t1.nii").unlink()
    (folder / "t1-with-descrip.nii").rename(folder / "t1.nifti")
    return folder


def _all_text(bids: Path) -> dict[str, bytes]:
    """Every file's bytes; for a .nii.gz its header (text fields included) and extension bytes."""
    out = {}
    for path in sorted(p for p in bids.rglob("*") if p.is_file()):
        if path.name.endswith(".nii.gz"):
            with gzip.open(path, "rb") as handle:
                out[str(path.relative_to(bids))] = handle.read(544)
        else:
            out[str(path.relative_to(bids))] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def privacy_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("privacy")
    export = work / "export"
    _dicom_visit(export)
    _nifti_visit(export)
    report = convert(ConvertOptions(export=export, bids=work / "bids"))
    return work, export, report


@pytest.mark.realdata
def test_no_identifier_reaches_any_file_of_the_dataset(privacy_run):
    work, _, report = privacy_run
    bids = work / "bids"
    assert not report.failed, [p.reason for p in report.problems]
    assert sorted(v.status for v in report.visits) == ["placed", "placed"]
    assert sorted(p.parts[-4] for p in bids.glob("sub-*/ses-*/anat/*_T1w.nii.gz")) == ["sub-HOSP7731", "sub-HOSP8842"]
    leaks = [f"{secret!r} in {name}" for name, data in _all_text(bids).items() for lowered in [data.lower()]
             for secret in SECRETS if secret.lower().encode() in lowered]
    assert leaks == []
    for image in bids.glob("sub-*/ses-*/anat/*.nii.gz"):
        header = nib.load(image).header
        assert all(header[field].tobytes().strip(b"\0") == b"" for field in ("aux_file", "intent_name"))
        assert b"Mustermann" not in header["descrip"].tobytes()
    assert_valid_bids(bids)


@pytest.mark.realdata
def test_no_file_of_the_dataset_names_a_folder_of_the_converting_host(privacy_run):
    """The records travel with the dataset: dcm2niix's log in a visit's record reads ``<staging>`` and export
    paths, never the host's folders (its mount points, the dataset's or the export's location)."""
    work, _, _ = privacy_run
    bids = work / "bids"
    assert [name for name, data in _all_text(bids).items() if str(work).encode() in data] == []
    logs = [line for record in (bids / "code/bids-factory/visits").glob("*.json")
            for line in json.loads(record.read_text())["converter_log"]]
    assert any(line.startswith("Convert ") and " as <staging>/output/" in line for line in logs), logs


@pytest.mark.realdata
def test_what_was_removed_is_counted_by_name_in_provenance(privacy_run):
    work, _, _ = privacy_run
    records = {p.name: json.loads(p.read_text()) for p in (work / "bids/code/bids-factory/visits").glob("*.json")}
    dicom = records["sub-HOSP7731_ses-V1.json"]["deidentification"]
    assert dicom["identifier_keys"] == {"ProtocolName": 1}  # free text typed at the scanner: dropped anyway
    assert dicom["site_keys"]["ImageComments"] == 1 and dicom["site_keys"]["StudyDescription"] == 1
    assert dicom["redacted_texts"] >= 1  # the protocol name in the series record and converter log
    nifti = records["sub-HOSP8842_ses-V2.json"]["deidentification"]
    for key in ("IPP", "MRN", "patient_name", "PatientBirthDay", "PatientID", "PatientName", "AccessionNumber"):
        assert nifti["dropped_keys"][key] == 1, key
    assert nifti["site_keys"]["StudyDescription"] == 1
    assert nifti["nifti_header_fields"] == {"descrip": 1}
    sidecar = json.loads(next((work / "bids").glob("sub-HOSP7731/ses-V1/anat/*_T1w.json")).read_text())
    assert "StudyDescription" not in sidecar and sidecar["SeriesDescription"] == "Accelerated SAG IR-SPGR"
    assert "EchoTime" in sidecar and "DeidentificationMethod" in sidecar


@pytest.mark.realdata
def test_subject_keys_are_hmacs_under_an_owner_only_key(privacy_run):
    work, _, _ = privacy_run
    bids = work / "bids"
    state = bids / "code" / "bids-factory"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((bids / SUBJECT_KEY).stat().st_mode) == 0o600
    assert len(bytes.fromhex((bids / SUBJECT_KEY).read_text().strip())) == 32
    subjects = json.loads((bids / SUBJECTS_FILE).read_text())
    assert set(subjects) == {"HOSP7731", "HOSP8842"}
    assert all(set(entry) == {"hmac_sha256"} for entry in subjects.values())


@pytest.mark.realdata
def test_legacy_sha256_subjects_are_recognised_and_upgraded(tmp_path):
    export, bids = tmp_path / "export", tmp_path / "bids"
    add_series(export, "20240105", "VISIT01", GE_T1W)  # PatientID FRUIT
    add_series(export, "20240105", "VISIT02", GE_T1W)
    (bids / SUBJECTS_FILE).parent.mkdir(parents=True)
    legacy = hashlib.sha256(b"FRUIT").hexdigest()
    (bids / SUBJECTS_FILE).write_text(json.dumps({"FRUIT": legacy}))
    report = convert(ConvertOptions(export=export, bids=bids, visits=frozenset({"VISIT01"}), validate=False))
    assert [v.status for v in report.visits] == ["placed"]
    entry = json.loads((bids / SUBJECTS_FILE).read_text())["FRUIT"]
    assert set(entry) == {"hmac_sha256"} and legacy not in (bids / SUBJECTS_FILE).read_text()
    # a legacy entry of ANOTHER raw id with the same label is still a collision
    (bids / SUBJECTS_FILE).write_text(json.dumps({"FRUIT": hashlib.sha256(b"F-RUIT").hexdigest()}))
    report = convert(ConvertOptions(export=export, bids=bids, visits=frozenset({"VISIT02"}), validate=False))
    assert [v.status for v in report.visits] == ["failed"]
    assert "two different PatientIDs give the same subject label" in report.visits[0].problems[0].reason


@pytest.mark.realdata
def test_dates_drop_leaves_no_calendar_date_and_year_keeps_the_year(tmp_path):
    export, bids = tmp_path / "export", tmp_path / "bids"
    _dicom_visit(export, day="20240312", visit="V1")
    ehr = export / "EHR" / "2024" / "20240312"
    ehr.mkdir(parents=True)
    (ehr / "visits.csv").write_text("patient_id,visit_date,score\nHOSP-7731,2024-03-11,27\n")
    report = convert(ConvertOptions(export=export, bids=bids, dates=DatePolicy("drop")))
    assert not report.failed, [p.reason for p in report.problems]
    found = [f"{m.group(0)} in {name}" for name, data in _all_text(bids).items()
             for m in _DATE.finditer(data.decode("latin-1"))]
    assert found == []
    scans = next(bids.glob("sub-*/ses-*/*_scans.tsv")).read_text().splitlines()
    assert scans[1].split("\t")[1:3] == ["n/a", "DICOM/V1"]
    assert_valid_bids(bids)
    # a changed policy is a changed setting: the visit is converted again
    report = convert(ConvertOptions(export=export, bids=bids, dates=DatePolicy("year")))
    assert [v.status for v in report.visits] == ["placed"]
    scans = next(bids.glob("sub-*/ses-*/*_scans.tsv")).read_text().splitlines()
    assert scans[1].split("\t")[1:3] == ["2024", "DICOM/2024/V1"]
    sessions = next(bids.glob("sub-*/*_sessions.tsv")).read_text().splitlines()
    assert sessions[1].split("\t")[2] == "2024"
    assert "2024-03-11" not in (bids / "phenotype" / "visits.tsv").read_text()


@pytest.mark.realdata
def test_a_visit_whose_identifiers_cannot_be_read_is_not_placed(tmp_path):
    export, bids = tmp_path / "export", tmp_path / "bids"
    folder = export / "DICOM" / "2024" / "20240312" / "V1"
    folder.mkdir(parents=True)
    for source in sorted(GE_T1W.glob("*.dcm"))[:3]:  # every header cut short after SeriesNumber
        data = source.read_bytes()
        (folder / source.name).write_bytes(data[:data.find(b"\x20\x00\x32\x00") + 12])
    report = convert(ConvertOptions(export=export, bids=bids, validate=False))
    assert [v.status for v in report.visits] == ["failed"]
    reason = report.visits[0].problems[0].reason
    assert "identifiers of 00001.dcm cannot be read" in reason and "not placed" in reason
    assert not list(bids.glob("sub-*"))


@pytest.mark.realdata
def test_a_series_is_read_from_its_first_file_whose_header_reads_whole(tmp_path):
    good = sorted(GE_T1W.glob("*.dcm"))[:2]
    data = good[0].read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:data.find(b"\x20\x00\x32\x00") + 12])
    ids = visit_identifiers([[tmp_path / "cut.dcm", good[1]]])
    assert ids.patient_id == "FRUIT" and "fruit" in ids.names


def test_identifiers_are_whole_words_of_every_spelling():
    ids = VisitIdentifiers(ids=frozenset({"AB-123"}), names=frozenset({"smith"}),
                           dates=frozenset(date_spellings("19800102")))
    assert ids.found_in("T1_SMITH") and ids.found_in(["x", {"y": "Smith^John"}]) and ids.found_in("ab-123 scan")
    assert not ids.found_in("Smithson T1") and not ids.found_in("xAB-123")
    assert all(ids.found_in(f"born {d}") for d in ("19800102", "1980-01-02", "02.01.1980", "02/01/1980"))
    assert ids.redact("Smith T1") == "[removed] T1"


def test_allow_list_keeps_bids_and_technical_keys_and_drops_the_rest():
    ids = VisitIdentifiers(names=frozenset({"quartermaine"}))
    record = Deidentification()
    sidecar = {"EchoTime": 0.003, "RepetitionTime": 2.3, "SeriesDescription": "T1 mprage", "TaskName": "rest",
               "InstitutionName": "Hospital", "HospitalField": "x", "TaskDescription": "Quartermaine's task",
               "IntendedFor": ["bids::sub-quartermaine/ses-1/func/x.nii.gz"], "SoftwareVersions": "XA30 2021-05-03",
               "AcquisitionDateTime": "2024-03-12T10:00:00"}
    kept = keep_allowed(sidecar, "func", "bold", ids, DatePolicy("drop"), record=record)
    assert kept == {"EchoTime": 0.003, "RepetitionTime": 2.3, "SeriesDescription": "T1 mprage", "TaskName": "rest",
                    "IntendedFor": ["bids::sub-quartermaine/ses-1/func/x.nii.gz"]}
    assert record.record()["dropped_keys"] == {"AcquisitionDateTime": 1, "HospitalField": 1}
    assert record.record()["identifier_keys"] == {"TaskDescription": 1}
    assert record.record()["site_keys"] == {"InstitutionName": 1}
    assert record.record()["date_keys"] == {"SoftwareVersions": 1}


@pytest.mark.realdata
def test_every_pn_element_is_an_identifier(tmp_path):
    source = sorted(GE_T1W.glob("*.dcm"))[0]
    ds = pydicom.dcmread(source)
    item = Dataset()
    item.ScheduledPerformingPhysicianName = "HALVORSEN^TRYGVE"
    ds.ScheduledProcedureStepSequence = [item]
    ds.OperatorsName = ["KOWALSKA^ANNA", "O^B"]
    ds.save_as(tmp_path / "x.dcm")
    ids = visit_identifiers([[tmp_path / "x.dcm"]], [{"PatientID": "P1", "MRN": "M-99", "PatientPosition": "HFS"}])
    assert {"halvorsen", "trygve", "kowalska", "anna", "fruit"} <= ids.names
    assert "M-99" in ids.ids and "HFS" not in ids.ids and ids.patient_id == "FRUIT"
    shutil.rmtree(tmp_path)


def test_a_field_with_a_bids_enum_is_checked_when_its_value_is_not_one_of_the_enum():
    """A hospital JSON may put anything in a constrained field: only an enum value escapes the check."""
    ids = VisitIdentifiers(names=frozenset({"quartermaine"}))
    record = Deidentification()
    sidecar = {"PhaseEncodingDirection": "j-", "MRAcquisitionType": "Quartermaine 3D", "RepetitionTime": 2.0,
               "IntendedFor": ["bids::sub-quartermaine/ses-1/func/x.nii.gz"]}
    kept = keep_allowed(sidecar, "func", "bold", ids, DatePolicy("keep"), record=record)
    assert kept == {"PhaseEncodingDirection": "j-", "RepetitionTime": 2.0,
                    "IntendedFor": ["bids::sub-quartermaine/ses-1/func/x.nii.gz"]}
    assert record.record()["identifier_keys"] == {"MRAcquisitionType": 1}


def test_free_text_typed_at_the_scanner_is_kept_only_when_asked_and_never_with_an_identifier():
    """ImageComments may hold a name nobody listed (no PN element holds it): not in a sidecar by default."""
    from bids_factory.privacy.deidentify import keep_allowed
    from bids_factory.privacy.identifier_match import VisitIdentifiers

    sidecar = {"EchoTime": 0.03, "SeriesDescription": "t1_mprage", "ImageComments": "motion; Dr Quinn informed",
               "StudyDescription": "Brain^Routine", "ProcedureStepDescription": "for Mrs Odalys"}
    known = VisitIdentifiers(patient_id="P1", ids=frozenset({"P1"}), names=frozenset({"odalys"}))
    assert keep_allowed(sidecar, "anat", "T1w", known) == {"EchoTime": 0.03, "SeriesDescription": "t1_mprage"}
    kept = keep_allowed(sidecar, "anat", "T1w", known, keep_site_fields=True)
    assert kept["ImageComments"] == "motion; Dr Quinn informed" and kept["StudyDescription"] == "Brain^Routine"
    assert "ProcedureStepDescription" not in kept  # holds a name of the visit

