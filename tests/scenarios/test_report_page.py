"""The visual report (report_page.render_report) and its thumbnails (thumbnails.thumbnail_png), checked on
records and images written by the real pipeline from the synthetic demo export."""

from __future__ import annotations

import copy
import json
import re
import shutil
import io
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_factory.run.pipeline import ConvertOptions, convert
from bids_factory.report.summary import dedupe_reason
from bids_factory.report.page import render_report, report_pages
from bids_factory.checks.sidecar_schemas import default_folder
from bids_factory.report.thumbnails import thumbnail_png

STATE = Path("code") / "bids-factory"
VOID = {"br", "img", "meta", "link", "hr", "input", "col", "wbr", "source", "area", "base", "embed", "param",
        "track"}


def _records(bids: Path) -> tuple[list[dict], dict]:
    visits = [json.loads(p.read_text()) for p in sorted((bids / STATE / "visits").glob("*.json"))]
    run = json.loads(sorted((bids / STATE / "runs").glob("run-*.json"))[-1].read_text())
    return visits, run


@pytest.fixture(scope="module")
def export(tmp_path_factory, new_demo) -> Path:
    return new_demo(tmp_path_factory.mktemp("report") / "export").root


@pytest.fixture(scope="module")
def demo(export: Path, tmp_path_factory) -> Path:
    """The demo dataset, converted with the shipped heuristic and schemas (validator on)."""
    bids = tmp_path_factory.mktemp("report-bids") / "bids"
    assert not convert(ConvertOptions(export=export, bids=bids)).failed
    return bids


@pytest.fixture(scope="module")
def held_back(export: Path, tmp_path_factory) -> Path:
    """One demo visit converted with a FLAIR schema allowing voxels of at most 4 mm: its 5 mm FLAIR is held back."""
    base = tmp_path_factory.mktemp("report-held")
    schemas = base / "sidecar"
    shutil.copytree(default_folder(), schemas)
    flair = json.loads((schemas / "FLAIR.schema.json").read_text())
    flair["properties"]["VoxelSize"]["items"]["maximum"] = 4
    (schemas / "FLAIR.schema.json").write_text(json.dumps(flair))
    bids = base / "bids"
    convert(ConvertOptions(export=export, bids=bids, schemas=schemas, validate=False,
                           visits=frozenset({"V0002-A"})))
    return bids


class Page(HTMLParser):
    """Tables of the page as rows of cell texts, keyed by (the id of the heading above, table class); img
    sources per row;
    tags left open or closed without being opened."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tables: dict[tuple[str, str], list[list[str]]] = {}
        self.images: dict[tuple[str, str], list[str]] = {}  # (session, file cell) -> img src
        self.anchor, self.table, self.row, self.cell, self.row_imgs = "", None, None, None, []
        self.previous_row: list[str] = []
        self.feed(text)
        self.close()
        self.errors += [f"unclosed <{t}>" for t in self.stack]

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in VOID:
            self.stack.append(tag)
        if tag in ("h2", "h3") and attrs.get("id"):
            self.anchor = attrs["id"]
        elif tag == "h2":
            self.anchor = ""
        elif tag == "table":
            self.table = self.tables.setdefault((self.anchor, attrs.get("class") or ""), [])
        elif tag == "tr":
            self.row, self.row_imgs = [], []
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "img":
            self.row_imgs.append(attrs.get("src"))
        elif tag == "br" and self.cell is not None:
            self.cell.append("\n")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()
        if tag in ("td", "th") and self.row is not None:
            self.row.append("".join(self.cell))
            self.cell = None
        elif tag == "tr" and self.table is not None:
            self.table.append(self.row)
            if self.row_imgs:  # a thumbnail row belongs to the image named in the row above it
                self.images[(self.anchor, self.previous_row[0])] = self.row_imgs
            self.previous_row = self.row
        elif tag == "table":
            self.table = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def _subject(records: list[dict], run: dict | None, record: dict, thumbnails: dict | None = None,
             enlarged: dict | None = None) -> tuple[str, Page]:
    """The subject page of ``record``'s subject (text, parsed)."""
    text = report_pages(records, run, thumbnails or {}, enlarged)[f"report/{record['participant_id']}.html"]
    return text, Page(text)


