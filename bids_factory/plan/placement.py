"""Stage 3 — plan: decide where each converted series goes, with the dcm2bids engine.

Matching, run numbering, custom entities, ``id``/IntendedFor substitution and ``sidecar_changes``
are dcm2bids' own (``dcm2bids.sidecar.SidecarPairing`` and ``Acquisition``): heuristics behave
here exactly as in Dcm2Bids. This stage decides; it writes nothing.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import replace

from bids_factory.plan import asl
from bids_factory.plan.classify import Classification, classify_visit, strip_keys
from bids_factory.dates import DatePolicy
from bids_factory.privacy.deidentify import Deidentification, keep_allowed
from bids_factory.config.heuristic import Heuristic
from bids_factory.model import ExtractedVisit, Placement, Series, SeriesOutcome, SeriesStatus, VisitPlan
from bids_factory.checks.required_metadata import missing_fields, missing_reason
from bids_factory.checks.sidecar_schemas import SidecarSchemas, check_placement

log = logging.getLogger(__name__)

_ENTITY = re.compile(r"^[a-z]+-[A-Za-z0-9]+$")
_SUFFIX = re.compile(r"^[A-Za-z0-9]+$")


def matching_engine():
    """Import the dcm2bids engine without its import-time call to GitHub.

    dcm2bids checks online for a newer BIDS schema when it is imported; a hospital host has no
    internet (the call can hang for seconds). The check only logs a suggestion, so it is turned off.
    """
    dcm2bids_log = logging.getLogger("dcm2bids")
    if not dcm2bids_log.isEnabledFor(logging.DEBUG):
        dcm2bids_log.setLevel(logging.ERROR)
    from dcm2bids.utils import tools

    tools.has_internet = lambda *args, **kwargs: False
    from dcm2bids.participant import Participant
    from dcm2bids.sidecar import Sidecar, SidecarPairing
    from dcm2bids.utils.utils import DEFAULT
    return Participant, Sidecar, SidecarPairing, DEFAULT


def plan_visit(extracted: ExtractedVisit, heuristic: Heuristic, schemas: SidecarSchemas | None = None,
               keep_site_fields: bool = False, dates: DatePolicy = DatePolicy()) -> VisitPlan:
    """Placements of a visit's series; with ``schemas``, ill-defined images are held back.

    Every sidecar keeps only allowed keys without the visit's identifiers (:mod:`bids_factory.privacy.deidentify`);
    what was dropped is counted in the plan's ``deidentification`` record."""
    Participant, Sidecar, SidecarPairing, DEFAULT = matching_engine()
    config = heuristic.config
    by_sidecar = {str(series.sidecar): series for series in extracted.series}
    sidecars = sorted(Sidecar(path, config.get("compKeys", DEFAULT.compKeys)) for path in by_sidecar)
    # The pre-matching step: derived keys in the copy dcm2bids matches on (``data``), never in the
    # sidecar it writes out (``origData``).
    classes = classify_visit([(by_sidecar[s.filename], s.data) for s in sidecars])
    for sidecar in sidecars:
        sidecar.data.update(classes[sidecar.filename].keys())
    pairing = SidecarPairing(
        sidecars,
        heuristic.descriptions,
        extractors=config.get("extractors", {}),
        search_method=config.get("search_method", DEFAULT.search_method),
        case_sensitive=config.get("case_sensitive", DEFAULT.case_sensitive),
        dup_method=config.get("dup_method", DEFAULT.dup_method),
        post_op=[],
        bids_uri=config.get("bids_uri", DEFAULT.bids_uri),
    )
    participant = Participant(extracted.subject_label, extracted.visit.session_label)
    graph = pairing.build_graph()
    pairing.build_acquisitions(participant)
    for acquisition in pairing.acquisitions:
        _add_classified_entities(acquisition, graph[acquisition.src_sidecar][0], classes[acquisition.src_sidecar.filename])
    pairing.find_runs()

    not_placed = [SeriesOutcome(s, SeriesStatus.NOT_CONVERTED, "dcm2niix made no image of this DICOM series")
                  for s in extracted.unconverted] + list(extracted.refused)
    for sidecar, matched in graph.items():
        series = by_sidecar[sidecar.filename]
        if not matched:
            not_placed.append(_not_matched(series, classes[sidecar.filename]))
        elif len(matched) > 1:
            rules = ", ".join(heuristic.rule_name(d) for d in matched)
            not_placed.append(SeriesOutcome(series, SeriesStatus.AMBIGUOUS, f"several heuristic rules match: {rules}"))

    placements: list[Placement] = []
    removed = Deidentification()
    holding: dict[str, frozenset] = {}  # relpath -> keys removed because their value holds an identifier
    id_list: dict[str, list[str]] = {}
    for acquisition in pairing.acquisitions:
        series = by_sidecar[acquisition.src_sidecar.filename]
        if acquisition.id:
            id_list.setdefault(acquisition.id, []).append(
                os.path.join(participant.name, acquisition.dstId + ".nii.gz")
            )
        given = strip_keys(acquisition.dstSidecarData(id_list))
        sidecar = keep_allowed(given, acquisition.datatype, acquisition.suffix.lstrip("_"), extracted.identifiers,
                               dates, keep_site_fields, removed)
        description = graph[acquisition.src_sidecar][0]
        placements.append(
            Placement(series=series, datatype=acquisition.datatype, stem=acquisition.dstFile,
                      sidecar=sidecar, rule=heuristic.rule_name(description),
                      sidecar_schema=description.get("bids_factory", {}).get("sidecar_schema"))
        )
        holding[placements[-1].relpath] = frozenset(
            key for key, value in given.items() if key not in sidecar and extracted.identifiers.found_in(value))
    placements = [_intended_for_its_grid(p, placements, classes) for p in placements]
    placements, rejected = _reject_bad_names(placements)
    placements, held_back = _hold_back_unfit(placements, graph, by_sidecar, classes, holding)
    rejected += held_back
    if schemas is not None:
        placements, held_back = _hold_back_ill_defined(placements, schemas)
        rejected += held_back
    classified = {str(s.filename) for s, d in graph.items()
                  if len(d) == 1 and d[0].get("bids_factory", {}).get("classified_entities")}
    placements, held_back = _hold_back_lone_fieldmaps(placements, classified)
    rejected += held_back
    return VisitPlan(
        extracted=extracted,
        placements=tuple(placements),
        not_placed=tuple(not_placed + rejected),
        heuristic_name=heuristic.name,
        heuristic_sha256=heuristic.sha256,
        deidentification=extracted.deidentification.merge(removed),
        sidecar_fields=frozenset(key for sidecar in sidecars for key in sidecar.data),
    )


