"""Stage 6 — finalize: the dataset-level files, computed from every visit ever placed.

``dataset_description.json``, ``README``, ``CHANGES``, ``participants.tsv/.json``,
``sub-*/sub-*_sessions.tsv``, ``scans.json`` and ``sessions.json`` (column descriptions inherited by
every scans/sessions file) are derived from the visit records in ``code/bids-factory/visits``, so they
always describe the whole dataset, not only this run. Content is computed here; the writer writes it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from bids_factory import __version__
from bids_factory.ehr.tables import EhrResult
from bids_factory.errors import DatasetError
from bids_factory.write.json_merge import merge_json
from bids_factory.model import BIDS_VERSION
from bids_factory.tsv import merge_tsv, read_tsv
from bids_factory.write.dataset_writer import DatasetWriter
from bids_factory.write.dataset_paths import WRITTEN


DEFAULT_NAME = "bids-factory dataset"

SCANS_SIDECAR = {
    "source_day": {"Description": "Export day(s) (yyyymmdd) of the Data Capture folder(s) the image came from."},
    "source_folder": {"Description": "Data Capture visit folder(s), relative to the export root, holding the source DICOM."},
    "series_number": {"Description": "DICOM SeriesNumber of the source series."},
    "heuristic_rule": {"Description": "Name of the heuristic rule (Dcm2Bids description) that placed the image."},
}
SESSIONS_SIDECAR = {
    "scan_research_id": {"Description": "The Data Capture scan_research_id (visit folder name) of this session."},
    "export_days": {"Description": "Export days (yyyymmdd) on which folders of this visit were received."},
}
PARTICIPANTS_SIDECAR = {
    "participant_id": {"Description": "Subject label: the depersonalised DICOM PatientID reduced to [A-Za-z0-9]."},
}

README_TEXT = """\
# {name}

This BIDS dataset is written by bids-factory {version} from a hospital's Data Capture exports
(`DICOM/<yyyy>/<yyyymmdd>/<scan_research_id>/`). One subject is one (depersonalised) patient,
one session is one visit (`scan_research_id`).

- Images were converted by dcm2niix and placed by a Dcm2Bids-format heuristic.
- `scans.tsv` files name the export day, visit folder, DICOM series and heuristic rule of every image.
- `code/bids-factory/visits/` holds one provenance record per visit: its export folders, the
  converter's messages and every series that was NOT placed, with the reason.
