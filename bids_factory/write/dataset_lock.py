"""The dataset's write lock, the runs' staging folders and the recovery of what a killed run left
(``writer.lock`` of :class:`bids_factory.write.dataset_writer.DatasetWriter`)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

from bids_factory.errors import DatasetLockedError
from bids_factory.write.dataset_paths import STATE_DIR


def make_state_dir(state: Path) -> None:
    """``code/bids-factory/``: owner-only (it holds the subjects' key and the provenance)."""
    state.mkdir(parents=True, exist_ok=True)
    if stat.S_IMODE(state.stat().st_mode) != 0o700:
        os.chmod(state, 0o700)


class DatasetLock:
    """Lock, staging and recovery of the dataset at ``root`` (its state folder ``code/bids-factory/``)."""

    def __init__(self, root: Path):
        self.root = root
        self.state_dir = root / STATE_DIR

    @contextlib.contextmanager
    def held(self, wait: float = 0):
        """Hold the dataset while writing; another run waits up to ``wait`` seconds, then stops.

        ``flock`` on a file in the dataset: exclusive across processes on one host, and on NFS v4
        (where the lock is forwarded to the server; on NFS v3 without lockd, and on some cluster
        filesystems, flock is local to a host: give each host its own dataset or run one writer).
        Stale locks do not exist: the kernel drops the lock when the process dies. Conversions run
        outside the lock, so parallel runs (SLURM array tasks) only queue for their writes.
        """
        make_state_dir(self.state_dir)
        handle = open(self.state_dir / "lock", "a+")
        deadline = time.monotonic() + wait
        while not _try_flock(handle):
            if time.monotonic() >= deadline:
                handle.close()
                raise DatasetLockedError(
                    f"another bids-factory run is writing {self.root} (lock {self.state_dir / 'lock'}); "
                    "wait for it to finish, or pass --wait SECONDS"
                )
            time.sleep(0.2)
        try:
            self.recover()
            yield self
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def ensure_free(self) -> None:
        """Stop before any conversion when another run is writing now (a run that will not wait)."""
        with self.held(wait=0):
            pass

    @contextlib.contextmanager
    def staging_area(self):
        """A private folder for one run's conversions, on the dataset's filesystem.

        The run holds a lock on ``.alive`` inside it, so recovery never removes a live run's staging.
        """
        make_state_dir(self.state_dir)
        base = self.state_dir / "staging"
        for attempt in range(10):  # another run removes ``base`` when it leaves it empty
            base.mkdir(parents=True, exist_ok=True)
            try:
                new = Path(tempfile.mkdtemp(prefix=".new-", dir=base))
                break
            except FileNotFoundError:
                if attempt == 9:
                    raise
        # locked before it takes its run- name: another run's recovery never sees it unlocked
        alive = open(new / ".alive", "w")
        fcntl.flock(alive, fcntl.LOCK_EX)
        path = base / f"run-{new.name.removeprefix('.new-')}"
        os.rename(new, path)
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

    def recover(self) -> None:
        """Finish or undo what a killed run left: restore swapped-out sessions, drop dead staging."""
        trash = self.state_dir / "trash"
        if trash.is_dir():
            for old in trash.iterdir():
                target = self.root / old.name.replace("__", "/")
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(old, target)
            shutil.rmtree(trash, ignore_errors=True)
        staging = self.state_dir / "staging"
        for run in (staging.iterdir() if staging.is_dir() else ()):
            if (run.name.startswith("run-") or _older_than(run, STARTING_SECONDS)) and _dead_run(run):
                shutil.rmtree(run, ignore_errors=True)  # a .new- folder is a run starting (not yet locked)
        shutil.rmtree(self.state_dir / "tmp", ignore_errors=True)  # text files a killed run did not finish
        shutil.rmtree(self.state_dir / "removed", ignore_errors=True)  # sessions a killed run moved elsewhere


def _try_flock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


STARTING_SECONDS = 3600  # a staging folder not locked this long after it was made: its run was killed starting


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def _dead_run(run: Path) -> bool:
    """A staging folder whose run is gone (its ``.alive`` lock can be taken)."""
    try:
        with open(run / ".alive", "a") as handle:
            return _try_flock(handle)
    except OSError:
        return True
