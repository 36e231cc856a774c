"""Why a series is not placed: every gate, in the order a series meets them (the ONE place that says so).

0. plan's classification (:mod:`bids_factory.plan.classify`): what a series is NOT, before any rule
   matches (a scanner-derived image, BOLD with no task...): unmatched or held back with that reason;
1. names: a heuristic's file name that is not a BIDS name, or two series aimed at one file (rejected);
2. required metadata: the fields the BIDS schema requires of the image
   (:mod:`bids_factory.checks.required_metadata`), and an ASL image's aslcontext.tsv
   (:mod:`bids_factory.checks.asl_context`);
3. well-defined: the sidecar meets its sidecar schema (:mod:`bids_factory.checks.sidecar_schemas`);
4. sets: the images of a field-map set are placed together or not at all (a magnitude without its phase,
   a phase without its magnitudes is held back), whatever rule placed them;
5. complete: the DICOM headers, dcm2niix's report and the image agree (:mod:`bids_factory.checks.completeness`);
6. valid: what the official validator refuses, once per batch of visits (:func:`hold_back_refused`).

Gates 1-5 run in :func:`gate_plan` (called by plan for each visit, in a worker), gate 6 in the main
process. A series held back by one gate is out of every later one, and no IntendedFor of a placed image
still names it. Pure decisions: nothing is written.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, replace
from pathlib import Path

from bids_factory.checks import asl_context
from bids_factory.checks.completeness import check_visit
from bids_factory.checks.required_metadata import missing_fields, missing_reason
from bids_factory.checks.sidecar_schemas import SidecarSchemas, check_placement
from bids_factory.checks.validator import batch_faults
from bids_factory.errors import VisitError
from bids_factory.model import Placement, ReasonGroup, Series, SeriesOutcome, SeriesStatus, VisitPlan

_ENTITY = re.compile(r"^[a-z]+-[A-Za-z0-9]+$")
_SUFFIX = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class GateContext:
    """What the gates need to know of the heuristic's rules, per matched sidecar (by its path)."""

    schemas: SidecarSchemas | None = None  # None: no sidecar-schema gate (a plan for inventory's tests)
    aslcontext: dict = dataclasses.field(default_factory=dict)  # sidecar -> (the rule's aslcontext, volumes)
    holding: dict = dataclasses.field(default_factory=dict)  # session_path -> keys removed for holding an identifier


def gate_plan(plan: VisitPlan, context: GateContext) -> VisitPlan:
    """Gates 1-5 over one visit's plan, in order: what fails one is held back (or rejected) with the reason."""
    placements, outcomes = _reject_bad_names(list(plan.placements))
    before = placements
    placements, held = _hold_back_unfit(placements, context.aslcontext, context.holding)
    outcomes += held
    if context.schemas is not None:
        placements, more = _hold_back_ill_defined(placements, context.schemas)
        outcomes, held = outcomes + more, held + more
    stayed = {p.session_path for p in placements}  # field-map set -> what a person must do for its image held back
    group_of = {id(o.series): o.group for o in held}
    held_sets = {_set_name(p): group_of[id(p.series)] for p in before if p.session_path not in stayed}
    placements, held = _hold_back_lone_fieldmaps(placements, held_sets)
    outcomes += held
    return _hold_back_incomplete(replace(plan, placements=tuple(placements),
                                         not_placed=plan.not_placed + tuple(outcomes)))


def hold_back_refused(outcomes: list, folder: Path) -> list:
    """Gate 6, the validator's, once per batch: what it refuses in a visit is held back with its message."""
    checked = [i for i, (_, outcome) in enumerate(outcomes) if isinstance(outcome, VisitPlan) and outcome.placements]
    for index, faults in zip(checked, batch_faults([outcomes[i][1] for i in checked], folder)):
        if faults:
            visit, plan = outcomes[index]
            kept, held = hold_back(plan.placements, faults, ReasonGroup.SUPPLY)
            thumbnails = {p.session_path: plan.thumbnails[p.session_path] for p in kept if p.session_path in plan.thumbnails}
            outcomes[index] = (visit, replace(plan, placements=tuple(kept), thumbnails=thumbnails,
                                              not_placed=plan.not_placed + tuple(held)))
    return outcomes


