"""Data dictionaries (BIDS JSON sidecars) of the EHR output: ``phenotype/<table>.json`` and EHR columns.

A column's entry takes the mapping's description, ``Units`` only where every value is a number and
complete ``Levels`` (the mapping's, completed with the values found, or detected for low-cardinality
text), so that the BIDS validator accepts it.
"""

from __future__ import annotations

import re

import pandas as pd

from bids_factory.dates import DATE_LIKE
from bids_factory.ehr.combine import TableState
from bids_factory.model import Problem

NA = "n/a"
MAX_LEVELS = 10
NUMBER = re.compile(r"^ *[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)? *$")  # the validator's

# A table's output: one row per (label, session label, recency: the larger, the more recently exported),
# in the order the rows were first exported; one column per output column; NaN for n/a.
Records = pd.DataFrame


def safe_column(column: str) -> str:
    return f"{column}_ehr" if column in ("participant_id", "session_id") else column


def table_sidecar(state: TableState, entry: dict, columns: list[str], records: Records, has_visit: bool,
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
        values = records[column].dropna().tolist()
        sidecar[safe_column(column)] = column_entry(
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


def column_entry(entry: dict, description: str, values: list[str], where: str, problems: list[Problem]) -> dict:
    """A data dictionary entry that the validator accepts for ``values``: Units only on numbers, full Levels."""
    entry.setdefault("Description", description)
    if "Units" in entry and (bad := next((v for v in values if not NUMBER.match(v)), None)) is not None:
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
    if not distinct or len(distinct) > MAX_LEVELS or all(NUMBER.match(v) or DATE_LIKE.match(v) for v in distinct):
        return False
    if any(v.startswith('"') for v in distinct):
        return False  # quoted in the TSV (bids_factory.tsv): the validator would not find it among Levels
    codes = len(distinct) <= 3 and all(len(v) <= 12 and not any(c.isspace() for c in v) for v in distinct)
    return codes or 2 * len(distinct) <= count
