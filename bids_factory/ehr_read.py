"""Reading the EHR tables of a Data Capture export: ``EHR/<yyyy>/<yyyymmdd>/<table>.csv``.

Real hospital CSV files: UTF-8 with or without BOM, UTF-16 with BOM, Latin-1/CP1252; ``,`` ``;``
tab or ``|`` delimiters (counted on the header line, outside quotes); quoted fields (a value may
span lines); empty lines; trailing delimiters. Parsing is done with the :mod:`csv` module in strict
mode so that a damaged file is refused with its line number instead of being silently shifted
(pandas' ``read_csv`` drops surplus fields of a row with only a warning). Pure reading: nothing is
written anywhere.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path

from bids_factory.model import Problem

READY_MARKER = ".ready"
SKIPPED_NAME_PARTS = ("delete", "phantom")
DELIMITER_NAMES = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "|": "|"}
_CANDIDATES = ("\t", ";", ",", "|")  # order breaks ties on the header line
_YEAR = re.compile(r"^\d{4}$")
_DAY = re.compile(r"^\d{8}$")
_EXCEL_SEP = re.compile(r"^sep=([,;\t|])[ \t]*(\r?\n|$)")


class CsvError(Exception):
    """A CSV file that cannot be read; the message is the reason shown to the user."""


@dataclass(frozen=True)
class EhrFile:
    path: Path
    relpath: str  # relative to the export root, e.g. EHR/2024/20240311/demographics.csv
    day: str  # yyyymmdd

    @property
    def stem(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class RawTable:
    """One parsed CSV file: header and rows as text, exactly as written (stripped of blanks)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]  # (line number in the file, one value per column)
    encoding: str
    delimiter: str
    notes: tuple[str, ...]  # repairs worth a warning (unnamed or duplicated column names)


def find_ehr_files(export_root: Path, today: dt.date | None = None) -> tuple[list[EhrFile], list[Problem]]:
    """Every ``*.csv`` of ``EHR/<yyyy>/<yyyymmdd>/``, in day order then name order.

    The same rules as the image folders: days named like a phantom or deleted export are skipped,
    and today's (or a future) day only once its ``.ready`` marker exists.
    """
    root = export_root.resolve()
    base = root / "EHR"
    problems: list[Problem] = []
    if not base.is_dir():
        return [], problems
    today = today or dt.date.today()
    found: list[EhrFile] = []
    for year_dir in _visible(base):
        rel = year_dir.relative_to(root).as_posix()
        if not year_dir.is_dir() or not _YEAR.match(year_dir.name):
            problems.append(Problem(rel, "not a <yyyy> year folder of EHR tables: ignored", fatal=False))
            continue
        for day_dir in _visible(year_dir):
            rel = day_dir.relative_to(root).as_posix()
            day = day_dir.name
            if any(part in day.lower() for part in SKIPPED_NAME_PARTS):
                problems.append(Problem(rel, "skipped: name marks a phantom or deleted export", fatal=False))
                continue
            if not day_dir.is_dir() or not _DAY.match(day) or day[:4] != year_dir.name or not _is_date(day):
                problems.append(Problem(rel, "not a <yyyymmdd> day folder of its year: ignored", fatal=False))
                continue
            if dt.datetime.strptime(day, "%Y%m%d").date() >= today and not (day_dir / READY_MARKER).exists():
                problems.append(Problem(
                    rel, f"skipped: today's export is still being written (no {READY_MARKER} marker)", fatal=False))
                continue
            for path in _visible(day_dir):
                rel = path.relative_to(root).as_posix()
                if path.suffix.lower() != ".csv" or not path.is_file():
                    problems.append(Problem(rel, "not a .csv file: not read as an EHR table", fatal=False))
                    continue
                found.append(EhrFile(path=path, relpath=rel, day=day))
    found.sort(key=lambda f: (f.day, f.path.name))
    return found, problems


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _is_date(day: str) -> bool:
    try:
        dt.datetime.strptime(day, "%Y%m%d")
    except ValueError:
        return False
    return True


