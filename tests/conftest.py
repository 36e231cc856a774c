"""Fixtures: Data Capture exports built in temporary folders from the real scanner data in
``../shared/dicom`` (never copied into the repository), and the checks every dataset must pass."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DICOM = REPO.parent / "shared" / "dicom"
TEST_HEURISTICS = Path(__file__).resolve().parent / "heuristics"
XA30 = SHARED_DICOM / "siemens_xa30_visit"
GE_T1W = SHARED_DICOM / "ge_t1w_deidentified"
TRANSFER_SYNTAXES = SHARED_DICOM / "siemens_transfer_syntaxes"


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def add_series(export: Path, day: str, visit: str, source: Path, subfolder: str | None = None) -> Path:
    """Put the DICOM files of ``source`` (a folder or one file) into DICOM/<yyyy>/<day>/<visit>/."""
    visit_dir = export / "DICOM" / day[:4] / day / visit
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for file in files:
        if file.name == "LICENSE":
            continue
        rel = file.name if source.is_file() else file.relative_to(source)
        _link_or_copy(file, visit_dir / (subfolder or source.name) / rel)
    return visit_dir


def fingerprint(folder: Path) -> dict[str, str]:
    """Content hash of every file below ``folder`` (to prove the export was not modified)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink()
    }


def assert_valid_bids(dataset: Path) -> None:
    """The official validator finds 0 errors (and exits 0, not 16)."""
    from bids_factory.checks.validator import run_validator

    result = run_validator(dataset)
    assert result is not None, "bids-validator-deno is not installed"
    errors = [f"{i.code} at {i.location}: {i.message}" for i in result.errors]
    assert errors == [] and result.exit_code == 0, "\n".join(errors)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    root = tmp_path / "export"
    root.mkdir()
    return root


@pytest.fixture
def bids(tmp_path: Path) -> Path:
    return tmp_path / "bids"


@pytest.fixture(scope="session")
def xa30_export(tmp_path_factory) -> Path:
    """The XA30 visit as one Data Capture visit folder (read-only use: shared between tests)."""
    root = tmp_path_factory.mktemp("xa30") / "export"
    for series in sorted(p for p in XA30.iterdir() if p.is_dir()):
        add_series(root, "20240105", "VISIT01", series)
    return root


@pytest.fixture(scope="session")
def new_demo(tmp_path_factory):
    """A fresh copy of the synthetic demo export: ``new_demo(target) -> DemoExport``.

    The export is built once per session (about 3 s) and copied for each test (0.1 s), mtimes kept, so a
    test may add or change files in its copy.
    """
    import dataclasses

    from bids_factory.cli.demo_export import build_demo_export

    template = build_demo_export(tmp_path_factory.mktemp("demo-template") / "export")

    def make(target: Path):
        shutil.copytree(template.root, target, symlinks=True)
        return dataclasses.replace(template, root=target)

    return make
