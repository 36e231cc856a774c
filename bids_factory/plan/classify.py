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

from bids_factory.checks.gates import lone_magnitude
from bids_factory.config.heuristic import CLASSIFIED_KEY_PREFIX as KEY_PREFIX
from bids_factory.model import DERIVED_REASON, LOCALIZER_REASON, ReasonGroup, Series
from bids_factory.plan.epi import is_epi
from bids_factory.plan.fieldmaps import (fieldmap_group, gre_fieldmap_kind, is_field_map_in_units,
                                         magnitude_of_fieldmap, pepolar_pairs, phase_echoes)
from bids_factory.plan.series_facts import (REPROIN_ENTITIES, SeriesFacts, image_words, number, phase_encoding_label,
                                           says_rest, series_facts, words)

log = logging.getLogger(__name__)

# BIDS allows rec- in these datatypes (not in fmap)
_REC_DATATYPES = ("anat", "func", "dwi", "perf")
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


@dataclass(frozen=True)
class Classification:
    kind: str  # "<datatype>/<suffix>", "derived", "localizer" or "unknown"
    entities: dict = field(default_factory=dict)  # entity -> label, in BIDS order when written
    hold: str = ""  # why the default does not place it ("" = nothing to hold)
    hold_group: ReasonGroup = ReasonGroup.SUPPLY  # what a person must do about the hold
    volumes: int = 1
    task_name: str = ""  # TaskName for the sidecar of a func image
    why: str = ""  # for unknown/derived/localizer: what was seen
    grid: tuple | None = None  # the image's voxel grid (shape, affine): images on one grid cover one space

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
            return f"{DERIVED_REASON} ({self.why}): not raw data, never placed"
        if self.kind == "localizer":
            return f"{LOCALIZER_REASON} ({self.why}): not placed"
        return (f"not recognised ({self.why}): no heuristic rule matches; write one if this series belongs in the "
                f"dataset (bids-factory inventory EXPORT --write-heuristic site.json starts it)")

    def group(self) -> ReasonGroup:
        """What a person must do about a series no rule matched."""
        if self.hold:
            return self.hold_group
        return ReasonGroup.NOTHING if self.kind in ("derived", "localizer") else ReasonGroup.DECIDE


def _kind(f: SeriesFacts) -> tuple[str, str]:
    """(kind, what was seen): the class from the acquisition metadata first, the name second."""
    data, image = f.data, words(f.data.get("ImageType"))
    shown = "/".join(data.get("ImageType") or []) if isinstance(data.get("ImageType"), list) else str(
        data.get("ImageType", "-"))
    seen = f"ImageType {shown or '-'}"
    if image & _DERIVED_WORDS or not image & {"ORIGINAL"} and image:
        return "derived", seen
    if "PERFUSION" in image:
        return "derived", seen + ", the scanner's perfusion map (BIDS keeps the label/control series)"
    if f.words & _LOCALIZER:
        return "localizer", f"name {f.name!r}"
    epi = is_epi(data)
    te, tr, ti = number(data, "EchoTime"), number(data, "RepetitionTime"), number(data, "InversionTime")
    sequence = words(data.get("ScanningSequence"))
    three_d = str(data.get("MRAcquisitionType", "")).upper() == "3D"
    if any("sbref" in t for t in f.words):
        return ("dwi/sbref" if f.words & _DWI_WORDS else "func/sbref"), seen
    if f.has_bvec or "DIFFUSION" in image:
        return "dwi/dwi", seen + (", with .bval/.bvec" if f.has_bvec else "")
    if "ASL" in image or (f.words & _ASL_WORDS and f.volumes > 1):
        return "perf/asl", seen
    if is_field_map_in_units(f):
        return "fmap/fieldmap", seen
    fieldmap_named = bool(f.words & _FIELDMAP_WORDS) or "fm2d" in str(data.get("SequenceName", "")) or (
        f.reproin is not None and f.reproin[0] == "fmap" and f.reproin[1] != "epi")
    if fieldmap_named and not epi:
        return gre_fieldmap_kind(f), seen
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
    inversion = "IR" in sequence or (ti is not None and ti > 0) or "MP" in words(data.get("SequenceVariant"))
    if inversion and ((ti or 0) >= 1.4 or (ti is None and f.words & {"flair", "dark", "darkfluid"})):
        return "anat/FLAIR", seen  # a long inversion nulls the fluid (a short one, STIR, is not FLAIR)
    if three_d and (te or 1) < 0.01 and (inversion or ("GR" in sequence and (tr or 1) < 0.05)):
        return "anat/T1w", seen
    if "SE" in sequence and not inversion and (te or 0) >= 0.06 and (tr or 0) >= 1.5:
        return "anat/T2w", seen
    return "unknown", seen + f", ScanningSequence {data.get('ScanningSequence', '-')}, " \
                             f"MRAcquisitionType {data.get('MRAcquisitionType', '-')}, EchoTime {te}"