def decode(raw: bytes, encoding: str | None = None) -> tuple[str, str]:
    """Text and the encoding used. Without ``encoding``: BOM, else strict UTF-8, else CP1252, else Latin-1."""
    if encoding:
        try:
            return raw.decode(encoding), encoding
        except LookupError as exc:
            raise CsvError(f"unknown encoding {encoding!r} in the mapping") from exc
        except UnicodeDecodeError as exc:
            raise CsvError(f"not valid {encoding} (the mapping's encoding) at byte {exc.start}") from exc
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise CsvError(f"UTF-16 byte order mark but invalid UTF-16 at byte {exc.start}") from exc
    if b"\x00" in raw:
        raise CsvError(f"binary content (NUL byte at offset {raw.index(0)}): not a CSV text file")
    for candidate in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return raw.decode(candidate), candidate
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte string")  # pragma: no cover


def detect_delimiter(text: str) -> str:
    """The delimiter that occurs most often outside quotes on the first non-empty line."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = dict.fromkeys(_CANDIDATES, 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(_CANDIDATES, key=lambda c: counts[c])  # max keeps the first of equal counts
    return best if counts[best] else ","


def read_csv(raw: bytes, encoding: str | None = None, delimiter: str | None = None) -> RawTable:
    """Parse one CSV file. Raises :class:`CsvError` with the reason when it cannot be parsed."""
    text, used = decode(raw, encoding)
    if "\x00" in text:
        raise CsvError("binary content (NUL character): not a CSV text file")
    hint = _EXCEL_SEP.match(text)  # Excel's "sep=;" first line
    if hint:
        text = text[len(hint.group(0)) - len(hint.group(2)):]  # keep the line break: line numbers stay right
    if delimiter:
        sep = DELIMITER_NAMES.get(delimiter, delimiter)
    else:
        sep = hint.group(1) if hint else detect_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar='"', strict=True,
                        skipinitialspace=True)
    records: list[tuple[int, list[str]]] = []
    try:
        start = 1
        for fields in reader:
            if any(f.strip() for f in fields):
                records.append((start, [f.strip() for f in fields]))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise CsvError(f"malformed quoting near line {reader.line_num}: {exc}") from exc
    if not records:
        raise CsvError("no header line: the file is empty")
    _, header = records[0]
    width = len(header)
    while width and not header[width - 1] and all(len(r) < width or not r[width - 1] for _, r in records[1:]):
        width -= 1  # an unnamed trailing column with no value: trailing delimiters
    notes: list[str] = []
    rows: list[tuple[int, tuple[str, ...]]] = []
    for line, fields in records[1:]:
        extra = [f for f in fields[width:] if f]
        if extra:
            raise CsvError(
                f"line {line} has {len(fields)} fields but the header has {width} "
                f"(an unquoted {_name(sep)} inside a value, or a wrong delimiter?)"
            )
        rows.append((line, tuple(fields[:width] + [""] * (width - len(fields)))))
    columns = _column_names(header[:width] + [""] * (width - len(header)), notes)
    if not columns:
        raise CsvError("the header line has no column name")
    return RawTable(columns=tuple(columns), rows=tuple(rows), encoding=used, delimiter=sep, notes=tuple(notes))


def _column_names(header: list[str], notes: list[str]) -> list[str]:
    """Unique, tab-free names: an empty name becomes ``column<N>``, a repeated one ``<name>_<k>``."""
    names: list[str] = []
    for index, name in enumerate(header, start=1):
        clean = " ".join(name.split())
        if not clean:
            clean = f"column{index}"
            notes.append(f"column {index} has no name in the header: named {clean!r}")
        if clean in names:
            k = 2
            while f"{clean}_{k}" in names:
                k += 1
            notes.append(f"column name {clean!r} is repeated: column {index} named '{clean}_{k}'")
            clean = f"{clean}_{k}"
        names.append(clean)
    return names


def _name(sep: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(sep, repr(sep))


# -- combining the files of one table over the export days ------------------------------------------

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
