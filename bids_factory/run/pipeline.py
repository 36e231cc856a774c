"""The run, stage by stage: 1 discover -> 2 extract -> 3 plan (per visit, in parallel) -> 4 write -> 5 ehr -> 6 finalize.

This module decides what a run has to do, with light modules only: which visits are new or changed
(their recorded state and the settings key, from the heuristic's and schemas' content) and whether the
dataset-level files (EHR tables, participants, sessions...) must be computed again (what they were last
computed from, in ``code/bids-factory/dataset-files.json``). Only when there is work does it import
:mod:`bids_factory.run.batches` (the converter, the image, table and schema libraries, the validator):
a daily run on an unchanged export costs a walk of the export, the report page and the run record.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bids_factory import __version__
from bids_factory.discover.visits import discover
from bids_factory.errors import DatasetError, ExportLayoutError
from bids_factory.discover.export_layout import find_ehr_files
from bids_factory.model import HISTORY_VERSION, Problem, RunSummary, Visit, VisitResult, VisitStatus, readable
from bids_factory.run.progress import Phases
from bids_factory.report.page import VISITS_NAMED, DatasetOverview, index_page, subject_pages
from bids_factory.run.options import ConvertOptions, settings_key
from bids_factory.report.summary import NOT_PLACED_GROUPS, REASON_GROUPS, history_entry, merged_groups, run_record
from bids_factory.checks.placed_files import SessionDifference, session_differences
from bids_factory.checks.validator import ValidatorResult, unindexed_images, validated
from bids_factory.write.append_only import APPLY_OPTION, PendingChange
from bids_factory.write.dataset_writer import DatasetWriter
from bids_factory.write.dataset_paths import HISTORY, REPORT_PAGE, STATE_DIR, VISIT_RECORDS

if TYPE_CHECKING:  # only a run with work loads the rules
    from bids_factory.run.rules import Rules

# the dataset-level files finalize and the EHR stage write (their stamp: a curator's edit or removal is
# taken up by the next run, as before)
DATASET_LEVEL_FILES = ("dataset_description.json", "README", "README.md", "CHANGES", "participants.tsv",
                       "participants.json", "scans.json", "sessions.json", ".bidsignore")
RECORDED_OUTCOME = ("ehr_problems", "images_without_ehr", "ehr_without_images")  # reported again when unchanged


def convert(options: ConvertOptions) -> RunSummary:
    _refuse_dataset_in_export(options)
    check_dataset_folder(options.bids)
    settings = settings_key(options)  # the heuristic and schemas as data: checked below if a visit is converted
    phases = Phases()
    began = time.monotonic()
    writer = DatasetWriter(options.bids, options.dates)
    discovery = _discover(options, writer, settings)
    report = RunSummary(problems=list(discovery.problems))
    visits = _selected(discovery, options, report)
    todo = _changed_visits(visits, writer, settings, options, report, discovery.unchanged)
    rules: Rules | None = None
    if todo:
        from bids_factory.run import batches as conversion  # the conversion stages: only a run with work imports them

        rules = conversion.Rules.load(options)  # a bad heuristic or schema stops the run before any conversion
    if not options.wait:
        writer.lock.ensure_free()
    # announced once done: bad input (no export, a dataset path that cannot be a folder) stays one error line
    phases.done("discover", f"{len(report.visits) + len(todo)} visits in {options.export} "
                            f"({time.monotonic() - began:.1f} s)")
    with writer.lock.staging_area() as staging:
        with writer.lock.held(options.wait):  # a tighter date policy applies to what earlier runs wrote, first
            if not writer.apply_date_policy() and options.dates.keeps:  # (export paths name their day)
                writer.index.store_day_listings(discovery.listings, forget=options.rescan)
        phases.start("convert", f"{len(todo)} of {len(report.visits) + len(todo)} visits new or changed")
        if todo:
            conversion.convert_visits(todo, staging, writer, rules, options, report, phases)
        report.problems.extend(_unmatched_selection(options, report))
        report.problems.extend(pending_problems(writer.pending_records(), options))
        with writer.lock.held(options.wait):
            report.problems.extend(_gone_visits(writer, discovery.visit_ids))
            _dataset_level(writer, options, rules, report, staging, phases)
            phases.start("report")
            _record_run(writer, report)
        phases.close()
    return report


def _dataset_level(writer: DatasetWriter, options: ConvertOptions, rules: Rules | None, report: RunSummary,
                   staging: Path, phases: Phases) -> None:
    """The EHR tables and dataset-level files, computed again only when what they come from changed
    (a visit placed, an EHR file, the mapping, an option, one of the files): else the last
    computation's EHR problems and linkage are reported again, as a run that computed them would."""
    inputs = _dataset_inputs(options)  # before the EHR files are read: a file arriving meanwhile is new next run
    last = writer.marks.dataset_files_state() or {}
    outcome = last.get("outcome")
    recorded = isinstance(outcome, dict) and all(isinstance(outcome.get(k), list) for k in RECORDED_OUTCOME)
    if recorded and last.get("key") == {"inputs": inputs, "files": _dataset_files_stamp(writer.root)}:
        phases.start("dataset files", "unchanged since the last run")
        report.problems.extend(Problem(p["path"], p["reason"], p["fatal"]) for p in outcome["ehr_problems"])
        report.images_without_ehr = list(outcome["images_without_ehr"])
        report.ehr_without_images = list(outcome["ehr_without_images"])
        return
    from bids_factory.run import batches as conversion  # the EHR tables (pandas) and the validator

    ehr_problems = conversion.update_dataset_files(writer, options, rules, report, staging, phases)
    writer.marks.write_dataset_files_state(
        {"inputs": inputs, "files": _dataset_files_stamp(writer.root)},
        {"ehr_problems": [{"path": p.path, "reason": p.reason, "fatal": p.fatal} for p in ehr_problems],
         "images_without_ehr": report.images_without_ehr, "ehr_without_images": report.ehr_without_images})


