"""The end-of-run summary: for the user's terminal and, as JSON, for the dataset's provenance.

The counts shown by the terminal summary and by ``report.html`` come from ONE place: :func:`run_counts`
(this run, from its run record) and :func:`dataset_counts` (the whole dataset, from the visit records and
the state of visits with nothing placed), phrased by :func:`count_phrases`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

from bids_factory import __version__
from bids_factory.model import (HISTORY_VERSION, RUN_RECORD_VERSION, HistoryEntry, ReasonGroup, RunRecord,
                                 RunSummary, SeriesStatus, VisitRecord, VisitStatus, outcome_group)
from bids_factory.write.dataset_paths import LINKAGE

LINKAGE_FILE = LINKAGE.as_posix()
NAMES_SHOWN = 10  # subjects named in the run record, the summary and the page; all of them in LINKAGE_FILE

# (label, statuses) of series that were not placed, in the order they are shown everywhere.
# How the summary and the report page group the series not placed, and name the visits' statuses.
NOT_PLACED_GROUPS = (("held back", (SeriesStatus.HELD_BACK,)),
                     ("unmatched", (SeriesStatus.UNMATCHED, SeriesStatus.AMBIGUOUS)),
                     ("rejected", (SeriesStatus.REJECTED,)), ("without image", (SeriesStatus.NOT_CONVERTED,)))
VISIT_LABELS = ((VisitStatus.PLACED, "placed"), (VisitStatus.NOTHING_TO_PLACE, "with nothing to place"),
                (VisitStatus.FAILED, "failed"), (VisitStatus.UNCHANGED, "unchanged since the last run"),
                (VisitStatus.NOT_SELECTED, "skipped (other subjects)"))
COUNTED_ONLY = (VisitStatus.UNCHANGED, VisitStatus.NOT_SELECTED)  # visits a run record counts without listing them
_ALWAYS_SHOWN = ("placed", "failed", "held back", "unmatched", "subjects", "sessions", "images placed")

# What a person must do about a series not placed: (group, label in counts, heading, the next step in general).
# The summary counts and the report groups every series not placed by these, in this order.
REASON_GROUPS = (
    (ReasonGroup.DECIDE, "to decide", "To decide: series no rule places",
     "a series nobody recognised yet: if it belongs in the dataset, write a rule for it (bids-factory inventory "
     "EXPORT --write-heuristic site-new.json starts one, pre-filled); a rule that names a file wrongly is corrected"),
    (ReasonGroup.SUPPLY, "to supply", "To supply: metadata missing or invalid",
     "BIDS or a sidecar schema needs a field the scanner's data do not give (or give wrong): the reason names "
     "it; a site adds or corrects it with sidecar_changes in its own heuristic, or checks against its own "
     "schemas (--schemas)"),
    (ReasonGroup.FIX_EXPORT, "export to fix", "To fix in the export: incomplete or unreadable",
     "the export holds an incomplete series, unreadable files or missing headers: export the series again; "
     "the next run converts the visit again"),
    (ReasonGroup.NOTHING, "nothing to do", "Nothing to do: expected",
     "scouts, localizers, scanner-derived maps and objects that are no image: never placed, listed for "
     "completeness"),
)
GROUP_LABELS = {group: label for group, label, _, _ in REASON_GROUPS}
_INDEX = re.compile(r"\[(\d+)\]")


def run_counts(record: dict) -> dict[str, int]:
    """This run's counts, from its run record: visits by status and series by outcome."""
    visits = record.get("visits") or []
    statuses = Counter(v.get("status") for v in visits) + Counter(record.get("visits_counted") or {})
    outcomes = Counter(o.get("status") for v in visits for o in v.get("not_placed") or [])
    counts = {f"visits {key}": statuses.get(key, 0) for key, _ in VISIT_LABELS}
    counts["series placed"] = sum(int(v.get("placed") or 0) for v in visits)
    for label, statuses_ in NOT_PLACED_GROUPS:
        counts[f"series {label}"] = sum(outcomes[s] for s in statuses_)
    counts.update(_by_group(visits))
    return counts


