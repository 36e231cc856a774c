"""EHR tables -> BIDS ``phenotype/<table>.tsv/.json`` and ``participants.tsv`` columns (pure computation).

Every ``EXPORT/EHR/<yyyy>/<yyyymmdd>/*.csv`` is read in date order (:mod:`bids_factory.ehr_read`);
files of the same table on several days are combined (a later day's row for the same patient, visit
and measurement wins, cell by cell; new rows and columns are added); the result is rendered as text
and dictionaries for the writer. Rules and the mapping format: ``docs/ehr.md``.
"""

from __future__ import annotations

import codecs
import datetime as dt
import fnmatch
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from bids_factory.ehr_read import (
    MISSING_VALUES, VALUE, CsvError, TableSpec, TableState, find_column, find_ehr_files, read_csv,
)
from bids_factory.errors import BidsFactoryError
from bids_factory.model import Problem, bids_label
from bids_factory.resources import schema_path

__all__ = ["EhrMappingError", "EhrResult", "PhenotypeTable", "collect_ehr", "linkage", "load_ehr_mapping"]

NA = "n/a"
MAX_LEVELS = 10
AGE_CAP = 89  # BIDS: ages above 89 are capped for privacy (the validator refuses larger values)
_NUMBER = re.compile(r"^ *[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)? *$")  # the validator's
_BREAKS = re.compile(r"[\t\r\n]+")
_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?([ T].*)?$|^\d{1,2}[./]\d{1,2}[./]\d{2,4}$")
_BIDS_VALUES = {
    "sex": {"m": "male", "male": "male", "f": "female", "female": "female", "o": "other", "other": "other"},
    "handedness": {"r": "right", "right": "right", "l": "left", "left": "left",
                   "a": "ambidextrous", "ambidextrous": "ambidextrous"},
}
_BIDS_LEVELS = {
    "sex": {"male": "Male", "female": "Female", "other": "Other"},
    "handedness": {"left": "Left-handed", "right": "Right-handed", "ambidextrous": "Ambidextrous"},
}
_AUTO_PARTICIPANTS = {"age": ("age", "subjectageyears", "age_years", "patient_age"),
                      "sex": ("sex", "gender", "patient_sex"), "handedness": ("handedness",)}


class EhrMappingError(BidsFactoryError):
    """The EHR mapping file cannot be used (unreadable, not JSON/YAML, fails its schema)."""


@dataclass(frozen=True)
class PhenotypeTable:
    name: str  # file stem: phenotype/<name>.tsv and .json
    tsv: str
    sidecar: dict


@dataclass(frozen=True)
class EhrResult:
    tables: tuple[PhenotypeTable, ...]
    participants: dict[str, dict[str, str]]  # label (no "sub-") -> participants.tsv column -> value
    participants_sidecar: dict
    ehr_subjects: frozenset[str]
    problems: tuple[Problem, ...]
    bidsignore: tuple[str, ...] = ()  # .bidsignore lines: tables with several visits of one participant


# -- mapping -------------------------------------------------------------------------------------------

