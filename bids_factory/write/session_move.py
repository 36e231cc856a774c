"""A visit exported again with another PatientID: its session moves to the new subject (never two copies).

The old session folder is rebuilt under the new subject (files renamed ``sub-<old>_`` -> ``sub-<new>_``, the
subject's name rewritten in its text files: sidecars' ``IntendedFor``, ``scans.tsv``), swapped in, and its
visit record follows (``moved_from`` names the old subject; ``left`` the CHANGES line). Then the old folder,
its record, and, when the old subject has no session left, its ``sessions.tsv`` and empty folder go.
Finalize drops the old subject's ``sessions.tsv`` row and, unless a person or the EHR put it there, its
``participants.tsv`` row. Every step can be killed: the next run finishes the move (a new record already
written means only the old folder and record remain to remove).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from bids_factory.write.atomic_files import fsync_dir, write_bytes
from bids_factory.write.session_files import TEXT_SUFFIXES


def move_session(writer, record: dict, new_subject: str, staging: Path) -> str:
    """Move the session of ``record`` (a visit record) to ``sub-<new_subject>``; the CHANGES line."""
    from bids_factory.write.dataset_paths import THUMBNAILS, VISIT_RECORDS

    old, session, visit = record["participant_id"], record["session_id"], record["scan_research_id"]
    new = f"sub-{new_subject}"
    old_dir, new_dir = writer.root / old / session, writer.root / new / session
    line = (f"Moved {old}/{session} to {new}/{session}: visit {visit} was exported again with another PatientID "
            "(a corrected patient id)")
    writer.marks.mark_unlisted(old)
    writer.marks.mark_unlisted(new)
    writer.marks.dataset_files_stale()
    if writer.read_json(VISIT_RECORDS / f"{new}_{session}.json") is None:  # not moved yet (or stopped before)
        build = staging / "moved" / f"{new}_{session}"
        written = _renamed_copy(old_dir, build, old, new, record.get("written") or {})
        writer.swap_in(build, new_dir)
        moved = _renamed(record, old, new) | {"participant_id": new, "written": written,
                                              "moved_from": [*record.get("moved_from", []), old],
                                              "left": [*record.get("left", []), line]}
        _move_thumbnails(writer.root / THUMBNAILS, old, new, session)
        writer.write_record(f"{new}_{session}.json", moved)
    if old_dir.exists():
        removed = writer.state_dir / "removed"  # recovery deletes what is left there (never restores it)
        removed.mkdir(parents=True, exist_ok=True)
        os.rename(old_dir, removed / f"{old}__{session}")
        fsync_dir(old_dir.parent)
        shutil.rmtree(removed / f"{old}__{session}")
    writer.remove_record(f"{old}_{session}.json")
    subject_dir = writer.root / old
    if subject_dir.is_dir() and not any(p.is_dir() and p.name.startswith("ses-") for p in subject_dir.iterdir()):
        (subject_dir / f"{old}_sessions.tsv").unlink(missing_ok=True)  # ours: its rows were this subject's sessions
        if not any(subject_dir.iterdir()):
            subject_dir.rmdir()
    return line


def _renamed_copy(source: Path, build: Path, old: str, new: str, written: dict) -> dict:
    """``source`` rebuilt in ``build`` under the new subject's names; the new ``written`` manifest (a text
    file a person edited keeps a hash its content does not have, so it stays known as edited)."""
    manifest = {}
    for path in sorted(p for p in source.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(source).as_posix()
        target_rel = rel.replace(f"{old}_", f"{new}_")
        target = build / target_rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.name.endswith(TEXT_SUFFIXES) and not path.is_symlink():
            data = path.read_bytes()
            text = data.decode("utf-8").replace(f"{old}_", f"{new}_").replace(f"{old}/", f"{new}/")
            write_bytes(target, text.encode("utf-8"))
            if rel in written:
                ours = written[rel] == hashlib.sha256(data).hexdigest()
                manifest[target_rel] = hashlib.sha256(text.encode()).hexdigest() if ours else written[rel]
        else:
            os.link(path, target, follow_symlinks=False)
            if rel in written:
                manifest[target_rel] = written[rel]
    return manifest


def _renamed(record: dict, old: str, new: str) -> dict:
    files = [f | {"path": f["path"].replace(f"{old}_", f"{new}_")} for f in record.get("files", [])]
    pending = [c | {"path": c["path"].replace(f"{old}_", f"{new}_"),
                    "new_path": c["new_path"] and c["new_path"].replace(f"{old}_", f"{new}_")}
               for c in record.get("pending_changes", [])]
    return record | {"files": files, "pending_changes": pending}


def _move_thumbnails(thumbnails: Path, old: str, new: str, session: str) -> None:
    """The report's pictures follow the session (renamed like its images)."""
    source = thumbnails / old / session
    for picture in sorted(source.rglob("*.*")) if source.is_dir() else ():
        target = thumbnails / new / session / picture.relative_to(source).as_posix().replace(f"{old}_", f"{new}_")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(picture, target)
    shutil.rmtree(thumbnails / old / session, ignore_errors=True)
    if (thumbnails / old).is_dir() and not any((thumbnails / old).iterdir()):
        (thumbnails / old).rmdir()