def _dataset_inputs(options: ConvertOptions) -> str:
    """A digest of what the dataset-level files are computed from, besides the visit records: the EHR
    files of the export (the day folders' rules applied: a day that becomes ready counts), the mapping
    file's bytes and the options that write them."""
    files, problems = find_ehr_files(options.export)
    try:
        mapping = hashlib.sha256(options.ehr_mapping.read_bytes()).hexdigest() if options.ehr_mapping else None
    except OSError:  # never matches a recorded key: the mapping is loaded, and its error named, there
        mapping = "unreadable"
    listing = [[f.relpath, *_stamp(f.path)] for f in files]
    return _digest([__version__, listing, [[p.path, p.reason, p.fatal] for p in problems], mapping,
                    options.dataset_name, options.authors, options.license, options.dates.mode])


def _dataset_files_stamp(root: Path) -> str:
    """Sizes and times of the dataset-level files as last written (a curator's edit makes them new)."""
    phenotype = root / "phenotype"
    names = [*DATASET_LEVEL_FILES, *(f"phenotype/{p.name}" for p in sorted(phenotype.iterdir()))] \
        if phenotype.is_dir() else list(DATASET_LEVEL_FILES)
    return _digest([[name, *_stamp(root / name)] for name in names])


def _stamp(path: Path) -> list:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return [None, None]
    return [stat.st_size, stat.st_mtime_ns]


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


def _record_run(writer: DatasetWriter, report: RunSummary) -> None:
    """The run record, the history line and the report, refreshed by every run (also one that changed nothing:
    what is still held back comes from the visit index). The index page is computed from the index; a subject's
    page only when this run changed its visits (or the page is missing): nothing here reads every record."""
    report.record = run_record(report)
    groups = merged_groups(writer.index.not_placed_groups(VISITS_NAMED), shown=VISITS_NAMED)
    report.dataset = indexed_counts(writer, groups)
    history = writer.read_json(HISTORY, default=None)
    if history is None:  # a dataset written before the history existed: rebuilt once from the run records
        history = [history_entry(r) for r in writer.runs.records()]
    history = [readable(entry, "history_version", HISTORY_VERSION, writer.root / HISTORY) for entry in history]
    history.append(history_entry(report.record, report.dataset))
    writer.write_json(HISTORY, history)
    sessions = sorted(writer.index.sessions())
    mask = None if writer.dates.keeps else writer.dates.mask_text
    pages = {"report.html": index_page(DatasetOverview(report.dataset, groups, sessions), report.record, history, mask)}
    subjects = {subject for subject, _, _ in sessions}
    made_by = {"bids_factory_version": __version__, "dates": writer.dates.mode}
    stale = writer.report.stale_subject_pages(subjects, made_by, writer.subjects_written)
    if stale:
        folders = [f"{subject}/{session}" for subject, session, _ in sessions if subject in stale]
        pages |= subject_pages(writer.report.subject_records(stale), writer.report.thumbnail_links(sessions=folders),
                               writer.report.thumbnail_links(".jpg", sessions=folders), mask)
    writer.report.write_pages(pages, subjects, made_by)
    writer.runs.write_record(report.record)
    report.report_page = str(writer.root / REPORT_PAGE)


