"""The report of a real-data conversion, opened in a real headless Chromium at 1280 px: no horizontal
overflow, every placed image's thumbnail loaded, the filter box and click-to-enlarge work.

Needs Debian's ``chromium`` (``.ci/run`` installs it); skipped only when it is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import TEST_HEURISTICS

pytestmark = pytest.mark.realdata

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")]
WIDTH = 1280

# Run in the page once everything (thumbnails included) is loaded; the results go to the title.
PROBE = """<script>window.addEventListener('load',function(){
var imgs=Array.prototype.slice.call(document.querySelectorAll('img.thumb'));
var r={scrollWidth:document.documentElement.scrollWidth,images:imgs.length,
loaded:imgs.filter(function(i){return i.complete && i.naturalWidth>0;}).length,
heights:imgs.map(function(i){return i.naturalHeight;}),wide:[]};
document.querySelectorAll('body *').forEach(function(e){if(e.getBoundingClientRect().right>window.innerWidth){
r.wide.push(e.tagName+'.'+e.className+': '+e.textContent.slice(0,60));}});
var a=document.querySelector('a.zoom');var box=document.getElementById('lightbox');a.click();
r.enlarged=!box.hidden && box.querySelector('img').getAttribute('src')==a.getAttribute('href');
box.click();r.closed=box.hidden;
var sections=Array.prototype.slice.call(document.querySelectorAll('section.session'));
var f=document.getElementById('filter');f.value='no such text anywhere';applyFilter();
r.sessions=sections.length;r.hiddenByFilter=sections.filter(function(s){return s.hidden;}).length;
f.value='func-bold';applyFilter();r.shownForBold=sections.filter(function(s){return !s.hidden;}).length;
document.title=JSON.stringify(r);});</script>"""


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", f"--window-size={WIDTH},900", "--run-all-compositor-stages-before-draw",
               "--virtual-time-budget=10000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def real_dataset(xa30_export, tmp_path_factory) -> Path:
    """The XA30 visit (real scanner data) converted, then run again (a no-op run: history of two runs)."""
    bids = tmp_path_factory.mktemp("browser") / "bids"
    options = ConvertOptions(export=xa30_export, bids=bids, heuristic=TEST_HEURISTICS / "xa30_reproin.json")
    assert not convert(options).failed
    convert(options)
    return bids


def test_report_fits_1280_px_and_every_thumbnail_loads(real_dataset: Path, tmp_path: Path) -> None:
    state = real_dataset / "code" / "bids-factory"
    placed = sum(len(json.loads(p.read_text())["files"]) for p in (state / "visits").glob("*.json"))
    assert placed >= 5
    check = tmp_path / "page"
    shutil.copytree(state, check, ignore=shutil.ignore_patterns("lock", "tmp"))
    page = (check / "report.html").read_text()
    (check / "probe.html").write_text(page.replace("</body>", PROBE + "</body>"))

    done = _chromium(tmp_path, "--dump-dom", (check / "probe.html").as_uri())
    found = re.search(r"<title>(\{.*?\})</title>", done.stdout)
    assert found, f"no probe result from chromium (exit {done.returncode}): {done.stderr[-2000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["scrollWidth"] <= WIDTH, result  # no horizontal overflow at 1280 px
    assert result["images"] == placed and result["loaded"] == placed, result
    assert min(result["heights"]) >= 256  # thumbnails of at least 256 px
    assert result["enlarged"] and result["closed"]  # click to enlarge, click to close
    assert result["sessions"] == result["hiddenByFilter"] == 1 and result["shownForBold"] == 1

    screenshot = tmp_path / "report.png"
    done = _chromium(tmp_path, f"--screenshot={screenshot}", (check / "report.html").as_uri())
    assert screenshot.is_file(), done.stderr[-2000:]
    width, height = struct.unpack(">II", screenshot.read_bytes()[16:24])
    assert (width, height) == (WIDTH, 900)
