"""The text fields of a staged NIfTI header: every one of NIfTI-1 (``data_type``, ``db_name``, ``descrip``,
``aux_file``, ``intent_name``) and of NIfTI-2 (``descrip``, ``aux_file``, ``intent_name``).

dcm2niix writes ``descrip`` as ``TE=..;Time=<time of day>;phase=..`` and leaves the others empty; a
hospital's NIfTI export may put anything there. ``data_type`` and ``db_name`` (ANALYZE 7.5 leftovers
that NIfTI-1 says are unused) are blanked (zero bytes) whatever they hold: nothing reads them. The others
are blanked when the caller says they must go (an identifier of the visit, or a date the policy removes);
the rest, and every voxel, stay byte for byte. A header extension is blanked whatever it holds. Only staged copies (in
staging) are rewritten, never the export.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Callable

import nibabel as nib

from bids_factory.extract.staged_images import gzip_file, is_gzipped, open_image

TEXT_FIELDS = ("data_type", "db_name", "descrip", "aux_file", "intent_name")
UNUSED_FIELDS = frozenset({"data_type", "db_name"})  # NIfTI-1: "unused", always blanked


def _layout(header_class) -> dict[str, tuple[int, int]]:
    """(offset, length) of the text fields, from nibabel's own header layout (NIfTI-2 has no db_name)."""
    fields = header_class.template_dtype.fields
    return {name: (fields[name][1], fields[name][0].itemsize) for name in TEXT_FIELDS if name in fields}


_NIFTI1, _NIFTI2 = _layout(nib.Nifti1Header), _layout(nib.Nifti2Header)
_HEAD = 544  # the NIfTI-2 header and the extension flag
_CHUNK = 1 << 20


def _fields(head: bytes) -> tuple[int, dict[str, tuple[int, int]]]:
    size = int.from_bytes(head[:4], "little")
    if size not in (348, 540):
        size = int.from_bytes(head[:4], "big")
    if size == 348:
        return 348, _NIFTI1
    if size == 540:
        return 540, _NIFTI2
    raise ValueError("not a NIfTI-1 or NIfTI-2 header")


def header_texts(path: Path) -> dict[str, str]:
    """The text fields of a staged NIfTI's header, plain or gzipped (Latin-1, up to the first NUL)."""
    with open_image(path) as handle:
        head = handle.read(540)
    _, fields = _fields(head)
    return {name: head[offset:offset + length].split(b"\0")[0].decode("latin-1")
            for name, (offset, length) in fields.items()}


def blank_text_fields(path: Path, must_go: Callable[[str], bool]) -> list[str]:
    """Blank every text field of ``path`` (a staged image) for which ``must_go(text)``, and its header
    extensions (an allow-list keeps none: a NIfTI export's extension may hold a whole DICOM header);
    the names of what was blanked (``extensions`` for the extensions).

    A plain file is patched in place (the header's bytes only); a gzipped one is written again. The
    extensions are zeros up to the voxel data, whatever their size (they are never read)."""
    with open_image(path) as handle:
        head = handle.read(_HEAD)
    size, fields = _fields(head)
    blanked = [name for name, (offset, length) in fields.items()
               if (text := head[offset:offset + length].split(b"\0")[0].decode("latin-1"))
               and (name in UNUSED_FIELDS or must_go(text))]
    extensions = _extensions(head, size)  # (offset, length) of the flag and the extensions, or None
    if extensions is not None:
        blanked.append("extensions")
    if not blanked:
        return []
    texts = [fields[name] for name in blanked if name != "extensions"]
    if is_gzipped(path):
        with open_image(path) as source:
            header = bytearray(source.read(size))
            for offset, length in texts:
                header[offset:offset + length] = bytes(length)
            zeros = _skip(source, extensions[1]) if extensions else 0
            gzip_file(_Joined(bytes(header) + bytes(zeros), source), path)
    else:
        with open(path, "r+b") as target:
            for offset, length in texts + ([extensions] if extensions else []):
                target.seek(offset)
                for start in range(0, length, _CHUNK):
                    target.write(bytes(min(_CHUNK, length - start)))
    return blanked


def _skip(stream, length: int) -> int:
    """Read past ``length`` bytes of ``stream``; how many there were."""
    skipped = 0
    while skipped < length and (chunk := stream.read(min(_CHUNK, length - skipped))):
        skipped += len(chunk)
    return skipped


def _extensions(head: bytes, size: int) -> tuple[int, int] | None:
    """(offset, length) of the extension flag and extensions after a header of ``size`` bytes, up to the
    voxel offset, when the flag says there are extensions; else None."""
    if len(head) < size + 4 or head[size] == 0:
        return None
    order = "little" if int.from_bytes(head[:4], "little") == size else "big"
    if size == 348:  # vox_offset: float32 at byte 108 in NIfTI-1, int64 at byte 168 in NIfTI-2
        voxels = int(struct.unpack("<f" if order == "little" else ">f", head[108:112])[0])
    else:
        voxels = int.from_bytes(head[168:176], order)
    return size, max(voxels, size + 4) - size


class _Joined:
    """A stream: ``first`` bytes, then the rest of ``stream``."""

    def __init__(self, first: bytes, stream):
        self._first, self._stream = first, stream

    def read(self, size: int = -1) -> bytes:
        if self._first:
            chunk, self._first = self._first, b""
            return chunk
        return self._stream.read(size)