def load_ehr_mapping(path: Path) -> dict:
    """Read a JSON or YAML mapping and check it against ``schemas/ehr-mapping.schema.json``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise EhrMappingError(f"EHR mapping {path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from exc
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            mapping = yaml.safe_load(text)
        else:
            mapping = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EhrMappingError(f"EHR mapping {path}: not valid JSON at line {exc.lineno}, column {exc.colno}: "
                              f"{exc.msg}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise EhrMappingError(f"EHR mapping {path}: not valid YAML{where}: "
                              f"{getattr(exc, 'problem', None) or exc}") from exc
    schema = json.loads(schema_path("ehr-mapping.schema.json").read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(mapping),
                    key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise EhrMappingError(f"EHR mapping {path}: at {_pointer(first.absolute_path)}: {_message(first)}{more}")
    for name, table in mapping["tables"].items():
        if table.get("encoding"):
            try:
                codecs.lookup(table["encoding"])
            except LookupError:
                raise EhrMappingError(f"EHR mapping {path}: at tables/{name}/encoding: unknown encoding "
                                      f"{table['encoding']!r}") from None
    return mapping


def _pointer(parts) -> str:
    return "/".join(str(p) for p in parts) or "(top level)"


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"{error.message} (a typo? allowed keys: {allowed})"
    if error.validator == "oneOf" and error.context:
        return "; or ".join(dict.fromkeys(e.message for e in error.context))
    return error.message


def _table_entry(mapping: dict | None, file_name: str) -> tuple[str | None, dict]:
    """The first mapping table whose ``files`` pattern(s) match ``file_name`` (case-insensitively)."""
    for key, entry in (mapping or {}).get("tables", {}).items():
        patterns = entry.get("files", f"{key}.csv")
        for pattern in [patterns] if isinstance(patterns, str) else patterns:
            if fnmatch.fnmatchcase(file_name.lower(), pattern.lower()):
                return key, entry
    return None, {}


def _spec(name: str, entry: dict, mapped: bool) -> TableSpec:
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


# -- reading and combining -------------------------------------------------------------------------------

def collect_ehr(export_root: Path, mapping: dict | None, *, today: dt.date | None = None) -> EhrResult:
    """Read every EHR table of the export (in date order) and compute the phenotype and participants data."""
    files, found_problems = find_ehr_files(Path(export_root), today)
    problems = list(found_problems)
    states: dict[str, TableState] = {}
    owners: dict[str, str] = {}  # table name -> mapping key, or the file stem it was made from
    matched: set[str] = set()
    for file in files:
        inside = file.relpath.split("/", 1)[1]
        if any(fnmatch.fnmatchcase(inside, p) for p in (mapping or {}).get("skip_files", ())):
            problems.append(Problem(file.relpath, "skipped: listed in the mapping's skip_files", fatal=False))
            continue
        key, entry = _table_entry(mapping, file.path.name)
        name = key or table_name(file.stem)
        owner = f"mapping table {key!r}" if key else f"file name {file.path.name!r}"
        if owners.setdefault(name, owner) != owner:
            problems.append(Problem(file.relpath, f"table name {name!r} is already used by the {owners[name]}: "
                                                  "not merged (rename the file or map it explicitly)"))
            continue
        if key:
            matched.add(key)
        spec = _spec(name, entry, mapped=key is not None)
        try:
            raw = read_csv(file.path.read_bytes(), spec.encoding, spec.delimiter)
        except OSError as exc:
            problems.append(Problem(file.relpath, f"cannot be read: {exc.strerror or exc}"))
            continue
        except CsvError as exc:
            problems.append(Problem(file.relpath, f"cannot be parsed: {exc}"))
            continue
        states.setdefault(name, TableState(spec, file)).add(file, raw, problems)
    for key in (mapping or {}).get("tables", {}):
        if key not in matched:
            problems.append(Problem("EHR", f"mapping table {key!r} matched no CSV file of the export", fatal=False))
    states = {name: state for name, state in states.items() if state.sources}  # some file was merged
    bad_patients, bad_visits = _collisions(states, problems)
    built = {name: _build(states[name], (mapping or {}).get("tables", {}).get(name, {}),
                          bad_patients, bad_visits, problems) for name in sorted(states)}
    subjects = frozenset(label for _, records, _ in built.values() for (label, _), _ in records.items())
    participants, participants_sidecar = _participants(states, built, mapping, subjects, problems)
    bidsignore: list[str] = []
    for name, (table, records, _) in built.items():
        if len({label for label, _ in records}) < len(records):
            bidsignore += [f"phenotype/{name}.tsv", f"phenotype/{name}.json"]
            problems.append(Problem(f"phenotype/{name}.tsv", "several visits of one participant: written as BEP036 "
                                    "(participant_id + session_id) and listed in .bidsignore, because the released "
                                    "BIDS schema allows one row per participant in phenotype files", fatal=False))
    return EhrResult(
        tables=tuple(table for table, _, _ in built.values()), participants=participants,
        participants_sidecar=participants_sidecar, ehr_subjects=subjects,
        problems=tuple(problems), bidsignore=tuple(bidsignore),
    )


def linkage(ehr_subjects: frozenset[str], image_subjects: frozenset[str]) -> tuple[list[str], list[str]]:
    """(labels with images but no EHR row, labels with EHR rows but no image), each sorted."""
    return sorted(image_subjects - ehr_subjects), sorted(ehr_subjects - image_subjects)


def _collisions(states: dict[str, TableState], problems: list[Problem]) -> tuple[set[str], set[str]]:
    """Raw patient (visit) ids that sanitise to the same label: reported, and never merged."""
    patients: dict[str, set[str]] = {}
    visits: dict[str, set[str]] = {}
    for state in states.values():
        for key in state.rows:
            patients.setdefault(bids_label(key[0]), set()).add(key[0])
            if key[1]:
                visits.setdefault(bids_label(key[1]), set()).add(key[1])
    bad_patients, bad_visits = set(), set()
    for kind, found, bad, prefix in (("patient", patients, bad_patients, "sub"), ("visit", visits, bad_visits, "ses")):
        for label, raws in sorted(found.items()):
            if len(raws) > 1:
                bad.update(raws)
                names = ", ".join(repr(r) for r in sorted(raws))
                problems.append(Problem("EHR", f"{kind} ids {names} all become {prefix}-{label or '(empty)'}: "
                                               "their rows are not written (never merged); correct the ids"))
            elif not label:
                bad.update(raws)
                problems.append(Problem("EHR", f"{kind} id {next(iter(raws))!r} has no letter or digit: "
                                               "its rows are not written"))
    return bad_patients, bad_visits


# -- output ---------------------------------------------------------------------------------------------

Records = dict[tuple[str, str], tuple[int, dict[str, str]]]  # (label, session label) -> (recency, values)


def _build(state: TableState, entry: dict, bad_patients: set[str], bad_visits: set[str],
           problems: list[Problem]) -> tuple[PhenotypeTable, Records, list[str]]:
    """The table's TSV text and data dictionary, and its records by (label, session) for participants.tsv."""
    records: Records = {}
    for key, payload in state.rows.items():
        if key[0] in bad_patients or key[1] in bad_visits:
            continue
        where = (bids_label(key[0]), bids_label(key[1]))
        recency, values = records.get(where, (0, {}))
        if state.long:
            cells = {(key[2] if c == VALUE else f"{key[2]}_{c}"): v for c, v in payload.items()}
        else:
            cells = payload
        for column, value in cells.items():  # only non-missing values are kept, as TSV-safe text
            if (text := _cell(value)) != NA:
                values[column] = text
            else:
                values.pop(column, None)
        records[where] = (max(recency, state.recency[key]), values)
    present = {column for _, values in records.values() for column in values}
    if state.long:
        columns = [name for m in state.measurements for name in (m, *(f"{m}_{c}" for c in state.columns))
                   if name in present]
    else:
        columns = list(state.columns)
    has_visit = any(key[1] for key in state.rows) or state.visit_column is not None
    header = ["participant_id", *(["session_id"] if has_visit else []), *(_safe(c) for c in columns)]
    lines = ["\t".join(header)]
    for (label, session), (_, values) in sorted(records.items()):
        row = [f"sub-{label}", *([f"ses-{session}" if session else NA] if has_visit else [])]
        row += [values.get(c, NA) for c in columns]
        lines.append("\t".join(row))
    sidecar = _table_sidecar(state, entry, columns, records, has_visit, problems)
    return PhenotypeTable(name=state.spec.name, tsv="\n".join(lines) + "\n", sidecar=sidecar), records, columns


