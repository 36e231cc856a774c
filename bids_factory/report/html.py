"""The pieces every report page is made of: escaped text, tables, the style sheet, the small script.

Every text is escaped with ``html.escape``; long tokens (folders, file paths, ImageType) get a line-break
opportunity (``<wbr />``) after each ``/``, ``_`` and ``\\`` instead of a style that breaks words anywhere:
no table cell breaks a word in the middle. The pages are well-formed XML (void elements closed, no ``<`` or
``&`` in the script) and hold no external resource (hospital hosts are offline).
"""

from __future__ import annotations

import html
import re

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0 auto;padding:1em 1.5em;
max-width:1280px;color:#1d2329;overflow-wrap:break-word}
h1{font-size:1.5em}h2{border-bottom:2px solid #ccd;padding-bottom:.2em;margin-top:1.6em}
h3{margin-bottom:.3em}h4{margin:.8em 0 .3em}
table{border-collapse:collapse;margin:.4em 0 1em;width:100%;table-layout:auto}
th,td{border:1px solid #ccd;padding:.25em .5em;text-align:left;vertical-align:top;font-size:.92em;
word-break:normal;overflow-wrap:normal;hyphens:none}
th{background:#eef0f4}td.num,th.num{text-align:right}td.num{white-space:nowrap}
table.totals{width:auto}table.totals td{font-size:1.05em}
.meta{color:#555;font-size:.9em;margin:.2em 0}
.step{margin:.2em 0 .4em;max-width:60em}
tr.held-back td{background:#fff4e0}tr.rejected td,tr.failed td{background:#fde8e8}
tr.not-converted td{background:#f3f3f3}tr.error td{background:#fde8e8}
table.validator td:first-child{white-space:nowrap}summary{cursor:pointer;margin:.3em 0}
.ok{color:#17692a}.bad{color:#a31515;font-weight:bold}
tr.thumb-row td{padding:.3em .5em .8em}
img.thumb{display:block;max-width:100%;height:auto;max-height:256px;background:#000}
a.zoom{display:inline-block;max-width:100%;cursor:zoom-in}
code{font-size:.9em}
nav.toc{line-height:1.8}
ul.subjects{columns:16em;padding-left:1.2em}
#filter{font-size:1em;padding:.3em .5em;width:24em;max-width:100%}
#lightbox{position:fixed;inset:0;background:rgba(0,0,0,.88);display:flex;align-items:center;
justify-content:center;cursor:zoom-out;z-index:10}
#lightbox[hidden]{display:none}
#lightbox img{max-width:96vw;max-height:92vh;width:auto;height:auto;object-fit:contain;background:#000}
"""

# Filter box: hide what does not contain the text. Lightbox: open the enlarged picture of a thumbnail.
# (No '<' or '&' characters: the page stays well-formed XML.)
_SCRIPT = """
function applyFilter(){var q=document.getElementById('filter').value.toLowerCase();
document.querySelectorAll('.filterable').forEach(function(e){
e.hidden=q.length>0 ? e.textContent.toLowerCase().indexOf(q)==-1 : false;});}
document.addEventListener('click',function(ev){var a=ev.target.closest('a.zoom');var box=document.getElementById('lightbox');
if(a){ev.preventDefault();box.querySelector('img').src=a.getAttribute('href');box.hidden=false;}
else if(ev.target.closest('#lightbox')){box.hidden=true;}});
document.addEventListener('keydown',function(ev){if(ev.key=='Escape'){document.getElementById('lightbox').hidden=true;}});
"""

_SEPARATOR = re.compile(r"([/_\\])")
FILTER = ('<label>filter: <input id="filter" type="search" placeholder="subject, series, reason..." '
          'oninput="applyFilter()" /></label>')


def e(value) -> str:
    """Escaped text; None as an empty cell."""
    return "" if value is None else html.escape(str(value), quote=True)


def breakable(value) -> str:
    """Escaped text that may wrap after a ``/``, ``_`` or ``\\`` (a folder, a file, an ImageType), never inside
    a word."""
    return _SEPARATOR.sub(r"\1<wbr />", e(value))


def path(value) -> str:
    return f'<span class="path">{breakable(value)}</span>' if value else ""


def paths(values) -> str:
    return "<br />".join(path(v) for v in (values or []))


def row(cells: list[str], cls: str | None = None, header: bool = False, nums: tuple[int, ...] = ()) -> str:
    tag = "th" if header else "td"
    attr = f' class="{e(cls)}"' if cls else ""
    num = ' class="num"'
    return f"<tr{attr}>" + "".join(
        f"<{tag}{num if i in nums else ''}>{c}</{tag}>" for i, c in enumerate(cells)) + "</tr>"


def table(headers: list[str], rows: list[str], cls: str | None = None, nums: tuple[int, ...] = ()) -> str:
    attr = f' class="{e(cls)}"' if cls else ""
    body = "\n".join(rows)
    return (f"<table{attr}><thead>{row([e(h) for h in headers], header=True, nums=nums)}</thead>"
            f"<tbody>\n{body}\n</tbody></table>")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def document(title: str, body: list[str]) -> str:
    """A whole page (XHTML-compatible HTML5) with the style sheet, the lightbox and the script."""
    return ('<!DOCTYPE html>\n<html lang="en" xmlns="http://www.w3.org/1999/xhtml"><head><meta charset="utf-8" />'
            '<meta name="viewport" content="width=device-width, initial-scale=1" />'
            f"<title>{e(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body)
            + '\n<div id="lightbox" hidden="hidden"><img alt="enlarged picture" /></div>'
            + f"\n<script>{_SCRIPT}</script>\n</body></html>\n")
