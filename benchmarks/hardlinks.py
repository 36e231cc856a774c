"""Exports and datasets for the benchmarks, built by hard links (a copy where the filesystem refuses)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def link_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def link_tree(source: Path, target: Path) -> None:
    """Every file below ``source`` (its LICENSE aside) at the same relative path below ``target``."""
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.name != "LICENSE":
            link_file(path, target / path.relative_to(source))
