"""Stage 2 — extract, first pass: what the DICOM headers of one visit say (identity, series, names, each
image file's place in its series), read without pixel data; and the objects that are not images
(presentation states, reports, raw data, a CD/DVD's DICOMDIR: :mod:`bids_factory.dicom.sop_classes`),
which are counted and named, never converted, never a failure."""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.datadict import keyword_for_tag
from pydicom.filereader import read_file_meta_info, read_partial
from pydicom.tag import Tag

from bids_factory.dicom.head import PYDICOM_READ_ERRORS, read_head
from bids_factory.dicom.image_header import COMPLETENESS_TAGS, ImageHeader
from bids_factory.dicom.sop_classes import MEDIA_DIRECTORY, non_image_kind
from bids_factory.model import Problem, ReasonGroup, Series, SeriesOutcome, SeriesStatus, SourceFile

_HEADER_TAGS = tuple(Tag(keyword) for keyword in (
    "SOPInstanceUID", "PatientID", "SeriesNumber", "SeriesDescription", "ProtocolName", "ImageType",
    *COMPLETENESS_TAGS))
_LAST_HEADER_TAG = max(_HEADER_TAGS)
_HEADER_TAG_NUMBERS = {int(tag): keyword_for_tag(tag) for tag in _HEADER_TAGS}
_INTEGER = re.compile(r"[+-]?\d+")


def _past_header_tags(tag, vr, length) -> bool:
    """Stop reading a file after the last tag we need: enhanced (multi-frame) DICOM carries megabytes
    of per-frame sequences after it, which pydicom would otherwise parse (14x slower on the XA30 visit)."""
    return tag > _LAST_HEADER_TAG


def _read_header(path: Path):
    """The header values a visit needs: from the file's first bytes (:mod:`bids_factory.dicom.head`, the
    common case), else pydicom reads the file (big endian, deflate, no preamble, non-ASCII values...)."""
    values = read_head(path, _HEADER_TAG_NUMBERS)
    if values is not None and _INTEGER.fullmatch(values.get("SeriesNumber", "0")):
        if "ImageType" in values:
            values["ImageType"] = tuple(v.strip() for v in values["ImageType"].split("\\")) if values["ImageType"] else ()
        return values
    with open(path, "rb") as handle:
        return read_partial(handle, stop_when=_past_header_tags, specific_tags=list(_HEADER_TAGS))


@dataclass(frozen=True)
class VisitHeaders:
    """What the DICOM headers of one visit say, read without pixel data."""

    dicom_files: tuple[SourceFile, ...]
    patient_ids: frozenset[str]
    series_folders: dict  # SeriesNumber -> sorted export-relative visit folders
    series_names: dict  # SeriesNumber -> (SeriesDescription, ProtocolName, ImageType)
    non_dicom_files: int
    problems: tuple[Problem, ...]  # corrupt DICOM (fatal), non-DICOM files (named, ignored)
    file_series: tuple = ()  # SeriesNumber of each of ``dicom_files`` (same order)
    series_files: dict = None  # SeriesNumber -> the series' files (identifiers: the first whose header reads whole)
    series_images: dict = field(default_factory=dict)  # SeriesNumber -> tuple[ImageHeader] (completeness)
    non_image_objects: int = 0  # presentation states, reports, raw data, DICOMDIR...: counted, never converted
    refused: tuple[SeriesOutcome, ...] = ()  # series whose headers cannot be used (held back, named)

    def unconverted(self, converted: list[Series], merged: frozenset = frozenset()) -> tuple[Series, ...]:
        """DICOM series of the visit for which the converter produced no image (``merged``: series
        numbers whose files went into an image named by another number, see :func:`merged_series`)."""
        done = {s.series_number for s in converted} | set(merged)
        return tuple(
            Series(nifti=None, sidecar=None, extras=(), series_number=number, series_description=names[0],
                   protocol_name=names[1], image_type=names[2], source_folders=self.series_folders[number])
            for number, names in sorted(self.series_names.items(), key=lambda item: (item[0] is None, item[0] or 0))
            if number not in done
        )


