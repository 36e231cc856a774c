"""Children die with the run: a worker's dcm2niix is killed by the kernel when the worker is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

# A "worker" that starts a long child (as dcm2niix) with die_with_parent, prints the child's pid, then waits.
_WORKER = """
import subprocess, sys, time
from bids_factory.extract.processes import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=die_with_parent)
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has died
    except FileNotFoundError:
        return False


def test_a_child_is_killed_when_its_worker_is_killed():
    worker = subprocess.Popen([sys.executable, "-c", _WORKER], stdout=subprocess.PIPE, text=True)
    child = int(worker.stdout.readline())
    try:
        assert _alive(child)
        worker.send_signal(signal.SIGKILL)  # kill -9: the worker runs no code of its own
        worker.wait()
        deadline = time.monotonic() + 10  # not a timing assertion: the kernel's signal is delivered at once
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(child)
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
        worker.stdout.close()


def test_a_process_whose_parent_is_already_gone_stops_at_once():
    code = "from bids_factory.extract.processes import die_with_parent; die_with_parent({}); print('converting')"
    gone = subprocess.run([sys.executable, "-c", code.format(1)], capture_output=True, text=True)
    assert gone.returncode == 1 and gone.stdout == ""  # its parent is not pid 1: it never starts working
    alive = subprocess.run([sys.executable, "-c", code.format(os.getpid())], capture_output=True, text=True)
    assert alive.returncode == 0 and alive.stdout == "converting\n"