def _totals(page: Page) -> dict[str, str]:
    return {row[0]: row[1] for row in page.tables[("dataset", "totals")][1:]}


# -- the report --------------------------------------------------------------------------------------

def test_every_placed_image_and_not_placed_series_is_listed_on_its_subject_page(demo: Path) -> None:
    visits, run = _records(demo)
    assert len(visits) == 3
    for record in visits:
        _, page = _subject(visits, run, record)
        placed = [row for row in page.tables[(record["session_id"], "placed")][1:] if len(row) > 1]
        expected = [[f["path"], f["rule"], str(f["SeriesNumber"]), f["SeriesDescription"],
                     "\n".join(f["source_folders"])] for f in record["files"]]
        assert sorted(placed) == sorted(expected) and len(expected) == 3
        not_placed = page.tables[(record["session_id"], "not-placed")][1:]
        series = Counter((o["status"], o["reason"], str(o["SeriesNumber"]), o["SeriesDescription"], o["ProtocolName"],
                          "/".join(o["ImageType"]), "\n".join(o["source_folders"])) for o in record["not_placed"])
        expected = [["nothing to do", key[0], str(n), *key[1:]] for key, n in series.items()]
        assert sorted(not_placed) == sorted(expected) and sum(series.values()) == 3
        assert len(not_placed) == 1  # the scout dcm2niix splits in 3 images: one row, count 3


def test_the_index_links_one_page_per_subject_and_every_page_link_resolves(demo: Path, tmp_path: Path) -> None:
    visits, run = _records(demo)
    state = tmp_path / "state"
    shutil.copytree(demo / STATE, state)
    pages = report_pages(visits, run, {})
    assert sorted(pages) == ["report.html", "report/sub-DEMO001.html", "report/sub-DEMO002.html"]
    for name, text in pages.items():
        (state / name).parent.mkdir(parents=True, exist_ok=True)
        (state / name).write_text(text)
    for name, text in pages.items():
        for link in re.findall(r'href="([^"#]+)', text):
            assert (state / name).parent.joinpath(link).resolve().is_file(), (name, link)
    index = Page(pages["report.html"])
    assert [r[0] for r in index.tables[("todo-nothing", "still-not-placed nothing")][1:]] == ["unmatched"] * 1
    assert "report/sub-DEMO001.html#ses-V0001A" in pages["report.html"]  # a visit links to its session


def test_totals_and_last_run_summary(demo: Path) -> None:
    visits, run = _records(demo)
    text = render_report(visits, run, {})
    page = Page(text)
    assert _totals(page) == {"subjects": "2", "sessions": "3", "images placed": "9", "series held back": "0",
                             "series unmatched": "9", "series rejected": "0", "series without image": "0"}
    todo = {row[0]: row[1] for row in page.tables[("dataset", "totals todo")][1:]}
    assert todo == {"to decide": "0", "to supply": "0", "export to fix": "0", "nothing to do": "9"}
    assert run["finished_at"] in text and "3 placed" in text
    assert sorted(r[0] for r in page.tables[("last-run", "run-visits")][1:]) == ["V0001A", "V0001B", "V0002-A"]
    problems = page.tables[("last-run", "problems")]
    for problem in run["problems"]:
        assert any(row[0] == ("export to fix" if problem["fatal"] else "note") and problem["path"] in row[2].split("\n")
                   and row[3] == problem["reason"] for row in problems)
    assert run["linkage"]["ehr_without_images"] == ["sub-DEMO003"]
    assert "EHR patients without images (1): sub-DEMO003" in text
    validator = run["validator"]
    assert f"{validator['errors']} errors</span>, {validator['warnings']} warnings" in text


