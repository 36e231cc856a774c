"""``participants.tsv`` columns from the EHR tables: age, sex, handedness and any mapped column.

Sources are the mapping's ``participants`` entries, or, for an unmapped table, columns detected by
name; the most recent value of each subject is kept. The BIDS-defined columns are normalised (sex
and handedness levels, ages as numbers capped at 89); values that cannot be are written ``n/a``.
"""

from __future__ import annotations

import pandas as pd

from bids_factory.ehr.combine import find_column
from bids_factory.ehr.dictionary import NA, NUMBER, column_entry
from bids_factory.model import Problem

AGE_CAP = 89  # BIDS: ages above 89 are capped for privacy (the validator refuses larger values)
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


def participants_columns(states, built, mapping, subjects, problems) -> tuple[dict[str, dict[str, str]], dict]:
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
            for label, value in _latest(built[table][1][source["column"]]).items():
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


def _latest(values: pd.Series) -> dict[str, str]:
    """Label -> its most recently exported non-empty value, labels in the order of the records."""
    values = values.dropna()
    recent = values.iloc[values.index.get_level_values("recency").argsort(kind="stable")]
    recent = recent.droplevel(["session", "recency"])
    recent = recent[~recent.index.duplicated(keep="last")].reindex(values.index.unique("label"))
    return dict(zip(recent.index.tolist(), recent.tolist()))


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
        if not NUMBER.match(value) or float(value) < 0:
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
    return column_entry(entry, f"From {origin} (most recent value).", values,
                         f"participants.tsv column {bids!r}", problems)
