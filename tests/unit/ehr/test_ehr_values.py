"""EHR values reach the dataset as they were meant: mixed encodings decoded value by value, ids already
written as BIDS labels kept, and a value that is a lone '"' read back by pandas' default reader."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from bids_factory.ehr.tables import collect_ehr
from bids_factory.ehr.read import read_csv


def _put(root: Path, name: str, data: bytes) -> None:
    path = root / "EHR" / "2024" / "20240311" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _table(result, name: str) -> pd.DataFrame:
    text = next(t.tsv for t in result.tables if t.name == name)
    return pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)  # pandas' default quoting


def test_utf8_and_latin1_rows_in_one_file_are_each_decoded_and_reported(tmp_path):
    data = "patient_id,city\nA,Zürich\n".encode() + "B,Genève\n".encode("latin-1")
    _put(tmp_path, "demo.csv", data)
    result = collect_ehr(tmp_path, None)
    cities = _table(result, "demo").set_index("participant_id")["city"].to_dict()
    assert cities == {"sub-A": "Zürich", "sub-B": "Genève"}
    assert any("mixed encodings" in p.reason and not p.fatal for p in result.problems), result.problems


def test_a_pure_latin1_file_is_still_latin1():
    assert read_csv("id,ville\n1,Genève\n".encode("cp1252")).encoding == "cp1252"
    assert read_csv("id,ville\n1,Zürich\n".encode()).encoding == "utf-8-sig"


def test_ids_already_written_as_bids_labels_are_not_prefixed_twice(tmp_path):
    _put(tmp_path, "visits.csv", b"patient_id,visit,score\nsub-007,ses-1,3\nsub-007,ses-2,4\n")
    result = collect_ehr(tmp_path, None)
    table = _table(result, "visits")
    assert table["participant_id"].tolist() == ["sub-007", "sub-007"]
    assert table["session_id"].tolist() == ["ses-1", "ses-2"]
    assert result.ehr_subjects == {"007"}


def test_a_lone_quote_value_round_trips_through_pandas_default_reader(tmp_path):
    _put(tmp_path, "notes.csv", b'patient_id,comment,other\nA,"""",x\nB,"""quoted"" word",y\nC,plain,z\n')
    frame = _table(collect_ehr(tmp_path, None), "notes")
    assert frame["participant_id"].tolist() == ["sub-A", "sub-B", "sub-C"]
    assert frame["comment"].tolist() == ['"', '"quoted" word', "plain"]
    assert frame["other"].tolist() == ["x", "y", "z"]
