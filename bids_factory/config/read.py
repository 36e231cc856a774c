"""Reading a user's configuration files as data, without checking them against their JSON Schema.

:func:`read_config` reads JSON (or YAML) and turns every fault into the caller's precise error naming
the file and, for a syntax error, the line and column. :func:`read_schema_folder` reads a folder of
sidecar schemas. Light on purpose (no jsonschema): a run with nothing to convert computes its settings
key from these files' content (:mod:`bids_factory.run.options`); :mod:`bids_factory.config.check` and
:mod:`bids_factory.checks.sidecar_schemas` check what these read, when something is converted.
"""

from __future__ import annotations

import json
from pathlib import Path

from bids_factory.errors import BidsFactoryError, SidecarSchemaError

YAML_SUFFIXES = (".yaml", ".yml")
SCHEMA_SUFFIX = ".schema.json"


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
        import yaml  # only an EHR mapping may be YAML

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
