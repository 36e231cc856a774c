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