def _name_kind(f: SeriesFacts, kind: str) -> tuple[str, str]:
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
                  "not placed; a rule in the site's heuristic decides what it is")


def classify_visit(series: list[tuple[Series, dict]]) -> dict[str, Classification]:
    """Classification of each series of one visit (sidecar path -> classification)."""
    facts = [series_facts(s, data) for s, data in series]
    kinds = {}
    for f in facts:
        kind, seen = _kind(f)
        kind, conflict = _name_kind(f, kind)
        kinds[id(f)] = (kind, seen, conflict)
    phase_echoes(facts, kinds)
    magnitude_of_fieldmap(facts, kinds)
    pepolar_pairs(facts, kinds)
    result = {}
    for f in facts:
        kind, seen, conflict = kinds[id(f)]
        entities = dict(f.reproin[2]) if f.reproin else {}
        hold, hold_group = (conflict, ReasonGroup.DECIDE) if conflict else _hold(f, kind, facts, kinds)
        task = ""
        if kind in ("func/bold", "func/sbref"):
            task = entities.get("task") or ("rest" if says_rest(f.name) else "")
            if task:
                entities["task"] = task
            elif not hold:
                hold, hold_group = ("no task label: the series name gives no ReproIn task- and does not say rest "
                        "(a site adds the task in its own heuristic, e.g. custom_entities \"task-<label>\" "
                        "and sidecar_changes {\"TaskName\": \"<label>\"})"), ReasonGroup.SUPPLY
        else:
            entities.pop("task", None)
        if kind in ("dwi/dwi", "dwi/sbref", "fmap/epi", "perf/asl") and "dir" not in entities:
            direction = phase_encoding_label(str(f.data.get("PhaseEncodingDirection", "")), f.axes)
            if direction:
                entities["dir"] = direction
        if kind == "fmap/epi" and "dir" not in entities and not hold:
            hold, hold_group = ("spin-echo EPI field map without PhaseEncodingDirection (dcm2niix gives only "
                                "PhaseEncodingAxis for this vendor): BIDS requires dir-; a site adds it in its own "
                                "heuristic (custom_entities \"dir-AP\" or the like)"), ReasonGroup.SUPPLY
        if "/" in kind and kind.split("/")[0] not in _REC_DATATYPES:
            entities.pop("rec", None)
        known = kind if "/" in kind or kind in ("derived", "localizer") else "unknown"
        result[str(f.series.sidecar)] = Classification(
            kind=known, entities=entities, hold=hold, hold_group=hold_group, volumes=f.volumes, task_name=task,
            why=seen + (", a phase image" if kind == "phase" else ""), grid=f.grid)
    _two_reconstructions(facts, result)
    return result


