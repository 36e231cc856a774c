"""One report page per subject (``code/bids-factory/report/sub-<label>.html``): its sessions, every placed
image with its thumbnail (click: the enlarged picture), what waits for a decision, and every series not
placed, grouped by what a person must do.

A subject page depends only on that subject's visit records and pictures (no run date, no dataset count):
a run that changes nothing of a subject gives the same bytes, and the writer leaves the file alone.
"""

from __future__ import annotations

from typing import Callable

from bids_factory.model import outcome_group
from bids_factory.report.html import FILTER, breakable, document, e, path, paths, plural, row, table
from bids_factory.report.summary import GROUP_LABELS, REASON_GROUPS, dedupe_reason, one_line

SUBJECT_FOLDER = "report"  # beside the index page (report.html), relative to code/bids-factory/
UP = "../"  # from a subject page to code/bids-factory/


def subject_page_name(subject: str) -> str:
    """The subject page of ``sub-<label>``, relative to code/bids-factory/."""
    return f"{SUBJECT_FOLDER}/{subject}.html"


def render_subject(subject: str, records: list[dict], thumbnails: dict[str, str], enlarged: dict[str, str],
                   mask: Callable[[str], str]) -> str:
    """The page of one subject: ``records`` its visit records (sorted by session); ``thumbnails`` and
    ``enlarged``: image path in the dataset -> picture, relative to code/bids-factory/."""
    body = [f"<h1>{e(subject)} <small>({plural(len(records), 'session')})</small></h1>",
            f'<nav class="toc"><a href="{UP}report.html">all subjects (report index)</a> | '
            + " | ".join(f'<a href="#{e(r.get("session_id"))}">{e(r.get("session_id"))}</a>' for r in records)
            + f" | {FILTER}</nav>"]
    body.extend(_session(record, thumbnails, enlarged, mask) for record in records)
    return document(f"bids-factory report: {subject}", body)


def _session(record: dict, thumbnails: dict[str, str], enlarged: dict[str, str], mask: Callable[[str], str]) -> str:
    subject, session = str(record.get("participant_id")), str(record.get("session_id"))
    folders = [f"{f.get('kind')} {f.get('day')} {f.get('path')}{' (gone from the export)' if f.get('gone') else ''}"
               for f in record.get("export_folders") or []]
    heuristic, converter = record.get("heuristic") or {}, record.get("converter") or {}
    out = [f'<section class="session filterable"><h2 id="{e(session)}">{e(subject)} {e(session)} '
           f"<small>(scan_research_id {e(record.get('scan_research_id'))})</small></h2>",
           f"<p class=\"meta\">export folders: {breakable(mask('; '.join(sorted(folders))))}<br />"
           f"converted {e(mask(str(record.get('converted_at'))))} by bids-factory "
           f"{e(record.get('bids_factory_version'))}, {e(converter.get('name'))} {e(converter.get('version'))}; "
           f"heuristic {e(heuristic.get('name'))} (sha256 {e(str(heuristic.get('sha256') or '')[:12])})</p>"]
    rows = []
    for f in sorted(record.get("files") or [], key=lambda f: str(f.get("path"))):
        image = f"{subject}/{session}/{f.get('path')}"
        rows.append(row([f"<code>{breakable(f.get('path'))}</code>", breakable(f.get("rule")),
                         e(f.get("SeriesNumber")), breakable(f.get("SeriesDescription")), paths(f.get("source_folders"))]))
        if image in thumbnails:  # the picture on its own row, the whole width of the table
            src, large = UP + thumbnails[image], UP + enlarged.get(image, thumbnails[image])
            rows.append(f'<tr class="thumb-row"><td colspan="5"><a class="zoom" href="{e(large)}" '
                        f'title="click to enlarge"><img class="thumb" src="{e(src)}" alt="{e(image)}" '
                        'loading="lazy" /></a></td></tr>')
    out.append(f"<h3>Placed images ({len(record.get('files') or [])}; click a picture to enlarge it)</h3>")
    out.append(table(["file", "rule", "SeriesNumber", "SeriesDescription", "source folders"], rows, "placed")
               if rows else "<p>none</p>")
    pending = record.get("pending_changes") or []
    if pending:  # what a reconversion would change: the placed images stay until a person decides
        out.append(f"<h3>Changes waiting for a decision ({len(pending)}; the placed images stay; "
                   f"<code>--apply-changes {e(record.get('scan_research_id'))}</code> applies them)</h3>"
                   + table(["placed image", "change", "reason", "new image"],
                           [row([f"<code>{breakable(c.get('path'))}</code>", e(c.get("kind")),
                                 e(mask(str(c.get("reason")))), breakable(c.get("new_path") or "")])
                            for c in pending], "pending"))
    not_placed = record.get("not_placed") or []
    if not_placed:
        out.append(f"<h3>Series not placed ({len(not_placed)})</h3>" + not_placed_table(not_placed))
    return "".join(out) + "</section>"


def not_placed_table(outcomes: list[dict]) -> str:
    """Series not placed, by what a person must do (to decide first, expected last); identical rows (same
    series, status and reason) shown once with their count."""
    order = {group: i for i, (group, *_) in enumerate(REASON_GROUPS)}
    groups: dict[tuple, list[dict]] = {}
    for o in outcomes:
        number = o.get("SeriesNumber")
        key = (order[outcome_group(o)], number is None, number if isinstance(number, (int, float)) else 0,
               str(o.get("status")), str(number), str(o.get("SeriesDescription")), str(o.get("ProtocolName")),
               tuple(map(str, o.get("ImageType") or [])), one_line(dedupe_reason(o.get("reason"))),
               tuple(map(str, o.get("source_folders") or [])))
        groups.setdefault(key, []).append(o)
    rows = [row([e(GROUP_LABELS[outcome_group(group[0])]), e(key[3]), str(len(group)), breakable(key[8]),
                 e(group[0].get("SeriesNumber")), breakable(key[5]), breakable(key[6]), path("/".join(key[7])),
                 paths(key[9])],
                cls=key[3], nums=(2,))
            for key, group in sorted(groups.items())]
    return table(["what to do", "status", "count", "reason", "SeriesNumber", "SeriesDescription", "ProtocolName",
                  "ImageType", "source folders"], rows, "not-placed", nums=(2,))
