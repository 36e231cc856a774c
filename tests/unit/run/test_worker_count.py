"""``--jobs N``: never more worker processes than visits to convert nor than the CPUs the run may use."""

from __future__ import annotations

import os

from bids_factory.run.batches import usable_cpus, worker_count


def test_worker_count_is_bounded_by_visits_and_cpus(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert usable_cpus() == 4
    assert worker_count(1000, 3) == 3
    assert worker_count(1000, 1000) == 4
    assert worker_count(2, 1000) == 2
    assert worker_count(8, 0) == 1
