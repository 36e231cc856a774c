"""A subject's report page: its sessions, placed images with their pictures, what waits for a decision, and
series not placed by what to do (identical rows once, with their count); the same records give the same bytes."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from bids_factory.report.subject_page import not_placed_table, render_subject, subject_page_name

NS = "{http://www.w3.org/1999/xhtml}"


def _record(session="ses-1"):
    return {"participant_id": "sub-01", "session_id": session, "scan_research_id": "V<1>",
            "converted_at": "2024-03-11T09:00:00+00:00", "bids_factory_version": "1.0",
            "converter": {"name": "dcm2niix", "version": "v1.0"}, "heuristic": {"name": "default", "sha256": "f" * 64},
            "export_folders": [{"kind": "DICOM", "day": "20240311", "path": "DICOM/2024/20240311/V1"},
                               {"kind": "DICOM", "day": "20240301", "path": "DICOM/2024/20240301/V1", "gone": True}],
            "files": [{"path": "anat/sub-01_ses-1_T1w.nii.gz", "rule": "T1w", "SeriesNumber": 3,
                       "SeriesDescription": "T1 <MPRAGE> & co", "source_folders": ["DICOM/2024/20240311/V1/s3"]}],
            "pending_changes": [{"path": "anat/sub-01_ses-1_T1w.nii.gz", "kind": "changed",
                                 "reason": "converted again on 2024-04-01", "new_path": None}],
            "not_placed": [_outcome(1, "localizer", "unmatched", "no rule", "decide"),
                           _outcome(1, "localizer", "unmatched", "no rule", "decide"),  # the same row again
                           _outcome(9, "asl", "held-back", "M0Type missing", "supply"),
                           _outcome(None, "PhoenixZIPReport", "not-converted", "no image", "nothing")]}


def _outcome(number, description, status, reason, group):
    return {"SeriesNumber": number, "SeriesDescription": description, "status": status, "reason": reason,
            "group": group}


def _page(records, mask=lambda text: text.replace("2024-", "Y-")):
    page = render_subject("sub-01", records, {"sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz": "thumbnails/a.png"},
                          {"sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz": "thumbnails/a-large.png"}, mask)
    return page, ET.fromstring(page.split("\n", 1)[1])


def test_a_subject_page_is_well_formed_escaped_and_masked_where_a_run_wrote_a_date():
    page, root = _page([_record(), _record("ses-2")])
    assert subject_page_name("sub-01") == "report/sub-01.html"
    assert root.find(f".//{NS}h1").text.startswith("sub-01") and "2 sessions" in page
    assert [a.get("href") for a in root.iter(f"{NS}a")][:3] == ["../report.html", "#ses-1", "#ses-2"]
    assert "T1 &lt;MPRAGE&gt; &amp; co" in page and "V&lt;1&gt;" in page
    assert "converted Y-03-11T09:00:00" in page and "on Y-04-01" in page and "(gone from the export)" in page
    image = root.find(f".//{NS}img[@class='thumb']")
    assert image.get("src") == "../thumbnails/a.png" and image.get("alt") == "sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz"
    assert root.find(f".//{NS}a[@class='zoom']").get("href") == "../thumbnails/a-large.png"
    assert "--apply-changes V&lt;1&gt;" in page
    assert _page([_record(), _record("ses-2")])[0] == page  # no run date, no count of the dataset: same bytes


def test_series_not_placed_are_grouped_by_what_to_do_and_identical_rows_counted_once():
    root = ET.fromstring(not_placed_table(_record()["not_placed"]))
    rows = [[("".join(td.itertext())) for td in tr] for tr in root.find("tbody")]
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        ("to decide", "unmatched", "2", "1"), ("to supply", "held-back", "1", "9"),
        ("nothing to do", "not-converted", "1", "")]
    assert [tr.get("class") for tr in root.find("tbody")] == ["unmatched", "held-back", "not-converted"]


def test_a_session_without_images_or_decisions_says_so_and_has_no_empty_tables():
    record = _record() | {"files": [], "pending_changes": [], "not_placed": []}
    page, root = _page([record])
    assert "<p>none</p>" in page and "Changes waiting" not in page and "Series not placed" not in page
    assert root.find(f".//{NS}img[@class='thumb']") is None
