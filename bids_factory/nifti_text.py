"""The free-text fields of a staged NIfTI header: ``descrip``, ``aux_file``, ``intent_name``, ``db_name``.

dcm2niix writes ``descrip`` as ``TE=..;Time=<time of day>;phase=..`` and leaves the others empty; a
hospital's NIfTI export may put anything there. A field is blanked (zero bytes) when the caller says
it must go (it holds an identifier of the visit, or a date the policy removes); the others, and every
voxel, stay byte for byte. Only staged copies (``.nii.gz`` in staging) are rewritten, never the export.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path
from typing import Callable

import nibabel as nib

TEXT_FIELDS = ("db_name", "descrip", "aux_file", "intent_name")


def _layout(header_class) -> dict[str, tuple[int, int]]:
    """(offset, length) of the text fields, from nibabel's own header layout (NIfTI-2 has no db_name)."""
    fields = header_class.template_dtype.fields
    return {name: (fields[name][1], fields[name][0].itemsize) for name in TEXT_FIELDS if name in fields}


_NIFTI1, _NIFTI2 = _layout(nib.Nifti1Header), _layout(nib.Nifti2Header)
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
    """The text fields of a gzipped NIfTI's header (decoded as Latin-1, up to the first NUL)."""
    with gzip.open(path, "rb") as handle:
        head = handle.read(540)
    _, fields = _fields(head)
    return {name: head[offset:offset + length].split(b"\0")[0].decode("latin-1")
            for name, (offset, length) in fields.items()}


def blank_text_fields(path: Path, must_go: Callable[[str], bool]) -> list[str]:
    """Blank every text field of ``path`` (a staged .nii.gz) for which ``must_go(text)``; their names."""
    texts = header_texts(path)
    blanked = [name for name, text in texts.items() if text and must_go(text)]
    if not blanked:
        return []
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(path, "rb") as source, open(tmp, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as target:
        header = bytearray(source.read(540))  # the header (and, for NIfTI-1, what follows: copied as is)
        _, fields = _fields(bytes(header))
        for name in blanked:
            offset, length = fields[name]
            header[offset:offset + length] = bytes(length)
        target.write(header)
        shutil.copyfileobj(source, target, _CHUNK)
    os.replace(tmp, path)
    return blanked