def indexed_counts(writer: DatasetWriter, groups: list[dict]) -> dict[str, int]:
    """The dataset's counts as :func:`bids_factory.report.summary.dataset_counts` gives them, from the index
    (no visit record is read); ``groups``: its series not placed, grouped (``merged_groups``)."""
    found = writer.index.counts()
    counts = {"subjects": found["subjects"], "sessions": found["sessions"], "images placed": found["images"]}
    for label, statuses in NOT_PLACED_GROUPS:
        counts[f"series {label}"] = sum(found["not_placed"].get(s, 0) for s in statuses)
    for group, label, _, _ in REASON_GROUPS:
        counts[f"todo {label}"] = sum(g["count"] for g in groups if g["group"] == group)
    return counts


def _gone_visits(writer: DatasetWriter, present: set[str]) -> list[Problem]:
    """Placed visits no longer in the export (a deleted visit, its days purged): the session stays, the visit
    record says its folders are gone (once: a note the first run that sees it). Not when the export shows no
    visit at all (an unmounted export is no purge)."""
    if not present:
        return []
    notes = []
    for name in [name for name, visit in writer.index.not_gone() if visit not in present]:
        record = writer.read_json(VISIT_RECORDS / name)
        writer.record_visit_gone(record)
        notes.append(Problem(f"{record['participant_id']}/{record['session_id']}", (
            f"visit {record['scan_research_id']} is no longer in the export: its session stays as placed (the "
            "export is history); its visit record names the folders gone"), fatal=False))
    return notes


def pending_problems(records, options: ConvertOptions) -> list[Problem]:
    """Every change a reconversion would make to placed images and a person has not decided (from the visit
    records: reported by every run until decided), with the one command that applies a visit's changes."""
    problems = []
    for record in records:
        changes = [PendingChange.from_record(c) for c in record.get("pending_changes") or []]
        if not changes:
            continue
        visit = record["scan_research_id"]
        command = " ".join(["bids-factory convert", str(options.export), str(options.bids),
                            *([f"--heuristic {options.heuristic}"] if options.heuristic else []),
                            *([f"--schemas {options.schemas}"] if options.schemas else []),
                            *(["--keep-site-fields"] if options.keep_site_fields else []),
                            *([f"--dates {options.dates.mode}"] if options.dates.mode != "keep" else []),
                            APPLY_OPTION, visit])
        for change in changes:
            problems.append(Problem(f"{record['participant_id']}/{record['session_id']}/{change.path}", (
                f"visit {visit}: the new conversion changes this placed image: {change.describe()}; it stays "
                f"until a person decides; to apply the changes of this visit: {command}"), fatal=False))
    return problems


def pending_visits(options: ConvertOptions) -> tuple[list[Visit], list[Problem]]:
    """The visits a convert run with these options would convert (new or changed), without converting.

    The same checks as :func:`convert` (dataset outside the export, ``--visit``, the recorded state, the
    rules when a visit is to convert): what a job array submits is exactly what a local run would do.
    """
    _refuse_dataset_in_export(options)
    check_dataset_folder(options.bids)
    settings = settings_key(options)
    writer = DatasetWriter(options.bids)
    discovery = _discover(options, writer, settings)
    report = RunSummary(problems=list(discovery.problems))
    visits = _selected(discovery, options, report)
    todo = _changed_visits(visits, writer, settings, options, report, discovery.unchanged)
    if todo:
        from bids_factory.run.rules import Rules

        Rules.load(options)  # a bad heuristic or schema stops before anything is submitted
    return todo, report.problems


def _discover(options: ConvertOptions, writer: DatasetWriter, settings: str):
    """The export's visits: only the day folders new or changed since the last run's listing are listed, and
    only their visits walked, with every visit whose state is not that of the files last listed (none, other
    settings, ``--apply-changes``...). ``--rescan`` walks everything; so does a dataset without
    an index, or a date policy other than ``keep`` (the listings name export days: none is kept)."""
    if options.rescan or options.reconvert or not options.dates.keeps or not writer.state_dir.is_dir():
        return discover(options.export)
    states = writer.states.by_visit()

    def current(visit: str, fingerprint: str) -> bool:
        state = states.get(visit)
        return state is not None and state["fingerprint"] == fingerprint and state["settings"] == settings \
            and visit not in options.apply_changes
    return discover(options.export, listings=writer.index.day_listings(), current=current)


