"""Heuristic files: Dcm2Bids v3 configuration files, checked by ``schemas/heuristic.schema.json``."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import jsonschema

from bids_factory.errors import HeuristicError
from bids_factory.resources import default_heuristic, schema_path

log = logging.getLogger(__name__)


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


def load_heuristic(path: Path | None = None) -> Heuristic:
    """Read and check a heuristic; any fault is a :class:`HeuristicError` naming where it is."""
    path = path or default_heuristic()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HeuristicError(f"heuristic {path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        config = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise HeuristicError(f"heuristic {path}: not valid JSON{where}: {getattr(exc, 'msg', exc)}") from exc
    schema = json.loads(schema_path("heuristic.schema.json").read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: (e.validator != "additionalProperties", [str(p) for p in e.path]))
    if errors:
        faults = "; ".join(_fault(raw, error) for error in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise HeuristicError(f"heuristic {path}: {faults}{more}")
    if config.get("post_op"):
        log.warning("heuristic %s: post_op is ignored (bids-factory never runs shell commands from a heuristic)", path)
    name = config.get("bids_factory", {}).get("name") or path.stem
    return Heuristic(path=path.resolve(), name=name, sha256=hashlib.sha256(raw).hexdigest(), config=config)


def _fault(raw: bytes, error: jsonschema.ValidationError) -> str:
    pointer = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        path += sorted(set(error.instance) - set(error.schema.get("properties", {})))[:1]
    return f"at {pointer}{_line_hint(raw, path)}: {_message(error)}"


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"{error.message} (a typo? allowed keys: {', '.join(sorted(error.schema.get('properties', {})))})"
    if error.validator == "not" and error.schema.get("description"):
        return error.schema["description"]
    return error.message


def _line_hint(raw: bytes, path) -> str:
    """Line of the last key of ``path`` in the file, found by scanning the text (best effort)."""
    text = raw.decode("utf-8", errors="replace")
    position = 0
    for part in path:
        if isinstance(part, str):
            found = text.find(json.dumps(part), position)
            if found < 0:
                return ""
            position = found
    if position == 0:
        return ""
    return f" (line {text.count(chr(10), 0, position) + 1})"
