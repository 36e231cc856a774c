"""The EHR mapping file (JSON or YAML, ``schemas/ehr-mapping.schema.json``) and what it says about a table.

:func:`load_ehr_mapping` reads and checks the file; :func:`table_entry` finds the mapping table of a
CSV file, :func:`table_spec` turns it into the :class:`~bids_factory.ehr.combine.TableSpec` used to
read and combine its files, and :func:`table_name` names an unmapped table after its file.
Format: ``docs/ehr.md``.
"""

from __future__ import annotations

import codecs
import fnmatch
import re
import unicodedata
from pathlib import Path

from bids_factory.ehr.combine import MISSING_VALUES, TableSpec
from bids_factory.config.check import schema_faults
from bids_factory.config.read import read_config
from bids_factory.errors import EhrMappingError


def load_ehr_mapping(path: Path) -> dict:
    """Read a JSON or YAML mapping and check it against ``schemas/ehr-mapping.schema.json``."""
    path = Path(path)
    mapping, _, text = read_config(path, "EHR mapping", EhrMappingError, yaml_allowed=True)
    faults = schema_faults(mapping, "ehr-mapping.schema.json", text, most=1)
    if faults:
        raise EhrMappingError(f"EHR mapping {path}: {faults}")
    for name, table in mapping["tables"].items():
        if table.get("encoding"):
            try:
                codecs.lookup(table["encoding"])
            except LookupError:
                raise EhrMappingError(f"EHR mapping {path}: at tables/{name}/encoding: unknown encoding "
                                      f"{table['encoding']!r}") from None
    return mapping


def table_entry(mapping: dict | None, file_name: str) -> tuple[str | None, dict]:
    """The first mapping table whose ``files`` pattern(s) match ``file_name`` (case-insensitively)."""
    for key, entry in (mapping or {}).get("tables", {}).items():
        patterns = entry.get("files", f"{key}.csv")
        for pattern in [patterns] if isinstance(patterns, str) else patterns:
            if fnmatch.fnmatchcase(file_name.lower(), pattern.lower()):
                return key, entry
    return None, {}


def table_spec(name: str, entry: dict, mapped: bool) -> TableSpec:
    decimal = entry.get("decimal_comma")
    long = entry.get("long")
    return TableSpec(
        name=name, mapped=mapped, patient_id=entry.get("patient_id"),
        visit=entry.get("visit"), visit_given="visit" in entry,
        long=(long["measurement"], long["value"]) if long else None,
        drop=frozenset(entry.get("drop", ())),
        decimal_comma=frozenset(decimal) if isinstance(decimal, list) else decimal,
        missing=frozenset(entry["missing_values"]) | {""} if "missing_values" in entry else MISSING_VALUES,
        encoding=entry.get("encoding"), delimiter=entry.get("delimiter"),
        duplicates=entry.get("duplicates", "error"),
    )


def table_name(stem: str) -> str:
    """A file stem as a portable phenotype table name: ASCII letters, digits, '_' and '-'."""
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_stem).strip("_-") or "table"
