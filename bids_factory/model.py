"""Typed values passed between the stages of the flow.

discover -> :class:`Visit` ; extract -> :class:`ExtractedVisit` ;
plan -> :class:`VisitPlan` ; write -> :class:`PlacedVisit` ; everything reported -> :class:`Problem`.
All values are plain, picklable dataclasses so visits can be processed in worker processes.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypedDict
from pathlib import Path

from bids_factory.errors import DatasetError
from bids_factory.privacy.deidentify import Deidentification
from bids_factory.privacy.identifier_match import VisitIdentifiers

BIDS_VERSION = "1.10.1"  # the BIDS specification version the dataset (and every scratch check) declares
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def bids_label(raw: str) -> str:
    """Sanitise a raw id into a BIDS label: drop every character outside [A-Za-z0-9]."""
    return _NOT_ALNUM.sub("", raw)


def subject_label(raw: str) -> str:
    """The subject label of a raw patient id; an id already written as ``sub-007`` stays ``007``."""
    return bids_label(raw.strip().removeprefix("sub-"))


def session_label(raw: str) -> str:
    """The session label of a raw visit id; an id already written as ``ses-1`` stays ``1``."""
    return bids_label(raw.strip().removeprefix("ses-"))


FILE_NAME_BYTES = 255  # the longest file name ext4, XFS, NFS and tmpfs hold (NAME_MAX)


def too_long_file_name(name: str) -> bool:
    """A file name no common file system can hold (``File name too long``)."""
    return len(os.fsencode(name)) > FILE_NAME_BYTES


def shortened(text: str, limit: int = 40) -> str:
    """The start of a long name, for a message of one line."""
    return text if len(text) <= limit else f"{text[:limit]}..."


@dataclass(frozen=True)
class Problem:
    """Something reported to the user: a skipped or failed path, with the reason.

    ``fatal`` problems make the run exit non-zero (after everything else was converted);
    non-fatal ones are deliberate skips (phantom folders, today's unfinished export...).
    """

    path: str
    reason: str
    fatal: bool = True


@dataclass(frozen=True)
class VisitFolder:
    """One export day's folder of one visit: ``<KIND>/<yyyy>/<yyyymmdd>/<scan_research_id>``."""

    kind: str  # "DICOM" (or "NIFTI")
    day: str  # yyyymmdd
    path: Path  # absolute
    relpath: str  # relative to the export root, for provenance


def export_relpath(root: Path, path: Path | str) -> str:
    """``path`` relative to the export ``root``, as text with ``/`` (the one way every stage names an export
    file: provenance, problems, visit fingerprints). A run computes it for every file, so as text first."""
    base, text = str(root), str(path)
    if text.startswith(base + "/"):
        return text[len(base) + 1:]
    return Path(path).relative_to(root).as_posix()


@dataclass(frozen=True)
class SourceFile:
    path: Path
    folder: VisitFolder
    size: int = 0
    mtime_ns: int = 0

    @property
    def relpath(self) -> str:
        """Path relative to the export root (for reports), also for a link resolved inside the export."""
        if str(self.path).startswith(f"{self.folder.path}/") or self.path.is_relative_to(self.folder.path):
            return f"{self.folder.relpath}/{export_relpath(self.folder.path, self.path)}"
        root = self.folder.path.parents[len(Path(self.folder.relpath).parts) - 1]
        if self.path.is_relative_to(root):
            return self.path.relative_to(root).as_posix()
        return f"{self.folder.relpath}/{self.path.name}"


@dataclass(frozen=True)
class Visit:
    """One visit of one patient: the union of its folders over all export days."""

    scan_research_id: str
    folders: tuple[VisitFolder, ...]
    files: tuple[SourceFile, ...]

    @property
    def session_label(self) -> str:
        return session_label(self.scan_research_id)

    @property
    def days(self) -> tuple[str, ...]:
        return tuple(sorted({f.day for f in self.folders}))

    @property
    def fingerprint(self) -> str:
        """Cheap identity of the visit's sources: export-relative paths, sizes and mtimes (no file is read).

        Keyed by what the export holds, not where it is mounted: the same export reached through another
        path (a container mount, an NFS remount, a moved or hard-linked copy) is the same visit. A state
        written before this rule (absolute paths) does not match: such a visit is reconverted once.
        """
        digest = hashlib.sha256(b"relative-v2\n")
        for relpath, size, mtime in sorted((s.relpath, s.size, s.mtime_ns) for s in self.files):
            digest.update(f"{relpath}\0{size}\0{mtime}\n".encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class Series:
    """One image produced by the converter: a NIfTI in staging with its BIDS sidecar.

    A DICOM series the converter made no image of (a report, a raw-data series) has no NIfTI.
    """

    nifti: Path | None
    sidecar: Path | None
    extras: tuple[Path, ...]  # .bval / .bvec beside the NIfTI
    series_number: int | None
    series_description: str
    protocol_name: str
    image_type: tuple[str, ...]
    source_folders: tuple[str, ...]  # export-relative visit folders the DICOM came from

    def record(self) -> dict:
        """The fields a user needs to write a heuristic rule for this series."""
        return {
            "SeriesNumber": self.series_number, "SeriesDescription": self.series_description,
            "ProtocolName": self.protocol_name, "ImageType": list(self.image_type),
            "source_folders": list(self.source_folders),
        }

    def describe(self) -> str:
        return (
            f"SeriesNumber={self.series_number} SeriesDescription={self.series_description!r} "
            f"ProtocolName={self.protocol_name!r} ImageType={'/'.join(self.image_type) or '-'}"
        )


@dataclass(frozen=True)
class ExtractedVisit:
    visit: Visit
    subject_label: str
    patient_key: str  # unsalted sha256 of the raw PatientID: only to recognise legacy subjects.json entries
    staging: Path
    series: tuple[Series, ...]
    unconverted: tuple[Series, ...]  # DICOM series of which dcm2niix made no image
    non_dicom_files: int
    problems: tuple[Problem, ...]  # bad files of the visit (corrupt DICOM, converter complaints)
    converter_version: str
    converter_log: str
    # the visit's identifiers (raw values, in memory only, never written) and what de-identification
    # removed before planning (NIfTI header text, identifiers in series names and the converter log)
    identifiers: VisitIdentifiers = field(default_factory=VisitIdentifiers)
    deidentification: Deidentification = field(default_factory=Deidentification)
    converter_exit: int = 0  # dcm2niix's exit status (non-zero: an image may be missing or partial)
    series_images: dict = field(default_factory=dict)  # SeriesNumber -> DICOM ImageHeaders (completeness)
    non_image_objects: int = 0  # presentation states, reports, raw data, DICOMDIR: named in problems, never converted
    refused: tuple[SeriesOutcome, ...] = ()  # DICOM series whose headers cannot be used (held back, named)


@dataclass(frozen=True)
class Placement:
    """A series accepted by the heuristic, with its final BIDS path and sidecar content."""

    series: Series
    datatype: str
    stem: str  # sub-<p>_ses-<v>_[entities]_<suffix>
    sidecar: dict
    rule: str
    sidecar_schema: str | None = None  # the schema the heuristic rule names (else: by suffix)
    # Text files beside the image, named like it with their own suffix: (("aslcontext.tsv", text),)
    extra_files: tuple[tuple[str, str], ...] = ()

    def extra_file_stem(self, name: str) -> str:
        """``sub-1_ses-1_asl`` + ``aslcontext.tsv`` -> ``sub-1_ses-1_aslcontext.tsv``."""
        return f"{self.stem.rsplit('_', 1)[0]}_{name}"

    @property
    def relpath(self) -> str:
        """Path of the NIfTI relative to the session folder."""
        return f"{self.datatype}/{self.stem}.nii.gz"


class SeriesStatus(StrEnum):
    """Why a series was not placed (a str: records and JSON keep the plain value)."""

    UNMATCHED = "unmatched"  # no heuristic rule matches (or the default heuristic does not recognise it)
    AMBIGUOUS = "ambiguous"  # several rules match
    REJECTED = "rejected"  # the rule gives a name that is not BIDS, or two series aim at one file
    HELD_BACK = "held-back"  # matched, but not well-defined, incomplete or refused by the validator
    NOT_CONVERTED = "not-converted"  # dcm2niix made no image of it


class VisitStatus(StrEnum):
    """What happened to a visit in a run."""

    PLACED = "placed"
    NOTHING_TO_PLACE = "nothing-to-place"
    FAILED = "failed"
    UNCHANGED = "unchanged"  # sources and settings as at its last conversion: not converted again
    NOT_SELECTED = "not-selected"  # its subject is not among --participant-label


# What a later run reads back is versioned: a record of a version this bids-factory does not know (a newer
# one wrote it) stops the run instead of being misread. Absent: version 1, the first format.
VISIT_RECORD_VERSION = 2  # code/bids-factory/visits/*.json (VisitRecord)
VISIT_STATE_VERSION = 1  # code/bids-factory/state/*.json (VisitState)
RUN_RECORD_VERSION = 1  # code/bids-factory/runs/run-*.json (RunRecord)
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


# How plan's classification begins the reason of a series that is never placed (nothing for anyone to do).
DERIVED_REASON, LOCALIZER_REASON = "scanner-derived image", "localizer/scout"


def never_placed(reason: str) -> bool:
    """A series not placed because it never is (a scanner-derived map, a scout)."""
    return reason.startswith((DERIVED_REASON, LOCALIZER_REASON))


class ReasonGroup(StrEnum):
    """What a person must do about a series not placed (given where the outcome is decided), the summary's
    and the report's groups."""
    NOTHING = "nothing"  # expected: scouts, localizers, scanner-derived maps, objects that are no image
    DECIDE = "decide"  # a series no rule places (or several rules, or a name that is not BIDS): a rule to write
    SUPPLY = "supply"  # metadata BIDS or a sidecar schema needs is missing or invalid: the field to add
    FIX_EXPORT = "fix-export"  # incomplete or unreadable in the export: the series to export again


def outcome_group(outcome: dict) -> ReasonGroup:
    """The :class:`ReasonGroup` of a recorded series not placed (``SeriesOutcome.record()``): its own, or, for
    a record written before outcomes carried one, derived here once from its status and reason."""
    if outcome.get("group") in tuple(ReasonGroup):
        return ReasonGroup(outcome["group"])
    status, reason = outcome.get("status"), str(outcome.get("reason") or "")
    if status == SeriesStatus.NOT_CONVERTED or never_placed(reason):
        return ReasonGroup.NOTHING
    if status in (SeriesStatus.UNMATCHED, SeriesStatus.AMBIGUOUS, SeriesStatus.REJECTED):
        return ReasonGroup.DECIDE
    if reason.startswith(("incomplete image", "dcm2niix exited", "SeriesNumber", "no PatientID")):
        return ReasonGroup.FIX_EXPORT
    return ReasonGroup.SUPPLY


@dataclass(frozen=True)
class SeriesOutcome:
    """A series that was not placed, with its :class:`SeriesStatus`, the reason (one line, plain words, the next
    step) and the :class:`ReasonGroup` of what a person must do (None: derived by :func:`outcome_group`)."""

    series: Series
    status: SeriesStatus
    reason: str
    rule: str | None = None  # the heuristic rule that matched it (held back or rejected after matching)
    group: ReasonGroup | None = None

    def record(self) -> dict:
        record = {"status": self.status, "reason": self.reason, **self.series.record(), **({"rule": self.rule} if self.rule else {})}
        return record | {"group": self.group or outcome_group(record)}


@dataclass(frozen=True)
class VisitPlan:
    extracted: ExtractedVisit
    placements: tuple[Placement, ...]
    not_placed: tuple[SeriesOutcome, ...]
    heuristic_name: str
    heuristic_sha256: str
    thumbnails: dict = field(default_factory=dict)  # placement relpath -> report.thumbnails.Pictures
    deidentification: Deidentification = field(default_factory=Deidentification)  # what was removed (names, counts)
    sidecar_fields: frozenset = frozenset()  # every field of the visit's sidecars (heuristic criteria check)

    @property
    def subject_label(self) -> str:
        return self.extracted.subject_label

    @property
    def session_label(self) -> str:
        return self.extracted.visit.session_label


@dataclass
class VisitResult:
    """What happened to one visit in this run."""

    scan_research_id: str
    status: VisitStatus
    subject_label: str = ""
    session_label: str = ""
    placed: int = 0
    not_placed: tuple[SeriesOutcome, ...] = ()
    problems: tuple[Problem, ...] = ()


@dataclass
class RunSummary:
    """Everything the CLI summarises at the end of a run."""

    visits: list[VisitResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    non_dicom_files: int = 0
    non_image_objects: int = 0  # DICOMDIR, presentation states, reports, raw data: named in problems
    validator_errors: int | None = None
    validator_warnings: int | None = None
    images_without_ehr: list[str] = field(default_factory=list)  # subject labels
    ehr_without_images: list[str] = field(default_factory=list)
    validator_output: str | None = None  # the validator's full JSON output, relative to code/bids-factory/
    validator_issues: list[dict] = field(default_factory=list)  # one per issue code: severity, count, example
    record: dict | None = None  # the run record as written (the summary and the page count from it)
    dataset: dict[str, int] = field(default_factory=dict)  # report.dataset_counts of the whole dataset
    report_page: str | None = None  # path of report.html

    @property
    def failed(self) -> bool:
        return (
            any(p.fatal for p in self.problems)
            or any(v.status == VisitStatus.FAILED for v in self.visits)
            or bool(self.validator_errors)
        )
