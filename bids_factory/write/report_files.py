"""The report's files in the dataset: each image's pictures, the pages (``writer.report`` of
:class:`bids_factory.write.dataset_writer.DatasetWriter`); a run computes only the subject pages its visits changed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from bids_factory.model import VISIT_RECORD_VERSION as RECORD_VERSION, VisitPlan, VisitRecord, readable
from bids_factory.write.append_only import Reconciliation
from bids_factory.write.atomic_files import tmp_folder, write_bytes as _write_bytes
from bids_factory.write.dataset_paths import (PICTURE_SUFFIXES, REPORT_PAGE, REPORT_PAGES_KEY, REPORT_SUBJECT_PAGES,
                                              STATE_DIR, THUMBNAILS, VISIT_RECORDS)
from bids_factory.write.visit_index import VisitIndex


class ReportFiles:
    """Pictures and pages of the report of the dataset at ``root``: the pages written with ``write_text`` /
    ``write_json`` (relpath, text or data), the visits found in the visit ``index``."""

    def __init__(self, root: Path, index: VisitIndex, write_text: Callable[[Path | str, str], None],
                 write_json: Callable[[Path | str, object], None]):
        self.root = root
        self.index = index
        self.write_text = write_text
        self.write_json = write_json

    def write_thumbnails(self, plan: VisitPlan, session: Path, result: Reconciliation) -> None:
        """The report's pictures of a session's images (those of the placed images that stay are kept)."""
        folder = self.root / THUMBNAILS / session
        staying = {e["path"].removesuffix(".nii.gz") for e in result.kept}
        for picture in folder.rglob("*.*"):  # nothing when the folder does not exist
            if picture.suffix in PICTURE_SUFFIXES and picture.relative_to(folder).with_suffix("").as_posix() not in staying:
                picture.unlink()
        planned = {p.series.nifti: p.session_path for p in plan.placements}  # a renumbered run keeps its picture
        thumbnails = {p.session_path: plan.thumbnails[planned[p.series.nifti]] for p in result.placements
                      if planned.get(p.series.nifti) in plan.thumbnails}
        for relpath, pictures in thumbnails.items():
            for suffix, data in zip(PICTURE_SUFFIXES, (pictures.thumbnail, pictures.enlarged)):
                _write_bytes(folder / relpath.replace(".nii.gz", suffix), data, tmp_folder(self.root))

    def thumbnail_links(self, suffix: str = ".png", *, sessions=None) -> dict[str, str]:
        """Dataset path of an image -> its thumbnail (.png) or enlarged picture (.jpg), relative to the report
        page; ``sessions``: only those (``sub-<p>/ses-<v>`` folders, e.g. of one subject's page), else all."""
        base = THUMBNAILS.relative_to(REPORT_PAGE.parent).as_posix()
        folders = [self.root / THUMBNAILS / s for s in sessions] if sessions is not None else [self.root / THUMBNAILS]
        links = {}
        for folder in folders:
            for here, _, names in os.walk(folder):
                inside = os.path.relpath(here, self.root / THUMBNAILS).replace(os.sep, "/")
                for name in names:
                    if name.endswith(suffix):
                        links[f"{inside}/{name.removesuffix(suffix)}.nii.gz"] = f"{base}/{inside}/{name}"
        return dict(sorted(links.items()))

    def write_pages(self, pages: dict[str, str], subjects: set[str], made_by: dict) -> None:
        """The report's pages (relative to ``code/bids-factory/``): each written only when its bytes change; the
        page of a subject no longer among ``subjects`` (moved, its visits taken out) is removed. ``made_by``:
        what made the subject pages (:meth:`stale_subject_pages` compares it)."""
        for relpath, text in pages.items():
            self.write_text(STATE_DIR / relpath, text)
        for page in (self.root / REPORT_SUBJECT_PAGES).glob("*.html"):
            if page.name.removesuffix(".html") not in subjects:
                page.unlink()
        self.write_json(REPORT_PAGES_KEY, made_by)

    def stale_subject_pages(self, subjects: set[str], made_by: dict, written: set[str]) -> set[str]:
        """The subjects whose report page is computed again: a visit record of theirs written or removed by this
        run (``written``), their page missing, or all of them when the pages were made otherwise (``made_by``: another
        bids-factory, another date policy). Every other page stays as it is: a run costs its day."""
        key = self.root / REPORT_PAGES_KEY
        if (json.loads(key.read_text()) if key.exists() else None) != made_by:
            return set(subjects)
        folder = self.root / REPORT_SUBJECT_PAGES
        present = {name.removesuffix(".html") for name in os.listdir(folder)} if folder.is_dir() else set()
        return (written | (subjects - present)) & subjects

    def subject_records(self, subjects: set[str]) -> dict[str, list[VisitRecord]]:
        """The visit records of these subjects (found in the index), read from their files."""
        found: dict[str, list[VisitRecord]] = {}
        for visit in self.index.visits():
            if visit["participant_id"] in subjects:
                path = self.root / VISIT_RECORDS / visit["name"]
                found.setdefault(visit["participant_id"], []).append(
                    readable(json.loads(path.read_text()), "record_version", RECORD_VERSION, path))
        return found
