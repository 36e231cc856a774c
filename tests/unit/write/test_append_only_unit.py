"""write.append_only on its own: which placed images stay, what is added and under which run- number."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from bids_factory.model import ExtractedVisit, Placement, Series, Visit, VisitFolder, VisitPlan
from bids_factory.write.append_only import ChangeKind, reconcile

FOLDER = "DICOM/2024/20240105/V1"


def _plan(tmp: Path, placements: list[tuple], sidecars: dict[int, dict] | None = None) -> VisitPlan:
    """A plan placing (SeriesNumber, stem, rule, image bytes[, datatype]) from one export folder (``sidecars``:
    SeriesNumber -> extra sidecar fields)."""
    folder = VisitFolder("DICOM", "20240105", tmp / "export" / FOLDER, FOLDER)
    visit = Visit("V1", (folder,), ())
    extracted = ExtractedVisit(visit, "P1", "", tmp, (), (), 0, (), "v1", "")
    made = []
    for number, stem, rule, data, *datatype in placements:
        image = tmp / "staged" / f"{number}-{stem}.nii.gz"
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(data)
        series = Series(image, None, (), number, f"series {number}", "", ("ORIGINAL",), (FOLDER,))
        sidecar = {"SeriesNumber": number} | (sidecars or {}).get(number, {})
        made.append(Placement(series, (datatype or ["anat"])[0], stem, sidecar, rule))
    return VisitPlan(extracted, tuple(made), (), "h", "0")


def _placed(session: Path, plan: VisitPlan) -> dict:
    """Place ``plan`` by hand as the writer would, and return its visit record."""
    record = {"files": [], "written": {}, "export_folders": [{"kind": "DICOM", "day": "20240105", "path": FOLDER}]}
    for p in plan.placements:
        (session / p.datatype).mkdir(parents=True, exist_ok=True)
        (session / p.session_path).write_bytes(p.series.nifti.read_bytes())
        sidecar = json.dumps(p.sidecar, indent=2) + "\n"
        (session / f"{p.datatype}/{p.stem}.json").write_text(sidecar)
        record["files"].append({"path": p.session_path, "rule": p.rule, "SeriesNumber": p.series.series_number,
                                "SeriesDescription": p.series.series_description, "source_folders": [FOLDER]})
        record["written"] |= {p.session_path: None,
                              f"{p.datatype}/{p.stem}.json": hashlib.sha256(sidecar.encode()).hexdigest()}
    return record


def test_a_renamed_rule_with_the_same_output_changes_nothing(tmp_path):
    session = tmp_path / "session"
    record = _placed(session, _plan(tmp_path / "a", [(5, "sub-P1_ses-V1_T1w", "t1w", b"image")]))
    result = reconcile(_plan(tmp_path / "b", [(5, "sub-P1_ses-V1_T1w", "t1w-renamed", b"image")]), record, session)
    assert result.pending == () and result.placements == ()
    assert [(e["path"], e["rule"]) for e in result.kept] == [("anat/sub-P1_ses-V1_T1w.nii.gz", "t1w-renamed")]


def test_other_bytes_under_the_same_name_wait_for_a_decision_and_a_new_series_is_numbered_after(tmp_path):
    session = tmp_path / "session"
    record = _placed(session, _plan(tmp_path / "a", [(5, "sub-P1_ses-V1_run-01_T1w", "t1w", b"one"),
                                                      (6, "sub-P1_ses-V1_run-02_T1w", "t1w", b"two")]))
    new = _plan(tmp_path / "b", [(5, "sub-P1_ses-V1_run-01_T1w", "t1w", b"ONE"),
                                 (6, "sub-P1_ses-V1_run-02_T1w", "t1w", b"two"),
                                 (7, "sub-P1_ses-V1_run-03_T1w", "t1w", b"three"),
                                 (8, "sub-P1_ses-V1_echo-1_T1w", "t1w", b"echo")])
    result = reconcile(new, record, session)
    assert [(c.path, c.kind, c.reason) for c in result.pending] == [
        ("anat/sub-P1_ses-V1_run-01_T1w.nii.gz", ChangeKind.REPLACED, "the reconverted image differs")]
    assert [p.session_path for p in result.placements] == ["anat/sub-P1_ses-V1_run-03_T1w.nii.gz",
                                                      "anat/sub-P1_ses-V1_echo-1_T1w.nii.gz"]
    applied = reconcile(new, record, session, apply=True)
    assert [c.path for c in applied.applied] == ["anat/sub-P1_ses-V1_run-01_T1w.nii.gz"]
    assert [p.session_path for p in applied.placements][0] == "anat/sub-P1_ses-V1_run-01_T1w.nii.gz"


def test_a_new_series_colliding_with_a_placed_name_gets_the_next_run_before_later_entities(tmp_path):
    session = tmp_path / "session"
    record = _placed(session, _plan(tmp_path / "a", [(5, "sub-P1_ses-V1_acq-x_echo-1_T1w", "t1w", b"one")]))
    result = reconcile(_plan(tmp_path / "b", [(9, "sub-P1_ses-V1_acq-x_echo-1_T1w", "t1w", b"nine")]), record,
                       session)
    assert [e["path"] for e in result.kept] == ["anat/sub-P1_ses-V1_acq-x_echo-1_T1w.nii.gz"]  # its series is gone
    assert [p.session_path for p in result.placements] == ["anat/sub-P1_ses-V1_acq-x_run-02_echo-1_T1w.nii.gz"]


def test_a_sidecar_that_would_change_names_its_fields(tmp_path):
    session = tmp_path / "session"
    record = _placed(session, _plan(tmp_path / "a", [(5, "sub-P1_ses-V1_T1w", "t1w", b"image")]))
    new = _plan(tmp_path / "b", [(5, "sub-P1_ses-V1_T1w", "t1w", b"image")])
    new = dataclasses.replace(new, placements=tuple(  # e.g. a bold that arrived later is now IntendedFor
        dataclasses.replace(p, sidecar=p.sidecar | {"IntendedFor": ["bids::x"]}) for p in new.placements))
    [change] = reconcile(new, record, session).pending
    assert (change.kind, change.reason) == (ChangeKind.REPLACED, "its sidecar differs in IntendedFor")


def test_an_export_folder_is_gone_only_when_it_left_the_export_whatever_the_date_policy(tmp_path):
    from bids_factory.dates import DatePolicy
    from bids_factory.write.append_only import folder_key

    session = tmp_path / "session"
    plan = _plan(tmp_path / "a", [(5, "sub-P1_ses-V1_T1w", "t1w", b"image")])
    record = _placed(session, plan)
    year = DatePolicy("year").mask_text
    record["export_folders"] = [{"kind": "DICOM", "day": "2024", "path": year(FOLDER), "key": folder_key(FOLDER)},
                                {"kind": "DICOM", "day": "2024", "path": "DICOM/2024/V1", "key": "0" * 16}]
    result = reconcile(plan, record, session, mask=year)
    assert [f["key"] for f in result.gone_folders] == ["0" * 16]  # the purged one, not the one written masked
    assert result.gone_sources == ["DICOM/2024/V1"] and result.gone_folders[0]["gone"] is True


def test_intended_for_names_the_final_files_of_kept_and_renumbered_images(tmp_path):
    """A bold placed alone, then a second bold: the plan numbers them run-01/run-02 and its field map is
    IntendedFor both; the placed bold keeps its name, so the field map's IntendedFor must name it."""
    bold, fmap = "sub-P1_ses-V1_task-a_bold", "sub-P1_ses-V1_phasediff"
    session = tmp_path / "session"
    intended = {9: {"IntendedFor": [f"bids::sub-P1/ses-V1/func/{bold}.nii.gz"]}}
    record = _placed(session, _plan(tmp_path / "a", [(7, bold, "bold", b"b7", "func"),
                                                      (9, fmap, "fmap", b"f9", "fmap")], intended))
    both = {9: {"IntendedFor": [f"bids::sub-P1/ses-V1/func/sub-P1_ses-V1_task-a_run-0{n}_bold.nii.gz" for n in (1, 2)]}}
    new = _plan(tmp_path / "b", [(7, "sub-P1_ses-V1_task-a_run-01_bold", "bold", b"b7", "func"),
                                 (8, "sub-P1_ses-V1_task-a_run-02_bold", "bold", b"b8", "func"),
                                 (9, fmap, "fmap", b"f9", "fmap")], both)
    result = reconcile(new, record, session)
    assert [e["path"] for e in result.kept] == [f"func/{bold}.nii.gz", f"fmap/{fmap}.nii.gz"]
    assert [p.session_path for p in result.placements] == ["func/sub-P1_ses-V1_task-a_run-02_bold.nii.gz"]
    [change] = result.pending
    assert (change.path, change.reason) == (f"fmap/{fmap}.nii.gz", "its sidecar differs in IntendedFor")
    applied = reconcile(new, record, session, apply=True)
    [fieldmap] = [p for p in applied.placements if p.datatype == "fmap"]
    assert fieldmap.session_path == f"fmap/{fmap}.nii.gz" and fieldmap.sidecar["IntendedFor"] == [
        f"bids::sub-P1/ses-V1/func/{bold}.nii.gz", "bids::sub-P1/ses-V1/func/sub-P1_ses-V1_task-a_run-02_bold.nii.gz"]
