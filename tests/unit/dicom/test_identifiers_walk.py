"""The identifiers of a DICOM header come from a walk over its raw tags: pydicom's answer, a fraction of its time.

Every comparison is with the pydicom path ``identifiers.visit_identifiers`` used before the walk (and still
uses for what the walk leaves to it): the same VisitIdentifiers, the same IdentifiersUnreadable.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, MRImageStorage,
                         generate_uid)

from bids_factory.dicom import identifiers as dicom_identifiers
from bids_factory.privacy import visit_identifiers as identifiers
from bids_factory.dicom.identifiers import read_identifiers
from bids_factory.errors import IdentifiersUnreadable
from bids_factory.privacy.visit_identifiers import visit_identifiers
from conftest import GE_T1W, TRANSFER_SYNTAXES, XA30


def _pydicom_identifiers(path: Path):
    """The pydicom path: the header read whole, its identifiers (IdentifiersUnreadable when it is not whole)."""
    return identifiers._dataset_identifiers(identifiers._read_whole_header(path, "visit V1"))


def _by_pydicom(series, monkeypatch):
    """visit_identifiers of ``series`` with the raw walk switched off, or the exception it raises."""
    with monkeypatch.context() as patch:
        patch.setattr(identifiers, "read_identifiers", lambda path: None)
        try:
            return visit_identifiers(series, where="visit V1")
        except IdentifiersUnreadable as exc:
            return str(exc)


def _either(series):
    """visit_identifiers of ``series`` (the walk first), or the exception it raises."""
    try:
        return visit_identifiers(series, where="visit V1")
    except IdentifiersUnreadable as exc:
        return str(exc)


@pytest.mark.realdata
def test_a_visit_is_read_without_pydicom_and_gives_what_pydicom_gave(monkeypatch):
    series = [sorted(p for p in folder.iterdir() if p.is_file())
              for folder in sorted(XA30.iterdir()) if folder.is_dir()]
    series.append(sorted(GE_T1W.glob("*.dcm")))
    by_pydicom = _by_pydicom(series, monkeypatch)
    monkeypatch.setattr(identifiers, "_read_whole_header", lambda path, where: pytest.fail(f"pydicom read {path}"))
    walked = visit_identifiers(series, where="visit V1")
    assert walked == by_pydicom and walked.patient_id == "12343@hucheng"
    assert {"fruit", "xatest"} <= walked.names and "FRUIT" in walked.ids


def _file(tmp_path: Path, name: str, syntax=ExplicitVRLittleEndian, more: Dataset | None = None, **elements) -> Path:
    """A DICOM file of ``elements`` (keywords) and the elements of ``more`` (private ones too)."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, generate_uid()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    for element in more or ():
        ds.add(element)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = MRImageStorage, ds.SOPInstanceUID
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def _item(**elements) -> Dataset:
    item = Dataset()
    for keyword, value in elements.items():
        setattr(item, keyword, value)
    return item


def _lengths(ds: Dataset, undefined: bool) -> None:
    """Every sequence and item of ``ds`` written with an undefined length (delimiters) or a defined one."""
    for element in ds:
        if element.VR == "SQ":
            element.is_undefined_length = undefined
            for item in element.value:
                item.is_undefined_length_sequence_item = undefined
                _lengths(item, undefined)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian], ids=["explicit", "implicit"])
@pytest.mark.parametrize("undefined", [False, True], ids=["defined", "undefined"])
def test_a_person_name_two_sequences_deep_is_found(tmp_path, syntax, undefined, monkeypatch):
    deep = _item(PersonName="QUARTERMAINE^ELOISE", ContentSequence=[_item(PersonName="HALVORSEN^TRYGVE")])
    ds = Dataset()
    ds.ContentSequence = [_item(ContentSequence=[deep])]
    ds.OtherPatientIDsSequence = [_item(PatientID="OTHER-77", IssuerOfPatientID="X"), _item(PatientID="OTHER-78")]
    _lengths(ds, undefined)
    path = _file(tmp_path, "deep.dcm", syntax, PatientID="P-1", PatientName="DOE^JANE",
                 ContentSequence=ds.ContentSequence, OtherPatientIDsSequence=ds.OtherPatientIDsSequence)
    assert (b"\xff\xff\xff\xff" in path.read_bytes()) == undefined  # the lengths the case is about
    header = read_identifiers(path)
    assert header is not None and {"HALVORSEN^TRYGVE", "QUARTERMAINE^ELOISE", "DOE^JANE"} <= header.person_names
    assert header == _pydicom_identifiers(path)
    ids = visit_identifiers([[path]])
    assert {"halvorsen", "trygve", "quartermaine", "eloise", "doe", "jane"} <= ids.names
    assert {"P-1", "OTHER-77", "OTHER-78"} <= ids.ids and ids == _by_pydicom([[path]], monkeypatch)


