"""Bad input, second round: one bad thing stays local to its visit, is named once in one line, and is bounded."""

from __future__ import annotations


import pytest

from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import TEST_HEURISTICS, TRANSFER_SYNTAXES, add_series, assert_valid_bids

HEURISTIC = TEST_HEURISTICS / "transfer_syntaxes.json"
DICOM = TRANSFER_SYNTAXES / "1.dcm"


@pytest.mark.realdata
def test_visit_names_no_file_system_holds_fail_alone(export, bids):
    # 231 characters: its BIDS file names are too long; 245: even sub-X_ses-Y_scans.tsv is (refused before dcm2niix)
    long_names = ["V" * 231, "W" * 245]
    for name in [*long_names, "V2"]:
        add_series(export, "20230302", name, DICOM, subfolder="a")

    report = convert(ConvertOptions(export=export, bids=bids, heuristic=HEURISTIC, validate=False))

    assert {v.scan_research_id: v.status for v in report.visits} == {
        long_names[0]: "failed", long_names[1]: "failed", "V2": "placed"}
    for name in long_names:
        [problem] = [p for p in report.problems if name in p.path]
        assert problem.fatal and "longer than a file system holds (255): not converted" in problem.reason
        assert "\n" not in problem.reason and name not in problem.reason  # the path names it, the line stays short
    assert report.failed
    assert (bids / "dataset_description.json").is_file() and report.report_page
    assert len(list(bids.glob("code/bids-factory/runs/*.json"))) >= 1
    assert_valid_bids(bids)


@pytest.mark.realdata
def test_cli_long_visit_name_one_line_and_inventory_goes_on(export, tmp_path, command_runs):
    add_series(export, "20230302", "V" * 231, DICOM, subfolder="a")
    add_series(export, "20230302", "V2", DICOM, subfolder="a")
    done = command_runs("convert", export, tmp_path / "bids", "--heuristic", HEURISTIC, "--no-validate")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "internal error" not in done.stdout + done.stderr
    assert [line for line in done.stdout.splitlines() if "FAILED" in line and "longer than a file system" in line]
    assert (tmp_path / "bids" / "dataset_description.json").is_file()
    assert list((tmp_path / "bids").rglob("sub-*_ses-V2_*.nii.gz"))

    listed = command_runs("inventory", export, "--heuristic", HEURISTIC, "--no-validate")
    assert listed.returncode == 1 and "Traceback" not in listed.stdout + listed.stderr
    assert "visit V2 (sub-" in listed.stdout and "cannot be converted" in listed.stdout


@pytest.mark.realdata
def test_inventory_of_a_visit_not_in_the_export_exits_non_zero(export, command_runs):
    add_series(export, "20230302", "V2", DICOM, subfolder="a")
    listed = command_runs("inventory", export, "--heuristic", HEURISTIC, "--visit", "NOPE", "--no-validate")
    assert listed.returncode == 1
    assert [line for line in listed.stdout.splitlines() if "NOPE" in line] == [
        "  FAILED: NOPE: visit named with --visit is not in the export"]
    assert "Traceback" not in listed.stderr


