"""Append-only unless a person decides: what a reconverted visit may change in its placed session.

The export is history, not today's truth: hospitals purge old days, re-send slices, change nothing we
can rely on. So a visit converted again (its sources, the settings or the heuristic changed) is compared
with what its session holds (its visit record's ``files``), series by series (SeriesNumber and
SeriesDescription, the image's path without its ``run-`` entity):

- a placed image the new conversion places again, byte for byte (image and sidecar as written), stays
  with its name and files;
- a placed image whose series is no longer in the export (a purged day, a deleted folder) stays: its
  sources are gone, it is not;
- a placed image the new conversion would hold back, place under another name or with other bytes is a
  :class:`PendingChange`: by default it stays and the change is reported with the command that applies it
  (``--apply-changes VISIT``); applied, its files leave the session and are kept under
  ``code/bids-factory/replaced/``;
- a new series is added; its ``run-`` number follows those of the placed images it would collide with;
- a placed image no longer in its session (a person removed it, or a decided run was stopped after its
  swap) is not recorded again.

Pure: reads the staged and placed files, writes nothing (the writer does).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Callable

from bids_factory.model import Placement, VisitPlan

APPLY_OPTION = "--apply-changes"
_RUN = re.compile(r"_run-(\d+)")
# BIDS entities after run- in a file name (the specification's entity order)
_AFTER_RUN = ("mod", "echo", "flip", "inv", "mt", "part", "proc", "hemi", "space", "split", "recording", "chunk",
              "seg", "res", "den", "label", "desc")


class ChangeKind(StrEnum):
    """What a new conversion would do to a placed image (a str: records keep the plain value)."""

    NO_LONGER_PLACED = "no-longer-placed"  # held back, unmatched... by the new conversion
    RENAMED = "renamed"  # placed under another name
    REPLACED = "replaced"  # same name, other bytes (image, b-values or sidecar)


@dataclass(frozen=True)
class PendingChange:
    """A change to a placed image that waits for a person's decision (or was applied with it)."""

    path: str  # the placed image, relative to the session folder
    kind: ChangeKind
    reason: str
    new_path: str | None = None  # where the new conversion places the series (renamed, replaced)

    def record(self) -> dict:
        return {"path": self.path, "kind": str(self.kind), "reason": self.reason, "new_path": self.new_path}

    @classmethod
    def from_record(cls, data: dict) -> PendingChange:
        return cls(data["path"], ChangeKind(data["kind"]), data["reason"], data.get("new_path"))

    def describe(self) -> str:
        if self.kind == ChangeKind.RENAMED:
            return f"{self.path} would be replaced by {self.new_path} ({self.reason})"
        if self.kind == ChangeKind.REPLACED:
            return f"{self.path} would be replaced ({self.reason})"
        return f"{self.path} would leave the dataset ({self.reason})"

    def applied(self, session: str, aside: str | None) -> str:
        """The CHANGES line of the applied change (``session``: ``sub-<p>/ses-<v>``; ``aside``: where the
        placed files are kept)."""
        instead = f", replaced by {session}/{self.new_path}" if self.new_path else ""
        return f"Removed {session}/{self.path} (kept at {aside}){instead}: {self.reason}"


@dataclass(frozen=True)
class Reconciliation:
    """The session a reconverted visit gets: the placed images that stay, the new placements, the changes."""

    kept: tuple[dict, ...]  # visit-record entries (``files``) of placed images that stay as they are
    placements: tuple[Placement, ...]  # what is written now (new series; applied replacements), final names
    pending: tuple[PendingChange, ...]  # changes not applied: the placed images stay
    applied: tuple[PendingChange, ...]  # changes applied: the placed images' files are kept aside
    gone_folders: tuple[dict, ...]  # visit-record export folders of earlier conversions no longer in the export

    @property
    def gone_sources(self) -> list[str]:
        return sorted({f["path"] for f in self.gone_folders})

    @property
    def changed(self) -> bool:
        return bool(self.placements or self.applied)


def image_files(record: dict, image: str) -> list[str]:
    """The session files of one placed image: the image and its companions, as the record's ``written``
    lists them (an older record: the image and its sidecar, b-values and b-vectors by name)."""
    stem = image.removesuffix(".nii.gz")
    written = record.get("written")
    names = list(written) if isinstance(written, dict) else [stem + s for s in (".json", ".bval", ".bvec")]
    files = [image] + [p for p in names if p != image and p.startswith(stem + ".")]
    if stem.endswith("_asl") and isinstance(written, dict):
        files += [p for p in names if p == f"{stem.removesuffix('_asl')}_aslcontext.tsv"]
    return files


