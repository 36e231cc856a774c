"""What the writer records of a placed visit: scans.tsv rows that keep a curator's columns, and a visit record
in which a series whose placed image stays (a change waits for a decision) is placed, not "not placed"."""

from __future__ import annotations

from types import SimpleNamespace as NS

from bids_factory.model import VISIT_RECORD_VERSION
from bids_factory.write.provenance import scans_tsv, visit_record


def _series(number, description, folders=("DICOM/2024/20240311/V1/s003",)):
    return NS(series_number=number, series_description=description, source_folders=tuple(folders))


def _placement(path, number, description, rule="T1w", **kw):
    return NS(session_path=path, series=_series(number, description, **kw), rule=rule)


def test_scans_tsv_keeps_the_curators_columns_of_images_still_placed_and_drops_the_rows_of_others():
    existing = (["filename", "source_day", "quality"],
                [{"filename": "anat/sub-1_ses-1_T1w.nii.gz", "source_day": "old", "quality": "good"},
                 {"filename": "anat/sub-1_ses-1_FLAIR.nii.gz", "source_day": "old", "quality": "bad"},
                 {"filename": "dwi/sub-1_ses-1_dwi.nii.gz", "source_day": "old", "quality": "ok"}])
    placements = (_placement("anat/sub-1_ses-1_T1w.nii.gz", 3, "T1",
                             folders=("DICOM/2024/20240312/V1/s3", "DICOM/2024/20240311/V1/s3")),)
    kept = [{"path": "dwi/sub-1_ses-1_dwi.nii.gz", "source_folders": ["DICOM/2024/20240310/V1/s5"],
             "SeriesNumber": 5, "rule": "dwi"}]
    lines = [line.split("\t") for line in scans_tsv(placements, existing, kept).splitlines()]
    assert lines[0] == ["filename", "source_day", "quality", "source_folder", "series_number", "heuristic_rule"]
    assert lines[1:] == [
        ["anat/sub-1_ses-1_T1w.nii.gz", "20240311,20240312", "good", "DICOM/2024/20240312/V1/s3,DICOM/2024/20240311/V1/s3",
         "3", "T1w"],
        ["dwi/sub-1_ses-1_dwi.nii.gz", "20240310", "ok", "DICOM/2024/20240310/V1/s5", "5", "dwi"]]
    fresh = scans_tsv((_placement("anat/x.nii.gz", None, "T1", folders=("V1/s3",)),)).splitlines()
    assert fresh[1].split("\t") == ["anat/x.nii.gz", "n/a", "V1/s3", "n/a", "T1w"]  # no day folder, no number


def _plan(not_placed):
    visit = NS(scan_research_id="V1", folders=[NS(kind="DICOM", day="20240311", relpath="DICOM/2024/20240311/V1")])
    extracted = NS(visit=visit, converter_version="v1.0.20240202", non_dicom_files=[], converter_log="a\nb\n")
    return NS(extracted=extracted, subject_label="01", session_label="1", placements=(), not_placed=not_placed,
              heuristic_name="default", heuristic_sha256="abc", deidentification=NS(record=lambda: {"kept": []}))


def _outcome(number, description):
    return NS(series=_series(number, description), record=lambda: {"SeriesNumber": number,
                                                                    "SeriesDescription": description})


def test_a_series_whose_image_stays_while_a_change_waits_is_placed_not_not_placed():
    kept = [{"path": "anat/sub-01_ses-1_T1w.nii.gz", "SeriesNumber": 3, "SeriesDescription": "T1", "rule": "T1w"}]
    change = NS(path="anat/sub-01_ses-1_T1w.nii.gz", record=lambda: {"path": "anat/sub-01_ses-1_T1w.nii.gz"})
    result = NS(kept=kept, placements=(), pending=[change], gone_sources=["DICOM/2024/20240301/V1"],
                gone_folders=[{"kind": "DICOM", "day": "20240301", "path": "DICOM/2024/20240301/V1", "gone": True}])
    record = visit_record(_plan([_outcome(3, "T1"), _outcome(7, "localizer")]), result)
    assert record["not_placed"] == [{"SeriesNumber": 7, "SeriesDescription": "localizer"}]
    assert record["files"] == kept and record["pending_changes"] == [{"path": "anat/sub-01_ses-1_T1w.nii.gz"}]
    assert [f["path"] for f in record["export_folders"]] == ["DICOM/2024/20240311/V1", "DICOM/2024/20240301/V1"]
    assert (record["participant_id"], record["session_id"], record["record_version"]) == (
        "sub-01", "ses-1", VISIT_RECORD_VERSION)
    assert record["converter_log"] == ["a", "b"] and record["gone_sources"] == ["DICOM/2024/20240301/V1"]
    alone = visit_record(_plan([_outcome(3, "T1")]))  # no reconciliation: nothing waits, nothing is held
    assert alone["not_placed"] == [{"SeriesNumber": 3, "SeriesDescription": "T1"}] and alone["pending_changes"] == []
