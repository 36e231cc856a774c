"""The one raw walk over a DICOM Part 10 header: tags and lengths, no dataset built.

Both fast passes read through it: the header pass (:mod:`bids_factory.dicom.head`: a few top-level values
from the first bytes) and the identifier pass (:mod:`bids_factory.dicom.identifiers`: every person name,
sequences included). Here: where the dataset starts and whether it is implicit VR, the element header in
either encoding, the walk past a sequence of undefined length, and which VR pydicom gives an element (its
private rules mirrored: ``pydicom.hooks.raw_element_vr`` and ``filereader.data_element_generator``; hence the
upper bound on pydicom in pyproject.toml). Whatever the walk cannot answer as pydicom would raises
:class:`Unreadable`; the caller then reads the file with pydicom.
"""

from __future__ import annotations

import functools
import struct

from pydicom.datadict import DicomDictionary, dictionary_VR, private_dictionary_VR

HEAD_BYTES = 65536  # the first bytes: where nearly every file's header ends
IMPLICIT_LE, EXPLICIT_LE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
BIG_ENDIAN, DEFLATED = "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"
VRS = frozenset(v.encode() for v in ("AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB",
                                     "OD", "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM",
                                     "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"))
LONG_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"))
ITEM, ITEM_END, SEQUENCE_END, UNDEFINED = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD, 0xFFFFFFFF
TAG = struct.Struct("<HH")
_HEAD, _U32 = struct.Struct("<HHI"), struct.Struct("<I")
_META_END = 0x0002FFFF
UNKNOWN_CREATOR = object()  # a private creator whose value pydicom would not use as a name


class Unreadable(Exception):
    """The walk cannot give pydicom's answer for this file."""


class Bytes:
    """The bytes a walk reads: ``at(position, count)`` -> (buffer, offset of ``position`` in it). This one holds
    the first bytes of a file only: a walk past them is :class:`Unreadable`. The identifier pass reads a file
    in windows with the same interface."""

    def __init__(self, data: bytes) -> None:
        self.data, self.size = data, len(data)

    def at(self, position: int, count: int) -> tuple[bytes, int]:
        if position + count > self.size:
            raise Unreadable  # the value runs past the bytes read
        return self.data, position


