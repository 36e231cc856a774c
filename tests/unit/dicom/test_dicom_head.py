"""The header pass reads a DICOM file's first bytes, not the file: same values as pydicom, a fraction of its time."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, generate_uid

from bids_factory.extract import dicom_headers as extract
from bids_factory.dicom import head as dicom_head
from bids_factory.dicom.head import read_head
from bids_factory.extract.dicom_headers import _HEADER_TAG_NUMBERS, read_visit_headers
from bids_factory.model import SourceFile, VisitFolder
from conftest import GE_T1W, TRANSFER_SYNTAXES, add_series

pytestmark = pytest.mark.realdata


def test_what_the_first_bytes_cannot_answer_is_left_to_pydicom(tmp_path, monkeypatch):
    big_endian = [p for p in TRANSFER_SYNTAXES.glob("*.dcm")
                  if pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID == ExplicitVRBigEndian]
    assert big_endian and read_head(big_endian[0], _HEADER_TAG_NUMBERS) is None
    ds = pydicom.Dataset()
    ds.SOPInstanceUID, ds.PatientID, ds.SeriesNumber = generate_uid(), "P1", 3
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.save_as(tmp_path / "no-preamble.dcm", enforce_file_format=False)  # no preamble, no DICM
    assert read_head(tmp_path / "no-preamble.dcm", _HEADER_TAG_NUMBERS) is None
    ds.PatientID = "Pätient"  # a non-ASCII value: pydicom decodes it with the file's character set
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.save_as(tmp_path / "latin1.dcm", enforce_file_format=True)
    assert read_head(tmp_path / "latin1.dcm", _HEADER_TAG_NUMBERS) is None
    monkeypatch.setattr(dicom_head, "HEAD_BYTES", 300)  # the header runs past the bytes read
    assert read_head(next(GE_T1W.rglob("*.dcm")), _HEADER_TAG_NUMBERS) is None


def _sources(folder: Path) -> list[SourceFile]:
    visit = VisitFolder("DICOM", "20240101", folder, "DICOM/2024/20240101/V1")
    return [SourceFile(p, visit) for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "LICENSE"]


def test_the_visit_header_pass_does_not_parse_ordinary_files_with_pydicom(monkeypatch):
    sources = _sources(TRANSFER_SYNTAXES)
    with_pydicom = read_visit_headers(sources)
    parsed = []
    real = extract.read_partial

    def counted(handle, *args, **kwargs):
        parsed.append(Path(handle.name).name)
        return real(handle, *args, **kwargs)

    monkeypatch.setattr(extract, "read_partial", counted)
    quick = read_visit_headers(sources)
    assert len(parsed) == 1  # the big endian file only
    assert quick.patient_ids == with_pydicom.patient_ids and quick.series_names == with_pydicom.series_names
    assert quick.series_folders == with_pydicom.series_folders and quick.dicom_files == with_pydicom.dicom_files
    monkeypatch.setattr(extract, "read_head", lambda path, wanted: None)  # all through pydicom: the same answer
    parsed.clear()
    slow = read_visit_headers(sources)
    assert len(parsed) == len(sources)
    assert (slow.patient_ids, slow.series_names, slow.series_folders) == (
        quick.patient_ids, quick.series_names, quick.series_folders)


@pytest.mark.parametrize("cut", [200, 600, 3000])
def test_a_truncated_file_is_judged_as_pydicom_judges_it(tmp_path, monkeypatch, cut):
    source = next(GE_T1W.rglob("*.dcm"))
    (tmp_path / "cut.dcm").write_bytes(source.read_bytes()[:cut])
    quick = read_visit_headers(_sources(tmp_path))
    monkeypatch.setattr(extract, "read_head", lambda path, wanted: None)
    slow = read_visit_headers(_sources(tmp_path))
    assert (quick.dicom_files, quick.series_names, [p.reason for p in quick.problems]) == (
        slow.dicom_files, slow.series_names, [p.reason for p in slow.problems])


@pytest.mark.parametrize("cut", [142, 153, 941])
def test_a_file_cut_where_pydicom_fails_on_a_length_is_a_corrupt_file_not_a_crash(tmp_path, cut):
    """Cut in the file meta group length (pydicom: BytesLengthException) or in an element's length
    (struct.error): the file is named corrupt, the run goes on."""
    source = sorted(GE_T1W.glob("*.dcm"))[0]
    (tmp_path / "cut.dcm").write_bytes(source.read_bytes()[:cut])
    headers = read_visit_headers(_sources(tmp_path))
    assert not headers.dicom_files and [p.reason for p in headers.problems] == [
        f"corrupt DICOM file ({'BytesLengthException' if cut == 142 else 'error'}): not converted"]


def test_dcm2niix_reads_a_plain_visit_folder_as_it_is_and_links_files_only_when_it_must(export, tmp_path):
    """No link per file in staging for a visit that is one folder of DICOM files only; a visit over two
    export days, or with anything else in its folder, is linked file by file (dcm2niix sees only the visit)."""
    from bids_factory.discover.visits import discover
    from bids_factory.extract.dicom_visit import extract

    add_series(export, "20230301", "PLAIN", GE_T1W)
    add_series(export, "20230301", "TWODAYS", TRANSFER_SYNTAXES / "1.dcm", subfolder="ts")
    add_series(export, "20230302", "TWODAYS", TRANSFER_SYNTAXES / "2.dcm", subfolder="ts")
    hidden = add_series(export, "20230301", "HIDDEN", GE_T1W) / ".DS_Store"
    hidden.write_bytes(b"Finder")
    visits = {v.scan_research_id: v for v in discover(export).visits}
    staged = {}
    for name, visit in visits.items():
        extracted = extract(visit, tmp_path / name)
        staged[name] = ((tmp_path / name / "input").is_dir(), len(extracted.series))
    assert staged == {"PLAIN": (False, 1), "TWODAYS": (True, 2), "HIDDEN": (True, 1)}


@pytest.mark.parametrize("bug", [TypeError, KeyError, AttributeError])
def test_a_bug_while_reading_a_header_is_not_reported_as_a_corrupt_file(tmp_path, monkeypatch, bug):
    """A TypeError, KeyError or AttributeError out of the reader is a bug (ours or pydicom's): it must reach
    the visit's 'internal error' line, never tell a curator that a good file is corrupt."""
    source = sorted(GE_T1W.glob("*.dcm"))[0]
    (tmp_path / "one.dcm").write_bytes(source.read_bytes())

    def broken(path):
        raise bug("a bug")

    monkeypatch.setattr(extract, "_read_header", broken)
    with pytest.raises(bug):
        read_visit_headers(_sources(tmp_path))