def read_visit_headers(sources: list[SourceFile]) -> VisitHeaders:
    dicom_files: list[SourceFile] = []
    file_series: list[int | None] = []
    patient_ids: set[str] = set()
    series_folders: dict[int | None, set[str]] = defaultdict(set)
    series_names: dict[int | None, tuple] = {}
    series_files: dict[int | None, list[SourceFile]] = defaultdict(list)
    series_images: dict[int | None, list[ImageHeader]] = defaultdict(list)
    non_image: dict[tuple, list[SourceFile]] = defaultdict(list)  # (folder, kind, SeriesNumber, name) -> files
    malformed: dict[tuple, list[SourceFile]] = defaultdict(list)  # (SeriesNumber text, names) -> files
    non_dicom = 0
    problems: list[Problem] = []
    kept: list[tuple] = []  # (file, SeriesNumber, names, ImageHeader) of the files that name a patient
    without_patient: list[tuple] = []  # the same, for files without PatientID
    for source in sources:
        if source.path.name.upper() == "DICOMDIR" and _media_storage_class(source.path) == MEDIA_DIRECTORY:
            non_image[(source.folder.relpath, non_image_kind(MEDIA_DIRECTORY), None, source.path.name)].append(source)
            continue  # the media's index: its file meta group says so, nothing else of it is read
        try:
            with warnings.catch_warnings():  # pydicom's complaints about odd values are not the user's business
                warnings.simplefilter("ignore")
                ds = _read_header(source.path)
        except PYDICOM_READ_ERRORS as exc:
            if _media_storage_class(source.path) == MEDIA_DIRECTORY:
                non_image[(source.folder.relpath, non_image_kind(MEDIA_DIRECTORY), None, source.path.name)].append(source)
            elif _has_dicom_preamble(source.path):
                problems.append(Problem(source.relpath, f"corrupt DICOM file ({type(exc).__name__}): not converted"))
            elif archive := archive_kind(source.path):  # images the converter never sees: the visit is incomplete
                problems.append(Problem(source.relpath, f"{archive} archive: not converted, extract it in the export "
                                                        "and the next run converts its files"))
            else:
                non_dicom += 1
                problems.append(Problem(source.relpath, "not a DICOM file: ignored", fatal=False))
            continue
        kind = non_image_kind(str(ds.get("SOPClassUID", "") or "")) or (
            non_image_kind(MEDIA_DIRECTORY) if "SOPInstanceUID" not in ds
            and _media_storage_class(source.path) == MEDIA_DIRECTORY else None)
        if kind:
            where = source.folder.relpath if "DICOMDIR" in kind else _folder(source)
            non_image[(where, kind, str(ds.get("SeriesNumber", "") or ""), str(ds.get("SeriesDescription", "") or ""))
                      ].append(source)
            continue
        if "SOPInstanceUID" not in ds:
            problems.append(Problem(source.relpath, "corrupt DICOM file (no SOPInstanceUID): not converted"))
            continue
        names = (str(ds.get("SeriesDescription", "")), str(ds.get("ProtocolName", "")),
                 tuple(str(v) for v in (ds.get("ImageType") or ())))
        try:
            with warnings.catch_warnings():  # pydicom warns of a malformed IS before it fails
                warnings.simplefilter("ignore")
                number = ds.get("SeriesNumber")
                number = int(number) if number not in (None, "") else None
        except (TypeError, ValueError):
            malformed[(str(ds.get("SeriesNumber")), names)].append(source)
            continue
        patient_id = str(ds.get("PatientID", "") or "").strip()
        # whose? kept aside until the visit's other files are read (a header that ends before (0020,0011)
        # SeriesNumber may be cut before PatientID: dcm2niix names that file)
        if not patient_id and "SeriesNumber" in ds:
            without_patient.append((source, number, names, ImageHeader.read(ds)))
            continue
        if patient_id:
            patient_ids.add(patient_id)
        kept.append((source, number, names, ImageHeader.read(ds)))
    if not patient_ids:  # no file names a patient: the visit fails on that (extract), as one visit
        kept, without_patient = kept + without_patient, []
    for source, number, names, image in kept:
        dicom_files.append(source)
        file_series.append(number)
        series_folders[number].add(source.folder.relpath)
        series_files[number].append(source)
        series_images[number].append(image)
        series_names.setdefault(number, names)
    return VisitHeaders(
        dicom_files=tuple(dicom_files),
        file_series=tuple(file_series),
        patient_ids=frozenset(patient_ids),
        series_folders={k: tuple(sorted(v)) for k, v in series_folders.items()},
        series_names=series_names,
        non_dicom_files=non_dicom,
        problems=tuple(problems) + tuple(_non_image_notes(non_image)),
        series_files=dict(series_files),
        series_images={k: tuple(v) for k, v in series_images.items()},
        non_image_objects=sum(len(files) for files in non_image.values()),
        refused=tuple(_malformed_series(malformed)) + tuple(_series_without_patient(without_patient)),
    )


