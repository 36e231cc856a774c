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
    """`` (line N)``: where the value at ``path`` (its key, or its item of a list) starts in the file, JSON or
    YAML; empty when the file cannot be walked there."""
    if text.lstrip(" \t\r\n\ufeff")[:1] in ("{", "["):
        try:
            line = _json_line(text, list(path))
        except (ValueError, IndexError):  # not JSON after all (the caller read it as YAML)
            line = _yaml_line(text, list(path))
    else:
        line = _yaml_line(text, list(path))
    return f" (line {line})" if line else ""


def _json_line(text: str, path: list) -> int | None:
    """Walk the JSON text along ``path`` (keys and list indices), skipping the values in between whole."""
    decoder = json.JSONDecoder()

    def blank(at: int) -> int:
        while at < len(text) and text[at] in " \t\r\n\ufeff":
            at += 1
        return at

    position = start = blank(0)
    for part in path:
        if isinstance(part, str) and text[position] == "{":
            position = blank(position + 1)
            while text[position] == '"':
                start = position
                key, position = json.decoder.scanstring(text, position + 1)
                position = blank(position)
                if text[position] != ":":
                    raise ValueError("not JSON")
                position = blank(position + 1)
                if key == part:
                    break
                position = blank(decoder.raw_decode(text, position)[1])
                position = blank(position + 1) if text[position] == "," else position
            else:
                return None
        elif isinstance(part, int) and text[position] == "[":
            position = blank(position + 1)
            for _ in range(part):
                position = blank(decoder.raw_decode(text, position)[1])
                if text[position] != ",":
                    return None
                position = blank(position + 1)
            start = position
        else:
            return None
    return text.count("\n", 0, start) + 1 if path else None


def _yaml_line(text: str, path: list) -> int | None:
    """The same walk over a YAML file's nodes (their marks say where they start)."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            pair = next(((k, v) for k, v in node.value if k.value == part), None)
            if pair is None:
                return None
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return None
    return line