TO_DECIDE = "todo to decide"  # series no rule places (not a scout or derived map): a rule to write
TO_SUPPLY = "todo to supply"  # series held back for metadata: the field to add
TO_FIX_EXPORT = "todo export to fix"  # series incomplete or unreadable in the export: to export again


def _by_group(records) -> dict[str, int]:
    """``{"todo to decide": 1, ..., "todo nothing to do": 22}``: series not placed by what a person must do."""
    found = Counter(outcome_group(o) for r in records for o in r.get("not_placed") or [])
    return {f"todo {label}": found[group] for group, label, _, _ in REASON_GROUPS}


def dataset_counts(visit_records: list[VisitRecord], unplaced_visits: list[dict] = ()) -> dict[str, int]:
    """The whole dataset: subjects, sessions, images, and series still not placed (held back...).

    ``unplaced_visits``: visit states of visits with nothing placed (their ``not_placed`` series), so a
    run that changes nothing still shows what is held back.
    """
    outcomes = Counter(o.get("status") for r in [*visit_records, *unplaced_visits] for o in r.get("not_placed") or [])
    counts = {"subjects": len({r.get("participant_id") for r in visit_records}),
              "sessions": len({(r.get("participant_id"), r.get("session_id")) for r in visit_records}),
              "images placed": sum(len(r.get("files") or []) for r in visit_records)}
    for label, statuses in NOT_PLACED_GROUPS:
        counts[f"series {label}"] = sum(outcomes[s] for s in statuses)
    counts.update(_by_group([*visit_records, *unplaced_visits]))
    return counts


def count_phrases(counts: dict[str, int]) -> dict[str, str]:
    """``{"visits": "3 placed, 0 failed", "series": "9 placed, 2 held back", "dataset": "2 subjects, ...",
    "todo": "to decide 1, to supply 0, export to fix 0, nothing to do 22"}`` (zero counts of rare kinds left
    out; every group of what to do is shown when a series is not placed)."""
    phrases: dict[str, list[str]] = {}
    todo = [(key.removeprefix("todo "), n) for key, n in counts.items() if key.startswith("todo ")]
    if any(n for _, n in todo):
        phrases["todo"] = [f"{label} {n}" for label, n in todo]
    for key, n in counts.items():
        kind, _, what = key.partition(" ")
        if kind == "todo":
            continue
        if kind not in ("visits", "series"):
            kind, what = "dataset", key
        label = dict(VISIT_LABELS).get(what, what) if kind == "visits" else what
        if n or what in _ALWAYS_SHOWN:
            phrases.setdefault(kind, []).append(f"{n} {label}")
    return {kind: ", ".join(parts) for kind, parts in phrases.items()}


def dedupe_reason(reason: str) -> str:
    """A reason made of ``; ``-separated messages, each said once; messages that differ only by an item
    index (``VoxelSize[0]``, ``VoxelSize[2]``) are said once, naming every index."""
    groups: dict[str, list[str]] = {}
    for part in (p.strip() for p in str(reason or "").split("; ")):
        if not part:
            continue
        key = _INDEX.sub("[#]", part, count=1)
        found = _INDEX.search(part)
        groups.setdefault(key, [])
        if found and found.group(1) not in groups[key]:
            groups[key].append(found.group(1))
    merged = []
    for key, indexes in groups.items():
        if len(indexes) > 1:  # one message for several items: the values may differ, keep the first as example
            merged.append(key.replace("[#]", f"[{','.join(indexes)}]", 1))
        else:
            merged.append(key.replace("[#]", f"[{indexes[0]}]", 1) if indexes else key)
    return "; ".join(merged)


def grouped_not_placed(visits: list[dict]) -> list[dict]:
    """Series not placed, identical ones (same group, status, description, ImageType, reason) counted once,
    in the order of :data:`REASON_GROUPS` (what to decide first, what is expected last); each with ``count``,
    ``visit_count`` and its ``visits`` (scan_research_ids, sorted)."""
    return merged_groups({**o, "count": 1, "visits": [visit.get("scan_research_id")]}
                         for visit in visits for o in visit.get("not_placed") or [])