def folder_key(relpath: str) -> str:
    """The key of an export folder in a visit record: recognised under any ``--dates`` policy (its path may
    be written without its day)."""
    return hashlib.sha256(relpath.encode()).hexdigest()[:16]


def reconcile(plan: VisitPlan, record: dict | None, session_dir: Path, apply: bool = False,
              mask: Callable[[str], str] = str) -> Reconciliation:
    """Compare ``plan`` (the new conversion) with the placed session ``session_dir`` (its visit ``record``).
    ``mask``: the date policy of the record's paths."""
    placed = list(record.get("files") or []) if record else []
    current = {mask(f.relpath) for f in plan.extracted.visit.folders}
    keys = {folder_key(f.relpath) for f in plan.extracted.visit.folders}
    gone = tuple(f | {"gone": True} for f in (record or {}).get("export_folders", [])
                 if ((f["key"] not in keys) if "key" in f else (f["path"] not in current)))
    if not placed:
        return Reconciliation((), plan.placements, (), (), gone)
    new = list(plan.placements)
    entries = [e for e in placed if (session_dir / e["path"]).is_file()]  # else it left (by hand, or a decided
    same = {id(e): _take(new, e, same_name=True) for e in entries}       # run stopped after its swap)
    other = {id(e): _take(new, e, same_name=False) for e in entries if same[id(e)] is None}
    leaving = {id(e) for e in entries if apply and same[id(e)] is None and (
        other.get(id(e)) is not None or _outcome(plan, e) is not None)}
    final = _final_names(plan, entries, same, [other[i] for i in other if i in leaving and other[i]] + new, leaving)
    kept, pending, applied, written = [], [], [], []
    for entry in entries:
        match, renamed = same[id(entry)], other.get(id(entry))
        if match is not None:
            difference = _difference(final[id(match)], entry, record, session_dir)
            if difference is None:  # the same image: its name stays, its provenance is today's
                kept.append(entry | {"rule": match.rule, "source_folders": list(match.series.source_folders)})
                continue
            change = PendingChange(entry["path"], ChangeKind.REPLACED, difference, entry["path"])
        elif renamed is not None:
            change = PendingChange(entry["path"], ChangeKind.RENAMED, f"rule {renamed.rule}",
                                   final[id(renamed)].session_path if id(renamed) in final else renamed.session_path)
        elif (outcome := _outcome(plan, entry)) is not None:
            change = PendingChange(entry["path"], ChangeKind.NO_LONGER_PLACED, f"{outcome.status}: {outcome.reason}")
        else:  # the series is no longer in the export: history, it stays
            kept.append(entry)
            continue
        if apply:
            applied.append(change)
            written += [final[id(p)] for p in (match, renamed) if p is not None and id(p) in final]
        else:
            kept.append(entry)
            pending.append(change)
    written += [final[id(p)] for p in new]
    return Reconciliation(tuple(kept), tuple(written), tuple(pending), tuple(applied), gone)


def _final_names(plan: VisitPlan, entries: list[dict], same: dict, added: list[Placement], leaving: set
                 ) -> dict[int, Placement]:
    """id of a planned placement -> it under its final name: the name of the placed image it matches (a
    replacement takes it over), else numbered after the placed images that stay (``added``); every sidecar's
    ``IntendedFor`` then names the final files."""
    taken = {e["path"] for e in entries if id(e) not in leaving}
    final: dict[int, Placement] = {}
    for entry in entries:
        if same[id(entry)] is not None:
            final[id(same[id(entry)])] = _named(same[id(entry)], entry["path"])
    for placement in added:
        final[id(placement)] = _numbered_after(placement, taken)
        taken.add(final[id(placement)].session_path)
    renames = {p.session_path: final[id(p)].session_path for p in plan.placements if id(p) in final}
    return {key: _intended_for(p, renames) for key, p in final.items()}


def _outcome(plan: VisitPlan, entry: dict):
    """The new conversion's outcome for the series of a placed image it does not place (None: not in it)."""
    return next((o for o in plan.not_placed if _series(o.series) == _key(entry)), None)


def _named(placement: Placement, path: str) -> Placement:
    """``placement`` under the name of the placed image ``path`` (``<datatype>/<stem>.nii.gz``)."""
    datatype, name = path.split("/", 1)
    return dataclasses.replace(placement, datatype=datatype, stem=name.removesuffix(".nii.gz"))


