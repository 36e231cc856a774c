"""The export's day folders, one set of rules for images and EHR: ``<KIND>/<yyyy>/<yyyymmdd>/``.

Used by :mod:`bids_factory.discover.visits` (DICOM, NIFTI) and :func:`find_ehr_files` (EHR), so a folder
is treated the same whatever it holds:

- hidden entries (``.V1``, ``.20240426``) are named and ignored (non-fatal); ``.ready`` is the marker;
- a folder named like a phantom or deleted export (``delete``, ``phantom``) is skipped and named (non-fatal);
- a year or day folder that is not ``yyyy`` / ``yyyymmdd`` (a calendar date of that year), or is a
  file or a symbolic link, is named and ignored (fatal: data the hospital sent is not converted);
- today's (or a future) day is read only once it holds the ``.ready`` marker (named, non-fatal);
- a name holding a tab, a line break or another control character is refused (fatal).

A symbolic link to a file is followed only to a file inside an accepted folder of the export
(:func:`link_target`): never out of the export, never into a skipped, hidden or unfinished folder.
Pure reading: nothing is written.
"""

from __future__ import annotations

import datetime as dt
import errno
import re
from dataclasses import dataclass
from pathlib import Path

from bids_factory.model import Problem, export_relpath

READY_MARKER = ".ready"
SKIPPED_NAME_PARTS = ("delete", "phantom")
_YEAR = re.compile(r"^\d{4}$")
_DAY = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class ExportDay:
    path: Path  # absolute
    day: str  # yyyymmdd
    relpath: str  # relative to the export root


def skipped_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SKIPPED_NAME_PARTS)


def unsafe_name(name: str) -> bool:
    """A name with a tab, a line break or another control character (it cannot go into a TSV file)."""
    return not name.isprintable()


def entries(folder: Path, root: Path, problems: list[Problem], what: str) -> list[Path]:
    """The visible entries of a folder, sorted; hidden ones (but the ``.ready`` marker) are named."""
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            if path.name != READY_MARKER:
                kind = what if path.is_dir() or what == "file" else "file"
                problems.append(Problem(export_relpath(root, path), f"hidden {kind}: ignored", fatal=False))
            continue
        found.append(path)
    return found


def export_days(root: Path, kind: str, today: dt.date, problems: list[Problem]) -> list[ExportDay]:
    """The accepted day folders of ``root/kind`` in date order; every other entry is named in ``problems``."""
    kind_dir = root / kind
    if not kind_dir.is_dir():
        return []
    days: list[ExportDay] = []
    for year_dir in entries(kind_dir, root, problems, "folder"):
        rel = export_relpath(root, year_dir)
        if year_dir.is_symlink() or not year_dir.is_dir() or not _YEAR.match(year_dir.name):
            problems.append(Problem(rel, "not a <yyyy> year folder: ignored"))
            continue
        for day_dir in entries(year_dir, root, problems, "folder"):
            rel = export_relpath(root, day_dir)
            day = day_dir.name
            if skipped_name(day):
                problems.append(Problem(rel, "skipped: name marks a phantom or deleted export", fatal=False))
                continue
            if day_dir.is_symlink() or not day_dir.is_dir() or not _DAY.match(day):
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
            if date >= today and not (day_dir / READY_MARKER).exists():
                problems.append(Problem(
                    rel, f"skipped: today's export is still being written (no {READY_MARKER} marker)", fatal=False))
                continue
            days.append(ExportDay(path=day_dir, day=day, relpath=rel))
    return sorted(days, key=lambda d: d.day)


def link_target(root: Path, link: Path, accepted_days: frozenset[Path]) -> tuple[Path | None, str]:
    """Where a symbolic link to a file may be followed: (target, "") or (None, why it is not followed).

    Only to a file in a visible, not skipped folder below an accepted day folder of the export.
    """
    try:
        target = link.resolve(strict=True)
    except RuntimeError:  # Python < 3.13
        return None, "symbolic link loop: not followed"
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # Python >= 3.13 raises OSError for a loop
            return None, "symbolic link loop: not followed"
        return None, f"broken symbolic link ({exc.strerror or exc}): not followed"
    if not target.is_relative_to(root):
        return None, "symbolic link that points outside the export: not followed"
    day = next((d for d in accepted_days if target.is_relative_to(d)), None)
    inside = target.relative_to(day).parts[:-1] if day else ()
    if day is None or any(part.startswith(".") or skipped_name(part) for part in inside):
        return None, ("symbolic link into a folder that is not converted (phantom/delete, hidden, "
                      "not ready or not a day folder): not followed")
    return target, ""



@dataclass(frozen=True)
class EhrFile:
    path: Path
    relpath: str  # relative to the export root, e.g. EHR/2024/20240311/demographics.csv
    day: str  # yyyymmdd

    @property
    def stem(self) -> str:
        return self.path.stem


def find_ehr_files(export_root: Path, today: dt.date | None = None) -> tuple[list[EhrFile], list[Problem]]:
    """Every ``*.csv`` of ``EHR/<yyyy>/<yyyymmdd>/``, in day order then name order.

    The day folders follow the same rules as the image folders (:mod:`bids_factory.discover.export_layout`):
    misnamed, linked, phantom/deleted and unfinished days, hidden entries and links are treated alike.
    """
    root = export_root.resolve()
    problems: list[Problem] = []
    days = export_days(root, "EHR", today or dt.date.today(), problems)
    accepted = frozenset(d.path for d in days)
    found: list[EhrFile] = []
    for day in days:
        for path in entries(day.path, root, problems, "file"):
            rel = path.relative_to(root).as_posix()
            if path.suffix.lower() != ".csv" or path.is_dir():
                problems.append(Problem(rel, "not a .csv file: not read as an EHR table", fatal=False))
                continue
            if path.is_symlink():
                target, why = link_target(root, path, accepted)
                if target is None:
                    problems.append(Problem(rel, why))
                    continue
            if not path.is_file():
                problems.append(Problem(rel, "not a regular file: ignored"))
                continue
            found.append(EhrFile(path=path, relpath=rel, day=day.day))
    found.sort(key=lambda f: (f.day, f.path.name))
    return found, problems