"""


def dataset_files(writer: DatasetWriter, converter_version: str, dataset_name: str | None = None,
                  changes: list[str] | None = None, ehr: EhrResult | None = None,
                  authors: tuple[str, ...] | None = None, license: str | None = None) -> dict[str, str]:
    """Relative path -> text of every dataset-level file, from the visit records (as the index holds them:
    :meth:`bids_factory.write.visit_index.VisitIndex.visits`) and the EHR tables.

    ``dataset_description.json`` is merged: a curator's keys stay; ``authors``/``license`` replace
    ``Authors``/``License`` only when given (never invented: without them the validator warns).
    """
    records = list(writer.index.visits())
    files: dict[str, str] = {}
    description = writer.read_json("dataset_description.json", default={}) or {}
    description.update({
        "Name": dataset_name or description.get("Name") or DEFAULT_NAME,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "GeneratedBy": [
            {"Name": "bids-factory", "Version": __version__,
             "Description": "Data Capture export to BIDS (discover, extract, plan, write, finalize)"},
            {"Name": "dcm2niix", "Version": converter_version},
        ] + [g for g in description.get("GeneratedBy") or []  # a curator's other entries are kept
             if not (isinstance(g, dict) and g.get("Name") in ("bids-factory", "dcm2niix"))],
    })
    if authors:
        description["Authors"] = list(authors)
    if license:
        description["License"] = license
    files["dataset_description.json"] = json.dumps(description, indent=2, ensure_ascii=False) + "\n"
    if not (writer.root / "README.md").exists() and not (writer.root / "README").exists():
        files["README.md"] = README_TEXT.format(name=description["Name"], version=__version__)
    changes = list(changes or []) + _unlisted_departures(writer, records)
    if changes:
        files["CHANGES"] = _changes_text(writer, changes)
    elif not (writer.root / "CHANGES").exists():
        files["CHANGES"] = _changes_text(writer, ["Dataset created by bids-factory (no visit placed yet)."])
    elif writer.dates.holds_date(previous := (writer.root / "CHANGES").read_text(encoding="utf-8")):
        files["CHANGES"] = previous  # written under a looser date policy: the writer applies this one

    sessions: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        sessions[record["participant_id"]].append(record)
    moved_away = {(old, r["session_id"]) for r in records for old in r.get("moved_from") or []}
    if sessions:  # the validator refuses participants.tsv in a dataset without any sub- folder yet
        files.update(_participants_files(writer, sorted(sessions), ehr, {old for old, _ in moved_away}))
    if ehr is not None:
        for table in ehr.tables:
            files[f"phenotype/{table.name}.tsv"] = table.tsv
            files.update(_merged(writer, f"phenotype/{table.name}.json", table.sidecar))
        if ehr.bidsignore:  # added to a curator's lines, never replacing them
            path = writer.root / ".bidsignore"
            lines = path.read_text().splitlines() if path.exists() else []
            files[".bidsignore"] = "".join(f"{line}\n" for line in lines + [x for x in ehr.bidsignore if x not in lines])
    if records:  # column descriptions need a scans/sessions file to describe (else a validator error)
        # a curator's descriptions (of the columns they added, or their wording of ours) are kept
        files.update(_merged(writer, "scans.json", SCANS_SIDECAR))
        files.update(_merged(writer, "sessions.json", SESSIONS_SIDECAR))
    unlisted = writer.marks.unlisted_subjects()  # this run's and those a killed run placed without listing them
    for participant, visits in sessions.items():
        if unlisted is not None and participant not in unlisted:
            continue
        path = f"{participant}/{participant}_sessions.tsv"
        rows = [{"session_id": r["session_id"], "scan_research_id": r["scan_research_id"],
                 "export_days": ",".join(r["export_days"])} for r in visits]
        files[path] = merge_tsv(read_tsv(writer.root / path), "session_id", list(SESSIONS_SIDECAR), rows,
                                keep=lambda session, p=participant: (p, session) not in moved_away)
    return files


def _participants_files(writer: DatasetWriter, image_participants: list[str], ehr: EhrResult | None,
                        moved_away: set[str] = frozenset()) -> dict[str, str]:
    """participants.tsv lists every participant of the study: with images, or with EHR rows only
    (BEP036 / bids-examples pheno004); EHR columns are ``n/a`` for image-only participants. Merged into
    the existing file: a curator's rows and columns (and edits of participants.json) are kept. A subject
    whose sessions all ``moved_away`` (a corrected PatientID) keeps its row only if the EHR lists it or a
    person wrote a value in a column of theirs."""
    ehr_rows = {f"sub-{label}": row for label, row in (ehr.participants if ehr else {}).items()}
    columns = sorted({column for row in ehr_rows.values() for column in row}, key=_column_order)
    rows = [{"participant_id": participant, **ehr_rows.get(participant, {})}
            for participant in sorted(set(image_participants) | set(ehr_rows))]
    existing = read_tsv(writer.root / "participants.tsv")
    theirs = [c for c in (existing[0] if existing else []) if c != "participant_id" and c not in columns]
    left = moved_away - set(image_participants) - set(ehr_rows)  # once: participants.tsv may hold 100 000 rows
    drop = {row["participant_id"] for row in (existing[1] if existing else [])
            if row["participant_id"] in left and all(row.get(c) in (None, "", "n/a") for c in theirs)}
    tsv = merge_tsv(existing, "participant_id", columns, rows, keep=lambda p: p not in drop)
    sidecar = {**PARTICIPANTS_SIDECAR, **(ehr.participants_sidecar if ehr else {})}
    return {"participants.tsv": tsv, **_merged(writer, "participants.json", sidecar)}


def _merged(writer: DatasetWriter, path: str, new: dict) -> dict[str, str]:
    """``path`` merged three ways with a person's edits (:mod:`bids_factory.write.json_merge`), and the copy of
    what bids-factory writes now, the next merge's base."""
    try:
        current = writer.read_json(path)
        base = writer.read_json(WRITTEN / path)
    except ValueError as exc:  # a person's typo: their file is not overwritten, they are told where
        raise DatasetError(f"{writer.root / path} (or its copy in {WRITTEN}) is not valid JSON ({exc}): "
                           "correct it; bids-factory does not overwrite a file a person edited") from None
    if current is not None and not isinstance(current, dict):
        raise DatasetError(f"{writer.root / path} is not a JSON object: correct it, bids-factory does not overwrite it")
    return {path: _json(merge_json(current, base if isinstance(base, dict) else None, new)),
            (WRITTEN / path).as_posix(): _json(new)}


def _column_order(column: str) -> tuple[int, str]:
    preferred = ("age", "sex", "handedness")
    return (preferred.index(column), "") if column in preferred else (len(preferred), column)


def _unlisted_departures(writer: DatasetWriter, records: list[dict]) -> list[str]:
    """The lines of placed images a person's decision took out (the visit records' ``left``) that CHANGES
    does not say yet (this run's, or a run's stopped before it wrote CHANGES)."""
    path = writer.root / "CHANGES"
    written = path.read_text(encoding="utf-8") if path.exists() else ""
    return [line for record in records for line in record.get("left") or [] if f"  - {line}\n" not in written]


def _changes_text(writer: DatasetWriter, entries: list[str]) -> str:
    """A new CPAN-style CHANGES entry on top of the existing ones."""
    path = writer.root / "CHANGES"
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    count = sum(1 for line in previous.splitlines() if line and not line[0].isspace())
    head = f"1.0.{count} {dt.date.today().isoformat()}\n"
    return head + "".join(f"  - {e}\n" for e in entries) + ("\n" + previous if previous else "")


def _json(data: dict) -> str:
    return json.dumps(data, indent=2) + "\n"

