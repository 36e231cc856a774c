"""Checking a user's configuration file (heuristic, EHR mapping), read by
:func:`bids_factory.config.read.read_config`, against its JSON Schema.

:func:`schema_faults` gives one message per
fault, naming the JSON path, the line in the file where it can be found, and for a misspelt key the
keys allowed there: ``at descriptions/0 (line 3): Additional properties are not
allowed ('critera' was unexpected) (a typo? allowed keys: ...)``.
"""

from __future__ import annotations

import json

from bids_factory.resources import schema_path


def schema_faults(config, schema_name: str, text: str, most: int = 3) -> str | None:
    """``None`` when ``config`` meets ``schemas/<schema_name>``, else up to ``most`` faults in one line."""
    import jsonschema  # lazily: a run with nothing to convert reads its heuristic without checking it

    schema = json.loads(schema_path(schema_name).read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config),
                    key=lambda e: (e.validator != "additionalProperties", [str(p) for p in e.absolute_path]))
    if not errors:
        return None
    more = f" (and {len(errors) - most} more)" if len(errors) > most else ""
    return "; ".join(_fault(text, error) for error in errors[:most]) + more


def _fault(text: str, error) -> str:
    pointer = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        path += sorted(set(error.instance) - set(error.schema.get("properties", {})))[:1]
    return f"at {pointer}{_line_hint(text, path)}: {_message(error)}"


def _message(error) -> str:
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
