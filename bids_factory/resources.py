"""Where the shipped data folders (``heuristics/``, ``schemas/``) are.

In a wheel they are installed inside the package (``bids_factory/heuristics``); in a source
checkout (editable install, tests) they are the top-level folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the shipped folder {name}/ is missing from the installation")


def default_heuristic() -> Path:
    return shipped_dir("heuristics") / "default.json"


def schema_path(name: str) -> Path:
    return shipped_dir("schemas") / name


def default_sidecar_schemas() -> Path:
    return shipped_dir("schemas") / "sidecar"
