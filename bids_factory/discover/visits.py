"""Stage 1 — discover: walk a Data Capture export and group its files into visits.

Layout: ``EXPORT/DICOM/<yyyy>/<yyyymmdd>/<scan_research_id>/**`` and/or the NIfTI variant
``EXPORT/NIFTI/<yyyy>/<yyyymmdd>/<scan_research_id>/<name>.nifti + <name>.json``. Export days are walked in date
order; a scan_research_id found on several days is ONE visit, the union of its folders.
Nothing here opens a DICOM file or writes anything.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISLNK, S_ISREG

from bids_factory.errors import ExportLayoutError
from bids_factory.discover.export_layout import entries, export_days, link_target, skipped_name, unsafe_name
from bids_factory.model import Problem, SourceFile, Visit, VisitFolder, export_relpath

IMAGE_KINDS = ("DICOM", "NIFTI")


class _VisitFolderError(Exception):
    """A visit folder that cannot be walked (a link loop, an I/O error): the visit is not converted."""


@dataclass(frozen=True)
class Discovery:
    visits: tuple[Visit, ...]
    problems: tuple[Problem, ...]


def discover(export_root: Path, today: dt.date | None = None) -> Discovery:
    """Find every visit of the export. Bad folders and files become :class:`Problem` values; a visit with
    a folder that cannot be walked is named and left out (every other visit goes on)."""
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
    days = {kind: export_days(root, kind, today, problems) for kind in kinds}
    accepted = frozenset(d.path for kind_days in days.values() for d in kind_days)
    folders: dict[str, list[VisitFolder]] = {}
    files: dict[str, list[SourceFile]] = {}
    broken: set[str] = set()
    for kind in kinds:
        for day in days[kind]:
            for visit_dir in entries(day.path, root, problems, "visit folder"):
                rel = export_relpath(root, visit_dir)
                if unsafe_name(visit_dir.name):
                    problems.append(Problem(repr(rel), "visit folder name holds a tab, a line break or another "
                                                       "control character: not converted (rename the folder)"))
                    continue
                if skipped_name(visit_dir.name):
                    problems.append(Problem(rel, "skipped: name marks a phantom or deleted visit", fatal=False))
                    continue
                if visit_dir.is_symlink() or not visit_dir.is_dir():
                    problems.append(Problem(rel, "not a visit folder (a file or a symbolic link): ignored"))
                    continue
                folder = VisitFolder(kind=kind, day=day.day, path=visit_dir, relpath=rel)
                try:
                    found = list(_visit_files(root, folder, accepted, problems))
                except (_VisitFolderError, OSError) as exc:
                    reason = str(exc) if isinstance(exc, _VisitFolderError) else f"cannot be read: {exc}"
                    problems.append(Problem(rel, f"visit {visit_dir.name}: {reason}; the visit is not converted"))
                    broken.add(visit_dir.name)
                    continue
                if not found:
                    problems.append(Problem(rel, "empty visit folder: no readable file in it"))
                    continue
                folders.setdefault(visit_dir.name, []).append(folder)
                files.setdefault(visit_dir.name, []).extend(found)
    visits = tuple(
        Visit(scan_research_id=vid, folders=tuple(folders[vid]), files=tuple(files[vid]))
        for vid in sorted(folders) if vid not in broken  # never a part of a visit
    )
    return Discovery(visits=visits, problems=tuple(problems))


def _visit_files(root: Path, folder: VisitFolder, accepted: frozenset[Path], problems: list[Problem]):
    """Every regular, readable file at any depth below a visit folder, never leaving the accepted folders.

    A run walks every file of the export, every day: one ``scandir`` per folder and one ``lstat`` per file
    (folders and files in name order, a folder's files before its sub-folders)."""
    yield from _folder_files(str(folder.path), root, folder, accepted, problems)


def _folder_files(here: str, root: Path, folder: VisitFolder, accepted: frozenset[Path], problems: list[Problem]):
    with os.scandir(here) as listing:  # an unreadable folder fails its visit (OSError)
        found = sorted(listing, key=lambda entry: entry.name)
    folders = {entry.name for entry in found if _is_folder(entry)}
    subfolders = []
    for entry in found:
        if entry.name not in folders:
            continue
        if entry.name.startswith("."):
            problems.append(Problem(export_relpath(root, entry.path), "hidden folder: ignored", fatal=False))
        elif entry.is_symlink():
            problems.append(Problem(export_relpath(root, entry.path), "symbolic link to a folder: not followed"))
        else:
            subfolders.append(entry.path)
    for entry in found:
        if entry.name.startswith(".") or entry.name in folders:
            continue
        rel = export_relpath(root, entry.path)
        info, path = _entry_stat(entry), entry.path
        if info is not None and S_ISLNK(info.st_mode):
            target, why = link_target(root, Path(path), accepted)
            if target is None:
                if "loop" in why:
                    raise _VisitFolderError(f"{rel}: {why}")
                problems.append(Problem(rel, why))
                continue
            path, info = target, _stat(target, follow=True)
        if info is None or not S_ISREG(info.st_mode):
            problems.append(Problem(rel, "not a regular file: ignored"))
            continue
        if not os.access(path, os.R_OK):
            problems.append(Problem(rel, "unreadable file (permission denied)"))
            continue
        yield SourceFile(path=Path(path), folder=folder, size=info.st_size, mtime_ns=info.st_mtime_ns)
    for subfolder in subfolders:
        yield from _folder_files(subfolder, root, folder, accepted, problems)


def _is_folder(entry: os.DirEntry) -> bool:
    """A folder, or a link to one, as ``os.walk`` tells them (a link that cannot be followed is a file)."""
    try:
        return entry.is_dir()
    except OSError:  # a link loop
        return False


def _entry_stat(entry: os.DirEntry) -> os.stat_result | None:
    try:
        return entry.stat(follow_symlinks=False)
    except OSError:
        return None


def _stat(path: Path, follow: bool) -> os.stat_result | None:
    """The file's status, None when it vanished or cannot be looked at (then it is not a regular file)."""
    try:
        return os.stat(path, follow_symlinks=follow)
    except OSError:
        return None
