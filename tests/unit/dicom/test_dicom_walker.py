"""The one raw walk (``bids_factory.dicom.walker``) under both fast passes gives pydicom's answer on the shared
files: each sampled file is read once by pydicom (as the identifier pass's fallback reads it) and compared
with the header pass's values and the identifier pass's identifiers."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRBigEndian

from bids_factory.dicom.head import read_head
from bids_factory.dicom.identifiers import read_identifiers
from bids_factory.dicom.walker import Bytes, Unreadable, dataset_start, top_level
from bids_factory.extract import dicom_headers as extract
from bids_factory.extract.dicom_headers import _HEADER_TAG_NUMBERS, _HEADER_TAGS
from bids_factory.privacy import visit_identifiers as identifiers
from conftest import SHARED_DICOM, TRANSFER_SYNTAXES, XA30


def _header_values(dataset) -> dict[str, str]:
    """The header pass's tags as text, from a pydicom dataset."""
    values = {}
    for tag in _HEADER_TAGS:
        if tag in dataset:
            value = dataset[tag].value
            multi = isinstance(value, (list, tuple, pydicom.multival.MultiValue))
            values[dataset[tag].keyword] = ("\\".join(str(v) for v in value) if multi
                                            else "" if value is None else str(value))
    return values


def _shared_files() -> list[Path]:
    """Every file of the XA30 visit and of the transfer syntax set; of the other sets (thousands of
    one-slice files, the same header layout in each series) the first, the last and up to 24 spread evenly
    over each folder (a folder holding several series, as Philips ``In/``, gives each of them files)."""
    files = []
    for folder in sorted({p.parent for p in SHARED_DICOM.rglob("*") if p.is_file()}):
        members = sorted(p for p in folder.iterdir()
                         if p.is_file() and p.name not in ("LICENSE", "README.md") and p.suffix != ".txt")
        if XA30 in folder.parents or folder == TRANSFER_SYNTAXES:
            files += members
        elif members:
            files += sorted({members[round(i * (len(members) - 1) / 24)] for i in range(25)})
    return files


@pytest.mark.realdata
def test_both_walks_give_pydicoms_answer_on_the_shared_files():
    """Siemens XA30 enhanced and classic, GE, Philips, Toshiba, nine transfer syntaxes. The header pass answers
    for nearly all files (what it leaves, big endian and tags past its first bytes as in the XA30 Phoenix
    report, the pass reads with pydicom); the identifier walk for every file but the big endian one."""
    files = _shared_files()
    head_left, walk_left = [], []
    for path in files:
        dataset = identifiers._read_whole_header(path, "visit V1")  # up to the per-frame groups
        values = read_head(path, _HEADER_TAG_NUMBERS)
        if values is None:
            head_left.append(path)
        else:
            assert values == _header_values(dataset), path
        header = read_identifiers(path)
        if header is None:
            walk_left.append(path)
        else:
            assert header == identifiers._dataset_identifiers(dataset), path
    big_endian = [p for p in TRANSFER_SYNTAXES.glob("*.dcm")
                  if pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID == ExplicitVRBigEndian]
    assert walk_left == big_endian and len(files) > 500
    assert len(head_left) <= 0.05 * len(files) and set(big_endian) <= set(head_left), head_left
    for path in head_left:  # the header pass reads them with pydicom: the same values
        header = extract._read_header(path)
        assert {k: header.get(k) for k in ("SeriesNumber", "PatientID", "SOPInstanceUID")} == {
            k: pydicom.dcmread(path, stop_before_pixels=True).get(k)
            for k in ("SeriesNumber", "PatientID", "SOPInstanceUID")}, path
    names = {n for p in files if (h := read_identifiers(p)) for n in h.person_names}
    assert {"FRUIT", "XAtest_sub-July11", "psm", "FA191122", "stc_test", "dicom"} <= names  # every vendor's


def _part10(meta: bytes, dataset: bytes) -> bytes:
    return bytes(128) + b"DICM" + meta + dataset


def _explicit(group: int, number: int, vr: bytes, value: bytes) -> bytes:
    head = group.to_bytes(2, "little") + number.to_bytes(2, "little") + vr
    if vr in (b"OB", b"SQ", b"UN", b"UT"):
        return head + bytes(2) + len(value).to_bytes(4, "little") + value
    return head + len(value).to_bytes(2, "little") + value


def _implicit(group: int, number: int, value: bytes) -> bytes:
    return group.to_bytes(2, "little") + number.to_bytes(2, "little") + len(value).to_bytes(4, "little") + value


def test_the_meta_group_ends_where_the_implicit_dataset_starts():
    """The meta group is explicit VR; the dataset after it implicit: the walk of the meta group stops at the
    first tag past it without reading that element as explicit VR (its bytes are no VR)."""
    meta = _explicit(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2\0")
    after = _implicit(0x0020, 0x000D, b"1.2.4\0")
    data = _part10(meta, _implicit(0x0008, 0x0018, b"1.2.3\0") + _implicit(0x0010, 0x0020, b"P-17") + after)
    assert dataset_start(data) == (132 + len(meta), True)
    found, end = top_level(Bytes(data), 132 + len(meta), True, frozenset({0x00100020}), 0x00100020)
    assert found == {0x00100020: b"P-17"} and end == len(data) - len(after)
    with pytest.raises(Unreadable):  # the header does not end within the bytes: pydicom reads the file
        top_level(Bytes(data[:-len(after)]), 132 + len(meta), True, frozenset({0x00100020}), 0x00100020)
    assert dataset_start(_part10(_explicit(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.2\0"), b"")) is None


def test_a_sequence_of_undefined_length_is_walked_past_and_a_value_past_the_bytes_is_unreadable():
    item = _explicit(0x0008, 0x0100, b"SH", b"T1") + b"\xfe\xff\x0d\xe0" + bytes(4)
    sequence = (b"\x08\x00\x15\x11SQ" + bytes(2) + b"\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + item
                + b"\xfe\xff\xdd\xe0" + bytes(4))
    data = sequence + _explicit(0x0010, 0x0020, b"LO", b"P-18") + _explicit(0x0020, 0x000D, b"UI", b"1.2\0")
    found, _ = top_level(Bytes(data), 0, False, frozenset({0x00100020}), 0x00100020)
    assert found == {0x00100020: b"P-18"}
    with pytest.raises(Unreadable):  # cut inside the wanted value
        top_level(Bytes(data[:len(sequence) + 10]), 0, False, frozenset({0x00100020}), 0x00100020)
    with pytest.raises(Unreadable):  # a sequence wanted whole is pydicom's
        top_level(Bytes(data), 0, False, frozenset({0x00081115}), 0x00100020)
