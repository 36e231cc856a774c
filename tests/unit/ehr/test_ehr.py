"""EHR tables -> phenotype/ and participants.tsv: real-world CSVs over two export days, with and without
a mapping, checked down to the official validator."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_factory.ehr.tables import EhrMappingError, EhrResult, collect_ehr, linkage, load_ehr_mapping
from bids_factory.ehr.read import CsvError, detect_delimiter, read_csv
from bids_factory.resources import shipped_dir
from bids_factory.checks.validator import run_validator

DAY1, DAY2 = "20240311", "20240312"
IMAGE_SUBJECTS = frozenset({"P001", "P002", "P009"})  # P009: images, no EHR; P003: EHR, no images

# Day 1 -----------------------------------------------------------------------------------------------
DEMOGRAPHICS_1 = (  # UTF-8 with BOM, ',' , quoted fields, trailing delimiters, empty lines, CRLF
    "\ufeffpatient_id,sex,age,handedness,city,comment,\r\n"
    'P-001,M,70,R,Genève,"said ""hello"",\r\nthen left",\r\n'  # a quoted value over two lines
    "\r\n"
    "P_002,F,91,L,Zürich,,\r\n"
    "   \r\n"
    "P003,F,65,A,Genève,plain,\r\n"
).encode("utf-8")
LABS_1 = (  # Latin-1, ';', decimal commas, accents
    "patient_ipp;scan_research_id;weight;site\n"
    "P-001;V001;72,5;Genève\n"
    "P_002;V002;61;Zürich\n"
).encode("latin-1")
SCORES_1 = (  # tab separated, long
    "PatientID\tvisit\tmeasurement_id\tmeasurement_value\tdate\n"
    "P-001\tV001\tMMSE\t27\t2024-03-11\n"
    "P_002\tV002\tMMSE\t29\t2024-03-11\n"
    "P003\t\tMMSE\t21\t2024-03-08\n"
).encode("utf-8")
BROKEN = b"\x00\x01PK\x03\x04\xff\xfe\x00garbage\x00"
# Day 2: updates ------------------------------------------------------------------------------------------
DEMOGRAPHICS_2 = (  # UTF-8 without BOM; P_002 corrected L -> R, a new column; P-001 and P003 absent
    "patient_id,sex,age,handedness,education\n"
    "P_002,F,91,R,12\n"
).encode("utf-8")
LABS_2 = (  # CP1252 ';': P-001 V001 corrected, a second visit V003
    "patient_ipp;scan_research_id;weight;site\n"
    "P-001;V001;73,0;Genève\n"
    "P-001;V003;74,2;Genève\n"
).encode("cp1252")
SCORES_2 = (  # later value wins for (P-001, V001, MMSE); new measurement MOCA
    "PatientID\tvisit\tmeasurement_id\tmeasurement_value\tdate\n"
    "P-001\tV001\tMMSE\t28\t2024-03-12\n"
    "P-001\tV001\tMOCA\t25,5\t2024-03-12\n"
).encode("utf-8")
BAD_QUOTING = b'patient_id,x\n"P-001,1\nP_002,2\n'

MAPPING = {
    "tables": {
        "demographics": {
            "patient_id": "patient_id",
            "visit": None,
            "drop": ["comment"],
            "columns": {
                "sex": {"Description": "Sex in the EHR.", "Levels": {"M": "male"}},
                "age": {"Description": "Age in years.", "Units": "year"},
                "city": {"Description": "City of residence.", "Units": "km"},
            },
            "participants": {
                "age": "age",
                "sex": {"column": "sex", "values": {"M": "male", "F": "female"}},
                "handedness": {"column": "handedness", "values": {"R": "right", "L": "left", "A": "ambidextrous"}},
                "city": {"column": "city", "Description": "City of residence."},
            },
        },
        "labs": {"files": "labs*.csv", "patient_id": "patient_ipp", "visit": "scan_research_id",
                 "decimal_comma": False},
        "cognition": {
            "files": ["scores.csv"],
            "description": "Cognitive scores.",
            "patient_id": "PatientID",
            "visit": "visit",
            "long": {"measurement": "measurement_id", "value": "measurement_value"},
            "decimal_comma": ["measurement_value"],
            "columns": {"MMSE": {"LongName": "Mini-Mental State Examination", "Description": "MMSE total."}},
        },
    }
}


def _put(root: Path, day: str, name: str, data: bytes) -> None:
    folder = root / "EHR" / day[:4] / day
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


@pytest.fixture
def hospital(tmp_path: Path) -> Path:
    root = tmp_path / "export"
    for day, files in ((DAY1, {"demographics.csv": DEMOGRAPHICS_1, "labs.csv": LABS_1, "scores.csv": SCORES_1,
                               "broken.csv": BROKEN}),
                       (DAY2, {"demographics.csv": DEMOGRAPHICS_2, "labs.csv": LABS_2, "scores.csv": SCORES_2,
                               "quoting.csv": BAD_QUOTING})):
        for name, data in files.items():
            _put(root, day, name, data)
    return root


def _tables(result: EhrResult) -> dict[str, list[dict[str, str]]]:
    out = {}
    for table in result.tables:
        header, *rows = table.tsv.rstrip("\n").split("\n")
        out[table.name] = [dict(zip(header.split("\t"), row.split("\t"))) for row in rows]
    return out


def _row(rows: list[dict[str, str]], participant: str, session: str | None = None) -> dict[str, str]:
    found = [r for r in rows if r["participant_id"] == participant and (session is None or r["session_id"] == session)]
    assert len(found) == 1, (participant, session, rows)
    return found[0]


def _sidecar(result: EhrResult, name: str) -> dict:
    return next(t.sidecar for t in result.tables if t.name == name)


def _reasons(result: EhrResult, fatal: bool | None = None) -> list[str]:
    return [f"{p.path}: {p.reason}" for p in result.problems if fatal is None or p.fatal == fatal]


# -- reading real-world CSV ------------------------------------------------------------------------------

def test_encodings_delimiters_quotes_and_trailing_delimiters_without_mapping(hospital: Path) -> None:
    result = collect_ehr(hospital, None)
    tables = _tables(result)
    demo = tables["demographics"]
    assert list(demo[0]) == ["participant_id", "sex", "age", "handedness", "city", "comment", "education"]
    assert _row(demo, "sub-P001")["city"] == "Genève"  # UTF-8 with BOM
    assert _row(demo, "sub-P002")["city"] == "Zürich"
    assert _row(demo, "sub-P001")["comment"] == 'said "hello", then left'  # quoted: delimiter and line break
    assert _row(demo, "sub-P002")["comment"] == "n/a"
    assert len(demo) == 3  # the empty and blank lines are no rows
    labs = tables["labs"]  # Latin-1 (day 1) and CP1252 (day 2) with ';'
    assert list(labs[0]) == ["participant_id", "session_id", "weight", "site"]
    assert _row(labs, "sub-P002", "ses-V002")["site"] == "Zürich"
    assert _row(labs, "sub-P001", "ses-V003")["site"] == "Genève"
    scores = tables["scores"]  # tab separated
    assert list(scores[0])[:3] == ["participant_id", "session_id", "MMSE"]
    assert "\ufeff" not in "".join(t.tsv for t in result.tables)


def test_decimal_commas_detected_in_semicolon_files_or_set_by_the_mapping(hospital: Path) -> None:
    detected = collect_ehr(hospital, None)
    assert _row(_tables(detected)["labs"], "sub-P001", "ses-V001")["weight"] == "73.0"
    assert _row(_tables(detected)["labs"], "sub-P001", "ses-V003")["weight"] == "74.2"
    assert any("decimal commas read as decimal points in weight" in r for r in _reasons(detected, fatal=False))
    assert _row(_tables(detected)["scores"], "sub-P001", "ses-V001")["MOCA"] == "25.5"  # per measurement
    mapped = collect_ehr(hospital, MAPPING)  # labs: decimal_comma false; cognition: its value column
    assert _row(_tables(mapped)["labs"], "sub-P001", "ses-V003")["weight"] == "74,2"
    assert _row(_tables(mapped)["cognition"], "sub-P001", "ses-V001")["MOCA"] == "25.5"


def test_later_day_replaces_rows_adds_rows_and_columns_and_keeps_the_rest(hospital: Path) -> None:
    tables = _tables(collect_ehr(hospital, None))
    demo = tables["demographics"]
    assert _row(demo, "sub-P002")["handedness"] == "R"  # day 2 corrected L -> R
    assert _row(demo, "sub-P002")["education"] == "12"  # column added on day 2
    assert _row(demo, "sub-P002")["city"] == "Zürich"  # absent from day 2's file: kept
    assert _row(demo, "sub-P003")["handedness"] == "A"  # row absent on day 2: kept
    assert _row(demo, "sub-P001")["education"] == "n/a"
    labs = tables["labs"]
    assert len(labs) == 3 and _row(labs, "sub-P002", "ses-V002")["weight"] == "61"
    scores = tables["scores"]
    assert _row(scores, "sub-P001", "ses-V001")["MMSE"] == "28"  # later value of (patient, visit, MMSE)
    assert _row(scores, "sub-P001", "ses-V001")["MMSE_date"] == "2024-03-12"
    assert _row(scores, "sub-P002", "ses-V002")["MMSE"] == "29"
    assert _row(scores, "sub-P002", "ses-V002")["MOCA"] == "n/a"
    assert _row(scores, "sub-P003", "n/a")["MMSE"] == "21"  # a row without a visit


def test_broken_files_are_fatal_problems_and_the_rest_is_written(hospital: Path) -> None:
    result = collect_ehr(hospital, None)
    fatal = {p.path: p.reason for p in result.problems if p.fatal}
    assert set(fatal) == {"EHR/2024/20240311/broken.csv", "EHR/2024/20240312/quoting.csv"}
    assert "binary content" in fatal["EHR/2024/20240311/broken.csv"]
    assert "malformed quoting" in fatal["EHR/2024/20240312/quoting.csv"]
    assert {t.name for t in result.tables} == {"demographics", "labs", "scores"}
    acknowledged = collect_ehr(hospital, {"skip_files": ["2024/*/broken.csv", "*/quoting.csv"], "tables": {}})
    assert not [p for p in acknowledged.problems if p.fatal]
    assert "EHR/2024/20240311/broken.csv: skipped: listed in the mapping's skip_files" in _reasons(acknowledged)


def test_without_mapping_ids_are_guessed_with_warnings_and_a_data_dictionary_is_generated(hospital: Path) -> None:
    result = collect_ehr(hospital, None)
    warnings = _reasons(result, fatal=False)
    assert ("EHR/2024/20240311/demographics.csv: no mapping: patient id column guessed as 'patient_id'"
            in warnings)
    assert "EHR/2024/20240311/labs.csv: no mapping: visit column guessed as 'scan_research_id'" in warnings
    assert any("scores.csv: no mapping: long table guessed" in w for w in warnings)
    sidecar = _sidecar(result, "demographics")
    assert sidecar["sex"] == {"Description": "column sex of demographics.csv (no description in the mapping)",
                              "Levels": {"F": "F", "M": "M"}}
    assert "Levels" not in sidecar["age"] and "Levels" not in sidecar["comment"]  # numbers, free text
    assert set(sidecar) == {"MeasurementToolMetadata", "participant_id", "sex", "age", "handedness", "city",
                            "comment", "education"}
    assert set(_sidecar(result, "scores")) >= {"session_id", "MMSE", "MMSE_date", "MOCA", "MOCA_date"}
    assert "20240311, 20240312" in sidecar["MeasurementToolMetadata"]["Description"]
    # participants.tsv columns found by name, normalised to BIDS values, ages capped at 89
    assert result.participants["P002"] == {"age": "89", "sex": "female", "handedness": "right"}
    assert result.participants["P003"] == {"age": "65", "sex": "female", "handedness": "ambidextrous"}
    assert any("ages above 89 written as 89" in w for w in warnings)


def test_no_patient_id_column_is_a_fatal_problem(tmp_path: Path) -> None:
    _put(tmp_path, DAY1, "misc.csv", b"code,value\nA,1\n")
    _put(tmp_path, DAY1, "ok.csv", b"subject;value\nA;1\n")
    result = collect_ehr(tmp_path, None)
    assert [p.path for p in result.problems if p.fatal] == ["EHR/2024/20240311/misc.csv"]
    assert "no patient id column" in _reasons(result, fatal=True)[0]
    assert [t.name for t in result.tables] == ["ok"]


# -- with a mapping ------------------------------------------------------------------------------------------

def test_mapping_pivots_long_tables_drops_columns_and_describes_them(hospital: Path) -> None:
    result = collect_ehr(hospital, MAPPING)
    tables = _tables(result)
    assert set(tables) == {"demographics", "labs", "cognition"}  # scores.csv -> cognition
    cognition = _sidecar(result, "cognition")
    assert cognition["MMSE"] == {"LongName": "Mini-Mental State Examination", "Description": "MMSE total."}
    assert cognition["MeasurementToolMetadata"]["Description"].startswith("Cognitive scores. From the EHR table")
    assert list(tables["cognition"][0]) == ["participant_id", "session_id", "MMSE", "MMSE_date", "MOCA", "MOCA_date"]
    assert "comment" not in tables["demographics"][0]  # dropped by the mapping
    assert not [w for w in _reasons(result, fatal=False) if "guessed" in w]
    demographics = _sidecar(result, "demographics")
    # Levels must list every value (the validator refuses others): missing ones are added, with a warning
    assert demographics["sex"]["Levels"] == {
        "M": "male", "F": "value found in the export, not described in the mapping"}
    assert any("value(s) 'F' not in the mapping's Levels" in w for w in _reasons(result, fatal=False))
    # Units on a text column would make the validator demand numbers: declared as text instead
    assert demographics["city"]["Format"] == "string" and demographics["city"]["Units"] == "km"
    assert demographics["age"] == {"Description": "Age in years.", "Units": "year"}


def test_mapping_feeds_participants_with_value_maps(hospital: Path) -> None:
    result = collect_ehr(hospital, MAPPING)
    assert list(result.participants_sidecar) == ["age", "sex", "handedness", "city"]
    assert result.participants == {
        "P001": {"age": "70", "sex": "male", "handedness": "right", "city": "Genève"},
        "P002": {"age": "89", "sex": "female", "handedness": "right", "city": "Zürich"},
        "P003": {"age": "65", "sex": "female", "handedness": "ambidextrous", "city": "Genève"},
    }
    assert result.participants_sidecar["sex"]["Levels"] == {"male": "Male", "female": "Female", "other": "Other"}
    assert result.participants_sidecar["age"]["Units"] == "year"
    assert result.participants_sidecar["city"]["Description"] == "City of residence."
    assert result.participants_sidecar["city"]["Levels"] == {"Genève": "Genève", "Zürich": "Zürich"}


def test_participant_values_outside_bids_are_na_and_reported(tmp_path: Path) -> None:
    _put(tmp_path, DAY1, "demo.csv", b"patient_id,sex,age\nA,X,abc\nB,2,40\n")
    mapping = {"tables": {"demo": {"participants": {"sex": {"column": "sex", "values": {"2": "female"}},
                                                    "age": "age"}}}}
    result = collect_ehr(tmp_path, mapping)
    assert result.participants == {"A": {"age": "n/a", "sex": "n/a"}, "B": {"age": "40", "sex": "female"}}
    warnings = _reasons(result, fatal=False)
    assert any("value 'X' is not one of male, female, other" in w for w in warnings)
    assert any("value 'abc' is not an age in years" in w for w in warnings)
    assert _row(_tables(result)["demo"], "sub-A")["sex"] == "X"  # kept in the phenotype table


# -- keys, labels, duplicates, linkage ------------------------------------------------------------------------

def test_ids_that_sanitise_to_the_same_label_are_never_merged(tmp_path: Path) -> None:
    _put(tmp_path, DAY1, "demo.csv", b"patient_id,age\nA-1,50\nA_1,60\nB2,70\n")
    result = collect_ehr(tmp_path, None)
    fatal = _reasons(result, fatal=True)
    assert fatal == ["EHR: patient ids 'A-1', 'A_1' all become sub-A1: their rows are not written "
                     "(never merged); correct the ids"]
    assert [r["participant_id"] for r in _tables(result)["demo"]] == ["sub-B2"]
    assert result.ehr_subjects == {"B2"}


def test_conflicting_rows_in_one_file_are_fatal_unless_accepted(tmp_path: Path) -> None:
    _put(tmp_path, DAY1, "labs.csv", b"patient_id,value\nA,1\nA,1\nA,2\nB,3\n")
    result = collect_ehr(tmp_path, None)
    assert [p.reason for p in result.problems if p.fatal] == [
        "rows with the same patient and different values (lines 3, 4): the later line is kept; declare the "
        'visit column or a long pivot in the mapping, or set "duplicates": "last"']
    assert _row(_tables(result)["labs"], "sub-A")["value"] == "2"
    accepted = collect_ehr(tmp_path, {"tables": {"labs": {"duplicates": "last"}}})
    assert not [p for p in accepted.problems if p.fatal]
    assert any("accepted ('duplicates': 'last')" in w for w in _reasons(accepted, fatal=False))


def test_a_later_day_emptying_a_value_is_reported(tmp_path: Path) -> None:
    _put(tmp_path, DAY1, "demo.csv", b"patient_id,age\nA,50\n")
    _put(tmp_path, DAY2, "demo.csv", b"patient_id,age\nA,\n")
    result = collect_ehr(tmp_path, None)
    assert _row(_tables(result)["demo"], "sub-A")["age"] == "n/a"
    assert any("1 value(s) of earlier days are empty on day 20240312" in w for w in _reasons(result, fatal=False))


def test_linkage_names_both_kinds_of_mismatch(hospital: Path) -> None:
    result = collect_ehr(hospital, MAPPING)
    assert result.ehr_subjects == {"P001", "P002", "P003"}
    assert linkage(result.ehr_subjects, IMAGE_SUBJECTS) == (["P009"], ["P003"])
    assert linkage(frozenset({"B", "A"}), frozenset({"D", "C", "A"})) == (["C", "D"], ["B"])


def test_days_are_read_in_date_order_and_unfinished_days_skipped(tmp_path: Path) -> None:
    _put(tmp_path, "20231231", "demo.csv", b"patient_id,age\nA,50\n")
    _put(tmp_path, "20240102", "demo.csv", b"patient_id,age\nA,52\n")
    _put(tmp_path, "20240101", "demo.csv", b"patient_id,age\nA,51\n")
    result = collect_ehr(tmp_path, None, today=dt.date(2024, 1, 2))
    assert _row(_tables(result)["demo"], "sub-A")["age"] == "51"
    assert "EHR/2024/20240102: skipped: today's export is still being written (no .ready marker)" in _reasons(result)
    (tmp_path / "EHR/2024/20240102/.ready").touch()
    assert _row(_tables(collect_ehr(tmp_path, None, today=dt.date(2024, 1, 2)))["demo"], "sub-A")["age"] == "52"


# -- the CSV reader -----------------------------------------------------------------------------------------------

def test_reader_refuses_shifted_rows_and_reads_utf16_and_repairs_headers() -> None:
    with pytest.raises(CsvError, match="line 2 has 4 fields but the header has 3"):
        read_csv(b"a,b,c\n1,2,3,4\n")
    table = read_csv("id;name;\r\n1;Zoë;\r\n".encode("utf-16"))
    assert table.columns == ("id", "name") and table.rows == ((2, ("1", "Zoë")),)
    table = read_csv(b"id,,id\n1,2,3\n4\n")
    assert table.columns == ("id", "column2", "id_2")
    assert table.rows[1] == (3, ("4", "", ""))  # short rows are padded, not shifted
    assert len(table.notes) == 2
    assert read_csv("id,ville\n1,Genève\n".encode("cp1252")).encoding == "cp1252"
    assert detect_delimiter('"a;b",c,d\n') == ","  # delimiters inside quotes do not count
    excel = read_csv(b"sep=,\r\nid;name,x\r\n1;2,3\r\n")  # Excel's delimiter line wins over counting
    assert excel.columns == ("id;name", "x") and excel.rows == ((3, ("1;2", "3")),)
    with pytest.raises(CsvError, match="empty"):
        read_csv(b"\n\n")


# -- the mapping file ----------------------------------------------------------------------------------------------

def test_mapping_loads_from_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "m.yaml"
    yaml_file.write_text("tables:\n  labs:\n    patient_id: patient_ipp\n    delimiter: ';'\n", encoding="utf-8")
    assert load_ehr_mapping(yaml_file) == {"tables": {"labs": {"patient_id": "patient_ipp", "delimiter": ";"}}}
    json_file = tmp_path / "m.json"
    json_file.write_text(json.dumps(MAPPING), encoding="utf-8")
    assert load_ehr_mapping(json_file) == MAPPING


@pytest.mark.parametrize(("text", "suffix", "expected"), [
    ('{"tables": {"demo": {"patient_idd": "x"}}}', ".json", "at tables/demo (line 1): Additional properties"),
    ('tables:\n  demo:\n    patient_idd: x\n', ".yaml", "at tables/demo (line 3): Additional properties"),
    ('{"tables": {"demo": {"participants": {"sex": {"column": "s", "values": {"M": 1}}}}}}', ".json",
     "at tables/demo/participants/sex"),
    ('{"tables": {"demo": {"long": {"measurement": "m"}}}}', ".json", "at tables/demo/long (line 1): 'value' is a required"),
    ('{"tables": {"demo": {"delimiter": "::"}}}', ".json", "at tables/demo/delimiter"),
    ('{"tables": {"demo": {"encoding": "klingon"}}}', ".json", "at tables/demo/encoding: unknown encoding"),
    ('{"tables": {"bad name": {}}}', ".json", "at tables"),
    ('{"tables": {}', ".json", "not valid JSON at line 1"),
    ("tables:\n  demo: [\n", ".yaml", "not valid YAML at line"),
    ("[]", ".json", "at (top level)"),
])
def test_mapping_faults_name_their_place(tmp_path: Path, text: str, suffix: str, expected: str) -> None:
    path = tmp_path / f"mapping{suffix}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(EhrMappingError, match=None) as caught:
        load_ehr_mapping(path)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)


# -- demo export with its shipped mapping -----------------------------------------------------------------------

def test_demo_export_with_the_shipped_mapping(tmp_path: Path, new_demo) -> None:
    export = new_demo(tmp_path / "export")
    mapping = load_ehr_mapping(shipped_dir("heuristics") / "demo-ehr-mapping.json")
    result = collect_ehr(export.root, mapping)
    assert not [p for p in result.problems if p.fatal]
    assert [p.path for p in result.problems] == ["phenotype/cognitive_scores.tsv"]  # the .bidsignore note
    tables = _tables(result)
    assert set(tables) == {"demographics", "cognitive_scores", "diagnosis"}
    assert _row(tables["cognitive_scores"], "sub-DEMO001", "ses-V0001B")["MMSE"] == "26"
    assert _row(tables["cognitive_scores"], "sub-DEMO003", "n/a")["MOCA"] == "17"
    assert _row(tables["diagnosis"], "sub-DEMO003")["diagnosis"] == "AD"
    assert result.participants["DEMO002"] == {"age": "61", "sex": "male", "handedness": "right"}  # day-2 fix
    assert _sidecar(result, "diagnosis")["diagnosis"]["Levels"]["MCI"] == "mild cognitive impairment"
    assert result.bidsignore == ("phenotype/cognitive_scores.tsv", "phenotype/cognitive_scores.json")
    images = frozenset({"DEMO001", "DEMO002"})
    assert linkage(result.ehr_subjects, images) == ([], ["DEMO003"])


# -- the official validator on a dataset written from the results ----------------------------------------------

def _write_dataset(root: Path, result: EhrResult, image_subjects: frozenset[str], bidsignore: bool = True) -> None:
    """A tiny BIDS dataset: one T1w per image subject; participants.tsv lists image AND EHR-only subjects."""
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "EHR test", "BIDSVersion": "1.10.1", "DatasetType": "raw", "Authors": ["A. Test", "B. Test"]}))
    (root / "README.md").write_text("A tiny dataset written by the EHR tests of bids-factory: one T1w image per "
                                    "subject with images, and the phenotype tables of a synthetic EHR export.\n")
    for label in image_subjects:
        anat = root / f"sub-{label}" / "anat"
        anat.mkdir(parents=True)
        image = nib.Nifti1Image(np.zeros((8, 8, 8), dtype=np.int16), np.eye(4))
        image.header.set_xyzt_units("mm", "sec")
        nib.save(image, anat / f"sub-{label}_T1w.nii.gz")
        (anat / f"sub-{label}_T1w.json").write_text(json.dumps(
            {"RepetitionTime": 2.3, "EchoTime": 0.003, "InversionTime": 0.9, "FlipAngle": 9,
             "MagneticFieldStrength": 3, "Manufacturer": "Siemens"}))
    columns = list(result.participants_sidecar)
    lines = ["\t".join(["participant_id", *columns])]
    for label in sorted(image_subjects | result.ehr_subjects):
        values = result.participants.get(label, {})
        lines.append("\t".join([f"sub-{label}", *(values.get(c, "n/a") for c in columns)]))
    (root / "participants.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "participants.json").write_text(json.dumps(
        {"participant_id": {"Description": "Subject label."}, **result.participants_sidecar}, ensure_ascii=False),
        encoding="utf-8")
    (root / "phenotype").mkdir()
    for table in result.tables:
        (root / "phenotype" / f"{table.name}.tsv").write_text(table.tsv, encoding="utf-8")
        (root / "phenotype" / f"{table.name}.json").write_text(json.dumps(table.sidecar, ensure_ascii=False),
                                                               encoding="utf-8")
    if bidsignore and result.bidsignore:
        (root / ".bidsignore").write_text("\n".join(result.bidsignore) + "\n")


@pytest.mark.parametrize("use_mapping", [False, True], ids=["no-mapping", "mapping"])
def test_validator_reports_zero_errors_with_ehr_only_participants(
        hospital: Path, tmp_path: Path, use_mapping: bool) -> None:
    result = collect_ehr(hospital, MAPPING if use_mapping else None)
    dataset = tmp_path / "bids"
    _write_dataset(dataset, result, IMAGE_SUBJECTS)
    report = run_validator(dataset)
    if report is None:
        pytest.skip("bids-validator-deno is not installed")
    assert report.exit_code == 0, report.errors
    assert not report.errors
    assert "sub-P003" in (dataset / "participants.tsv").read_text()  # EHR only, listed
    assert "sub-P003" in (dataset / "phenotype" / "demographics.tsv").read_text()


def test_validator_needs_the_bidsignore_for_tables_with_several_visits(hospital: Path, tmp_path: Path) -> None:
    result = collect_ehr(hospital, MAPPING)
    assert result.bidsignore == ("phenotype/labs.tsv", "phenotype/labs.json")  # P001: visits V001 and V003
    dataset = tmp_path / "bids"
    _write_dataset(dataset, result, IMAGE_SUBJECTS, bidsignore=False)
    report = run_validator(dataset)
    if report is None:
        pytest.skip("bids-validator-deno is not installed")
    assert {(i.code, i.location) for i in report.errors} == {("TSV_INDEX_VALUE_NOT_UNIQUE", "/phenotype/labs.tsv")}


def test_validator_reports_zero_errors_on_the_demo_export(tmp_path: Path, new_demo) -> None:
    export = new_demo(tmp_path / "export")
    result = collect_ehr(export.root, load_ehr_mapping(shipped_dir("heuristics") / "demo-ehr-mapping.json"))
    _write_dataset(tmp_path / "bids", result, frozenset({"DEMO001", "DEMO002"}))
    report = run_validator(tmp_path / "bids")
    if report is None:
        pytest.skip("bids-validator-deno is not installed")
    assert report.exit_code == 0 and not report.errors, report.errors
