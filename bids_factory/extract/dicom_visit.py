"""Stage 2 — extract: read a visit's identity from its DICOM headers, then run dcm2niix.

dcm2niix (the PyPI wheel) converts the visit into a private staging folder, never the dataset.
The patient's raw PatientID is read here and kept only as a hash: the dataset never sees it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shlex
import subprocess
from collections import defaultdict
from pathlib import Path

from bids_factory.errors import ToolMissingError, VisitError, VisitWithoutImages
from bids_factory.privacy.visit_identifiers import read_nifti_sidecars, visit_identifiers
from bids_factory.extract.dicom_headers import VisitHeaders, read_visit_headers
from bids_factory.model import ExtractedVisit, Problem, Series, Visit, shortened, subject_label, too_long_file_name
from bids_factory.extract.nifti_visit import ORPHAN_IMAGE, stage_nifti_files
from bids_factory.extract.processes import die_with_parent
from bids_factory.extract.staged_images import ADC_SUFFIX, VARIANT_STEM, image_stem

log = logging.getLogger(__name__)

# dcm2niix options we rely on. Plain NIfTI (the images to place are gzipped later, see staged_images),
# BIDS sidecar, and -ba y (anonymised sidecar) are re-asserted after any options a heuristic adds, so a
# heuristic cannot switch them off.
BASE_OPTIONS = ("-b", "y", "-z", "n", "-f", "%s_%p")
ENFORCED_OPTIONS = ("-b", "y", "-ba", "y", "-z", "n")
_CONVERTER_FILE = re.compile(r"input/(\d{6})\.dcm")
_CONVERTER_COMPLAINTS = ("Warning", "Error", "Unable", "not large enough")
MAX_FOLDER_DEPTH = 9  # dcm2niix's deepest search (-d 9)


def converter_file_problems(converter_log: str, headers: VisitHeaders, input_folder: Path | None = None
                            ) -> list[Problem]:
    """dcm2niix's warnings and errors about single input files, named by their export path.

    ``input_folder``: the visit folder dcm2niix read directly (its log names the files by their path),
    else it read the numbered links in staging."""
    by_path = {str(s.path): s for s in headers.dicom_files} if input_folder else {}
    problems = []
    for line in converter_log.splitlines():
        if not any(word in line for word in _CONVERTER_COMPLAINTS):
            continue
        if input_folder:
            named = max((path for path in by_path if path in line), key=len, default=None)
            source, text = (by_path[named], named) if named else (None, "")
        else:
            found = _CONVERTER_FILE.search(line)
            index = int(found.group(1)) if found else len(headers.dicom_files)
            source, text = (headers.dicom_files[index], found.group(0)) if index < len(headers.dicom_files) else (None, "")
        if source is not None:
            message = line.replace(text, "").strip().rstrip(":").strip()
            problems.append(Problem(source.relpath, f"dcm2niix: {message}"))
    return problems


def portable_log(converter_log: str, staging: Path, direct: tuple[Path, str] | None = None) -> str:
    """dcm2niix's log without the converting host's folders: the visit's staging folder reads ``<staging>``
    and a visit folder it read directly (``direct``: its path, its export path) reads as its export path.
    The log is kept in the visit's record, which travels with the dataset: it names no folder of the machine
    (a mount point, a user's home) and reads the same wherever the dataset was converted."""
    for folder, name in ([direct] if direct else []) + [(staging, "<staging>")]:
        for spelled in dict.fromkeys((str(folder.resolve()), str(folder))):  # also when reached through a link
            converter_log = converter_log.replace(spelled, name)
    return converter_log


def direct_input(visit: Visit, headers: VisitHeaders) -> Path | None:
    """The visit's folder, when dcm2niix may read it as it is (no link per file in staging): one export
    day, and nothing below it but the visit's DICOM files (no link, no hidden or other file, at most
    ``MAX_FOLDER_DEPTH`` deep). Otherwise ``None``: the files are linked into staging one by one."""
    if len(visit.folders) != 1 or visit.folders[0].kind != "DICOM" or len(headers.dicom_files) != len(visit.files):
        return None
    folder, count, stack = visit.folders[0].path, 0, [(visit.folders[0].path, 0)]
    while stack:
        here, depth = stack.pop()
        with os.scandir(here) as entries:
            for entry in entries:
                if entry.name.startswith(".") or entry.is_symlink():
                    return None
                if entry.is_dir(follow_symlinks=False):
                    if depth + 1 > MAX_FOLDER_DEPTH:
                        return None
                    stack.append((entry.path, depth + 1))
                elif entry.is_file(follow_symlinks=False):
                    count += 1
                else:
                    return None
    return folder if count == len(visit.files) else None


def subject_identity(patient_ids: frozenset[str], visit: Visit) -> tuple[str, str]:
    """(subject label, patient key) for a visit, or :class:`VisitError` when it is not one patient."""
    if not patient_ids:
        raise VisitError(f"visit {visit.scan_research_id}: the DICOM files carry no PatientID "
                         "(NIfTI export: no patient id field in the JSON)")
    if len(patient_ids) > 1:
        raise VisitError(
            f"visit {visit.scan_research_id}: its DICOM files carry {len(patient_ids)} different "
            "PatientIDs (one visit must be one patient)"
        )
    raw = next(iter(patient_ids))
    label = subject_label(raw)
    if not label:
        raise VisitError(f"visit {visit.scan_research_id}: its PatientID has no letter or digit to make a label")
    if not visit.session_label:
        raise VisitError(f"visit folder {visit.scan_research_id!r} has no letter or digit to make a session label")
    scans = f"sub-{label}_ses-{visit.session_label}_scans.tsv"  # the shortest name a placed visit writes
    if too_long_file_name(scans):
        raise VisitError(f"visit {shortened(visit.scan_research_id)}: its BIDS file names (sub-<PatientID>_ses-<visit>_...) "
                         f"would be {len(os.fsencode(scans))} bytes or more, longer than a file system holds "
                         "(255): not converted (shorten the visit folder name or the PatientID in the export)")
    return label, hashlib.sha256(raw.encode("utf-8")).hexdigest()


@functools.cache
def dcm2niix_command() -> str:
    try:
        import dcm2niix
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ToolMissingError("dcm2niix is not installed: pip install dcm2niix") from exc
    return dcm2niix.bin


@functools.cache
def dcm2niix_version() -> str:
    """The converter's version as it prints it, e.g. ``v1.0.20240202``."""
    out = subprocess.run([dcm2niix_command(), "--version"], capture_output=True, text=True, check=False)
    for token in (out.stdout + out.stderr).split():
        if token.startswith("v1.") or token.startswith("v2."):
            return token
    return "unknown"


def run_dcm2niix(visit: Visit, headers: VisitHeaders, staging: Path, extra_options: str = "",
            input_folder: Path | None = None) -> tuple[list[Series], str, int]:
    """Run dcm2niix on the visit's DICOM files into ``staging``; return the series, its log and exit status.

    dcm2niix reads ``input_folder`` (see :func:`direct_input`) when given; otherwise the visit's files
    (possibly spread over several export days) are linked into one input folder in staging, so dcm2niix
    sees exactly the union of the visit and nothing else of the export.
    """
    outputs = staging / "output"
    outputs.mkdir(parents=True)
    if input_folder is None:
        input_folder = staging / "input"
        input_folder.mkdir()
        for index, source in enumerate(headers.dicom_files):
            (input_folder / f"{index:06d}.dcm").symlink_to(source.path)
    command = [
        dcm2niix_command(), *BASE_OPTIONS, *shlex.split(extra_options), *ENFORCED_OPTIONS,
        "-d", str(MAX_FOLDER_DEPTH), "-o", str(outputs), str(input_folder),
    ]
    done = subprocess.run(command, capture_output=True, text=True, errors="replace", check=False,
                          preexec_fn=die_with_parent)
    converter_log = done.stdout + done.stderr
    series = [_series(nifti, headers) for nifti in sorted(outputs.glob("*.nii"))]
    if done.returncode != 0 and series:
        log.warning("visit %s: dcm2niix exited %s but produced %d image(s)",
                    visit.scan_research_id, done.returncode, len(series))
    return series, converter_log, done.returncode


def merged_series(headers: VisitHeaders, converted: list[Series], staging: Path) -> frozenset:
    """DICOM series numbers that name no image but whose files dcm2niix converts: merged into an image
    named by another number. Siemens XA classic DICOM gives each volume of a series its own SeriesNumber
    (7001, 7002...), and dcm2niix merges them into one image named 7001. The files of each such number
    are given to dcm2niix again alone, sidecar only (``-b o``: no image is written): a sidecar means
    dcm2niix converts them, so in the visit's conversion they went into an image."""
    named = {s.series_number for s in converted}
    leftover: dict = defaultdict(list)
    for index, number in enumerate(headers.file_series):
        if number not in named:
            leftover[number].append(index)
    merged = set()
    for number, indexes in leftover.items():
        folder = staging / "recheck" / str(number)
        (folder / "in").mkdir(parents=True)
        (folder / "out").mkdir()
        for index in indexes:
            (folder / "in" / f"{index:06d}.dcm").symlink_to(headers.dicom_files[index].path)
        subprocess.run([dcm2niix_command(), "-b", "o", "-ba", "y", "-o", str(folder / "out"), str(folder / "in")],
                       capture_output=True, check=False, preexec_fn=die_with_parent)
        if any((folder / "out").glob("*.json")):
            merged.add(number)
    return frozenset(merged)


def _series(nifti: Path, headers: VisitHeaders) -> Series:
    stem = image_stem(nifti)
    sidecar = nifti.with_name(stem + ".json")
    data = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    number = data.get("SeriesNumber")
    extras = tuple(p for p in (nifti.with_name(stem + ".bval"), nifti.with_name(stem + ".bvec")) if p.exists())
    image_type = data.get("ImageType") or ()
    return Series(
        nifti=nifti,
        sidecar=sidecar,
        extras=extras,
        series_number=number,
        series_description=str(data.get("SeriesDescription", "")),
        protocol_name=str(data.get("ProtocolName", "")),
        image_type=tuple(image_type) if isinstance(image_type, list) else (str(image_type),),
        source_folders=headers.series_folders.get(number, tuple(sorted(set().union(*headers.series_folders.values())))),
    )


def extract(visit: Visit, staging: Path, extra_options: str = "", wanted_subjects: frozenset[str] = frozenset(),
            nifti_patient_field: str = "PatientID") -> ExtractedVisit | None:
    """Identity, then conversion (dcm2niix for DICOM folders, staging for NIfTI folders).

    ``None`` when the visit's subject is not among ``wanted_subjects``.
    """
    headers = read_visit_headers([f for f in visit.files if f.folder.kind == "DICOM"])
    nifti_sources = [f for f in visit.files if f.folder.kind == "NIFTI"]
    nifti = stage_nifti_files(nifti_sources, staging / "nifti", nifti_patient_field) if nifti_sources else None
    if not headers.dicom_files and not (nifti and nifti.series) and headers.non_image_objects and not headers.refused:
        raise VisitWithoutImages(f"visit {visit.scan_research_id}: {headers.non_image_objects} non-image DICOM "
                                 "object(s) and no image: nothing to convert", headers.problems,
                                 headers.non_image_objects)
    if not headers.dicom_files and not (nifti and nifti.series):
        named = [f"{p.path}: {p.reason}" for p in headers.problems + (nifti.problems if nifti else ()) if p.fatal][:3]
        raise VisitError(f"visit {visit.scan_research_id}: no DICOM file or NIfTI image among "
                         f"{len(visit.files)} files" + (f" ({' | '.join(named)})" if named else ""))
    label, patient_key = subject_identity(headers.patient_ids | (nifti.patient_ids if nifti else frozenset()), visit)
    if wanted_subjects and label not in wanted_subjects:
        return None
    identifiers = visit_identifiers(  # a visit whose identifiers cannot be read is not placed
        [[source.path for source in files] for files in (headers.series_files or {}).values()],
        read_nifti_sidecars(s.sidecar for s in nifti.series) if nifti else (),
        nifti_patient_field, where=f"visit {visit.scan_research_id}")
    try:
        return _convert(visit, staging, extra_options, headers, nifti, label, patient_key, identifiers)
    except VisitError as exc:  # its message may quote the converter's log or a staged file named after the series
        raise type(exc)(identifiers.redact(str(exc))) from None
    except Exception as exc:  # an unforeseen failure: its message may hold a staged path (series names)
        raise VisitError(identifiers.redact(f"visit {visit.scan_research_id}: internal error "
                                            f"{type(exc).__name__}: {exc}")) from None


def _convert(visit: Visit, staging: Path, extra_options: str, headers: VisitHeaders, nifti, label: str,
             patient_key: str, identifiers) -> ExtractedVisit:
    """The conversion of a visit whose identity and identifiers are read."""
    series, converter_log, converter_exit, problems = [], "", 0, list(headers.problems)
    if headers.dicom_files:
        direct = direct_input(visit, headers)
        series, converter_log, converter_exit = run_dcm2niix(visit, headers, staging, extra_options, direct)
        problems += converter_file_problems(converter_log, headers, direct)
        converter_log = portable_log(converter_log, staging, (direct, visit.folders[0].relpath) if direct else None)
    if nifti:
        problems += nifti.problems
    if not series and not (nifti and nifti.series):
        named = [f"{p.path}: {p.reason}" for p in problems if p.fatal][:3]
        tail = named or converter_log.strip().splitlines()[-2:]
        raise VisitError(f"visit {visit.scan_research_id}: dcm2niix produced no image ({' | '.join(tail)})")
    for orphan in (s for s in series if not s.sidecar.exists() and not VARIANT_STEM.search(image_stem(s.nifti))
                   and not image_stem(s.nifti).endswith(ADC_SUFFIX)):  # _ADC: the scanner's volume, not an image
        where = ",".join(orphan.source_folders) or visit.folders[0].relpath
        problems.append(Problem(f"{where} (dcm2niix image {orphan.nifti.name})", ORPHAN_IMAGE, fatal=False))
    return ExtractedVisit(
        visit=visit,
        subject_label=label,
        patient_key=patient_key,
        staging=staging,
        series=tuple(s for s in series if s.sidecar.exists()) + (nifti.series if nifti else ()),
        # after a failed dcm2niix run a series it dropped is not "merged" into another: it is missing
        unconverted=headers.unconverted(series, merged_series(headers, series, staging) if converter_exit == 0
                                        else frozenset()) if headers.dicom_files else (),
        non_dicom_files=headers.non_dicom_files + (nifti.ignored_files if nifti else 0),
        problems=tuple(problems),
        converter_version=dcm2niix_version(),
        converter_log=converter_log,
        identifiers=identifiers,
        converter_exit=converter_exit,
        series_images=headers.series_images,
        non_image_objects=headers.non_image_objects,
        refused=headers.refused,
    )
