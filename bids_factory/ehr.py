"""EHR tables -> BIDS ``phenotype/<table>.tsv/.json`` and ``participants.tsv`` columns (pure computation).

Every ``EXPORT/EHR/<yyyy>/<yyyymmdd>/*.csv`` is read in date order (:mod:`bids_factory.ehr_read`);
files of the same table on several days are combined (a later day's row for the same patient, visit
and measurement wins, cell by cell; new rows and columns are added: :mod:`bids_factory.ehr_combine`);
the result is rendered as text and dictionaries for the writer. The mapping file is read by
:mod:`bids_factory.ehr_mapping`, data dictionaries are built by :mod:`bids_factory.ehr_dictionary` and
``participants.tsv`` columns by :mod:`bids_factory.ehr_participants`. Rules and the mapping format:
``docs/ehr.md``. This module is the public entry point: import from here.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from bids_factory.ehr_combine import VALUE, TableState
from bids_factory.ehr_dictionary import NA, Records, safe_column, table_sidecar
from bids_factory.ehr_mapping import EhrMappingError, load_ehr_mapping, table_entry, table_name, table_spec
from bids_factory.ehr_participants import participants_columns
from bids_factory.ehr_read import CsvError, find_ehr_files, read_csv
from bids_factory.model import Problem, bids_label

__all__ = ["EhrMappingError", "EhrResult", "PhenotypeTable", "collect_ehr", "linkage", "load_ehr_mapping"]

_BREAKS = re.compile(r"[\t\r\n]+")


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
        key, entry = table_entry(mapping, file.path.name)
        name = key or table_name(file.stem)
        owner = f"mapping table {key!r}" if key else f"file name {file.path.name!r}"
        if owners.setdefault(name, owner) != owner:
            problems.append(Problem(file.relpath, f"table name {name!r} is already used by the {owners[name]}: "
                                                  "not merged (rename the file or map it explicitly)"))
            continue
        if key:
            matched.add(key)
        spec = table_spec(name, entry, mapped=key is not None)
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
    participants, participants_sidecar = participants_columns(states, built, mapping, subjects, problems)
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
    header = ["participant_id", *(["session_id"] if has_visit else []), *(safe_column(c) for c in columns)]
    lines = ["\t".join(header)]
    for (label, session), (_, values) in sorted(records.items()):
        row = [f"sub-{label}", *([f"ses-{session}" if session else NA] if has_visit else [])]
        row += [values.get(c, NA) for c in columns]
        lines.append("\t".join(row))
    sidecar = table_sidecar(state, entry, columns, records, has_visit, problems)
    return PhenotypeTable(name=state.spec.name, tsv="\n".join(lines) + "\n", sidecar=sidecar), records, columns


def _cell(value: str) -> str:
    if "\t" in value or "\n" in value or "\r" in value:
        value = _BREAKS.sub(" ", value).strip()
    return value or NA