def _add_classified_entities(acquisition, description: dict, classification: Classification) -> None:
    """A rule with ``"bids_factory": {"classified_entities": true}`` names its file with the entities the
    classification derived (ReproIn task/acq/ce/dir/rec/run, dir- from the phase encoding, rec-), and a
    func image gets its TaskName. dcm2bids then numbers what still collides (run-)."""
    if not description.get("bids_factory", {}).get("classified_entities"):
        return
    derived = classification.entity_string()
    if derived:
        own = acquisition.custom_entities.lstrip("_")
        acquisition.custom_entities = "_".join(e for e in (own, derived) if e)
        acquisition.setDstFile()
    if classification.task_name and acquisition.datatype == "func":
        acquisition.src_sidecar.data["TaskName"] = classification.task_name


def _intended_for_its_grid(placement: Placement, placements: list[Placement], classes) -> Placement:
    """An EPI field map serves the EPI images on its own voxel grid: its IntendedFor (the rule's targets)
    is narrowed to them when there are any (else it keeps the rule's targets)."""
    own = classes[str(placement.series.sidecar)]
    intended = placement.sidecar.get("IntendedFor")
    if own.kind != "fmap/epi" or own.grid is None or not intended:
        return placement
    same = {f"/{p.relpath}" for p in placements if p is not placement
            and classes[str(p.series.sidecar)].grid == own.grid}
    targets = [intended] if isinstance(intended, str) else list(intended)
    served = [t for t in targets if any(t.endswith(path) for path in same)]
    if not served or served == targets:
        return placement
    return replace(placement, sidecar={**placement.sidecar, "IntendedFor": served[0] if len(served) == 1 else served})


def _not_matched(series: Series, classification: Classification) -> SeriesOutcome:
    """No rule matched: the classification says why (held back with the reason, or what it is)."""
    if classification.hold:
        return SeriesOutcome(series, SeriesStatus.HELD_BACK, classification.hold)
    return SeriesOutcome(series, SeriesStatus.UNMATCHED, classification.reason())


def _hold_back_unfit(placements: list[Placement], graph, by_sidecar, classes, holding: dict[str, frozenset]
                     ) -> tuple[list[Placement], list[SeriesOutcome]]:
    """An image needs the metadata the BIDS schema requires of it (:mod:`bids_factory.checks.required_metadata`),
    and an ASL image its aslcontext.tsv; without them it is held back, the missing fields named."""
    rules = {by_sidecar[s.filename].sidecar: d[0] for s, d in graph.items() if len(d) == 1}
    kept, reasons = [], {}
    for placement in placements:
        *entities, suffix = placement.stem.split("_")
        missing = missing_fields(placement.datatype, suffix, dict(e.split("-", 1) for e in entities if "-" in e),
                                 placement.sidecar)
        named = [key for key in missing if key in holding.get(placement.relpath, ())]
        faults = [f"{key} holds an identifier of this visit (a word of a person's name or an id): removed from the "
                  f"sidecar, and BIDS requires it" for key in named]
        faults += [missing_reason(suffix, [k for k in missing if k not in named])] if set(missing) - set(named) else []
        context = None
        if placement.datatype == "perf" and suffix == "asl":
            order = rules[placement.series.sidecar].get("bids_factory", {}).get("aslcontext")
            context, why = asl.aslcontext(order, classes[str(placement.series.sidecar)].volumes)
            faults += [f"ASL: {why}"] if why else []
        if faults:
            reasons[placement.relpath] = "; ".join(faults)
        kept.append(replace(placement, extra_files=(("aslcontext.tsv", context),)) if context and not faults
                    else placement)
    return hold_back(kept, reasons)


