"""The visual report: one self-contained HTML page for the whole dataset, rebuilt by every run.

Built only from the provenance records in ``code/bids-factory/`` (the visit records of ``visits/``, the
state of visits with nothing placed, the run history and the last run record of ``runs/``), so it can be
rebuilt at any time. Inline CSS and a few lines of inline script (a filter box and a click-to-enlarge
view; the page works without them), no external resource (hospital hosts are offline); thumbnails are
linked by relative path. Only the fields named below are shown (never a record's other keys, so no
patient field can appear), every text is escaped with ``html.escape``, and everything is sorted: the same
records give the same bytes. The page is well-formed XML (void elements closed, no ``<`` or ``&`` in
the script). Counts are :mod:`bids_factory.report`'s, the same as the terminal summary's.
"""

from __future__ import annotations

import html
from typing import Callable

from bids_factory.model import VisitRecord, VisitStatus
from bids_factory.report.summary import (NOT_PLACED_GROUPS, TO_DECIDE, count_phrases, dataset_counts, dedupe_reason,
                                         LINKAGE_FILE, grouped_not_placed, grouped_problems, linkage_names,
                                         run_counts)

HISTORY_ROWS = 50  # the newest runs shown in the history table

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0 auto;padding:1em 1.5em;
max-width:1280px;color:#1d2329;overflow-wrap:break-word}
h1{font-size:1.5em}h2{border-bottom:2px solid #ccd;padding-bottom:.2em;margin-top:1.6em}
h3{margin-bottom:.3em}h4{margin:.8em 0 .3em}
table{border-collapse:collapse;margin:.4em 0 1em;width:100%;table-layout:auto}
th,td{border:1px solid #ccd;padding:.25em .5em;text-align:left;vertical-align:top;font-size:.92em;
overflow-wrap:break-word}
.path,.reason,code{overflow-wrap:anywhere}
th{background:#eef0f4}td.num,th.num{text-align:right}td.num{white-space:nowrap}
table.totals{width:auto}table.totals td{font-size:1.05em}
.meta{color:#555;font-size:.9em;margin:.2em 0}
.reason{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}
tr.held-back td{background:#fff4e0}tr.rejected td,tr.failed td{background:#fde8e8}
tr.not-converted td{background:#f3f3f3}tr.error td{background:#fde8e8}
table.validator td:first-child{white-space:nowrap}summary{cursor:pointer;margin:.3em 0}
.ok{color:#17692a}.bad{color:#a31515;font-weight:bold}
tr.thumb-row td{padding:.3em .5em .8em}
img.thumb{display:block;max-width:100%;height:auto;max-height:256px;background:#000}
a.zoom{display:inline-block;max-width:100%;cursor:zoom-in}
code{font-size:.9em;overflow-wrap:anywhere}
nav.toc{line-height:1.8}
#filter{font-size:1em;padding:.3em .5em;width:24em;max-width:100%}
#lightbox{position:fixed;inset:0;background:rgba(0,0,0,.88);display:flex;align-items:center;
justify-content:center;cursor:zoom-out;z-index:10}
#lightbox[hidden]{display:none}
#lightbox img{max-width:96vw;max-height:92vh;width:96vw;height:auto;object-fit:contain;background:#000}
"""

# Filter box: hide sessions and rows that do not contain the text. Lightbox: open a thumbnail large.
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


def _e(value) -> str:
    """Escaped text; None as an empty cell."""
    return "" if value is None else html.escape(str(value), quote=True)


def _join(values) -> str:
    return "<br />".join(f'<span class="path">{_e(v)}</span>' for v in (values or []))


def _path(value) -> str:
    return f'<span class="path">{_e(value)}</span>' if value else ""


def _row(cells: list[str], cls: str | None = None, header: bool = False, nums: tuple[int, ...] = ()) -> str:
    tag = "th" if header else "td"
    attr = f' class="{_e(cls)}"' if cls else ""
    num = ' class="num"'
    return f"<tr{attr}>" + "".join(
        f"<{tag}{num if i in nums else ''}>{c}</{tag}>" for i, c in enumerate(cells)) + "</tr>"


def _table(headers: list[str], rows: list[str], cls: str | None = None, nums: tuple[int, ...] = ()) -> str:
    attr = f' class="{_e(cls)}"' if cls else ""
    body = "\n".join(rows)
    return (f"<table{attr}><thead>{_row([_e(h) for h in headers], header=True, nums=nums)}</thead>"
            f"<tbody>\n{body}\n</tbody></table>")


def _not_placed_table(outcomes: list[dict]) -> str:
    """Series not placed; identical rows (same series, status and reason) shown once with their count."""
    groups: dict[tuple, list[dict]] = {}
    for o in outcomes:
        key = (str(o.get("status")), o.get("SeriesNumber") is None,
               o.get("SeriesNumber") if isinstance(o.get("SeriesNumber"), (int, float)) else 0,
               str(o.get("SeriesNumber")), str(o.get("SeriesDescription")), str(o.get("ProtocolName")),
               tuple(map(str, o.get("ImageType") or [])), dedupe_reason(o.get("reason")),
               tuple(map(str, o.get("source_folders") or [])))
        groups.setdefault(key, []).append(o)
    rows = [
        _row([_e(key[0]), str(len(group)), f'<span class="reason">{_e(key[7])}</span>', _e(group[0].get("SeriesNumber")),
              _e(key[4]), _e(key[5]), _path("/".join(key[6])), _join(key[8])], cls=key[0], nums=(1,))
        for key, group in sorted(groups.items(), key=lambda item: (item[0][1:4], item[0]))
    ]
    return _table(["status", "count", "reason", "SeriesNumber", "SeriesDescription", "ProtocolName", "ImageType",
                   "source folders"], rows, "not-placed", nums=(1,))


def _counts_table(counts: dict[str, int], cls: str) -> str:
    rows = [_row([_e(label), f"{n}"], nums=(1,)) for label, n in counts.items() if label != TO_DECIDE]
    return _table(["", "count"], rows, cls, nums=(1,))


def _dataset(records: list[VisitRecord], unplaced: list[dict]) -> str:
    counts = dataset_counts(records, unplaced)
    out = ['<h2 id="dataset">Dataset</h2>', _counts_table(counts, "totals")]
    sessions = {str(r.get("scan_research_id")): f"{r.get('participant_id')}_{r.get('session_id')}" for r in records}
    groups = grouped_not_placed([*records, *unplaced])
    if groups:
        rows = []
        for g in groups:
            links = ", ".join(f'<a href="#{_e(sessions[v])}">{_e(v)}</a>' if v in sessions else _e(v)
                              for v in g["visits"])
            rows.append(_row([_e(g["status"]), str(g["count"]), _e(g["SeriesDescription"]), _path("/".join(g["ImageType"])),
                              f'<span class="reason">{_e(g["reason"])}</span>', links],
                             cls=f'{g["status"]} filterable', nums=(1,)))
        out.append("<h3>Series not placed (whole dataset, identical ones counted once)</h3>"
                   + _table(["status", "count", "SeriesDescription", "ImageType", "reason", "visits"], rows,
                            "still-not-placed", nums=(1,)))
    return "".join(out)


def _history(history: list[dict], mask: Callable[[str], str]) -> str:
    if not history:
        return ""
    shown = history[-HISTORY_ROWS:][::-1]
    keys = ["visits placed", "series placed", "series held back", "held back in dataset", "visits failed",
            "validator errors"]
    nums = (2, 3, 4, 5, 6, 7)
    rows = [_row([_e(mask(str(h.get("finished_at") or ""))),
                  '<span class="bad">failed</span>' if h.get("failed") else '<span class="ok">ok</span>',
                  *(_e(h.get(k)) for k in keys)], nums=nums) for h in shown]
    more = f"<p class=\"meta\">{len(history) - len(shown)} earlier runs not shown.</p>" if len(history) > len(shown) else ""
    return ('<h2 id="history">History of runs</h2>'
            + _table(["finished", "outcome", "visits placed", "series placed", "series held back",
                      "still held back in the dataset", "visits failed", "validator errors"], rows, "history",
                     nums=nums) + more)


def _validator(validator: dict) -> str:
    if validator.get("errors") is None:
        return "<p>BIDS validator: not run by this run (it runs when a run changes the dataset).</p>"
    cls = "bad" if validator["errors"] else "ok"
    link = (f' (<a href="{_e(validator["output"])}">full validator output, JSON</a>)'
            if validator.get("output") else "")
    out = [f'<p>BIDS validator: <span class="{cls}">{_e(validator["errors"])} errors</span>, '
           f"{_e(validator.get('warnings'))} warnings{link}</p>"]
    issues = validator.get("issues") or []
    if issues:
        rows = [_row([_e(i.get("severity")), _e(i.get("code")), str(i.get("count")), _e(i.get("message")),
                      _join((i.get("locations") or [])[:2])], cls=f'{i.get("severity")} filterable', nums=(2,))
                for i in issues]
        out.append(f"<details><summary>validator messages by code ({len(issues)} codes)</summary>"
                   + _table(["severity", "code", "count", "message", "where (first ones)"], rows, "validator",
                            nums=(2,)) + "</details>")
    return "".join(out)


def _last_run(run: dict | None, recorded: set[tuple], mask: Callable[[str], str]) -> str:
    if run is None:
        return '<h2 id="last-run">Last run</h2><p>No run record.</p>'
    visits = run.get("visits") or []
    phrases = count_phrases(run_counts(run))
    outcome = '<span class="bad">FAILED</span>' if run.get("failed") else '<span class="ok">completed</span>'
    out = [f"<h2 id=\"last-run\">Last run</h2><p class=\"meta\">finished {_e(mask(str(run.get('finished_at'))))}, "
           f"bids-factory {_e(run.get('bids_factory_version'))}: {outcome}</p>",
           f"<p>visits: {_e(phrases['visits'])}<br />series: {_e(phrases['series'])}</p>"]
    worked = [v for v in visits if v.get("status") not in (VisitStatus.UNCHANGED, VisitStatus.NOT_SELECTED)]  # the rest: counted
    if worked:
        rows = [_row([_e(v.get("scan_research_id")), _e(v.get("participant_id")), _e(v.get("session_id")),
                      _e(v.get("status")), _e(v.get("placed")), _e(len(v.get("not_placed") or []))],
                     cls=v.get("status"), nums=(4, 5))
                for v in sorted(worked, key=lambda v: str(v.get("scan_research_id")))]
        headers = ["scan_research_id", "subject", "session", "status", "placed", "not placed"]
        out.append(_table(headers, rows, "run-visits", nums=(4, 5)))
    out.append(_validator(run.get("validator") or {}))
    problems = grouped_problems(run.get("problems") or [])
    if problems:
        rows = [_row(["failed" if fatal else "note", str(count), _join(paths[:5] + ([f"and {len(paths) - 5} more"]
                                                                                   if len(paths) > 5 else [])),
                      f'<span class="reason">{_e(reason)}</span>'], cls="failed" if fatal else None, nums=(1,))
                for fatal, reason, count, paths in problems]
        out.append("<h3>Problems</h3>" + _table(["kind", "count", "path", "reason"], rows, "problems", nums=(1,)))
    linkage = run.get("linkage") or {}
    for key, label in (("images_without_ehr", "Subjects with images but no EHR row"),
                       ("ehr_without_images", "EHR patients without images")):
        subjects, count = linkage_names(linkage, key)
        more = f" and {count - len(subjects)} more (all: {LINKAGE_FILE})" if count > len(subjects) else ""
        out.append(f"<p>{_e(label)} ({count}): {_e(', '.join(sorted(subjects))) or 'none'}{_e(more)}</p>")
    orphans = [v for v in visits if v.get("not_placed")
               and (v.get("participant_id"), v.get("session_id")) not in recorded]
    for v in sorted(orphans, key=lambda v: str(v.get("scan_research_id"))):
        out.append(f"<h3>Visit {_e(v.get('scan_research_id'))} ({_e(v.get('status'))}, no session in the "
                   f"dataset): series not placed</h3>" + _not_placed_table(v["not_placed"]))
    return "".join(out)


def _session(record: dict, thumbnails: dict[str, str], mask: Callable[[str], str]) -> str:
    subject, session = str(record.get("participant_id")), str(record.get("session_id"))
    folders = [f"{f.get('kind')} {f.get('day')} {f.get('path')}{' (gone from the export)' if f.get('gone') else ''}"
               for f in record.get("export_folders") or []]
    heuristic, converter = record.get("heuristic") or {}, record.get("converter") or {}
    out = [f'<section class="session filterable"><h3 id="{_e(subject)}_{_e(session)}">{_e(subject)} {_e(session)} '
           f"<small>(scan_research_id {_e(record.get('scan_research_id'))})</small></h3>",
           f"<p class=\"meta\">export folders: {_e(mask('; '.join(sorted(folders))))}<br />"
           f"converted {_e(mask(str(record.get('converted_at'))))} by bids-factory "
           f"{_e(record.get('bids_factory_version'))}, {_e(converter.get('name'))} {_e(converter.get('version'))}; "
           f"heuristic {_e(heuristic.get('name'))} (sha256 {_e(str(heuristic.get('sha256') or '')[:12])})</p>"]
    rows = []
    for f in sorted(record.get("files") or [], key=lambda f: str(f.get("path"))):
        image = f"{subject}/{session}/{f.get('path')}"
        src = thumbnails.get(image)
        thumb = (f'<a class="zoom" href="{_e(src)}" title="click to enlarge"><img class="thumb" src="{_e(src)}" '
                 f'alt="{_e(image)}" /></a>') if src else ""
        rows.append(_row([f"<code>{_e(f.get('path'))}</code>", _e(f.get("rule")), _e(f.get("SeriesNumber")),
                          _e(f.get("SeriesDescription")), _join(f.get("source_folders"))]))
        if thumb:  # the picture on its own row, the whole width of the table
            rows.append(f'<tr class="thumb-row"><td colspan="5">{thumb}</td></tr>')
    out.append(f"<h4>Placed images ({len(record.get('files') or [])}; click a picture to enlarge it)</h4>")
    headers = ["file", "rule", "SeriesNumber", "SeriesDescription", "source folders"]
    out.append(_table(headers, rows, "placed") if rows else "<p>none</p>")
    pending = record.get("pending_changes") or []
    if pending:  # what a reconversion would change: the placed images stay until a person decides
        out.append(f"<h4>Changes waiting for a decision ({len(pending)}; the placed images stay; "
                   f"<code>--apply-changes {_e(record.get('scan_research_id'))}</code> applies them)</h4>"
                   + _table(["placed image", "change", "reason", "new image"],
                            [_row([f"<code>{_e(c.get('path'))}</code>", _e(c.get("kind")),
                                   _e(mask(str(c.get("reason")))), _e(c.get("new_path") or "")]) for c in pending],
                            "pending"))
    not_placed = record.get("not_placed") or []
    if not_placed:
        counts = {label: sum(1 for o in not_placed if o.get("status") in statuses)
                  for label, statuses in NOT_PLACED_GROUPS}
        text = ", ".join(f"{n} {_e(label)}" for label, n in counts.items() if n)
        out.append(f"<h4>Series not placed ({len(not_placed)}: {text})</h4>" + _not_placed_table(not_placed))
    return "".join(out) + "</section>"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def render_report(visit_records: list[VisitRecord], run_record: dict | None, thumbnails: dict[str, str],
                  history: list[dict] | None = None, unplaced: list[dict] | None = None,
                  mask_dates: Callable[[str], str] | None = None) -> str:
    """The HTML page of the dataset (one string, XHTML-compatible HTML5).

    ``visit_records``: the per-visit provenance records (``code/bids-factory/visits/*.json``), any order.
    ``run_record``: the last run's record (``code/bids-factory/runs/``), or None; its ``finished_at`` is the
    page's date (the page holds no current time, so a rebuild from the same records is byte-identical).
    ``thumbnails``: image path in the dataset (``sub-<p>/ses-<v>/<datatype>/<name>.nii.gz``) -> the
    ``src`` of its thumbnail, relative to the page; images without an entry get no thumbnail.
    ``history``: one entry per run (``report.history_entry``), oldest first. ``unplaced``: states of visits
    with nothing placed (their series not placed still count). ``mask_dates``: the date policy's text
    filter for the dates shown (None: dates shown as recorded).
    """
    mask = mask_dates or (lambda text: text)
    unplaced = sorted(unplaced or [], key=lambda s: str(s.get("scan_research_id")))
    records = sorted(visit_records, key=lambda r: (str(r.get("participant_id")), str(r.get("session_id")),
                                                   str(r.get("scan_research_id"))))
    subjects: dict[str, list[dict]] = {}
    for record in records:
        subjects.setdefault(str(record.get("participant_id")), []).append(record)
    recorded = {(r.get("participant_id"), r.get("session_id")) for r in records}
    date = f" ({_e(mask(str(run_record.get('finished_at'))))})" if run_record and run_record.get("finished_at") else ""
    body = [f"<h1>bids-factory report{date}</h1>",
            '<p class="meta">Built from the provenance records in <code>code/bids-factory/</code> by every run: every '
            "image placed in this dataset, and every series that was not, with the reason.</p>",
            '<nav class="toc"><a href="#dataset">Dataset</a> | <a href="#history">History</a> | '
            '<a href="#last-run">Last run</a> | <a href="#subjects">Subjects</a> | '
            '<label>filter: <input id="filter" type="search" placeholder="subject, series, reason..." '
            'oninput="applyFilter()" /></label></nav>',
            _dataset(records, unplaced), _history(history or [], mask), _last_run(run_record, recorded, mask),
            '<h2 id="subjects">Subjects</h2>']
    if subjects:
        body.append('<nav class="toc">' + " | ".join(
            f'<a href="#{_e(s)}">{_e(s)}</a> (' + ", ".join(
                f'<a href="#{_e(s)}_{_e(r.get("session_id"))}">{_e(r.get("session_id"))}</a>' for r in visits) + ")"
            for s, visits in subjects.items()) + "</nav>")
    for subject, visits in subjects.items():
        body.append(f'<h2 id="{_e(subject)}">{_e(subject)} <small>({_plural(len(visits), "session")})</small></h2>')
        body.extend(_session(record, thumbnails, mask) for record in visits)
    return ('<!DOCTYPE html>\n<html lang="en" xmlns="http://www.w3.org/1999/xhtml"><head><meta charset="utf-8" />'
            '<meta name="viewport" content="width=device-width, initial-scale=1" />'
            f"<title>bids-factory report</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body)
            + '\n<div id="lightbox" hidden="hidden"><img alt="enlarged thumbnail" /></div>'
            + f"\n<script>{_SCRIPT}</script>\n</body></html>\n")