def test_held_back_series_shows_its_reason_in_plain_words_under_what_to_supply(held_back: Path) -> None:
    visits, run = _records(held_back)
    (record,) = visits
    (held,) = [o for o in record["not_placed"] if o["status"] == "held-back"]
    assert held["group"] == "supply"
    assert held["reason"].startswith("voxel size 0.9 x 0.9 x 5 mm is larger than the FLAIR schema's limit of 4 mm")
    assert "sidecar_changes" in held["reason"] and "VoxelSize" not in held["reason"]
    _, page = _subject(visits, run, record)
    rows = page.tables[(record["session_id"], "not-placed")]
    assert ["to supply", "held-back", "1", held["reason"], str(held["SeriesNumber"]), "T2_FLAIR_AX"] in [
        r[:6] for r in rows]
    index = Page(render_report(visits, run, {}))
    assert _totals(index)["series held back"] == "1"
    assert [r[2] for r in index.tables[("todo-supply", "still-not-placed supply")][1:]] == ["T2_FLAIR_AX"]
    assert all(f["SeriesDescription"] != "T2_FLAIR_AX" for f in record["files"])


def test_a_record_without_groups_gets_them_derived(demo: Path) -> None:
    """A visit record written before outcomes carried a group: read as the same groups."""
    visits, run = _records(demo)
    old = copy.deepcopy(visits)
    for record in old:
        for outcome in record["not_placed"]:
            del outcome["group"]
    assert render_report(old, run, {}) == render_report(visits, run, {})
    assert report_pages(old, run, {}) == report_pages(visits, run, {})


def test_visit_without_session_lists_its_series_from_the_run_record(demo: Path) -> None:
    visits, run = _records(demo)
    run = copy.deepcopy(run)
    lost = {"status": "not-converted", "reason": "dcm2niix wrote no image for this series", "SeriesNumber": 99,
            "SeriesDescription": "PhoenixZIPReport", "ProtocolName": "", "ImageType": [], "source_folders": ["x"]}
    run["visits"].append({"scan_research_id": "V0009", "status": "nothing-to-place", "participant_id": "sub-DEMO009",
                          "session_id": "ses-V0009", "placed": 0, "not_placed": [lost]})
    text = render_report(visits, run, {})
    page = Page(text)
    rows = [r for (anchor, cls), table in page.tables.items() if cls == "not-placed" for r in table]
    assert ["nothing to do", "not-converted", "1", lost["reason"], "99", "PhoenixZIPReport"] in [r[:6] for r in rows]
    assert 'href="report/sub-DEMO009.html"' not in text  # no page for a subject with no session


def test_thumbnail_and_enlarged_links_only_for_given_images(demo: Path) -> None:
    visits, run = _records(demo)
    record = visits[0]
    image = next(f["path"] for f in record["files"] if f["path"].endswith("_T1w.nii.gz"))
    key = f"{record['participant_id']}/{record['session_id']}/{image}"
    src = f"thumbnails/{record['participant_id']}/{record['session_id']}/x&y.png"
    text, page = _subject(visits, run, record, {key: src}, {key: src.replace(".png", ".jpg")})
    assert page.images == {(record["session_id"], image): ["../" + src]}
    assert 'src="../thumbnails/' in text and "x&amp;y.png" in text
    assert 'href="../thumbnails/sub-DEMO001/ses-V0001A/x&amp;y.jpg"' in text  # the click opens the larger picture


def test_pages_are_well_formed(demo: Path) -> None:
    visits, run = _records(demo)
    pages = report_pages(visits, run, {f"{r['participant_id']}/{r['session_id']}/{f['path']}": "t.png"
                                       for r in visits for f in r["files"]})
    for text in pages.values():
        assert Page(text).errors == []
        root = ET.fromstring(text)  # also well-formed XML
        assert root.tag.endswith("html")
        assert text.lower().count("<script") == 1 and "<script>" in text  # one inline script, nothing loaded
        assert "http://" not in text.replace('xmlns="http://www.w3.org/1999/xhtml"', "")
        assert 'src="http' not in text and "<link" not in text  # self-contained: nothing fetched
    images = sum(len(ET.fromstring(pages[f"report/{s}.html"]).findall(".//{*}img[@class='thumb']"))
                 for s in ("sub-DEMO001", "sub-DEMO002"))
    assert images == 9


