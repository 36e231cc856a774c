"""Recovery under the lock removes the staging of killed runs only: a run that is starting (its folder made,
its ``.alive`` not yet locked) keeps its folder, so parallel runs (SLURM array tasks) never break each other."""

from __future__ import annotations

import os
import time

from bids_factory.write.dataset_writer import DatasetWriter


def test_recovery_keeps_a_starting_run_and_a_live_run_and_removes_dead_ones(tmp_path):
    writer = DatasetWriter(tmp_path)
    with writer.lock.staging_area() as live:
        staging = live.parent
        starting = staging / ".new-starting"  # made by mkdtemp, its .alive not yet opened
        starting.mkdir()
        dead = staging / "run-killed"  # its run was killed: nobody holds its .alive
        dead.mkdir()
        (dead / ".alive").write_text("")
        stale = staging / ".new-killed-starting"
        stale.mkdir()
        long_ago = time.time() - 2 * 3600
        os.utime(stale, (long_ago, long_ago))
        with writer.lock.held():  # recovery runs here
            pass
        assert live.is_dir() and starting.is_dir()
        assert not dead.exists() and not stale.exists()
        assert live.name.startswith("run-") and (live / ".alive").exists()
