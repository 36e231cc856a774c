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
from pathlib import Path

from bids_factory.privacy.deidentify import Deidentification
from bids_factory.privacy.identifier_match import VisitIdentifiers
from bids_factory.model.outcomes import ReasonGroup, SeriesStatus, VisitStatus, outcome_group

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
    def session_path(self) -> str:
        """Path of the NIfTI relative to the session folder (``anat/sub-1_ses-1_T1w.nii.gz``)."""
        return f"{self.datatype}/{self.stem}.nii.gz"


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
    thumbnails: dict = field(default_factory=dict)  # placement session_path -> report.thumbnails.Pictures
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
