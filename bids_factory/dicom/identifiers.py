"""The identifiers in one DICOM header, from a walk over its raw tags instead of a pydicom dataset.

The identifiers of a visit (:mod:`bids_factory.privacy.visit_identifiers`) need, per series, the value of every
person-name element (VR ``PN``) anywhere in the header, sequences included, and PatientID,
OtherPatientIDs (with the PatientID of each OtherPatientIDsSequence item), AccessionNumber and
PatientBirthDate. pydicom builds a dataset of every element and walks it (most of the identifiers time of
a visit); this walks tags and lengths and decodes only those values. It stops where pydicom's read stops
(the per-frame functional groups (5200,9230), or the pixel data after them) and reads the file in windows:
a long value it passes over (an enhanced file's private blocks) is never read.

A VR comes from the stream (explicit VR) or from pydicom's data dictionaries (implicit VR: the public
dictionary, then the private one under the element's private creator), as pydicom decides it
(:mod:`bids_factory.dicom.walker`, the raw walk both fast passes share), so the same elements are person
names and the same sequences are walked into. The walk answers only what pydicom
would answer; anything else answers ``None`` and the caller reads the file with pydicom: big endian,
deflate, no preamble, a character set other than the default, Latin-1 (``ISO_IR 100``) and UTF-8
(``ISO_IR 192``) or several of them (ISO 2022 escapes), a ``UN`` element pydicom would re-read as a name
or a sequence, tags out of order, lengths that do not add up, a header that ends before the walk does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bids_factory.dicom.walker import (HEAD_BYTES, ITEM, ITEM_END, SEQUENCE_END, UNDEFINED, UNKNOWN_CREATOR,
                                       Unreadable, dataset_start, element, element_vr, private_creator,
                                       undefined_is_sequence)

FIRST_WINDOW, WINDOW, _JUMP_WINDOW = 16384, HEAD_BYTES, 4096  # bytes read at a time: first, at most, after a jump
_CHARACTER_SET, _PATIENT_ID, _OTHER_PATIENT_IDS = 0x00080005, 0x00100020, 0x00101000
_ACCESSION_NUMBER, _PATIENT_BIRTH_DATE, _OTHER_PATIENT_IDS_SEQUENCE = 0x00080050, 0x00100030, 0x00101002
_STOP = 0x52009230  # PerFrameFunctionalGroupsSequence: no PN in any functional group macro; pixel data after
# the elements whose values are read, with the VR pydicom converts them by (another one in the stream: pydicom)
_READ = {_CHARACTER_SET: "CS", _PATIENT_ID: "LO", _OTHER_PATIENT_IDS: "LO", _ACCESSION_NUMBER: "SH",
         _PATIENT_BIRTH_DATE: "DA", _OTHER_PATIENT_IDS_SEQUENCE: "SQ"}
# (0008,0005) values read here, with the codec pydicom decodes them by (pydicom's default is ISO 8859-1)
_ENCODINGS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}


@dataclass(frozen=True)
class HeaderIdentifiers:
    """The identifiers of one DICOM header (raw values, in memory only), as pydicom's values give them."""

    patient_id: str = ""  # PatientID, stripped ("" when absent)
    ids: frozenset[str] = frozenset()  # each value of PatientID, OtherPatientIDs, AccessionNumber, and the
    #                                    PatientID of each OtherPatientIDsSequence item
    birth_dates: frozenset[str] = frozenset()  # PatientBirthDate, stripped, when not empty
    person_names: frozenset[str] = frozenset()  # each value of every PN element, sequences included


def read_identifiers(path: Path) -> HeaderIdentifiers | None:
    """The identifiers of the DICOM file at ``path`` from its raw header, or ``None`` when this walk cannot
    tell them as pydicom would (the caller then reads the file with pydicom)."""
    try:
        with open(path, "rb") as handle:
            walk = _Walk(handle)
            start = dataset_start(walk.read(0, min(FIRST_WINDOW, walk.size)))
            if start is None:
                return None
            return walk.header(*start)
    except (Unreadable, OSError, UnicodeDecodeError, RecursionError):  # nested beyond reason
        return None