def _intended_for(placement: Placement, renames: dict[str, str]) -> Placement:
    """``placement`` whose sidecar's ``IntendedFor`` names the images' final names (``renames``: planned
    session-relative path -> final)."""
    value = placement.sidecar.get("IntendedFor")
    if not value or not any(planned != final for planned, final in renames.items()):
        return placement

    def final(target):
        if not isinstance(target, str):
            return target
        for planned, name in renames.items():
            if target.endswith(planned):
                return target[: len(target) - len(planned)] + name
        return target

    intended = [final(v) for v in value] if isinstance(value, list) else final(value)
    return dataclasses.replace(placement, sidecar=placement.sidecar | {"IntendedFor": intended})


def _key(entry: dict) -> tuple:
    return (entry.get("SeriesNumber"), entry.get("SeriesDescription"))


def _series(series) -> tuple:
    return (series.series_number, series.series_description)


def _without_run(path: str) -> str:
    return _RUN.sub("", path)


def _take(new: list[Placement], entry: dict, same_name: bool) -> Placement | None:
    """Remove and return the new placement of ``entry``'s series (with its name, run aside, if ``same_name``)."""
    for index, placement in enumerate(new):
        if _series(placement.series) != _key(entry):
            continue
        if same_name and _without_run(placement.session_path) != _without_run(entry["path"]):
            continue
        return new.pop(index)
    return None


def _difference(placement: Placement, entry: dict, record: dict, session_dir: Path) -> str | None:
    """Why the new conversion of a placed image differs from it (None: the same bytes)."""
    stem = entry["path"].removesuffix(".nii.gz")
    if not same_bytes(placement.series.nifti, session_dir / entry["path"]):
        return "the reconverted image differs"
    for extra in placement.series.extras:
        if not same_bytes(extra, session_dir / f"{stem}{extra.suffix}"):
            return f"its {extra.suffix} differs"
    sidecar = (json.dumps(placement.sidecar, indent=2) + "\n").encode()
    written = (record.get("written") or {}).get(f"{stem}.json")
    if written is not None and hashlib.sha256(sidecar).hexdigest() != written:
        return f"its sidecar differs{_fields(placement.sidecar, session_dir / f'{stem}.json')}"
    return None


def _fields(new: dict, placed: Path) -> str:
    """`` in IntendedFor, ...``: the sidecar fields whose values differ from the placed sidecar's."""
    try:
        old = json.loads(placed.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    if not isinstance(old, dict):
        return ""
    names = sorted(k for k in {*new, *old} if new.get(k) != old.get(k))
    return f" in {', '.join(names)}" if names else ""


def same_bytes(new: Path | None, placed: Path) -> bool:
    try:
        if new is None or new.stat().st_size != placed.stat().st_size:
            return False
        with open(new, "rb") as a, open(placed, "rb") as b:
            while chunk := a.read(1 << 20):
                if chunk != b.read(1 << 20):
                    return False
        return True
    except FileNotFoundError:
        return False


def _numbered_after(placement: Placement, taken: set[str]) -> Placement:
    """``placement`` with a ``run-`` number after those of the placed images it would collide with."""
    base = _without_run(placement.session_path)
    runs = {int(m.group(1)) if (m := _RUN.search(p)) else 1 for p in taken if _without_run(p) == base}
    own = _RUN.search(placement.stem)
    if not runs or (own and int(own.group(1)) not in runs and placement.session_path not in taken):
        return placement  # no placed image of that name, or its own run number is free
    number = max(runs) + 1
    width = max([len(m.group(1)) for p in taken if (m := _RUN.search(p))] + [2])
    parts = _RUN.sub("", placement.stem).split("_")
    at = next((i for i, part in enumerate(parts[:-1]) if part.split("-")[0] in _AFTER_RUN), len(parts) - 1)
    parts.insert(at, f"run-{number:0{width}d}")
    return dataclasses.replace(placement, stem="_".join(parts))


def stopped_run_departures(previous: dict | None, session_dir: Path, root: Path, replaced: Path) -> list[str]:
    """CHANGES lines of changes a decided run applied (its session swapped in) but was stopped before it
    recorded: a placed image of the record missing from the session, kept under ``replaced``."""
    lines = []
    for data in (previous or {}).get("pending_changes", []):
        change = PendingChange.from_record(data)
        copies = sorted(replaced.glob(f"*/{change.path}"))
        if copies and not (session_dir / change.path).exists():
            session, aside = (p.relative_to(root).as_posix() for p in (session_dir, copies[-1]))
            lines.append(f"{change.applied(session, aside)}; applied with {APPLY_OPTION} "
                         f"{previous['scan_research_id']}")
    return lines