def merged_groups(rows, shown: int | None = None) -> list[dict]:
    """:func:`grouped_not_placed` of rows already counted (``count``, ``visits``, optionally ``visit_count``:
    e.g. the visit index's groups, :meth:`bids_factory.write.visit_index.VisitIndex.not_placed_groups`):
    rows whose reasons read the same once shortened become one; ``shown``: the visits kept per group."""
    groups: dict[tuple, dict] = {}
    for o in rows:
        reason = one_line(dedupe_reason(o.get("reason")))
        key = (outcome_group(o), o.get("status"), o.get("SeriesDescription"), tuple(o.get("ImageType") or ()),
               reason)
        group = groups.setdefault(key, {"group": key[0], "status": o.get("status"),
                                        "SeriesDescription": o.get("SeriesDescription"),
                                        "ImageType": list(o.get("ImageType") or ()), "reason": reason,
                                        "count": 0, "visit_count": 0, "visits": set()})
        group["count"] += o["count"]
        group["visits"].update(o["visits"])
        group["visit_count"] += o.get("visit_count", len(o["visits"]))
    for group in groups.values():
        group["visits"] = sorted(group["visits"], key=str)
        group["visit_count"] = max(group["visit_count"], len(group["visits"])) if shown else len(group["visits"])
        group["visits"] = group["visits"][:shown] if shown else group["visits"]
    order = {group: i for i, (group, *_) in enumerate(REASON_GROUPS)}
    return sorted(groups.values(), key=lambda g: (order[g["group"]], str(g["status"]), str(g["SeriesDescription"]),
                                                  str(g["reason"])))


def one_line(text: str) -> str:
    """A reason on one line (a message that carried a JSON block or line breaks)."""
    return " ".join(str(text or "").split())


def grouped_problems(problems: list[dict]) -> list[tuple[bool, str, int, list[str]]]:
    """(fatal, reason, count, paths) with one entry per identical reason."""
    groups: dict[tuple, list[str]] = {}
    for p in problems:
        groups.setdefault((bool(p.get("fatal")), str(p.get("reason"))), []).append(str(p.get("path")))
    return [(fatal, reason, len(paths), sorted(paths)) for (fatal, reason), paths in
            sorted(groups.items(), key=lambda item: (not item[0][0], item[0][1]))]


def problem_lines(problems: list[dict]) -> list[str]:
    """The problems as the summary and the inventory print them: one line per identical reason
    (``FAILED ×1203: a, b, c and 1200 more: reason``), fatal ones first."""
    return [f"  {'FAILED' if fatal else 'note'}{_times(count)}: {_some(paths)}: {reason}"
            for fatal, reason, count, paths in grouped_problems(problems)]


def _times(count: int) -> str:
    return f" \u00d7{count}" if count > 1 else ""


def summary_lines(report: RunSummary) -> list[str]:
    record = report.record or run_record(report)
    phrases = count_phrases(run_counts(record))
    lines = [f"visits: {phrases['visits']}",
             f"series: {phrases['series']}; {record.get('non_dicom_files', 0)} non-DICOM files ignored"
             + (f"; {record['non_image_objects']} non-image DICOM objects (not images)"
                if record.get("non_image_objects") else "")]
    if phrases.get("todo"):
        lines.append(f"series not placed, by what to do: {phrases['todo']}")
    groups = grouped_not_placed(record["visits"])
    expected = [g for g in groups if g["group"] == ReasonGroup.NOTHING]  # one line: nothing for anyone to do
    for group in (g for g in groups if g["group"] != ReasonGroup.NOTHING):
        times = _times(group["count"])
        visits = _some(group["visits"])
        lines.append(f"  {GROUP_LABELS[group['group']]}: {group['status']} "
                     f"{group['SeriesDescription'] or '(no description)'}{times} "
                     f"[{'/'.join(group['ImageType']) or '-'}] (visit{'s' if group['visit_count'] > 1 else ''} "
                     f"{visits}): {group['reason']}")
    if expected:
        kinds = [f"{g['SeriesDescription'] or '(no description)'}{_times(g['count'])}"
                 for g in expected]
        lines.append(f"  {GROUP_LABELS[ReasonGroup.NOTHING]}: {sum(g['count'] for g in expected)} series expected "
                     f"(scouts, scanner-derived maps, no image; the report lists each): {_some(kinds, 5)}")
    lines += problem_lines(record["problems"])
    linkage = record.get("linkage") or {}
    for key, label in (("images_without_ehr", "subjects with images but no EHR row"),
                       ("ehr_without_images", "EHR patients without images")):
        names, count = linkage_names(linkage, key)
        if count:
            more = f" and {count - len(names)} more (all: {LINKAGE_FILE})" if count > len(names) else ""
            lines.append(f"  linkage: {count} {label}: {', '.join(names)}{more}")
    validator = record.get("validator") or {}
    if validator.get("errors") is not None:
        kept = f" (all messages: code/bids-factory/{validator['output']})" if validator.get("output") else ""
        lines.append(f"BIDS validator: {validator['errors']} errors, {validator['warnings']} warnings{kept}")
    if report.dataset:
        dataset = count_phrases(report.dataset)
        lines.append(f"dataset: {dataset['dataset']}; series not placed: {dataset['series']}"
                     + (f" ({dataset['todo']})" if dataset.get("todo") else ""))
    return lines


