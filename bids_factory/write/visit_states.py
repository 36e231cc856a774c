"""The state of every converted visit, what a later run compares (``code/bids-factory/state/``; a part of
:class:`bids_factory.write.dataset_writer.DatasetWriter`)."""

from __future__ import annotations

import hashlib
import json

from bids_factory.model import VISIT_STATE_VERSION, VisitState, bids_label, readable
from bids_factory.write.dataset_paths import VISIT_STATES


class VisitStates:
    """Visit states (mixed into the writer: ``root``, ``write_json``)."""

    def visit_states(self) -> dict[str, VisitState]:
        """scan_research_id -> state of its last conversion (fingerprint, settings, outcome)."""
        folder = self.root / VISIT_STATES
        paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
        states = [readable(json.loads(p.read_text()), "state_version", VISIT_STATE_VERSION, p) for p in paths]
        return {state["scan_research_id"]: state for state in states}

    def write_visit_state(self, state: VisitState) -> None:
        raw = state["scan_research_id"]
        # a label of any length: the name stays one a file system holds (the digest tells visits apart)
        name = f"{bids_label(raw)[:200] or 'visit'}-{hashlib.sha1(raw.encode()).hexdigest()[:10]}.json"
        self.write_json(VISIT_STATES / name, {"state_version": VISIT_STATE_VERSION, **state})