def element(source, position: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
    """(tag, VR in the stream or ``None``, value length, position of the value) of the element at ``position``;
    item and delimiter tags (group FFFE) have no VR in either encoding, nor does any implicit VR element."""
    data, offset = source.at(position, 8)
    group, number, length = _HEAD.unpack_from(data, offset)
    if implicit or group == 0xFFFE:
        return group << 16 | number, None, length, position + 8
    vr = data[offset + 4:offset + 6]
    if vr in LONG_VRS:
        return group << 16 | number, vr, _U32.unpack_from(*source.at(position + 8, 4))[0], position + 12
    if vr not in VRS:
        raise Unreadable  # pydicom would guess (an implicit VR element, an unknown VR)
    return group << 16 | number, vr, length >> 16, position + 8


def top_level(source: Bytes, position: int, implicit: bool, wanted: frozenset[int], last: int) -> tuple[dict, int]:
    """The raw values of the ``wanted`` top-level elements from ``position`` until the first tag after
    ``last``, and that tag's position. A wanted element of undefined length is :class:`Unreadable`."""
    data, size, found = source.data, source.size, {}
    while True:
        if position >= size:
            if last == _META_END:
                return found, position  # a file meta group only
            raise Unreadable  # the header did not end within the bytes read
        if last == _META_END and position + 4 <= size and TAG.unpack_from(data, position)[0] << 16 > last:
            return found, position  # the meta group's end: the dataset's elements may be in another encoding
        tag, _, length, value_at = element(source, position, implicit)
        if tag > last:
            return found, position
        if length == UNDEFINED:
            if tag in wanted:
                raise Unreadable
            position = skip_undefined(source, value_at, implicit)
            continue
        position = value_at + length
        if position > size:
            raise Unreadable  # the value runs past the bytes read
        if tag in wanted:
            found[tag] = data[value_at:position]


def skip_undefined(source, position: int, implicit: bool) -> int:
    """Past a sequence (or encapsulated value) of undefined length: its items until the sequence delimiter."""
    while True:
        tag, _, length, position = element(source, position, True)
        if tag == SEQUENCE_END:
            return position
        if tag != ITEM:
            raise Unreadable
        if length != UNDEFINED:
            position += length
            continue
        while True:  # an item of undefined length: its elements until the item delimiter
            tag, _, length, value_at = element(source, position, implicit)
            if tag == ITEM_END:
                position = value_at
                break
            position = skip_undefined(source, value_at, implicit) if length == UNDEFINED else value_at + length


def dataset_start(data: bytes) -> tuple[int, bool] | None:
    """Where the dataset of a Part 10 file starts (after its preamble and file meta group) and whether it is
    implicit VR, from the file's first bytes; ``None`` unless it has a preamble and a little endian,
    not deflated transfer syntax within those bytes."""
    if data[128:132] != b"DICM":
        return None
    try:
        meta, position = top_level(Bytes(data), 132, False, frozenset({0x00020010}), _META_END)
        syntax = meta.get(0x00020010, b"").rstrip(b"\0 ").decode("ascii")
    except (Unreadable, struct.error, UnicodeDecodeError):
        return None
    if syntax in (BIG_ENDIAN, DEFLATED) or not syntax.startswith(IMPLICIT_LE):
        return None
    return position, syntax == IMPLICIT_LE


def element_vr(tag: int, vr: bytes | None, length: int, creators: dict) -> str:
    """The VR pydicom gives the element (pydicom.hooks.raw_element_vr): the stream's, else the public
    dictionary's, else the private dictionary's under the element's creator (``creators``: creator tag ->
    its value, as :func:`private_creator` gives it)."""
    if vr is not None and vr != b"UN":
        return vr.decode()
    if vr is not None and not tag >> 16 & 1:  # a public element in UN: its dictionary VR when short
        return public_vr(tag) or "UN" if length < 0xFFFF else "UN"
    public = public_vr(tag) if vr is None else None
    if public is not None:
        return public
    if tag >> 16 & 1:
        number = tag & 0xFFFF
        if 0x0010 <= number <= 0x00FF:
            return "LO"  # a private creator
        creator = creators.get((tag & 0xFFFF0000) | number >> 8, "") if number & 0xFF00 else ""
        if creator is UNKNOWN_CREATOR:
            raise Unreadable
        return private_vr(tag, creator) if creator else "UN"
    return "UL" if tag & 0xFFFF == 0 else "UN"


def undefined_is_sequence(source, tag: int, vr: bytes | None, value_at: int) -> bool:
    """Whether pydicom reads an undefined length value as a sequence (filereader.data_element_generator)."""
    if vr is not None:
        return vr == b"SQ"  # UN of undefined length: pydicom re-reads it as implicit VR: not here
    public = public_vr(tag)
    if public is not None:
        return public == "SQ"
    data, offset = source.at(value_at, 4)
    return TAG.unpack_from(data, offset) == (0xFFFE, 0xE000)  # its first item follows


def private_creator(value: bytes):
    """A private creator's value as pydicom looks it up in its private dictionary, or UNKNOWN_CREATOR."""
    text = value.decode("latin-1").rstrip("\0 ")
    if "\\" in text or not text.isascii():
        return UNKNOWN_CREATOR  # pydicom would not find it in its private dictionary as written here
    return text


@functools.lru_cache(maxsize=16384)
def public_vr(tag: int) -> str | None:
    """The VR of a public element (repeating groups included) in pydicom's dictionary, None if unknown."""
    entry = DicomDictionary.get(tag)
    if entry is not None:
        return entry[0]
    if tag >> 16 & 1:
        return None
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


@functools.lru_cache(maxsize=16384)
def private_vr(tag: int, creator: str) -> str:
    try:
        return private_dictionary_VR(tag, creator)
    except KeyError:
        return "UN"
