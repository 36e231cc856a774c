"""Stage 4 — write: the only module that writes into the BIDS dataset.

A visit's files are assembled in a staging folder inside the dataset (same filesystem), then the
whole ``sub-<p>/ses-<v>`` folder is swapped in with ``rename``: a visit is fully there or not at
all. Text files are written to a temporary file, fsynced, then renamed over the target.
Provenance and state live in ``code/bids-factory/`` (BIDS leaves ``code/`` to the curator), a folder
only its owner can open (0700): it holds the secret key of the subjects' HMACs (0600) and provenance.
The dataset's own files are written with the process umask. Every text file is written through the
date policy (:class:`~bids_factory.dates.DatePolicy`): under ``--dates year|drop`` no file written here
holds a calendar date (sidecars are filtered by plan, NIfTI headers by redact).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from bids_factory.write.atomic_files import fsync_dir as _fsync_dir, fsync_file as _fsync_file
from bids_factory.write.atomic_files import tmp_folder, write_text as _write_text
from bids_factory.dates import DatePolicy
from bids_factory.model import VISIT_RECORD_VERSION as RECORD_VERSION, Placement, VisitPlan, VisitRecord, readable
from bids_factory.write.append_only import (APPLY_OPTION, Reconciliation, image_files, reconcile, same_bytes,
                                            stopped_run_departures)
from bids_factory.write.dataset_lock import DatasetLock, make_state_dir
from bids_factory.write.finalize_marks import FinalizeMarks
from bids_factory.write.report_files import ReportFiles
from bids_factory.write.run_records import RunRecords
from bids_factory.write.dataset_paths import KEPT_ASIDE, REPLACED, STATE_DIR, SUBJECT_KEY, VISIT_RECORDS
from bids_factory.write.visit_index import RECORD, VisitIndex
from bids_factory.write.visit_states import VisitStates, read_indexed
from bids_factory.write.session_files import link_files, person_files, written_manifest
from bids_factory.write.date_policy import tighten


class DatasetWriter:
    """Places sessions into the dataset at ``root`` (the session swap, a person's files carried, the visit
    records) and writes its text files under the date policy ``dates``. Its parts, each given what it needs:
    ``lock`` (the write lock, staging, recovery), ``index`` (the visit index), ``runs`` (run records),
    ``states`` (visit states), ``marks`` (what finalize still owes), ``report`` (the report's pictures and pages).
    """

    def __init__(self, root: Path, dates: DatePolicy = DatePolicy()):
        self.root = root.resolve()
        self.dates = dates
        self.state_dir = self.root / STATE_DIR
        self.changed = 0  # files of the dataset written (or replaced) by this writer
        self._records: dict[str, dict] | None = None  # visit records, read once per run
        self.placed: list[dict] = []  # records of the visits this writer placed (what this run changed)
        self.subjects_written: set[str] = set()  # subjects whose visit records this writer wrote or removed
        self.kept_aside: list[tuple[str, str]] = []  # (a person's file a reconversion replaced, where it is kept)
        self.index = VisitIndex(self.root, read_indexed)  # what a run compares and counts
        self.lock = DatasetLock(self.root)  # the write lock, the runs' staging, recovery of a killed run
        self.runs = RunRecords(self.root, dates, self.write_text)  # what each run writes about itself
        self.states = VisitStates(self.root, self.index, self.write_json)  # what a later run compares
        self.marks = FinalizeMarks(self.root, dates)  # what finalize still owes (a killed run's to the next)
        self.report = ReportFiles(self.root, self.index, self.write_text, self.write_json)  # pictures and pages

    def subject_key(self) -> bytes:
        """The dataset's secret HMAC key (created once, 0600, never replaced: a second run that races
        to create it takes the first one's)."""
        path = self.root / SUBJECT_KEY
        with contextlib.suppress(FileNotFoundError):
            return bytes.fromhex(path.read_text().strip())
        make_state_dir(self.state_dir)
        fd, tmp = tempfile.mkstemp(prefix=".subject-key.", dir=self.state_dir)  # 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
        return bytes.fromhex(path.read_text().strip())

    # -- visits ----------------------------------------------------------------------------
    def place_visit(self, plan: VisitPlan, staging: Path, apply_changes: bool = False) -> Reconciliation:
        """Move a planned visit into ``sub-<p>/ses-<v>`` atomically; record its provenance.

        Append-only (:mod:`bids_factory.write.append_only`): the session's placed images stay unless
        ``apply_changes`` (a person's decision); then the images that leave are kept under ``replaced/``."""
        # TSV files are read and written with pandas: only a run that places a visit imports it
        from bids_factory.write.provenance import scans_tsv, visit_record
        from bids_factory.tsv import read_tsv

        subject, session = f"sub-{plan.subject_label}", f"ses-{plan.session_label}"
        session_dir = self.root / subject / session
        previous = self.read_json(VISIT_RECORDS / f"{subject}_{session}.json")
        result = reconcile(plan, previous, session_dir, apply_changes, self.dates.mask_text)
        self.marks.dataset_files_stale()
        self.marks.mark_unlisted(subject)
        if result.placements:  # CHANGES says it: this run's finalize, or the next run's if this one is killed
            self.marks.mark_unannounced(f"{subject}_{session}", self.dates.mask_text(  # as CHANGES will hold it
                f"Placed {subject} {session} ({len(result.placements)} images) from visit "
                f"{plan.extracted.visit.scan_research_id}"))
        build = staging / "placed" / f"{subject}_{session}"
        build.mkdir(parents=True, exist_ok=True)
        for placement in result.placements:
            self._stage_placement(build, placement)
        carried = [path for entry in result.kept for path in image_files(previous, entry["path"])]
        link_files(session_dir, carried, build)
        scans = f"{subject}_{session}_scans.tsv"
        _write_text(build / scans, self.dates.mask_text(scans_tsv(
            result.placements, read_tsv(session_dir / scans), result.kept)))
        written = written_manifest(build)
        written.update({p: previous["written"][p] for p in carried if p in (previous or {}).get("written", {})})
        leaving = [path for change in result.applied for path in image_files(previous, change.path)]
        stamp = self._aside_stamp(self.root / REPLACED / f"{subject}_{session}")
        aside = dict(link_files(session_dir, leaving, self.root / REPLACED / f"{subject}_{session}" / stamp, self.root))
        left = [f"{change.applied(f'{subject}/{session}', aside.get(change.path))}; applied with {APPLY_OPTION} "
                f"{plan.extracted.visit.scan_research_id}" for change in result.applied]
        left += stopped_run_departures(previous, session_dir, self.root, self.root / REPLACED / f"{subject}_{session}")
        self._carry_person_files(session_dir, build, f"{subject}_{session}", scans, skip=set(carried) | set(leaving))
        self.swap_in(build, session_dir)
        self.changed += 1
        self.report.write_thumbnails(plan, Path(subject) / session, result)
        # what left the session (kept until CHANGES says it: finalize adds the lines CHANGES lacks)
        carried_on = {"left": [*(previous or {}).get("left", []), *left],
                      "moved_from": (previous or {}).get("moved_from", [])}
        record = self.dates.mask_json(visit_record(plan, result) | carried_on) | {"written": written}
        self.write_record(f"{subject}_{session}.json", record)
        self.placed.append(record)
        return result

    def write_record(self, name: str, record: dict) -> None:
        self.subjects_written.add(name.split("_")[0])
        self.index.will_write(RECORD, name)
        self.write_json(VISIT_RECORDS / name, record)
        self.index.wrote(RECORD, name, self.read_json(VISIT_RECORDS / name))
        if self._records is not None:
            self._records[name] = record

    def record_visit_gone(self, record: dict) -> None:
        """A placed visit no longer in the export: every export folder of its record is gone."""
        folders = [f | {"gone": True} for f in record.get("export_folders") or []]
        self.write_record(f"{record['participant_id']}_{record['session_id']}.json", record | {
            "export_folders": folders, "gone_sources": sorted({f["path"] for f in folders})})

    def remove_record(self, name: str) -> None:
        self.subjects_written.add(name.split("_")[0])
        self.index.will_write(RECORD, name)
        (self.root / VISIT_RECORDS / name).unlink(missing_ok=True)
        _fsync_dir(self.root / VISIT_RECORDS)
        self.index.wrote(RECORD, name, None)
        if self._records is not None:
            self._records.pop(name, None)

    def _carry_person_files(self, session_dir: Path, build: Path, name: str, scans: str, skip=frozenset()) -> None:
        """A person's files of the session being replaced go into the new one (hard links: the old folder
        stays whole until the swap, so a run killed at any point loses nothing). One that bids-factory now
        writes under the same name is kept aside in ``code/bids-factory/kept/``, and :attr:`kept_aside`
        says so. ``skip``: files of placed images already carried (edits included) or replaced."""
        found = person_files(session_dir, self.read_json(VISIT_RECORDS / f"{name}.json"), scans)
        stamp = self._aside_stamp(self.root / KEPT_ASIDE / name)
        for path in found.added + found.edited:
            if path in skip:
                continue
            target = build / path
            if target.is_file() and same_bytes(session_dir / path, target):
                continue  # what this conversion writes again (a run stopped after its swap wrote it)
            if target.exists() or target.is_symlink():
                target = self.root / KEPT_ASIDE / name / stamp / path
                self.kept_aside.append((f"{session_dir.relative_to(self.root).as_posix()}/{path}",
                                        target.relative_to(self.root).as_posix()))
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(session_dir / path, target, follow_symlinks=False)
            except OSError:  # another filesystem mounted inside the session: copied
                shutil.copy2(session_dir / path, target, follow_symlinks=False)

    def _aside_stamp(self, folder: Path) -> str:
        """The name of a new folder of files set aside (kept or replaced): its UTC time, or under a date
        policy other than keep a sequence number (no date in a path either)."""
        if self.dates.keeps:
            return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return f"n{len(list(folder.glob('n*'))) + 1 if folder.is_dir() else 1:08d}"

    def _stage_placement(self, build: Path, placement: Placement) -> None:
        folder = build / placement.datatype
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / placement.stem
        os.rename(placement.series.nifti, f"{target}.nii.gz")
        for extra in placement.series.extras:
            os.rename(extra, f"{target}{extra.suffix}")
        _write_text(Path(f"{target}.json"), json.dumps(placement.sidecar, indent=2) + "\n")
        for name, text in placement.extra_files:
            _write_text(folder / placement.extra_file_stem(name), text)
        _fsync_file(Path(f"{target}.nii.gz"))

    def swap_in(self, build: Path, session_dir: Path) -> None:
        session_dir.parent.mkdir(parents=True, exist_ok=True)
        _fsync_dir(build)
        if session_dir.exists():
            trash = self.state_dir / "trash"
            trash.mkdir(parents=True, exist_ok=True)
            parked = trash / session_dir.relative_to(self.root).as_posix().replace("/", "__")
            os.rename(session_dir, parked)
            os.rename(build, session_dir)
            shutil.rmtree(parked)
        else:
            os.rename(build, session_dir)
        _fsync_dir(session_dir.parent)

    # -- dataset-level files -----------------------------------------------------------------
    def write_text(self, relpath: Path | str, text: str) -> None:
        """Temporary files live in code/bids-factory/tmp, so no partial file is ever in a BIDS folder.
        The date policy applies to the text (to the strings of a .json file)."""
        if not self.dates.keeps:
            text = (json.dumps(self.dates.mask_json(json.loads(text)), indent=2, ensure_ascii=False) + "\n"
                    if str(relpath).endswith(".json") else self.dates.mask_text(text))
        self.changed += _write_text(self.root / relpath, text, tmp_folder(self.root))

    def write_files(self, files: dict[str, str]) -> None:
        for relpath, text in files.items():
            self.write_text(relpath, text)

    def write_json(self, relpath: Path | str, data) -> None:
        self.write_text(relpath, json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def apply_date_policy(self) -> bool:
        """What earlier runs wrote under a looser date policy, written again under this one
        (:mod:`bids_factory.write.date_policy`); whether the policy tightened."""
        def write(path: Path, text: str) -> None:
            self.changed += _write_text(path, text, tmp_folder(self.root))
        tighter = tighten(self.root / STATE_DIR, self.dates, write)
        if tighter:  # the records and states are written again: so is what is derived from them
            self.index.rebuild()
        return tighter

    def read_json(self, relpath: Path | str, default=None):
        path = self.root / relpath
        return json.loads(path.read_text()) if path.exists() else default

    def pending_records(self) -> list[VisitRecord]:
        """The visit records with changes waiting for a person's decision (found in the index)."""
        return [self.read_json(VISIT_RECORDS / v["name"]) for v in self.index.visits(pending_only=True)]

    def visit_records(self) -> list[VisitRecord]:
        """Provenance records of every placed visit (read from disk once, then kept up to date)."""
        if self._records is None:
            folder = self.root / VISIT_RECORDS
            paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
            self._records = {p.name: readable(json.loads(p.read_text()), "record_version", RECORD_VERSION, p)
                             for p in paths}
        return [self._records[name] for name in sorted(self._records)]