def _hold(f: SeriesFacts, kind: str, facts: list[SeriesFacts], kinds: dict) -> tuple[str, ReasonGroup]:
    """Why the default does not place a series it recognised ("" for none), and what a person must do."""
    supply, export = ReasonGroup.SUPPLY, ReasonGroup.FIX_EXPORT
    if kind == "phase":
        return "", supply
    if kind.startswith("fmap/") and kind != "fmap/epi":
        group = [g for g in facts if fieldmap_group(g) == fieldmap_group(f)]
        group_kinds = {kinds[id(g)][0] for g in group}
        if kind.startswith("fmap/magnitude") and not group_kinds & {"fmap/phasediff", "fmap/phase1",
                                                                     "fmap/phase2", "fmap/fieldmap"}:
            return lone_magnitude(fieldmap_group(f)[0]), export
        if kind == "fmap/magnitude" and "fmap/fieldmap" not in group_kinds:
            return ("field-map magnitude with no echo number: cannot tell magnitude1 from magnitude2; a site rule "
                    "tells them apart (EchoTime or ImageType criteria)"), ReasonGroup.DECIDE
        if kind == "fmap/phasediff" and not ("EchoTime1" in f.data and "EchoTime2" in f.data):
            return ("phasediff without EchoTime1/EchoTime2 (dcm2niix did not give them): BIDS requires both; "
                    "a site adds them with sidecar_changes in its own heuristic"), supply
        if kind == "fmap/phasediff" and "fmap/magnitude1" not in group_kinds:
            return ("phasediff without its magnitude image (magnitude1) in this visit: not placed alone; export "
                    "the magnitude series too"), export
        if kind in ("fmap/phase1", "fmap/phase2") and not {"fmap/magnitude1", "fmap/magnitude2"} <= group_kinds:
            return ("phase1/phase2 field map without its magnitude1/magnitude2 images in this visit: export the "
                    "magnitude series too"), export
        if kind == "fmap/fieldmap" and "Units" not in f.data:
            return ("fieldmap without Units (Hz, rad/s or T; dcm2niix does not give them): BIDS requires Units; "
                    "a site adds them with sidecar_changes in its own heuristic"), supply
    if kind == "dwi/dwi" and not f.has_bvec:
        return ("diffusion image without .bval/.bvec from dcm2niix: not placed (BIDS requires both); export the "
                "series with its diffusion headers (not a derived or anonymised-away copy)"), export
    if kind == "func/bold" and f.volumes < 2:
        return "single-volume BOLD: not a time series; a site rule places it elsewhere if it is wanted", \
            ReasonGroup.DECIDE
    return "", supply


def _two_reconstructions(facts: list[SeriesFacts], result: dict[str, Classification]) -> None:
    """Two images of one acquisition (same AcquisitionTime and protocol) that differ only by their
    reconstruction (e.g. NORM, intensity-normalised, in ImageType): rec-<word> for the one with more."""
    groups = defaultdict(list)
    for f in facts:
        c = result[str(f.series.sidecar)]
        if "/" in c.kind and c.datatype in _REC_DATATYPES and "rec" not in c.entities:
            groups[(c.kind, f.data.get("AcquisitionTime"), fieldmap_group(f), c.entity_string())].append(f)
    for group in groups.values():
        if len(group) != 2:
            continue
        first, second = (image_words(f.data) for f in group)
        for f, extra in ((group[0], first - second), (group[1], second - first)):
            label = "".join(sorted(re.sub(r"[^a-z0-9]", "", w.lower()) for w in extra))
            if label:
                c = result[str(f.series.sidecar)]
                result[str(f.series.sidecar)] = Classification(
                    kind=c.kind, entities={**c.entities, "rec": label}, hold=c.hold, hold_group=c.hold_group,
                    volumes=c.volumes, task_name=c.task_name, why=c.why, grid=c.grid)


def strip_keys(sidecar: dict) -> dict:
    """A placed sidecar never carries a derived key."""
    return {k: v for k, v in sidecar.items() if not k.startswith(KEY_PREFIX)}
