"""The test suite cannot hang: a command that outlives its timeout ends with its children, a step of the system tests
that failed is not waited for again, and a ``bids-factory`` run interrupted in the fork server leaves the next test
a working server. (A CI run once stalled for 90 minutes with no test named: these are what make a hang a failure
that names its test.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, CommandRuns, run_bounded

sys.path.insert(0, str(REPO / "tests" / "system"))
from container_images import once  # noqa: E402  (a helper of the system tests, imported as they import it)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return status == "Z"  # a zombie: ended, not yet reaped by its parent


def test_a_timeout_ends_the_command_and_the_child_that_holds_its_output(tmp_path):
    """``subprocess.run(timeout=1)`` would kill the shell, then wait 60 s for the backgrounded ``sleep`` holding
    its stdout: the bounded run returns at once and the ``sleep`` is gone."""
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as late:
        run_bounded(["sh", "-c", f"echo converting; echo slow >&2; sleep 60 & echo $! > {pidfile}; wait"], timeout=1)
    assert time.monotonic() - started < 15
    assert (late.value.stdout, late.value.stderr) == ("converting\n", "slow\n")  # the failure shows what it printed
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while not _gone(child):
        assert time.monotonic() < deadline, f"the child {child} outlived the timeout"
        time.sleep(0.05)


def test_a_bounded_run_gives_what_subprocess_run_gives(tmp_path):
    done = run_bounded(["sh", "-c", "echo out; echo err >&2; pwd; exit 3"], timeout=30, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (3, f"out\n{tmp_path}\n", "err\n")


def test_a_failed_step_fails_later_callers_at_once_with_its_reason():
    calls = []

    @once
    def image():
        calls.append(1)
        pytest.fail("podman build exited 125: no space left on device", pytrace=False)

    with pytest.raises(pytest.fail.Exception, match="no space left"):
        image()
    with pytest.raises(pytest.fail.Exception, match=r"image\(\) failed earlier in this run: .*no space left"):
        image()
    assert calls == [1]


def test_a_step_made_once_is_not_made_again_and_a_skip_is_not_remembered_as_a_failure():
    made, tools = [], []

    @once
    def sid_root():
        made.append(1)
        return "/var/cache/root"

    @once
    def base_image():
        tools.append(1)
        pytest.skip("podman not found")

    assert sid_root() == sid_root() == "/var/cache/root" and made == [1]
    for _ in range(2):
        with pytest.raises(pytest.skip.Exception):
            base_image()
    assert tools == [1, 1]


def test_an_interrupted_run_leaves_the_next_test_a_working_server(tmp_path, monkeypatch):
    runs = CommandRuns(tmp_path)
    try:
        first = runs.server
        monkeypatch.setattr(runs.server.stdout, "readline", lambda: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            runs("--version")
        assert first.poll() is not None and runs.server is not first
        done = runs("--version")
        assert done.returncode == 0 and "bids-factory" in done.stdout
    finally:
        runs.close()