@pytest.mark.parametrize("charset,name,words", [
    ("ISO_IR 100", "MÜLLER^JOSÉ", {"müller", "josé"}),
    (None, "Ångström^Zoë", {"ångström", "zoë"}),  # no (0008,0005): pydicom's default is ISO 8859-1 too
    ("ISO_IR 192", "Łukasiewicz^Jūratė", {"łukasiewicz", "jūratė"}),
])
def test_latin1_and_utf8_names_are_decoded_as_pydicom_decodes_them(tmp_path, monkeypatch, charset, name, words):
    elements = {"SpecificCharacterSet": charset} if charset else {}
    if charset is None:  # pydicom writes without a character set in ISO 8859-1: bytes as a Latin-1 site has them
        elements["PatientName"] = name.encode("latin-1")
    else:
        elements["PatientName"] = name
    path = _file(tmp_path, "named.dcm", PatientID="Pätient-1", OperatorsName=["SØRENSEN^ÅSE", "O^B"], **elements)
    if charset is None:  # pydicom stored the bytes value as given
        assert b"\xc5ngstr\xf6m" in path.read_bytes()
    header = read_identifiers(path)
    assert header is not None and header == _pydicom_identifiers(path)
    ids = visit_identifiers([[path]])
    assert words | {"sørensen", "åse"} <= ids.names and ids.patient_id == "Pätient-1"
    assert ids == _by_pydicom([[path]], monkeypatch)


def test_an_iso_2022_name_is_left_to_pydicom_and_still_found(tmp_path, monkeypatch):
    path = _file(tmp_path, "japanese.dcm", SpecificCharacterSet=["", "ISO 2022 IR 87"], PatientID="J-1",
                 PatientName="Yamada^Tarou=山田^太郎=やまだ^たろう")
    assert b"\x1b$B" in path.read_bytes()  # the escape sequence of ISO 2022 IR 87
    assert read_identifiers(path) is None
    ids = visit_identifiers([[path]])
    assert {"yamada", "tarou", "山田", "太郎"} <= ids.names and ids.patient_id == "J-1"
    # an escape sequence under a single character set is pydicom's to decode too
    path = _file(tmp_path, "escape.dcm", PatientName=b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B")
    assert read_identifiers(path) is None and "yamada" in visit_identifiers([[path]]).names


@pytest.mark.realdata
def test_big_endian_is_left_to_pydicom_and_still_read():
    big_endian = [p for p in TRANSFER_SYNTAXES.glob("*.dcm")
                  if pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID == ExplicitVRBigEndian]
    assert big_endian and read_identifiers(big_endian[0]) is None
    expected = pydicom.dcmread(big_endian[0], stop_before_pixels=True).PatientID
    assert expected and visit_identifiers([big_endian]).patient_id == expected


class _CountingFile:
    """A file whose reads are counted (the bytes the walk takes from the disk)."""

    def __init__(self, path, mode, counted: list[int]):
        self._file, self._counted = open(path, mode), counted

    def read(self, size=-1):
        data = self._file.read(size)
        self._counted.append(len(data))
        return data

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian], ids=["explicit", "implicit"])
def test_a_name_after_a_large_private_block_is_found_without_reading_the_pixel_data(tmp_path, monkeypatch, syntax):
    ds = Dataset()
    ds.add_new(0x00290010, "LO", "ACME MR 1.0")
    ds.add_new(0x00291010, "OB", bytes(300_000))  # an enhanced file's private block, past any first bytes
    ds.add_new(0x00291020, "OB", bytes(100_000))
    ds.RequestingPhysician = "PEMBERTON^AUGUSTA"  # (0032,1032), after the block
    ds.SharedFunctionalGroupsSequence = [_item(PerformingPhysicianName="NESTED^STAFF")]
    ds.PerFrameFunctionalGroupsSequence = [_item(PersonName=f"FRAME^{i}") for i in range(3)]  # never read
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1024, 1024, 16, 12, 11
    ds.SamplesPerPixel, ds.PixelRepresentation, ds.PhotometricInterpretation = 1, 0, "MONOCHROME2"
    ds.PixelData = bytes(2 * 1024 * 1024)
    path = _file(tmp_path, "enhanced.dcm", syntax, ds, PatientID="P-2")
    counted: list[int] = []
    monkeypatch.setattr(dicom_identifiers, "open", lambda p, mode: _CountingFile(p, mode, counted), raising=False)
    header = read_identifiers(path)
    assert header is not None and {"PEMBERTON^AUGUSTA", "NESTED^STAFF"} <= header.person_names
    assert not any(n.startswith("FRAME") for n in header.person_names)  # stopped at the per-frame groups
    assert sum(counted) < 64 * 1024 < path.stat().st_size - 2 * 1024 * 1024  # neither the block nor the pixels
    monkeypatch.undo()
    assert header == _pydicom_identifiers(path)


def test_a_private_element_is_a_name_only_where_pydicoms_private_dictionary_says_so(tmp_path, monkeypatch):
    """Implicit VR: a private element's VR is the private dictionary's under its creator (GEMS_GENIE_1
    (0009,xx40) is a PN); the same bytes under an unknown creator are not a name, for pydicom nor the walk."""
    ds = Dataset()
    ds.add_new(0x00090010, "LO", "GEMS_GENIE_1")
    ds.add_new(0x00091040, "PN", "GENIE^OPERATOR")
    ds.add_new(0x00110010, "LO", "UNKNOWN CREATOR")
    ds.add_new(0x00111040, "PN", "UNSEEN^BYPYDICOM")
    path = _file(tmp_path, "private.dcm", ImplicitVRLittleEndian, ds, PatientID="P-3")
    header = read_identifiers(path)
    assert header is not None and header == _pydicom_identifiers(path)
    assert "GENIE^OPERATOR" in header.person_names and "UNSEEN^BYPYDICOM" not in header.person_names
    assert visit_identifiers([[path]]) == _by_pydicom([[path]], monkeypatch)


