"""participants.tsv, sessions.tsv and scans.tsv are merged, never regenerated: a curator's columns and
rows (subjects added by hand, an adopted dataset) survive every run; new cells are n/a."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bids_factory.run.pipeline import ConvertOptions, convert
from bids_factory.tsv import merge_tsv, read_tsv, render_tsv, tsv_value
from conftest import GE_T1W, SHARED_DICOM, add_series, assert_valid_bids

GE_SESSION_T1W = SHARED_DICOM / "ge_session" / "In" / "05_3D_Ax_T1_MP_RAGE_R22"


def _tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)  # pandas' default quoting


def _add_column(path: Path, column: str, value: str) -> None:
    frame = _tsv(path)
    frame[column] = value
    frame.to_csv(path, sep="\t", index=False)


@pytest.mark.realdata
def test_curator_columns_and_rows_survive_a_reconversion_and_a_new_subject(export, bids):
    add_series(export, "20230301", "GE0001", GE_T1W)
    first = convert(ConvertOptions(export=export, bids=bids, validate=False))
    assert not first.failed, first.problems
    (subject,) = [p.name for p in bids.glob("sub-*") if p.is_dir()]
    session = bids / subject / "ses-GE0001"
    # the curator's work: a column in each table, and a subject added by hand (an adopted dataset)
    _add_column(bids / "participants.tsv", "group", "patient")
    _add_column(bids / subject / f"{subject}_sessions.tsv", "site_note", "first visit")
    _add_column(session / f"{subject}_ses-GE0001_scans.tsv", "quality", "good")
    hand = bids / "sub-hand" / "anat"
    hand.mkdir(parents=True)
    for image in (session / "anat").iterdir():
        shutil.copy(image, hand / image.name.replace(f"{subject}_ses-GE0001", "sub-hand"))
    with open(bids / "participants.tsv", "a") as handle:
        handle.write("sub-hand\tcontrol\n")
    for name, column in (("sessions.json", "site_note"), ("scans.json", "quality")):  # and their descriptions
        described = json.loads((bids / name).read_text())
        (bids / name).write_text(json.dumps({**described, column: {"Description": f"the curator's {column}"}}))
    description = json.loads((bids / "dataset_description.json").read_text())
    description["GeneratedBy"].append({"Name": "curation-notes", "Version": "1"})
    (bids / "dataset_description.json").write_text(json.dumps(description))
    # the next run: the visit is converted again, and a new patient arrives
    add_series(export, "20230302", "GE0002", GE_SESSION_T1W)
    second = convert(ConvertOptions(export=export, bids=bids, reconvert=True, validate=False))
    assert not second.failed, second.problems
    participants = _tsv(bids / "participants.tsv").set_index("participant_id")
    assert participants.loc[subject, "group"] == "patient"
    assert participants.loc["sub-hand", "group"] == "control"
    assert participants.loc["sub-dicom", "group"] == "n/a"
    sessions = _tsv(bids / subject / f"{subject}_sessions.tsv")
    assert sessions["site_note"].tolist() == ["first visit"] and "scan_research_id" in sessions
    scans = _tsv(session / f"{subject}_ses-GE0001_scans.tsv")
    assert scans["quality"].tolist() == ["good"] and "heuristic_rule" in scans
    new_scans = _tsv(next((bids / "sub-dicom").glob("ses-*/*_scans.tsv")))
    assert "quality" not in new_scans  # another session's file: its own columns
    assert json.loads((bids / "sessions.json").read_text())["site_note"] == {"Description": "the curator's site_note"}
    assert json.loads((bids / "scans.json").read_text())["quality"] == {"Description": "the curator's quality"}
    assert "scan_research_id" in json.loads((bids / "sessions.json").read_text())
    generated = [g["Name"] for g in json.loads((bids / "dataset_description.json").read_text())["GeneratedBy"]]
    assert generated == ["bids-factory", "dcm2niix", "curation-notes"]
    assert_valid_bids(bids)


def test_merge_keeps_unknown_rows_and_columns_and_drops_only_what_keep_refuses():
    existing = (["filename", "quality", "rule"], [{"filename": "anat/a.nii.gz", "quality": "good", "rule": "x"},
                                                  {"filename": "anat/gone.nii.gz", "quality": "bad", "rule": "x"}])
    text = merge_tsv(existing, "filename", ["rule", "series"],
                     [{"filename": "anat/a.nii.gz", "rule": "y", "series": "3"},
                      {"filename": "func/b.nii.gz", "rule": "z", "series": None}],
                     keep={"anat/a.nii.gz", "func/b.nii.gz"}.__contains__)
    assert text.splitlines() == ["filename\tquality\trule\tseries", "anat/a.nii.gz\tgood\ty\t3",
                                 "func/b.nii.gz\tn/a\tz\tn/a"]


def test_tsv_values_are_safe_and_a_lone_quote_round_trips(tmp_path):
    path = tmp_path / "t.tsv"
    values = ['"', '"quoted" word', 'say "hi"', "tab\there", "two\nlines", "Zürich", ""]
    path.write_text(render_tsv(["id", "v"], [{"id": str(i), "v": v} for i, v in enumerate(values)]))
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + len(values) and all(line.count("\t") == 1 for line in lines)
    back = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)["v"].tolist()
    assert back == ['"', '"quoted" word', 'say "hi"', "tab here", "two lines", "Zürich", "n/a"]
    assert read_tsv(path)[1][0]["v"] == '"'
    assert tsv_value(None) == "n/a"


def test_quotes_a_curator_typed_never_merge_or_lose_rows(tmp_path):
    """BIDS TSV has no quoting: a cell opening a quote that a later row closes (or nobody closes) stays in
    its row; every row survives the merge; a value quoted by bids-factory reads back as it was."""
    path = tmp_path / "participants.tsv"
    path.write_text('participant_id\tnote\nsub-01\t"unsure\nsub-02\tfine\nsub-03\t5" tall\nsub-04\t"open\n')
    columns, rows = read_tsv(path)
    assert [r["participant_id"] for r in rows] == ["sub-01", "sub-02", "sub-03", "sub-04"]
    assert [r["note"] for r in rows] == ['"unsure', "fine", '5" tall', '"open']
    merged = merge_tsv((columns, rows), "participant_id", ["age"], [{"participant_id": "sub-05", "age": "40"}])
    path.write_text(merged)
    again = read_tsv(path)[1]
    assert [r["participant_id"] for r in again] == ["sub-01", "sub-02", "sub-03", "sub-04", "sub-05"]
    assert [r["note"] for r in again] == ['"unsure', "fine", '5" tall', '"open', "n/a"]


@pytest.mark.realdata
def test_files_a_curator_added_or_edited_in_a_session_survive_its_reconversion(export, bids):
    """A reconverted visit rebuilds its session folder: a person's added files move into the new folder, and
    a sidecar they edited of an image the conversion places again unchanged stays as they edited it."""
    add_series(export, "20230301", "GE0001", GE_T1W)
    options = ConvertOptions(export=export, bids=bids, validate=False)
    assert not convert(options).failed
    (subject,) = [p.name for p in bids.glob("sub-*") if p.is_dir()]
    session = bids / subject / "ses-GE0001"
    stem = f"{subject}_ses-GE0001"
    # the curator's work: an extra image placed by hand, a session-level JSON, an edited sidecar
    shutil.copy(session / "anat" / f"{stem}_T1w.nii.gz", session / "anat" / f"{stem}_acq-hand_T1w.nii.gz")
    (session / "anat" / f"{stem}_acq-hand_T1w.json").write_text('{"Manufacturer": "by hand"}\n')
    (session / f"{stem}_scans.json").write_text('{"quality": {"Description": "rated by the curator"}}\n')
    sidecar = session / "anat" / f"{stem}_T1w.json"
    edited = json.loads(sidecar.read_text()) | {"InstitutionName": "curated"}
    sidecar.write_text(json.dumps(edited))
    added = {p: p.read_bytes() for p in (session / "anat" / f"{stem}_acq-hand_T1w.nii.gz",
                                         session / "anat" / f"{stem}_acq-hand_T1w.json", session / f"{stem}_scans.json")}

    again = convert(ConvertOptions(export=export, bids=bids, reconvert=True, validate=False))
    assert [v.status for v in again.visits] == ["placed"]
    assert {p: p.read_bytes() for p in added} == added  # carried into the new session folder
    assert json.loads(sidecar.read_text()) == edited  # the placed image stays: with its edited sidecar
    assert not (bids / "code" / "bids-factory" / "kept").exists()
    assert not [p for p in again.problems if "changed by hand" in p.reason]
    assert_valid_bids(bids)

    # a record written before the list of written files existed: the sidecar is still known as ours
    record_path = bids / "code" / "bids-factory" / "visits" / f"{stem}.json"
    record = json.loads(record_path.read_text())
    assert f"anat/{stem}_T1w.json" in record["written"] and f"anat/{stem}_acq-hand_T1w.json" not in record["written"]
    del record["written"]
    record_path.write_text(json.dumps(record))
    third = convert(ConvertOptions(export=export, bids=bids, reconvert=True, validate=False))
    assert not [p for p in third.problems if "changed by hand" in p.reason]
    assert {p: p.read_bytes() for p in added} == added


def test_json_merge_keeps_a_persons_edits_and_takes_new_data_elsewhere():
    from bids_factory.write.json_merge import merge_json

    base = {"age": {"Description": "Age (tool)", "Units": "year"}, "sex": {"Description": "Sex", "Levels": {"F": "female"}},
            "gone": {"Description": "a column the tool no longer writes"}, "deleted": {"Description": "tool"}}
    current = {"age": {"Description": "Age at the scan (curated)", "Units": "year"},
               "sex": {"Description": "Sex", "Levels": {"F": "Female (curated)"}},
               "group": {"Description": "added by the curator"}, "gone": {"Description": "a column the tool no longer writes"}}
    new = {"age": {"Description": "Age (tool v2)", "Units": "year"},
           "sex": {"Description": "Sex v2", "Levels": {"F": "female", "M": "male"}}, "deleted": {"Description": "tool"}}
    assert merge_json(current, base, new) == {
        "age": {"Description": "Age at the scan (curated)", "Units": "year"},  # the person's wording
        "sex": {"Description": "Sex v2", "Levels": {"F": "Female (curated)", "M": "male"}},  # new level added
        "group": {"Description": "added by the curator"},  # the person's entry
    }  # "gone": dropped (nobody changed it); "deleted": the person's deletion stands
    unknown_base = merge_json(current, None, new)  # a dataset from before the base was kept
    assert unknown_base["age"]["Description"] == "Age at the scan (curated)" and unknown_base["gone"]
    assert merge_json(None, None, new) == new


def test_a_curators_wording_in_participants_and_phenotype_json_survives_later_runs(tmp_path, new_demo):
    from bids_factory.errors import DatasetError
    from bids_factory.resources import shipped_dir

    export = new_demo(tmp_path / "export")
    bids = tmp_path / "bids"
    options = ConvertOptions(export=export.root, bids=bids, ehr_mapping=shipped_dir("heuristics") / "demo-ehr-mapping.json",
                             validate=False)
    assert not convert(options).failed
    participants, diagnosis = bids / "participants.json", bids / "phenotype" / "diagnosis.json"
    tool_participants, tool_diagnosis = json.loads(participants.read_text()), json.loads(diagnosis.read_text())
    edited_participants = tool_participants | {"age": tool_participants["age"] | {"Description": "Age at the first visit."}}
    levels = tool_diagnosis["diagnosis"]["Levels"] | {"AD": "Alzheimer's disease (NIA-AA 2018 criteria)"}
    edited_diagnosis = tool_diagnosis | {"diagnosis": tool_diagnosis["diagnosis"] | {"Levels": levels}}
    participants.write_text(json.dumps(edited_participants, indent=2))
    diagnosis.write_text(json.dumps(edited_diagnosis, indent=2))

    assert not convert(dataclasses.replace(options, reconvert=True)).failed
    assert json.loads(participants.read_text()) == edited_participants
    assert json.loads(diagnosis.read_text()) == edited_diagnosis
    assert json.loads((bids / "code" / "bids-factory" / "written" / "participants.json").read_text()) == tool_participants
    assert_valid_bids(bids)

    participants.write_text('{"age": {"Description": "Age"')  # a typo: refused with one line, not overwritten
    with pytest.raises(DatasetError, match="participants.json .*is not valid JSON"):
        convert(dataclasses.replace(options, reconvert=True))
    assert participants.read_text() == '{"age": {"Description": "Age"'


@pytest.mark.realdata
def test_a_daily_run_writes_only_the_sessions_tsv_of_the_subjects_it_placed(export, bids):
    """Cost follows the day's work: another subject's sessions.tsv is not read or written again, except
    for a subject whose session a killed run placed without listing it (its mark is left for the next run)."""
    add_series(export, "20230301", "GE0001", GE_T1W)
    assert not convert(ConvertOptions(export=export, bids=bids, validate=False)).failed
    (first,) = [p for p in bids.glob("sub-*") if p.is_dir()]
    listing = first / f"{first.name}_sessions.tsv"
    listing.write_text("session_id\tscan_research_id\texport_days\n")  # changed by hand: left as it is
    add_series(export, "20230302", "GE0002", GE_SESSION_T1W)
    assert not convert(ConvertOptions(export=export, bids=bids, validate=False)).failed
    assert listing.read_text() == "session_id\tscan_research_id\texport_days\n"
    assert "ses-GE0002" in (bids / "sub-dicom" / "sub-dicom_sessions.tsv").read_text()
    unlisted = bids / "code" / "bids-factory" / "unlisted"
    assert unlisted.is_dir() and not list(unlisted.iterdir())
    # what a run killed after placing leaves: the mark, and dataset-level files to compute again
    (unlisted / first.name).touch()
    (bids / "code" / "bids-factory" / "dataset-files.json").unlink()
    assert not convert(ConvertOptions(export=export, bids=bids, validate=False)).failed
    assert "ses-GE0001" in listing.read_text() and not list(unlisted.iterdir())
    assert_valid_bids(bids)


def test_an_older_record_names_only_bids_factorys_own_companion_files(tmp_path):
    """Records from before the list of written files: an image's sidecar, bval/bvec and an ASL image's
    aslcontext.tsv are bids-factory's; any other file of the session is a person's."""
    from bids_factory.write.session_files import person_files

    session = tmp_path / "ses-1"
    for name in ("perf/s_asl.nii.gz", "perf/s_asl.json", "perf/s_aslcontext.tsv", "func/s_task-a_bold.nii.gz",
                 "func/s_task-a_bold.json", "func/s_task-a_events.tsv", "func/s_task-a_aslcontext.tsv", "s_scans.tsv"):
        (session / name).parent.mkdir(parents=True, exist_ok=True)
        (session / name).write_text("x")
    record = {"files": [{"path": "perf/s_asl.nii.gz"}, {"path": "func/s_task-a_bold.nii.gz"}]}
    found = person_files(session, record, "s_scans.tsv")
    assert found.added == ("func/s_task-a_aslcontext.tsv", "func/s_task-a_events.tsv") and found.edited == ()
