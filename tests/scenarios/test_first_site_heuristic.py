"""A site's first heuristic on real exports (GE session, Philips ASL): the starter holds rules only for what a
curator must decide; once its placeholders are filled (as a curator would), the export converts valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bids_factory.cli.main import main
from bids_factory.errors import HeuristicError
from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import SHARED_DICOM, add_series, assert_valid_bids

pytestmark = pytest.mark.realdata

GE = SHARED_DICOM / "ge_session" / "In"
PHILIPS_ASL = SHARED_DICOM / "philips_asl" / "In" / "Classic"


def _ge(root: Path) -> Path:
    add_series(root, "20240105", "GEV1", GE / "05_3D_Ax_T1_MP_RAGE_R22")
    add_series(root, "20240105", "GEV1", GE / "01_Ax_DWI_TENSOR_R2")
    add_series(root, "20240105", "GEV2", GE / "SliceTiming" / "14_Ax_fMRI_HB3_48sl_int_asc")
    return root


def _asl(root: Path) -> Path:
    for series in sorted(PHILIPS_ASL.iterdir()):
        add_series(root, "20240105", "ASL1", series)
    return root


def _starter(export: Path, path: Path, capsys) -> tuple[dict, dict]:
    """(the starter written, series number -> inventory entry)."""
    assert main(["inventory", str(export), "--json", "--no-validate", "--write-heuristic", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "replace every EDITME" in err
    return json.loads(path.read_text()), {s["SeriesNumber"]: s for v in json.loads(out)["visits"] for s in v["series"]}


def _fill(rule: dict, values: dict) -> None:
    """What a curator writes in place of each EDITME of a rule."""
    for key, value in values.items():
        if key in rule.get("sidecar_changes", {}):
            rule["sidecar_changes"][key] = value
    if "custom_entities" in rule:
        rule["custom_entities"] = rule["custom_entities"].replace("EDITME", values["task"])
    if "aslcontext" in rule["bids_factory"]:
        rule["bids_factory"]["aslcontext"] = {"repeat": ["label", "control"]}


def _rules_for(starter: dict, series: dict) -> dict[str, dict]:
    """Rule name -> the inventory entry of the series it names."""
    by_name = {s["SeriesDescription"]: s for s in series.values()}
    return {r["bids_factory"]["rule"]: by_name[r["criteria"]["SeriesDescription"]] for r in starter["descriptions"]}


def test_ge_starter_holds_only_the_bold_without_task_and_converts_valid_once_filled(tmp_path, capsys):
    export = _ge(tmp_path / "export")
    starter, series = _starter(export, tmp_path / "site.json", capsys)
    # the T1w is placed by the default; the DWI is held back by a schema (no field to add): no rule for them
    assert {name: s["SeriesNumber"] for name, s in _rules_for(starter, series).items()} == {
        "Ax fMRI HB3 48sl int asc": 14}
    [bold] = starter["descriptions"]
    assert (bold["datatype"], bold["suffix"], bold["custom_entities"], bold["sidecar_changes"]) == (
        "func", "bold", "task-EDITME", {"TaskName": "EDITME"})
    with pytest.raises(HeuristicError, match="still hold the placeholder 'EDITME'"):
        convert(ConvertOptions(export=export, bids=tmp_path / "refused", heuristic=tmp_path / "site.json"))
    _fill(bold, {"task": "rest", "TaskName": "rest"})
    site = tmp_path / "site-edited.json"
    site.write_text(json.dumps(starter))
    bids = tmp_path / "bids"
    report = convert(ConvertOptions(export=export, bids=bids, heuristic=site))
    assert not report.failed
    assert_valid_bids(bids)
    placed = sorted(p.name for p in bids.glob("sub-*/ses-*/*/*.nii.gz"))
    assert placed == ["sub-PH202010141_ses-GEV2_task-rest_bold.nii.gz", "sub-dicom_ses-GEV1_T1w.nii.gz"]


def test_philips_asl_starter_has_no_rule_for_the_perfusion_maps_and_converts_valid_once_filled(tmp_path, capsys):
    export = _asl(tmp_path / "export")
    starter, series = _starter(export, tmp_path / "site.json", capsys)
    rules = _rules_for(starter, series)
    assert sorted(s["SeriesNumber"] for s in rules.values()) == [202, 402]  # not the maps 201 and 401
    assert all(series[n]["class"] == "derived" for n in (201, 401))
    assert all((r["datatype"], r["suffix"]) == ("perf", "asl") for r in starter["descriptions"])
    # the curator's values, from the sequence's documentation (../shared/dicom/philips_asl/README.md)
    by_number = {s["SeriesNumber"]: r for r, s in zip(starter["descriptions"], rules.values())}
    common = {"ArterialSpinLabelingType": "PCASL", "BackgroundSuppression": False, "M0Type": "Absent"}
    _fill(by_number[202], {**common, "PostLabelingDelay": 1.8, "TotalAcquiredPairs": 30,
                           "RepetitionTimePreparation": series[202]["sidecar"]["RepetitionTime"],
                           "SliceTiming": [i * 0.04 for i in range(16)]})
    _fill(by_number[402], {**common, "PostLabelingDelay": 2.0, "TotalAcquiredPairs": 8,
                           "RepetitionTimePreparation": series[402]["sidecar"]["RepetitionTime"]})
    assert "EDITME" not in json.dumps(starter)
    site = tmp_path / "site-edited.json"
    site.write_text(json.dumps(starter))
    # the check the README's workflow runs: PCASL makes LabelingDuration required, which the curator adds
    assert main(["inventory", str(export), "--json", "--no-validate", "--heuristic", str(site)]) == 0
    checked = {s["SeriesNumber"]: s for v in json.loads(capsys.readouterr()[0])["visits"] for s in v["series"]}
    assert [checked[n]["reason"].split(",")[0] for n in (202, 402)] == ["asl: BIDS requires LabelingDuration"] * 2
    for rule in starter["descriptions"]:
        rule["sidecar_changes"]["LabelingDuration"] = 1.8
    site.write_text(json.dumps(starter))
    bids = tmp_path / "bids"
    report = convert(ConvertOptions(export=export, bids=bids, heuristic=site))
    assert not report.failed
    assert_valid_bids(bids)
    outcomes = {o.series.series_number: (o.status, o.reason) for v in report.visits for o in v.not_placed}
    placed = sorted(p.name for p in bids.glob("sub-*/ses-*/perf/*_asl.nii.gz"))
    assert len(placed) == 2, "\n".join(f"{n}: {o}" for n, o in outcomes.items())
