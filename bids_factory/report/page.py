"""The visual report: an index page (``code/bids-factory/report.html``) linking to one page per subject
(:mod:`bids_factory.report.subject_page`), rebuilt by every run.

Built only from the provenance records in ``code/bids-factory/`` (the visit records of ``visits/``, the
state of visits with nothing placed, the run history and the last run record of ``runs/``), so it can be
rebuilt at any time. The index holds the counts, the history of runs, everything still not placed grouped
by what a person must do (:data:`bids_factory.report.summary.REASON_GROUPS`) and one link line per subject:
nothing else on it grows with the dataset (identical series are one row, a row names its first visits,
the last run's tables are capped). Only the fields named below are shown (never a record's other keys, so
no patient field can appear), and everything is sorted: the same records give the same bytes. Counts are
:mod:`bids_factory.report.summary`'s, the same as the terminal summary's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bids_factory.model import ReasonGroup, VisitRecord, VisitStatus
from bids_factory.privacy.deidentify import FREE_TEXT_KEYS, SITE_KEYS
from bids_factory.report.html import FILTER, breakable, document, e, path, paths, plural, row, table
from bids_factory.report.subject_page import not_placed_table, render_subject, subject_page_name
from bids_factory.report.summary import (GROUP_LABELS, LINKAGE_FILE, REASON_GROUPS, count_phrases, dataset_counts,
                                         grouped_not_placed, grouped_problems, linkage_names, one_line, run_counts)

Mask = Callable[[str], str]

HISTORY_ROWS = 50  # the newest runs shown in the history table
ROWS_SHOWN = 100  # rows of one table of the index at most (the rest: counted, on the subject pages)
VISITS_NAMED = 5  # visits named (linked) in one row of series not placed


@dataclass(frozen=True)
class DatasetOverview:
    """What the index page shows of the whole dataset, whatever its size: ``counts``
    (:func:`~bids_factory.report.summary.dataset_counts`), the series ``not_placed`` grouped
    (:func:`~bids_factory.report.summary.grouped_not_placed`, a group names its first visits and counts the
    rest) and ``sessions`` ((participant_id, session_id, scan_research_id), sorted). A run builds it from the
    visit index; :func:`overview_from_records` from the records themselves (the same page)."""

    counts: dict[str, int]
    not_placed: list[dict]
    sessions: list[tuple[str, str, str]]


def overview_from_records(visit_records: list[VisitRecord], unplaced: list[dict] | None = None) -> DatasetOverview:
    unplaced = unplaced or []
    return DatasetOverview(dataset_counts(visit_records, unplaced), grouped_not_placed([*visit_records, *unplaced]),
                           sorted((str(r.get("participant_id")), str(r.get("session_id")),
                                   str(r.get("scan_research_id"))) for r in visit_records))


def report_pages(visit_records: list[VisitRecord], run_record: dict | None, thumbnails: dict[str, str],
                 enlarged: dict[str, str] | None = None, history: list[dict] | None = None,
                 unplaced: list[dict] | None = None, mask_dates: Mask | None = None) -> dict[str, str]:
    """Every page of the report from every record: relative path under ``code/bids-factory/`` -> text
    (``report.html``, the index, and ``report/sub-<label>.html`` per subject). The arguments are
    :func:`render_report`'s; ``enlarged``: image path -> its enlarged picture (else the thumbnail is enlarged).
    A run computes the index from the visit index and only the pages of subjects it changed."""
    return {"report.html": render_report(visit_records, run_record, thumbnails, history, unplaced, mask_dates),
            **subject_pages(_subjects(visit_records), thumbnails, enlarged or {}, mask_dates)}


def subject_pages(records_by_subject: dict[str, list[dict]], thumbnails: dict[str, str], enlarged: dict[str, str],
                  mask_dates: Mask | None = None) -> dict[str, str]:
    """The pages of these subjects (``sub-<label>`` -> its visit records)."""
    mask = mask_dates or (lambda text: text)
    ordered = _subjects([r for records in records_by_subject.values() for r in records])
    return {subject_page_name(subject): render_subject(subject, records, thumbnails, enlarged, mask)
            for subject, records in ordered.items()}


def _subjects(visit_records) -> dict[str, list[dict]]:
    subjects: dict[str, list[dict]] = {}
    for record in sorted(visit_records, key=lambda r: (str(r.get("participant_id")), str(r.get("session_id")),
                                                       str(r.get("scan_research_id")))):
        subjects.setdefault(str(record.get("participant_id")), []).append(record)
    return subjects


def render_report(visit_records: list[VisitRecord], run_record: dict | None, thumbnails: dict[str, str],
                  history: list[dict] | None = None, unplaced: list[dict] | None = None,
                  mask_dates: Mask | None = None) -> str:
    """The index page of the dataset from its visit records (:func:`index_page` of their overview).

    ``visit_records``: the per-visit provenance records (``code/bids-factory/visits/*.json``), any order.
    ``thumbnails``: image path in the dataset -> its thumbnail (used by the subject pages; here unused).
    ``unplaced``: states of visits with nothing placed (their series not placed still count).
    """
    return index_page(overview_from_records(visit_records, unplaced), run_record, history, mask_dates)


def index_page(overview: DatasetOverview, run_record: dict | None, history: list[dict] | None = None,
               mask_dates: Mask | None = None) -> str:
    """The index page of the dataset (one string, XHTML-compatible HTML5).

    ``run_record``: the last run's record (``code/bids-factory/runs/``), or None; its ``finished_at`` is the
    page's date (the page holds no current time, so a rebuild from the same records is byte-identical).
    ``history``: one entry per run (``report.history_entry``), oldest first. ``mask_dates``: the date
    policy's text filter for the dates shown (None: dates shown as recorded).
    """
    mask = mask_dates or (lambda text: text)
    subjects: dict[str, int] = {}
    for subject, _, _ in overview.sessions:
        subjects[subject] = subjects.get(subject, 0) + 1
    recorded = {(subject, session) for subject, session, _ in overview.sessions}
    links = {visit: f"{subject_page_name(subject)}#{session}" for subject, session, visit in overview.sessions}
    date = f" ({e(mask(str(run_record.get('finished_at'))))})" if run_record and run_record.get("finished_at") else ""
    body = [f"<h1>bids-factory report{date}</h1>",
            '<p class="meta">Built from the provenance records in <code>code/bids-factory/</code> by every run: '
            "what the dataset holds, every series that was not placed with the reason and what to do about it, "
            "and one page per subject with its images.</p>",
            '<nav class="toc"><a href="#dataset">Dataset</a> | <a href="#todo">What to do</a> | '
            '<a href="#history">History</a> | <a href="#last-run">Last run</a> | <a href="#subjects">Subjects</a> | '
            f"{FILTER}</nav>",
            _dataset(overview.counts), _todo(overview.not_placed, links), _history(history or [], mask),
            _last_run(run_record, recorded, mask), f'<h2 id="subjects">Subjects ({len(subjects)})</h2>']
    if subjects:
        body.append('<ul class="subjects">' + "".join(
            f'<li class="filterable"><a href="{e(subject_page_name(s))}">{e(s)}</a> '
            f'({plural(n, "session")})</li>' for s, n in sorted(subjects.items())) + "</ul>")
    else:
        body.append("<p>none yet</p>")
    return document("bids-factory report", body)


def _dataset(counts: dict[str, int]) -> str:
    rows = [row([e(label), f"{n}"], nums=(1,)) for label, n in counts.items() if not label.startswith("todo ")]
    todo = [row([f'<a href="#todo-{e(group)}">{e(label)}</a>', f"{counts[f'todo {label}']}"], nums=(1,))
            for group, label, _, _ in REASON_GROUPS]
    return ('<h2 id="dataset">Dataset</h2>' + table(["", "count"], rows, "totals", nums=(1,))
            + "<h3>Series not placed, by what to do</h3>" + table(["", "series"], todo, "totals todo", nums=(1,)))


def _todo(groups: list[dict], links: dict[str, str]) -> str:
    """Everything still not placed in the dataset, one section per group of what to do."""
    out = ['<h2 id="todo">What to do (series not placed in the whole dataset; identical ones counted once)</h2>']
    for group, label, heading, step in REASON_GROUPS:
        mine = [g for g in groups if g["group"] == group]
        out.append(f'<h3 id="todo-{e(group)}">{e(heading)} ({sum(g["count"] for g in mine)})</h3>'
                   f'<p class="step">{e(step)}</p>')
        if not mine:
            continue
        rows = []
        for g in mine[:ROWS_SHOWN]:
            named = ", ".join(f'<a href="{e(links[v])}">{e(v)}</a>' if v in links else e(v)
                              for v in g["visits"][:VISITS_NAMED])
            more = f" and {g['visit_count'] - VISITS_NAMED} more" if g["visit_count"] > VISITS_NAMED else ""
            rows.append(row([e(g["status"]), str(g["count"]), breakable(g["SeriesDescription"]),
                             path("/".join(g["ImageType"])), breakable(g["reason"]), named + more],
                            cls=f'{g["status"]} filterable', nums=(1,)))
        listed = table(["status", "count", "SeriesDescription", "ImageType", "reason", "visits"], rows,
                       f"still-not-placed {group}", nums=(1,))
        out.append(f"<details><summary>the {plural(len(mine), 'kind')} of expected series</summary>{listed}</details>"
                   if group == ReasonGroup.NOTHING else listed)  # work first: what is expected stays folded
        if len(mine) > ROWS_SHOWN:
            out.append(f'<p class="meta">{len(mine) - ROWS_SHOWN} more kinds of series: on the subject pages.</p>')
    return "".join(out)


def _history(history: list[dict], mask: Callable[[str], str]) -> str:
    if not history:
        return ""
    shown = history[-HISTORY_ROWS:][::-1]
    keys = ["visits placed", "series placed", "series held back", "held back in dataset",
            *(f"dataset todo {label}" for _, label, _, _ in REASON_GROUPS[:3]), "visits failed", "validator errors"]
    nums = tuple(range(2, 2 + len(keys)))
    rows = [row([e(mask(str(h.get("finished_at") or ""))),
                 '<span class="bad">failed</span>' if h.get("failed") else '<span class="ok">ok</span>',
                 *(e(h.get(k)) for k in keys)], nums=nums) for h in shown]
    more = f"<p class=\"meta\">{len(history) - len(shown)} earlier runs not shown.</p>" if len(history) > len(shown) else ""
    return ('<h2 id="history">History of runs</h2>'
            + table(["finished", "outcome", "visits placed", "series placed", "series held back",
                     "still held back in the dataset", *(f"dataset: {label}" for _, label, _, _ in REASON_GROUPS[:3]),
                     "visits failed", "validator errors"], rows, "history", nums=nums) + more)


_REMOVED = (*SITE_KEYS, *FREE_TEXT_KEYS)


def _validator(validator: dict) -> str:
    if validator.get("errors") is None:
        return "<p>BIDS validator: not run by this run (it runs when a run changes the dataset).</p>"
    cls = "bad" if validator["errors"] else "ok"
    link = (f' (<a href="{e(validator["output"])}">full validator output, JSON</a>)'
            if validator.get("output") else "")
    out = [f'<p>BIDS validator: <span class="{cls}">{e(validator["errors"])} errors</span>, '
           f"{e(validator.get('warnings'))} warnings{link}</p>"]
    issues = validator.get("issues") or []
    if any(any(key in f"{i.get('code')} {i.get('message')}" for key in _REMOVED) for i in issues):
        out.append(f'<p class="step">Warnings that {", ".join(_REMOVED[:3])} or other site and free-text fields '
                   "are missing are expected: bids-factory removes them on purpose (de-identification: they name "
                   "the hospital, its scanner or hold typed text); <code>--keep-site-fields</code> keeps the site "
                   "fields when the dataset stays in the hospital.</p>")
    if issues:
        rows = [row([e(i.get("severity")), e(i.get("code")), str(i.get("count")), breakable(one_line(i.get("message"))),
                     paths((i.get("locations") or [])[:2])], cls=f'{i.get("severity")} filterable', nums=(2,))
                for i in issues[:ROWS_SHOWN]]
        out.append(f"<details><summary>validator messages by code ({len(issues)} codes)</summary>"
                   + table(["severity", "code", "count", "message", "where (first ones)"], rows, "validator",
                           nums=(2,)) + "</details>")
    return "".join(out)


def _last_run(run: dict | None, recorded: set[tuple], mask: Callable[[str], str]) -> str:
    if run is None:
        return '<h2 id="last-run">Last run</h2><p>No run record.</p>'
    visits = run.get("visits") or []
    phrases = count_phrases(run_counts(run))
    outcome = '<span class="bad">FAILED</span>' if run.get("failed") else '<span class="ok">completed</span>'
    todo = f"<br />series not placed, by what to do: {e(phrases['todo'])}" if phrases.get("todo") else ""
    out = [f"<h2 id=\"last-run\">Last run</h2><p class=\"meta\">finished {e(mask(str(run.get('finished_at'))))}, "
           f"bids-factory {e(run.get('bids_factory_version'))}: {outcome}</p>",
           f"<p>visits: {e(phrases['visits'])}<br />series: {e(phrases['series'])}{todo}</p>"]
    worked = sorted((v for v in visits if v.get("status") not in (VisitStatus.UNCHANGED, VisitStatus.NOT_SELECTED)),
                    key=lambda v: str(v.get("scan_research_id")))
    if worked:
        subjects = {subject for subject, _ in recorded}
        rows = [row([e(v.get("scan_research_id")), _subject_link(v, subjects), e(v.get("session_id")),
                     e(v.get("status")), e(v.get("placed")), e(len(v.get("not_placed") or []))],
                    cls=v.get("status"), nums=(4, 5)) for v in worked[:ROWS_SHOWN]]
        out.append(table(["scan_research_id", "subject", "session", "status", "placed", "not placed"], rows,
                         "run-visits", nums=(4, 5)))
        if len(worked) > ROWS_SHOWN:
            out.append(f'<p class="meta">and {len(worked) - ROWS_SHOWN} more visits (see the subject pages).</p>')
    out.append(_validator(run.get("validator") or {}))
    problems = grouped_problems(run.get("problems") or [])
    if problems:
        rows = [row([GROUP_LABELS_FOR_PROBLEMS[fatal], str(count),
                     paths(found[:5] + ([f"and {len(found) - 5} more"] if len(found) > 5 else [])),
                     breakable(one_line(reason))], cls="failed" if fatal else None, nums=(1,))
                for fatal, reason, count, found in problems[:ROWS_SHOWN]]
        out.append("<h3>Problems</h3>" + table(["what to do", "count", "path", "reason"], rows, "problems", nums=(1,)))
    linkage = run.get("linkage") or {}
    for key, label in (("images_without_ehr", "Subjects with images but no EHR row"),
                       ("ehr_without_images", "EHR patients without images")):
        subjects, count = linkage_names(linkage, key)
        more = f" and {count - len(subjects)} more (all: {LINKAGE_FILE})" if count > len(subjects) else ""
        out.append(f"<p>{e(label)} ({count}): {e(', '.join(sorted(subjects))) or 'none'}{e(more)}"
                   + (" (export to fix: the EHR export and the images name different patients)" if count else "")
                   + "</p>")
    orphans = sorted((v for v in visits if v.get("not_placed")
                      and (v.get("participant_id"), v.get("session_id")) not in recorded),
                     key=lambda v: str(v.get("scan_research_id")))
    for v in orphans[:VISITS_NAMED]:
        out.append(f"<h3>Visit {e(v.get('scan_research_id'))} ({e(v.get('status'))}, no session in the "
                   f"dataset): series not placed</h3>" + not_placed_table(v["not_placed"]))
    if len(orphans) > VISITS_NAMED:
        out.append(f'<p class="meta">and {len(orphans) - VISITS_NAMED} more visits with no session: their series '
                   "are counted under What to do.</p>")
    return "".join(out)


# A run's problems carry no group: a failure is in the export (a file, a folder, a name), a note is information.
GROUP_LABELS_FOR_PROBLEMS = {True: GROUP_LABELS[REASON_GROUPS[2][0]], False: "note"}


def _subject_link(visit: dict, subjects: set) -> str:
    """The subject of a visit of the run, linked to its page when it has one (a session in the dataset)."""
    subject = visit.get("participant_id")
    return f'<a href="{e(subject_page_name(str(subject)))}">{e(subject)}</a>' if subject in subjects else e(subject)
