"""BIDS TSV files that people edit: read, upsert rows, render TSV-safe (pure text, the writer writes).

participants.tsv, sessions.tsv and scans.tsv belong to the curator as much as to bids-factory: a run
updates the cells of the rows it knows (by ``participant_id``, ``session_id`` or ``filename``), adds the
rows and columns it brings (other cells ``n/a``), and keeps every other row and column as it found
them. A file is never regenerated from scratch.

Values are written TSV-safe: tabs and line breaks inside a value become one space. BIDS TSV has no
quoting (the validator splits on tabs), so a ``"`` is written as is, except at the start of a value:
there pandas' default reader (and Excel) would open a quoted field and merge the following rows, so
such a value (a lone ``"``, ``"quoted" text``) is quoted CSV-style (a lone quote is written as four): pandas reads the value
back, the validator still sees one cell.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd

NA = "n/a"
_BREAKS = re.compile(r"[\t\r\n]+")


def tsv_value(value) -> str:
    """One cell: text without tabs or line breaks; empty or missing is ``n/a``."""
    if value is None:
        return NA
    text = _BREAKS.sub(" ", str(value)).strip()
    return text if text else NA


def quote_leading(values: pd.Series) -> pd.Series:
    """Quote (CSV-style) the values that start with ``"``; every other value is left as it is."""
    starts = values.str.startswith('"', na=False)
    if starts.any():
        values = values.where(~starts, '"' + values.str.replace('"', '""', regex=False) + '"')
    return values


def read_tsv(path: Path) -> tuple[list[str], list[dict[str, str]]] | None:
    """(columns, rows) of an existing TSV file, None when there is none (or it has no header)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    if not text.strip():
        return None
    # BIDS TSV has no quoting: one line is one row, whatever quotes a curator typed (pandas' default
    # quoting would merge rows between two quotes, or fail on one); only a value this module quoted
    # (the whole cell, CSV-style) is unquoted
    frame = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False, na_filter=False,
                        quoting=csv.QUOTE_NONE)
    frame = frame.apply(lambda column: column.str.replace(_QUOTED, _unquote, regex=True))
    return list(frame.columns), frame.to_dict(orient="records")


_QUOTED = re.compile(r'^"((?:[^"]|"")*)"$')


def _unquote(match: re.Match) -> str:
    return match.group(1).replace('""', '"')


def render_tsv(columns: list[str], rows: list[dict[str, str]]) -> str:
    frame = pd.DataFrame([[tsv_value(row.get(c)) for c in columns] for row in rows],
                         columns=[tsv_value(c) for c in columns], dtype=str)
    return frame_tsv(frame)


def frame_tsv(frame: pd.DataFrame, na_rep: str = "") -> str:
    """A table as BIDS TSV: no quoting (values hold no tab or line break), a leading ``"`` quoted CSV-style
    (:func:`quote_leading`), missing values as ``na_rep``. The one renderer of every TSV the dataset holds."""
    frame = frame.apply(lambda column: quote_leading(column) if pd.api.types.is_string_dtype(column) else column)
    return frame.to_csv(sep="\t", na_rep=na_rep, index=False, lineterminator="\n", quoting=csv.QUOTE_NONE)


def merge_tsv(existing: tuple[list[str], list[dict[str, str]]] | None, key: str, columns: list[str],
              updates: list[dict[str, str]], keep=None) -> str:
    """The existing table with ``updates`` upserted by ``key``.

    Columns: the existing ones in their order, then those of ``columns`` not there yet. A row of
    ``updates`` replaces only the cells it names; a new row is ``n/a`` elsewhere. ``keep`` (a predicate
    on the key) drops the existing rows it refuses (files no longer there); every other row is kept.
    """
    old_columns, old_rows = existing if existing else ([], [])
    all_columns = list(old_columns) + [c for c in [key, *columns] if c not in old_columns]
    if key in all_columns:
        all_columns.remove(key)
    all_columns.insert(0, key)
    rows: dict[str, dict[str, str]] = {}
    for row in old_rows:
        name = str(row.get(key, ""))
        if keep is None or keep(name):
            rows[name] = dict(row)
    for update in updates:
        name = tsv_value(update[key])
        row = rows.setdefault(name, {})
        row.update({c: tsv_value(v) for c, v in update.items()})
    return render_tsv(all_columns, [rows[name] for name in sorted(rows)])
