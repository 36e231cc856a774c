"""Reading the EHR tables of a Data Capture export: ``EHR/<yyyy>/<yyyymmdd>/<table>.csv``.

Real hospital CSV files: UTF-8 with or without BOM, UTF-16 with BOM, Latin-1/CP1252; ``,`` ``;``
tab or ``|`` delimiters (counted on the header line, outside quotes); quoted fields (a value may
span lines); empty lines; trailing delimiters. pandas parses; the decoding, the delimiter and the
checks pandas does not make (strict quoting, surplus fields: see :func:`_parse`) are done here, so
that a damaged file is refused with its line number instead of being silently shifted. Pure
reading: nothing is written anywhere.
"""

from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bids_factory.errors import CsvError

DELIMITER_NAMES = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "|": "|"}
_CANDIDATES = ("\t", ";", ",", "|")  # order breaks ties on the header line
_FILLED_LINE = re.compile(r"[^\r\n]*\S[^\r\n]*")
MAX_COLUMNS = 5000  # columns of one EHR table; far beyond a hospital's widest export
_EXCEL_SEP = re.compile(r"^sep=([,;\t|])[ \t]*(\r?\n|$)")


@dataclass(frozen=True)
class RawTable:
    """One parsed CSV file: one column per header name, values as text exactly as written (stripped of
    blanks, "" when empty), indexed by the line number where the row starts in the file."""

    frame: pd.DataFrame
    encoding: str
    delimiter: str
    notes: tuple[str, ...]  # repairs worth a warning (unnamed or duplicated column names)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.frame.columns)

    @property
    def rows(self) -> tuple[tuple[int, tuple[str, ...]], ...]:
        """(line number, values) of every row, for inspection."""
        return tuple((int(line), tuple(values)) for line, *values in self.frame.itertuples())


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
    try:
        return raw.decode("utf-8-sig"), "utf-8-sig"
    except UnicodeDecodeError:
        pass
    # Not UTF-8 as a whole: every byte sequence that is valid UTF-8 is read as UTF-8, every other byte as
    # CP1252 (Latin-1 where CP1252 has no character). A Latin-1 file reads as before; a file mixing both
    # (rows appended by two systems) keeps Zürich and Genève both right, instead of ZÃ¼rich.
    mixed = raw.decode("utf-8-sig", errors=_LEGACY_FALLBACK)
    legacy = raw.decode("cp1252", errors=_LATIN1_FALLBACK)
    return mixed, ("cp1252" if mixed == legacy else "utf-8+cp1252")


def _as_cp1252(error: UnicodeDecodeError) -> tuple[str, int]:
    return error.object[error.start:error.end].decode("cp1252", errors=_LATIN1_FALLBACK), error.end


def _as_latin1(error: UnicodeDecodeError) -> tuple[str, int]:
    return error.object[error.start:error.end].decode("latin-1"), error.end


_LEGACY_FALLBACK, _LATIN1_FALLBACK = "bids-factory-cp1252", "bids-factory-latin-1"
codecs.register_error(_LEGACY_FALLBACK, _as_cp1252)
codecs.register_error(_LATIN1_FALLBACK, _as_latin1)


def _first_line(text: str) -> str:
    """The first line holding more than blanks (without reading the rest of the text)."""
    found = _FILLED_LINE.search(text)
    return found.group(0) if found else ""


def _header_width(text: str, sep: str) -> int:
    """Fields of the first non-empty line (delimiters outside quotes, plus one)."""
    header = _first_line(text)
    fields, quoted = 1, False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char == sep:
            fields += 1
    return fields


