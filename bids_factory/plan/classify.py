"""Pre-matching step of plan: what each converted series IS, from its acquisition metadata first and
its name second, written as derived keys the dcm2bids engine matches on.

The dcm2bids criteria compare one sidecar field at a time; some facts a neuroimager uses cannot be
said that way (the number of volumes, whether dcm2niix wrote a .bval/.bvec, the ReproIn name's
entities, whether the name says rest, whether a field-map magnitude has its phase image in the
visit, whether two images are two reconstructions of one acquisition). :func:`classify_visit`
works them out and :func:`annotate` adds them to the in-memory copy of each sidecar dcm2bids
matches (``Sidecar.data``, never ``Sidecar.origData``: a placed sidecar never carries them):

``BidsFactoryClass``
    ``<datatype>/<suffix>`` (``anat/T1w``, ``func/bold``, ``fmap/phasediff``, ``perf/asl``...),
    ``derived`` (scanner-computed map), ``localizer`` or ``unknown``.
``BidsFactoryHold``
    Why the shipped default does not place it although it knows what it is (``no task label``,
    a field-map magnitude without its phase...). Absent when there is nothing to hold.
``BidsFactoryEntities``
    The entities derived for its name, e.g. ``task-fa_dir-AP_run-1`` (absent when none).
``BidsFactoryVolumes``
    Number of volumes of the image (4th dimension of the NIfTI header; 1 for a 3D image).

A site heuristic may match on these keys too (and add what the data do not say, e.g. a task label).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field

import nibabel as nib

from bids_factory.config.heuristic import CLASSIFIED_KEY_PREFIX as KEY_PREFIX
from bids_factory.model import Series
from bids_factory.extract.staged_images import image_stem

log = logging.getLogger(__name__)

REPROIN_ENTITIES = ("task", "acq", "ce", "dir", "rec", "run")
# BIDS allows rec- in these datatypes (not in fmap)
_REC_DATATYPES = ("anat", "func", "dwi", "perf")
_VOXEL_AXES = {"i": 0, "j": 1, "k": 2}
_OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}
_REPROIN = re.compile(r"^(?:WIP\s+)?(?P<datatype>anat|func|dwi|fmap|perf)(?:-(?P<suffix>[A-Za-z0-9]+))?"
                      r"(?P<rest>(?:_[a-z]+-[A-Za-z0-9+]+)*)(?:__.*)?$")
_ENTITY = re.compile(r"_([a-z]+)-([A-Za-z0-9+]+)")
_REST = re.compile(r"^(rest|resting|restingstate|rs|rsfmri|rsfcmri|rsbold|fcmri|rsepi)\d*$")
_LOCALIZER = {"localizer", "localiser", "scout", "aahead", "survey", "3plane", "threeplane", "loc", "tripilot",
              "plan", "calibration", "asset", "refscan"}
_FIELDMAP_WORDS = {"field", "fieldmap", "fieldmapping", "fmap", "b0map", "b0", "grefieldmapping"}
_EPI_FIELDMAP_WORDS = {"spinecho", "spinechofieldmap", "sefm", "topup", "pepolar", "seepi", "blipup", "blipdown",
                       "reversepe", "revpe"}
_DWI_WORDS = {"dwi", "dti", "diff", "diffusion", "tensor", "hardi", "dki", "mddw"}
_ASL_WORDS = {"asl", "pcasl", "pasl", "casl", "tgse", "pasl3d", "pcasl3d"}
_SWI_WORDS = {"swi", "swan", "t2star", "t2starw", "swip"}
# ImageType words of images the scanner computed from others (not raw data: BIDS derivatives at most)
_DERIVED_WORDS = {"DERIVED", "SECONDARY", "MPR", "MIP", "MNIP", "MINIP", "MOCO", "ADC", "EADC", "TRACEW", "FA",
                  "TENSOR", "COLFA", "SUBTRACTION", "SUB", "RCBF", "CBF", "CBV", "TTP", "MTT", "PROJECTION IMAGE",
                  "CSA MPR", "CSAPARALLEL", "FUSED", "CALC_BRAIN"}
_PHASE_WORDS = {"P", "PHASE", "PHASE MAP", "PHA"}
_FIELDMAP_MAP_WORDS = {"FIELDMAP", "FIELD_MAP", "B0", "B0 MAP", "B0MAP"}


@dataclass(frozen=True)
class Classification:
    kind: str  # "<datatype>/<suffix>", "derived", "localizer" or "unknown"
    entities: dict = field(default_factory=dict)  # entity -> label, in BIDS order when written
    hold: str = ""  # why the default does not place it ("" = nothing to hold)
    volumes: int = 1
    task_name: str = ""  # TaskName for the sidecar of a func image
    why: str = ""  # for unknown/derived/localizer: what was seen

    @property
    def datatype(self) -> str:
        return self.kind.split("/")[0] if "/" in self.kind else ""

    @property
    def suffix(self) -> str:
        return self.kind.split("/")[1] if "/" in self.kind else ""

    def entity_string(self) -> str:
        return "_".join(f"{key}-{self.entities[key]}" for key in REPROIN_ENTITIES if self.entities.get(key))

    def keys(self) -> dict:
        """The derived keys added to the in-memory sidecar dcm2bids matches on."""
        keys = {f"{KEY_PREFIX}Class": self.kind, f"{KEY_PREFIX}Volumes": self.volumes}
        if self.hold:
            keys[f"{KEY_PREFIX}Hold"] = self.hold
        if self.entity_string():
            keys[f"{KEY_PREFIX}Entities"] = self.entity_string()
        return keys

    def reason(self) -> str:
        """Why it is not placed by the default heuristic."""
        if self.hold:
            return self.hold
        if self.kind == "derived":
            return f"scanner-derived image ({self.why}): not raw data, never placed"
        if self.kind == "localizer":
            return f"localizer/scout ({self.why}): not placed"
        return f"not recognised ({self.why}): no heuristic rule matches"


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


def _geometry(series: Series) -> tuple[int, tuple[str, ...] | None]:
    """(volumes, anatomical direction of each voxel axis) of the image; (1, None) without a readable header."""
    try:
        header = nib.load(str(series.nifti)).header
        shape, axes = header.get_data_shape(), tuple(nib.aff2axcodes(header.get_best_affine()))
    except Exception:  # noqa: BLE001 - no readable header: one volume as far as we know
        return 1, None
    return (int(shape[3]) if len(shape) > 3 else 1), axes


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


def _words(value) -> set[str]:
    items = value if isinstance(value, list) else str(value or "").split("\\")
    return {str(v).strip().upper() for v in items if str(v).strip()}


def _image_words(data: dict) -> set[str]:
    return _words(data.get("ImageType")) | _words(data.get("ImageTypeText"))


# dcm2niix computes these only for an echo-planar readout (Philips: the Estimated* pair, from the EPI factor)
_EPI_TIMING = ("EffectiveEchoSpacing", "TotalReadoutTime", "EstimatedEffectiveEchoSpacing", "EstimatedTotalReadoutTime")


def _is_epi(data: dict) -> bool:
    sequence = f"{data.get('SequenceName', '')} {data.get('PulseSequenceName', '')}".lower()
    return ("EP" in _words(data.get("ScanningSequence")) or "epi" in sequence or "epfid" in sequence
            or "epse" in sequence or "ep2d" in sequence or bool({"FMRI", "EPI"} & _words(data.get("ImageType")))
            or any(key in data for key in _EPI_TIMING))


def _number(data: dict, key: str) -> float | None:
    try:
        return float(data[key])
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class _Facts:
    series: Series
    data: dict
    name: str
    words: set
    volumes: int
    axes: tuple[str, ...] | None  # where each voxel axis of the image points (nibabel's aff2axcodes)
    has_bvec: bool
    phase: bool
    reproin: tuple | None


def _facts(series: Series, data: dict) -> _Facts:
    names = [str(data.get("ProtocolName", "")), str(data.get("SeriesDescription", ""))]
    parsed = next((r for r in (reproin(n) for n in names) if r), None)
    name = " ".join(dict.fromkeys(n for n in names if n))
    image = _words(data.get("ImageType"))
    phase = bool(image & _PHASE_WORDS) or (series.nifti is not None and image_stem(series.nifti).endswith("_ph"))
    has_bvec = {p.suffix for p in series.extras} >= {".bval", ".bvec"}
    volumes, axes = _geometry(series)
    return _Facts(series, data, name, set(tokens(name)), volumes, axes, has_bvec, phase, parsed)


def _kind(f: _Facts) -> tuple[str, str]:
    """(kind, what was seen): the class from the acquisition metadata first, the name second."""
    data, image = f.data, _words(f.data.get("ImageType"))
    shown = "/".join(data.get("ImageType") or []) if isinstance(data.get("ImageType"), list) else str(
        data.get("ImageType", "-"))
    seen = f"ImageType {shown or '-'}"
    if image & _DERIVED_WORDS or not image & {"ORIGINAL"} and image:
        return "derived", seen
    if "PERFUSION" in image:
        return "derived", seen + ", the scanner's perfusion map (BIDS keeps the label/control series)"
    if f.words & _LOCALIZER:
        return "localizer", f"name {f.name!r}"
    epi = _is_epi(data)
    te, tr, ti = _number(data, "EchoTime"), _number(data, "RepetitionTime"), _number(data, "InversionTime")
    sequence = _words(data.get("ScanningSequence"))
    three_d = str(data.get("MRAcquisitionType", "")).upper() == "3D"
    if any("sbref" in t for t in f.words):
        return ("dwi/sbref" if f.words & _DWI_WORDS else "func/sbref"), seen
    if f.has_bvec or "DIFFUSION" in image:
        return "dwi/dwi", seen + (", with .bval/.bvec" if f.has_bvec else "")
    if "ASL" in image or (f.words & _ASL_WORDS and f.volumes > 1):
        return "perf/asl", seen
    if image & _FIELDMAP_MAP_WORDS:
        return "fmap/fieldmap", seen
    fieldmap_named = bool(f.words & _FIELDMAP_WORDS) or "fm2d" in str(data.get("SequenceName", "")) or (
        f.reproin is not None and f.reproin[0] == "fmap" and f.reproin[1] != "epi")
    if fieldmap_named and not epi:
        return _gre_fieldmap_kind(f), seen
    if f.phase:
        return "phase", seen
    if epi and f.volumes <= 3 and (f.words & _EPI_FIELDMAP_WORDS or (f.reproin or ("",))[0] == "fmap"):
        return "fmap/epi", seen
    if epi and f.volumes > 1:
        return "func/bold", seen + f", EPI time series of {f.volumes} volumes"
    if image & {"SWI", "SWAN"} or (f.words & _SWI_WORDS and "GR" in sequence and not epi):
        return "anat/T2starw", seen
    if epi:
        return "unknown", seen + f", EPI of {f.volumes} volume(s) that the name does not explain"
    inversion = "IR" in sequence or (ti is not None and ti > 0) or "MP" in _words(data.get("SequenceVariant"))
    if inversion and ((ti or 0) >= 1.4 or (ti is None and f.words & {"flair", "dark", "darkfluid"})):
        return "anat/FLAIR", seen  # a long inversion nulls the fluid (a short one, STIR, is not FLAIR)
    if three_d and (te or 1) < 0.01 and (inversion or ("GR" in sequence and (tr or 1) < 0.05)):
        return "anat/T1w", seen
    if "SE" in sequence and not inversion and (te or 0) >= 0.06 and (tr or 0) >= 1.5:
        return "anat/T2w", seen
    return "unknown", seen + f", ScanningSequence {data.get('ScanningSequence', '-')}, " \
                             f"MRAcquisitionType {data.get('MRAcquisitionType', '-')}, EchoTime {te}"


def _gre_fieldmap_kind(f: _Facts) -> str:
    echo = f.data.get("EchoNumber")
    if f.phase:
        if "EchoTime1" in f.data and "EchoTime2" in f.data:
            return "fmap/phasediff"
        if echo in (1, 2):
            return f"fmap/phase{echo}"
        return "fmap/phasediff"  # held back below: no EchoTime1/EchoTime2
    if echo in (1, 2):
        return f"fmap/magnitude{echo}"
    return "fmap/magnitude"


def _name_kind(f: _Facts, kind: str) -> tuple[str, str]:
    """The ReproIn name, where the metadata say nothing (or say the same); a conflict is held back."""
    if f.reproin is None or kind in ("derived", "localizer"):
        return kind, ""
    named = f"{f.reproin[0]}/{f.reproin[1]}" if f.reproin[1] else ""
    if not named or named == kind:
        return kind, ""
    if kind in ("unknown",) and f.reproin[0] != "fmap":
        return named, ""
    if kind.startswith("fmap/") and f.reproin[0] == "fmap":
        return kind, ""  # magnitude1/phasediff... are told apart by the metadata, ReproIn says fmap
    return kind, (f"the ReproIn name says {named} but the acquisition metadata say {kind}: "
                  "not placed (a site rule can place it)")


def classify_visit(series: list[tuple[Series, dict]]) -> dict[str, Classification]:
    """Classification of each series of one visit (sidecar path -> classification)."""
    facts = [_facts(s, data) for s, data in series]
    kinds = {}
    for f in facts:
        kind, seen = _kind(f)
        kind, conflict = _name_kind(f, kind)
        kinds[id(f)] = (kind, seen, conflict)
    _phase_echoes(facts, kinds)
    result = {}
    for f in facts:
        kind, seen, conflict = kinds[id(f)]
        entities = dict(f.reproin[2]) if f.reproin else {}
        hold = conflict or _hold(f, kind, facts, kinds)
        task = ""
        if kind in ("func/bold", "func/sbref"):
            task = entities.get("task") or ("rest" if says_rest(f.name) else "")
            if task:
                entities["task"] = task
            elif not hold:
                hold = ("no task label: the series name gives no ReproIn task- and does not say rest "
                        "(a site adds the task in its own heuristic, e.g. custom_entities \"task-<label>\" "
                        "and sidecar_changes {\"TaskName\": \"<label>\"})")
        else:
            entities.pop("task", None)
        if kind in ("dwi/dwi", "dwi/sbref", "fmap/epi", "perf/asl") and "dir" not in entities:
            direction = phase_encoding_label(str(f.data.get("PhaseEncodingDirection", "")), f.axes)
            if direction:
                entities["dir"] = direction
        if kind == "fmap/epi" and "dir" not in entities and not hold:
            hold = ("spin-echo EPI field map without PhaseEncodingDirection (dcm2niix gives only "
                    "PhaseEncodingAxis for this vendor): BIDS requires dir-; a site adds it in its own heuristic")
        if "/" in kind and kind.split("/")[0] not in _REC_DATATYPES:
            entities.pop("rec", None)
        known = kind if "/" in kind or kind in ("derived", "localizer") else "unknown"
        result[str(f.series.sidecar)] = Classification(
            kind=known, entities=entities, hold=hold, volumes=f.volumes, task_name=task,
            why=seen + (", a phase image" if kind == "phase" else ""))
    _two_reconstructions(facts, result)
    return result


def _hold(f: _Facts, kind: str, facts: list[_Facts], kinds: dict) -> str:
    if kind == "phase":
        return ""
    if kind.startswith("fmap/") and kind != "fmap/epi":
        group = [g for g in facts if _fieldmap_group(g) == _fieldmap_group(f)]
        group_kinds = {kinds[id(g)][0] for g in group}
        if kind.startswith("fmap/magnitude") and not group_kinds & {"fmap/phasediff", "fmap/phase1",
                                                                     "fmap/phase2", "fmap/fieldmap"}:
            return (f"field-map magnitude without its phase image in this visit ({_fieldmap_group(f)[0]!r}): "
                    "a magnitude is never placed alone")
        if kind == "fmap/magnitude" and "fmap/fieldmap" not in group_kinds:
            return "field-map magnitude with no echo number: cannot tell magnitude1 from magnitude2"
        if kind == "fmap/phasediff" and not ("EchoTime1" in f.data and "EchoTime2" in f.data):
            return ("phasediff without EchoTime1/EchoTime2 (dcm2niix did not give them): BIDS requires both; "
                    "a site adds them with sidecar_changes in its own heuristic")
        if kind == "fmap/phasediff" and "fmap/magnitude1" not in group_kinds:
            return "phasediff without its magnitude image (magnitude1) in this visit: not placed alone"
        if kind in ("fmap/phase1", "fmap/phase2") and not {"fmap/magnitude1", "fmap/magnitude2"} <= group_kinds:
            return "phase1/phase2 field map without its magnitude1/magnitude2 images in this visit"
        if kind == "fmap/fieldmap" and "Units" not in f.data:
            return ("fieldmap without Units (Hz, rad/s or T; dcm2niix does not give them): BIDS requires Units; "
                    "a site adds them with sidecar_changes in its own heuristic")
    if kind == "dwi/dwi" and not f.has_bvec:
        return "diffusion image without .bval/.bvec from dcm2niix: not placed (BIDS requires both)"
    if kind == "func/bold" and f.volumes < 2:
        return "single-volume BOLD: not a time series"
    return ""


def _phase_echoes(facts: list[_Facts], kinds: dict) -> None:
    """Two phase images of one field-map acquisition, echoes 1 and 2, are its phase1 and phase2 (in place),
    even where dcm2niix gives each of them EchoTime1/EchoTime2 as it does for a phase difference."""
    groups: dict[tuple, list[_Facts]] = {}
    for f in facts:
        if kinds[id(f)][0] == "fmap/phasediff":
            groups.setdefault(_fieldmap_group(f), []).append(f)
    for group in groups.values():
        if sorted(str(f.data.get("EchoNumber")) for f in group) == ["1", "2"]:
            for f in group:
                _, seen, conflict = kinds[id(f)]
                kinds[id(f)] = (f"fmap/phase{f.data['EchoNumber']}", seen + ", one of two phase echoes", conflict)


def _fieldmap_group(f: _Facts) -> tuple:
    """Images of one field-map acquisition: same protocol (dcm2niix splits echoes and magnitude/phase)."""
    return (str(f.data.get("ProtocolName") or f.data.get("SeriesDescription", "")),)


def _two_reconstructions(facts: list[_Facts], result: dict[str, Classification]) -> None:
    """Two images of one acquisition (same AcquisitionTime and protocol) that differ only by their
    reconstruction (e.g. NORM, intensity-normalised, in ImageType): rec-<word> for the one with more."""
    groups = defaultdict(list)
    for f in facts:
        c = result[str(f.series.sidecar)]
        if "/" in c.kind and c.datatype in _REC_DATATYPES and "rec" not in c.entities:
            groups[(c.kind, f.data.get("AcquisitionTime"), _fieldmap_group(f), c.entity_string())].append(f)
    for group in groups.values():
        if len(group) != 2:
            continue
        first, second = (_image_words(f.data) for f in group)
        for f, extra in ((group[0], first - second), (group[1], second - first)):
            label = "".join(sorted(re.sub(r"[^a-z0-9]", "", w.lower()) for w in extra))
            if label:
                c = result[str(f.series.sidecar)]
                result[str(f.series.sidecar)] = Classification(
                    kind=c.kind, entities={**c.entities, "rec": label}, hold=c.hold, volumes=c.volumes,
                    task_name=c.task_name, why=c.why)


def strip_keys(sidecar: dict) -> dict:
    """A placed sidecar never carries a derived key."""
    return {k: v for k, v in sidecar.items() if not k.startswith(KEY_PREFIX)}