def linkage_names(linkage: dict, key: str) -> tuple[list[str], int]:
    """(the names a run record keeps, how many there are) for one kind of linkage mismatch (a record
    written before the counts were kept lists every name)."""
    names = [str(name) for name in linkage.get(key) or []]
    count = linkage.get(f"{key}_count")
    return names, count if isinstance(count, int) else len(names)


def _some(items: list[str], shown: int = 3) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


def run_record(report: RunSummary) -> RunRecord:
    """JSON-able record of a run (no patient field: labels, research ids and series only)."""
    return {
        "run_record_version": RUN_RECORD_VERSION,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "bids_factory_version": __version__,
        "failed": report.failed,
        "visits": [
            {
                "scan_research_id": v.scan_research_id, "status": v.status,
                "participant_id": f"sub-{v.subject_label}" if v.subject_label else None,
                "session_id": f"ses-{v.session_label}" if v.session_label else None,
                "placed": v.placed,
                "not_placed": [o.record() for o in v.not_placed],
            }
            for v in report.visits if v.status not in COUNTED_ONLY
        ],
        # visits the run did not work on: counted, not listed (the record stays small whatever the dataset)
        "visits_counted": dict(Counter(str(v.status) for v in report.visits if v.status in COUNTED_ONLY)),
        "problems": [{"path": p.path, "reason": p.reason, "fatal": p.fatal} for p in report.problems],
        "non_dicom_files": report.non_dicom_files,
        "non_image_objects": report.non_image_objects,
        # the first names and the counts: the record stays small whatever the EHR (all: LINKAGE_FILE)
        "linkage": {"images_without_ehr": [f"sub-{s}" for s in report.images_without_ehr[:NAMES_SHOWN]],
                    "ehr_without_images": [f"sub-{s}" for s in report.ehr_without_images[:NAMES_SHOWN]],
                    "images_without_ehr_count": len(report.images_without_ehr),
                    "ehr_without_images_count": len(report.ehr_without_images)},
        "validator": {"errors": report.validator_errors, "warnings": report.validator_warnings,
                      "output": report.validator_output, "issues": list(report.validator_issues)},
    }


def history_entry(record: RunRecord, dataset: dict[str, int] | None = None) -> HistoryEntry:
    """One line of the dataset's run history (``code/bids-factory/history.json``), from a run record and
    the dataset's counts after the run (what is still held back, also after a run that changed nothing)."""
    counts = run_counts(record)
    return {"history_version": HISTORY_VERSION, "finished_at": record.get("finished_at"),
            "failed": bool(record.get("failed")),
            "visits placed": counts["visits placed"], "visits failed": counts["visits failed"],
            "visits unchanged": counts["visits unchanged"], "series placed": counts["series placed"],
            "series held back": counts["series held back"],
            "held back in dataset": (dataset or {}).get("series held back"),
            **{f"dataset {key}": n for key, n in (dataset or {}).items() if key.startswith("todo ")},
            "validator errors": (record.get("validator") or {}).get("errors")}
