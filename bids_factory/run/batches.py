"""The stages of a run with work to do: 2 extract -> 3 plan (per visit, in parallel) -> 4 write -> 5 ehr -> 6 finalize.

:mod:`bids_factory.run.pipeline` imports this module only when a visit is new or changed, or the dataset-level
files (EHR tables, participants, sessions...) must be computed again: this is where dcm2niix, pydicom,
nibabel, pandas, jsonschema and pybids come in; a run with nothing new never imports them.

Workers (``--jobs``) convert and plan visits in the run's staging folder, without any lock; then,
holding the dataset's write lock, this process alone places the visits one at a time, writes the
EHR tables and the dataset-level files, runs the validator.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import os
import traceback
from pathlib import Path

from bids_factory.checks.gates import hold_back_refused
from bids_factory.privacy.deidentify import load_allow_list
from bids_factory.ehr.identifiers import IdentifierKeys
from bids_factory.ehr.tables import case_near_misses, collect_ehr, linkage, load_ehr_mapping
from bids_factory.errors import BidsFactoryError, VisitError, VisitWithoutImages
from bids_factory.extract.dicom_visit import dcm2niix_version, extract
from bids_factory.finalize.dataset_files import dataset_files
from bids_factory.config.heuristic import Heuristic, unknown_criteria
from bids_factory.privacy.visit_identifiers import identifier_digests
from bids_factory.model import Problem, RunSummary, Visit, VisitPlan, VisitResult, VisitStatus
from bids_factory.plan.placement import matching_engine, plan_visit
from bids_factory.extract.processes import die_with_parent
from bids_factory.run.progress import Phases, Progress
from bids_factory.extract.redact import cleaner, redact_plan, redact_visit
from bids_factory.checks.required_metadata import schema_rules
from bids_factory.run.rules import Rules
from bids_factory.run.options import ConvertOptions
from bids_factory.extract.staged_images import gzip_placed_images
from bids_factory.report.thumbnails import pictures
from bids_factory.checks.validator import dataset_view, issue_summary, run_validator, unindexed_images
from bids_factory.tsv import render_tsv
from bids_factory.write.append_only import APPLY_OPTION
from bids_factory.write.dataset_writer import DatasetWriter
from bids_factory.write.dataset_paths import IDENTIFIER_KEYS_FILE, LINKAGE, REPLACED, SUBJECTS_FILE, VISIT_RECORDS
from bids_factory.write.session_move import move_session
from bids_factory.write.subject_identity import SubjectGuard, case_twin

log = logging.getLogger(__name__)
BATCH_VISITS = 16  # visits converted before they are placed (at least 4 per --jobs worker)


def convert_visits(todo: list[Visit], staging: Path, writer: DatasetWriter, rules: Rules, options: ConvertOptions,
                   report: RunSummary, phases: Phases) -> None:
    """Convert the new or changed visits batch by batch and place each batch under the write lock."""
    progress = Progress(len(todo), "convert")
    batch = max(BATCH_VISITS, 4 * worker_count(options.jobs, len(todo)))
    fields: set[str] = set()  # every sidecar field of the run, for the heuristic's criteria
    for start in range(0, len(todo), batch):
        # converted outside the lock (parallel runs convert at once), placed batch by batch: a long
        # first run keeps what it converted if it is stopped, and staging never holds the whole export
        outcomes = _convert_all(todo[start:start + batch], start, staging, rules, options, progress)
        fields.update(*(o.sidecar_fields for _, o in outcomes if isinstance(o, VisitPlan)))
        if options.validate:
            phases.start("check", "bids-validator-deno on the converted visits before they are placed")
            outcomes = hold_back_refused(outcomes, staging / f"check-{start:05d}")
        phases.start("place", f"{sum(1 for _, o in outcomes if isinstance(o, VisitPlan))} visits")
        with writer.lock.held(options.wait):
            _place_all(outcomes, writer, rules, options, report)
        writer.lock.discard_staged(staging, [f"visit-{i:05d}" for i in range(start, start + batch)])
    progress.close()
    report.problems.extend(_criteria_problems(rules.heuristic, frozenset(fields)))


def update_dataset_files(writer: DatasetWriter, options: ConvertOptions, rules: Rules | None, report: RunSummary,
                         staging: Path, phases: Phases) -> list[Problem]:
    """EHR tables, dataset-level files, linkage and the validator over what changed (under the write lock).
    Returns the EHR problems (also added to ``report``)."""
    phases.start("EHR")
    mapping = rules.ehr_mapping if rules else load_ehr_mapping(options.ehr_mapping) if options.ehr_mapping else None
    subjects = writer.read_json(SUBJECTS_FILE, default={}) or {}
    guard = SubjectGuard(subjects, writer.subject_key() if subjects else b"")
    ehr = collect_ehr(options.export, mapping, other_patient=guard.other_patient, own_id=guard.own_id,
                      identifier_keys=IdentifierKeys(
        writer.subject_key(), writer.read_json(IDENTIFIER_KEYS_FILE, default={}) or {}, options.dates))
    ehr = dataclasses.replace(ehr, problems=tuple(  # export paths name their day: the date policy applies
        Problem(options.dates.mask_text(p.path), options.dates.mask_text(p.reason), p.fatal) for p in ehr.problems))
    report.problems.extend(ehr.problems)
    ehr_problems = list(ehr.problems)
    placed = [v for v in report.visits if v.status == VisitStatus.PLACED]
    changes = [f"Placed sub-{v.subject_label} ses-{v.session_label} ({v.placed} images) "
               f"from visit {v.scan_research_id}" for v in placed if v.placed]
    unannounced = writer.marks.unannounced()  # also of a run killed before it wrote CHANGES
    written = (writer.root / "CHANGES").read_text(encoding="utf-8") if (writer.root / "CHANGES").exists() else ""
    this_run = {writer.dates.mask_text(line) for line in changes}  # the marks hold the lines as CHANGES does
    changes += [line for line in unannounced.values()
                if line and line not in this_run and f"  - {line}\n" not in written]
    phases.start("dataset files")
    unlisted = writer.marks.unlisted_subjects()
    writer.write_files(dataset_files(writer, dcm2niix_version(), options.dataset_name, changes, ehr,
                                    authors=options.authors, license=options.license))
    writer.marks.mark_listed(unlisted or ())  # their sessions.tsv are written
    writer.marks.mark_announced(unannounced)  # CHANGES says them
    if ehr.tables:  # an export without EHR tables has no linkage to report
        image_subjects = frozenset(sub.removeprefix("sub-") for sub, _, _ in writer.index.sessions())
        report.images_without_ehr, report.ehr_without_images = linkage(ehr.ehr_subjects, image_subjects)
        near = [Problem("EHR", f"EHR participant sub-{ehr_label} and the images' sub-{image_label} differ only in "
                               "case: not linked (labels are case-sensitive); correct the id if they are one patient",
                        fatal=False) for ehr_label, image_label in case_near_misses(ehr.ehr_subjects, image_subjects)]
        report.problems.extend(near)
        ehr_problems += near
    rows = [{"participant_id": f"sub-{label}", "linkage": "images without EHR row"} for label in report.images_without_ehr]
    rows += [{"participant_id": f"sub-{label}", "linkage": "EHR without images"} for label in report.ehr_without_images]
    writer.write_text(LINKAGE, render_tsv(["participant_id", "linkage"], rows))  # the summary names the first few
    if options.validate and (writer.changed or not report.visits):
        phases.start("validator", "bids-validator-deno and the pybids read-back")
        _validate(writer, report, staging)
    return ehr_problems


def convert_visit(visit: Visit, staging: Path, rules: Rules, options: ConvertOptions) -> VisitPlan | None:
    """A worker's whole work on one visit: :func:`extract_and_plan`, then the images it places made ready to
    place: their thumbnails (from the plain staged image) and gzipped (:mod:`bids_factory.extract.staged_images`)."""
    return _visit_work(visit, staging, rules, options, _ready_to_place)


def extract_and_plan(visit: Visit, staging: Path, rules: Rules, options: ConvertOptions) -> VisitPlan | None:
    """One visit extracted (redacted) and planned, in staging; precise errors become :class:`VisitError`
    (``inventory`` stops here)."""
    return _visit_work(visit, staging, rules, options, None)


def _ready_to_place(plan: VisitPlan) -> VisitPlan:
    return gzip_placed_images(dataclasses.replace(plan, thumbnails=_thumbnails(plan)))


def _visit_work(visit: Visit, staging: Path, rules: Rules, options: ConvertOptions, then) -> VisitPlan | None:
    clean = options.dates.mask_text  # and the visit's identifiers, once they are read
    try:
        extracted = extract(visit, staging, rules.heuristic.config.get("dcm2niixOptions", ""),
                            options.participant_labels, options.nifti_patient_field)
        if extracted is None:
            return None
        clean = cleaner(extracted.identifiers, options.dates)
        extracted = redact_visit(extracted, options.dates)
        plan = redact_plan(plan_visit(extracted, rules.heuristic, rules.schemas, options.keep_site_fields,
                                      options.dates), options.dates)
        return then(plan) if then is not None else plan
    except VisitWithoutImages as exc:
        raise VisitWithoutImages(clean(str(exc)), tuple(Problem(clean(p.path), clean(p.reason), p.fatal)
                                                       for p in exc.notes), exc.count) from None
    except BidsFactoryError as exc:  # every message leaving a worker goes through the visit's redaction
        raise type(exc)(clean(str(exc))) from None
    except Exception as exc:  # a bug or an unforeseen input: this visit fails, the others go on
        log.debug("visit %s failed:\n%s", visit.scan_research_id, clean(traceback.format_exc()))
        raise VisitError(clean(f"visit {visit.scan_research_id}: internal error {type(exc).__name__}: {exc}")
                         ) from None


def _thumbnails(plan: VisitPlan) -> dict:
    """Pictures for the report (session_path -> report.thumbnails.Pictures); an image nibabel cannot picture simply has none."""
    found = {}
    for placement in plan.placements:
        try:
            found[placement.session_path] = pictures(placement.series.nifti)
        except Exception as exc:  # noqa: BLE001 - a thumbnail never fails a visit
            log.debug("no thumbnail for %s: %s", placement.session_path, exc)
    return found


def _criteria_problems(heuristic: Heuristic, fields: frozenset[str]) -> list[Problem]:
    """A criteria field no sidecar of the run has: a typo is refused (fatal), an absent field is named."""
    if not fields:
        return []
    problems = []
    for name, rules, close in unknown_criteria(heuristic, fields):
        if close:
            problems.append(Problem(str(heuristic.path), f"heuristic rule {rules}: criteria field {name!r} is in "
                                    f"no sidecar of this run; did you mean {close!r}? (the rule matched nothing)"))
        else:
            problems.append(Problem(str(heuristic.path), f"heuristic rule {rules}: criteria field {name!r} is in "
                                    "no sidecar of this run (the rule matched nothing)", fatal=False))
    return problems


def _validate(writer: DatasetWriter, report: RunSummary, staging: Path) -> None:
    """The validator and pybids' read-back over what this run changed (its sessions and the
    dataset-level files, in a scratch view): a daily run's cost does not grow with the dataset.
    ``bids-factory check`` checks the whole dataset."""
    sessions = list(dict.fromkeys((r["participant_id"], r["session_id"]) for r in writer.placed))
    view = dataset_view(writer.root, sessions, staging / "view")
    with cf.ThreadPoolExecutor(max_workers=1) as pool:  # the validator (a subprocess) runs while pybids reads
        validating = pool.submit(run_validator, view)
        unindexed = unindexed_images(view, writer.placed)
        result = validating.result()
    for missing in unindexed:
        report.problems.append(Problem(missing, "pybids does not find this placed image when it reads the dataset"))
    if result is None:
        log.warning("bids-validator-deno is not installed: the dataset was not validated")
        return
    if result.failure:  # placed visits passed the gate: what is not vouched for is the dataset-level files
        report.problems.append(Problem(str(writer.root), f"bids-validator-deno could not check the dataset: "
                                                         f"{result.failure}"))
        return
    report.validator_errors, report.validator_warnings = len(result.errors), len(result.warnings)
    report.validator_output = writer.runs.write_validator_output(result.output) if result.output else None
    report.validator_issues = issue_summary(result)
    for issue in result.errors:
        report.problems.append(Problem(issue.location or str(writer.root),
                                       f"BIDS validator: {issue.code} {issue.message}".strip()))


def _convert_all(visits: list[Visit], start: int, staging: Path, rules: Rules, options: ConvertOptions,
                 progress: Progress) -> list:
    """(visit, VisitPlan | None | VisitError) for every visit, converted ``jobs`` at a time."""
    outcomes = []
    for visit, outcome in _run_workers(visits, start, staging, rules, options):
        outcomes.append((visit, outcome))
        status = ("no image (non-image objects only)" if isinstance(outcome, VisitWithoutImages)
                  else "failed" if isinstance(outcome, VisitError)
                  else "skipped (subject not in --participant-label)" if outcome is None else "converted")
        progress.step(f"{visit.scan_research_id}: {status}")
    return outcomes


def _place_all(outcomes: list, writer: DatasetWriter, rules: Rules, options: ConvertOptions,
               report: RunSummary) -> None:
    """Move converted visits into the dataset (under the lock), recording their state."""
    guard = SubjectGuard(writer.read_json(SUBJECTS_FILE, default={}) or {}, writer.subject_key())
    sessions = {(sub, ses): visit for sub, ses, visit in writer.index.sessions()}
    for visit, outcome in outcomes:
        if isinstance(outcome, VisitWithoutImages):  # reports, presentation states...: a note, not a failure
            result = VisitResult(visit.scan_research_id, VisitStatus.NOTHING_TO_PLACE,
                                 problems=tuple(outcome.notes) or (Problem(_where(visit), str(outcome), fatal=False),))
            report.non_image_objects += outcome.count
        elif isinstance(outcome, VisitError):
            result = VisitResult(visit.scan_research_id, VisitStatus.FAILED,
                                 problems=(Problem(_where(visit), str(outcome)),))
        elif outcome is None:
            result = VisitResult(visit.scan_research_id, VisitStatus.NOT_SELECTED)
        else:
            result = _place(outcome, writer, guard, sessions, visit.scan_research_id in options.apply_changes)
            result.problems = outcome.extracted.problems + result.problems
            report.non_dicom_files += outcome.extracted.non_dicom_files
            report.non_image_objects += outcome.extracted.non_image_objects
            if outcome.extracted.converter_exit != 0:  # an image may be missing: not done, retried next run
                result.problems += (Problem(_where(visit), (
                    f"visit {visit.scan_research_id}: dcm2niix exited {outcome.extracted.converter_exit}; "
                    "series without a complete image were held back and the next run converts the visit "
                    "again")),)
            elif result.status in (VisitStatus.PLACED, VisitStatus.NOTHING_TO_PLACE):
                writer.states.write({
                    "scan_research_id": visit.scan_research_id, "fingerprint": visit.fingerprint,
                    "settings": rules.settings_key(options), "status": result.status,
                    "subject_label": result.subject_label, "session_label": result.session_label,
                    # series of a visit with nothing placed (no visit record): the report still shows them
                    "not_placed": [o.record() for o in result.not_placed] if result.status != VisitStatus.PLACED else [],
                })
        report.visits.append(result)
        report.problems.extend(result.problems)


def _shared_by_workers() -> None:
    """What every worker would build again for itself, built once here: the workers fork from this
    process and share it (the schema's allow-list and required fields, dcm2bids, dcm2niix's version)."""
    load_allow_list()
    schema_rules()
    matching_engine()
    dcm2niix_version()


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a SLURM or container limit counts), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this system
        return os.cpu_count() or 1


def worker_count(jobs: int, visits: int) -> int:
    """``--jobs``, but never more workers than visits to convert nor than the CPUs the run may use."""
    return max(1, min(jobs, visits, usable_cpus()))


def _run_workers(visits, start: int, staging: Path, rules: Rules, options: ConvertOptions):
    """Yield (visit, VisitPlan | None | VisitError) in export order, converting ``jobs`` at once."""
    folders = [staging / f"visit-{start + i:05d}" for i in range(len(visits))]
    workers = worker_count(options.jobs, len(visits))
    if workers <= 1:
        for visit, folder in zip(visits, folders):
            try:
                yield visit, convert_visit(visit, folder, rules, options)
            except VisitError as exc:
                yield visit, exc
        return
    _shared_by_workers()
    with cf.ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent,
                                initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(convert_visit, visit, folder, rules, options)
                   for visit, folder in zip(visits, folders)]
        for visit, future in zip(visits, futures):
            try:
                yield visit, future.result()
            except VisitError as exc:
                yield visit, exc


def _place(plan: VisitPlan, writer: DatasetWriter, guard: SubjectGuard, sessions: dict,
           apply_changes: bool = False) -> VisitResult:
    visit = plan.extracted.visit
    subject, session = f"sub-{plan.subject_label}", f"ses-{plan.session_label}"
    base = dict(scan_research_id=visit.scan_research_id, subject_label=plan.subject_label,
                session_label=plan.session_label, not_placed=plan.not_placed)
    raw_id = plan.extracted.identifiers.patient_id
    if guard.taken_by_another(plan.subject_label, raw_id):
        reason = (f"visit {visit.scan_research_id}: two different PatientIDs give the same subject label "
                  f"{subject}; not merged (rename one patient's id upstream)")
        return VisitResult(**base, status=VisitStatus.FAILED, problems=(Problem(_where(visit), reason),))
    folded = case_twin(plan.subject_label, set(guard.entries) | {sub.removeprefix("sub-") for sub, _ in sessions})
    if folded is not None:
        reason = (f"visit {visit.scan_research_id}: subject label {subject} differs from sub-{folded} only in case "
                  "(one folder on a case-insensitive disk); not merged (rename one patient's id upstream)")
        return VisitResult(**base, status=VisitStatus.FAILED, problems=(Problem(_where(visit), reason),))
    folded = case_twin(session, {ses for sub, ses in sessions if sub == subject})
    if folded is not None:
        reason = (f"visit {visit.scan_research_id}: session label {session} of {subject} differs from {folded} "
                  "only in case (one folder on a case-insensitive disk); not merged")
        return VisitResult(**base, status=VisitStatus.FAILED, problems=(Problem(_where(visit), reason),))
    owner = sessions.get((subject, session))
    if owner is not None and owner != visit.scan_research_id:
        reason = (f"visit {visit.scan_research_id}: session label {session} of {subject} is already taken by "
                  f"visit {owner}; not merged")
        return VisitResult(**base, status=VisitStatus.FAILED, problems=(Problem(_where(visit), reason),))
    elsewhere = next(((sub, ses) for (sub, ses), owner_ in sessions.items()  # a corrected PatientID
                      if owner_ == visit.scan_research_id and (sub, ses) != (subject, session)), None)
    if not plan.placements and owner is None and elsewhere is None:  # a placed session is compared instead
        return VisitResult(**base, status=VisitStatus.NOTHING_TO_PLACE)
    if guard.record(plan.subject_label, raw_id):  # the collision guard is on disk before the visit is
        writer.write_json(SUBJECTS_FILE, guard.entries)
    digests = writer.read_json(IDENTIFIER_KEYS_FILE, default={}) or {}
    updated = identifier_digests(guard.secret, plan.extracted.identifiers, digests.get(plan.subject_label))
    if digests.get(plan.subject_label) != updated:
        digests[plan.subject_label] = updated
        writer.write_json(IDENTIFIER_KEYS_FILE, digests)  # the EHR stage finds them in the subject's rows
    moved = ()
    if elsewhere is not None:
        record = writer.read_json(VISIT_RECORDS / f"{elsewhere[0]}_{elsewhere[1]}.json")
        line = move_session(writer, record, plan.subject_label, plan.extracted.staging)
        del sessions[elsewhere]
        moved = (Problem(f"{subject}/{session}", line, fatal=False),)
    kept_before = len(writer.kept_aside)
    placed = writer.place_visit(plan, plan.extracted.staging, apply_changes)
    sessions[(subject, session)] = visit.scan_research_id
    kept = tuple(Problem(path, (
        f"changed by hand since bids-factory wrote it, and the reconverted visit writes this file again: "
        f"the hand-made copy is kept at {aside} (a sidecar field belongs in the heuristic's sidecar_changes, "
        "which every conversion applies)"), fatal=False) for path, aside in writer.kept_aside[kept_before:])
    left = tuple(Problem(f"{subject}/{session}/{c.path}", f"{c.describe()}: applied ({APPLY_OPTION} "
                         f"{visit.scan_research_id}); its files are kept under {REPLACED}/", fatal=False)
                 for c in placed.applied)
    return VisitResult(**base, status=VisitStatus.PLACED, placed=len(placed.placements), problems=moved + kept + left)


def _where(visit: Visit) -> str:
    return ", ".join(f.relpath for f in visit.folders)
