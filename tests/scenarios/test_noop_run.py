"""A daily run on an unchanged export costs almost nothing (issue #16): it imports no conversion library,
yet reports what a full run reports, and takes up whatever did change (EHR, a curator's removal, a run
stopped before its dataset-level files)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bids_factory.run import batches as conversion
from bids_factory.errors import HeuristicError
from bids_factory.run.pipeline import ConvertOptions, convert
from bids_factory.run.rules import Rules
from bids_factory.run.options import settings_key
from bids_factory.checks.sidecar_schemas import default_folder
from bids_factory.report.summary import summary_lines
from conftest import TEST_HEURISTICS, assert_valid_bids

HEAVY = ("numpy", "pandas", "nibabel", "PIL", "pydicom", "jsonschema", "referencing", "bids", "dcm2bids",
         "bidsschematools", "yaml")
STATE = Path("code") / "bids-factory"


@pytest.fixture
def demo(tmp_path: Path, new_demo) -> Path:
    return new_demo(tmp_path / "export").root


def _imported(args: list[str]) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run the CLI under ``python -X importtime``: the completed process and every module it imported."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "bids_factory", *args],
                          capture_output=True, text=True)
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:") and "[us]" not in line]
    return done, {line.rsplit("|", 1)[1].strip() for line in lines}


def test_a_run_with_nothing_new_imports_no_conversion_library(converted_demo, tmp_path):
    demo, bids = converted_demo(tmp_path)  # the demo export and its first conversion
    done, modules = _imported(["convert", str(demo), str(bids), "--quiet"])
    assert done.returncode == 0, done.stderr
    assert "visits: 0 placed, 0 failed, 3 unchanged" in done.stdout
    assert "bids_factory.run.pipeline" in modules  # the parse saw the run's imports
    assert sorted(m for m in modules if m.split(".")[0] in HEAVY) == []
    assert "bids_factory.run.batches" not in modules
    # a new visit is work: the conversion stages come in
    shutil.copytree(demo / "DICOM" / "2024" / "20240312" / "V0001B", demo / "DICOM" / "2024" / "20240312" / "V0003")
    done, modules = _imported(["convert", str(demo), str(bids), "--quiet", "--no-validate"])
    assert done.returncode == 0, done.stderr
    assert "visits: 1 placed" in done.stdout and "bids_factory.run.batches" in modules
    assert_valid_bids(bids)


def test_a_run_with_nothing_new_reports_what_a_full_run_reports(demo, tmp_path):
    bids = tmp_path / "bids"
    first = convert(ConvertOptions(export=demo, bids=bids))
    noop = convert(ConvertOptions(export=demo, bids=bids))
    assert (bids / STATE / "dataset-files.json").is_file()
    (bids / STATE / "dataset-files.json").write_text("{")  # damaged: the dataset-level files computed again
    full = convert(ConvertOptions(export=demo, bids=bids))
    assert first.ehr_without_images == ["DEMO003"]
    for report in (noop, full):
        assert {v.status for v in report.visits} == {"unchanged"}
        assert report.ehr_without_images == first.ehr_without_images
        assert report.images_without_ehr == first.images_without_ehr
    assert noop.problems == full.problems and any(p.path.startswith("EHR") for p in full.problems)
    assert summary_lines(noop) == summary_lines(full)
    assert noop.record["linkage"] == full.record["linkage"] == first.record["linkage"]
    assert noop.dataset == full.dataset == first.dataset and noop.dataset["series held back"] >= 0
    page = (bids / STATE / "report.html").read_text()
    assert "DEMO003" in page or "sub-DEMO003" in page
    assert_valid_bids(bids)


def test_a_run_with_nothing_new_takes_up_ehr_changes_and_a_removed_file(converted_demo, tmp_path):
    demo, bids = converted_demo(tmp_path)  # the demo export and its first conversion
    convert(ConvertOptions(export=demo, bids=bids, validate=False))  # records nothing new
    day = demo / "EHR" / "2024" / "20240313"
    day.mkdir()
    (day / "diagnosis.csv").write_text("patient_id,diagnosis\nDEMO-001,AD\n")
    report = convert(ConvertOptions(export=demo, bids=bids, validate=False))
    assert {v.status for v in report.visits} == {"unchanged"}
    assert "sub-DEMO001\tAD" in (bids / "phenotype" / "diagnosis.tsv").read_text()
    (bids / "participants.tsv").unlink()  # a curator's mistake: the next run writes it again
    convert(ConvertOptions(export=demo, bids=bids, validate=False))
    assert "sub-DEMO003" in (bids / "participants.tsv").read_text()
    description = json.loads((bids / "dataset_description.json").read_text())
    report = convert(ConvertOptions(export=demo, bids=bids, validate=False, license="CC0"))  # an option
    assert json.loads((bids / "dataset_description.json").read_text()) == {**description, "License": "CC0"}
    assert_valid_bids(bids)


def test_a_run_stopped_after_placing_leaves_the_dataset_files_to_the_next_run(demo, tmp_path, monkeypatch):
    bids = tmp_path / "bids"
    convert(ConvertOptions(export=demo, bids=bids, visits=frozenset({"V0001A"}), validate=False))
    real = conversion.update_dataset_files

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt  # the operator stops the run after its visits were placed

    monkeypatch.setattr(conversion, "update_dataset_files", stopped)
    with pytest.raises(KeyboardInterrupt):
        convert(ConvertOptions(export=demo, bids=bids, validate=False))
    assert "ses-V0001B" not in (bids / "sub-DEMO001" / "sub-DEMO001_sessions.tsv").read_text()
    monkeypatch.setattr(conversion, "update_dataset_files", real)
    report = convert(ConvertOptions(export=demo, bids=bids, validate=False))
    assert {v.status for v in report.visits} == {"unchanged"}
    assert "ses-V0001B" in (bids / "sub-DEMO001" / "sub-DEMO001_sessions.tsv").read_text()
    assert "sub-DEMO002" in (bids / "participants.tsv").read_text()
    assert_valid_bids(bids)


def test_a_bad_heuristic_stops_the_run_when_a_visit_is_to_convert(converted_demo, tmp_path):
    """The heuristic is checked when something is converted; a changed heuristic always is (its key)."""
    demo, bids = converted_demo(tmp_path)  # the demo export and its first conversion
    bad = tmp_path / "bad.json"
    bad.write_text('{"descriptions": [{"datatype": "anat", "suffix": "T1w", "critera": {}}]}')
    before = sorted(p.relative_to(bids) for p in bids.rglob("*") if "runs" not in p.parts)
    with pytest.raises(HeuristicError, match="critera"):
        convert(ConvertOptions(export=demo, bids=bids, heuristic=bad, validate=False))
    assert sorted(p.relative_to(bids) for p in bids.rglob("*") if "runs" not in p.parts) == before


def test_the_settings_key_read_from_the_files_is_the_one_the_loaded_rules_record(demo, tmp_path):
    schemas = tmp_path / "schemas"
    shutil.copytree(default_folder(), schemas)
    site = tmp_path / "site.json"
    site.write_text((TEST_HEURISTICS / "xa30_reproin.json").read_text())
    for options in (ConvertOptions(export=demo, bids=tmp_path / "b"),
                    ConvertOptions(export=demo, bids=tmp_path / "b", heuristic=site, schemas=schemas,
                                   keep_site_fields=True)):
        assert settings_key(options) == Rules.load(options).settings_key(options)
    before = settings_key(options)
    (schemas / "T1w.schema.json").write_text(json.dumps({"type": "object", "required": ["RepetitionTime"]}))
    assert settings_key(options) != before  # a changed schema reconverts, also read without checking


def test_visits_converted_under_earlier_output_rules_are_converted_again(demo, tmp_path, monkeypatch):
    """When what a placed visit contains changes (de-identification, naming), an upgrade must not leave the
    old output in place: every visit converted under the earlier rules is converted again, once."""
    from bids_factory.run import options as run_config

    bids = tmp_path / "bids"
    options = ConvertOptions(export=demo, bids=bids, validate=False)
    monkeypatch.setattr(run_config, "OUTPUT_RULES", run_config.OUTPUT_RULES - 1)
    first = convert(options)
    assert first.visits and all(v.status in ("placed", "nothing-to-place") for v in first.visits)
    monkeypatch.undo()
    again = convert(options)
    assert [v.status for v in again.visits] == [v.status for v in first.visits]  # converted again
    assert {v.status for v in convert(options).visits} == {"unchanged"}
