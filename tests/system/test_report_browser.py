"""The report of a real-data conversion, opened in a real headless Chromium at 1280 px: the index page and a
subject page fit without horizontal overflow, every link and picture resolves to a file that exists, no word in
a table is broken over two lines, every thumbnail loads, the filter box works and a click opens a larger picture.

Needs Debian's ``chromium`` (``.ci/run`` installs it); skipped only when it is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from html import unescape
from pathlib import Path
from urllib.parse import unquote

import pytest

from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import TEST_HEURISTICS, run_bounded

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.realdata, pytest.mark.browser, pytest.mark.timeout(600),
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")]
WIDTH = 1280

# A word (letters and digits) of a table cell whose text spans two lines is broken mid-word: found with
# Range.getClientRects. The control table (a narrow cell that breaks anywhere) proves the probe sees a break.
WORDS = """function brokenWords(root){var out=[];
root.querySelectorAll('td,th').forEach(function(cell){
var walker=document.createTreeWalker(cell,NodeFilter.SHOW_TEXT);var node;
while((node=walker.nextNode())){var re=/[A-Za-z0-9]+/g;var m;
while((m=re.exec(node.data))!==null){if(m[0].length<2){continue;}
var range=document.createRange();range.setStart(node,m.index);range.setEnd(node,m.index+m[0].length);
var tops={};Array.prototype.forEach.call(range.getClientRects(),function(x){if(x.width>0){tops[Math.round(x.top)]=1;}});
if(Object.keys(tops).length>1){out.push(m[0]+' | '+cell.textContent.slice(0,80));}}}});
return out;}
function control(){var c=document.createElement('div');c.innerHTML='<table style="width:40px"><tr>'+
'<td style="overflow-wrap:anywhere">Supercalifragilisticexpialidocious</td></tr></table>';
document.body.appendChild(c);var found=brokenWords(c).length;c.remove();return found;}
function wide(){var r=[];document.querySelectorAll('body *').forEach(function(e){
if(e.getBoundingClientRect().right>window.innerWidth){r.push(e.tagName+'.'+e.className+': '+e.textContent.slice(0,60));}});
return r;}
"""

INDEX_PROBE = """<script>""" + WORDS + """window.addEventListener('load',function(){
var r={scrollWidth:document.documentElement.scrollWidth,wide:wide(),broken:brokenWords(document),control:control()};
var subjects=Array.prototype.slice.call(document.querySelectorAll('ul.subjects li'));
var f=document.getElementById('filter');f.value='no such text anywhere';applyFilter();
r.subjects=subjects.length;r.hiddenByFilter=subjects.filter(function(s){return s.hidden;}).length;
f.value='';applyFilter();document.title=JSON.stringify(r);});</script>"""

SUBJECT_PROBE = """<script>""" + WORDS + """window.addEventListener('load',function(){
var imgs=Array.prototype.slice.call(document.querySelectorAll('img.thumb'));
var r={scrollWidth:document.documentElement.scrollWidth,wide:wide(),broken:brokenWords(document),control:control(),
images:imgs.length,loaded:imgs.filter(function(i){return i.complete && i.naturalWidth>0;}).length,
heights:imgs.map(function(i){return i.naturalHeight;})};
var sections=Array.prototype.slice.call(document.querySelectorAll('section.session'));
var f=document.getElementById('filter');f.value='no such text anywhere';applyFilter();
r.sessions=sections.length;r.hiddenByFilter=sections.filter(function(s){return s.hidden;}).length;
f.value='func-bold';applyFilter();r.shownForBold=sections.filter(function(s){return !s.hidden;}).length;
var a=document.querySelector('a.zoom');var box=document.getElementById('lightbox');var big=box.querySelector('img');
big.addEventListener('load',function(){r.enlargedHeight=big.naturalHeight;
r.thumbHeight=a.querySelector('img').naturalHeight;box.click();r.closed=box.hidden;
document.title=JSON.stringify(r);});
a.click();r.enlarged=!box.hidden && big.getAttribute('src')==a.getAttribute('href');});</script>"""


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--allow-file-access-from-files", f"--user-data-dir={profile}", f"--window-size={WIDTH},900",
               "--run-all-compositor-stages-before-draw", "--virtual-time-budget=10000", *args]
    return run_bounded(command, timeout=120)


def _probe(tmp: Path, page: Path, probe: str) -> tuple[dict, str]:
    """Open a copy of ``page`` (beside it: its links stay relative) with ``probe``: its result and the DOM."""
    copy = page.with_name(f"probe-{page.name}")
    copy.write_text(page.read_text().replace("</body>", probe + "</body>"))
    done = _chromium(tmp, "--dump-dom", copy.as_uri())
    found = re.search(r"<title>(\{.*?\})</title>", done.stdout)
    assert found, f"no probe result from chromium (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(unescape(found.group(1))), done.stdout


def _links_resolve(page: Path, dom: str) -> int:
    """Every href and src of the rendered page names a file that exists (and an anchor that exists in it)."""
    links = [unescape(v) for v in re.findall(r'(?:href|src)="([^"]+)"', dom)]
    checked = 0
    for link in links:
        if link.startswith(("#", "data:")):
            continue
        assert not link.startswith(("http:", "https:", "//")), link  # nothing fetched from outside
        target, _, anchor = link.partition("#")
        path = (page.parent / unquote(target)).resolve()
        assert path.is_file(), f"{page.name}: {link} resolves to no file"
        if anchor:
            assert f'id="{anchor}"' in path.read_text(), f"{page.name}: {link}: no such anchor"
        checked += 1
    return checked


@pytest.fixture(scope="module")
def real_dataset(xa30_export, tmp_path_factory) -> Path:
    """The XA30 visit (real scanner data) converted, then run again (a no-op run: history of two runs)."""
    bids = tmp_path_factory.mktemp("browser") / "bids"
    options = ConvertOptions(export=xa30_export, bids=bids, heuristic=TEST_HEURISTICS / "xa30_reproin.json")
    assert not convert(options).failed
    convert(options)
    return bids


def test_the_index_and_a_subject_page_fit_1280_px_links_resolve_and_no_word_is_broken(real_dataset: Path,
                                                                                        tmp_path: Path) -> None:
    state = real_dataset / "code" / "bids-factory"
    [record] = [json.loads(p.read_text()) for p in (state / "visits").glob("*.json")]
    placed = len(record["files"])
    assert placed >= 5
    check = tmp_path / "page"
    shutil.copytree(state, check, ignore=shutil.ignore_patterns("lock", "tmp"))

    index, dom = _probe(tmp_path, check / "report.html", INDEX_PROBE)
    assert _links_resolve(check / "report.html", dom) >= 2  # the subject page, its session, the validator output
    assert index["control"] == 1, "the probe does not see a word broken over two lines"
    assert index["broken"] == [] and index["wide"] == [] and index["scrollWidth"] <= WIDTH, index
    assert index["subjects"] == index["hiddenByFilter"] == 1

    subject = check / "report" / f"{record['participant_id']}.html"
    result, dom = _probe(tmp_path, subject, SUBJECT_PROBE)
    assert _links_resolve(subject, dom) >= 2 * placed  # thumbnails and their enlarged pictures
    assert result["control"] == 1
    assert result["broken"] == [] and result["wide"] == [] and result["scrollWidth"] <= WIDTH, result
    assert result["images"] == placed and result["loaded"] == placed, result
    assert min(result["heights"]) >= 256  # thumbnails of at least 256 px
    assert result["enlarged"] and result["closed"]  # click to enlarge, click to close
    assert result["enlargedHeight"] > result["thumbHeight"]  # the click shows a larger picture
    assert result["sessions"] == result["hiddenByFilter"] == 1 and result["shownForBold"] == 1

    screenshot = tmp_path / "report.png"
    done = _chromium(tmp_path, f"--screenshot={screenshot}", subject.as_uri())
    assert screenshot.is_file(), done.stderr[-2000:]
    width, height = struct.unpack(">II", screenshot.read_bytes()[16:24])
    assert (width, height) == (WIDTH, 900)
