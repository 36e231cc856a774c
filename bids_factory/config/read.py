"""Reading a user's configuration files as data, without checking them against their JSON Schema.

:func:`read_config` reads JSON (or YAML) and turns every fault into the caller's precise error naming
the file and, for a syntax error, the line and column. :func:`read_schema_folder` reads a folder of
sidecar schemas. Light on purpose (no jsonschema): a run with nothing to convert computes its settings
key from these files' content (:mod:`bids_factory.run.options`); :mod:`bids_factory.config.check` and
:mod:`bids_factory.checks.sidecar_schemas` check what these read, when something is converted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bids_factory.errors import BidsFactoryError, SidecarSchemaError

YAML_SUFFIXES = (".yaml", ".yml")
SCHEMA_SUFFIX = ".schema.json"
# bounds of what a configuration file may be: far above any real one, far below what exhausts a run
MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64  # objects/lists (mappings/sequences) inside each other
MAX_YAML_NODES = 1_000_000  # values once every YAML alias is expanded (a "billion laughs" file has 10**9)
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]')
_KEY_COLON = re.compile(r"[ \t\r\n]*:")  # after a string: it is a key


def read_config(path: Path, what: str, error: type[BidsFactoryError], yaml_allowed: bool = False):
    """``(content, raw bytes, text)`` of a JSON file (YAML too when ``yaml_allowed`` and it is named
    ``*.yaml``/``*.yml``), in the encodings :func:`json.loads` reads. Any fault raises ``error`` with
    ``"<what> <path>: <reason>"``: cannot be read, not UTF-8, not valid JSON/YAML at line L, column C."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise error(f"{what} {path}: larger than {MAX_CONFIG_BYTES // 2**20} MiB: not read (is it the right file?)")
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
        fault = _yaml_fault(text)  # before anything is built: duplicate keys, depth, expanded aliases
        if fault:
            raise error(f"{what} {path}: {fault}")
        import yaml  # only an EHR mapping may be YAML

        try:
            return yaml.safe_load(text), raw, text
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise error(f"{what} {path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from exc
    fault = _json_fault(text)  # before json.loads: its recursion is not bounded, and a later key wins silently
    if fault:
        raise error(f"{what} {path}: {fault}")
    try:
        return json.loads(text), raw, text
    except json.JSONDecodeError as exc:
        raise error(f"{what} {path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _json_fault(text: str) -> str | None:
    """A key given twice in one object (json.loads keeps the last one silently) or nesting deeper than
    ``MAX_DEPTH``, with its line; ``None`` otherwise. A syntax error is left to json.loads."""
    stack: list[set | None] = []  # a set of keys per open object, None per open list
    for token in _JSON_TOKEN.finditer(text):
        kind = token.group()
        if kind in "{[":
            stack.append(set() if kind == "{" else None)
            if len(stack) > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels at line {_line(text, token.start())}: not read"
        elif kind in "}]":
            if stack:
                stack.pop()
        elif stack and stack[-1] is not None and _KEY_COLON.match(text, token.end()):
            key = kind
            if key in stack[-1]:
                return (f"key {key} given twice in one object (line {_line(text, token.start())}): JSON keeps only "
                        "the last one; merge the two into one key")
            stack[-1].add(key)
    return None


def _yaml_fault(text: str) -> str | None:
    """A key given twice in one mapping, nesting deeper than ``MAX_DEPTH`` or more than ``MAX_YAML_NODES``
    values once aliases are expanded, with its line; ``None`` otherwise (a syntax error is left to the reader)."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None  # named by safe_load, with its line
    except RecursionError:
        return f"nested deeper than {MAX_DEPTH} levels: not read"
    sizes: dict[int, int] = {}
    stack = [(root, 1, False)] if root is not None else []
    while stack:  # iterative: depth is checked, never recursed into
        node, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels at line {node.start_mark.line + 1}: not read"
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if done:
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[id(node)] > MAX_YAML_NODES:
                return (f"more than {MAX_YAML_NODES} values once its aliases (*name) are expanded "
                        f"(line {node.start_mark.line + 1}): not read")
            continue
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        return (f"key {key.value!r} given twice in one mapping (line {key.start_mark.line + 1}): "
                                "YAML keeps only the last one; merge the two into one key")
                    seen.add(key.value)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in children if id(child) not in sizes)
    return None


def read_schema_folder(folder: Path) -> dict[str, dict]:
    """Name (file name without ``.schema.json``) -> content of every sidecar schema of ``folder``, read
    but not checked; a missing folder, an empty one or an unreadable file is a :class:`SidecarSchemaError`."""
    if not folder.is_dir():
        raise SidecarSchemaError(f"sidecar schemas folder {folder}: not a folder")
    schemas = {path.name[: -len(SCHEMA_SUFFIX)]: read_config(path, "sidecar schema", SidecarSchemaError)[0]
               for path in sorted(folder.glob("*" + SCHEMA_SUFFIX))}
    if not schemas:
        raise SidecarSchemaError(f"sidecar schemas folder {folder}: no *{SCHEMA_SUFFIX} file in it")
    return schemas
