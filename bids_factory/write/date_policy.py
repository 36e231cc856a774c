"""A date policy applies to everything the dataset holds, also to what earlier runs wrote under a looser one.

The policy the tool's own files were last written under is in ``code/bids-factory/date-policy.json``
(a dataset without it was written under ``keep``). When a run's policy is tighter (``keep`` -> ``year`` ->
``drop``), before anything else of the run is written:

- the run records and validator outputs named after their time (``runs/run-<date>T<time>Z-<pid>.json``)
  and the folders of files set aside (``kept/`` and ``replaced/<session>/<date>T<time>Z/``) get sequence names (``n00000001``...),
  oldest first, as the tighter policy names them itself;
- every text file under ``code/bids-factory/`` (records, states, history, the report, validator outputs,
  SLURM scripts) and ``CHANGES`` are written again through the writer, which applies the policy to its text;
  from ``year`` to ``drop`` also the years ``year`` left (:meth:`~bids_factory.dates.DatePolicy.mask_earlier_json`).

The sessions and the dataset-level files are written again by the run itself: the policy is part of what
a visit was converted with (its settings) and of what the dataset-level files are computed from.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable

from bids_factory.dates import DatePolicy
from bids_factory.write.dataset_paths import STATE_DIR

_ORDER = {"keep": 0, "year": 1, "drop": 2}
_STAMP = r"\d{8}T\d{6}Z"
_STAMPED_FILE = re.compile(rf"^(run|validator)-{_STAMP}-(\d+)\.json$")
_SEQUENCED_FILE = re.compile(r"^(run|validator)-n(\d{8})-(\d+)\.json$")
_BINARY = (".png", ".gz", ".nii")
_SKIPPED = ("subject-key", "lock", "tmp", "trash", "thumbnails",  # no text of a run, or not its own
            "index.sqlite", "index.sqlite-journal")  # derived from the records: built again after them


def tighten(state: Path, dates: DatePolicy, write: Callable[[Path, str], None]) -> bool:
    """Apply ``dates`` to what earlier runs wrote in ``state`` (``code/bids-factory``) when it is tighter than
    the loosest policy they wrote under; ``write(path, text)`` writes a file whole. Whether it was tighter."""
    policy_file = state / "date-policy.json"
    try:
        recorded = json.loads(policy_file.read_text()).get("dates")
    except (OSError, ValueError, AttributeError):
        recorded = "keep" if (state / "runs").is_dir() else None  # written before this file existed
    tighter = recorded in _ORDER and _ORDER[dates.mode] > _ORDER[recorded]
    if tighter:
        _sequence_run_files(state / "runs")
        for aside in (state / "kept", state / "replaced"):  # files a person's edit or decision set aside
            for session in sorted(aside.iterdir()) if aside.is_dir() else ():
                _sequence_folders(session)
        for path in sorted(state.rglob("*")):
            if path.is_file() and not path.is_symlink() and path.relative_to(state).parts[0] not in _SKIPPED \
                    and not path.name.endswith(_BINARY) and (masked := _masked(path, dates)) is not None:
                write(path, masked)
        changes = state.parents[len(STATE_DIR.parts) - 1] / "CHANGES"  # its entries' dates are the tool's
        if changes.is_file() and not changes.is_symlink() and (masked := _masked(changes, dates)) is not None:
            write(changes, masked)
    loosest = dates.mode if recorded not in _ORDER or tighter else min(recorded, dates.mode, key=_ORDER.get)
    write(policy_file, json.dumps({"dates": loosest}) + "\n")
    return tighter


def _masked(path: Path, dates: DatePolicy) -> str | None:
    """The text of a file an earlier run wrote with the policy applied (a JSON file's strings), or None: not
    text, or unchanged."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None
    try:
        masked = json.dumps(dates.mask_earlier_json(json.loads(text)), indent=2,
                            ensure_ascii=False) + "\n" if path.suffix == ".json" \
            else dates.mask_earlier_text(text)
    except ValueError:  # a .json file that is not JSON (a validator's output): as text
        masked = dates.mask_earlier_text(text)
    return masked if masked != text else None


def _sequence_run_files(runs: Path) -> None:
    """``run-<stamp>-<pid>.json`` and ``validator-<stamp>-<pid>.json`` -> ``<kind>-n<seq>-<pid>.json``: the
    stamped ones (older: a looser policy wrote them) first, then those already numbered."""
    if not runs.is_dir():
        return
    for kind in ("run", "validator"):
        stamped = sorted(p for p in runs.iterdir() if (m := _STAMPED_FILE.match(p.name)) and m.group(1) == kind)
        if not stamped:
            continue
        numbered = sorted((p for p in runs.iterdir() if (m := _SEQUENCED_FILE.match(p.name)) and m.group(1) == kind),
                          key=lambda p: int(_SEQUENCED_FILE.match(p.name).group(2)))
        moves = []
        for number, path in enumerate(stamped + numbered, start=1):
            pid = path.name.rsplit("-", 1)[1].removesuffix(".json")
            parked = path.with_name(f".renaming-{number}-{path.name}")
            os.rename(path, parked)
            moves.append((parked, runs / f"{kind}-n{number:08d}-{pid}.json"))
        for parked, target in moves:
            os.rename(parked, target)


def _sequence_folders(session: Path) -> None:
    """A session's kept-aside folders named by their time -> ``n<seq>``, oldest first."""
    if not session.is_dir():
        return
    stamped = sorted(p for p in session.iterdir() if re.fullmatch(_STAMP, p.name))
    if not stamped:
        return
    numbered = sorted(p for p in session.iterdir() if re.fullmatch(r"n\d{8}", p.name))
    moves = []
    for number, path in enumerate(stamped + numbered, start=1):
        parked = path.with_name(f".renaming-{number}")
        os.rename(path, parked)
        moves.append((parked, session / f"n{number:08d}"))
    for parked, target in moves:
        os.rename(parked, target)
