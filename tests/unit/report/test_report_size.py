"""The report's pages do not grow with the dataset: at 4 000 sessions the index page is under 1 MB and a
subject page is the same whatever the number of other subjects (synthetic records, no conversion)."""

from __future__ import annotations

from bids_factory.report.page import report_pages

FIRST_IMPORT = "2026-12-01T06:00:00+00:00"


def _record(n: int) -> dict:
    subject, session = f"sub-{n // 2:05d}", f"ses-{n % 2 + 1}"
    day = f"{20240101 + n % 28}"
    folder = f"DICOM/2024/{day}/V{n:05d}"
    scout = {"status": "unmatched", "group": "nothing", "SeriesNumber": 1, "SeriesDescription": "AAHead_Scout",
             "ProtocolName": "AAHead_Scout", "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"],
             "source_folders": [folder], "reason": "localizer/scout (name 'AAHead_Scout'): not placed"}
    held = {"status": "held-back", "group": "supply", "SeriesNumber": 9, "SeriesDescription": "T1_MPRAGE_lowres",
            "ProtocolName": "T1_MPRAGE_lowres", "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"],
            "source_folders": [folder],
            "reason": f"voxel size 2 x 2 x {2 + n % 3} mm is larger than the T1w schema's limit of 1.5 mm"}
    files = [{"path": f"anat/{subject}_{session}_run-{k}_T1w.nii.gz", "rule": "t1w", "SeriesNumber": k,
              "SeriesDescription": f"T1_MPRAGE_{k}", "source_folders": [folder]} for k in range(1, 11)]
    return {"scan_research_id": f"V{n:05d}", "participant_id": subject, "session_id": session,
            "export_folders": [{"kind": "DICOM", "day": day, "path": folder}], "converted_at": FIRST_IMPORT,
            "bids_factory_version": "0.1.0", "converter": {"name": "dcm2niix", "version": "v1.0.20250506"},
            "heuristic": {"name": "default.json", "sha256": "ab" * 32}, "files": files,
            "not_placed": [scout, scout, held], "record_version": 2}


def _state(sessions: int) -> tuple[list[dict], dict, list[dict], dict[str, str]]:
    records = [_record(n) for n in range(sessions)]
    run = {"finished_at": FIRST_IMPORT, "bids_factory_version": "0.1.0", "failed": False,  # the first import
           "visits": [{"scan_research_id": r["scan_research_id"], "status": "placed",
                       "participant_id": r["participant_id"], "session_id": r["session_id"], "placed": 10,
                       "not_placed": r["not_placed"]} for r in records],
           "problems": [{"path": f"DICOM/2024/20240101/V{n:05d}/bad.dcm", "reason": "not a DICOM file: ignored",
                         "fatal": False} for n in range(sessions)],
           "linkage": {}, "validator": {"errors": 0, "warnings": 3, "output": None, "issues": []}}
    history = [{"finished_at": FIRST_IMPORT, "failed": False, "visits placed": 4, "series placed": 40}] * 2000
    thumbnails = {f"{r['participant_id']}/{r['session_id']}/{f['path']}":
                  f"thumbnails/{r['participant_id']}/{r['session_id']}/{f['path'][:-7]}.png"
                  for r in records for f in r["files"]}
    return records, run, history, thumbnails


def test_the_index_page_of_4000_sessions_is_under_1_mb_and_subject_pages_do_not_grow() -> None:
    records, run, history, thumbnails = _state(4000)
    pages = report_pages(records, run, thumbnails, history=history)
    index = pages["report.html"].encode()
    assert len(pages) == 1 + 2000  # the index and one page per subject
    assert len(index) < 1_000_000, len(index)
    assert index.count(b'href="report/sub-') >= 2000  # every subject is linked
    few, _, _, few_thumbnails = _state(10)
    small = report_pages(few, None, few_thumbnails)
    assert small["report/sub-00001.html"] == pages["report/sub-00001.html"]  # the same page at 10 and 4 000
