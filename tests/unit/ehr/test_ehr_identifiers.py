"""A visit's identifiers never reach the phenotype tables: cells holding one are blanked, a column of them is
dropped, and an EHR id made of a person's name is found, all by keyed hashes (never a stored value)."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd

from bids_factory.dates import DatePolicy
from bids_factory.ehr.identifiers import IdentifierKeys, drop_identifiers, named_ids

SECRET = b"dataset-secret"


def _digest(token: str) -> str:
    return hmac.new(SECRET, token.encode(), hashlib.sha256).hexdigest()


def _keys(dates="keep") -> IdentifierKeys:
    return IdentifierKeys(SECRET, {"P1": {"ids": [_digest("ipp-4711")], "names": [_digest("dupont"), _digest("marie")],
                                          "dates": [_digest("1950-02-03")]},
                                   "P2": {"ids": [_digest("ipp-0815")], "names": [_digest("martin")]}}, DatePolicy(dates))


def _frame(rows: dict[str, dict]) -> pd.DataFrame:
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index = pd.MultiIndex.from_arrays([frame.index, [""] * len(frame)])
    return frame.replace({None: np.nan})


def test_a_cell_holding_a_word_of_the_persons_name_or_an_id_is_blanked_and_counted():
    frame = _frame({"P1": {"note": "seen by Dr X, patient DUPONT^Marie", "crp": "3"},
                    "P2": {"note": "seen with dupont", "crp": "4"}})  # not P2's own identifiers: kept
    problems = []
    out = drop_identifiers(frame, _keys(), "labs", problems)
    assert out["note"].isna().tolist() == [True, False] and out["crp"].tolist() == ["3", "4"]
    [problem] = problems
    assert "column 'note': 1 cell(s)" in problem.reason and "dupont" not in problem.reason.casefold()


def test_a_column_where_every_known_visits_cell_holds_an_identifier_is_dropped():
    frame = _frame({"P1": {"ipp": "IPP-4711", "crp": "3"}, "P9": {"ipp": "ipp-0001", "crp": "4"},  # P9: no visit known
                    "P2": {"ipp": np.nan, "crp": "5"}})
    problems = []
    out = drop_identifiers(frame.copy(), _keys(), "labs", problems)
    assert list(out.columns) == ["crp"] and "column 'ipp' holds the identifiers" in problems[0].reason
    frame.loc[("P2", ""), "ipp"] = "ipp-4711"  # a known visit's cell that is not its own id: a column of data
    out = drop_identifiers(frame, _keys(), "labs", [])
    assert out["ipp"].isna().tolist() == [True, False, False]


def test_the_rows_own_raw_id_counts_and_a_birth_date_only_under_a_policy_that_removes_dates():
    frame = _frame({"P1": {"ref": "P1", "birth": "1950-02-03"}, "P2": {"ref": "x", "birth": "1950-02-03"}})
    kept = drop_identifiers(frame.copy(), _keys("keep"), "labs", [])
    assert kept["ref"].isna().tolist() == [True, False] and kept["birth"].notna().all()
    masked = drop_identifiers(frame.copy(), _keys("year"), "labs", [])
    assert masked["birth"].isna().tolist() == [True, False]
    assert drop_identifiers(frame.copy(), None, "labs", []).equals(frame)  # no keys: no dataset to compare with


def test_an_ehr_id_made_of_a_persons_name_is_found_and_a_birth_date_only_when_dates_go():
    raw = {"DUPONT Marie", "P1", "1950-02-03", "marie-claire"}
    assert named_ids(raw, _keys("keep")) == {"DUPONT Marie"}
    assert named_ids(raw, _keys("drop")) == {"DUPONT Marie", "1950-02-03"}
    assert named_ids(raw, None) == set() and named_ids(raw, IdentifierKeys(SECRET)) == set()
    assert named_ids(raw, IdentifierKeys(b"another key", _keys().subjects)) == set()  # keyed: never a plain hash
