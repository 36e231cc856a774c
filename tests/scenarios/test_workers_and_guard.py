"""Crash safety of the parts that live outside the session folder: the collision guard is on disk
before its visit is, and worker processes (and the dcm2niix they run) die with the main process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bids_factory.run.pipeline import ConvertOptions, convert
from bids_factory.write.dataset_paths import SUBJECTS_FILE
from bids_factory.write.visit_states import VisitStates
from conftest import assert_valid_bids


def test_the_collision_guard_is_written_with_each_visit_not_after_the_batch(tmp_path, monkeypatch, new_demo):
    export = new_demo(tmp_path / "export").root
    bids = tmp_path / "bids"
    real = VisitStates.write

    def killed_after_the_first_visit(self, state):
        real(self, state)
        raise KeyboardInterrupt  # the run stops here, as with a kill

    monkeypatch.setattr(VisitStates, "write", killed_after_the_first_visit)
    with pytest.raises(KeyboardInterrupt):
        convert(ConvertOptions(export=export, bids=bids, validate=False))
    placed = [p.name.removeprefix("sub-") for p in bids.glob("sub-*") if p.is_dir()]
    assert placed, "the first visit was placed before the kill"
    guard = json.loads((bids / SUBJECTS_FILE).read_text())
    assert set(placed) <= set(guard), "a placed subject is missing from the collision guard"
    monkeypatch.undo()
    report = convert(ConvertOptions(export=export, bids=bids, validate=False))
    assert not report.failed, report.problems
    assert_valid_bids(bids)


SLOW_RUN = """
import pathlib, stat, sys
from bids_factory.extract import dicom_visit as extract
wrapper = pathlib.Path(sys.argv[1])
wrapper.write_text('#!/bin/sh\\n[ "$1" = --version ] && exec echo v1.0.20250506\\nexec sleep 120\\n')  # a slow dcm2niix
wrapper.chmod(0o755)
extract.dcm2niix_command = lambda: str(wrapper)
from bids_factory.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_workers_and_their_dcm2niix_die_with_a_killed_main_process(tmp_path, new_demo):
    export = new_demo(tmp_path / "export").root
    main = subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(tmp_path / "dcm2niix"), "convert", str(export),
                             str(tmp_path / "bids"), "--jobs", "2", "--no-validate", "--quiet"])
    deadline = time.monotonic() + 60
    workers, converters = set(), set()
    while time.monotonic() < deadline and len(converters) < 2:
        workers = _children(main.pid)
        converters = set().union(*(_children(w) for w in workers)) if workers else set()
        time.sleep(0.2)
    assert len(workers) >= 2 and len(converters) >= 2, "the run did not start its workers and converters"
    os.kill(main.pid, signal.SIGKILL)
    main.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in workers | converters):
        time.sleep(0.2)
    survivors = [p for p in workers | converters if _alive(p)]
    for pid in survivors:  # never leave them behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert survivors == [], f"processes outlived the killed run: {survivors}"
