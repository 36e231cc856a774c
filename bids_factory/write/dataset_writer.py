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
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import stat
import tempfile
import time
from pathlib import Path

from bids_factory.write.atomic_files import fsync_dir as _fsync_dir, fsync_file as _fsync_file
from bids_factory.write.atomic_files import write_bytes as _write_bytes, write_text as _write_text
from bids_factory.dates import DatePolicy
from bids_factory.errors import DatasetLockedError
from bids_factory.model import Placement, VisitPlan, VisitRecord, bids_label
from bids_factory.write.session_files import person_files, written_manifest

STATE_DIR = Path("code") / "bids-factory"
VISIT_RECORDS = STATE_DIR / "visits"
SUBJECTS_FILE = STATE_DIR / "subjects.json"
VISIT_STATES = STATE_DIR / "state"
THUMBNAILS = STATE_DIR / "thumbnails"
REPORT_PAGE = STATE_DIR / "report.html"
SLURM_DIR = STATE_DIR / "slurm"  # one folder per `bids-factory slurm` submission: scripts and job logs
SUBJECT_KEY = STATE_DIR / "subject-key"  # 32 random bytes (hex): the HMAC key of subjects.json, 0600
RUN_RECORDS = STATE_DIR / "runs"
KEPT_ASIDE = STATE_DIR / "kept"  # a person's files a reconverted session now has under the same name
LINKAGE = STATE_DIR / "linkage.tsv"  # every subject with images but no EHR row and every EHR patient without images
HISTORY = STATE_DIR / "history.json"  # one line per run (report.history_entry), for the report's history
# what the dataset-level files were last computed from (EHR files, options) and that run's EHR outcome:
# a run with nothing new skips them; placing a visit removes it (a killed run leaves them to the next run)
DATASET_FILES_STATE = STATE_DIR / "dataset-files.json"
UNLISTED = STATE_DIR / "unlisted"  # one empty file per subject whose sessions.tsv misses a placed session


