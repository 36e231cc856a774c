"""The first bytes of a DICOM file: the few header values a visit needs, without parsing the rest.

pydicom builds a full dataset of every element before the last tag we need, sequences included (10-20 ms a
file: as long as dcm2niix's whole conversion on a classic one-slice-per-file series). The needed values sit in
the first kilobytes of a Part 10 file, so this walks them with a tag/length reader and nothing more. Only
the common case is read here: a preamble, and a little endian transfer syntax, and ASCII values; anything
else (big endian, deflate, no preamble, odd lengths, values past the first bytes) answers ``None`` and the
caller reads the file with pydicom.
"""

from __future__ import annotations

import struct
from pathlib import Path

from pydicom.errors import BytesLengthException, InvalidDicomError

# What pydicom raises for a file it cannot read as DICOM: not one, cut short (also inside the file meta
# group: a length that does not fit, a value of the wrong length), malformed, sequences nested past reason.
# Not TypeError, KeyError or AttributeError: those are bugs (ours or pydicom's), never a user's corrupt file.
PYDICOM_READ_ERRORS = (InvalidDicomError, BytesLengthException, struct.error, EOFError, OSError, ValueError,
                       RecursionError)
HEAD_BYTES = 65536
_IMPLICIT_LE, _EXPLICIT_LE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
_BIG_ENDIAN, _DEFLATED = "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"
_LONG_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"))
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_TAG = struct.Struct("<HH")
_U16, _U32 = struct.Struct("<H"), struct.Struct("<I")


class _Unreadable(Exception):
    """The quick path does not apply to this file."""


def read_head(path: Path, wanted: dict[int, str]) -> dict[str, str] | None:
    """Values (text, stripped) of the ``wanted`` top-level tags (tag -> the name to answer with) of a DICOM
    Part 10 file, or ``None`` when the file is not one this reader handles (the caller then asks pydicom).
    A wanted tag absent from the file is absent from the answer."""
    with open(path, "rb") as handle:
        data = handle.read(HEAD_BYTES)
    start = dataset_start(data)
    if start is None:
        return None
    position, implicit = start
    try:
        found, _ = _walk(data, position, implicit=implicit, wanted=frozenset(wanted), last=max(wanted))
        return {wanted[tag]: value.rstrip(b"\0 ").decode("ascii").strip() for tag, value in found.items()}
    except (_Unreadable, struct.error, UnicodeDecodeError):
        return None


def dataset_start(data: bytes) -> tuple[int, bool] | None:
    """Where the dataset of a Part 10 file starts (after its preamble and file meta group) and whether it is
    implicit VR, from the file's first bytes; ``None`` unless it has a preamble and a little endian,
    not deflated transfer syntax within those bytes."""
    if data[128:132] != b"DICM":
        return None
    try:
        meta, position = _walk(data, 132, implicit=False, wanted=frozenset({0x00020010}), last=0x0002FFFF)
        syntax = meta.get(0x00020010, b"").rstrip(b"\0 ").decode("ascii")
    except (_Unreadable, struct.error, UnicodeDecodeError):
        return None
    if syntax in (_BIG_ENDIAN, _DEFLATED) or not syntax.startswith("1.2.840.10008.1.2"):
        return None
    return position, syntax == _IMPLICIT_LE


def _walk(data: bytes, position: int, implicit: bool, wanted: frozenset[int], last: int):
    """Top-level elements from ``position`` until a tag after ``last``: (wanted tag -> raw value, end)."""
    found = {}
    while position < len(data):
        group, element = _TAG.unpack_from(data, position)
        tag = group << 16 | element
        if tag > last:
            return found, position
        length, header = _length(data, position, implicit or group == 0xFFFE, group)
        if length == _UNDEFINED:
            if tag in wanted:
                raise _Unreadable
            position = _skip_undefined(data, position + header, implicit)
            continue
        end = position + header + length
        if end > len(data):
            raise _Unreadable  # the value runs past the bytes read
        if tag in wanted:
            found[tag] = data[position + header:end]
        position = end
    if last != 0x0002FFFF and position >= len(data):
        raise _Unreadable  # the header did not end within the bytes read
    return found, position


def _length(data: bytes, position: int, implicit: bool, group: int) -> tuple[int, int]:
    if implicit and group != 0x0002:
        return _U32.unpack_from(data, position + 4)[0], 8
    vr = data[position + 4:position + 6]
    if vr in _LONG_VRS:
        return _U32.unpack_from(data, position + 8)[0], 12
    if not vr.isalpha() or not vr.isupper():
        raise _Unreadable
    return _U16.unpack_from(data, position + 6)[0], 8


def _skip_undefined(data: bytes, position: int, implicit: bool) -> int:
    """Past a sequence (or encapsulated value) of undefined length: items until the sequence delimiter."""
    while True:
        if position + 8 > len(data):
            raise _Unreadable
        group, element = _TAG.unpack_from(data, position)
        tag = group << 16 | element
        length = _U32.unpack_from(data, position + 4)[0]
        position += 8
        if tag == _SEQUENCE_END:
            return position
        if tag != _ITEM:
            raise _Unreadable
        if length != _UNDEFINED:
            position += length
            continue
        while True:  # an item of undefined length: its elements until the item delimiter
            group, element = _TAG.unpack_from(data, position)
            if group << 16 | element == _ITEM_END:
                position += 8
                break
            length, header = _length(data, position, implicit, group)
            position = (_skip_undefined(data, position + header, implicit) if length == _UNDEFINED
                        else position + header + length)
