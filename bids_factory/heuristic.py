"""Heuristic files: Dcm2Bids v3 configuration files, checked by ``schemas/heuristic.schema.json``."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from bids_factory.errors import HeuristicError
from bids_factory.config_check import read_config, schema_faults
from bids_factory.resources import default_heuristic

log = logging.getLogger(__name__)
PLACEHOLDER_SUFFIX = "EDITME"  # the suffix of a starter heuristic's rules (``inventory --write-heuristic``)


@dataclass(frozen=True)
class Heuristic:
    path: Path
    name: str
    sha256: str
    config: dict

    @property
    def descriptions(self) -> list[dict]:
        return self.config["descriptions"]

    def rule_name(self, description: dict) -> str:
        """The rule's own name, or ``#<index> <datatype>/<suffix>``."""
        named = description.get("bids_factory", {}).get("rule")
        if named:
            return named
        index = next(i for i, d in enumerate(self.descriptions) if d is description)
        return f"#{index} {description['datatype']}/{description['suffix']}"

    def placeholder_rules(self) -> list[str]:
        """Rules still holding the starter heuristic's placeholder suffix (the site has not edited them)."""
        return [self.rule_name(d) for d in self.descriptions if d.get("suffix") == PLACEHOLDER_SUFFIX]


def load_heuristic(path: Path | None = None) -> Heuristic:
    """Read and check a heuristic; any fault is a :class:`HeuristicError` naming where it is."""
    path = path or default_heuristic()
    config, raw, text = read_config(path, "heuristic", HeuristicError)
    faults = schema_faults(config, "heuristic.schema.json", text)
    if faults:
        raise HeuristicError(f"heuristic {path}: {faults}")
    if config.get("post_op"):
        log.warning("heuristic %s: post_op is ignored (bids-factory never runs shell commands from a heuristic)", path)
    name = config.get("bids_factory", {}).get("name") or path.stem
    return Heuristic(path=path.resolve(), name=name, sha256=hashlib.sha256(raw).hexdigest(), config=config)