class DatasetWriter:
    def __init__(self, root: Path, dates: DatePolicy = DatePolicy()):
        self.root = root.resolve()
        self.dates = dates
        self.state = self.root / STATE_DIR
        self.changed = 0  # files of the dataset written (or replaced) by this writer
        self._records: dict[str, dict] | None = None  # visit records, read once per run
        self.placed: list[dict] = []  # records of the visits this writer placed (what this run changed)
        self.kept_aside: list[tuple[str, str]] = []  # (a person's file a reconversion replaced, where it is kept)

    # -- locking and staging -------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, wait: float = 0):
        """Hold the dataset while writing; another run waits up to ``wait`` seconds, then stops.

        ``flock`` on a file in the dataset: exclusive across processes on one host, and on NFS v4
        (where the lock is forwarded to the server; on NFS v3 without lockd, and on some cluster
        filesystems, flock is local to a host: give each host its own dataset or run one writer).
        Stale locks do not exist: the kernel drops the lock when the process dies. Conversions run
        outside the lock, so parallel runs (SLURM array tasks) only queue for their writes.
        """
        self._make_state_dir()
        handle = open(self.state / "lock", "a+")
        deadline = time.monotonic() + wait
        while not _try_flock(handle):
            if time.monotonic() >= deadline:
                handle.close()
                raise DatasetLockedError(
                    f"another bids-factory run is writing {self.root} (lock {self.state / 'lock'}); "
                    "wait for it to finish, or pass --wait SECONDS"
                )
            time.sleep(0.2)
        try:
            self._recover()
            yield self
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def _make_state_dir(self) -> None:
        """``code/bids-factory/``: owner-only (it holds the subjects' key and the provenance)."""
        self.state.mkdir(parents=True, exist_ok=True)
        if stat.S_IMODE(self.state.stat().st_mode) != 0o700:
            os.chmod(self.state, 0o700)

    def subject_key(self) -> bytes:
        """The dataset's secret HMAC key (created once, 0600, never replaced: a second run that races
        to create it takes the first one's)."""
        path = self.root / SUBJECT_KEY
        with contextlib.suppress(FileNotFoundError):
            return bytes.fromhex(path.read_text().strip())
        self._make_state_dir()
        fd, tmp = tempfile.mkstemp(prefix=".subject-key.", dir=self.state)  # 0600
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

    def ensure_not_locked(self) -> None:
        """Stop before any conversion when another run is writing now (a run that will not wait)."""
        with self.locked(wait=0):
            pass

    @contextlib.contextmanager
    def staging_area(self):
        """A private folder for one run's conversions, on the dataset's filesystem.

        The run holds a lock on ``.alive`` inside it, so recovery never removes a live run's staging.
        """
        self._make_state_dir()
        base = self.state / "staging"
        base.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="run-", dir=base))
        alive = open(path / ".alive", "w")
        fcntl.flock(alive, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            alive.close()
            with contextlib.suppress(OSError):
                base.rmdir()  # when no other run uses it

    def discard_staged(self, staging: Path, names: list[str]) -> None:
        """Drop what is left of converted visits in staging (what was not placed)."""
        for name in names:
            shutil.rmtree(staging / name, ignore_errors=True)

    def _recover(self) -> None:
        """Finish or undo what a killed run left: restore swapped-out sessions, drop dead staging."""
        trash = self.state / "trash"
        if trash.is_dir():
            for old in trash.iterdir():
                target = self.root / old.name.replace("__", "/")
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(old, target)
            shutil.rmtree(trash, ignore_errors=True)
        staging = self.state / "staging"
        for run in (staging.iterdir() if staging.is_dir() else ()):
            if _dead_run(run):
                shutil.rmtree(run, ignore_errors=True)
        shutil.rmtree(self.state / "tmp", ignore_errors=True)  # text files a killed run did not finish

    # -- visits ----------------------------------------------------------------------------
    def place_visit(self, plan: VisitPlan, staging: Path) -> Path:
        """Move a planned visit into ``sub-<p>/ses-<v>`` atomically; record its provenance."""
        # TSV files are read and written with pandas: only a run that places a visit imports it
        from bids_factory.write.provenance import scans_tsv, visit_record
        from bids_factory.tsv import read_tsv

        self._dataset_files_stale()
        subject, session = f"sub-{plan.subject_label}", f"ses-{plan.session_label}"
        self._mark_unlisted(subject)
        build = staging / "placed" / f"{subject}_{session}"
        for placement in plan.placements:
            self._stage_placement(build, placement)
        session_dir = self.root / subject / session
        scans = f"{subject}_{session}_scans.tsv"
        _write_text(build / scans, self.dates.mask_text(scans_tsv(plan.placements, read_tsv(session_dir / scans))))
        written = written_manifest(build)
        self._carry_person_files(session_dir, build, f"{subject}_{session}", scans)
        self._swap_in(build, session_dir)
        self.changed += 1
        self._write_thumbnails(plan, Path(subject) / session)
        record = self.dates.mask_json(visit_record(plan)) | {"written": written}
        self.write_json(VISIT_RECORDS / f"{subject}_{session}.json", record)
        self.placed.append(record)
        if self._records is not None:
            self._records[f"{subject}_{session}.json"] = record
        return session_dir

    def _carry_person_files(self, session_dir: Path, build: Path, name: str, scans: str) -> None:
        """A person's files of the session being replaced go into the new one (hard links: the old folder
        stays whole until the swap, so a run killed at any point loses nothing). One that bids-factory now
        writes under the same name is kept aside in ``code/bids-factory/kept/``, and :attr:`kept_aside`
        says so."""
        found = person_files(session_dir, self.read_json(VISIT_RECORDS / f"{name}.json"), scans)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        for path in found.added + found.edited:
            target = build / path
            if target.exists() or target.is_symlink():
                target = self.root / KEPT_ASIDE / name / stamp / path
                self.kept_aside.append((f"{session_dir.relative_to(self.root).as_posix()}/{path}",
                                        target.relative_to(self.root).as_posix()))
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(session_dir / path, target, follow_symlinks=False)
            except OSError:  # another filesystem mounted inside the session: copied
                shutil.copy2(session_dir / path, target, follow_symlinks=False)

    def _write_thumbnails(self, plan: VisitPlan, session: Path) -> None:
        """The report's pictures of a session's images (replaced with the session)."""
        folder = self.root / THUMBNAILS / session
        shutil.rmtree(folder, ignore_errors=True)
        for relpath, png in plan.thumbnails.items():
            _write_bytes(folder / relpath.replace(".nii.gz", ".png"), png, self._tmp_dir())

    def thumbnail_links(self) -> dict[str, str]:
        """Dataset path of an image -> its thumbnail, relative to the report page."""
        folder = self.root / THUMBNAILS
        return {png.relative_to(folder).as_posix().replace(".png", ".nii.gz"):
                png.relative_to(self.root / REPORT_PAGE.parent).as_posix()
                for png in sorted(folder.rglob("*.png"))} if folder.is_dir() else {}

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

    def _swap_in(self, build: Path, session_dir: Path) -> None:
        session_dir.parent.mkdir(parents=True, exist_ok=True)
        _fsync_dir(build)
        if session_dir.exists():
            trash = self.state / "trash"
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
        self.changed += _write_text(self.root / relpath, text, self._tmp_dir())

    def _tmp_dir(self) -> Path:
        tmp_dir = self.state / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return tmp_dir

    def write_files(self, files: dict[str, str]) -> None:
        for relpath, text in files.items():
            self.write_text(relpath, text)

    def write_json(self, relpath: Path | str, data) -> None:
        self.write_text(relpath, json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def write_run_record(self, record: dict) -> None:
        """The run's report, one file per run in ``runs/`` (the newest is the last run)."""
        self.write_json(RUN_RECORDS / f"run-{self._run_stamp(record['finished_at'])}-{os.getpid()}.json", record)

    def _run_stamp(self, finished_at: str, prefix: str = "run") -> str:
        if self.dates.keeps:
            return finished_at.replace("+00:00", "Z").replace(":", "").replace("-", "")
        # no date in a file name either: a sequence number keeps the newest last
        folder = self.root / RUN_RECORDS
        return f"n{len(list(folder.glob(f'{prefix}-n*.json'))) + 1 if folder.is_dir() else 1:08d}"

    def write_validator_output(self, output: str) -> str:
        """The validator's full output beside the run records; its path relative to ``code/bids-factory``."""
        stamp = self._run_stamp(dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "validator")
        relpath = RUN_RECORDS / f"validator-{stamp}-{os.getpid()}.json"
        self.write_text(relpath, output)
        return relpath.relative_to(STATE_DIR).as_posix()

    def run_records(self) -> list[dict]:
        """Every run record, oldest first (read only to rebuild a missing history)."""
        folder = self.root / RUN_RECORDS
        return [json.loads(p.read_text()) for p in sorted(folder.glob("run-*.json"))] if folder.is_dir() else []

    # -- incremental state ---------------------------------------------------------------------
    def dataset_files_state(self) -> dict | None:
        """What the dataset-level files were last computed from, or None (never, or a visit placed since)."""
        try:
            state = self.read_json(DATASET_FILES_STATE, default=None)
        except ValueError:  # not JSON (damaged by hand): computed again, as if never
            return None
        return state if isinstance(state, dict) else None

    def write_dataset_files_state(self, key: dict, outcome: dict) -> None:
        """``key``: the inputs and files stamp (no date policy: it is compared, never shown); ``outcome``:
        what the run reported about them (EHR problems, linkage), under the date policy like the run record."""
        text = json.dumps({"key": key, "outcome": self.dates.mask_json(outcome)}, indent=2, ensure_ascii=False)
        _write_text(self.root / DATASET_FILES_STATE, text + "\n", self._tmp_dir())

    def _dataset_files_stale(self) -> None:
        """Before a visit is placed: the dataset-level files no longer describe the dataset."""
        with contextlib.suppress(FileNotFoundError):
            (self.root / DATASET_FILES_STATE).unlink()
            _fsync_dir(self.state)

    def _mark_unlisted(self, subject: str) -> None:
        """Before a session is placed: finalize (this run's, or the next one's if this is killed) must write
        its subject's sessions.tsv again."""
        (self.root / UNLISTED).mkdir(parents=True, exist_ok=True)
        (self.root / UNLISTED / subject).touch()
        _fsync_dir(self.root / UNLISTED)

    def unlisted_subjects(self) -> set[str] | None:
        """Subjects whose sessions.tsv may miss a placed session; None: every subject (a dataset from before
        these marks), until :meth:`mark_listed` starts them."""
        folder = self.root / UNLISTED
        return {p.name for p in folder.iterdir()} if folder.is_dir() else None

    def mark_listed(self, subjects) -> None:
        (self.root / UNLISTED).mkdir(parents=True, exist_ok=True)
        for subject in subjects:
            (self.root / UNLISTED / subject).unlink(missing_ok=True)

    def visit_states(self) -> dict[str, dict]:
        """scan_research_id -> state of its last conversion (fingerprint, settings, outcome)."""
        folder = self.root / VISIT_STATES
        states = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
        return {state["scan_research_id"]: state for state in states}

    def write_visit_state(self, state: dict) -> None:
        raw = state["scan_research_id"]
        # a label of any length: the name stays one a file system holds (the digest tells visits apart)
        name = f"{bids_label(raw)[:200] or 'visit'}-{hashlib.sha1(raw.encode()).hexdigest()[:10]}.json"
        self.write_json(VISIT_STATES / name, state)

    def read_json(self, relpath: Path | str, default=None):
        path = self.root / relpath
        return json.loads(path.read_text()) if path.exists() else default

    def visit_records(self) -> list[VisitRecord]:
        """Provenance records of every placed visit (read from disk once, then kept up to date)."""
        if self._records is None:
            folder = self.root / VISIT_RECORDS
            paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
            self._records = {p.name: json.loads(p.read_text()) for p in paths}
        return [self._records[name] for name in sorted(self._records)]


def _try_flock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


def _dead_run(run: Path) -> bool:
    """A staging folder whose run is gone (its ``.alive`` lock can be taken)."""
    try:
        with open(run / ".alive", "a") as handle:
            return _try_flock(handle)
    except OSError:
        return True
