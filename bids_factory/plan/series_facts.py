"""What a neuroimager reads from one converted series before deciding what it is: its names (ReproIn
entities, words), its ImageType words, its geometry (volumes, orientation) and whether dcm2niix wrote
.bval/.bvec. Plain facts; the decisions are in :mod:`bids_factory.plan.classify`."""

from __future__ import annotations

import re
from dataclasses import dataclass

import nibabel as nib

from bids_factory.extract.staged_images import image_stem
from bids_factory.model import Series

REPROIN_ENTITIES = ("task", "acq", "ce", "dir", "rec", "run")
_VOXEL_AXES = {"i": 0, "j": 1, "k": 2}
_OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}
_REPROIN = re.compile(r"^(?:WIP\s+)?(?P<datatype>anat|func|dwi|fmap|perf)(?:-(?P<suffix>[A-Za-z0-9]+))?"
                      r"(?P<rest>(?:_[a-z]+-[A-Za-z0-9+]+)*)(?:__.*)?$")
_ENTITY = re.compile(r"_([a-z]+)-([A-Za-z0-9+]+)")
_REST = re.compile(r"^(rest|resting|restingstate|rs|rsfmri|rsfcmri|rsbold|fcmri|rsepi)\d*$")
_PHASE_WORDS = {"P", "PHASE", "PHASE MAP", "PHA"}


def tokens(text: str) -> list[str]:
    """Lower-case words of a series name: split on every non-alphanumeric character."""
    return [t for t in re.split(r"[^a-z0-9]+", text.lower()) if t]


def says_rest(name: str) -> bool:
    """The name says resting state: a word rest/resting/rs/rsfMRI/fcMRI (a word, never a substring)."""
    return any(_REST.match(t) for t in tokens(name))


def reproin(name: str) -> tuple[str, str, dict] | None:
    """(datatype, suffix, entities) of a ReproIn name such as ``func-bold_task-fa_run-1``; else None."""
    found = _REPROIN.match(name.strip())
    if not found:
        return None
    entities = {}
    for key, value in _ENTITY.findall(found.group("rest") or ""):
        if key in REPROIN_ENTITIES and not (key == "run" and not value.isdigit()):
            entities[key] = re.sub(r"[^A-Za-z0-9]", "", value)
    default_suffix = {"dwi": "dwi", "perf": "asl", "func": "bold"}.get(found.group("datatype"), "")
    return found.group("datatype"), found.group("suffix") or default_suffix, entities


def _geometry(series: Series) -> tuple[int, tuple[str, ...] | None, tuple | None]:
    """(volumes, anatomical direction of each voxel axis, voxel grid: shape and affine rounded to 0.01 mm)
    of the image; (1, None, None) without a readable header."""
    try:
        header = nib.load(str(series.nifti)).header
        shape, affine = header.get_data_shape(), header.get_best_affine()
        axes = tuple(nib.aff2axcodes(affine))
    except Exception:  # noqa: BLE001 - no readable header: one volume as far as we know
        return 1, None, None
    grid = (tuple(int(n) for n in shape[:3]), tuple(round(float(v), 2) for v in affine[:3].ravel()))
    return (int(shape[3]) if len(shape) > 3 else 1), axes, grid


def phase_encoding_label(direction: str, axes: tuple[str, ...] | None) -> str:
    """The ``dir-`` label, from where to where the phase encoding goes in the subject, of dcm2niix's
    PhaseEncodingDirection (a voxel axis of the image it wrote: ``j-`` goes towards lower j) and the
    image's orientation: ``j-`` is ``AP`` when j points anterior (dcm2niix's usual axial images), ``SI``
    when j points superior (a sagittal or coronal acquisition). Empty when either is unknown."""
    axis = _VOXEL_AXES.get(direction[:1])
    if axis is None or direction[1:] not in ("", "-") or not axes or axes[axis] not in _OPPOSITE:
        return ""
    towards = _OPPOSITE[axes[axis]] if direction.endswith("-") else axes[axis]
    return _OPPOSITE[towards] + towards


def words(value) -> set[str]:
    items = value if isinstance(value, list) else str(value or "").split("\\")
    return {str(v).strip().upper() for v in items if str(v).strip()}


def image_words(data: dict) -> set[str]:
    return words(data.get("ImageType")) | words(data.get("ImageTypeText"))


def number(data: dict, key: str) -> float | None:
    try:
        return float(data[key])
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class SeriesFacts:
    series: Series
    data: dict
    name: str
    words: set
    volumes: int
    axes: tuple[str, ...] | None  # where each voxel axis of the image points (nibabel's aff2axcodes)
    has_bvec: bool
    phase: bool
    reproin: tuple | None
    grid: tuple | None = None  # the voxel grid (shape, affine): two images on one grid cover the same space


def series_facts(series: Series, data: dict) -> SeriesFacts:
    names = [str(data.get("ProtocolName", "")), str(data.get("SeriesDescription", ""))]
    parsed = next((r for r in (reproin(n) for n in names) if r), None)
    name = " ".join(dict.fromkeys(n for n in names if n))
    image = words(data.get("ImageType"))
    phase = bool(image & _PHASE_WORDS) or (series.nifti is not None and image_stem(series.nifti).endswith("_ph"))
    has_bvec = {p.suffix for p in series.extras} >= {".bval", ".bvec"}
    volumes, axes, grid = _geometry(series)
    return SeriesFacts(series, data, name, set(tokens(name)), volumes, axes, has_bvec, phase, parsed, grid)
