"""Reading a user's configuration file (heuristic, EHR mapping, sidecar schema) and checking it
against its JSON Schema.

:func:`read_config` reads JSON (or YAML) and turns every fault into the caller's precise error naming
the file and, for a syntax error, the line and column. :func:`schema_faults` gives one message per
fault, naming the JSON path, the line in the file where it can be found, and for a misspelt key the
keys allowed there: ``at descriptions/0 (line 3): Additional properties are not
allowed ('critera' was unexpected) (a typo? allowed keys: ...)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from bids_factory.errors import BidsFactoryError
from bids_factory.resources import schema_path

YAML_SUFFIXES = (".yaml", ".yml")


def read_config(path: Path, what: str, error: type[BidsFactoryError], yaml_allowed: bool = False):
    """``(content, raw bytes, text)`` of a JSON file (YAML too when ``yaml_allowed`` and it is named
    ``*.yaml``/``*.yml``), in the encodings :func:`json.loads` reads. Any fault raises ``error`` with
    ``"<what> <path>: <reason>"``: cannot be read, not UTF-8, not valid JSON/YAML at line L, column C."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"{what} {path}: cannot be read ({exc.strerror or exc})") from exc
    encoding = json.detect_encoding(raw)  # UTF-8 (a byte order mark dropped), UTF-16/32 as json.loads reads them
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        name = "UTF-8" if encoding.startswith("utf-8") else encoding.upper()
        raise error(f"{what} {path}: not {name} text ({exc.reason} at byte {exc.start})") from exc
    if yaml_allowed and path.suffix.lower() in YAML_SUFFIXES:
        try:
            return yaml.safe_load(text), raw, text
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise error(f"{what} {path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from exc
    try:
        return json.loads(text), raw, text
    except json.JSONDecodeError as exc:
        raise error(f"{what} {path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc


def schema_faults(config, schema_name: str, text: str, most: int = 3) -> str | None:
    """``None`` when ``config`` meets ``schemas/<schema_name>``, else up to ``most`` faults in one line."""
    schema = json.loads(schema_path(schema_name).read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config),
                    key=lambda e: (e.validator != "additionalProperties", [str(p) for p in e.absolute_path]))
    if not errors:
        return None
    more = f" (and {len(errors) - most} more)" if len(errors) > most else ""
    return "; ".join(_fault(text, error) for error in errors[:most]) + more


def _fault(text: str, error: jsonschema.ValidationError) -> str:
    pointer = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        path += sorted(set(error.instance) - set(error.schema.get("properties", {})))[:1]
    return f"at {pointer}{_line_hint(text, path)}: {_message(error)}"


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"{error.message} (a typo? allowed keys: {', '.join(sorted(error.schema.get('properties', {})))})"
    if error.validator == "not" and error.schema.get("description"):
        return error.schema["description"]
    if error.validator == "oneOf" and error.context:
        return "; or ".join(dict.fromkeys(e.message for e in error.context))
    return error.message


def _line_hint(text: str, path) -> str:
    """Line of the last key of ``path`` in the file (JSON ``"key"`` or YAML ``key:``), best effort."""
    position = 0
    for part in path:
        if isinstance(part, str):
            found = [i for i in (text.find(json.dumps(part), position), text.find(f"{part}:", position)) if i >= 0]
            if not found:
                return ""
            position = min(found)
    return f" (line {text.count(chr(10), 0, position) + 1})" if position else ""