def test_long_tokens_may_wrap_only_after_separators(demo: Path) -> None:
    visits, run = _records(demo)
    text, _ = _subject(visits, run, visits[0])
    folder = visits[0]["files"][0]["source_folders"][0]
    assert folder.replace("/", "/<wbr />").replace("_", "_<wbr />") in text
    assert "overflow-wrap:anywhere" not in text and "word-break:break-all" not in text


def test_text_is_escaped(demo: Path) -> None:
    visits, run = _records(demo)
    visits, run = copy.deepcopy(visits), copy.deepcopy(run)
    nasty = "<script>alert('x')</script> & \"co\""
    visits[0]["files"][0]["SeriesDescription"] = nasty
    visits[0]["not_placed"][0]["reason"] = nasty
    run["problems"].append({"path": "DICOM/<b>bad</b>", "reason": nasty, "fatal": True})
    text = render_report(visits, run, {})
    subject_text, page = _subject(visits, run, visits[0])
    for page_text in (text, subject_text):
        assert "<script>alert" not in page_text and "<b>" not in page_text
        ET.fromstring(page_text)
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;co&quot;" in subject_text.replace("<wbr />", "")
    assert page.errors == []
    session = visits[0]["session_id"]
    assert nasty in [r[3] for r in page.tables[(session, "placed")] if len(r) > 1]
    assert nasty in [r[3] for r in page.tables[(session, "not-placed")]]


def test_no_patient_field_reaches_the_pages(demo: Path) -> None:
    visits, run = _records(demo)
    visits = copy.deepcopy(visits)
    visits[0]["PatientName"] = "DOE^JANE"
    visits[0]["files"][0]["PatientID"] = "PAT-4711"
    visits[0]["not_placed"][0]["PatientBirthDate"] = "19450101"
    visits[0]["patient_key_sha256"] = "ab12" * 16  # as in records of older versions
    for text in report_pages(visits, run, {}).values():
        for secret in ("DOE^JANE", "PAT-4711", "19450101", "Patient", "ab12" * 16):
            assert secret not in text


def test_output_is_sorted_and_deterministic(demo: Path) -> None:
    visits, run = _records(demo)
    first = report_pages(visits, run, {})
    shuffled = [dict(r, files=r["files"][::-1], not_placed=r["not_placed"][::-1]) for r in visits[::-1]]
    run2 = dict(run, visits=run["visits"][::-1], problems=run["problems"][::-1])
    assert report_pages(shuffled, run2, {}) == first
    index = first["report.html"]
    order = [index.index(f'href="report/{s}.html"') for s in ("sub-DEMO001", "sub-DEMO002")]
    assert order == sorted(order)
    assert render_report(visits, None, {}).count("No run record") == 1


def test_a_subject_page_does_not_change_with_the_run(demo: Path) -> None:
    """A subject page holds nothing of the run (no date, no count): a run that changes nothing of its
    subject gives the same bytes, and the writer leaves it alone."""
    visits, run = _records(demo)
    later = dict(run, finished_at="2099-01-01T00:00:00+00:00", visits=[])
    first, second = report_pages(visits, run, {}), report_pages(visits, later, {})
    assert first["report.html"] != second["report.html"]
    assert {k: v for k, v in first.items() if k != "report.html"} == \
        {k: v for k, v in second.items() if k != "report.html"}


# -- thumbnails ---------------------------------------------------------------------------------------

def _decode_png(data: bytes) -> np.ndarray:
    """The pixels of an 8-bit grayscale PNG (decoded by Pillow, which checks its structure)."""
    from PIL import Image

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.mode) == ("PNG", "L")
    return np.asarray(image)


def _image(demo: Path, suffix: str) -> Path:
    return next(demo.glob(f"sub-DEMO001/ses-V0001A/*/*_{suffix}.nii.gz"))