def detect_delimiter(text: str) -> str:
    """The delimiter that occurs most often outside quotes on the first non-empty line."""
    header = _first_line(text)
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
    """Parse one CSV file with pandas. Raises :class:`CsvError` with the reason when it cannot be parsed."""
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
    width = _header_width(text, sep)
    if width > MAX_COLUMNS:  # before pandas: its cost grows with columns x rows
        raise CsvError(f"the header has {width} columns, more than {MAX_COLUMNS}: not read (a table exported "
                       "sideways, or a wrong delimiter?)")
    spanning = _check_quoting(text, sep)
    # lines of blanks, delimiters or "" only before the header: pandas would take the first one as the header
    blank = re.match(rf'(?:(?:[ \t{re.escape(sep)}]|"")*(?:\r\n|\r|\n))*', text).group(0)
    frame, width = _parse(text[len(blank):], sep)
    frame.index = _record_lines(frame, spanning, 1 + _line_count(blank))
    frame = frame.apply(lambda values: values.str.strip())
    frame = frame[(frame != "").any(axis=1)]  # empty or blank lines
    if frame.empty:
        raise CsvError("no header line: the file is empty")
    header, rows = frame.iloc[0].tolist(), frame.iloc[1:]
    filled = (rows != "").any().tolist()
    while width and not header[width - 1] and not filled[width - 1]:
        width -= 1  # an unnamed trailing column with no value: trailing delimiters
    surplus = (rows.iloc[:, width:] != "").any(axis=1)
    if surplus.any():
        line = surplus.idxmax()
        fields = (rows.loc[line] != "").to_numpy().nonzero()[0][-1] + 1
        raise CsvError(f"line {line} has {fields} fields but the header has {width} "
                       f"(an unquoted {_name(sep)} inside a value, or a wrong delimiter?)")
    notes: list[str] = []
    if used == "utf-8+cp1252":
        notes.append("mixed encodings in one file: UTF-8 and Latin-1/CP1252 text, each value read in its own")
    columns = _column_names(header[:width], notes)
    if not columns:
        raise CsvError("the header line has no column name")
    return RawTable(frame=rows.iloc[:, :width].set_axis(columns, axis=1), encoding=used, delimiter=sep,
                    notes=tuple(notes))


def _parse(text: str, sep: str) -> tuple[pd.DataFrame, int]:
    """Every record as text, one column per field (shorter records padded with ""), and the header's width.

    ``header=None``: with a header, pandas 3 silently turns a first data row with one field more
    than the header into the index (shifting every value), or with ``index_col=False`` drops the
    surplus. Without one it refuses any record longer than the first ("Expected N fields in line L,
    saw M"); the file is then parsed again M fields wide, so that :func:`read_csv` sees the surplus
    fields and accepts them only when they are empty (trailing delimiters).
    ``na_filter=False``: the missing-value codes are the table's, compared after stripping blanks
    (:mod:`bids_factory.ehr.combine`), and the header line is a record here: it must never become NaN.
    """
    names, width = None, None
    while True:
        try:
            frame = pd.read_csv(io.StringIO(text), sep=sep, header=None, names=names, dtype=str, na_filter=False,
                                quotechar='"', skipinitialspace=True, skip_blank_lines=False, engine="c",
                                on_bad_lines="error")
            return frame, width or frame.shape[1]
        except pd.errors.EmptyDataError as exc:
            raise CsvError("no header line: the file is empty") from exc
        except pd.errors.ParserError as exc:
            wider = re.search(r"Expected (\d+) fields in line \d+, saw (\d+)", str(exc))
            if not wider:
                raise CsvError(f"cannot be parsed by pandas: {str(exc).strip()}") from exc
            width = width or int(wider.group(1))
            names = range(int(wider.group(2)))


def _check_quoting(text: str, sep: str) -> bool:
    """Strict CSV quoting, which pandas does not check (``"a"b`` silently becomes ``ab``).

    True when a quoted value spans several lines (then records and lines no longer correspond).
    """
    spanning = False
    if '"' in text:
        for match in re.finditer(rf'(?:^|(?<=[\r\n{re.escape(sep)}]))[ ]*"[^"]*(?:""[^"]*)*("?)', text):
            after = text[match.end():match.end() + 1]
            if not match.group(1):
                raise CsvError(f"malformed quoting near line {_line_count(text[:match.start()]) + 1}: "
                               "a quoted value is never closed")
            if after not in ("", sep, "\r", "\n"):
                raise CsvError(f"malformed quoting near line {_line_count(text[:match.end()]) + 1}: "
                               f"{after!r} after a closing quote")
            spanning = spanning or "\n" in match.group(0) or "\r" in match.group(0)
    return spanning


def _record_lines(frame: pd.DataFrame, spanning: bool, first: int) -> np.ndarray:
    """The line number where each record starts: one record a line, plus the line breaks inside values."""
    inside = np.zeros(len(frame), dtype=np.int64)
    if spanning:
        inside[1:] = sum(frame[column].str.count(r"\r\n|\r|\n") for column in frame).to_numpy()[:-1]
    return first + np.arange(len(frame)) + inside.cumsum()


def _line_count(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")


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