def _safe(column: str) -> str:
    return f"{column}_ehr" if column in ("participant_id", "session_id") else column


def _cell(value: str) -> str:
    if "\t" in value or "\n" in value or "\r" in value:
        value = _BREAKS.sub(" ", value).strip()
    return value or NA


def _table_sidecar(state: TableState, entry: dict, columns: list[str], records: Records, has_visit: bool,
                   problems: list[Problem]) -> dict:
    days = sorted(set(state.days))
    origin = (f"From the EHR table {state.file_name} of the Data Capture export, day(s) {', '.join(days)}; "
              "a later day's value for the same patient (visit, measurement) replaces the earlier one.")
    tool = {"Description": f"{entry['description']} {origin}" if entry.get("description") else origin}
    if entry.get("TermURL"):
        tool["TermURL"] = entry["TermURL"]
    sidecar: dict = {"MeasurementToolMetadata": tool, "participant_id": {
        "Description": f"'sub-' + the patient id of column {state.id_column!r} reduced to [A-Za-z0-9] "
                       "(the same label as the images)."}}
    if has_visit:
        sidecar["session_id"] = {"Description": f"'ses-' + the visit id (scan_research_id) of column "
                                                f"{state.visit_column!r} reduced to [A-Za-z0-9]; n/a: no visit."}
    described = entry.get("columns", {})
    for column in columns:
        values = [vals[column] for _, vals in records.values() if column in vals]
        sidecar[_safe(column)] = _column_entry(
            dict(described.get(column, {})), _describe(state, column), values,
            f"phenotype/{state.spec.name}.tsv column {column!r}", problems)
    for column in sorted(set(described) - set(columns)):
        problems.append(Problem(f"phenotype/{state.spec.name}.tsv", f"the mapping describes column {column!r}, "
                                "which no file of the table has", fatal=False))
    return sidecar


