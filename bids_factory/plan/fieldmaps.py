"""Field maps of one visit: which image of a field-map acquisition is which BIDS file (magnitude1/2,
phasediff, phase1/2, fieldmap + magnitude). dcm2niix splits one acquisition into several images (echoes,
magnitude and phase, ``_ph``, ``_fieldmaphz``); they are told apart by their metadata and file names."""

from __future__ import annotations

from bids_factory.extract.staged_images import image_stem
from bids_factory.plan.epi import is_epi
from bids_factory.plan.series_facts import SeriesFacts, words

# ImageType words of a map the scanner computed (not FIELDMAPHZ: dcm2niix writes it on the magnitude beside
# the map too; its map in Hz is the `_fieldmaphz` image with Units)
MAX_PEPOLAR_VOLUMES = 4  # a distortion-correction EPI is 1-4 volumes; a time series is longer
_SIGNED = {"i", "i-", "j", "j-", "k", "k-"}
_FIELDMAP_MAP_WORDS = {"FIELDMAP", "FIELD_MAP", "B0", "B0 MAP", "B0MAP"}


def is_field_map_in_units(f: SeriesFacts) -> bool:
    """A field map the scanner computed in Hz (Philips B0 map, GE B0map): dcm2niix names it ``_fieldmaphz``
    and writes ``Units``. Its magnitude beside it may carry the same ImageType words (older dcm2niix:
    FIELDMAPHZ on both), so the words alone decide only where neither the name nor Units is there."""
    stem = image_stem(f.series.nifti) if f.series.nifti is not None else ""
    if stem.endswith("_fieldmaphz") or "Units" in f.data:
        return True
    return bool(words(f.data.get("ImageType")) & _FIELDMAP_MAP_WORDS) and not any(
        word in words(f.data.get("ImageType")) for word in ("M", "MAGNITUDE"))


def gre_fieldmap_kind(f: SeriesFacts) -> str:
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


def phase_echoes(facts: list[SeriesFacts], kinds: dict) -> None:
    """Two phase images of one field-map acquisition, echoes 1 and 2, are its phase1 and phase2 (in place),
    even where dcm2niix gives each of them EchoTime1/EchoTime2 as it does for a phase difference."""
    groups: dict[tuple, list[SeriesFacts]] = {}
    for f in facts:
        if kinds[id(f)][0] == "fmap/phasediff":
            groups.setdefault(fieldmap_group(f), []).append(f)
    for group in groups.values():
        if sorted(str(f.data.get("EchoNumber")) for f in group) == ["1", "2"]:
            for f in group:
                _, seen, conflict = kinds[id(f)]
                kinds[id(f)] = (f"fmap/phase{f.data['EchoNumber']}", seen + ", one of two phase echoes", conflict)


def magnitude_of_fieldmap(facts: list[SeriesFacts], kinds: dict) -> None:
    """The magnitude image beside a field map in Hz (one acquisition: Philips B0 map, GE B0map) is its
    ``magnitude`` (BIDS case 3), not magnitude1 of a two-echo map, whatever its echo number (in place)."""
    with_map = {fieldmap_group(f) for f in facts if kinds[id(f)][0] == "fmap/fieldmap"}
    for f in facts:
        kind, seen, conflict = kinds[id(f)]
        if kind.startswith("fmap/magnitude") and fieldmap_group(f) in with_map:
            kinds[id(f)] = ("fmap/magnitude", seen + ", the magnitude of a field map in Hz", conflict)


def fieldmap_group(f: SeriesFacts) -> tuple:
    """Images of one field-map acquisition: same protocol (dcm2niix splits echoes and magnitude/phase)."""
    return (str(f.data.get("ProtocolName") or f.data.get("SeriesDescription", "")),)


def pepolar_pairs(facts: list[SeriesFacts], kinds: dict) -> None:
    """Short EPI images (1-4 volumes, no .bval/.bvec) on one voxel grid whose phase encoding runs along one
    axis in both senses (``j`` and ``j-``) are distortion-correction field maps (BIDS ``epi``), whatever
    the vendor and the name: GE ``FM_...`` pairs, Siemens ``EPI PE=AP``/``PE=PA``... (in place)."""
    groups: dict[tuple, list[SeriesFacts]] = {}
    for f in facts:
        direction = str(f.data.get("PhaseEncodingDirection", ""))
        if (kinds[id(f)][0] in ("func/bold", "unknown", "fmap/epi") and f.grid is not None and is_epi(f.data)
                and 1 <= f.volumes <= MAX_PEPOLAR_VOLUMES and not f.has_bvec and direction in _SIGNED):
            groups.setdefault((f.grid, direction[0]), []).append(f)
    for group in groups.values():
        if len({str(f.data["PhaseEncodingDirection"]) for f in group}) < 2:
            continue
        for f in group:
            _, seen, conflict = kinds[id(f)]
            kinds[id(f)] = ("fmap/epi", seen + ", one of a pair of EPI images of opposite phase-encoding polarity "
                            "on one grid", conflict)