def test_a_name_in_an_unknown_vr_is_left_to_pydicom(tmp_path):
    """Explicit VR with a PN element written as UN: pydicom reads it by the dictionary as a name."""
    path = _file(tmp_path, "un.dcm", OperatorsName="UNKNOWN^VRNAME", PatientID="P-4")
    written = b"\x08\x00\x70\x10PN\x0e\x00"  # (0008,1070) PN, 14 bytes; as UN: a 4-byte length
    path.write_bytes(path.read_bytes().replace(written, b"\x08\x00\x70\x10UN\x00\x00\x0e\x00\x00\x00"))
    assert read_identifiers(path) is None
    assert {"unknown", "vrname"} <= visit_identifiers([[path]]).names


def test_ids_and_birth_date_are_read_as_pydicom_reads_them(tmp_path, monkeypatch):
    path = _file(tmp_path, "ids.dcm", ImplicitVRLittleEndian, PatientID=" MRN-0042 ", AccessionNumber="ACC-9",
                 OtherPatientIDs=["OLD-1", "", "OLD-2 "], PatientBirthDate="19800102", PatientName="")
    header = read_identifiers(path)
    assert header == _pydicom_identifiers(path)
    assert header.patient_id == "MRN-0042" and header.ids == {"MRN-0042", "ACC-9", "OLD-1", "OLD-2"}
    ids = visit_identifiers([[path]])
    assert ids == _by_pydicom([[path]], monkeypatch) and "1980-01-02" in ids.dates


def _cut_points(data: bytes, step: int) -> list[int]:
    return sorted({*range(100, min(len(data), 4000), step), len(data) - 1, len(data) - 5})


@pytest.mark.realdata
@pytest.mark.parametrize("source", ["ge", "nested"])
def test_a_file_cut_short_anywhere_in_its_header_is_judged_as_pydicom_judges_it(tmp_path, monkeypatch, source):
    """Cut mid-element, mid-item, mid-sequence: the walk answers only for a header pydicom reads whole, with
    its values; otherwise pydicom gives today's answer (unreadable, named, or what it could read)."""
    if source == "ge":
        data, step = sorted(GE_T1W.glob("*.dcm"))[0].read_bytes(), 37
    else:
        deep = _item(PersonName="DEEP^NAME", ContentSequence=[_item(PersonName="DEEPER^NAME")])
        ds = Dataset()
        ds.ContentSequence = [_item(ContentSequence=[deep]), _item(PersonName="SECOND^ITEM")]
        _lengths(ds, undefined=True)
        data = _file(tmp_path, "whole.dcm", PatientID="P-5", PatientName="DOE^JOHN",
                     ContentSequence=ds.ContentSequence, OperatorsName="LAST^ELEMENT").read_bytes()
        step = 1  # every byte: between elements, in a tag, a length, a value, an item, a delimiter
    answered = 0
    for cut in _cut_points(data, step):
        path = tmp_path / "cut.dcm"
        path.write_bytes(data[:cut])
        header = read_identifiers(path)
        if header is not None:
            answered += 1
            assert header == _pydicom_identifiers(path), cut
        assert _either([[path]]) == _by_pydicom([[path]], monkeypatch), cut
    assert 0 < answered < len(_cut_points(data, step))


@pytest.mark.realdata
def test_a_header_cut_inside_a_value_is_unreadable_as_before(tmp_path):
    data = sorted(GE_T1W.glob("*.dcm"))[0].read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:data.find(b"\x20\x00\x32\x00") + 12])  # in ImagePositionPatient
    assert read_identifiers(tmp_path / "cut.dcm") is None
    with pytest.raises(IdentifiersUnreadable, match=r"identifiers of cut.dcm cannot be read \(its header is cut"):
        visit_identifiers([[tmp_path / "cut.dcm"]], where="visit V1")



def test_sequences_nested_past_reason_are_an_unreadable_header_not_a_crash(tmp_path):
    """Items inside items thousands deep (a crafted file): neither the walk nor pydicom overflows the run."""
    depth = 3000
    item = b"\x08\x00\x70\x10PN\x06\x00DEEP^N"  # (0008,1070) OperatorsName, explicit VR
    for _ in range(depth):  # (0040,A730) ContentSequence SQ of undefined length, one undefined length item
        item = (b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + item
                + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    path = _file(tmp_path, "deep.dcm", PatientID="P-7")
    path.write_bytes(path.read_bytes() + item)
    assert read_identifiers(path) is None
    with pytest.raises(IdentifiersUnreadable, match="RecursionError"):
        visit_identifiers([[path]], where="visit V1")
