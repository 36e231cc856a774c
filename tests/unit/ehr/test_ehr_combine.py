"""One EHR table over the export days, as hospitals write it: a later day wins cell by cell, decimal commas
are read where every value is a number, and rows that cannot be linked are reported by line, never guessed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bids_factory.discover.export_layout import EhrFile
from bids_factory.ehr.combine import TableSpec, TableState, lines_text
from bids_factory.ehr.read import RawTable


def _file(day: str, name="labs.csv") -> EhrFile:
    return EhrFile(Path(name), f"EHR/{day[:4]}/{day}/{name}", day)


def _raw(rows: list[list[str]], delimiter=";") -> RawTable:
    frame = pd.DataFrame(rows[1:], columns=rows[0], index=range(2, len(rows) + 1), dtype="str")
    return RawTable(frame, "utf-8", delimiter, ())


def _add(state, day, rows, delimiter=";"):
    problems = []
    state.add(_file(day), _raw(rows, delimiter), problems)
    return problems


def _table(state) -> dict:
    return {key: {c: v for c, v in row.items() if not pd.isna(v)} for key, row in state.frame.iterrows()}


def test_a_later_day_wins_cell_by_cell_and_a_column_it_lacks_keeps_the_earlier_value():
    state = TableState(TableSpec("labs", mapped=False), _file("20240301"))
    _add(state, "20240301", [["patient_id", "visit", "weight", "site"], ["P1", "V1", "70", "A"], ["P2", "V2", "80", "B"]])
    problems = _add(state, "20240302", [["patient_id", "visit", "weight", "crp"], ["P2", "V2", "81", "3"],
                                        ["P1", "V1", "", "4"]])
    assert _table(state) == {("P1", "V1"): {"weight": "", "site": "A", "crp": "4"},
                             ("P2", "V2"): {"weight": "81", "site": "B", "crp": "3"}}
    assert list(state.recency) == [4, 3]  # P1's latest row came last
    [emptied] = [p.reason for p in problems if "emptied" in p.reason]
    assert "1 value(s)" in emptied and "line 3 'weight'" in emptied and "day 20240302" in emptied
    assert state.days == ["20240301", "20240302"] and state.columns == ["weight", "site", "crp"]


def test_decimal_commas_are_read_only_where_every_value_is_a_number_and_never_in_comma_files():
    state = TableState(TableSpec("labs", mapped=False), _file("20240301"))
    problems = _add(state, "20240301", [["patient_id", "crp", "note"], ["P1", "12,5", "3,5 mg"], ["P2", "7", "1,2"]])
    assert _table(state)[("P1", "")] == {"crp": "12.5", "note": "3,5 mg"}  # a text column keeps its commas
    assert any("decimal commas read as decimal points in crp " in p.reason for p in problems)
    comma = TableState(TableSpec("labs", mapped=False), _file("20240301"))
    _add(comma, "20240301", [["patient_id", "crp"], ["P1", "12,5"]], delimiter=",")
    assert _table(comma)[("P1", "")] == {"crp": "12,5"}


def test_a_long_table_is_detected_and_its_value_column_read_per_measurement():
    state = TableState(TableSpec("labs", mapped=False), _file("20240301"))
    problems = _add(state, "20240301", [["patient_id", "measurement", "value"], ["P1", "crp", "1,5"],
                                        ["P1", "comment", "a,b"], ["P1", "  crp ", ""], ["P2", "", "3"]])
    assert state.long == ("measurement", "value") and state.measurements == ["crp", "comment"]
    assert _table(state) == {("P1", "", "crp"): {"": ""}, ("P1", "", "comment"): {"": "a,b"}}  # later row wins
    messages = " | ".join(p.reason for p in problems)
    assert "long table guessed" in messages and "(measurements crp)" in messages
    assert "1 row(s) without a measurement name (measurement) not written: line 5" in messages
    wide = _add(state, "20240302", [["patient_id", "crp"], ["P1", "2"]])
    assert any("read as wide but earlier days of table labs were not: not merged" in p.reason for p in wide)


def test_rows_without_a_usable_id_are_reported_by_line_and_two_values_for_one_key_are_a_conflict():
    state = TableState(TableSpec("labs", mapped=False), _file("20240301"))
    problems = _add(state, "20240301", [["PatientID", "crp"], ["", "1"], ["--", "2"], ["P1", "3"], ["P1", "4"],
                                        ["P-1", "5"]])
    assert _table(state) == {("P1", ""): {"crp": "4"}, ("P-1", ""): {"crp": "5"}}  # same label, never merged
    assert any("1 row(s) without a patient id (PatientID) not written: line 2" in p.reason for p in problems)
    conflict = next(p for p in problems if "different values" in p.reason)
    assert conflict.fatal and "lines 4, 5" in conflict.reason and "patient" in conflict.reason
    assert any("whose patient id has no letter or digit not written: line 3" in p.reason for p in problems)
    accepted = TableState(TableSpec("labs", mapped=True, patient_id="PatientID", duplicates="last"), _file("20240301"))
    problems = _add(accepted, "20240301", [["PatientID", "crp"], ["P1", "3"], ["P1", "4"]])
    assert not any(p.fatal for p in problems) and _table(accepted) == {("P1", ""): {"crp": "4"}}


def test_a_file_without_its_mapped_columns_is_not_merged_and_says_which_columns_it_has():
    state = TableState(TableSpec("labs", mapped=True, patient_id="ipp"), _file("20240301"))
    [problem] = _add(state, "20240301", [["patient", "crp"], ["P1", "3"]])
    assert problem.fatal and "'ipp' is not in the file; columns: patient, crp" in problem.reason
    assert state.sources == [] and state.frame.empty
    assert lines_text([1]) == "line 1" and lines_text([1, 2, 3, 4, 5, 6]) == "lines 1, 2, 3, 4, 5, ..."