def _hold_back_unfit(placements: list[Placement], aslcontext: dict[str, tuple[dict | None, int]],
                     holding: dict[str, frozenset]) -> tuple[list[Placement], list[SeriesOutcome]]:
    """An image needs the metadata the BIDS schema requires of it (:mod:`bids_factory.checks.required_metadata`),
    and an ASL image its aslcontext.tsv; without them it is held back, the missing fields named."""
    kept, reasons = [], {}
    for placement in placements:
        *entities, suffix = placement.stem.split("_")
        missing = missing_fields(placement.datatype, suffix, dict(e.split("-", 1) for e in entities if "-" in e),
                                 placement.sidecar)
        named = [key for key in missing if key in holding.get(placement.session_path, ())]
        faults = [f"{key} holds an identifier of this visit (a word of a person's name or an id): removed from the "
                  f"sidecar, and BIDS requires it" for key in named]
        faults += [missing_reason(suffix, [k for k in missing if k not in named])] if set(missing) - set(named) else []
        context = None
        if placement.datatype == "perf" and suffix == "asl":
            context, why = asl_context.aslcontext(*aslcontext[str(placement.series.sidecar)])
            faults += [f"ASL: {why}"] if why else []
        if faults:
            reasons[placement.session_path] = "; ".join(faults)
        kept.append(replace(placement, extra_files=(("aslcontext.tsv", context),)) if context and not faults
                    else placement)
    return hold_back(kept, reasons, ReasonGroup.SUPPLY)


# A BIDS field-map set (the files of one fmap acquisition: same entities, these suffixes) and what each
# member needs beside it: any one of the alternatives, each a set of suffixes.
_SET_NEEDS = {
    "phasediff": ({"magnitude1"},),
    "phase1": ({"phase2", "magnitude1", "magnitude2"},),
    "phase2": ({"phase1", "magnitude1", "magnitude2"},),
    "fieldmap": ({"magnitude"},),
    "magnitude1": ({"phasediff"}, {"phase1", "phase2"}),
    "magnitude2": ({"phasediff"}, {"phase1", "phase2"}),
    "magnitude": ({"fieldmap"},),
}


def lone_magnitude(group: str) -> str:
    """Why a field-map magnitude is not placed: the one wording, whether its phase image is absent from the
    visit (plan's classification holds it before matching, so that it takes no run number) or held back by
    a gate (gate 4 below)."""
    return f"field-map magnitude whose phase image is not placed ({group!r}): a magnitude is never placed alone"


def lone_phase(suffix: str, missing: list[str], group: str) -> str:
    """Why a field-map phase (or fieldmap) image is not placed: its magnitude images are not."""
    return (f"field-map {suffix} image whose {'/'.join(missing)} image(s) are not placed ({group!r}): a field map "
            f"is never placed without its magnitudes; place them too (a rule that matches their series, or the "
            f"metadata their reason names)")


def _set_name(p: Placement) -> str:
    """The field-map set an image belongs to: its name without the suffix."""
    return p.stem.rsplit("_", 1)[0]


def _hold_back_lone_fieldmaps(placements: list[Placement], held_sets: dict[str, ReasonGroup]
                              ) -> tuple[list[Placement], list[SeriesOutcome]]:
    """Gate 4, whatever rule placed them (the default's or a site's): the images of a field-map set (same
    entities, suffixes of :data:`_SET_NEEDS`) are placed together or not at all: a magnitude without its phase,
    a phase without its magnitudes is held back, until what is left is whole. What a person must do is what
    the set's image held back by an earlier gate needs (``held_sets``), else a rule that places the others."""
    def group(p: Placement) -> str:
        return p.series.protocol_name or p.series.series_description

    def suffix(p: Placement) -> str:
        return p.stem.rsplit("_", 1)[-1]

    members = [p for p in placements if p.datatype == "fmap" and suffix(p) in _SET_NEEDS]
    reasons: dict[str, str] = {}
    while True:
        sets: dict[str, set[str]] = {}
        for p in members:
            if p.session_path not in reasons:
                sets.setdefault(_set_name(p), set()).add(suffix(p))
        lone = {}
        for p in members:
            present = sets.get(_set_name(p), set())
            if p.session_path in reasons or any(needed <= present for needed in _SET_NEEDS[suffix(p)]):
                continue
            missing = sorted(min(_SET_NEEDS[suffix(p)], key=len) - present)
            lone[p.session_path] = (lone_magnitude(group(p)) if suffix(p).startswith("magnitude")
                               else lone_phase(suffix(p), missing, group(p)))
        if not lone:
            break
        reasons.update(lone)
    kept, held = placements, []
    by_group: dict[ReasonGroup, dict[str, str]] = {}
    for p in members:
        if p.session_path in reasons:
            by_group.setdefault(held_sets.get(_set_name(p), ReasonGroup.DECIDE), {})[p.session_path] = reasons[p.session_path]
    for group_, named in by_group.items():
        kept, more = hold_back(kept, named, group_)
        held += more
    return kept, held


