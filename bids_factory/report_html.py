"""The visual report: one self-contained HTML page for the whole dataset.

Built only from the provenance records in ``code/bids-factory/`` (the visit records of ``visits/`` and the
last run record of ``runs/``), so it can be rebuilt at any time. Inline CSS, no JavaScript, no external
resource (hospital hosts are offline); thumbnails are linked by relative path. Only the fields named below
are shown (never a record's other keys, so no patient field can appear), every text is escaped with
``html.escape``, and everything is sorted: the same records give the same bytes. The page is also
well-formed XML (void elements closed), so it can be parsed by any XML tool.
"""

from __future__ import annotations

import html
from collections import Counter

from bids_factory.report import series_line

# Not-placed statuses, in the order they are shown, and how the totals group them (as the run summary).
_STATUS_GROUPS = (("held back by their schema", ("held-back",)), ("unmatched", ("unmatched", "ambiguous")),
                  ("rejected", ("rejected",)), ("not converted (no image)", ("not-converted",)))
_RUN_STATUSES = ("placed", "unchanged", "nothing-to-place", "failed", "not-selected")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:1.5em;color:#1d2329}
h1{font-size:1.5em}h2{border-bottom:2px solid #ccd;padding-bottom:.2em;margin-top:1.6em}
h3{margin-bottom:.3em}h4{margin:.8em 0 .3em}
table{border-collapse:collapse;margin:.4em 0 1em}
th,td{border:1px solid #ccd;padding:.25em .5em;text-align:left;vertical-align:top;font-size:.92em}
th{background:#eef0f4}td.num{text-align:right}
table.totals td{font-size:1.05em}
.meta{color:#555;font-size:.9em;margin:.2em 0}
.reason{white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}
tr.held-back td{background:#fff4e0}tr.rejected td,tr.failed td{background:#fde8e8}
tr.not-converted td{background:#f3f3f3}
.ok{color:#17692a}.bad{color:#a31515;font-weight:bold}
img.thumb{display:block;height:96px;image-rendering:pixelated;background:#000}
code{font-size:.9em}
"""


def _e(value) -> str:
    """Escaped text; None as an empty cell."""
    return "" if value is None else html.escape(str(value), quote=True)


def _join(values) -> str:
    return "<br />".join(_e(v) for v in (values or []))


def _row(cells: list[str], cls: str | None = None, header: bool = False) -> str:
    tag = "th" if header else "td"
    attr = f' class="{_e(cls)}"' if cls else ""
    return f"<tr{attr}>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def _table(headers: list[str], rows: list[str], cls: str | None = None) -> str:
    attr = f' class="{_e(cls)}"' if cls else ""
    body = "\n".join(rows)
    return f"<table{attr}><thead>{_row([_e(h) for h in headers], header=True)}</thead><tbody>\n{body}\n</tbody></table>"


def _series_key(series: dict) -> tuple:
    number = series.get("SeriesNumber")
    return (number is None, number if isinstance(number, (int, float)) else 0, str(number),
            str(series.get("SeriesDescription")), str(series.get("status")), str(series.get("reason")),
            str(series.get("path")), str(series.get("source_folders")))


def _count_statuses(outcomes: list[dict]) -> list[tuple[str, int]]:
    counts = Counter(o.get("status") for o in outcomes)
    return [(label, sum(counts[s] for s in statuses)) for label, statuses in _STATUS_GROUPS]


def _not_placed_table(outcomes: list[dict]) -> str:
    rows = [
        _row([_e(o.get("status")), f'<span class="reason">{_e(o.get("reason"))}</span>', _e(o.get("SeriesNumber")),
              _e(o.get("SeriesDescription")), _e(o.get("ProtocolName")),
              _e("/".join(map(str, o.get("ImageType") or []))), _join(o.get("source_folders"))],
             cls=str(o.get("status")))
        for o in sorted(outcomes, key=_series_key)
    ]
    return _table(["status", "reason", "SeriesNumber", "SeriesDescription", "ProtocolName", "ImageType",
                   "source folders"], rows, "not-placed")


def _totals(visit_records: list[dict]) -> str:
    outcomes = [o for r in visit_records for o in r.get("not_placed") or []]
    items = [("subjects", len({r.get("participant_id") for r in visit_records})),
             ("sessions", len({(r.get("participant_id"), r.get("session_id")) for r in visit_records})),
             ("images placed", sum(len(r.get("files") or []) for r in visit_records))]
    items += [(f"series {label}", n) for label, n in _count_statuses(outcomes)]
    rows = [_row([_e(label), f"{n}"]) for label, n in items]
    return "<h2>Dataset</h2>" + _table(["", "count"], rows, "totals")


def _last_run(run: dict | None, recorded: set[tuple]) -> str:
    if run is None:
        return "<h2>Last run</h2><p>No run record.</p>"
    visits = run.get("visits") or []
    statuses = Counter(v.get("status") for v in visits)
    known = [s for s in _RUN_STATUSES if statuses.get(s)] + sorted(s for s in statuses if s not in _RUN_STATUSES)
    outcome = '<span class="bad">FAILED</span>' if run.get("failed") else '<span class="ok">completed</span>'
    out = [f"<h2>Last run</h2><p class=\"meta\">finished at {_e(run.get('finished_at'))}, "
           f"bids-factory {_e(run.get('bids_factory_version'))}: {outcome}</p>",
           "<p>visits: " + (", ".join(f"{statuses[s]} {_e(s)}" for s in known) or "none") + "</p>",
           "<p>" + _e(series_line(sum(v.get("placed") or 0 for v in visits),
                                  [o.get("status") for v in visits for o in v.get("not_placed") or []])) + "</p>"]
    worked = [v for v in visits if v.get("status") not in ("unchanged", "not-selected")]  # the rest: counted
    if worked:
        rows = [_row([_e(v.get("scan_research_id")), _e(v.get("participant_id")), _e(v.get("session_id")),
                      _e(v.get("status")), _e(v.get("placed")), _e(len(v.get("not_placed") or []))],
                     cls=v.get("status"))
                for v in sorted(worked, key=lambda v: str(v.get("scan_research_id")))]
        headers = ["scan_research_id", "subject", "session", "status", "placed", "not placed"]
        out.append(_table(headers, rows, "run-visits"))
    validator = run.get("validator") or {}
    if validator.get("errors") is None:
        out.append("<p>BIDS validator: not run.</p>")
    else:
        cls = "bad" if validator["errors"] else "ok"
        out.append(f'<p>BIDS validator: <span class="{cls}">{_e(validator["errors"])} errors</span>, '
                   f"{_e(validator.get('warnings'))} warnings</p>")
    problems = run.get("problems") or []
    if problems:
        rows = [_row(["failed" if p.get("fatal") else "note", f"<code>{_e(p.get('path'))}</code>",
                      f'<span class="reason">{_e(p.get("reason"))}</span>'], cls="failed" if p.get("fatal") else None)
                for p in sorted(problems, key=lambda p: (not p.get("fatal"), str(p.get("path")), str(p.get("reason"))))]
        out.append("<h3>Problems</h3>" + _table(["kind", "path", "reason"], rows))
    linkage = run.get("linkage") or {}
    for key, label in (("images_without_ehr", "Subjects with images but no EHR row"),
                       ("ehr_without_images", "EHR patients without images")):
        subjects = sorted(map(str, linkage.get(key) or []))
        out.append(f"<p>{_e(label)} ({len(subjects)}): {_e(', '.join(subjects)) or 'none'}</p>")
    orphans = [v for v in visits if v.get("not_placed")
               and (v.get("participant_id"), v.get("session_id")) not in recorded]
    for v in sorted(orphans, key=lambda v: str(v.get("scan_research_id"))):
        out.append(f"<h3>Visit {_e(v.get('scan_research_id'))} ({_e(v.get('status'))}, no session in the "
                   f"dataset): series not placed</h3>" + _not_placed_table(v["not_placed"]))
    return "".join(out)


def _session(record: dict, thumbnails: dict[str, str]) -> str:
    subject, session = str(record.get("participant_id")), str(record.get("session_id"))
    folders = [f"{f.get('kind')} {f.get('day')} {f.get('path')}" for f in record.get("export_folders") or []]
    heuristic, converter = record.get("heuristic") or {}, record.get("converter") or {}
    out = [f'<h3 id="{_e(subject)}_{_e(session)}">{_e(session)} '
           f"<small>(scan_research_id {_e(record.get('scan_research_id'))})</small></h3>",
           f"<p class=\"meta\">export folders: {_e('; '.join(sorted(folders)))}<br />"
           f"converted at {_e(record.get('converted_at'))} by bids-factory {_e(record.get('bids_factory_version'))}, "
           f"{_e(converter.get('name'))} {_e(converter.get('version'))}; heuristic {_e(heuristic.get('name'))} "
           f"(sha256 {_e(str(heuristic.get('sha256') or '')[:12])})</p>"]
    rows = []
    for f in sorted(record.get("files") or [], key=lambda f: str(f.get("path"))):
        image = f"{subject}/{session}/{f.get('path')}"
        src = thumbnails.get(image)
        thumb = f'<img class="thumb" src="{_e(src)}" alt="{_e(image)}" />' if src else ""
        rows.append(_row([thumb, f"<code>{_e(f.get('path'))}</code>", _e(f.get("rule")), _e(f.get("SeriesNumber")),
                          _e(f.get("SeriesDescription")), _join(f.get("source_folders"))]))
    out.append(f"<h4>Placed images ({len(rows)})</h4>")
    headers = ["thumbnail", "file", "rule", "SeriesNumber", "SeriesDescription", "source folders"]
    out.append(_table(headers, rows, "placed") if rows else "<p>none</p>")
    not_placed = record.get("not_placed") or []
    if not_placed:
        counts = ", ".join(f"{n} {_e(label)}" for label, n in _count_statuses(not_placed) if n)
        out.append(f"<h4>Series not placed ({len(not_placed)}: {counts})</h4>" + _not_placed_table(not_placed))
    return "".join(out)


def render_report(visit_records: list[dict], run_record: dict | None, thumbnails: dict[str, str]) -> str:
    """The HTML page of the dataset (one string, XHTML-compatible HTML5).

    ``visit_records``: the per-visit provenance records (``code/bids-factory/visits/*.json``), any order.
    ``run_record``: the last run's record (``code/bids-factory/runs/``), or None; its ``finished_at`` is the
    page's date (the page holds no current time, so a rebuild from the same records is byte-identical).
    ``thumbnails``: image path in the dataset (``sub-<p>/ses-<v>/<datatype>/<name>.nii.gz``) -> the
    ``src`` of its thumbnail, relative to the page; images without an entry get no thumbnail.
    """
    records = sorted(visit_records, key=lambda r: (str(r.get("participant_id")), str(r.get("session_id")),
                                                   str(r.get("scan_research_id"))))
    subjects: dict[str, list[dict]] = {}
    for record in records:
        subjects.setdefault(str(record.get("participant_id")), []).append(record)
    recorded = {(r.get("participant_id"), r.get("session_id")) for r in records}
    date = f" ({_e(run_record.get('finished_at'))})" if run_record and run_record.get("finished_at") else ""
    body = [f"<h1>bids-factory report{date}</h1>",
            '<p class="meta">Built from the provenance records in <code>code/bids-factory/</code>: every image '
            "placed in this dataset, and every series that was not, with the reason.</p>",
            _totals(records), _last_run(run_record, recorded), "<h2>Subjects</h2>"]
    if subjects:
        body.append("<p>" + " | ".join(f'<a href="#{_e(s)}">{_e(s)}</a>' for s in subjects) + "</p>")
    for subject, visits in subjects.items():
        body.append(f'<h2 id="{_e(subject)}">{_e(subject)} <small>({len(visits)} sessions)</small></h2>')
        body.extend(_session(record, thumbnails) for record in visits)
    return ('<!DOCTYPE html>\n<html lang="en" xmlns="http://www.w3.org/1999/xhtml"><head><meta charset="utf-8" />'
            '<meta name="viewport" content="width=device-width, initial-scale=1" />'
            f"<title>bids-factory report</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