@pytest.mark.realdata
def test_jobs_never_forks_more_workers_than_visits_or_cpus(export, bids, monkeypatch):
    import concurrent.futures as cf

    from bids_factory.run import batches

    for name in ("V1", "V2", "V3"):
        add_series(export, "20230302", name, DICOM, subfolder="a")
    pools = []
    real_pool = cf.ProcessPoolExecutor

    def counted_pool(max_workers=None, **kwargs):
        pools.append(max_workers)
        return real_pool(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(batches.cf, "ProcessPoolExecutor", counted_pool)
    report = convert(ConvertOptions(export=export, bids=bids, heuristic=HEURISTIC, jobs=1000, validate=False))

    assert [v.status for v in report.visits] == ["placed"] * 3
    expected = min(3, batches.usable_cpus())
    assert pools == ([expected] if expected > 1 else [])  # one worker: no pool at all


def test_negative_wait_is_a_wrong_command_line(export, tmp_path, command_runs):
    for command in (["convert", export, tmp_path / "bids"], ["slurm", export, tmp_path / "bids", "--dry-run"]):
        done = command_runs(*command, "--wait", "-5")
        assert done.returncode == 2 and "expected a number of seconds >= 0, got '-5'" in done.stderr
        assert "Traceback" not in done.stderr and not (tmp_path / "bids").exists()


@pytest.mark.realdata
def test_heuristic_with_a_duplicated_key_is_refused_before_any_conversion(export, tmp_path, command_runs):
    add_series(export, "20230302", "V2", DICOM, subfolder="a")
    site = tmp_path / "site.json"
    site.write_text('{\n  "descriptions": [],\n  "descriptions": []\n}\n')
    done = command_runs("convert", export, tmp_path / "bids", "--heuristic", site, "--no-validate")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr == (f'bids-factory: error: heuristic {site}: key "descriptions" given twice in one object '
                           "(line 3): JSON keeps only the last one; merge the two into one key\n")
    assert not list((tmp_path / "bids").rglob("*.nii.gz"))


@pytest.mark.realdata
def test_nifti_sidecar_nested_100000_deep_is_a_problem_of_its_series(tmp_path):
    import json

    from test_nifti_route import HEURISTIC as XA30_HEURISTIC, _nifti_export
    from conftest import XA30

    series = {p.name.split("_")[0]: p for p in XA30.iterdir() if p.is_dir()}
    export = tmp_path / "export"
    _nifti_export(export, "20240105", "GOOD01", [series["7"]])
    visit = _nifti_export(export, "20240105", "DEEP01", [series["7"], series["8"]])
    [deep] = sorted(visit.glob("8_*e1.json"))
    data = json.loads(deep.read_text())
    deep.write_text(json.dumps(data)[:-1] + ', "Nested": ' + "[" * 100_000 + "]" * 100_000 + "}")

    report = convert(ConvertOptions(export=export, bids=tmp_path / "bids", heuristic=XA30_HEURISTIC, validate=False))

    statuses = {v.scan_research_id: v.status for v in report.visits}
    assert statuses == {"GOOD01": "placed", "DEEP01": "placed"}  # the other series of DEEP01 too
    [problem] = [p for p in report.problems if p.path.endswith(deep.name) or p.path.endswith(deep.stem + ".nifti")]
    assert problem.fatal and "nested deeper than 32 levels" in problem.reason
    assert not [p for p in report.problems if "internal error" in p.reason or "RecursionError" in p.reason]
    assert report.failed
    assert_valid_bids(tmp_path / "bids")


@pytest.mark.realdata
def test_summary_run_record_and_page_stay_small_whatever_the_ehr(export, tmp_path, command_runs):
    add_series(export, "20230302", "V2", DICOM, subfolder="a")
    table = export / "EHR/2023/20230302/demographics.csv"
    table.parent.mkdir(parents=True)
    table.write_text("patient_id,sex,age\n" + "".join(f"P{i:06d},F,{20 + i % 60}\n" for i in range(20_000)))
    bids = tmp_path / "bids"

    done = command_runs("convert", export, bids, "--heuristic", HEURISTIC, "--no-validate")

    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if "EHR patients without images" in line]
    assert line.startswith("  linkage: 20000 EHR patients without images: sub-P000000, sub-P000001")
    assert line.endswith("sub-P000009 and 19990 more (all: code/bids-factory/linkage.tsv)")
    assert len(done.stdout) < 4000
    [record] = (bids / "code/bids-factory/runs").glob("run-*.json")
    assert record.stat().st_size < 4000 and (bids / "code/bids-factory/report.html").stat().st_size < 40_000
    listed = (bids / "code/bids-factory/linkage.tsv").read_text().splitlines()
    assert listed[0] == "participant_id\tlinkage" and len(listed) == 1 + 20_000 + 1  # and sub-crlab: no EHR row
    assert "sub-P019999\tEHR without images" in listed and "sub-crlab\timages without EHR row" in listed