@pytest.mark.parametrize("suffix, shape, width", [
    ("T1w", (48, 64, 64), 128 + 4 + 96 + 4 + 96),     # 1 mm isotropic: sagittal 64x64, coronal/axial 48 wide
    ("bold", (32, 32, 16, 5), 256 + 4 + 256 + 4 + 128),  # 4D, 16 slices of 3.5 mm: wide sagittal/coronal
    ("FLAIR", (64, 64, 20), 74 + 4 + 74 + 4 + 128),   # 2D: 0.9 mm in plane, 5 mm slices
])
def test_thumbnail_is_a_valid_png_with_physical_aspect(demo: Path, suffix: str, shape, width: int) -> None:
    path = _image(demo, suffix)
    assert nib.load(path).shape == shape
    data = thumbnail_png(path, size=128)
    pixels = _decode_png(data)
    assert pixels.shape == (128, width)
    assert pixels.max() == 255 and pixels.min() == 0
    assert thumbnail_png(path, size=128) == data  # deterministic bytes
    assert _decode_png(thumbnail_png(path, size=64)).shape[0] == 64
    assert _decode_png(thumbnail_png(path)).shape[0] == 256  # the report's size


def test_thumbnail_is_compressed(demo: Path) -> None:  # 256 x 656 raw pixels would be 168 kB
    assert 1000 < len(thumbnail_png(_image(demo, "T1w"))) < 120000


def _save(tmp_path: Path, name: str, data: np.ndarray, affine: np.ndarray) -> Path:
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_thumbnail_orientation_is_canonical_and_upright(tmp_path: Path) -> None:
    data = np.zeros((40, 40, 40), dtype=np.float32)
    data[5:35, 5:35, 5:35] = 100  # a head
    # bright markers (over 1% of the voxels, so above the head after the 99th-percentile clip)
    data[14:26, 28:35, 28:35] = 1000  # marker 1, in the mid-sagittal slice: superior (high z), anterior (high y)
    data[28:35, 28:35, 17:23] = 1000  # marker 2, in the mid-axial slice: subject's right (high x), anterior
    ras = np.diag([2.0, 2.0, 2.0, 1.0])
    pixels = _decode_png(thumbnail_png(_save(tmp_path, "ras.nii.gz", data, ras), size=40))
    assert pixels.shape == (40, 40 + 1 + 40 + 1 + 40)
    sagittal, coronal, axial = pixels[:, :40], pixels[:, 41:81], pixels[:, 82:]
    rows, cols = np.nonzero(sagittal == 255)
    assert rows.size and rows.max() < 12 and cols.min() >= 28  # top (superior), right (anterior)
    assert not (coronal == 255).any()  # neither marker is in the mid-coronal slice
    rows, cols = np.nonzero(axial == 255)
    assert rows.size and rows.max() < 12 and cols.min() >= 28  # top (anterior), right (subject's right)
    # the same anatomy stored flipped (LPI voxel order) gives the same thumbnail
    lpi = np.diag([-2.0, -2.0, -2.0, 1.0])
    lpi[:3, 3] = [78.0, 78.0, 78.0]
    flipped = _save(tmp_path, "lpi.nii.gz", data[::-1, ::-1, ::-1].copy(), lpi)
    assert thumbnail_png(flipped, size=40) == thumbnail_png(_save(tmp_path, "ras.nii.gz", data, ras), size=40)


