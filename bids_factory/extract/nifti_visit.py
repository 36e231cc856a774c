"""Stage 2, NIfTI variant — read a visit exported as NIfTI + JSON into staging (no dcm2niix).

Layout: ``EXPORT/NIFTI/<yyyy>/<yyyymmdd>/<scan_research_id>/<name>.nifti`` (or ``.nii``/``.nii.gz``)
beside ``<name>.json`` and, for diffusion, ``<name>.bval``/``<name>.bvec``. A pair is formed only by
the same ``<name>`` in the same folder; nothing is guessed. The real format is read from the content
(gzip magic, NIfTI-1 or NIfTI-2 header in either byte order), never from the extension.

Every image is copied into staging byte for byte (a gzipped one as ``.nii.gz``, a plain one as ``.nii``,
gzipped only if it is placed) and read to its end. The JSON is staged as the hospital wrote it (plan.py keeps only allowed
fields before placing); its patient id is returned, never logged and never written in a problem.
The export is only read.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import nibabel as nib

from bids_factory.model import Problem, Series, SourceFile
from bids_factory.extract.staged_images import READ_ERRORS, is_gzipped, open_image

EXPORT_IMAGE_SUFFIXES = (".nifti.gz", ".nii.gz", ".nifti", ".nii")
_OTHER_SUFFIXES = {".json": "json", ".bval": "bval", ".bvec": "bvec"}
_UTF8_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
# an image without its JSON (a derived ADC or trace map, mostly): named, not placed, not a failure (both routes)
ORPHAN_IMAGE = "image without a JSON sidecar of the same name beside it: not converted"


@dataclass(frozen=True)
class NiftiVisitPart:
    """The series staged from the NIfTI files of one visit, with what could not be staged."""

    series: tuple[Series, ...]
    patient_ids: frozenset[str]  # raw values of the patient id field of the staged JSONs
    problems: tuple[Problem, ...]
    ignored_files: int  # neither image, JSON, .bval nor .bvec


STAGED_STEM = 120  # characters of an export file's name kept in its staged name (the index keeps them apart)
MAX_SIDECAR_DEPTH = 32  # objects/lists inside each other in a NIfTI export's JSON sidecar


class _Unusable(Exception):
    """A file that cannot be staged; the message is the reason reported (never a patient value)."""

    def __init__(self, message: str, fatal: bool = True):
        super().__init__(message)
        self.fatal = fatal


def stage_nifti_files(files: Sequence[SourceFile], staging: Path, patient_id_field: str = "PatientID"
                      ) -> NiftiVisitPart:
    """Pair, check and stage the NIfTI + JSON files of one visit into ``staging``."""
    staging.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[Path, str], dict[str, list[SourceFile]]] = {}
    ignored = 0
    for source in sorted(files, key=lambda f: f.relpath):
        kind = _classify(source.path.name)
        if kind is None:
            ignored += 1
            continue
        stem, what = kind
        groups.setdefault((source.path.parent, stem), {}).setdefault(what, []).append(source)

    series: list[Series] = []
    patient_ids: set[str] = set()
    problems: list[Problem] = []
    for index, ((_, stem), group) in enumerate(groups.items()):
        try:
            staged, patient_id = _stage_pair(group, staging, f"{index:04d}_{_UNSAFE.sub('_', stem)[:STAGED_STEM]}",
                                             patient_id_field)
        except _Unusable as exc:
            problems.append(Problem(_first(group).relpath, str(exc), fatal=exc.fatal))
            continue
        series.append(staged)
        if patient_id:
            patient_ids.add(patient_id)
    return NiftiVisitPart(series=tuple(series), patient_ids=frozenset(patient_ids),
                          problems=tuple(problems), ignored_files=ignored)


def _stage_pair(group: dict[str, list[SourceFile]], staging: Path, name: str, patient_id_field: str
                ) -> tuple[Series, str]:
    images, sidecars = group.get("image", []), group.get("json", [])
    bval, bvec = group.get("bval", []), group.get("bvec", [])
    for kind, found in (("images", images), ("JSON files", sidecars), (".bval files", bval), (".bvec files", bvec)):
        if len(found) > 1:
            raise _Unusable(f"{len(found)} {kind} share one name ({', '.join(s.path.name for s in found)}): "
                            "which belongs to which is not guessed; none is converted")
    if not images:
        what = "JSON sidecar" if sidecars else "b-values/b-vectors file"
        raise _Unusable(f"{what} without an image of the same name (.nifti, .nii or .nii.gz) beside it")
    if not sidecars:
        raise _Unusable(ORPHAN_IMAGE, fatal=False)  # as on the DICOM route: a note, the visit goes on
    if bool(bval) != bool(bvec):
        have, missing = (".bval", ".bvec") if bval else (".bvec", ".bval")
        raise _Unusable(f"image has a {have} but no {missing} file: not converted")
    image, sidecar = images[0], sidecars[0]
    text, data = _read_json(sidecar.path)
    target, staged_json = staging / name, staging / f"{name}.json"
    extras = [(source.path, staging / f"{name}{source.path.suffix.lower()}") for source in (*bval, *bvec)]
    try:
        target = _stage_image(image.path, target)
        staged_json.write_bytes(text)
        for source, extra in extras:
            shutil.copyfile(source, extra)
    except (_Unusable, OSError) as exc:
        for written in (staging / f"{name}.nii", staging / f"{name}.nii.gz", staged_json,
                        *(extra for _, extra in extras)):
            written.unlink(missing_ok=True)
        if isinstance(exc, _Unusable):
            raise
        raise _Unusable(f"cannot be staged ({type(exc).__name__}: {exc.strerror}): not converted") from None
    image_type = data.get("ImageType") or ()
    if isinstance(image_type, str):
        image_type = image_type.split("\\")
    raw_id = data.get(patient_id_field)
    patient_id = str(raw_id).strip() if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else ""
    return Series(
        nifti=target, sidecar=staged_json, extras=tuple(extra for _, extra in extras),
        series_number=_series_number(data.get("SeriesNumber")),
        series_description=str(data.get("SeriesDescription", "")),
        protocol_name=str(data.get("ProtocolName", "")),
        image_type=tuple(str(v) for v in image_type) if isinstance(image_type, (list, tuple)) else (),
        source_folders=(image.folder.relpath,),
    ), patient_id


def _classify(name: str) -> tuple[str, str] | None:
    """(stem, kind) of a file name, kind in image/json/bval/bvec; None for any other file."""
    lowered = name.lower()
    for suffix in EXPORT_IMAGE_SUFFIXES:
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], "image"
    for suffix, kind in _OTHER_SUFFIXES.items():
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], kind
    return None


def _nesting(data) -> int:
    """How many objects and lists lie inside each other in ``data`` (iterative: any depth is measured)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > MAX_SIDECAR_DEPTH:
                return deepest
            stack.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return deepest


