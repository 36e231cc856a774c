"""Identity rules, exit status, messages and the CLI, on the synthetic demo export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from bids_factory.cli.main import main
from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import REPO, assert_valid_bids, fingerprint


@pytest.fixture
def demo(tmp_path: Path, new_demo) -> Path:
    return new_demo(tmp_path / "export").root


def _set_patient(visit_dir: Path, patient_id: str | None, every: int = 1) -> None:
    for index, path in enumerate(sorted(visit_dir.rglob("*.dcm"))):
        if index % every:
            continue
        ds = pydicom.dcmread(path)
        if patient_id is None:
            del ds.PatientID
        else:
            ds.PatientID = patient_id
        ds.save_as(path)


def _visit(export: Path, visit: str) -> Path:
    return next(export.glob(f"DICOM/*/*/{visit}"))


def _status(report) -> dict[str, str]:
    return {v.scan_research_id: v.status for v in report.visits}


def test_demo_export_converts_with_sanitised_labels(demo, tmp_path):
    bids = tmp_path / "bids"
    report = convert(ConvertOptions(export=demo, bids=bids, validate=False))
    assert _status(report) == {"V0001A": "placed", "V0001B": "placed", "V0002-A": "placed"}
    assert sorted(p.name for p in bids.glob("sub-*") if p.is_dir()) == ["sub-DEMO001", "sub-DEMO002"]
    assert (bids / "sub-DEMO002" / "ses-V0002A" / "anat" / "sub-DEMO002_ses-V0002A_T1w.nii.gz").exists()
    assert report.non_dicom_files == 1
    # no mapping: the EHR columns are detected; DEMO-003 has EHR rows but no image and is listed too
    assert (bids / "participants.tsv").read_text() == (
        "participant_id\tage\tsex\thandedness\n"
        "sub-DEMO001\t73\tfemale\tright\nsub-DEMO002\t61\tmale\tright\nsub-DEMO003\t68\tfemale\tright\n")
    assert report.ehr_without_images == ["DEMO003"] and report.images_without_ehr == []
    assert sorted(p.name for p in (bids / "phenotype").iterdir()) == [
        "cognitive_scores.json", "cognitive_scores.tsv", "demographics.json", "demographics.tsv",
        "diagnosis.json", "diagnosis.tsv"]
    assert_valid_bids(bids)


def test_ehr_mapping_names_columns_and_a_broken_table_fails_the_run(demo, tmp_path, capsys):
    from bids_factory.resources import shipped_dir

    (demo / "EHR" / "2024" / "20240312" / "labs.csv").write_bytes(b'patient_id,value\n"DEMO-001,1\n')
    mapping = shipped_dir("heuristics") / "demo-ehr-mapping.json"
    bids = tmp_path / "bids"
    code = main(["convert", str(demo), str(bids), "--ehr-mapping", str(mapping), "--quiet", "--no-validate"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED: EHR/2024/20240312/labs.csv: cannot be parsed" in out
    assert "linkage: 1 EHR patients without images: sub-DEMO003" in out
    assert (bids / "phenotype" / "diagnosis.tsv").exists() and not (bids / "phenotype" / "labs.tsv").exists()
    record = json.loads(sorted((bids / "code" / "bids-factory" / "runs").glob("run-*.json"))[-1].read_text())
    assert record["linkage"]["ehr_without_images"] == ["sub-DEMO003"]
    assert_valid_bids(bids)


def test_two_ids_that_sanitise_alike_are_never_merged(demo, tmp_path):
    _set_patient(_visit(demo, "V0002-A"), "DEMO0_01")  # -> DEMO001, like DEMO-001
    bids = tmp_path / "bids"
    report = convert(ConvertOptions(export=demo, bids=bids, validate=False))
    assert _status(report) == {"V0001A": "placed", "V0001B": "placed", "V0002-A": "failed"}
    assert report.failed
    [problem] = [p for p in report.problems if p.fatal]
    assert "same subject label sub-DEMO001" in problem.reason
    assert sorted(p.name for p in (bids / "sub-DEMO001").iterdir() if p.is_dir()) == ["ses-V0001A", "ses-V0001B"]
    assert_valid_bids(bids)


def test_collision_is_detected_across_runs(converted_demo, tmp_path):
    demo, bids = converted_demo(tmp_path)  # the demo export and its first conversion
    _set_patient(_visit(demo, "V0002-A"), "DEMO00-2")  # -> DEMO002 again but another raw id
    # (files rewritten in place in an old day: a daily run does not look there, --rescan does)
    report = convert(ConvertOptions(export=demo, bids=bids, validate=False, rescan=True))
    assert _status(report)["V0002-A"] == "failed"
    [problem] = [p for p in report.problems if p.fatal]
    assert "two different PatientIDs give the same subject label sub-DEMO002" in problem.reason
    assert "V0002-A" in problem.reason


def test_visit_with_two_patients_is_not_placed(demo, tmp_path):
    _set_patient(_visit(demo, "V0002-A"), "SOMEONE-ELSE", every=7)
    report = convert(ConvertOptions(export=demo, bids=tmp_path / "bids", validate=False))
    assert _status(report)["V0002-A"] == "failed"
    assert any("2 different PatientIDs" in p.reason for p in report.problems)
    assert not (tmp_path / "bids" / "sub-DEMO002").exists()
    assert _status(report)["V0001A"] == "placed"
    assert_valid_bids(tmp_path / "bids")


def test_visit_without_patient_id_is_not_placed(demo, tmp_path):
    _set_patient(_visit(demo, "V0001B"), None)
    report = convert(ConvertOptions(export=demo, bids=tmp_path / "bids", validate=False))
    assert _status(report)["V0001B"] == "failed"
    assert any("carry no PatientID" in p.reason for p in report.problems)
    assert_valid_bids(tmp_path / "bids")


def test_parallel_jobs_give_the_same_dataset(demo, tmp_path):
    convert(ConvertOptions(export=demo, bids=tmp_path / "one", jobs=1, validate=False))
    convert(ConvertOptions(export=demo, bids=tmp_path / "two", jobs=2, validate=False))

    def images(root: Path) -> dict[str, str]:
        return {k: v for k, v in fingerprint(root).items() if k.endswith(".nii.gz")}

    assert images(tmp_path / "one") == images(tmp_path / "two") != {}


def test_rerun_replaces_sessions_and_stays_valid(converted_demo, tmp_path):
    demo, bids = converted_demo(tmp_path)  # the demo export and its first conversion
    first = {k: v for k, v in fingerprint(bids).items() if k.startswith("sub-") and k.endswith(".nii.gz")}
    report = convert(ConvertOptions(export=demo, bids=bids, validate=False))
    again = {k: v for k, v in fingerprint(bids).items() if k.startswith("sub-") and k.endswith(".nii.gz")}
    assert not report.failed and first == again
    assert not (bids / "code" / "bids-factory" / "staging").exists()
    assert_valid_bids(bids)


def test_participant_label_selects_subjects(demo, tmp_path):
    bids = tmp_path / "bids"
    report = convert(ConvertOptions(export=demo, bids=bids, participant_labels=frozenset({"DEMO002"}), validate=False))
    assert _status(report) == {"V0001A": "not-selected", "V0001B": "not-selected", "V0002-A": "placed"}
    assert [p.name for p in bids.glob("sub-*") if p.is_dir()] == ["sub-DEMO002"]
    assert_valid_bids(bids)


def test_cli_exit_status_and_summary(demo, tmp_path, capsys):
    before = fingerprint(demo)
    _set_patient(_visit(demo, "V0001B"), None)
    code = main(["convert", str(demo), str(tmp_path / "bids"), "--quiet", "--no-validate"])
    out = capsys.readouterr().out
    assert code == 1
    assert "visits: 2 placed, 1 failed" in out
    assert "FAILED: DICOM/2024/20240312/V0001B: visit V0001B: the DICOM files carry no PatientID" in out
    # identical lines grouped: dcm2niix splits each scout in 3 images, 2 visits -> one line, x6
    scouts = [line for line in out.splitlines() if "AAHead_Scout" in line]
    assert scouts == ["  nothing to do: 6 series expected (scouts, scanner-derived maps, no image; the report lists "
                      "each): AAHead_Scout \u00d76"]
    assert "series not placed, by what to do: to decide 0, to supply 0, export to fix 0, nothing to do 6" in out
    lines = out.splitlines()
    assert lines[-2] == f"report: {(tmp_path / 'bids').resolve()}/code/bids-factory/report.html"
    assert lines[-1].startswith("next: fix what the FAILED lines say")
    assert fingerprint(demo) != before  # only our own edit above...
    _set_patient(_visit(demo, "V0001B"), "DEMO-001")
    assert main(["convert", str(demo), str(tmp_path / "bids"), "--quiet", "--no-validate"]) == 0
    assert_valid_bids(tmp_path / "bids")


@pytest.mark.parametrize("args, message", [
    (["convert", "/nonexistent/export", "/tmp/x"], "export folder /nonexistent/export does not exist"),
    (["convert", "{demo}/DICOM", "{tmp}/bids"], "is not a Data Capture export: no DICOM/, NIFTI/ or EHR/ folder"),
    (["convert", "{demo}", "{tmp}/bids", "--heuristic", "/nonexistent.json"], "cannot be read"),
    (["convert", "{demo}", "{demo}/bids"], "is inside the export"),
    (["convert", "{demo}", "{demo}/../bad.json/bids"], "Not a directory"),
])
def test_bad_input_is_one_line_without_traceback(args, message, demo, tmp_path, command_runs):
    (tmp_path / "bad.json").write_text("{}")  # a file where a folder is expected
    args = [a.format(tmp=tmp_path, demo=demo) for a in args]
    done = command_runs(*args)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert message in done.stderr and done.stderr.startswith("bids-factory: error: ")


def test_heuristic_with_a_typo_is_refused_before_any_conversion(demo, tmp_path, command_runs):
    bad = tmp_path / "bad.json"
    bad.write_text('{"descriptions": [\n {"datatype": "anat", "suffix": "T1w",\n  "critera": {"SeriesDescription": "*"}}]}')
    bids = tmp_path / "bids"
    done = command_runs("convert", demo, bids, "--heuristic", bad)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "at descriptions/0" in done.stderr and "'critera'" in done.stderr and "criteria" in done.stderr
    assert not bids.exists()


def test_version_and_help(command_runs):
    for args in (["--version"], ["--help"], ["convert", "--help"], ["demo", "--help"]):
        done = command_runs(*args)
        assert done.returncode == 0, args
        assert "bids-factory" in done.stdout


def test_demo_command_writes_a_valid_dataset(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "bids_factory", "demo", str(tmp_path / "demo")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert f"BIDS dataset: {tmp_path / 'demo' / 'bids'}" in done.stdout
    assert "BIDS validator: 0 errors" in done.stdout
    assert len(list((tmp_path / "demo" / "bids").rglob("sub-*_T1w.nii.gz"))) == 3
    # progress names every phase, in order, as plain log lines (stderr is not a terminal here)
    phases = [line.split(":")[0].rstrip(".") for line in done.stderr.splitlines()]
    order = ["discover", "convert", "check", "place", "EHR", "dataset files", "validator", "report"]
    assert list(dict.fromkeys(p for p in phases if p in order)) == order
    assert "convert 3/3: V0002-A: converted" in done.stderr and "not selected" not in done.stderr
    assert done.stdout.splitlines()[-2] == f"report: {tmp_path / 'demo' / 'bids' / 'code' / 'bids-factory' / 'report.html'}"
    again = subprocess.run([sys.executable, "-m", "bids_factory", "demo", str(tmp_path / "demo")],
                           capture_output=True, text=True, env=env)
    assert again.returncode == 1 and again.stderr.startswith("bids-factory: error: ")
    assert "Traceback" not in again.stderr and "choose a new OUT_DIR" in again.stderr


def test_dcm2bids_post_op_is_accepted_but_never_run(demo, tmp_path, caplog):
    config = json.loads((REPO / "heuristics" / "default.json").read_text())
    marker = tmp_path / "post-op-ran"
    config["post_op"] = [{"cmd": f"touch {marker} src_file dst_file", "datatype": "anat", "suffix": ["T1w"]}]
    heuristic = tmp_path / "with-post-op.json"
    heuristic.write_text(json.dumps(config))
    report = convert(ConvertOptions(export=demo, bids=tmp_path / "bids", heuristic=heuristic, validate=False))
    assert {v.status for v in report.visits} == {"placed"}
    assert not marker.exists()
    assert "post_op is ignored" in caplog.text


def test_an_export_with_only_ehr_tables_gives_a_valid_dataset(demo, tmp_path):
    export = tmp_path / "ehr-only-export"
    export.mkdir()
    (demo / "EHR").rename(export / "EHR")
    report = convert(ConvertOptions(export=export, bids=tmp_path / "bids"))
    assert report.visits == [] and not report.failed
    assert report.ehr_without_images == ["DEMO001", "DEMO002", "DEMO003"]
    assert (tmp_path / "bids" / "phenotype" / "demographics.tsv").exists()
    assert not (tmp_path / "bids" / "participants.tsv").exists()  # written with the first images
    assert_valid_bids(tmp_path / "bids")