def test_a_4d_thumbnail_is_the_temporal_mean_and_clips_outliers(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mean = rng.uniform(0, 100, (20, 20, 20)).astype(np.float32)
    mean[0, 0, 0] = 1e6  # one hot voxel must not darken the picture
    # volume 0 is black (as for some sequences): the picture is the mean, not the first volume
    series = np.stack([np.zeros_like(mean), 2 * mean, mean, np.zeros_like(mean)], axis=-1)
    affine = np.eye(4)
    png4d = thumbnail_png(_save(tmp_path, "bold.nii.gz", series, affine), size=20)
    assert png4d == thumbnail_png(_save(tmp_path, "mean.nii.gz", mean, affine), size=20)
    pixels = _decode_png(png4d)
    assert 80 < np.median(pixels[pixels > 0]) < 180  # uniform 0-100 spread over 0-255 (not crushed to 0)


def test_a_long_series_is_pictured_from_a_bounded_number_of_volumes(tmp_path: Path) -> None:
    from bids_factory.report import thumbnails

    volumes = thumbnails.MEAN_VOLUMES * 5
    mean = np.arange(512, dtype=np.float32).reshape(8, 8, 8)
    series = np.repeat((511 - mean)[..., None], volumes, axis=-1)  # volumes never read: the opposite picture
    picked = np.unique(np.linspace(0, volumes - 1, thumbnails.MEAN_VOLUMES).round().astype(int))
    series[..., picked] = mean[..., None]
    affine = np.eye(4)
    assert thumbnail_png(_save(tmp_path, "long.nii.gz", series, affine), size=8) == \
        thumbnail_png(_save(tmp_path, "mean.nii.gz", mean, affine), size=8)


def test_the_enlarged_picture_is_larger_than_the_thumbnail(demo: Path) -> None:
    from PIL import Image

    from bids_factory.report.thumbnails import pictures

    found = pictures(_image(demo, "T1w"))
    small, large = Image.open(io.BytesIO(found.thumbnail)), Image.open(io.BytesIO(found.enlarged))
    assert large.height > small.height and large.width > small.width
    assert small.height == 256 and large.format == "JPEG"


# -- refreshed by every run, counts shared with the terminal ---------------------------------------------

def test_a_no_op_run_refreshes_the_page_and_still_shows_what_is_held_back(export: Path, tmp_path: Path) -> None:
    """A visit whose only matched series is held back has no visit record (nothing placed): its state
    keeps the series, so the page of a later run that changes nothing still counts it."""
    from bids_factory.report.summary import count_phrases, run_counts, summary_lines
    from bids_factory.resources import default_heuristic

    schemas = tmp_path / "sidecar"
    shutil.copytree(default_folder(), schemas)
    flair = json.loads((schemas / "FLAIR.schema.json").read_text())
    flair["properties"]["VoxelSize"]["items"]["maximum"] = 4
    (schemas / "FLAIR.schema.json").write_text(json.dumps(flair))
    default = json.loads(default_heuristic().read_text())
    only_flair = dict(default, descriptions=[d for d in default["descriptions"] if d["bids_factory"]["rule"] == "flair"],
                      bids_factory={**default["bids_factory"], "fallback_to_default": False})  # its rule alone
    heuristic = tmp_path / "flair-only.json"
    heuristic.write_text(json.dumps(only_flair))
    bids = tmp_path / "bids"
    options = ConvertOptions(export=export, bids=bids, schemas=schemas, heuristic=heuristic, validate=False,
                             visits=frozenset({"V0002-A"}))
    first = convert(options)
    assert [v.status for v in first.visits] == ["nothing-to-place"]
    page_path = bids / STATE / "report.html"
    first_page = page_path.read_text()
    second = convert(options)
    assert [v.status for v in second.visits] == ["unchanged"]
    page = page_path.read_text()
    assert page != first_page and second.record["finished_at"] in page  # refreshed by the no-op run
    assert _totals(Page(page))["series held back"] == "1" and second.dataset["series held back"] == 1
    still = Page(page).tables[("todo-supply", "still-not-placed supply")]
    assert any(row[0] == "held-back" and row[2] == "T2_FLAIR_AX" and "voxel size" in row[4] for row in still)
    history = Page(page).tables[("history", "history")][1:]
    assert len(history) == 2 and [row[5] for row in history] == ["1", "1"]  # held back in dataset, both runs
    # the page's counts are the terminal's: same function, same record
    lines = summary_lines(second)
    phrases = count_phrases(run_counts(second.record))
    assert f"visits: {phrases['visits']}" in lines and f"visits: {phrases['visits']}" in page
    assert f"series: {phrases['series']}" in page and lines[1].startswith(f"series: {phrases['series']};")
    assert "dataset: 0 subjects, 0 sessions, 0 images placed; series not placed: 1 held back" in lines[-1]
    # by what to do: the rule alone leaves two series nobody recognised, three scouts and derived maps
    assert "(to decide 2, to supply 1, export to fix 0, nothing to do 3)" in lines[-1]


def test_reasons_are_deduplicated() -> None:
    reason = ("FLAIR.schema.json: VoxelSize[0] 5.0 is greater than the maximum of 4; "
              "FLAIR.schema.json: VoxelSize[1] 5.0 is greater than the maximum of 4; "
              "FLAIR.schema.json: VoxelSize[2] 5.0 is greater than the maximum of 4; "
              "BIDS validator: X; BIDS validator: X")
    assert dedupe_reason(reason) == ("FLAIR.schema.json: VoxelSize[0,1,2] 5.0 is greater than the maximum of 4; "
                                     "BIDS validator: X")


def test_history_dates_can_be_masked(demo: Path) -> None:
    visits, run = _records(demo)
    history = [{"finished_at": "2026-11-30T06:11:28+00:00", "visits placed": 3}]
    text = render_report(visits, run, {}, history=history, mask_dates=lambda t: t.replace("2026-11-30", "n/a"))
    assert "2026-11-30" not in text.split('id="history"')[1].split("</table>")[0]
    assert "2026-11-30T06:11:28" in render_report(visits, run, {}, history=history)


def test_history_has_no_calendar_date_under_dates_drop(export: Path, tmp_path: Path) -> None:
    import re

    from bids_factory.dates import DatePolicy

    options = ConvertOptions(export=export, bids=tmp_path / "bids", validate=False, visits=frozenset({"V0002-A"}),
                             dates=DatePolicy("drop"))
    convert(options)
    second = convert(options)
    page = (tmp_path / "bids" / STATE / "report.html").read_text()
    history = Page(page).tables[("history", "history")][1:]
    assert len(history) == 2 and second.record["finished_at"][11:] in history[0][0]
    assert not any(re.search(r"\d{4}-\d{2}-\d{2}|(?<![.\d])20\d{6}", row[0]) for row in history)
    assert not re.search(r"\d{4}-\d{2}-\d{2}", page)


def test_a_run_that_changes_nothing_of_a_subject_leaves_its_page_untouched(export: Path, tmp_path: Path) -> None:
    """The writer compares bytes: the index (its date, its history) is rewritten, the subject page is not; a
    page of a subject no longer in the dataset is removed."""
    options = ConvertOptions(export=export, bids=tmp_path / "bids", validate=False, visits=frozenset({"V0002-A"}))
    convert(options)
    state = tmp_path / "bids" / STATE
    [page] = (state / "report").glob("sub-*.html")
    before, index = page.stat().st_mtime_ns, (state / "report.html").read_text()
    (state / "report" / "sub-GONE.html").write_text("a subject moved away")
    convert(options)
    assert page.stat().st_mtime_ns == before and (state / "report.html").read_text() != index
    assert sorted(p.name for p in (state / "report").iterdir()) == [page.name]


def test_a_run_computes_the_pages_of_the_subjects_it_changed_and_an_index_equal_to_the_records(export: Path,
                                                                                              tmp_path: Path) -> None:
    """Cost follows the day: a run computes the index from the visit index and only the pages of subjects whose
    visits it wrote (or whose page is missing); the index equals the page made from every record."""
    bids, state = tmp_path / "bids", tmp_path / "bids" / STATE
    convert(ConvertOptions(export=export, bids=bids, validate=False, visits=frozenset({"V0002-A"})))
    other = state / "report" / "sub-DEMO002.html"
    other.write_text("left as it was")  # not recomputed by a run that does not touch DEMO002
    convert(ConvertOptions(export=export, bids=bids, validate=False, visits=frozenset({"V0001A", "V0002-A"})))
    assert other.read_text() == "left as it was"
    assert "V0001A" in (state / "report" / "sub-DEMO001.html").read_text()
    visits, run = _records(bids)
    history = json.loads((state / "history.json").read_text())
    assert (state / "report.html").read_text() == render_report(visits, run, {}, history=history)
    other.unlink()  # a missing page is made again
    convert(ConvertOptions(export=export, bids=bids, validate=False, visits=frozenset({"V0001A", "V0002-A"})))
    assert "V0002-A" in other.read_text()
    (state / "report-pages.json").write_text("{}")  # pages made by another bids-factory: all made again
    (state / "report" / "sub-DEMO001.html").write_text("old")
    convert(ConvertOptions(export=export, bids=bids, validate=False, visits=frozenset({"V0001A", "V0002-A"})))
    assert "V0001A" in (state / "report" / "sub-DEMO001.html").read_text()