def _describe(state: TableState, column: str) -> str:
    if state.long:
        for measurement in state.measurements:
            if column == measurement:
                return (f"measurement {measurement} of {state.file_name}: column {state.long[1]!r} of the rows "
                        f"whose {state.long[0]!r} is {measurement!r} (no description in the mapping)")
            if column.startswith(f"{measurement}_") and column[len(measurement) + 1:] in state.columns:
                return (f"column {column[len(measurement) + 1:]} of the {measurement} rows of {state.file_name} "
                        "(no description in the mapping)")
    return f"column {column} of {state.file_name} (no description in the mapping)"


def _column_entry(entry: dict, description: str, values: list[str], where: str, problems: list[Problem]) -> dict:
    """A data dictionary entry that the validator accepts for ``values``: Units only on numbers, full Levels."""
    entry.setdefault("Description", description)
    if "Units" in entry and (bad := next((v for v in values if not _NUMBER.match(v)), None)) is not None:
        entry["Format"] = "string"
        problems.append(Problem(where, f"has Units {entry['Units']!r} but holds non-numbers (e.g. {bad!r}): "
                                       "declared as text (Format string)", fatal=False))
    distinct = sorted(set(values))
    if "Levels" in entry:
        unknown = [v for v in distinct if v not in entry["Levels"]]
        if unknown:
            entry["Levels"] = {**entry["Levels"],
                               **{v: "value found in the export, not described in the mapping" for v in unknown}}
            problems.append(Problem(where, f"value(s) {', '.join(map(repr, unknown[:5]))} not in the mapping's "
                                           "Levels: added to the data dictionary", fatal=False))
    elif "Units" not in entry and _categorical(distinct, len(values)):
        entry["Levels"] = {v: v for v in distinct}
    return entry


def _categorical(distinct: list[str], count: int) -> bool:
    """Low-cardinality text: at most MAX_LEVELS values, repeated (or a few short codes), not numbers or dates."""
    if not distinct or len(distinct) > MAX_LEVELS or all(_NUMBER.match(v) or _DATE.match(v) for v in distinct):
        return False
    codes = len(distinct) <= 3 and all(len(v) <= 12 and not any(c.isspace() for c in v) for v in distinct)
    return codes or 2 * len(distinct) <= count


# -- participants.tsv -----------------------------------------------------------------------------------