_PHASES = ("phasediff", "phase1", "phase2", "fieldmap")


def _hold_back_lone_fieldmaps(placements: list[Placement], classified: set[str]
                              ) -> tuple[list[Placement], list[SeriesOutcome]]:
    """A field-map magnitude placed by a classified rule (the default's) whose phase image is not placed
    (held back, rejected) is not placed alone. A site's own rules place what they say."""
    def group(p: Placement) -> str:
        return p.series.protocol_name or p.series.series_description

    phases = {group(p) for p in placements if p.datatype == "fmap" and p.stem.rsplit("_", 1)[-1] in _PHASES}
    reasons = {p.relpath: f"field-map magnitude whose phase image is not placed ({group(p)!r}): never placed alone"
               for p in placements if p.datatype == "fmap" and p.stem.rsplit("_", 1)[-1].startswith("magnitude")
               and group(p) not in phases and str(p.series.sidecar) in classified}
    return hold_back(placements, reasons)


def _hold_back_ill_defined(placements: list[Placement], schemas: SidecarSchemas
                           ) -> tuple[list[Placement], list[SeriesOutcome]]:
    """Keep only placements whose sidecar meets its schema; drop references to the others."""
    faults = {p.relpath: check_placement(schemas, p, p.sidecar_schema) for p in placements}
    return hold_back(placements, {path: "; ".join(f) for path, f in faults.items() if f})


def hold_back(placements, reasons: dict[str, str]) -> tuple[list[Placement], list[SeriesOutcome]]:
    """Take the placements named in ``reasons`` (by relpath) out; no IntendedFor may still name them."""
    kept = [p for p in placements if p.relpath not in reasons]
    held = [SeriesOutcome(p.series, SeriesStatus.HELD_BACK, reasons[p.relpath], p.rule) for p in placements if p.relpath in reasons]
    if held:
        gone = {f"/{path}" for path in reasons}  # matches bids:: URIs and relative IntendedFor paths
        kept = [_without_references(p, gone) for p in kept]
    return kept, held


def _without_references(placement: Placement, gone: set[str]) -> Placement:
    """IntendedFor must not name an image that was held back (the validator would fail the dataset)."""
    intended = placement.sidecar.get("IntendedFor")
    if intended is None:
        return placement
    items = [intended] if isinstance(intended, str) else list(intended)
    left = [i for i in items if not any(i.endswith(g) for g in gone)]
    if left == items:
        return placement
    sidecar = {k: v for k, v in placement.sidecar.items() if k != "IntendedFor"}
    if left:
        sidecar["IntendedFor"] = left[0] if isinstance(intended, str) else left
    return replace(placement, sidecar=sidecar)


def _reject_bad_names(placements: list[Placement]) -> tuple[list[Placement], list[SeriesOutcome]]:
    """Refuse file names that are not BIDS names, and two series aimed at one file."""
    kept: list[Placement] = []
    rejected: list[SeriesOutcome] = []
    targets: dict[str, list[Placement]] = {}
    for placement in placements:
        targets.setdefault(placement.relpath, []).append(placement)
    for placement in placements:
        *entities, suffix = placement.stem.split("_")
        bad = [e for e in entities if not _ENTITY.match(e)]
        if bad or not _SUFFIX.match(suffix):
            reason = f"heuristic gives a name that is not a BIDS name: {placement.stem} ({', '.join(bad) or suffix})"
            rejected.append(SeriesOutcome(placement.series, SeriesStatus.REJECTED, reason, placement.rule))
        elif len(targets[placement.relpath]) > 1:
            others = [p.series for p in targets[placement.relpath] if p is not placement]
            reason = (f"collision: {placement.relpath} is also the target of "
                      + "; ".join(_series_name(s) for s in others))
            rejected.append(SeriesOutcome(placement.series, SeriesStatus.REJECTED, reason, placement.rule))
        else:
            kept.append(placement)
    return kept, rejected


def _series_name(series: Series) -> str:
    return f"series {series.series_number} {series.series_description!r}"
