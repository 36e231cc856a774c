"""The visit's identifiers in EHR cells: an EHR table is free text, and the README promises that a visit's
identifiers never reach free text.

For every subject a run placed, the dataset keeps the keyed hashes of its identifiers (``code/bids-factory/
identifier-keys.json``, HMAC-SHA256 under the dataset's owner-only key: never a value), so that every run
finds them in the EHR rows of that subject, whatever day they were read. A cell *holds* an identifier
when the whole cell or one of its words is one of its row's subject's identifiers: its PatientID (other
ids: OtherPatientIDs, AccessionNumber...), a word of a person's name, and under ``--dates year|drop`` a
spelling of the birth date; the row's own raw id (the table's id column) counts as an id too.

- a column in which every non-empty cell holds one (of the rows whose visits are known) is dropped, with a problem naming the column (never a
  value);
- any other cell holding one is blanked to ``n/a``; their count per column is reported;
- a row whose id (the table's id column) holds a word of a visit's person names (or, under
  ``--dates year|drop``, a birth date) would make it a participant label: such rows are not written.
"""

from __future__ import annotations

import hmac
import hashlib
from dataclasses import dataclass, field

import pandas as pd

from bids_factory.dates import DatePolicy
from bids_factory.model import Problem, subject_label
from bids_factory.privacy.visit_identifiers import identifier_tokens


@dataclass(frozen=True)
class IdentifierKeys:
    """The dataset's secret and, per subject label, the digests of its identifiers by kind."""

    secret: bytes = b""
    subjects: dict = field(default_factory=dict)  # label -> {"ids": [...], "names": [...], "dates": [...]}
    dates: DatePolicy = DatePolicy()

    def digests(self, label: str) -> frozenset[str]:
        kinds = ("ids", "names") if self.dates.keeps else ("ids", "names", "dates")
        entry = self.subjects.get(label) or {}
        return frozenset(d for kind in kinds for d in entry.get(kind, ()))

    def holds(self, label: str, raw_id: str, text: str) -> bool:
        tokens = identifier_tokens(text)
        if raw_id and raw_id.strip().casefold() in tokens:
            return True
        digests = self.digests(label)
        return bool(digests) and any(
            hmac.new(self.secret, token.encode("utf-8"), hashlib.sha256).hexdigest() in digests for token in tokens)


def named_ids(raw_ids, keys: IdentifierKeys | None) -> set[str]:
    """The EHR ids that hold a word of a known visit's person names (or a birth date the policy removes)."""
    if keys is None or not keys.subjects:
        return set()
    kinds = ("names",) if keys.dates.keeps else ("names", "dates")
    digests = {d for entry in keys.subjects.values() for kind in kinds for d in (entry or {}).get(kind, ())}
    return {raw for raw in raw_ids if any(
        hmac.new(keys.secret, token.encode("utf-8"), hashlib.sha256).hexdigest() in digests
        for token in identifier_tokens(str(raw)))}


def drop_identifiers(frame: pd.DataFrame, keys: IdentifierKeys | None, table: str,
                     problems: list[Problem]) -> pd.DataFrame:
    """``frame`` (indexed by raw patient id first, cells as text or NaN) without the cells and columns that
    hold its rows' identifiers (see the module's text); what was done is added to ``problems``."""
    if keys is None or frame.empty:
        return frame
    raw_ids = frame.index.get_level_values(0).astype(str)
    labels = raw_ids.map(subject_label)
    dropped, blanked = [], {}
    for column in list(frame.columns):
        values = frame[column]
        present = values.notna().to_numpy()
        if not present.any():
            continue
        seen: dict = {}
        hits = [bool(p) and seen.setdefault((label, raw, value), keys.holds(label, raw, str(value)))
                for p, label, raw, value in zip(present, labels, raw_ids, values)]
        if not any(hits):
            continue
        evidence = [p and (hit or bool(keys.digests(label))) for p, hit, label in zip(present, hits, labels)]
        if all(hit for hit, e in zip(hits, evidence) if e):  # rows whose visits are not known: no evidence
            dropped.append(column)
        else:
            blanked[column] = sum(hits)
            frame[column] = values.mask(hits)
    frame = frame.drop(columns=dropped)
    where = f"phenotype/{table}.tsv"
    for column in dropped:
        problems.append(Problem(where, f"column {column!r} holds the identifiers of its rows' visits (names, ids, "
                                       "birth date): not written", fatal=False))
    for column, count in blanked.items():
        problems.append(Problem(where, f"column {column!r}: {count} cell(s) holding an identifier of their row's "
                                       "visit written as n/a", fatal=False))
    return frame
