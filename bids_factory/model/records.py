"""What a later run reads back (visit records and states, run records, the history): typed and versioned."""

from __future__ import annotations

from typing import TypedDict

from bids_factory.errors import DatasetError


# What a later run reads back is versioned: a record of a version this bids-factory does not know (a newer
# one wrote it) stops the run instead of being misread. Absent: version 1, the first format.
VISIT_RECORD_VERSION = 2  # code/bids-factory/visits/*.json (VisitRecord)
VISIT_STATE_VERSION = 1  # code/bids-factory/state/*.json (VisitState)
RUN_RECORD_VERSION = 2  # code/bids-factory/runs/run-*.json (RunRecord)
HISTORY_VERSION = 1  # each entry of code/bids-factory/history.json (HistoryEntry)


def readable(record: dict, key: str, known: int, path) -> dict:
    """``record`` as read from ``path``, when its ``key`` version is one this bids-factory knows."""
    found = record.get(key, 1) if isinstance(record, dict) else None
    if not isinstance(found, int) or not 1 <= found <= known:
        raise DatasetError(f"{path}: {key} {found!r} is not one this bids-factory reads (1 to {known}): it was "
                           "written by a newer version; run that version (or a newer one) on this dataset")
    return record


class VisitState(TypedDict, total=False):
    """What a later run compares to decide whether a visit is converted again (``code/bids-factory/state/``)."""

    state_version: int
    scan_research_id: str
    fingerprint: str  # the visit's export files (paths, sizes, mtimes)
    settings: str  # the settings key: heuristic, schemas, options
    status: str  # a VisitStatus value
    subject_label: str
    session_label: str
    not_placed: list[dict]  # SeriesOutcome.record() of a visit with nothing placed (no visit record)


class RunRecord(TypedDict, total=False):
    """What a run records of itself (``code/bids-factory/runs/``; read back by the report page, and to
    rebuild a missing history). No patient field: labels, research ids and series only."""

    run_record_version: int
    finished_at: str  # ISO 8601, UTC
    bids_factory_version: str
    failed: bool
    visits: list[dict]  # scan_research_id, status, participant_id, session_id, placed, not_placed
    visits_counted: dict  # (v2) status -> visits the run did not work on (unchanged, not selected): not listed
    problems: list[dict]  # path, reason, fatal
    non_dicom_files: int
    non_image_objects: int
    linkage: dict  # the first names and the counts of images without EHR rows and of EHR rows without images
    validator: dict  # errors, warnings, output (the validator's full output), issues


# One entry of the run history (``code/bids-factory/history.json``, the report's history table): the table's words.
HistoryEntry = TypedDict("HistoryEntry", {
    "history_version": int, "finished_at": "str | None", "failed": bool, "visits placed": int, "visits failed": int,
    "visits unchanged": int, "series placed": int, "series held back": int, "held back in dataset": "int | None",
    "validator errors": "int | None"}, total=False)


class PlacedFileRecord(TypedDict):
    """One placed image in a visit record."""

    path: str  # relative to the session folder: <datatype>/<stem>.nii.gz
    rule: str
    SeriesNumber: int | None
    SeriesDescription: str
    source_folders: list[str]  # export-relative visit folders


class VisitRecord(TypedDict, total=False):
    """The provenance record of a placed visit (``code/bids-factory/visits/*.json``), as written by the
    writer and read by finalize, the validator's read-back, the summary and the report page."""

    scan_research_id: str
    participant_id: str  # sub-<label>
    session_id: str  # ses-<label>
    export_folders: list[dict]  # {"kind", "day", "path", "key" (v2), "gone": true when purged since (v2)}
    converted_at: str
    bids_factory_version: str
    converter: dict  # {"name", "version"}
    heuristic: dict  # {"name", "sha256"}
    non_dicom_files: int
    files: list[PlacedFileRecord]
    not_placed: list[dict]  # SeriesOutcome.record(); its "group" is optional (outcome_group): no new record_version
    deidentification: dict  # key names removed and counts, never values
    converter_log: list[str]
    written: dict  # every file the writer put in the session: path -> SHA-256 (text files) or None (images)
    record_version: int  # 2: the fields below (absent: an older record, read as empty)
    gone_sources: list[str]  # export folders of earlier conversions no longer in the export (purged)
    pending_changes: list[dict]  # write.append_only.PendingChange.record(): changes waiting for --apply-changes
    left: list[str]  # CHANGES lines of placed images a decision took out, or of a move (added when CHANGES lacks them)
    moved_from: list[str]  # participant ids this visit's session moved from (a corrected PatientID)
