"""Stage 5 — ehr: EHR tables -> BIDS ``phenotype/<table>.tsv/.json`` and ``participants.tsv`` columns (pure computation).

Every ``EXPORT/EHR/<yyyy>/<yyyymmdd>/*.csv`` is read in date order (:mod:`bids_factory.ehr.read`);
files of the same table on several days are combined (a later day's row for the same patient, visit
and measurement wins, cell by cell; new rows and columns are added: :mod:`bids_factory.ehr.combine`);
long tables are pivoted, and the result is rendered (with pandas) as TSV text and dictionaries for the
writer. The mapping file is read by :mod:`bids_factory.ehr.mapping`, data dictionaries are built by
:mod:`bids_factory.ehr.dictionary` and ``participants.tsv`` columns by :mod:`bids_factory.ehr.participants`.
Rules and the mapping format: ``docs/ehr.md``. This module is the public entry point: import from here.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from bids_factory.ehr.combine import VALUE, TableState
from bids_factory.ehr.dictionary import NA, Records, safe_column, table_sidecar
from bids_factory.ehr.identifiers import IdentifierKeys, drop_identifiers, named_ids
from bids_factory.ehr.mapping import EhrMappingError, load_ehr_mapping, table_entry, table_name, table_spec
from bids_factory.ehr.participants import participants_columns
from bids_factory.ehr.read import CsvError, read_csv
from bids_factory.discover.export_layout import find_ehr_files
from bids_factory.model import Problem, session_label, subject_label
from bids_factory.tsv import frame_tsv

__all__ = ["EhrMappingError", "EhrResult", "PhenotypeTable", "case_near_misses", "collect_ehr", "linkage",
           "load_ehr_mapping"]

_BREAKS = re.compile(r"[\t\r\n]+")


@dataclass(frozen=True)
class PhenotypeTable:
    name: str  # file stem: phenotype/<name>.tsv and .json
    tsv: str
    sidecar: dict


@dataclass(frozen=True)
class EhrResult:
    tables: tuple[PhenotypeTable, ...]
    participants: dict[str, dict[str, str]]  # label (no "sub-") -> participants.tsv column -> value
    participants_sidecar: dict
    ehr_subjects: frozenset[str]
    problems: tuple[Problem, ...]
    bidsignore: tuple[str, ...] = ()  # .bidsignore lines: tables with several visits of one participant


# -- reading and combining -------------------------------------------------------------------------------

def collect_ehr(export_root: Path, mapping: dict | None, *, today: dt.date | None = None,
                other_patient: Callable[[str, str], bool] | None = None,
                own_id: Callable[[str], bool] | None = None,
                identifier_keys: IdentifierKeys | None = None) -> EhrResult:
    """Read every EHR table of the export (in date order) and compute the phenotype and participants data;
    the cells and columns holding the identifiers of their rows' visits are not written
    (:mod:`bids_factory.ehr.identifiers`).

    ``other_patient(label, raw_id)``: whether the images' subject ``label`` is another patient than the EHR's
    raw id (the raw ids are compared, as the collision guard does, never the labels): such rows are not
    linked (not written) and reported. ``own_id(raw_id)``: whether it is the PatientID of the images of its
    label (an id that is the participant's own is never taken for a person's name)."""
    files, found_problems = find_ehr_files(Path(export_root), today)
    problems = list(found_problems)
    states: dict[str, TableState] = {}
    owners: dict[str, str] = {}  # table name -> mapping key, or the file stem it was made from
    matched: set[str] = set()
    for file in files:
        inside = file.relpath.split("/", 1)[1]
        if any(fnmatch.fnmatchcase(inside, p) for p in (mapping or {}).get("skip_files", ())):
            problems.append(Problem(file.relpath, "skipped: listed in the mapping's skip_files", fatal=False))
            continue
        key, entry = table_entry(mapping, file.path.name)
        name = key or table_name(file.stem)
        owner = f"mapping table {key!r}" if key else f"file name {file.path.name!r}"
        if owners.setdefault(name, owner) != owner:
            problems.append(Problem(file.relpath, f"table name {name!r} is already used by the {owners[name]}: "
                                                  "not merged (rename the file or map it explicitly)"))
            continue
        if key:
            matched.add(key)
        spec = table_spec(name, entry, mapped=key is not None)
        try:
            raw = read_csv(file.path.read_bytes(), spec.encoding, spec.delimiter)
        except OSError as exc:
            problems.append(Problem(file.relpath, f"cannot be read: {exc.strerror or exc}"))
            continue
        except CsvError as exc:
            problems.append(Problem(file.relpath, f"cannot be parsed: {exc}"))
            continue
        states.setdefault(name, TableState(spec, file)).add(file, raw, problems)
    for key in (mapping or {}).get("tables", {}):
        if key not in matched:
            problems.append(Problem("EHR", f"mapping table {key!r} matched no CSV file of the export", fatal=False))
    states = {name: state for name, state in states.items() if state.sources}  # some file was merged
    bad_patients, bad_visits = _collisions(states, problems)
    bad_patients |= _near_misses(states, other_patient, problems) if other_patient else set()
    named = {raw for raw in named_ids({raw for state in states.values() for raw in state.frame.index.unique(0).tolist()},
                                      identifier_keys) if own_id is None or not own_id(str(raw))}
    if named:
        bad_patients |= named
        problems.append(Problem("EHR", f"{len(named)} patient id(s) of the EHR tables hold a word of a visit's "
                                       "person names (or its birth date): their rows are not written"))
    built = {name: _build(states[name], (mapping or {}).get("tables", {}).get(name, {}),
                          bad_patients, bad_visits, problems, identifier_keys) for name in sorted(states)}
    subjects = frozenset(label for _, records, _ in built.values() for label in records.index.unique("label"))
    participants, participants_sidecar = participants_columns(states, built, mapping, subjects, problems)
    bidsignore: list[str] = []
    for name, (table, records, _) in built.items():
        if records.index.unique("label").size < len(records):
            bidsignore += [f"phenotype/{name}.tsv", f"phenotype/{name}.json"]
            problems.append(Problem(f"phenotype/{name}.tsv", "several visits of one participant: written as BEP036 "
                                    "(participant_id + session_id) and listed in .bidsignore, because the released "
                                    "BIDS schema allows one row per participant in phenotype files", fatal=False))
    return EhrResult(
        tables=tuple(table for table, _, _ in built.values()), participants=participants,
        participants_sidecar=participants_sidecar, ehr_subjects=subjects,
        problems=tuple(problems), bidsignore=tuple(bidsignore),
    )


def linkage(ehr_subjects: frozenset[str], image_subjects: frozenset[str]) -> tuple[list[str], list[str]]:
    """(labels with images but no EHR row, labels with EHR rows but no image), each sorted."""
    return sorted(image_subjects - ehr_subjects), sorted(ehr_subjects - image_subjects)


def _near_misses(states: dict[str, TableState], other_patient: Callable[[str, str], bool],
                 problems: list[Problem]) -> set[str]:
    """EHR patient ids whose label is that of images of another raw PatientID (``12343-hucheng`` beside a
    DICOM ``12343@hucheng``): never linked, reported."""
    found = set()
    for raw in sorted({raw for state in states.values() for raw in state.frame.index.unique(0).tolist() if raw}):
        label = subject_label(raw)
        if label and other_patient(label, raw):
            found.add(raw)
            problems.append(Problem("EHR", (
                f"patient id {raw!r} becomes sub-{label}, the subject of images whose PatientID is another id "
                "(they differ in punctuation, case or spaces): its rows are not linked to those images, nor "
                "written (never merged); correct the id in the EHR or in the image export")))
    return found


def case_near_misses(ehr_subjects: frozenset[str], image_subjects: frozenset[str]) -> list[tuple[str, str]]:
    """(EHR label, image label) pairs that differ only in case (``p1`` and ``P1``): not linked, to report."""
    images = {label.lower(): label for label in image_subjects}
    return sorted((label, images[label.lower()]) for label in ehr_subjects - image_subjects if label.lower() in images)


def _collisions(states: dict[str, TableState], problems: list[Problem]) -> tuple[set[str], set[str]]:
    """Raw patient (visit) ids that sanitise to the same label: reported, and never merged."""
    bad: list[set[str]] = []
    for level, kind, prefix in ((0, "patient", "sub"), (1, "visit", "ses")):
        raws = pd.Index(sorted({raw for state in states.values() for raw in state.frame.index.unique(level).tolist()
                                if raw}), dtype="str")
        labels = raws.map(subject_label if level == 0 else session_label)
        suspect = labels.duplicated(keep=False) | (labels == "")
        found: dict[str, set[str]] = {}
        for raw, label in zip(raws[suspect], labels[suspect]):
            found.setdefault(label, set()).add(raw)
        for label, group in sorted(found.items()):
            if len(group) > 1:
                names = ", ".join(repr(r) for r in sorted(group))
                problems.append(Problem("EHR", f"{kind} ids {names} all become {prefix}-{label or '(empty)'}: "
                                               "their rows are not written (never merged); correct the ids"))
            else:
                problems.append(Problem("EHR", f"{kind} id {next(iter(group))!r} has no letter or digit: "
                                               "its rows are not written"))
        bad.append(set(raws[suspect]))
    return bad[0], bad[1]


# -- output ---------------------------------------------------------------------------------------------

def _build(state: TableState, entry: dict, bad_patients: set[str], bad_visits: set[str],
           problems: list[Problem], identifier_keys: IdentifierKeys | None = None
           ) -> tuple[PhenotypeTable, Records, list[str]]:
    """The table's TSV text and data dictionary, and its records (see :data:`Records`) for participants.tsv."""
    index = state.frame.index
    keep = ~index.get_level_values(0).isin(bad_patients) & ~index.get_level_values(1).isin(bad_visits)
    frame, recency = state.frame[keep].astype("str").apply(_text), state.recency[keep]
    if state.long:  # one column per measurement, and per measurement and other column
        keys = frame.index.droplevel(2).unique()
        frame = frame.unstack(2).reindex(keys)
        named = {(column, m): m if column == VALUE else f"{m}_{column}"
                 for m in state.measurements for column in (VALUE, *state.columns)}
        present = [source for source in named if source in frame.columns and frame[source].notna().any()]
        frame = frame[present].set_axis([named[source] for source in present], axis=1)
        recency = recency.groupby(level=[0, 1], sort=False).max().reindex(keys)
    else:
        frame = frame.reindex(columns=state.columns)
    frame = drop_identifiers(frame, identifier_keys, state.spec.name, problems)
    labels = [frame.index.levels[level].map((subject_label, session_label)[level]).take(frame.index.codes[level]) for level in (0, 1)]
    records = frame.set_axis(pd.MultiIndex.from_arrays([*labels, recency.to_numpy()],
                                                       names=["label", "session", "recency"]))
    has_visit = (index.get_level_values(1) != "").any() or state.visit_column is not None
    ordered = records.sort_index()
    label, session = (ordered.index.get_level_values(level) for level in (0, 1))
    ids = pd.DataFrame({"participant_id": "sub-" + label})
    if has_visit:
        ids["session_id"] = ("ses-" + session).where(session != "", NA)
    table = pd.concat([ids, ordered.reset_index(drop=True).rename(columns=safe_column)], axis=1)
    tsv = frame_tsv(table, na_rep=NA)  # tabs and line breaks in values were replaced by _text
    columns = list(records.columns)
    sidecar = table_sidecar(state, entry, columns, records, has_visit, problems)
    return PhenotypeTable(name=state.spec.name, tsv=tsv, sidecar=sidecar), records, columns


def _text(values: pd.Series) -> pd.Series:
    """TSV-safe text: tabs and line breaks inside a value become a space; NaN (n/a) for an empty cell."""
    if _BREAKS.search("".join(values.dropna().tolist())):  # rare: one search of the joined text is faster
        values = values.str.replace(_BREAKS, " ", regex=True)
    return values.mask(values == "")
