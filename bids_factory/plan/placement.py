"""Stage 3 — plan: decide where each converted series goes, with the dcm2bids engine.

Matching, run numbering, custom entities, ``id``/IntendedFor substitution and ``sidecar_changes``
are dcm2bids' own (``dcm2bids.sidecar.SidecarPairing`` and ``Acquisition``): heuristics behave
here exactly as in Dcm2Bids. This stage decides; it writes nothing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from bids_factory.plan.classify import Classification, classify_visit, strip_keys
from bids_factory.dates import DatePolicy
from bids_factory.privacy.deidentify import Deidentification, keep_allowed
from bids_factory.config.heuristic import Heuristic
from bids_factory.errors import VisitError
from bids_factory.model import (ExtractedVisit, Placement, ReasonGroup, Series, SeriesOutcome, SeriesStatus,
                                  VisitPlan, shortened, too_long_file_name)
from bids_factory.checks.gates import GateContext, gate_plan
from bids_factory.checks.sidecar_schemas import SidecarSchemas

log = logging.getLogger(__name__)
NO_IMAGE = ("dcm2niix made no image of this DICOM series (raw data, spectroscopy or a report: no image to "
            "place); nothing to do")



class _Dcm2bidsRootLines(logging.Filter):
    """dcm2bids logs some lines on the root logger (``No id found for 'IntendedFor' value 'bold'`` for every
    field map of a visit without a bold): they reach the terminal raw. They go to this module's logger at
    debug instead (``--debug`` shows them); every other root record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if f"{os.sep}dcm2bids{os.sep}" not in record.pathname:
            return True
        log.debug("dcm2bids: %s", record.getMessage())
        return False


def matching_engine():
    """Import the dcm2bids engine without its import-time call to GitHub.

    dcm2bids checks online for a newer BIDS schema when it is imported; a hospital host has no
    internet (the call can hang for seconds). The check only logs a suggestion, so it is turned off.
    """
    dcm2bids_log = logging.getLogger("dcm2bids")
    if not dcm2bids_log.isEnabledFor(logging.DEBUG):
        dcm2bids_log.setLevel(logging.ERROR)
    if not any(isinstance(f, _Dcm2bidsRootLines) for f in logging.getLogger().filters):
        logging.getLogger().addFilter(_Dcm2bidsRootLines())
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
    by_sidecar = {str(series.sidecar): series for series in extracted.series}
    sidecars = sorted(Sidecar(path, _merged_options(heuristic).get("compKeys", DEFAULT.compKeys)) for path in by_sidecar)
    # The pre-matching step: derived keys in the copy dcm2bids matches on (``data``), never in the
    # sidecar it writes out (``origData``).
    classes = classify_visit([(by_sidecar[s.filename], s.data) for s in sidecars])
    for sidecar in sidecars:
        sidecar.data.update(classes[sidecar.filename].keys())
    pairing = _pairing(SidecarPairing, DEFAULT, sidecars, heuristic.all_descriptions, _merged_options(heuristic))
    pairing.graph = _layered_graph(SidecarPairing, DEFAULT, sidecars, heuristic)
    participant = Participant(extracted.subject_label, extracted.visit.session_label)
    graph = pairing.graph
    pairing.build_acquisitions(participant)
    for acquisition in pairing.acquisitions:
        _add_classified_entities(acquisition, graph[acquisition.src_sidecar][0], classes[acquisition.src_sidecar.filename])
    pairing.find_runs()

    not_placed = [SeriesOutcome(s, SeriesStatus.NOT_CONVERTED, NO_IMAGE, group=ReasonGroup.NOTHING)
                  for s in extracted.unconverted] + list(extracted.refused)
    for sidecar, matched in graph.items():
        series = by_sidecar[sidecar.filename]
        if not matched:
            not_placed.append(_not_matched(series, classes[sidecar.filename]))
        elif len(matched) > 1:
            not_placed.append(SeriesOutcome(series, SeriesStatus.AMBIGUOUS, _ambiguity(heuristic, matched),
                                            group=ReasonGroup.DECIDE))

    placements: list[Placement] = []
    removed = Deidentification()
    holding: dict[str, frozenset] = {}  # session_path -> keys removed because their value holds an identifier
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
        holding[placements[-1].session_path] = frozenset(
            key for key, value in given.items() if key not in sidecar and extracted.identifiers.found_in(value))
    placements = [_intended_for_its_grid(p, placements, classes) for p in placements]
    _refuse_too_long_names(extracted, placements)
    matched = {str(s.filename): d[0].get("bids_factory", {}) for s, d in graph.items() if len(d) == 1}
    context = GateContext(
        schemas=schemas,
        aslcontext={path: (own.get("aslcontext"), classes[path].volumes) for path, own in matched.items()},
        holding=holding,
    )
    return gate_plan(VisitPlan(
        extracted=extracted,
        placements=tuple(placements),
        not_placed=tuple(not_placed),
        heuristic_name=heuristic.combined_name,
        heuristic_sha256=heuristic.combined_sha256,
        deidentification=extracted.deidentification.merge(removed),
        sidecar_fields=frozenset(key for sidecar in sidecars for key in sidecar.data),
    ), context)


