"""The state of every converted visit, what a later run compares (``code/bids-factory/state/``; ``writer.states``
of :class:`bids_factory.write.dataset_writer.DatasetWriter`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

from bids_factory.model import VISIT_RECORD_VERSION, VISIT_STATE_VERSION, VisitState, bids_label, readable
from bids_factory.write.dataset_paths import STATE_DIR, VISIT_STATES
from bids_factory.write.visit_index import RECORD, STATE, VisitIndex


class VisitStates:
    """The visit states of the dataset at ``root``, each written with ``write_json(relpath, data)`` and known to
    the visit ``index``."""

    def __init__(self, root: Path, index: VisitIndex, write_json: Callable[[Path | str, object], None]):
        self.root = root
        self.index = index
        self.write_json = write_json
        self._states: dict[str, VisitState] | None = None  # read once, until a state is written

    def by_visit(self) -> dict[str, VisitState]:
        """scan_research_id -> state of its last conversion (fingerprint, settings, status, labels), from the
        index (:mod:`bids_factory.write.visit_index`); none in a dataset not started (nothing is created)."""
        if self._states is None:
            self._states = self.index.states() if (self.root / STATE_DIR).is_dir() else None
        return self._states or {}

    def write(self, state: VisitState) -> None:
        raw = state["scan_research_id"]
        # a label of any length: the name stays one a file system holds (the digest tells visits apart)
        name = f"{bids_label(raw)[:200] or 'visit'}-{hashlib.sha1(raw.encode()).hexdigest()[:10]}.json"
        self._states = None
        self.index.will_write(STATE, name)
        self.write_json(VISIT_STATES / name, {"state_version": VISIT_STATE_VERSION, **state})
        self.index.wrote(STATE, name, json.loads((self.root / VISIT_STATES / name).read_text()))


def read_indexed(kind: str, path: Path) -> dict:
    """A visit record or state file as the index reads it (a version this bids-factory knows)."""
    key, version = ("record_version", VISIT_RECORD_VERSION) if kind == RECORD else ("state_version",
                                                                                    VISIT_STATE_VERSION)
    return readable(json.loads(path.read_text()), key, version, path)
