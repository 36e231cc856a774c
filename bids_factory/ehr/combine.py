"""Combining the files of one EHR table over the export days (pure computation).

Each parsed CSV file (:mod:`bids_factory.ehr.read`) is merged into the table's :class:`TableState`:
the patient id, visit and long-table columns are taken from the mapping's :class:`TableSpec` or
detected, decimal commas are rewritten, and a later day's row for the same patient, visit and
measurement wins, cell by cell. What cannot be merged becomes a :class:`~bids_factory.model.Problem`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bids_factory.ehr.read import RawTable
from bids_factory.discover.export_layout import EhrFile
from bids_factory.model import Problem

MISSING_VALUES = frozenset({"n/a", "N/A", "NA", "na", "NaN", "nan", "NULL", "null", "None", "#N/A"})
ID_NAMES = ("patient_id", "patientid", "patient_ipp", "subject", "subject_id", "participant_id", "PatientID")
VISIT_NAMES = ("scan_research_id", "visit", "visit_id", "session", "session_id")
MEASUREMENT_NAMES = ("measurement_id", "measurement", "measurement_name", "variable", "test")
VALUE_NAMES = ("measurement_value", "value", "result", "score")
VALUE = ""  # column of a long table's value in TableState.frame (no CSV column can be named "")
_NUMBER = r"^[+-]?(?:\d+|\d+,\d+|,\d+)$"  # an integer or a decimal-comma number


@dataclass(frozen=True)
class TableSpec:
    """How to read the files of one table: from the mapping, or detected (``mapped`` False)."""

    name: str
    mapped: bool
    patient_id: str | None = None
    visit: str | None = None
    visit_given: bool = False  # True: ``visit`` comes from the mapping (None: the table has none)
    long: tuple[str, str] | None = None  # (measurement column, value column)
    drop: frozenset[str] = frozenset()
    decimal_comma: bool | frozenset[str] | None = None  # None: detect
    missing: frozenset[str] = MISSING_VALUES
    encoding: str | None = None
    delimiter: str | None = None
    duplicates: str = "error"


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def find_column(columns: list[str], names: tuple[str, ...], exclude: tuple[str | None, ...] = ()) -> str | None:
    """First column (in file order) whose name matches one of ``names``, ignoring case and punctuation."""
    wanted = {_norm(n) for n in names}
    return next((c for c in columns if _norm(c) in wanted and c not in exclude), None)


def lines_text(lines: list[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:5])
    return f"line {shown}" if len(lines) == 1 else f"lines {shown}" + (", ..." if len(lines) > 5 else "")


class TableState:
    """Rows of one table combined over the export days: a later row of the same key wins, cell by cell.

    ``frame`` has one row per key: the RAW (patient id, visit[, measurement]), so that two ids that
    sanitise to the same label are never merged (the collision is reported when the output is built),
    in the order the keys first appeared; NaN where no file of the key had the column. ``recency``
    orders the keys by their latest row.
    """

    def __init__(self, spec: TableSpec, first: EhrFile):
        self.spec = spec
        self.file_name = first.path.name
        self.sources: list[str] = []
        self.days: list[str] = []
        self.columns: list[str] = []  # wide: data columns; long: the other kept columns
        self.measurements: list[str] = []  # long tables only
        self.frame = pd.DataFrame()
        self.recency = pd.Series(dtype="int64")
        self.id_column = ""
        self.visit_column: str | None = None
        self.long: tuple[str, str] | None = None
        self._warned: set[str] = set()
        self._tick = 0

    def _warn_once(self, problems: list[Problem], path: str, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            problems.append(Problem(path, message, fatal=False))

    def add(self, file: EhrFile, raw: RawTable, problems: list[Problem]) -> None:
        """Merge one parsed file; what cannot be merged becomes a :class:`Problem`."""
        spec, rel = self.spec, file.relpath
        for note in raw.notes:
            problems.append(Problem(rel, note, fatal=False))
        columns = [c for c in raw.columns if c not in spec.drop]
        roles = self._roles(columns, rel, problems)
        if roles is None:
            return
        id_col, visit_col, long = roles
        data_cols = [c for c in columns if c not in (id_col, visit_col, *(long or ()))]
        cells = raw.frame.mask(raw.frame.isin(list(spec.missing)), "")
        self._decimal_commas(cells, data_cols + [long[1]] if long else data_cols, long, raw.delimiter, rel, problems)
        self.id_column, self.visit_column, self.long = id_col, visit_col, long
        self.sources.append(rel)
        self.days.append(file.day)
        no_id = cells[id_col] == ""
        no_label = ~no_id & ~cells[id_col].str.contains(r"[A-Za-z0-9]")
        no_measure = ~(no_id | no_label) & (cells[long[0]] == "") if long else pd.Series(False, index=cells.index)
        rows = cells[~(no_id | no_label | no_measure)]
        keys = [rows[id_col], rows[visit_col] if visit_col else pd.Series("", index=rows.index, dtype="str")]
        if long:
            keys.append(rows[long[0]].map({m: " ".join(m.split()) for m in rows[long[0]].unique()}))
            self.measurements += [m for m in keys[2].unique() if m not in self.measurements]
            rows = rows[[long[1], *data_cols]].set_axis([VALUE, *data_cols], axis=1)
        else:
            rows = rows[data_cols]
        lines = rows.index.to_numpy()
        rows = rows.set_axis(pd.MultiIndex.from_arrays(keys))
        conflicts, emptied = _conflicts(rows, lines), _emptied(rows, lines, self.frame)
        latest, order = ~rows.index.duplicated(keep="last"), rows.index.unique()  # last values, first order
        ticks = pd.Series(self._tick + np.arange(1, len(rows) + 1), index=rows.index)
        self._tick += len(rows)
        self.frame = _combine(self.frame, rows[latest].reindex(order))
        self.recency = _combine(self.recency, ticks[latest].reindex(order))
        self.columns += [c for c in data_cols if c not in self.columns]
        lines_of = [cells.index[mask].tolist() for mask in (no_id, no_label, no_measure)]
        self._report(rel, file.day, problems, *lines_of, conflicts, emptied)

    def _roles(self, columns: list[str], rel: str, problems: list[Problem]):
        """(patient id column, visit column or None, long (measurement, value) or None), or None if unusable."""
        spec = self.spec
        prefix = "no mapping" if not spec.mapped else "the mapping gives no {what}"
        id_col = spec.patient_id or find_column(columns, ID_NAMES)
        if id_col is None or id_col not in columns:
            if spec.patient_id:
                reason = f"the mapping's patient id column {spec.patient_id!r} is not in the file"
            else:
                reason = (f"no patient id column (none named like {', '.join(ID_NAMES)}); "
                          "set 'patient_id' in the mapping")
            problems.append(Problem(rel, f"{reason}; columns: {', '.join(columns)}"))
            return None
        if not spec.patient_id:
            self._warn_once(problems, rel,
                            f"{prefix.format(what='patient_id')}: patient id column guessed as {id_col!r}")
        visit_col = spec.visit if spec.visit_given else find_column(columns, VISIT_NAMES, (id_col,))
        if visit_col is not None and visit_col not in columns:
            problems.append(Problem(rel, f"the mapping's visit column {visit_col!r} is not in the file; "
                                         f"columns: {', '.join(columns)}"))
            return None
        if visit_col and not spec.visit_given:
            self._warn_once(problems, rel, f"{prefix.format(what='visit')}: visit column guessed as {visit_col!r}")
        long = spec.long
        if long and not all(c in columns for c in long):
            missing = [c for c in long if c not in columns]
            problems.append(Problem(rel, f"the mapping's long-table column(s) {', '.join(map(repr, missing))} "
                                         f"not in the file; columns: {', '.join(columns)}"))
            return None
        if long is None and not spec.mapped:
            found = (find_column(columns, MEASUREMENT_NAMES, (id_col, visit_col)),
                     find_column(columns, VALUE_NAMES, (id_col, visit_col)))
            if found[0] and found[1]:
                long = (found[0], found[1])
                self._warn_once(problems, rel, f"no mapping: long table guessed (one column per value of "
                                               f"{long[0]!r}, values from {long[1]!r})")
        if self.sources and bool(long) != bool(self.long):
            problems.append(Problem(rel, f"read as {'long' if long else 'wide'} but earlier days of table "
                                         f"{self.spec.name} were not: not merged"))
            return None
        return id_col, visit_col, long

    def _decimal_commas(self, cells, columns, long, delimiter, rel, problems) -> None:
        """Rewrite '12,5' as '12.5' where the mapping says so, or where detected (';' or tab files).

        Detected: every non-empty value of the column is an integer or a decimal-comma number, and
        at least one has a comma. A long table's value column is checked per measurement.
        """
        setting = self.spec.decimal_comma
        if setting is False or (setting is None and delimiter == ","):
            return
        if setting is not None:
            columns = [c for c in columns if setting is True or c in setting]
        numbers = {c: cells[c].str.match(_NUMBER) for c in columns}
        commas = {c: numbers[c] & cells[c].str.contains(",", regex=False) for c in columns}
        if setting is not None:
            targets = {(c, None) for c in columns}
        else:
            targets = set()
            for column in columns:
                flags = pd.DataFrame({"comma": commas[column], "other": (cells[column] != "") & ~numbers[column]})
                if long and column == long[1]:  # per measurement, among its non-empty values
                    flags = flags[cells[column] != ""].groupby(cells[long[0]], sort=False).any()
                    targets |= {(column, group) for group in flags.index[flags.comma & ~flags.other]}
                elif flags.comma.any() and not flags.other.any():
                    targets.add((column, None))
            if targets:
                names = []
                for column in dict.fromkeys(c for c in columns if any(t[0] == c for t in targets)):
                    groups = sorted(g for c, g in targets if c == column and g is not None)
                    names.append(column + (f" (measurements {', '.join(groups[:5])}"
                                           f"{', ...' if len(groups) > 5 else ''})" if groups else ""))
                self._warn_once(problems, rel, f"decimal commas read as decimal points in {'; '.join(names)} "
                                               "(detected; set 'decimal_comma' in the mapping)")
        for column, group in targets:
            rewrite = commas[column] if group is None else commas[column] & (cells[long[0]] == group)
            cells.loc[rewrite, column] = cells.loc[rewrite, column].str.replace(",", ".")

    def _report(self, rel, day, problems, no_id, no_label, no_measure, conflicts, emptied) -> None:
        if no_id:
            problems.append(Problem(rel, f"{len(no_id)} row(s) without a patient id ({self.id_column}) "
                                         f"not written: {lines_text(no_id)}", fatal=False))
        if no_label:
            problems.append(Problem(rel, f"{len(no_label)} row(s) whose patient id has no letter or digit "
                                         f"not written: {lines_text(no_label)}", fatal=False))
        if no_measure:
            problems.append(Problem(rel, f"{len(no_measure)} row(s) without a measurement name "
                                         f"({self.long[0]}) not written: {lines_text(no_measure)}", fatal=False))
        if conflicts:
            key = "patient" + (" + visit" if self.visit_column else "") + (" + measurement" if self.long else "")
            lines = sorted(set(conflicts))
            accept = self.spec.duplicates == "last"
            advice = "accepted ('duplicates': 'last')" if accept else (
                "declare the visit column or a long pivot in the mapping, or set \"duplicates\": \"last\"")
            problems.append(Problem(rel, f"rows with the same {key} and different values ({lines_text(lines)}): "
                                         f"the later line is kept; {advice}", fatal=not accept))
        if emptied:
            shown = ", ".join(f"line {n} {c!r}" for n, c in emptied[:3]) + (", ..." if len(emptied) > 3 else "")
            problems.append(Problem(rel, f"{len(emptied)} value(s) of earlier days are empty on day {day} "
                                         f"and were emptied (a later day wins): {shown}", fatal=False))


def _conflicts(rows: pd.DataFrame, lines: np.ndarray) -> list[int]:
    """Lines of the rows of one key whose values differ from the key's previous row in the file."""
    repeated = np.flatnonzero(rows.index.duplicated(keep=False))
    codes, _ = pd.factorize(rows.index[repeated])
    by_key = np.argsort(codes, kind="stable")  # each key's rows together, in line order
    order, codes = repeated[by_key], codes[by_key]
    values = rows.iloc[order].to_numpy()
    differ = (codes[1:] == codes[:-1]) & (values[1:] != values[:-1]).any(axis=1)
    return [*lines[order[:-1][differ]].tolist(), *lines[order[1:][differ]].tolist()]


def _emptied(rows: pd.DataFrame, lines: np.ndarray, earlier: pd.DataFrame) -> list[tuple[int, str]]:
    """(line, column) of the empty cells of a key's first row in the file that an earlier day had filled."""
    columns = [c for c in rows.columns if c in earlier.columns]
    if not columns:
        return []
    first = np.flatnonzero(~rows.index.duplicated() & rows.index.isin(earlier.index))
    before = earlier.reindex(rows.index[first])[columns]
    emptied = (rows.iloc[first][columns].to_numpy() == "") & before.notna().to_numpy() & (before != "").to_numpy()
    where, column = emptied.nonzero()  # in line order, then column order
    return [(int(lines[first[w]]), columns[c]) for w, c in zip(where, column)]


def _combine(earlier, later):
    """``later`` (one row per key) over ``earlier``: cell by cell, NaN never wins; keys in first-seen order."""
    if not len(earlier.index):
        return later
    keys = earlier.index.append(later.index[~later.index.isin(earlier.index)])
    return later.combine_first(earlier).reindex(keys)
