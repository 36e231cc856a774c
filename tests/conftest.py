"""Fixtures: Data Capture exports built in temporary folders from the real scanner data in
``../shared/dicom`` (never copied into the repository), and the checks every dataset must pass.

A test that reads the real data carries the ``realdata`` marker: without the data (a fresh clone) it is
skipped, its reason naming the command that fetches the data; the rest runs. ``BIDS_FACTORY_SHARED_DICOM``
points the tests at another copy of the data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DICOM = Path(os.environ.get("BIDS_FACTORY_SHARED_DICOM") or REPO.parent / "shared" / "dicom")
FETCH_COMMAND = "python tests/fetch_shared_dicom.py"
REAL_DATA_SETS = (  # the folders of SHARED_DICOM the tests read; tests/fetch_shared_dicom.py makes each
    "siemens_xa30_visit", "ge_t1w_deidentified", "siemens_transfer_syntaxes", "ge_session", "philips_asl",
    "toshiba_dwi", "philips_dwi_classic", "nih_ge_siemens_epi", "siemens_fieldmaps",
)
TEST_HEURISTICS = Path(__file__).resolve().parent / "heuristics"
XA30 = SHARED_DICOM / "siemens_xa30_visit"
GE_T1W = SHARED_DICOM / "ge_t1w_deidentified"
TRANSFER_SYNTAXES = SHARED_DICOM / "siemens_transfer_syntaxes"


def run_bounded(cmd: list[str], *, timeout: float, **kw) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)``, except that a timeout (or
    any interruption: pytest-timeout, Ctrl-C) ends the command's whole process group, its children too, before
    ``subprocess.TimeoutExpired`` is raised with what the command printed until then. ``subprocess.run`` kills only the command and then waits for its
    output pipes to close: a child that keeps them open (a browser's renderer, a build step, apptainer's
    starter) would keep the test waiting for ever."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                          **kw) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException as stopped:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):  # a daemon that left the group may hold a pipe
                printed = proc.communicate(timeout=10)
                if isinstance(stopped, subprocess.TimeoutExpired):  # what it printed before: the failure shows it
                    stopped.stdout, stopped.stderr = printed
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def missing_real_data() -> list[str]:
    return [name for name in REAL_DATA_SETS if not (SHARED_DICOM / name).is_dir()]


def real_folders(folder: Path, pattern: str = "*") -> list[Path]:
    """The sorted entries of a real-data folder matching ``pattern`` ([] without the data, so that a module
    listing them still imports: its tests are ``realdata`` and skipped)."""
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:  # a test given a fixture built from the real data reads it too
        if "xa30_export" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)
    missing = missing_real_data()
    if not missing:
        return
    which = "" if len(missing) == len(REAL_DATA_SETS) else f" ({', '.join(missing)})"
    skip = pytest.mark.skip(reason=f"real scanner data missing in {SHARED_DICOM}{which}: fetch it with "
                                   f"`{FETCH_COMMAND}`")
    for item in items:
        if item.get_closest_marker("realdata"):
            item.add_marker(skip)


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
    """The official validator finds 0 errors (and exits 0, not 16) in the whole dataset.

    A test whose subject is not what the validator decides converts with ``validate=False`` (no gate, no
    check after the run: two validator starts saved per run) and ends with this on what it wrote."""
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

    The export is built once per test session (about 3 s; under xdist by the first worker that needs it, the
    others wait for it) and copied for each test (0.1 s), mtimes kept, so a test may add or change files in
    its copy.
    """
    import dataclasses
    import fcntl
    import pickle

    from bids_factory.cli.demo_export import build_demo_export

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "demo-template"
    shared.mkdir(exist_ok=True)
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "built.pickle").exists():
            (shared / "built.pickle").write_bytes(pickle.dumps(build_demo_export(shared / "export")))
        template = pickle.loads((shared / "built.pickle").read_bytes())

    def make(target: Path):
        shutil.copytree(template.root, target, symlinks=True)
        return dataclasses.replace(template, root=target)

    return make


