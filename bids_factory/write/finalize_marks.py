"""What finalize still owes the dataset, kept so that a run killed before finalize leaves it to the next one
(``writer.marks`` of :class:`bids_factory.write.dataset_writer.DatasetWriter`): the dataset-level files' state,
the subjects whose sessions.tsv misses a session (``unlisted/``), the sessions whose CHANGES line is not written
(``unannounced/``)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from bids_factory.dates import DatePolicy
from bids_factory.write.atomic_files import fsync_dir as _fsync_dir, tmp_folder, write_text as _write_text
from bids_factory.write.dataset_paths import DATASET_FILES_STATE, STATE_DIR, UNANNOUNCED, UNLISTED


class FinalizeMarks:
    """The marks finalize reads and clears, in the dataset at ``root`` (an outcome kept under the date policy
    ``dates``)."""

    def __init__(self, root: Path, dates: DatePolicy):
        self.root = root
        self.dates = dates

    def dataset_files_state(self) -> dict | None:
        """What the dataset-level files were last computed from, or None (never, or a visit placed since)."""
        path = self.root / DATASET_FILES_STATE
        try:
            state = json.loads(path.read_text()) if path.exists() else None
        except ValueError:  # not JSON (damaged by hand): computed again, as if never
            return None
        return state if isinstance(state, dict) else None

    def write_dataset_files_state(self, key: dict, outcome: dict) -> None:
        """``key``: the inputs and files stamp (no date policy: it is compared, never shown); ``outcome``:
        what the run reported about them (EHR problems, linkage), under the date policy like the run record."""
        text = json.dumps({"key": key, "outcome": self.dates.mask_json(outcome)}, indent=2, ensure_ascii=False)
        _write_text(self.root / DATASET_FILES_STATE, text + "\n", tmp_folder(self.root))

    def dataset_files_stale(self) -> None:
        """Before a visit is placed: the dataset-level files no longer describe the dataset."""
        with contextlib.suppress(FileNotFoundError):
            (self.root / DATASET_FILES_STATE).unlink()
            _fsync_dir(self.root / STATE_DIR)

    def mark_unlisted(self, subject: str) -> None:
        """Before a session is placed: finalize (this run's, or the next one's if this is killed) must write
        its subject's sessions.tsv again."""
        self._mark(UNLISTED, subject)

    def mark_unannounced(self, session: str, line: str) -> None:
        """Before a session is placed: its CHANGES ``line``, until CHANGES holds it (``sub-<p>_ses-<v>``)."""
        self._mark(UNANNOUNCED, session, line)

    def _mark(self, folder: Path, name: str, text: str = "") -> None:
        """A mark file: one short write (a kill leaves it whole or empty), no rename."""
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        with open(self.root / folder / name, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(self.root / folder)

    def unannounced(self) -> dict[str, str]:
        """Sessions placed whose CHANGES line may not be written yet (a run killed before it wrote CHANGES):
        mark name -> the line."""
        folder = self.root / UNANNOUNCED
        return {p.name: p.read_text(encoding="utf-8").strip() for p in sorted(folder.iterdir())} if folder.is_dir() else {}

    def mark_announced(self, names) -> None:
        for name in names:
            (self.root / UNANNOUNCED / name).unlink(missing_ok=True)

    def unlisted_subjects(self) -> set[str] | None:
        """Subjects whose sessions.tsv may miss a placed session; None: every subject (a dataset from before
        these marks), until :meth:`mark_listed` starts them."""
        folder = self.root / UNLISTED
        return {p.name for p in folder.iterdir()} if folder.is_dir() else None

    def mark_listed(self, subjects) -> None:
        (self.root / UNLISTED).mkdir(parents=True, exist_ok=True)
        for subject in subjects:
            (self.root / UNLISTED / subject).unlink(missing_ok=True)