def _participants(states, built, mapping, subjects, problems) -> tuple[dict[str, dict[str, str]], dict]:
    """participants.tsv values for every EHR subject: explicit mapping sources win over detected ones."""
    sources: list[tuple[str, str, dict]] = []  # (BIDS column, table, {column, values, ...})
    tables = (mapping or {}).get("tables", {})
    for name, state in states.items():
        if name in tables:
            continue
        for bids, names in _AUTO_PARTICIPANTS.items():
            column = find_column(built[name][2], names)
            if column:
                sources.append((bids, name, {"column": column}))
                problems.append(Problem(f"phenotype/{name}.tsv", f"no mapping: participants.tsv column {bids!r} "
                                        f"taken from column {column!r}", fatal=False))
    for name, entry in tables.items():
        for bids, source in entry.get("participants", {}).items():
            if name in built:
                sources.append((bids, name, {"column": source} if isinstance(source, str) else source))
    order = {"age": 0, "sex": 1, "handedness": 2}
    columns = sorted(dict.fromkeys(b for b, _, _ in sources), key=lambda b: order.get(b, 3))
    rows = {label: dict.fromkeys(columns, NA) for label in sorted(subjects)}
    sidecar: dict = {}
    for bids in columns:
        feeds = [(t, s) for b, t, s in sources if b == bids]
        origin = ", ".join(f"column {s['column']!r} of phenotype/{t}.tsv" for t, s in feeds)
        chosen: dict[str, str] = {}
        for table, source in feeds:
            if source["column"] not in built[table][2]:
                problems.append(Problem(f"phenotype/{table}.tsv", f"participants.tsv column {bids!r}: the table has "
                                                                  f"no column {source['column']!r}", fatal=False))
                continue
            latest: dict[str, tuple[int, str]] = {}
            for (label, _), (recency, values) in built[table][1].items():
                value = values.get(source["column"], NA)
                if value != NA and recency >= latest.get(label, (0, ""))[0]:
                    latest[label] = (recency, value)
            for label, (_, value) in latest.items():
                chosen[label] = _map_value(value, source.get("values", {}))
        rejected: dict[str, str] = {}
        for label, value in chosen.items():
            rows[label][bids], reason = _bids_value(bids, value)
            if reason:
                rejected.setdefault(reason, label)
        for reason in rejected:
            problems.append(Problem("participants.tsv", f"column {bids!r} ({origin}): {reason}", fatal=False))
        sidecar[bids] = _participant_entry(bids, feeds, origin, [r[bids] for r in rows.values() if r[bids] != NA],
                                           problems)
    return rows, sidecar


def _map_value(value: str, values: dict[str, str]) -> str:
    if value in values:
        return values[value]
    folded = {k.casefold(): v for k, v in values.items()}
    return folded.get(value.casefold(), value)


def _bids_value(bids: str, value: str) -> tuple[str, str]:
    """(value for participants.tsv, reason when it had to change) for the BIDS-defined columns."""
    if bids in _BIDS_VALUES:
        mapped = _BIDS_VALUES[bids].get(value.casefold())
        if mapped is None:
            return NA, (f"value {value!r} is not one of {', '.join(_BIDS_LEVELS[bids])} (add it to 'values'): "
                        "written n/a, kept in the phenotype table")
        return mapped, ""
    if bids == "age":
        if not _NUMBER.match(value) or float(value) < 0:
            return NA, f"value {value!r} is not an age in years: written n/a, kept in the phenotype table"
        if float(value) > AGE_CAP:
            return str(AGE_CAP), f"ages above {AGE_CAP} written as {AGE_CAP} (BIDS privacy cap)"
    return value, ""


def _participant_entry(bids: str, feeds, origin: str, values: list[str], problems: list[Problem]) -> dict:
    given = next((s for _, s in reversed(feeds) if "Description" in s), {})
    if bids == "age":
        return {"Description": given.get("Description") or f"Age in years ({origin}; most recent value; "
                f"capped at {AGE_CAP}).", "Units": "year"}
    if bids in _BIDS_LEVELS:
        return {"Description": given.get("Description") or f"{bids.capitalize()} ({origin}; most recent value).",
                "Levels": dict(_BIDS_LEVELS[bids])}
    keys = ("LongName", "Description", "Units", "Levels", "TermURL")
    entry = {k: v for _, s in feeds for k, v in s.items() if k in keys}
    return _column_entry(entry, f"From {origin} (most recent value).", values,
                         f"participants.tsv column {bids!r}", problems)
