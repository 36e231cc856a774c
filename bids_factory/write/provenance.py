"""What the writer records about a placed visit: its provenance record and its scans.tsv rows (pure)."""

from __future__ import annotations

import datetime as dt

from bids_factory import __version__
from bids_factory.model import VISIT_RECORD_VERSION, Placement, VisitPlan, VisitRecord
from bids_factory.tsv import merge_tsv
from bids_factory.write.append_only import Reconciliation, folder_key

# 2: placed images that stay (append-only), gone_sources, pending_changes, left, moved_from; export folder keys

SCANS_COLUMNS = ("filename", "source_day", "source_folder", "series_number", "heuristic_rule")


def scans_tsv(placements: tuple[Placement, ...], existing=None, kept=()) -> str:
    """The session's scans.tsv: the curator's columns (and values of images still placed) are kept;
    ``kept``: visit-record entries of placed images that stay as they are."""
    images = [(p.session_path, p.series.source_folders, p.series.series_number, p.rule) for p in placements]
    images += [(e["path"], e.get("source_folders") or (), e.get("SeriesNumber"), e.get("rule")) for e in kept]
    rows = []
    for path, folders, number, rule in images:
        days = sorted({f.split("/")[2] for f in folders if f.count("/") >= 3})
        rows.append(dict(zip(SCANS_COLUMNS, [
            path, ",".join(days), ",".join(folders), None if number is None else str(number), rule,
        ])))
    placed = {row["filename"] for row in rows}
    return merge_tsv(existing, "filename", list(SCANS_COLUMNS[1:]), rows, keep=placed.__contains__)


def visit_record(plan: VisitPlan, result: Reconciliation | None = None) -> VisitRecord:
    """The visit's provenance record; with ``result``, the placed images that stay (whose series may be gone
    from the export), the export folders gone, and the changes waiting for a person's decision."""
    extracted = plan.extracted
    kept = list(result.kept) if result else []
    placements = result.placements if result else plan.placements
    waiting = {c.path for c in result.pending} if result else set()
    held = {(e["SeriesNumber"], e["SeriesDescription"]) for e in kept if e["path"] in waiting}
    return {
        "record_version": VISIT_RECORD_VERSION,
        "scan_research_id": extracted.visit.scan_research_id,
        "participant_id": f"sub-{plan.subject_label}",
        "session_id": f"ses-{plan.session_label}",
        # the export is history: a folder purged since stays listed (gone), its day in sessions.tsv
        "export_folders": [{"kind": f.kind, "day": f.day, "path": f.relpath, "key": folder_key(f.relpath)}
                           for f in extracted.visit.folders] + (list(result.gone_folders) if result else []),
        "converted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "bids_factory_version": __version__,
        "converter": {"name": "dcm2niix", "version": extracted.converter_version},
        "heuristic": {"name": plan.heuristic_name, "sha256": plan.heuristic_sha256},
        "non_dicom_files": extracted.non_dicom_files,
        "files": kept + [
            {"path": p.session_path, "rule": p.rule, "SeriesNumber": p.series.series_number,
             "SeriesDescription": p.series.series_description, "source_folders": list(p.series.source_folders)}
            for p in placements
        ],
        # a series whose placed image stays (a change waits for a decision) is placed, not "not placed"
        "not_placed": [o.record() for o in plan.not_placed
                       if (o.series.series_number, o.series.series_description) not in held],
        "gone_sources": result.gone_sources if result else [],
        "pending_changes": [c.record() for c in result.pending] if result else [],
        "deidentification": plan.deidentification.record(),
        "converter_log": extracted.converter_log.splitlines(),
    }