class _Walk:
    """One walk over a file's header: the values it collects, and the window of bytes last read (the source
    of :func:`bids_factory.dicom.walker.element`)."""

    def __init__(self, handle):
        self._handle = handle
        self.size = os.fstat(handle.fileno()).st_size
        self._start, self._data = 0, b""
        self.patient_id, self.ids, self.birth_dates, self.names = "", [], [], []

    def at(self, position: int, count: int) -> tuple[bytes, int]:
        """(window, offset) with the ``count`` bytes at ``position`` in the window: the one last read, or a
        new one read from ``position``: twice as long as the last one when the walk goes on past it (up to
        ``WINDOW``), short after a jump over a long value (it may land on the stop tag)."""
        offset = position - self._start
        if offset < 0 or offset + count > len(self._data):
            if position + count > self.size:
                raise Unreadable  # past the end of the file: cut short
            goes_on = self._start <= position <= self._start + len(self._data)
            size = min(2 * len(self._data), WINDOW) if goes_on else _JUMP_WINDOW
            self._handle.seek(position)
            self._data, self._start, offset = self._handle.read(max(count, size)), position, 0
            if len(self._data) < count:
                raise Unreadable
        return self._data, offset

    def read(self, position: int, count: int) -> bytes:
        data, offset = self.at(position, count)
        return data[offset:offset + count]

    def header(self, position: int, implicit: bool) -> HeaderIdentifiers:
        if implicit and position + 6 <= self.size and all(0x40 < b < 0x5B for b in self.read(position + 4, 2)):
            raise Unreadable  # an explicit VR dataset under an implicit VR transfer syntax: pydicom switches
        self._dataset(position, None, implicit, "latin-1", "top")
        return HeaderIdentifiers(self.patient_id, frozenset(self.ids), frozenset(self.birth_dates),
                                 frozenset(self.names))

    def _dataset(self, position: int, end: int | None, implicit: bool, encoding: str, role: str) -> int:
        """Walk one dataset: the top level (``end`` None: until the stop tag or the end of the file) or an
        item (``end`` its end, or None: until its delimiter). ``role`` says which values are read here:
        "top", "other ids" (an OtherPatientIDsSequence item) or "" (any other item). Returns its end."""
        top = role == "top"
        previous, creators, decoded = -1, {}, False
        while end is None or position < end:
            if top and position == self.size:
                return position  # the file ends between two elements: pydicom reads it as whole too
            tag, vr, length, value_at = element(self, position, implicit)
            if top and tag >= _STOP:
                return position
            if tag == ITEM_END and end is None and not top:
                return value_at
            if tag <= previous or tag >> 16 in (0x0000, 0x0002, 0xFFFE):
                raise Unreadable  # out of order, repeated, command or meta group, stray item tag
            previous = tag
            kind = element_vr(tag, vr, length, creators)
            if vr == b"UN" and kind != "UN" and (kind in ("PN", "SQ") or tag in _READ):
                raise Unreadable  # pydicom re-reads this UN element as a name, a sequence, an identifier
            read = tag in _READ and (top or tag == _CHARACTER_SET or (role == "other ids" and tag == _PATIENT_ID))
            if read and kind != _READ[tag]:
                raise Unreadable  # pydicom would convert it by another VR
            if length == UNDEFINED:
                if not undefined_is_sequence(self, tag, vr, value_at):
                    raise Unreadable  # an undefined length value that is not a sequence (before the pixel data)
                position = self._sequence(value_at, None, implicit, encoding, tag, top)
                decoded = True
                continue
            value_end = value_at + length
            if value_end > self.size or (end is not None and value_end > end):
                raise Unreadable  # the value runs past its item or the file
            if tag == _CHARACTER_SET:
                if decoded:
                    raise Unreadable  # a value was decoded before the character set was known
                encoding = _encoding(self.read(value_at, length), encoding, top)
            elif kind == "SQ":
                self._sequence(value_at, value_end, implicit, encoding, tag, top)
                decoded = True
            elif kind == "PN":
                text = _decode(self.read(value_at, length).rstrip(b"\0 "), encoding)
                self.names.extend(v.strip() for v in text.split("\\") if v.strip())
                decoded = True
            elif read:
                self._keep(tag, self.read(value_at, length), encoding, top)
                decoded = True
            elif 0x0010 <= (tag & 0xFFFF) <= 0x00FF and tag >> 16 & 1:  # a private creator, for the VRs after it
                creators[tag] = private_creator(self.read(value_at, length)) if kind == "LO" else UNKNOWN_CREATOR
            position = value_end
        if position != end:
            raise Unreadable  # the last element runs past its item
        return position

    def _sequence(self, position: int, end: int | None, implicit: bool, encoding: str, tag: int,
                  top: bool) -> int:
        role = "other ids" if top and tag == _OTHER_PATIENT_IDS_SEQUENCE else ""
        while end is None or position < end:
            item, _, length, value_at = element(self, position, True)
            if item == SEQUENCE_END and end is None:
                return value_at
            if item != ITEM:
                raise Unreadable
            if length == UNDEFINED:
                position = self._dataset(value_at, None, implicit, encoding, role)
            elif end is not None and value_at + length > end:
                raise Unreadable
            else:
                position = self._dataset(value_at, value_at + length, implicit, encoding, role)
        if position != end:
            raise Unreadable
        return position

    def _keep(self, tag: int, value: bytes, encoding: str, top: bool) -> None:
        """PatientID, OtherPatientIDs, AccessionNumber, PatientBirthDate as pydicom converts them and
        identifiers.py reads them: text split at backslashes, each value stripped."""
        if tag == _PATIENT_BIRTH_DATE:  # DA: decoded as pydicom's default (ISO 8859-1), one value
            text = value.decode("latin-1").rstrip(" \0")
            if "\\" in text:
                raise Unreadable
            if text.strip():
                self.birth_dates.append(text.strip())
            return
        values = [v.rstrip("\0 ").strip() for v in _decode(value, encoding).split("\\")]
        if tag == _PATIENT_ID and top:
            if len(values) > 1:
                raise Unreadable  # identifiers.py reads a multi-valued PatientID as pydicom prints it
            self.patient_id = values[0]
        self.ids.extend(v for v in values if v)


def _decode(value: bytes, encoding: str) -> str:
    if b"\x1b" in value:
        raise Unreadable  # an escape sequence: pydicom decodes it by ISO 2022
    return value.decode(encoding)


def _encoding(value: bytes, inherited: str, top: bool) -> str:
    """The codec of a (0008,0005) value as pydicom's Dataset._character_set gives it."""
    name = value.decode("latin-1").rstrip(" \0")
    if "\\" in name or name not in _ENCODINGS:
        raise Unreadable  # several character sets, ISO 2022, another one, a misspelt one
    if not name and not top and inherited != "latin-1":
        raise Unreadable  # an empty value in an item: pydicom's default, not its parent's
    return _ENCODINGS[name]
