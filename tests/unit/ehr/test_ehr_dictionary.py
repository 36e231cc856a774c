"""Data dictionaries the validator accepts for the values found: Units only on numbers, Levels complete,
Levels detected only for low-cardinality text (never numbers, dates or quoted values)."""

from __future__ import annotations

import pytest

from bids_factory.ehr.dictionary import MAX_LEVELS, column_entry, safe_column


def _entry(entry, values):
    problems = []
    return column_entry(dict(entry), "column x of labs.csv", values, "phenotype/labs.tsv column 'x'", problems), problems


def test_units_on_a_column_holding_text_declare_it_text_with_a_warning():
    entry, [problem] = _entry({"Units": "mg/L"}, ["3.5", "<0.5", "12"])
    assert entry == {"Units": "mg/L", "Format": "string", "Description": "column x of labs.csv"}
    assert "'<0.5'" in problem.reason and not problem.fatal
    entry, problems = _entry({"Units": "mg/L", "Description": "CRP"}, ["3.5", " 12 ", "1e3", ".5"])
    assert entry == {"Units": "mg/L", "Description": "CRP"} and problems == []


def test_the_mappings_levels_are_completed_with_the_values_found():
    entry, [problem] = _entry({"Levels": {"M": "male"}}, ["M", "F", "X", "M"])
    assert entry["Levels"] == {"M": "male", "F": "value found in the export, not described in the mapping",
                               "X": "value found in the export, not described in the mapping"}
    assert "'F', 'X'" in problem.reason
    assert _entry({"Levels": {"M": "male", "F": "female"}}, ["F"]) == ({"Levels": {"M": "male", "F": "female"},
                                                                        "Description": "column x of labs.csv"}, [])


@pytest.mark.parametrize("values, levels", [
    (["yes", "no", "yes", "no"], {"no": "no", "yes": "yes"}),  # repeated text
    (["A1", "B2"], {"A1": "A1", "B2": "B2"}),  # a few short codes, each once
    (["1", "2", "2", "1"], None),  # numbers
    (["2024-01-02", "2024-01-02", "2024-01-03", "2024-01-03"], None),  # dates
    (["a very long free text", "another free text"], None),  # text seen once each
    (['"quoted', '"quoted'], None),  # quoted in the TSV: the validator would not find it among Levels
    ([f"v{i}" for i in range(MAX_LEVELS + 1)] * 2, None),  # too many values
    ([], None),
])
def test_levels_are_detected_only_for_low_cardinality_text(values, levels):
    entry, _ = _entry({}, values)
    assert entry.get("Levels") == levels


def test_units_without_levels_are_never_given_detected_levels_and_bids_columns_are_renamed():
    entry, _ = _entry({"Units": "score"}, ["yes", "no", "yes"])
    assert "Levels" not in entry and entry["Format"] == "string"
    assert [safe_column(c) for c in ("participant_id", "session_id", "age")] == [
        "participant_id_ehr", "session_id_ehr", "age"]
