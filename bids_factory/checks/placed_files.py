"""Does each session hold what its visit record says was placed? (``bids-factory check``; reads only.)

A visit record (``code/bids-factory/visits/<session>.json``) lists the images placed in its session
(``files``) and every file the writer put there (``written``). A placed image missing from its session
(deleted by hand, a lost disk block) is an error: the dataset no longer holds what its provenance says.
An image in a session that no record names (placed by hand, or left by an older version) is a note; so is
a session folder without any record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SessionDifference:
    path: str  # relative to the dataset
    reason: str
    error: bool = True


def session_differences(root: Path, records: list[dict]) -> list[SessionDifference]:
    """What differs between the sessions of ``root`` and their visit ``records``."""
    found = []
    recorded = set()
    for record in records:
        session = f"{record['participant_id']}/{record['session_id']}"
        recorded.add(session)
        written = set(record.get("written") or {}) | {f["path"] for f in record.get("files") or []}
        for placed in record.get("files") or []:
            if not (root / session / placed["path"]).is_file():
                found.append(SessionDifference(f"{session}/{placed['path']}", (
                    f"placed by visit {record['scan_research_id']} (its visit record lists it) but missing "
                    "from the session")))
        folder = root / session
        for image in sorted(folder.rglob("*.nii*")) if folder.is_dir() else ():
            path = image.relative_to(folder).as_posix()
            if path not in written:
                found.append(SessionDifference(f"{session}/{path}", (
                    f"not in the visit record of visit {record['scan_research_id']} (placed by hand, or left "
                    "by an earlier version)"), error=False))
    for folder in sorted(root.glob("sub-*/ses-*")):
        session = folder.relative_to(root).as_posix()
        if folder.is_dir() and session not in recorded:
            found.append(SessionDifference(session, "a session folder no visit record names", error=False))
    return found