@pytest.mark.realdata
def test_ehr_table_with_absurd_column_count_is_refused_alone(export, bids):
    add_series(export, "20230302", "V2", DICOM, subfolder="a")
    day = export / "EHR/2023/20230302"
    day.mkdir(parents=True)
    (day / "demographics.csv").write_text("patient_id,sex\ncrlab,F\n")
    (day / "sideways.csv").write_text("patient_id," + ",".join(f"c{i}" for i in range(50_000)) + "\n"
                                      + "crlab," + ",".join("1" for _ in range(50_000)) + "\n")

    report = convert(ConvertOptions(export=export, bids=bids, heuristic=HEURISTIC, validate=False))

    assert [v.status for v in report.visits] == ["placed"]
    [problem] = [p for p in report.problems if "sideways" in p.path]
    assert problem.fatal and "the header has 50001 columns, more than 5000: not read" in problem.reason
    assert report.failed
    assert "sex" in (bids / "participants.tsv").read_text().splitlines()[0]
    assert_valid_bids(bids)


@pytest.mark.realdata
def test_archive_among_dicom_series_is_a_problem_of_its_visit(export, bids):
    import tarfile
    import zipfile

    visit = add_series(export, "20230302", "V1", DICOM, subfolder="a")
    add_series(export, "20230302", "V2", DICOM, subfolder="a")
    with zipfile.ZipFile(visit / "series9.zip", "w") as archive:
        archive.write(DICOM, "series9/1.dcm")
    with tarfile.open(visit / "series10.tar.gz", "w:gz") as archive:
        archive.add(DICOM, "series10/1.dcm")
    with tarfile.open(visit / "series11.tar", "w") as archive:
        archive.add(DICOM, "series11/1.dcm")

    report = convert(ConvertOptions(export=export, bids=bids, heuristic=HEURISTIC, validate=False))

    assert {v.scan_research_id: v.status for v in report.visits} == {"V1": "placed", "V2": "placed"}
    named = {p.path.rsplit("/", 1)[-1]: (p.reason, p.fatal) for p in report.problems if "archive" in p.reason}
    assert named == {
        "series9.zip": ("zip archive: not converted, extract it in the export and the next run converts its files", True),
        "series10.tar.gz": ("gzip archive: not converted, extract it in the export and the next run converts its "
                            "files", True),
        "series11.tar": ("tar archive: not converted, extract it in the export and the next run converts its files", True),
    }
    assert report.failed
    assert_valid_bids(bids)


@pytest.mark.realdata
def test_series_without_patient_id_is_named_not_merged_into_the_visit(export, bids):
    import pydicom
    from pydicom.uid import generate_uid

    visit = add_series(export, "20230302", "V1", DICOM, subfolder="a")
    add_series(export, "20230302", "V2", DICOM, subfolder="a")
    ds = pydicom.dcmread(DICOM)
    ds.PatientID = ""
    ds.SeriesNumber = 99
    ds.SeriesDescription = "stray"
    ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    (visit / "stray").mkdir()
    ds.save_as(visit / "stray" / "1.dcm")

    report = convert(ConvertOptions(export=export, bids=bids, heuristic=HEURISTIC, validate=False))

    assert {v.scan_research_id: v.status for v in report.visits} == {"V1": "placed", "V2": "placed"}
    [v1] = [v for v in report.visits if v.scan_research_id == "V1"]
    assert v1.placed == 1
    [stray] = [o for o in v1.not_placed if o.series.series_number == 99]
    assert stray.status == "held-back" and stray.reason.startswith(
        "no PatientID in its 1 file(s) (DICOM/2023/20230302/V1/stray) while the visit's other files name a patient")
    assert len(list(bids.rglob("sub-*_ses-V1_*.nii.gz"))) == 1
    assert_valid_bids(bids)


@pytest.mark.realdata
def test_nifti_export_file_name_of_any_length_is_staged(tmp_path):
    from test_nifti_route import HEURISTIC as XA30_HEURISTIC, _nifti_export
    from conftest import XA30

    series = {p.name.split("_")[0]: p for p in XA30.iterdir() if p.is_dir()}
    export = tmp_path / "export"
    visit = _nifti_export(export, "20240105", "LONG01", [series["7"]])
    long_stem = "7_" + "x" * 240  # 248 bytes with .nifti: the export holds it, a staged .nii.gz of it would not
    for path in list(visit.iterdir()):
        path.rename(visit / (long_stem + path.suffix))

    report = convert(ConvertOptions(export=export, bids=tmp_path / "bids", heuristic=XA30_HEURISTIC, validate=False))

    assert [(v.scan_research_id, v.status, v.placed) for v in report.visits] == [("LONG01", "placed", 1)]
    assert not report.failed, report.problems
    assert_valid_bids(tmp_path / "bids")
