"""Stage 1 — discover: walk a Data Capture export and group its files into visits.

Layout: ``EXPORT/DICOM/<yyyy>/<yyyymmdd>/<scan_research_id>/**`` and/or the NIfTI variant
``EXPORT/NIFTI/<yyyy>/<yyyymmdd>/<scan_research_id>/<name>.nifti + <name>.json``. Export days are walked in date
order; a scan_research_id found on several days is ONE visit, the union of its folders.
Nothing here opens a DICOM file or writes anything.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISLNK, S_ISREG
from typing import Callable

from bids_factory.errors import ExportLayoutError
from bids_factory.discover.export_layout import ExportDay, entries, export_days, link_target, skipped_name, unsafe_name
from bids_factory.model import Problem, SourceFile, Visit, VisitFolder, export_relpath

IMAGE_KINDS = ("DICOM", "NIFTI")


class _VisitFolderError(Exception):
    """A visit folder that cannot be walked (a link loop, an I/O error): the visit is not converted."""


@dataclass(frozen=True)
class Discovery:
    visits: tuple[Visit, ...]  # the visits walked (every visit, without listings)
    problems: tuple[Problem, ...]
    unchanged: tuple[str, ...] = ()  # visits left unwalked: only in day folders unchanged since their listing
    listings: dict[str, dict] = field(default_factory=dict)  # day relpath -> listing of the days listed now

    @property
    def visit_ids(self) -> set[str]:
        """Every visit of the export, walked or not."""
        return {v.scan_research_id for v in self.visits} | set(self.unchanged)


RACY_NS = 2_000_000_000  # a folder changed this close before its listing may change again unseen: listed again


def discover(export_root: Path, today: dt.date | None = None, listings: dict[str, dict] | None = None,
             current: Callable[[str, str], bool] | None = None) -> Discovery:
    """Find every visit of the export. Bad folders and files become :class:`Problem` values; a visit with
    a folder that cannot be walked is named and left out (every other visit goes on).

    ``listings`` (day relpath -> what the last run found there, :attr:`Discovery.listings`): a day folder
    whose modification time is the listed one is not listed again, and a visit whose folders all lie in such
    days is not walked when ``current(scan_research_id, fingerprint)`` says its state is that of the files
    the listings saw (else it is walked: a run stopped before converting it, other settings...); its
    folders' problems are reported as listed. A day folder's time changes when a visit folder is added,
    removed or renamed in it, not when a file changes inside a visit folder (``--rescan`` walks everything)."""
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
    listed: dict[str, dict] = {}  # the days listed now, to keep for the next run
    day_folders: list[tuple[str, ExportDay, dict]] = []  # (kind, day, listing) in walk order
    changed: set[str] = set()  # visits with a folder in a day folder new or changed since its listing
    for kind in kinds:
        for day in days[kind]:
            listing, new = _listing(root, day, None if listings is None else listings.get(day.relpath))
            if new is not None:
                changed |= new
                listed[day.relpath] = listing
            problems.extend(Problem(*p) for p in listing["problems"])
            day_folders.append((kind, day, listing))
    where: dict[str, list[tuple[str, ExportDay, dict]]] = {}  # visit -> its (kind, day, listing), walk order
    for kind, day, listing in day_folders:
        for name in listing["folders"]:
            where.setdefault(name, []).append((kind, day, listing))
    folders: dict[str, list[VisitFolder]] = {}
    files: dict[str, list[SourceFile]] = {}
    broken: set[str] = set()
    unchanged: set[str] = set()
    for name in sorted(where):
        # as walked last: one fingerprint over as many folders as there are now (a purged day is a change)
        seen = {(listing["folders"][name].get("fingerprint"), listing["folders"][name].get("folders"))
                for _, _, listing in where[name]}
        fingerprint, count = seen.pop() if len(seen) == 1 else (None, None)
        if name not in changed and current is not None and count == len(where[name]) and current(name, fingerprint):
            problems.extend(Problem(*p) for _, _, listing in where[name] for p in listing["folders"][name]["problems"])
            unchanged.add(name)
            continue
        for kind, day, listing in where[name]:
            folder = VisitFolder(kind=kind, day=day.day, path=day.path / name, relpath=export_relpath(root, day.path / name))
            found_problems: list[Problem] = []
            try:
                found = list(_visit_files(root, folder, accepted, found_problems))
            except (_VisitFolderError, OSError) as exc:
                reason = str(exc) if isinstance(exc, _VisitFolderError) else f"cannot be read: {exc}"
                found_problems.append(Problem(folder.relpath, f"visit {name}: {reason}; the visit is not converted"))
                broken.add(name)
                found = []
            if not found and name not in broken:
                found_problems.append(Problem(folder.relpath, "empty visit folder: no readable file in it"))
            problems.extend(found_problems)
            listing["folders"][name] = {"problems": [[p.path, p.reason, p.fatal] for p in found_problems]}
            listed.setdefault(day.relpath, listing)  # kept again with what the walk found
            if found:
                folders.setdefault(name, []).append(folder)
                files.setdefault(name, []).extend(found)
    visits = tuple(
        Visit(scan_research_id=vid, folders=tuple(folders[vid]), files=tuple(files[vid]))
        for vid in sorted(folders) if vid not in broken  # never a part of a visit
    )
    for visit in visits:  # what the next run compares with the visit's state
        for _, _, listing in where[visit.scan_research_id]:
            listing["folders"][visit.scan_research_id].update(fingerprint=visit.fingerprint,
                                                              folders=len(where[visit.scan_research_id]))
    return Discovery(visits=visits, problems=tuple(problems), unchanged=tuple(sorted(unchanged)), listings=listed)


def _listing(root: Path, day: ExportDay, kept: dict | None) -> tuple[dict, set[str] | None]:
    """(the listing of ``day``, the names of its visit folders to walk; None: none, and the kept listing
    stays as it is). A day whose modification time is the kept one, listed long enough after it, is not
    listed again; listed again within :data:`RACY_NS` of it, only its new visit folders are walked."""
    try:
        mtime = day.path.stat().st_mtime_ns
    except OSError:
        mtime = None
    if isinstance(kept, dict) and mtime == kept.get("mtime_ns") and mtime < kept.get("listed_ns", 0) - RACY_NS:
        return kept, None
    listing = _list_day(root, day)
    if not isinstance(kept, dict) or mtime != kept.get("mtime_ns") or listing["mtime_ns"] != mtime:
        return listing, set(listing["folders"])
    new = set(listing["folders"]) - set(kept["folders"])
    for name in set(listing["folders"]) & set(kept["folders"]):
        listing["folders"][name] = kept["folders"][name]  # (reported as listed unless walked)
    settled = mtime < listing["listed_ns"] - RACY_NS
    if not new and listing["problems"] == kept["problems"] and set(listing["folders"]) == set(kept["folders"]) \
            and not settled:
        return kept, None  # nothing to keep: listed again next run
    return listing, new


def _list_day(root: Path, day: ExportDay) -> dict:
    """The visit folders of a day folder (each with its problems, filled when it is walked) and the
    problems of the day's other entries."""
    listed_ns = time.time_ns()
    mtime = day.path.stat().st_mtime_ns
    problems: list[Problem] = []
    folders: dict[str, list] = {}
    for visit_dir in entries(day.path, root, problems, "visit folder"):
        rel = export_relpath(root, visit_dir)
        if unsafe_name(visit_dir.name):
            problems.append(Problem(repr(rel), "visit folder name holds a tab, a line break or another "
                                               "control character: not converted (rename the folder)"))
        elif skipped_name(visit_dir.name):
            problems.append(Problem(rel, "skipped: name marks a phantom or deleted visit", fatal=False))
        elif visit_dir.is_symlink() or not visit_dir.is_dir():
            problems.append(Problem(rel, "not a visit folder (a file or a symbolic link): ignored"))
        else:
            folders[visit_dir.name] = {"problems": []}
    return {"mtime_ns": mtime, "listed_ns": listed_ns, "folders": folders,
            "problems": [[p.path, p.reason, p.fatal] for p in problems]}


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
