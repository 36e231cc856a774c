"""Stage 1 — discover: walk a Data Capture export and group its files into visits.

Layout: ``EXPORT/DICOM/<yyyy>/<yyyymmdd>/<scan_research_id>/**`` and/or the NIfTI variant
``EXPORT/NIFTI/<yyyy>/<yyyymmdd>/<scan_research_id>/<name>.nifti + <name>.json``. Export days are walked in date
order; a scan_research_id found on several days is ONE visit, the union of its folders.
Nothing here opens a DICOM file or writes anything.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bids_factory.errors import ExportLayoutError
from bids_factory.model import Problem, SourceFile, Visit, VisitFolder

IMAGE_KINDS = ("DICOM", "NIFTI")
READY_MARKER = ".ready"
SKIPPED_NAME_PARTS = ("delete", "phantom")
_YEAR = re.compile(r"^\d{4}$")
_DAY = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class Discovery:
    visits: tuple[Visit, ...]
    problems: tuple[Problem, ...]


def discover(export_root: Path, today: dt.date | None = None) -> Discovery:
    """Find every visit of the export. Bad folders and files become :class:`Problem` values."""
    root = export_root.resolve()
    if not root.is_dir():
        raise ExportLayoutError(f"export folder {export_root} does not exist or is not a folder")
    kinds = [k for k in IMAGE_KINDS if (root / k).is_dir()]
    if not kinds and not (root / "EHR").is_dir():
        raise ExportLayoutError(
            f"{export_root} is not a Data Capture export: no DICOM/, NIFTI/ or EHR/ folder in it"
        )
    today = today or dt.date.today()
    problems: list[Problem] = []
    folders: dict[str, list[VisitFolder]] = {}
    files: dict[str, list[SourceFile]] = {}
    for kind in kinds:
        for day_dir, day in _export_days(root, root / kind, today, problems):
            for visit_dir in sorted(p for p in day_dir.iterdir() if not p.name.startswith(".")):
                rel = visit_dir.relative_to(root).as_posix()
                if _skipped_name(visit_dir.name):
                    problems.append(Problem(rel, "skipped: name marks a phantom or deleted visit", fatal=False))
                    continue
                if visit_dir.is_symlink() or not visit_dir.is_dir():
                    problems.append(Problem(rel, "not a visit folder (a file or a symbolic link): ignored"))
                    continue
                folder = VisitFolder(kind=kind, day=day, path=visit_dir, relpath=rel)
                found = list(_visit_files(root, folder, problems))
                if not found:
                    problems.append(Problem(rel, "empty visit folder: no readable file in it"))
                    continue
                folders.setdefault(visit_dir.name, []).append(folder)
                files.setdefault(visit_dir.name, []).extend(found)
    visits = tuple(
        Visit(scan_research_id=vid, folders=tuple(folders[vid]), files=tuple(files[vid]))
        for vid in sorted(folders)
    )
    return Discovery(visits=visits, problems=tuple(problems))


def _skipped_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SKIPPED_NAME_PARTS)


def _export_days(root: Path, kind_dir: Path, today: dt.date, problems: list[Problem]):
    """Yield (day folder, yyyymmdd) in date order; report misnamed and unfinished days."""
    days: list[tuple[str, Path]] = []
    for year_dir in sorted(p for p in kind_dir.iterdir() if not p.name.startswith(".")):
        rel = year_dir.relative_to(root).as_posix()
        if not year_dir.is_dir() or year_dir.is_symlink() or not _YEAR.match(year_dir.name):
            problems.append(Problem(rel, "not a <yyyy> year folder: ignored"))
            continue
        for day_dir in sorted(p for p in year_dir.iterdir() if not p.name.startswith(".")):
            rel = day_dir.relative_to(root).as_posix()
            day = day_dir.name
            if not day_dir.is_dir() or day_dir.is_symlink() or not _DAY.match(day):
                problems.append(Problem(rel, "not a <yyyymmdd> day folder: ignored"))
                continue
            try:
                date = dt.datetime.strptime(day, "%Y%m%d").date()
            except ValueError:
                problems.append(Problem(rel, f"{day} is not a calendar date: ignored"))
                continue
            if day[:4] != year_dir.name:
                problems.append(Problem(rel, f"day {day} is filed under year {year_dir.name}: ignored"))
                continue
            if _skipped_name(day):
                continue
            if date >= today and not (day_dir / READY_MARKER).exists():
                problems.append(
                    Problem(rel, f"skipped: today's export is still being written (no {READY_MARKER} marker)",
                            fatal=False)
                )
                continue
            days.append((day, day_dir))
    for day, day_dir in sorted(days):
        yield day_dir, day


def _visit_files(root: Path, folder: VisitFolder, problems: list[Problem]):
    """Every regular, readable file at any depth below a visit folder, never leaving the export."""
    for dirpath, dirnames, filenames in os.walk(folder.path, followlinks=False):
        here = Path(dirpath)
        for name in sorted(dirnames):
            sub = here / name
            if sub.is_symlink():
                problems.append(Problem(_rel(root, sub), "symbolic link to a folder: not followed"))
        dirnames[:] = sorted(d for d in dirnames if not (here / d).is_symlink())
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            rel = _rel(root, path)
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root):
                    problems.append(Problem(rel, "symbolic link that points outside the export: not followed"))
                    continue
                path = target
            if not path.is_file():
                problems.append(Problem(rel, "not a regular file: ignored"))
                continue
            if not os.access(path, os.R_OK):
                problems.append(Problem(rel, "unreadable file (permission denied)"))
                continue
            stat = path.stat()
            yield SourceFile(path=path, folder=folder, size=stat.st_size, mtime_ns=stat.st_mtime_ns)


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()