def _refuse_dataset_in_export(options: ConvertOptions) -> None:
    if options.bids.resolve().is_relative_to(options.export.resolve()):
        raise ExportLayoutError(f"the BIDS dataset {options.bids} is inside the export {options.export}: "
                                "the export is read-only to bids-factory, choose a dataset folder outside it")


def check_dataset_folder(bids: Path) -> None:
    """BIDS_DIR is new, empty, a BIDS dataset or one this tool started: never someone's other folder."""
    if bids.exists() and not bids.is_dir():
        raise DatasetError(f"the BIDS dataset folder {bids} is a file, not a folder")
    if bids.is_dir() and not (bids / "dataset_description.json").is_file() \
            and not (bids / STATE_DIR).is_dir() and any(bids.iterdir()):
        raise DatasetError(f"{bids} is not empty and not a BIDS dataset (no dataset_description.json): "
                           "choose a new or empty folder, or an existing BIDS dataset")


def _unmatched_selection(options: ConvertOptions, report: RunSummary) -> list[Problem]:
    """``--participant-label`` labels that match no visit: an empty selection is not a success."""
    seen = {v.subject_label for v in report.visits if v.subject_label}
    return [Problem(f"sub-{label}", "--participant-label matches no visit of the export")
            for label in sorted(options.participant_labels - seen)]


def _selected(discovery, options: ConvertOptions, report: RunSummary) -> list[Visit]:
    """The visits named with ``--visit`` (all when none is named); unknown names are reported."""
    visits = discovery.visits
    if not options.visits:
        return list(visits)
    known = discovery.visit_ids
    for missing in sorted(options.visits - known):
        report.problems.append(Problem(missing, "visit named with --visit is not in the export"))
    return [v for v in visits if v.scan_research_id in options.visits]


def check(bids: Path, export: Path | None = None) -> tuple[ValidatorResult, list[str], list[SessionDifference]]:
    """The full check of a dataset (a weekly job): the validator and pybids' read-back over all of it, each
    session against its visit record, the visit index against the records and states, and with ``export``
    every visit's files against its state (a change a daily run does not look for: a note)."""
    if not (bids / "dataset_description.json").is_file():
        raise DatasetError(f"{bids} is not a BIDS dataset (no dataset_description.json in it)")
    result = validated(bids, str(bids))
    writer = DatasetWriter(bids)
    records = writer.visit_records()
    index = [SessionDifference(line.split(": ", 1)[0], line.split(": ", 1)[1] + (
        " (the index is derived from the visit records and states: `bids-factory convert --rescan` builds it "
        "again)")) for line in writer.index.differences()]
    if export is not None:
        states = writer.states.by_visit()
        index += [SessionDifference(", ".join(f.relpath for f in visit.folders), (
            f"visit {visit.scan_research_id}: its files changed since it was converted, inside a day folder a daily "
            "run does not walk again (a file rewritten in place?): `bids-factory convert EXPORT_DIR BIDS_DIR "
            "--rescan` converts it again"), error=False) for visit in discover(export).visits
            if visit.scan_research_id in states and states[visit.scan_research_id]["fingerprint"] != visit.fingerprint]
    return result, unindexed_images(bids.resolve(), records), session_differences(bids.resolve(), records) + index


def _changed_visits(visits, writer: DatasetWriter, settings: str, options: ConvertOptions,
                    report: RunSummary, unchanged: tuple[str, ...] = ()) -> list[Visit]:
    """Visits whose sources or settings changed since their last conversion (all with ``reconvert``).
    ``unchanged``: visits discovery did not walk (their day folders unchanged, their state current)."""
    states = writer.states.by_visit() if unchanged or (visits and not options.reconvert) else {}
    for visit in unchanged:
        if not options.visits or visit in options.visits:
            state = states.get(visit) or {}
            report.visits.append(VisitResult(visit, VisitStatus.UNCHANGED, state.get("subject_label", ""),
                                             state.get("session_label", "")))
    for missing in sorted(options.apply_changes - {v.scan_research_id for v in visits}):
        report.problems.append(Problem(missing, "visit named with --apply-changes is not in the export (or not "
                                                "selected); nothing was applied"))
    if options.reconvert:
        return list(visits)
    todo = []
    for visit in visits:
        state = states.get(visit.scan_research_id)
        if state and state["fingerprint"] == visit.fingerprint and state["settings"] == settings \
                and visit.scan_research_id not in options.apply_changes:
            report.visits.append(VisitResult(visit.scan_research_id, VisitStatus.UNCHANGED, state.get("subject_label", ""),
                                             state.get("session_label", "")))
        else:
            todo.append(visit)
    return todo
