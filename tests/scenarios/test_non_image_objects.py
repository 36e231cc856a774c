"""What a PACS or CD/DVD export carries beside the images (a DICOMDIR, presentation states, structured
reports, raw data) is recognised by its SOP Class UID, named and counted, never converted and never a
failure; a malformed SeriesNumber holds back that series only. Synthetic pydicom objects beside real data."""

from __future__ import annotations

import functools
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bids_factory.cli.main import main
from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import GE_T1W, add_series, assert_valid_bids

PRESENTATION_STATE = "1.2.840.10008.5.1.4.1.1.11.1"
STRUCTURED_REPORT = "1.2.840.10008.5.1.4.1.1.88.22"
RAW_DATA = "1.2.840.10008.5.1.4.1.1.66"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


@functools.cache
def _t1w() -> pydicom.Dataset:
    return pydicom.dcmread(GE_T1W / "00001.dcm", stop_before_pixels=True)


def _save(path: Path, sop_class: str, series_number="900", description="DEFAULT PS SERIES",
          series_uid: str | None = None) -> None:
    ds = pydicom.Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    t1w = _t1w()
    ds.PatientID, ds.PatientName, ds.StudyInstanceUID = t1w.PatientID, t1w.PatientName, t1w.StudyInstanceUID
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SeriesNumber = series_number if series_number.isdigit() else "77"
    ds.SeriesDescription, ds.Modality = description, "MR"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = sop_class, ds.SOPInstanceUID
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    if not series_number.isdigit():  # pydicom refuses to write a malformed IS: the scanner's bytes, patched in
        element = b"\x20\x00\x11\x00IS\x02\x00"
        path.write_bytes(path.read_bytes().replace(element + b"77", element + series_number.encode()))


def _dicomdir(path: Path) -> None:
    """A CD/DVD index: Media Storage SOP Class 1.2.840.10008.1.3.10, no SOPInstanceUID in its dataset."""
    ds = pydicom.Dataset()
    ds.FileSetID = "EXPORT"
    ds.DirectoryRecordSequence = []
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = "1.2.840.10008.1.3.10", generate_uid()
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.realdata
def test_a_cd_export_with_a_dicomdir_and_presentation_states_converts_with_exit_0(export, bids):
    visit = add_series(export, "20230301", "CD0001", GE_T1W)
    _dicomdir(visit / "DICOMDIR")
    # a presentation state sharing the T1w's series (as Philips' "DEFAULT PS SERIES" does): not a frame of it
    _save(visit / GE_T1W.name / "PS_0001.dcm", PRESENTATION_STATE, "10", series_uid=str(_t1w().SeriesInstanceUID))
    _save(visit / GE_T1W.name / "XX_0001.dcm", RAW_DATA, "10", "T1", series_uid=str(_t1w().SeriesInstanceUID))
    _save(visit / "SR" / "report.dcm", STRUCTURED_REPORT, "999", "Dose report")
    assert main(["convert", str(export), str(bids), "--no-validate"]) == 0
    [session] = bids.glob("sub-*/ses-CD0001")
    assert [p.name for p in session.glob("anat/*.nii.gz")] == [f"{session.parent.name}_ses-CD0001_T1w.nii.gz"]
    assert_valid_bids(bids)
    report = convert(ConvertOptions(export=export, bids=bids.parent / "again", validate=False))
    notes = {p.reason for p in report.problems}
    assert not [p for p in report.problems if p.fatal], report.problems
    assert "DICOMDIR (the index of a CD/DVD export): recognised, not read" in notes
    assert any(n.startswith("1 non-image DICOM object(s): presentation state (SeriesNumber 10 'DEFAULT PS SERIES')")
               for n in notes), notes
    assert any(n.startswith("1 non-image DICOM object(s): raw data (SeriesNumber 10") for n in notes), notes
    assert any(n.startswith("1 non-image DICOM object(s): structured report (SeriesNumber 999") for n in notes), notes
    assert not [o for v in report.visits for o in v.not_placed], "no non-image object is a series outcome"
    assert report.non_image_objects == 4 and report.record["non_image_objects"] == 4


@pytest.mark.realdata
def test_a_visit_of_non_image_objects_only_is_a_note_not_a_failure(export, bids):
    visit = export / "DICOM" / "2023" / "20230301" / "PS0001"
    visit.mkdir(parents=True)
    _dicomdir(visit / "DICOMDIR")
    _save(visit / "PS" / "ps.dcm", PRESENTATION_STATE)
    assert main(["convert", str(export), str(bids), "--no-validate"]) == 0
    report = convert(ConvertOptions(export=export, bids=bids.parent / "again", jobs=2,  # raised in a worker
                                    validate=False))
    [result] = report.visits
    assert result.status == "nothing-to-place" and report.non_image_objects == 2
    assert {p.fatal for p in report.problems} == {False}
    assert any("presentation state" in p.reason for p in report.problems)


@pytest.mark.realdata
def test_a_malformed_series_number_holds_back_that_series_only(export, bids):
    visit = add_series(export, "20230301", "GE0001", GE_T1W)
    _save(visit / "odd" / "odd.dcm", MR_IMAGE, "9a", "odd series")
    report = convert(ConvertOptions(export=export, bids=bids, validate=False))
    [result] = report.visits
    assert result.status == "placed" and result.placed == 1
    [held] = result.not_placed
    assert (held.status, held.series.series_description) == ("held-back", "odd series")
    assert held.reason.startswith("SeriesNumber '9a' is not a number (DICOM IS): its 1 file(s)")
    assert_valid_bids(bids)


@pytest.mark.realdata
def test_the_inventory_of_a_visit_of_non_image_objects_names_them_without_an_error(export):
    from bids_factory.run.inventory import take_inventory

    visit = export / "DICOM" / "2023" / "20230301" / "PS0001"
    visit.mkdir(parents=True)
    _save(visit / "PS" / "ps.dcm", PRESENTATION_STATE)
    inventory = take_inventory(export)
    [entry] = inventory.visits
    assert entry.error is None and entry.series == ()
    assert [p.reason for p in inventory.problems] == [
        "1 non-image DICOM object(s): presentation state (SeriesNumber 900 'DEFAULT PS SERIES'); not an image, "
        "nothing to convert"]


def test_a_dicomdir_is_recognised_from_its_file_meta_and_read_no_further(tmp_path, monkeypatch):
    from bids_factory.extract import dicom_headers
    from bids_factory.model import SourceFile, VisitFolder

    _dicomdir(tmp_path / "DICOMDIR")

    def refuse(path, *args, **kwargs):
        raise AssertionError(f"{path} read past its file meta group")

    monkeypatch.setattr(dicom_headers, "_read_header", refuse)
    folder = VisitFolder("DICOM", "20230301", tmp_path, "DICOM/2023/20230301/CD0001")
    headers = dicom_headers.read_visit_headers([SourceFile(tmp_path / "DICOMDIR", folder)])
    assert headers.dicom_files == () and headers.non_image_objects == 1
    assert [(p.reason, p.fatal) for p in headers.problems] == [
        ("DICOMDIR (the index of a CD/DVD export): recognised, not read", False)]