def _hold_back_ill_defined(placements: list[Placement], schemas: SidecarSchemas
                           ) -> tuple[list[Placement], list[SeriesOutcome]]:
    """Keep only placements whose sidecar meets its schema; drop references to the others."""
    faults = {p.session_path: check_placement(schemas, p, p.sidecar_schema) for p in placements}
    return hold_back(placements, {path: "; ".join(f) + SCHEMA_NEXT_STEP for path, f in faults.items() if f},
                     ReasonGroup.SUPPLY)


SCHEMA_NEXT_STEP = ("; a site adds or corrects such a field with sidecar_changes in its own heuristic, or checks "
                    "its images against its own sidecar schemas (--schemas)")


def hold_back(placements, reasons: dict[str, str], group: ReasonGroup) -> tuple[list[Placement], list[SeriesOutcome]]:
    """Take the placements named in ``reasons`` (by relpath) out, each held back with its reason and the
    :class:`ReasonGroup` of what a person must do; no IntendedFor may still name them."""
    kept = [p for p in placements if p.session_path not in reasons]
    held = [SeriesOutcome(p.series, SeriesStatus.HELD_BACK, reasons[p.session_path], p.rule, group)
            for p in placements if p.session_path in reasons]
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
        targets.setdefault(placement.session_path, []).append(placement)
    for placement in placements:
        *entities, suffix = placement.stem.split("_")
        bad = [e for e in entities if not _ENTITY.match(e)]
        if bad or not _SUFFIX.match(suffix):
            reason = (f"heuristic gives a name that is not a BIDS name: {placement.stem} ({', '.join(bad) or suffix}); "
                      f"correct rule {placement.rule!r} (entities key-label, letters and digits only)")
            rejected.append(SeriesOutcome(placement.series, SeriesStatus.REJECTED, reason, placement.rule,
                                          ReasonGroup.DECIDE))
        elif len(targets[placement.session_path]) > 1:
            others = [p.series for p in targets[placement.session_path] if p is not placement]
            reason = (f"collision: {placement.session_path} is also the target of "
                      + ", ".join(_series_name(s) for s in others)
                      + "; give the rules an entity that tells them apart (run-, acq- or echo-)")
            rejected.append(SeriesOutcome(placement.series, SeriesStatus.REJECTED, reason, placement.rule,
                                          ReasonGroup.DECIDE))
        else:
            kept.append(placement)
    return kept, rejected


def _series_name(series: Series) -> str:
    return f"series {series.series_number} {series.series_description!r}"


def _hold_back_incomplete(plan: VisitPlan) -> VisitPlan:
    """The plan without its incomplete images, each held back with the reason.

    Raises :class:`VisitError` when dcm2niix reports missing images of no identifiable series.
    """
    extracted = plan.extracted
    verdict = check_visit(extracted.series, extracted.series_images, extracted.converter_log,
                          extracted.converter_exit)
    if verdict.unattributed:
        raise VisitError(f"visit {extracted.visit.scan_research_id}: dcm2niix reports missing images of no "
                         f"single series ({' | '.join(verdict.unattributed[:3])}): the visit is not placed")
    reasons = {p.session_path: f"incomplete image, not placed: {verdict.incomplete[str(p.series.nifti)]}; export "
                          "the whole series again (the next run converts the visit again)"
               for p in plan.placements if str(p.series.nifti) in verdict.incomplete}
    kept, held = hold_back(plan.placements, reasons, ReasonGroup.FIX_EXPORT)
    not_placed = list(plan.not_placed)
    if extracted.converter_exit != 0:
        not_placed = [SeriesOutcome(o.series, SeriesStatus.HELD_BACK, f"dcm2niix exited {extracted.converter_exit} before "
                                    "it wrote an image of this series (disk full? unreadable file?); "
                                    "the next run converts the visit again", group=ReasonGroup.FIX_EXPORT)
                      if o.status == SeriesStatus.NOT_CONVERTED else o for o in not_placed]
    return replace(plan, placements=tuple(kept), not_placed=tuple(not_placed) + tuple(held))
