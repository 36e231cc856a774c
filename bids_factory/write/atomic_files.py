"""The writer's primitives: a file written whole or not at all, and fsyncs (used by :mod:`bids_factory.write.dataset_writer`)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from bids_factory.write.dataset_paths import TMP_FILES


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def write_text(path: Path, text: str, tmp_dir: Path | None = None) -> bool:
    return write_bytes(path, text.encode("utf-8"), tmp_dir)


def write_bytes(path: Path, data: bytes, tmp_dir: Path | None = None) -> bool:
    """Write via a temporary file (in ``tmp_dir``, same filesystem), fsync, rename: never a half-written file.

    A file whose content would not change is not rewritten (a no-op run touches nothing).
    """
    with contextlib.suppress(OSError):
        if path.read_bytes() == data:
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=tmp_dir or path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; the dataset is for other users too
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True


def tmp_folder(root: Path) -> Path:
    """The folder of the temporary files of the dataset at ``root`` (made when missing): never a BIDS folder."""
    folder = root / TMP_FILES
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
