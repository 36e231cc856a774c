"""The end-of-run summary: for the user's terminal and, as JSON, for the dataset's provenance."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from bids_factory import __version__
from bids_factory.model import RunReport


def summary_lines(report: RunReport) -> list[str]:
    statuses = Counter(v.status for v in report.visits)
    placed_series = sum(v.placed for v in report.visits)
    outcomes = [(v, o) for v in report.visits for o in v.not_placed]
    lines = [
        f"visits: {statuses.get('placed', 0)} placed, {statuses.get('nothing-to-place', 0)} with nothing to place, "
        f"{statuses.get('failed', 0)} failed"
        + (f", {statuses['unchanged']} unchanged since the last run" if statuses.get("unchanged") else "")
        + (f", {statuses['not-selected']} not selected" if statuses.get("not-selected") else ""),
        series_line(placed_series, [o.status for _, o in outcomes])
        + f"; {report.non_dicom_files} non-DICOM files ignored",
    ]
    for visit, outcome in outcomes:
        lines.append(f"  {outcome.status}: visit {visit.scan_research_id} {outcome.series.describe()}: {outcome.reason}")
    fatal = [p for p in report.problems if p.fatal]
    skipped = [p for p in report.problems if not p.fatal]
    for problem in skipped:
        lines.append(f"  note: {problem.path}: {problem.reason}")
    for problem in fatal:
        lines.append(f"  FAILED: {problem.path}: {problem.reason}")
    if report.images_without_ehr:
        lines.append(f"  linkage: {len(report.images_without_ehr)} subjects with images but no EHR row: "
                     + ", ".join(f"sub-{s}" for s in report.images_without_ehr))
    if report.ehr_without_images:
        lines.append(f"  linkage: {len(report.ehr_without_images)} EHR patients without images: "
                     + ", ".join(f"sub-{s}" for s in report.ehr_without_images))
    if report.validator_errors is not None:
        lines.append(f"BIDS validator: {report.validator_errors} errors, {report.validator_warnings} warnings")
    return lines


def series_line(placed: int, statuses: list[str]) -> str:
    """The run's series counts, worded once: the terminal summary and the report page's "Last run" show
    this same line (from the run and from its record), so their counts always agree."""
    count = Counter(statuses)
    return (f"series: {placed} placed, {count['unmatched'] + count['ambiguous']} unmatched, "
            f"{count['held-back']} held back, {count['rejected']} rejected, "
            f"{count['not-converted']} without image")


def report_record(report: RunReport) -> dict:
    """JSON-able record of a run (no patient field: labels, research ids and series only)."""
    return {
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "bids_factory_version": __version__,
        "failed": report.failed,
        "visits": [
            {
                "scan_research_id": v.scan_research_id, "status": v.status,
                "participant_id": f"sub-{v.subject_label}" if v.subject_label else None,
                "session_id": f"ses-{v.session_label}" if v.session_label else None,
                "placed": v.placed,
                "not_placed": [o.record() for o in v.not_placed],
            }
            for v in report.visits
        ],
        "problems": [{"path": p.path, "reason": p.reason, "fatal": p.fatal} for p in report.problems],
        "non_dicom_files": report.non_dicom_files,
        "linkage": {"images_without_ehr": [f"sub-{s}" for s in report.images_without_ehr],
                    "ehr_without_images": [f"sub-{s}" for s in report.ehr_without_images]},
        "validator": {"errors": report.validator_errors, "warnings": report.validator_warnings},
    }
