"""What the writer records about a placed visit: its provenance record and its scans.tsv rows (pure)."""

from __future__ import annotations

import datetime as dt

from bids_factory import __version__
from bids_factory.model import Placement, VisitPlan, VisitRecord
from bids_factory.tsv import merge_tsv

SCANS_COLUMNS = ("filename", "source_day", "source_folder", "series_number", "heuristic_rule")


def scans_tsv(placements: tuple[Placement, ...], existing=None) -> str:
    """The session's scans.tsv: the curator's columns (and values of images still placed) are kept."""
    rows = []
    for p in placements:
        folders = p.series.source_folders
        days = sorted({f.split("/")[2] for f in folders if f.count("/") >= 3})
        rows.append(dict(zip(SCANS_COLUMNS, [
            p.relpath, ",".join(days), ",".join(folders),
            None if p.series.series_number is None else str(p.series.series_number), p.rule,
        ])))
    placed = {p.relpath for p in placements}
    return merge_tsv(existing, "filename", list(SCANS_COLUMNS[1:]), rows, keep=placed.__contains__)


def visit_record(plan: VisitPlan) -> VisitRecord:
    extracted = plan.extracted
    return {
        "scan_research_id": extracted.visit.scan_research_id,
        "participant_id": f"sub-{plan.subject_label}",
        "session_id": f"ses-{plan.session_label}",
        "export_folders": [{"kind": f.kind, "day": f.day, "path": f.relpath} for f in extracted.visit.folders],
        "converted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "bids_factory_version": __version__,
        "converter": {"name": "dcm2niix", "version": extracted.converter_version},
        "heuristic": {"name": plan.heuristic_name, "sha256": plan.heuristic_sha256},
        "non_dicom_files": extracted.non_dicom_files,
        "files": [
            {"path": p.relpath, "rule": p.rule, "SeriesNumber": p.series.series_number,
             "SeriesDescription": p.series.series_description, "source_folders": list(p.series.source_folders)}
            for p in plan.placements
        ],
        "not_placed": [o.record() for o in plan.not_placed],
        "deidentification": plan.deidentification.record(),
        "converter_log": extracted.converter_log.splitlines(),
    }