def _folder(source: SourceFile) -> str:
    """The export-relative folder holding a file."""
    return str(Path(source.relpath).parent)


def _non_image_notes(non_image: dict) -> list[Problem]:
    """One note per folder and kind of non-image object: named and counted, never a failure."""
    notes = []
    for (where, kind, number, description), files in sorted(non_image.items(), key=lambda item: str(item[0])):
        series = f" (SeriesNumber {number} {description!r})" if number or description else ""
        if "DICOMDIR" in kind:
            notes.append(Problem(files[0].relpath, f"{kind}: recognised, not read", fatal=False))
            continue
        notes.append(Problem(where, f"{len(files)} non-image DICOM object(s): {kind}{series}; not an image, "
                                    "nothing to convert", fatal=False))
    return notes


def _malformed_series(malformed: dict) -> list[SeriesOutcome]:
    """A series whose SeriesNumber is not a number (DICOM IS): held back and named, the visit goes on."""
    return [SeriesOutcome(Series(nifti=None, sidecar=None, extras=(), series_number=None,
                                 series_description=names[0], protocol_name=names[1], image_type=names[2],
                                 source_folders=tuple(sorted({s.folder.relpath for s in files}))),
                          SeriesStatus.HELD_BACK,
                          f"SeriesNumber {text!r} is not a number (DICOM IS): its {len(files)} file(s) "
                          f"({_folder(files[0])}) are not converted; export the series again with a numeric "
                          "SeriesNumber", group=ReasonGroup.FIX_EXPORT)
            for (text, names), files in malformed.items()]


def _series_without_patient(files: list[tuple]) -> list[SeriesOutcome]:
    """Files without PatientID in a visit whose other files name its patient: nothing says they are that
    patient's; held back and named per series, never merged into the visit's subject."""
    series: dict[tuple, list[SourceFile]] = defaultdict(list)
    for source, number, names, _ in files:
        series[(number, names)].append(source)
    return [SeriesOutcome(Series(nifti=None, sidecar=None, extras=(), series_number=number,
                                 series_description=names[0], protocol_name=names[1], image_type=names[2],
                                 source_folders=tuple(sorted({s.folder.relpath for s in sources}))),
                          SeriesStatus.HELD_BACK,
                          f"no PatientID in its {len(sources)} file(s) ({_folder(sources[0])}) while the visit's other "
                          "files name a patient: not converted (nothing says it is that patient's; set PatientID "
                          "upstream)", group=ReasonGroup.FIX_EXPORT)
            for (number, names), sources in series.items()]


def _media_storage_class(path: Path) -> str:
    """MediaStorageSOPClassUID (0002,0002) of a Part 10 file's meta group ("" when it has none)."""
    try:
        return str(read_file_meta_info(path).get("MediaStorageSOPClassUID", "") or "")
    except PYDICOM_READ_ERRORS:
        return ""


# what a file starts with when it is an archive or a compressed file (tar: "ustar" at byte 257)
ARCHIVE_SIGNATURES = ((b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"PK\x07\x08", "zip"),
                      (b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"),
                      (b"7z\xbc\xaf\x27\x1c", "7-Zip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"Rar!\x1a\x07", "RAR"))


def archive_kind(path: Path) -> str | None:
    """``"zip"``, ``"gzip"``, ``"tar"``... when the file is an archive or a compressed file, else ``None``."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(262)
    except OSError:
        return None
    if start[257:262] == b"ustar":
        return "tar"
    return next((kind for magic, kind in ARCHIVE_SIGNATURES if start.startswith(magic)), None)


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False
