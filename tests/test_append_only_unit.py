"""write.append_only on its own: which placed images stay, what is added and under which run- number."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from bids_factory.model import ExtractedVisit, Placement, Series, Visit, VisitFolder, VisitPlan
from bids_factory.write.append_only import ChangeKind, reconcile

FOLDER = "DICOM/2024/20240105/V1"


def _plan(tmp: Path, placements: list[tuple[int, str, str, bytes]]) -> VisitPlan:
    """A plan placing (SeriesNumber, stem under anat/, rule, image bytes) from one export folder."""
    folder = VisitFolder("DICOM", "20240105", tmp / "export" / FOLDER, FOLDER)
    visit = Visit("V1", (folder,), ())
    extracted = ExtractedVisit(visit, "P1", "", tmp, (), (), 0, (), "v1", "")
    made = []
    for number, stem, rule, data in placements:
        image = tmp / "staged" / f"{number}-{stem}.nii.gz"
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(data)
        series = Series(image, None, (), number, f"series {number}", "", ("ORIGINAL",), (FOLDER,))
        made.append(Placement(series, "anat", stem, {"SeriesNumber": number}, rule))
    return VisitPlan(extracted, tuple(made), (), "h", "0")


def _placed(session: Path, plan: VisitPlan) -> dict:
    """Place ``plan`` by hand as the writer would, and return its visit record."""
    record = {"files": [], "written": {}, "export_folders": [{"kind": "DICOM", "day": "20240105", "path": FOLDER}]}
    for p in plan.placements:
        (session / "anat").mkdir(parents=True, exist_ok=True)
        (session / p.relpath).write_bytes(p.series.nifti.read_bytes())
        sidecar = json.dumps(p.sidecar, indent=2) + "\n"
        (session / f"anat/{p.stem}.json").write_text(sidecar)
        record["files"].append({"path": p.relpath, "rule": p.rule, "SeriesNumber": p.series.series_number,
                                "SeriesDescription": p.series.series_description, "source_folders": [FOLDER]})
        record["written"] |= {p.relpath: None, f"anat/{p.stem}.json": hashlib.sha256(sidecar.encode()).hexdigest()}
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
    assert [p.relpath for p in result.placements] == ["anat/sub-P1_ses-V1_run-03_T1w.nii.gz",
                                                      "anat/sub-P1_ses-V1_echo-1_T1w.nii.gz"]
    applied = reconcile(new, record, session, apply=True)
    assert [c.path for c in applied.applied] == ["anat/sub-P1_ses-V1_run-01_T1w.nii.gz"]
    assert [p.relpath for p in applied.placements][0] == "anat/sub-P1_ses-V1_run-01_T1w.nii.gz"


def test_a_new_series_colliding_with_a_placed_name_gets_the_next_run_before_later_entities(tmp_path):
    session = tmp_path / "session"
    record = _placed(session, _plan(tmp_path / "a", [(5, "sub-P1_ses-V1_acq-x_echo-1_T1w", "t1w", b"one")]))
    result = reconcile(_plan(tmp_path / "b", [(9, "sub-P1_ses-V1_acq-x_echo-1_T1w", "t1w", b"nine")]), record,
                       session)
    assert [e["path"] for e in result.kept] == ["anat/sub-P1_ses-V1_acq-x_echo-1_T1w.nii.gz"]  # its series is gone
    assert [p.relpath for p in result.placements] == ["anat/sub-P1_ses-V1_acq-x_run-02_echo-1_T1w.nii.gz"]


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
