"""``bids-factory inventory``: every series and what a convert would do with it, writing nothing; a site's
heuristic written from its output alone (the real GE session)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bids_factory.cli.main import main
from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import SHARED_DICOM, add_series, assert_valid_bids, fingerprint

pytestmark = pytest.mark.realdata

GE = SHARED_DICOM / "ge_session" / "In"


@pytest.fixture(scope="module")
def ge_export(tmp_path_factory) -> Path:
    """The GE session as two visits: T1w + DWI (PatientID 'dicom') and the fMRI (another PatientID)."""
    root = tmp_path_factory.mktemp("ge") / "export"
    add_series(root, "20240105", "GEV1", GE / "05_3D_Ax_T1_MP_RAGE_R22")
    add_series(root, "20240105", "GEV1", GE / "01_Ax_DWI_TENSOR_R2")
    add_series(root, "20240105", "GEV2", GE / "SliceTiming" / "14_Ax_fMRI_HB3_48sl_int_asc")
    return root


@pytest.fixture(scope="module")
def new_site(ge_export: Path, tmp_path_factory) -> dict:
    """A site's first inventory: its heuristic does not know any series yet (``--json --write-heuristic``)."""
    base = tmp_path_factory.mktemp("site")
    first = base / "first.json"
    first.write_text(json.dumps({"bids_factory": {"fallback_to_default": False}, "descriptions": [
        {"datatype": "anat", "suffix": "T1w", "criteria": {"SeriesDescription": "nothing of this site"}}]}))
    tmp = base / "tmp"
    tmp.mkdir()
    before = fingerprint(ge_export)
    return {"base": base, "first": first, "tmp": tmp, "before": before}


def _run_inventory(capsys, monkeypatch, tmp: Path, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("TMPDIR", str(tmp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    code = main(["inventory", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_ge_heuristic_written_from_inventory_output_alone(ge_export, new_site, capsys, monkeypatch):
    base, starter_path = new_site["base"], new_site["base"] / "site.json"
    code, out, err = _run_inventory(capsys, monkeypatch, new_site["tmp"], str(ge_export), "--heuristic",
                                    str(new_site["first"]), "--json", "--write-heuristic", str(starter_path))
    assert code == 0, err
    inventory = json.loads(out)
    # inventory wrote nothing: not in the export, no temporary folder left, only the heuristic asked for
    assert fingerprint(ge_export) == new_site["before"]
    assert list(new_site["tmp"].iterdir()) == []
    assert sorted(p.name for p in base.iterdir()) == ["first.json", "site.json", "tmp"]
    series = [s for v in inventory["visits"] for s in v["series"]]
    # no rule of the site matches any series yet (the fMRI is also held back: its name gives no task)
    assert sorted((s["SeriesNumber"], s["outcome"], s["rule"]) for s in series) == [
        (1, "unmatched", None), (5, "unmatched", None), (14, "held-back", None)]
    # the site edits the starter using only what the inventory printed
    by_rule = {}
    for s in series:
        if ".bval" in s["files"]:
            by_rule[s["SeriesDescription"]] = ("dwi", "dwi", None)
        elif len(s["dimensions"]) == 4:
            by_rule[s["SeriesDescription"]] = ("func", "bold", "rest")
        elif s["sidecar"].get("MRAcquisitionType") == "3D" and min(s["voxel_size"]) < 1.5:
            by_rule[s["SeriesDescription"]] = ("anat", "T1w", None)
    starter = json.loads(starter_path.read_text())
    # what the classification knows is pre-filled; what only the site knows (the bold's task) is a placeholder
    assert sorted((d["datatype"], d["suffix"]) for d in starter["descriptions"]) == [
        ("anat", "T1w"), ("dwi", "dwi"), ("func", "bold")]
    with pytest.raises(Exception, match="still hold the placeholder 'EDITME'"):  # an unedited starter is refused
        convert(ConvertOptions(export=ge_export, bids=base / "refused", heuristic=starter_path))
    for rule in starter["descriptions"]:
        datatype, suffix, entities = by_rule[rule["criteria"]["SeriesDescription"]]
        rule.update(datatype=datatype, suffix=suffix)
        if entities:  # a task: the entity names the file, TaskName (REQUIRED) is what the site knows
            rule["custom_entities"], rule["sidecar_changes"] = f"task-{entities}", {"TaskName": entities}
    site = base / "site-edited.json"
    site.write_text(json.dumps(starter))

    code, out, err = _run_inventory(capsys, monkeypatch, new_site["tmp"], str(ge_export), "--heuristic",
                                    str(site), "--json")
    predicted = {s["SeriesNumber"]: s for v in json.loads(out)["visits"] for s in v["series"]}
    bids = base / "bids"
    report = convert(ConvertOptions(export=ge_export, bids=bids, heuristic=site))
    assert not report.failed
    assert_valid_bids(bids)
    placed = sorted(str(p.relative_to(bids)) for p in bids.glob("sub-*/ses-*/*/*.nii.gz"))
    assert "sub-dicom/ses-GEV1/anat/sub-dicom_ses-GEV1_T1w.nii.gz" in placed
    assert "sub-PH202010141/ses-GEV2/func/sub-PH202010141_ses-GEV2_task-rest_bold.nii.gz" in placed
    # what inventory predicted is what convert did
    assert sorted(s["bids_path"] for s in predicted.values() if s["outcome"] == "placed") == placed
    outcomes = {o.series.series_number: (o.status, o.reason) for v in report.visits for o in v.not_placed}
    assert {n: (s["outcome"], s["reason"]) for n, s in predicted.items() if s["outcome"] != "placed"} == outcomes


def test_inventory_text_names_path_dimensions_and_held_back_reason(ge_export, capsys, monkeypatch, tmp_path):
    code, out, err = _run_inventory(capsys, monkeypatch, tmp_path, str(ge_export), "--visit", "GEV1")
    assert code == 0, err
    lines = out.splitlines()
    t1 = next(line for line in lines if "3D Ax T1 MP-RAGE_R22" in line)
    assert "256x256x130" in t1 and "-> sub-dicom/ses-GEV1/anat/sub-dicom_ses-GEV1_T1w.nii.gz" in t1
    dwi = next(line for line in lines if "Ax DWI TENSOR R2" in line)
    assert "held-back: image of 256 x 256 x 2 x 7 voxels has 2 slices, fewer than the dwi schema's minimum of 8" in dwi
    assert "ORIGINAL/PRIMARY/OTHER/MAGNITUDE" in dwi
    assert not any("GEV2" in line for line in lines)  # --visit: only the named visit
    assert lines[-1] == "series: 1 held-back, 1 placed"


def test_write_heuristic_never_overwrites(ge_export, capsys, monkeypatch, tmp_path):
    existing = tmp_path / "site.json"
    existing.write_text("{}")
    code, out, err = _run_inventory(capsys, monkeypatch, tmp_path, str(ge_export), "--visit", "GEV2",
                                    "--no-validate", "--write-heuristic", str(existing))
    assert code == 1 and "exists already" in err and existing.read_text() == "{}"
    assert "Write the starter to a new file (--write-heuristic site-new.json) and copy its rules into site.json" in err
