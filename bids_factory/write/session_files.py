"""Which files of a session folder a person added or edited since bids-factory wrote it.

When a visit is converted again (its export changed, or the heuristic did), the writer rebuilds the
whole ``sub-<p>/ses-<v>`` folder and swaps it in. A curator may have added files there meanwhile (a
task's ``events.tsv``, a physio recording, a defacing mask) or edited a sidecar bids-factory wrote (a
``TaskName``, an ``IntendedFor``). Those are a person's work: the writer carries them into the new
folder, or, where bids-factory now writes a file of the same name, keeps the person's copy aside.

So the visit record lists every file the writer put in the session (``written``: path -> SHA-256 of a
text file, ``None`` for an image, whose bytes bids-factory never hashes). A file of the old folder that is
not in that list was added by a person; a listed text file whose content no longer has its hash was
edited by one. The session's ``scans.tsv`` is not among them: it is merged row by row (curator columns
kept) on every placement. Records written before this list existed name only the images: their
sidecars, b-values/b-vectors and ``aslcontext.tsv`` are then recognised by name and edits are not seen.
Reads only: the writer moves the files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

TEXT_SUFFIXES = (".json", ".tsv", ".bval", ".bvec")
_COMPANIONS = (".json", ".bval", ".bvec")  # beside an image, named by its stem (older records)


@dataclass(frozen=True)
class PersonFiles:
    """Paths (relative to the session folder) of a person's files in an old session folder."""

    added: tuple[str, ...] = ()  # not written by bids-factory
    edited: tuple[str, ...] = ()  # written by bids-factory, changed since


def written_manifest(folder: Path) -> dict[str, str | None]:
    """Every file of a freshly built session folder: path -> SHA-256 of a text file, None for an image."""
    return {path: _text_hash(folder / path) for path in _files(folder)}


def person_files(session_dir: Path, record: dict | None, scans_tsv: str) -> PersonFiles:
    """What a person added or edited in ``session_dir`` since bids-factory wrote it (``record``: the
    session's visit record, None when bids-factory never placed it: everything there is a person's)."""
    if not session_dir.is_dir():
        return PersonFiles()
    written = _written(record) if record else {}
    added, edited = [], []
    for path in _files(session_dir):
        if path == scans_tsv:
            continue  # merged by the writer, curator columns kept
        if path not in written:
            added.append(path)
        elif written[path] is not None and _text_hash(session_dir / path) != written[path]:
            edited.append(path)
    return PersonFiles(tuple(added), tuple(edited))


def _written(record: dict) -> dict[str, str | None]:
    if "written" in record:
        return record["written"]
    written: dict[str, str | None] = {}
    for placed in record.get("files", []):
        image = placed["path"]
        stem = image.removesuffix(".nii.gz")
        written[image] = None
        for suffix in _COMPANIONS:
            written[stem + suffix] = None
        if stem.endswith("_asl"):  # the only image bids-factory writes a companion table for
            written[f"{stem.removesuffix('_asl')}_aslcontext.tsv"] = None
    return written


def _files(folder: Path) -> list[str]:
    """Every regular file below ``folder`` (symbolic links included, never followed), as posix paths."""
    found = []
    for here, dirs, names in os.walk(folder):
        for name in names:
            found.append((Path(here) / name).relative_to(folder).as_posix())
        found.extend((Path(here) / d).relative_to(folder).as_posix() for d in dirs if (Path(here) / d).is_symlink())
    return sorted(found)


def _text_hash(path: Path) -> str | None:
    if not path.name.endswith(TEXT_SUFFIXES) or path.is_symlink():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def link_files(source_dir: Path, paths: list[str], target_dir: Path, root: Path | None = None
               ) -> list[tuple[str, str]]:
    """Hard-link (copy across filesystems) ``paths`` of ``source_dir`` into ``target_dir``, the same relative
    paths; a path no longer there is skipped (a killed run moved it already). Returns (path, target) pairs,
    the target relative to ``root`` when given."""
    import shutil

    done = []
    for path in paths:
        source, target = source_dir / path, target_dir / path
        if not (source.exists() or source.is_symlink()):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target, follow_symlinks=False)
        except FileExistsError:
            pass
        except OSError:  # another filesystem mounted inside the session: copied
            shutil.copy2(source, target, follow_symlinks=False)
        done.append((path, target.relative_to(root).as_posix() if root else target.as_posix()))
    return done
