"""Combining the files of one EHR table over the export days (pure computation).

Each parsed CSV file (:mod:`bids_factory.ehr_read`) is merged into the table's :class:`TableState`:
the patient id, visit and long-table columns are taken from the mapping's :class:`TableSpec` or
detected, decimal commas are rewritten, and a later day's row for the same patient, visit and
measurement wins, cell by cell. What cannot be merged becomes a :class:`~bids_factory.model.Problem`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bids_factory.ehr_read import EhrFile, RawTable
from bids_factory.model import Problem

MISSING_VALUES = frozenset({"n/a", "N/A", "NA", "na", "NaN", "nan", "NULL", "null", "None", "#N/A"})
ID_NAMES = ("patient_id", "patientid", "patient_ipp", "subject", "subject_id", "participant_id", "PatientID")
VISIT_NAMES = ("scan_research_id", "visit", "visit_id", "session", "session_id")
MEASUREMENT_NAMES = ("measurement_id", "measurement", "measurement_name", "variable", "test")
VALUE_NAMES = ("measurement_value", "value", "result", "score")
VALUE = ""  # payload key of the value of a long table's row (no column can be named "")
_DECIMAL_COMMA = re.compile(r"^[+-]?(\d+,\d+|,\d+)$")
_INTEGER = re.compile(r"^[+-]?\d+$")


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

    Keys use the RAW patient and visit ids, so that two ids that sanitise to the same label are
    never merged (the collision is reported when the output is built).
    """

    def __init__(self, spec: TableSpec, first: EhrFile):
        self.spec = spec
        self.file_name = first.path.name
        self.sources: list[str] = []
        self.days: list[str] = []
        self.columns: list[str] = []  # wide: data columns; long: the other kept columns
        self.measurements: list[str] = []  # long tables only
        self.rows: dict[tuple[str, ...], dict[str, str]] = {}
        self.recency: dict[tuple[str, ...], int] = {}
        self.id_column = ""
        self.visit_column: str | None = None
        self.long: tuple[str, str] | None = None
        self._warned: set[str] = set()
        self._tick = 0
        self._measured: set[str] = set()

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
        cells = [(line, {c: ("" if v in spec.missing else v) for c, v in zip(raw.columns, values)})
                 for line, values in raw.rows]
        self._decimal_commas(cells, data_cols + [long[1]] if long else data_cols, long, raw.delimiter, rel, problems)
        self.id_column, self.visit_column, self.long = id_col, visit_col, long
        self.sources.append(rel)
        self.days.append(file.day)
        no_id, no_label, no_measure, conflicts, emptied = [], [], [], [], []
        seen: dict[tuple[str, ...], tuple[int, dict[str, str]]] = {}
        for line, row in cells:
            pid = row[id_col]
            if not pid:
                no_id.append(line)
                continue
            if not re.search(r"[A-Za-z0-9]", pid):
                no_label.append(line)
                continue
            key: tuple[str, ...] = (pid, row[visit_col] if visit_col else "")
            if long:
                if not row[long[0]]:
                    no_measure.append(line)
                    continue
                measure = " ".join(row[long[0]].split())
                key += (measure,)
                payload = {VALUE: row[long[1]], **{c: row[c] for c in data_cols}}
                if measure not in self._measured:
                    self._measured.add(measure)
                    self.measurements.append(measure)
            else:
                payload = {c: row[c] for c in data_cols}
            if key in seen and seen[key][1] != payload:
                conflicts.append(seen[key][0])
                conflicts.append(line)
            earlier = self.rows.get(key) if key not in seen else None
            if earlier is not None:
                emptied += [(line, c) for c, v in payload.items() if not v and earlier.get(c)]
            seen[key] = (line, payload)
            self.rows.setdefault(key, {}).update(payload)
            self._tick += 1
            self.recency[key] = self._tick
        self.columns += [c for c in data_cols if c not in self.columns]
        self._report(rel, file.day, problems, no_id, no_label, no_measure, conflicts, emptied)

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
            targets = {(c, None) for c in columns if setting is True or c in setting}
        else:
            seen: dict[tuple[str, str | None], list[bool]] = {}  # (column, group) -> [has comma, all numbers]
            for _, row in cells:
                for column in columns:
                    value = row[column]
                    if value:
                        flags = seen.setdefault((column, row[long[0]] if long and column == long[1] else None),
                                                [False, True])
                        comma = bool(_DECIMAL_COMMA.match(value))
                        flags[0] |= comma
                        flags[1] &= comma or bool(_INTEGER.match(value))
            targets = {target for target, (comma, numbers) in seen.items() if comma and numbers}
            if targets:
                names = []
                for column in dict.fromkeys(c for c in columns if any(t[0] == c for t in targets)):
                    groups = sorted(g for c, g in targets if c == column and g is not None)
                    names.append(column + (f" (measurements {', '.join(groups[:5])}"
                                           f"{', ...' if len(groups) > 5 else ''})" if groups else ""))
                self._warn_once(problems, rel, f"decimal commas read as decimal points in {'; '.join(names)} "
                                               "(detected; set 'decimal_comma' in the mapping)")
        for _, row in cells:
            for column, group in targets:
                if (group is None or row[long[0]] == group) and _DECIMAL_COMMA.match(row[column]):
                    row[column] = row[column].replace(",", ".")

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
