"""A run killed at any moment leaves no partial file in the dataset, and the next run completes it.

The kill is deterministic: the run is a process whose N-th ``os.rename``/``os.replace`` (every
step that publishes something in the dataset), or N-th commit of the visit index (its steps: built, a name
marked dirty before its record or state is written, its row after), ends the process with ``os._exit`` —
no cleanup, no ``finally``, as with SIGKILL or a power cut
(``conftest.CommandRuns``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_factory.write.dataset_writer import DatasetWriter
from conftest import assert_valid_bids, fingerprint

def _run(runs, export: Path, bids: Path, kill_at: int | str = 0) -> int:
    return runs("convert", export, bids, "--quiet", "--no-validate", kill_at=kill_at).returncode


def _published(bids: Path) -> dict[str, bytes]:
    """What a user sees: every file outside code/ (CHANGES lists runs, so it differs by design)."""
    return {p.relative_to(bids).as_posix(): p.read_bytes() for p in sorted(bids.rglob("*"))
            if p.is_file() and "code" not in p.relative_to(bids).parts and p.name != "CHANGES"}


def _assert_no_partial_file(bids: Path) -> None:
    for path in bids.rglob("*"):
        rel = path.relative_to(bids)
        if not path.is_file() or rel.parts[0] == "code":
            continue
        assert not path.name.endswith(".tmp"), f"temporary file left in the dataset: {rel}"
        if path.name.endswith(".nii.gz"):
            assert np.asanyarray(nib.load(path).dataobj).size > 0, rel
        elif path.suffix == ".json":
            json.loads(path.read_text())
    for scans in bids.glob("sub-*/ses-*/*_scans.tsv"):
        with open(scans) as handle:
            listed = {row["filename"] for row in csv.DictReader(handle, delimiter="\t")}
        present = {p.relative_to(scans.parent).as_posix() for p in scans.parent.glob("*/*.nii.gz")}
        assert listed == present, f"{scans.name} does not match its session folder"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, command_runs, new_demo):
    work = tmp_path_factory.mktemp("crash")
    export = new_demo(work / "export").root
    assert _run(command_runs, export, work / "reference") == 0
    assert_valid_bids(work / "reference")  # every finished run below must publish exactly these files
    return export, _published(work / "reference")


# a demo run makes 48 renames and 13 index commits (1 built, then per record and state: dirty, then its row)
@pytest.mark.parametrize("kill_at", [*(f"rename:{n}" for n in (1, 4, 9, 14, 22, 31, 40, 47)),
                                     *(f"index:{n}" for n in (1, 2, 3, 5, 13))])
def test_killed_run_leaves_complete_files_and_the_next_run_finishes(reference, command_runs, tmp_path, kill_at):
    export, expected = reference
    before = fingerprint(export)
    bids = tmp_path / "bids"
    assert _run(command_runs, export, bids, kill_at) == 137, "the run finished before the kill point"
    _assert_no_partial_file(bids)
    assert _run(command_runs, export, bids) == 0
    _assert_no_partial_file(bids)
    assert _published(bids) == expected
    assert not list((bids / "code").rglob(".*.tmp"))
    assert DatasetWriter(bids).index.differences() == []  # the index says what the records say
    assert fingerprint(export) == before  # (valid: what it publishes is the validated reference, byte for byte)
