"""participants.tsv columns from the EHR: the most recent value of each subject, BIDS levels for sex and
handedness, ages as numbers capped at 89; a value that cannot be normalised is n/a, never guessed."""

from __future__ import annotations

import pandas as pd

from bids_factory.ehr.participants import AGE_CAP, participants_columns


def _records(rows: list[tuple[str, str, int, dict]]) -> pd.DataFrame:
    """A table's records (bids_factory.ehr.dictionary.Records): (label, session, recency) -> values."""
    index = pd.MultiIndex.from_tuples([r[:3] for r in rows], names=["label", "session", "recency"])
    return pd.DataFrame([r[3] for r in rows], index=index)


def _columns(built, mapping=None, subjects=("01", "02", "03")):
    problems = []
    rows, sidecar = participants_columns(dict.fromkeys(built), built, mapping, set(subjects), problems)
    return rows, sidecar, problems


def test_an_unmapped_table_gives_the_most_recent_age_sex_and_handedness_normalised():
    records = _records([("01", "1", 5, {"Gender": "F", "Age": "34", "hand": "x"}),
                        ("01", "1", 1, {"Gender": "M", "Age": "33", "hand": "x"}),  # exported earlier: older
                        ("02", "1", 2, {"Gender": "other", "Age": "-1", "hand": "x"}),
                        ("02", "2", 3, {"Gender": None, "Age": "95", "hand": "x"}),  # no sex: the earlier stays
                        ("03", "1", 4, {"Gender": None, "Age": "-1", "hand": "x"})])
    rows, sidecar, problems = _columns({"demo": (None, records, ["Gender", "Age", "hand"])},
                                       subjects=("01", "02", "03", "04"))
    assert rows == {"01": {"age": "34", "sex": "female"}, "02": {"age": str(AGE_CAP), "sex": "other"},
                    "03": {"age": "n/a", "sex": "n/a"}, "04": {"age": "n/a", "sex": "n/a"}}
    reasons = " | ".join(p.reason for p in problems)
    assert "participants.tsv column 'age' taken from column 'Age'" in reasons
    assert "value '-1' is not an age in years" in reasons and "ages above 89 written as 89" in reasons
    assert sidecar["age"]["Units"] == "year" and sidecar["sex"]["Levels"] == {
        "male": "Male", "female": "Female", "other": "Other"}


def test_a_mapped_source_with_its_values_wins_and_unknown_levels_are_na_with_one_problem_each():
    records = _records([("01", "1", 1, {"sexe": "Homme", "lat": "G", "age": "40"}),
                        ("02", "1", 2, {"sexe": "femme", "lat": "D", "age": "41"}),
                        ("03", "1", 3, {"sexe": "inconnu", "lat": "G", "age": "42"}),
                        ("04", "1", 4, {"sexe": "inconnu", "lat": "G", "age": "43"})])
    mapping = {"tables": {"demo": {"participants": {
        "sex": {"column": "sexe", "values": {"homme": "M", "Femme": "F"}},
        "handedness": {"column": "lat", "values": {"G": "left", "D": "right"}, "Description": "Laterality"},
        "group": {"column": "absent"}}}}}
    rows, sidecar, problems = _columns({"demo": (None, records, ["sexe", "lat", "age"])}, mapping,
                                       subjects=("01", "02", "03", "04"))
    assert rows["01"] == {"sex": "male", "handedness": "left", "group": "n/a"}  # its age column is not mapped
    assert rows["02"]["sex"] == "female" and rows["03"]["sex"] == "n/a"
    assert sidecar["handedness"]["Description"] == "Laterality"
    reasons = [p.reason for p in problems]
    assert sum("'inconnu' is not one of male, female, other" in r for r in reasons) == 1
    assert any("the table has no column 'absent'" in r for r in reasons)
    assert not any("no mapping" in r for r in reasons)  # a mapped table is never searched by name


def test_a_custom_column_keeps_its_text_and_gets_a_dictionary_entry_the_validator_accepts():
    records = _records([("01", "1", 1, {"grp": "patient"}), ("02", "1", 2, {"grp": "control"}),
                        ("03", "1", 3, {"grp": "patient"})])
    mapping = {"tables": {"demo": {"participants": {"group": {"column": "grp", "Units": "n"}}}}}
    rows, sidecar, problems = _columns({"demo": (None, records, ["grp"])}, mapping)
    assert [r["group"] for r in rows.values()] == ["patient", "control", "patient"]
    assert sidecar["group"]["Format"] == "string" and any("holds non-numbers" in p.reason for p in problems)