@pytest.fixture(scope="session")
def converted_demo(tmp_path_factory, new_demo):
    """A fresh copy of the demo export and of the dataset a first ``convert --no-validate`` made of it:
    ``converted_demo(target) -> (export, bids)`` under ``target``.

    The conversion runs once per worker; each test gets copies (mtimes kept, as ``new_demo``), so a test
    that starts from a converted dataset pays for its own runs, not for the first one.
    """
    from bids_factory.run.pipeline import ConvertOptions, convert

    template = tmp_path_factory.mktemp("converted-demo")
    export = new_demo(template / "export").root
    assert not convert(ConvertOptions(export=export, bids=template / "bids", validate=False)).failed

    def make(target: Path) -> tuple[Path, Path]:
        for name in ("export", "bids"):
            shutil.copytree(template / name, target / name, symlinks=True)
        return target / "export", target / "bids"

    return make


_FORK_SERVER = """
import json, os, sys, traceback
from bids_factory.cli.main import main
import bids_factory.run.batches, bids_factory.run.inventory  # what a command imports, once
import bids.layout, bidsschematools.expressions  # imported lazily by a run: its pybids read-back, its schema rules
bids_factory.run.batches._shared_by_workers()  # what a run builds once (schema allow-list and rules, dcm2bids)
from bids_factory.checks.sidecar_schemas import load_sidecar_schemas
load_sidecar_schemas()  # the default sidecar schemas checked against the meta-schema (once per content)
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        for fd, name in ((1, "stdout"), (2, "stderr")):
            os.dup2(os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        os.chdir(request["cwd"])
        step, limit = str(request["kill_at"]).rpartition(":")[::2]
        limit, calls = int(limit), [0]
        def deadly(real):
            def call(*args, **kwargs):
                calls[0] += 1
                if calls[0] == limit:
                    os._exit(137)
                return real(*args, **kwargs)
            return call
        if limit and step in ("", "rename"):
            os.rename, os.replace = deadly(os.rename), deadly(os.replace)
        elif limit and step == "index":
            import sqlite3
            class Index(sqlite3.Connection):
                commit = deadly(sqlite3.Connection.commit)
            connect = sqlite3.connect
            sqlite3.connect = lambda *args, **kwargs: connect(*args, factory=Index, **kwargs)
        sys.argv = ["bids-factory", *request["args"]]
        try:
            code = main(request["args"])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1 if stop.code else 0
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(code or 0)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


class CommandRuns:
    """``bids-factory`` commands as separate processes that a server forks after importing bids-factory once: a
    run costs its work, not the imports nor the schema-derived sets every run builds once (``benchmarks/``
    measures a whole process). ``kill_at=N`` (or ``"rename:N"``) ends the run at its N-th
    ``os.rename``/``os.replace`` (every step that publishes something), ``"index:N"`` at its N-th commit of the
    visit index, with ``os._exit(137)``: no cleanup, as with SIGKILL or a power cut."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self._start()

    def _start(self) -> None:
        self.server = subprocess.Popen([sys.executable, "-c", _FORK_SERVER], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, start_new_session=True)

    def __call__(self, *args: str | Path, kill_at: int | str = 0, cwd: Path = REPO) -> subprocess.CompletedProcess:
        """What ``subprocess.run(["bids-factory", *args], capture_output=True, text=True)`` gives."""
        args = [str(a) for a in args]
        out, err = (self.scratch / f"run.{name}" for name in ("stdout", "stderr"))
        request = {"args": args, "kill_at": kill_at, "stdout": str(out), "stderr": str(err), "cwd": str(cwd)}
        try:
            self.server.stdin.write(json.dumps(request) + "\n")
            self.server.stdin.flush()
            code = int(self.server.stdout.readline())
        except BaseException:  # interrupted (pytest-timeout, Ctrl-C): the run and the server end, the next test
            os.killpg(self.server.pid, signal.SIGKILL)  # gets a new server, not this run's late answer
            self.server.wait()
            self._start()
            raise
        return subprocess.CompletedProcess(["bids-factory", *args], code, out.read_text(errors="replace"),
                                           err.read_text(errors="replace"))

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait()


@pytest.fixture(scope="session")
def command_runs(tmp_path_factory):
    runs = CommandRuns(tmp_path_factory.mktemp("command-runs"))
    yield runs
    runs.close()
