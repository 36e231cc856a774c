"""``writer.report`` on its own: an image's pictures follow what the session keeps, and only the subject pages a run
changed (or that are missing, or were made otherwise) are computed again. Links to the pictures:
``test_visit_index``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace as Value

from bids_factory.write.atomic_files import write_text
from bids_factory.write.dataset_paths import REPORT_SUBJECT_PAGES, STATE_DIR, THUMBNAILS
from bids_factory.write.report_files import ReportFiles
from bids_factory.write.visit_index import VisitIndex
from bids_factory.write.visit_states import read_indexed

MADE_BY = {"bids_factory_version": "1", "dates": "keep"}


def _report(root: Path) -> ReportFiles:
    return ReportFiles(root, VisitIndex(root, read_indexed), lambda relpath, text: write_text(root / relpath, text),
                       lambda relpath, data: write_text(root / relpath, json.dumps(data)))


def test_pictures_follow_the_images_the_session_keeps_and_a_renumbered_run_keeps_its_own(tmp_path):
    folder = tmp_path / THUMBNAILS / "sub-A" / "ses-1" / "anat"
    folder.mkdir(parents=True)
    for stem in ("kept_T1w", "gone_T1w"):
        for suffix in (".png", ".jpg"):
            (folder / f"{stem}{suffix}").write_bytes(b"old")
    staged = Path("staging/run-1.nii.gz")
    plan = Value(placements=[Value(series=Value(nifti=staged), session_path="anat/run-1_bold.nii.gz")],
                 thumbnails={"anat/run-1_bold.nii.gz": Value(thumbnail=b"png", enlarged=b"jpg")})
    result = Value(kept=[{"path": "anat/kept_T1w.nii.gz"}],  # placed as run-2 (a run 1 was already there)
                   placements=[Value(series=Value(nifti=staged), session_path="anat/run-2_bold.nii.gz")])
    _report(tmp_path).write_thumbnails(plan, Path("sub-A") / "ses-1", result)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
        "kept_T1w.png": b"old", "kept_T1w.jpg": b"old", "run-2_bold.png": b"png", "run-2_bold.jpg": b"jpg"}


def test_only_the_subject_pages_a_run_changed_or_lost_are_computed_again(tmp_path):
    report = _report(tmp_path)
    subjects = {"sub-A", "sub-B", "sub-C"}
    assert report.stale_subject_pages(subjects, MADE_BY, set()) == subjects  # never made
    report.write_pages({"report.html": "index", **{f"report/{s}.html": s for s in subjects | {"sub-Old"}}},
                       subjects, MADE_BY)
    pages = tmp_path / REPORT_SUBJECT_PAGES
    assert sorted(p.name for p in pages.iterdir()) == ["sub-A.html", "sub-B.html", "sub-C.html"]  # sub-Old left
    assert (tmp_path / STATE_DIR / "report.html").read_text() == "index"
    assert report.stale_subject_pages(subjects, MADE_BY, set()) == set()
    (pages / "sub-C.html").unlink()
    assert report.stale_subject_pages(subjects, MADE_BY, {"sub-A", "sub-Gone"}) == {"sub-A", "sub-C"}
    assert report.stale_subject_pages(subjects, MADE_BY | {"dates": "drop"}, set()) == subjects