def _refuse_too_long_names(extracted: ExtractedVisit, placements: list[Placement]) -> None:
    """A BIDS file name longer than a file system holds fails its visit, named (never the run)."""
    for placement in placements:
        names = [f"{placement.stem}.nii.gz", f"{placement.stem}.json",
                 *(f"{placement.stem}{extra.suffix}" for extra in placement.series.extras),
                 *(placement.extra_file_stem(name) for name, _ in placement.extra_files)]
        for name in names:
            if too_long_file_name(name):
                raise VisitError(f"visit {shortened(extracted.visit.scan_research_id)}: the BIDS file name "
                                 f"{shortened(name, 60)} would be {len(os.fsencode(name))} bytes, longer than a file system "
                                 "holds (255): not converted (shorten the visit folder name, the PatientID or the "
                                 "heuristic's entities)")


_MATCHING_KEYS = ("search_method", "case_sensitive")
_PLACING_KEYS = ("compKeys", "dup_method", "bids_uri")


def _pairing(SidecarPairing, DEFAULT, sidecars, descriptions: list[dict], config: dict):
    return SidecarPairing(
        sidecars,
        descriptions,
        extractors=config.get("extractors", {}),
        search_method=config.get("search_method", DEFAULT.search_method),
        case_sensitive=config.get("case_sensitive", DEFAULT.case_sensitive),
        dup_method=config.get("dup_method", DEFAULT.dup_method),
        post_op=[],
        bids_uri=config.get("bids_uri", DEFAULT.bids_uri),
    )


def _merged_options(heuristic: Heuristic) -> dict:
    """How the matched series are named and numbered: the site file's settings, the fallback's where the site
    says nothing; the extractors of both (a rule's custom_entities name their groups)."""
    merged: dict = {}
    for layer in reversed(heuristic.layers):
        merged.update({k: v for k, v in layer.config.items() if k in _PLACING_KEYS + _MATCHING_KEYS})
    extractors: dict = {}
    for layer in reversed(heuristic.layers):
        for field, patterns in layer.config.get("extractors", {}).items():
            extractors[field] = list(dict.fromkeys(extractors.get(field, []) + list(patterns)))
    return {**merged, "extractors": extractors}


def _layered_graph(SidecarPairing, DEFAULT, sidecars, heuristic: Heuristic) -> dict:
    """Sidecar -> the rules that match it: dcm2bids' matching (``build_graph``) per file, with that file's
    search_method and case_sensitive; the first file (the site's) with a matching rule decides, so a site rule
    wins over a default rule on the same series and rules of two files are never ambiguous."""
    graphs = [_pairing(SidecarPairing, DEFAULT, sidecars, layer.descriptions, layer.config).build_graph()
              for layer in heuristic.layers]
    return {sidecar: next((graph[sidecar] for graph in graphs if graph[sidecar]), [])
            for sidecar in graphs[0]}


def _ambiguity(heuristic: Heuristic, matched: list[dict]) -> str:
    """Several rules of one file match a series: the rules and the fix."""
    rules = ", ".join(heuristic.rule_name(d) for d in matched)
    return (f"several rules of heuristic {heuristic.layer_of(matched[0]).path.name} match: {rules}; add a criterion "
            f"that tells them apart (e.g. SeriesDescription, EchoNumber or ImageType) or delete all but one")


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
    same = {f"/{p.session_path}" for p in placements if p is not placement
            and classes[str(p.series.sidecar)].grid == own.grid}
    targets = [intended] if isinstance(intended, str) else list(intended)
    served = [t for t in targets if any(t.endswith(path) for path in same)]
    if not served or served == targets:
        return placement
    return replace(placement, sidecar={**placement.sidecar, "IntendedFor": served[0] if len(served) == 1 else served})


def _not_matched(series: Series, classification: Classification) -> SeriesOutcome:
    """No rule matched: the classification says why (held back with the reason, or what it is)."""
    if classification.hold:
        return SeriesOutcome(series, SeriesStatus.HELD_BACK, classification.hold, group=classification.group())
    return SeriesOutcome(series, SeriesStatus.UNMATCHED, classification.reason(), group=classification.group())


