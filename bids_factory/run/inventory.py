"""``bids-factory inventory``: what a convert would do with every series of an export, without doing it.

The pipeline's own stages run on each visit (discover, then :func:`bids_factory.run.batches.extract_and_plan`:
dcm2niix, the heuristic, the sidecar schemas; then the validator's gate, ``hold_back_refused``), in a temporary folder
that is removed at the end: nothing is written anywhere else (no dataset, no state).

Why a full conversion into the temporary folder and not dcm2niix ``-b o`` (sidecars only): the sidecar
schemas check ``ImageDimensions`` and ``VoxelSize`` from the NIfTI header, and the validator checks the
image itself; without the image, inventory could not tell which series a convert holds back. Measured on
the GE session (3 series, 288 files, dcm2niix alone, a shared 2-core machine): 2.6-3.4 s with the images,
0.9 s sidecars only; those seconds buy the same answer convert gives. What
inventory cannot tell: clashes with a dataset that already exists (a subject label taken by another
patient, a session label taken by another visit); convert reports those.

Each series carries what the classification says it is (``class``) and the fields BIDS requires of that
class that its sidecar lacks (``missing``): :mod:`bids_factory.run.starter` writes a site's first heuristic
from them.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bids_factory.checks.gates import hold_back_refused
from bids_factory.run.batches import extract_and_plan
from bids_factory.discover.visits import discover
from bids_factory.errors import VisitError, VisitWithoutImages
from bids_factory.model import Problem, Series
from bids_factory.report.summary import problem_lines
from bids_factory.run.progress import Progress
from bids_factory.run.rules import Rules
from bids_factory.run.options import ConvertOptions
from bids_factory.checks.required_metadata import missing_fields
from bids_factory.checks.sidecar_schemas import header_facts
from bids_factory.plan.classify import classify_visit

log = logging.getLogger(__name__)

# Sidecar fields shown for each series: what a heuristic rule can match on, and what tells image kinds apart.
SIDECAR_FIELDS = ("Modality", "Manufacturer", "MRAcquisitionType", "ScanningSequence", "SequenceVariant",
                  "SequenceName", "PulseSequenceName", "EchoTime", "RepetitionTime", "InversionTime", "FlipAngle",
                  "PhaseEncodingDirection", "EchoNumber")


@dataclass(frozen=True)
class SeriesEntry:
    """One series of a visit and what a convert would do with it."""

    series_number: int | None
    series_description: str
    protocol_name: str
    image_type: tuple[str, ...]
    outcome: str  # "placed" | "unmatched" | "ambiguous" | "held-back" | "rejected" | "not-converted"
    bids_path: str | None = None  # sub-<p>/ses-<v>/<datatype>/<name>.nii.gz when placed
    rule: str | None = None  # the rule that matched it (None: no rule matched)
    reason: str | None = None
    dimensions: tuple[int, ...] = ()
    voxel_size: tuple[float, ...] = ()
    files: tuple[str, ...] = ()  # extensions dcm2niix wrote: .nii.gz, .json, .bval, .bvec
    sidecar: dict = field(default_factory=dict)
    source_folders: tuple[str, ...] = ()
    kind: str = ""  # the classification: "<datatype>/<suffix>", "derived", "localizer", "phase" or "unknown"
    missing: tuple[str, ...] = ()  # fields BIDS requires of that datatype/suffix that the sidecar lacks
    entities: tuple[tuple[str, str], ...] = ()  # the entities the classification derived (task, dir...)

    def record(self) -> dict:
        return {
            "SeriesNumber": self.series_number, "SeriesDescription": self.series_description,
            "ProtocolName": self.protocol_name, "ImageType": list(self.image_type),
            "dimensions": list(self.dimensions), "voxel_size": list(self.voxel_size), "files": list(self.files),
            "outcome": self.outcome, "bids_path": self.bids_path, "rule": self.rule, "reason": self.reason,
            "sidecar": self.sidecar, "source_folders": list(self.source_folders), "class": self.kind,
            "missing": list(self.missing),
        }


@dataclass(frozen=True)
class VisitEntry:
    scan_research_id: str
    folders: tuple[str, ...]
    participant_id: str | None = None
    session_id: str | None = None
    error: str | None = None  # the visit cannot be converted at all
    series: tuple[SeriesEntry, ...] = ()

    def record(self) -> dict:
        return {"scan_research_id": self.scan_research_id, "folders": list(self.folders),
                "participant_id": self.participant_id, "session_id": self.session_id, "error": self.error,
                "series": [s.record() for s in self.series]}


@dataclass(frozen=True)
class Inventory:
    export: str
    heuristic: str
    visits: tuple[VisitEntry, ...]
    problems: tuple[Problem, ...]

    def record(self) -> dict:
        return {"export": self.export, "heuristic": self.heuristic, "visits": [v.record() for v in self.visits],
                "problems": self.problem_records()}

    def problem_records(self) -> list[dict]:
        return [{"path": p.path, "reason": p.reason, "fatal": p.fatal} for p in self.problems]


def take_inventory(export: Path, heuristic: Path | None = None, schemas: Path | None = None,
                   visits: frozenset[str] = frozenset(), validate: bool = True,
                   nifti_patient_field: str = "PatientID") -> Inventory:
    """Every series of every visit (or of ``visits``) and its fate, computed in a removed temporary folder."""
    with tempfile.TemporaryDirectory(prefix="bids-factory-inventory-") as scratch:
        options = ConvertOptions(export=export, bids=Path(scratch) / "unused", heuristic=heuristic, schemas=schemas,
                                 validate=validate, nifti_patient_field=nifti_patient_field, visits=visits)
        rules = Rules.load(options, allow_placeholders=True)
        discovery = discover(export)
        problems = list(discovery.problems)
        known = {v.scan_research_id for v in discovery.visits}
        problems += [Problem(name, "visit named with --visit is not in the export") for name in sorted(visits - known)]
        selected = [v for v in discovery.visits if not visits or v.scan_research_id in visits]
        progress = Progress(len(selected), "inventory")
        outcomes = []
        for index, visit in enumerate(selected):
            try:
                plan = extract_and_plan(visit, Path(scratch) / f"visit-{index:05d}", rules, options)
            except VisitError as exc:
                plan = exc
            outcomes.append((visit, plan))
            progress.step(f"{visit.scan_research_id}: {'cannot be converted' if isinstance(plan, VisitError) else 'read'}")
        if validate:  # the validator's gate, as convert runs it
            outcomes = hold_back_refused(outcomes, Path(scratch) / "check")
        entries = []
        for visit, plan in outcomes:
            folders = tuple(f.relpath for f in visit.folders)
            if isinstance(plan, VisitWithoutImages):  # reports, presentation states...: a note, not an error
                entries.append(VisitEntry(visit.scan_research_id, folders))
                problems += list(plan.notes)
                continue
            if isinstance(plan, VisitError):
                entries.append(VisitEntry(visit.scan_research_id, folders, error=str(plan)))
                continue
            subject, session = f"sub-{plan.subject_label}", f"ses-{plan.session_label}"
            classes = _classes(plan.extracted.series)
            series = [_entry(p.series, "placed", classes, bids_path=f"{subject}/{session}/{p.session_path}", rule=p.rule)
                      for p in plan.placements]
            series += [_entry(o.series, o.status, classes, rule=o.rule, reason=o.reason) for o in plan.not_placed]
            series.sort(key=lambda s: (s.series_number is None, s.series_number or 0, s.bids_path or "",
                                       s.series_description))
            entries.append(VisitEntry(visit.scan_research_id, folders, subject, session, series=tuple(series)))
            problems += plan.extracted.problems
        progress.close()
        return Inventory(export=str(export), heuristic=rules.heuristic.combined_name, visits=tuple(entries),
                         problems=tuple(problems))


def _classes(series: tuple[Series, ...]) -> dict[str, tuple]:
    """Sidecar path -> (the classification, the fields BIDS requires of its datatype/suffix that are missing)."""
    data = {str(s.sidecar): json.loads(s.sidecar.read_text()) for s in series
            if s.sidecar is not None and s.sidecar.exists()}
    classes = classify_visit([(s, data[str(s.sidecar)]) for s in series if str(s.sidecar) in data])
    return {path: (c, tuple(missing_fields(c.datatype, c.suffix, c.entities, data[path]) if c.datatype else ()))
            for path, c in classes.items()}


def _entry(series: Series, outcome: str, classes: dict, bids_path: str | None = None, rule: str | None = None,
           reason: str | None = None) -> SeriesEntry:
    dimensions, voxel_size, files, sidecar = (), (), (), {}
    if series.nifti is not None and series.nifti.exists():
        try:
            facts = header_facts(series.nifti)
            dimensions, voxel_size = tuple(facts["ImageDimensions"]), tuple(facts["VoxelSize"])
        except Exception as exc:  # noqa: BLE001 - a damaged image is shown without dimensions
            log.debug("no header for %s: %s", series.nifti, exc)
        files = (".nii.gz",) + ((".json",) if series.sidecar else ()) + tuple(p.suffix for p in series.extras)
    if series.sidecar is not None and series.sidecar.exists():
        data = json.loads(series.sidecar.read_text())
        sidecar = {key: data[key] for key in SIDECAR_FIELDS if key in data}
    classification, missing = classes.get(str(series.sidecar), (None, ()))
    return SeriesEntry(series.series_number, series.series_description, series.protocol_name, series.image_type,
                       outcome, bids_path, rule, reason, dimensions, voxel_size, files, sidecar,
                       series.source_folders, classification.kind if classification else "", missing,
                       tuple(classification.entities.items()) if classification else ())


def inventory_lines(inventory: Inventory) -> list[str]:
    """The inventory for a terminal: one line per series, grouped by visit."""
    lines = [f"export {inventory.export}, heuristic {inventory.heuristic}"]
    for visit in inventory.visits:
        who = f" ({visit.participant_id} {visit.session_id})" if visit.participant_id else ""
        lines.append(f"visit {visit.scan_research_id}{who}: {', '.join(visit.folders)}")
        if visit.error:
            lines.append(f"  cannot be converted: {visit.error}")
        for s in visit.series:
            dims = "x".join(map(str, s.dimensions)) or "-"
            voxels = ("x".join(f"{v:g}" for v in s.voxel_size) + " mm") if s.voxel_size else ""
            what = f"-> {s.bids_path} (rule {s.rule})" if s.outcome == "placed" else f"{s.outcome}: {s.reason}"
            lines.append(f"  {'' if s.series_number is None else s.series_number:>4} {s.series_description!r} "
                         f"{'/'.join(s.image_type) or '-'} {dims} {voxels} {what}".replace("  -", " -"))
    lines += problem_lines(inventory.problem_records())  # one line per identical reason, as the summary
    counts = count_outcomes(inventory)
    lines.append("series: " + ", ".join(f"{n} {outcome}" for outcome, n in counts.items()) if counts else "series: none")
    return lines


def count_outcomes(inventory: Inventory) -> dict[str, int]:
    counts: dict[str, int] = {}
    for visit in inventory.visits:
        for s in visit.series:
            counts[s.outcome] = counts.get(s.outcome, 0) + 1
    return counts
