"""The first bytes of a DICOM file: the few header values a visit needs, without parsing the rest.

pydicom builds a full dataset of every element before the last tag we need, sequences included (10-20 ms a
file: as long as dcm2niix's whole conversion on a classic one-slice-per-file series). The needed values sit in
the first kilobytes of a Part 10 file, so this walks them with the raw walk of :mod:`bids_factory.dicom.walker`
and nothing more. Only the common case is read here: a preamble, and a little endian transfer syntax, and
ASCII values; anything else (big endian, deflate, no preamble, odd lengths, values past the first bytes)
answers ``None`` and the caller reads the file with pydicom.
"""

from __future__ import annotations

import struct
from pathlib import Path

from pydicom.errors import BytesLengthException, InvalidDicomError

from bids_factory.dicom.walker import HEAD_BYTES, Bytes, Unreadable, dataset_start, top_level

# What pydicom raises for a file it cannot read as DICOM: not one, cut short (also inside the file meta
# group: a length that does not fit, a value of the wrong length), malformed, sequences nested past reason.
# Not TypeError, KeyError or AttributeError: those are bugs (ours or pydicom's), never a user's corrupt file.
PYDICOM_READ_ERRORS = (InvalidDicomError, BytesLengthException, struct.error, EOFError, OSError, ValueError,
                       RecursionError)


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
        found, _ = top_level(Bytes(data), position, implicit, frozenset(wanted), max(wanted))
        return {wanted[tag]: value.rstrip(b"\0 ").decode("ascii").strip() for tag, value in found.items()}
    except (Unreadable, UnicodeDecodeError):
        return None
