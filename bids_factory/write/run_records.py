"""What a run writes about itself: its run record and the validator's output, in ``code/bids-factory/runs/``
(``writer.runs`` of :class:`bids_factory.write.dataset_writer.DatasetWriter`)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Callable

from bids_factory.dates import DatePolicy
from bids_factory.model import RUN_RECORD_VERSION, RunRecord, readable
from bids_factory.write.dataset_paths import RUN_RECORDS, STATE_DIR


class RunRecords:
    """The run records of the dataset at ``root``; ``write_text(relpath, text)`` writes a text file of it (under
    the date policy ``dates``, which also names the files: no date in a file name unless it keeps dates)."""

    def __init__(self, root: Path, dates: DatePolicy, write_text: Callable[[Path | str, str], None]):
        self.root = root
        self.dates = dates
        self.write_text = write_text

    def write_record(self, record: RunRecord) -> None:
        """The run's report, one file per run in ``runs/`` (the newest is the last run)."""
        relpath = RUN_RECORDS / f"run-{self._run_stamp(record['finished_at'])}-{os.getpid()}.json"
        self.write_text(relpath, json.dumps(record, indent=2, ensure_ascii=False) + "\n")

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

    def records(self) -> list[RunRecord]:
        """Every run record, oldest first (read only to rebuild a missing history); one written by a newer
        bids-factory stops the run (:func:`bids_factory.model.readable`)."""
        folder = self.root / RUN_RECORDS
        paths = sorted(folder.glob("run-*.json")) if folder.is_dir() else []
        return [readable(json.loads(p.read_text()), "run_record_version", RUN_RECORD_VERSION, p) for p in paths]