def _read_json(path: Path) -> tuple[bytes, dict]:
    """The JSON's bytes (a UTF-8 byte order mark dropped) and content; only a JSON object is a sidecar."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise _Unusable(f"JSON sidecar cannot be read ({exc.strerror}): its image is not converted") from None
    text = text[len(_UTF8_BOM):] if text.startswith(_UTF8_BOM) else text
    try:
        data = json.loads(text.decode("utf-8"))
        if isinstance(data, dict) and _nesting(data) > MAX_SIDECAR_DEPTH:
            raise RecursionError
    except RecursionError:  # json.loads' own limit, or ours: later steps walk a sidecar's values
        raise _Unusable(f"JSON sidecar nested deeper than {MAX_SIDECAR_DEPTH} levels (no BIDS sidecar is): "
                        "its image is not converted") from None
    except UnicodeDecodeError:
        raise _Unusable("JSON sidecar is not UTF-8 text: its image is not converted") from None
    except json.JSONDecodeError as exc:  # the message gives a position, never the content
        raise _Unusable(f"invalid JSON sidecar ({exc.msg} at line {exc.lineno} column {exc.colno}): "
                        "its image is not converted") from None
    if not isinstance(data, dict):
        raise _Unusable("JSON sidecar is not a JSON object: its image is not converted")
    return text, data


def _stage_image(source: Path, stem: Path) -> Path:
    """Copy ``source`` byte for byte to ``<stem>.nii.gz`` (gzipped) or ``<stem>.nii`` (plain: gzipped
    later, only if it is placed, see :mod:`bids_factory.extract.staged_images`); check it fully; the copy."""
    try:
        gzipped = is_gzipped(source)
        target = stem.with_name(stem.name + (".nii.gz" if gzipped else ".nii"))
        with open_image(source) as handle:
            _nifti_version(handle.read(544))
        shutil.copyfile(source, target)
        with open_image(target) as handle:
            size = _drain(handle)
    except READ_ERRORS as exc:
        raise _Unusable(f"unreadable or corrupt image ({type(exc).__name__}: "
                        f"{getattr(exc, 'strerror', None) or exc}): not converted") from None
    try:
        header = nib.load(target).header
        shape, dtype = header.get_data_shape(), header.get_data_dtype()
        needed = int(header.get_data_offset()) + int(dtype.itemsize) * math.prod(int(n) for n in shape)
    except Exception as exc:  # nibabel raises many types for a bad header
        raise _Unusable(f"corrupt image: nibabel cannot read its header ({type(exc).__name__}): "
                        "not converted") from None
    if size < needed:
        raise _Unusable(f"corrupt image: voxel data cut short ({size} of {needed} bytes): not converted")
    return target


def _nifti_version(head: bytes) -> int:
    """1 or 2 for a single-file NIfTI header (either byte order, as nibabel tells); else :class:`_Unusable`."""
    if len(head) < 348:
        raise _Unusable(f"corrupt image: {len(head)} bytes, too short for a NIfTI header: not converted")
    if nib.Nifti2Header.may_contain_header(head):
        return 2
    if nib.Nifti1Header.may_contain_header(head):
        if head[344:348] == b"ni1\0":
            raise _Unusable("NIfTI-1 header of a .hdr/.img pair, not a single-file image: not converted")
        return 1
    raise _Unusable("not a NIfTI-1 or NIfTI-2 image (an Analyze header or other bytes): not converted")


def _drain(handle) -> int:
    """Read a (gzip) stream to its end, so a truncated or damaged file fails here; its length."""
    size = 0
    while chunk := handle.read(_CHUNK):
        size += len(chunk)
    return size


def _series_number(value) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _first(group: dict[str, list[SourceFile]]) -> SourceFile:
    for kind in ("image", "json", "bval", "bvec"):
        if group.get(kind):
            return group[kind][0]
    raise AssertionError("empty group")  # pragma: no cover
