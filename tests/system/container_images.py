"""Images the system tests share: the Docker image (podman), the Debian sid root with Apptainer, and the
SIF made from the image. Each is made once per machine state: a lock file serialises the pytest workers
(``-n 2``), a process-level memo keeps what one worker made, and what the machine keeps between runs
(podman's layer cache, the sid root and the SIFs under ``CACHE``) is reused by the next run.

``CACHE`` (default ``/var/cache/bids-factory-tests``, ``BIDS_FACTORY_TEST_CACHE`` overrides it) holds
``apptainer-sid/`` (about 380 MB, made by tests/container/apptainer_root.sh) and ``sif/`` (SIFs named by the
id of what they were made from, so a changed image gives a new SIF; older ones are removed).
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import shlex
import shutil
import subprocess
import time
import tomllib
from contextlib import contextmanager
from functools import wraps
from pathlib import Path

import pytest
from conftest import run_bounded

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("BIDS_FACTORY_TEST_CACHE", "/var/cache/bids-factory-tests"))
SID_ROOT = CACHE / "apptainer-sid"
SIF_CACHE = CACHE / "sif"
APPTAINER_ROOT = REPO / "tests" / "container" / "apptainer_root.sh"
APPTAINER_ENTER = REPO / "tests" / "container" / "apptainer_enter.sh"
BUILD_BASE = REPO / "tests" / "container" / "build_base.sh"
BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
BUILT_IMAGE = "localhost/bids-factory:test"
CA_BUNDLE = Path(os.environ.get("BIDS_FACTORY_BUILD_CA", "/etc/ssl/certs/ca-certificates.crt"))
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]

# pytest-timeout's limit for a system test (pyproject's default is 300 s). The first test that needs a SIF makes the
# base image, the image, the sid root and the SIF: 4 min at most here from nothing. Each step has its own, wider limit
# in run() (600, 900, 600, 900 s) and names its command when it passes it; this one bounds the chain.
SLOW = pytest.mark.timeout(1800)
TIMINGS: dict[str, str] = {}  # what this process measured, printed at the end of a test module


def unavailable(reason: str) -> None:
    """Skip locally; fail under CI=true, so that CI cannot silently skip the container tests."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"container tests cannot run: {reason} (CI=true, so this is a failure; "
                    "install them as in tests/container/README.md)", pytrace=False)
    pytest.skip(f"container tests skipped: {reason}")


def run(cmd: list[str], *, timeout: float = 600, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """`cmd` with its output captured; a timeout ends its whole process group and fails the test, naming the
    command and the end of what it printed."""
    try:
        proc = run_bounded(cmd, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as late:
        out, err = late.stdout or "", late.stderr or ""
        pytest.fail(f"command did not end in {timeout:.0f} s (its process group was killed): {shlex.join(cmd)}\n"
                    f"--- stdout (tail)\n{out[-4000:]}\n--- stderr (tail)\n{err[-4000:]}", pytrace=False)
    if check and proc.returncode != 0:
        pytest.fail(f"command failed ({proc.returncode}): {shlex.join(cmd)}\n"
                    f"--- stdout (tail)\n{proc.stdout[-4000:]}\n--- stderr (tail)\n{proc.stderr[-4000:]}",
                    pytrace=False)
    return proc


def tail(proc: subprocess.CompletedProcess) -> str:
    return f"--- stdout (tail)\n{proc.stdout[-3000:]}\n--- stderr (tail)\n{proc.stderr[-3000:]}"


@contextmanager
def machine_lock(name: str):
    """One pytest worker at a time makes `name` (the others wait, then find it made)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def once(make):
    """A step made once per process, like ``functools.cache``, and also failed once: a step that failed (or timed
    out) fails every later test that needs it at once, with the first failure's reason, instead of each test
    waiting for its own timeout again."""
    memo: dict = {}

    @wraps(make)
    def step():
        if "failure" in memo:
            pytest.fail(f"{make.__name__}() failed earlier in this run: {memo['failure']}", pytrace=False)
        if "value" not in memo:
            try:
                memo["value"] = make()
            except pytest.skip.Exception:  # the tools are missing (locally): every test skips with the reason
                raise
            except BaseException as failure:
                memo["failure"] = (str(failure).strip() or type(failure).__name__)[:2000]
                raise
        return memo["value"]

    return step


def _timed(key: str, started: float) -> None:
    TIMINGS[key] = f"{time.monotonic() - started:.0f} s"


def require_root_tools(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not found (apt-get install podman buildah debootstrap fuse-overlayfs runc)")
    if os.geteuid() != 0:
        unavailable("they need root (debootstrap, buildah --isolation chroot, unshare)")


@once
def base_image() -> str:
    with machine_lock("podman-build"):
        exists = subprocess.run(["podman", "image", "exists", BASE_IMAGE]).returncode == 0
        if not exists and shutil.which("debootstrap") is None:
            unavailable(f"debootstrap not found and no local {BASE_IMAGE}")
        started = time.monotonic()
        run(["bash", str(BUILD_BASE), BASE_IMAGE], timeout=600)
        if not exists:
            _timed("base image (debootstrap + import)", started)
    return BASE_IMAGE


def build_command(tag: str, *args: str) -> list[str]:
    cmd = ["podman", "build", "--isolation", "chroot", "--network", "host", "--pull=never", "--layers",
           *args, "-f", str(REPO / "Dockerfile"), "-t", tag]
    if CA_BUNDLE.is_file():  # pip behind an intercepting proxy; the recipe ignores it otherwise
        cmd += ["--secret", f"id=extra_ca,src={CA_BUNDLE}"]
    return [*cmd, str(REPO)]


@once
def image() -> str:
    """The Dockerfile's image, built once per process (and by podman's layer cache once per source tree)."""
    given = os.environ.get("BIDS_FACTORY_IMAGE")
    if given:
        run(["podman", "image", "exists", given])
        return given
    base_image()
    with machine_lock("podman-build"):
        started = time.monotonic()
        run(build_command(BUILT_IMAGE, "--build-arg", f"VERSION={VERSION}"), timeout=900)
        _timed("image build (layer cache may apply)", started)
    return BUILT_IMAGE


def image_id(name: str) -> str:
    return run(["podman", "image", "inspect", "--format", "{{.Id}}", name]).stdout.strip()


@once
def sid_root() -> Path:
    """The Debian sid root with Apptainer (kept in CACHE; made in about 1 minute when missing)."""
    require_root_tools("debootstrap", "unshare", "podman")
    with machine_lock("apptainer-sid"):
        cold = not (SID_ROOT / "usr" / "bin" / "apptainer").exists()
        started = time.monotonic()
        run(["bash", str(APPTAINER_ROOT), str(SID_ROOT)], timeout=600)
        if cold:
            _timed("Debian sid root with apptainer (debootstrap + apt)", started)
    return SID_ROOT


def in_sid_root(binds: list[str], command: list[str], *, timeout: float = 900,
                check: bool = True) -> subprocess.CompletedProcess:
    """`command` inside the sid root (a private mount namespace); `binds`: host folders bound at the same
    path (``PATH:ro`` read-only)."""
    return run([str(APPTAINER_ENTER), str(sid_root()), *binds, "--", *command], timeout=timeout, check=check)


def _cached_sif(key: str, make) -> Path:
    """SIF_CACHE/<key>.sif, made by `make(path)` when missing (other SIFs of the same kind are removed)."""
    sif = SIF_CACHE / f"{key}.sif"
    with machine_lock("sif"):
        if not sif.exists():
            SIF_CACHE.mkdir(parents=True, exist_ok=True)
            for old in SIF_CACHE.glob(f"{key.split('-')[0]}-*.sif"):
                old.unlink()
            partial = sif.with_suffix(".partial")
            make(partial)
            partial.rename(sif)
    return sif


@once
def sif_from_image() -> Path:
    """`apptainer build X.sif docker-archive://` of the tested image (podman save), as docs/containers.md says."""
    name = image()

    def make(target: Path) -> None:
        archive = SIF_CACHE / "image.tar"
        started = time.monotonic()
        run(["podman", "save", "--format", "docker-archive", "-o", str(archive), name])
        try:
            in_sid_root([str(SIF_CACHE)], ["apptainer", "build", "--disable-cache", "--force", str(target),
                                           f"docker-archive://{archive}"])
        finally:
            archive.unlink(missing_ok=True)
        _timed("SIF from the image (podman save + apptainer build)", started)

    return _cached_sif(f"image-{image_id(name)[:16]}", make)


def documented_block(name: str) -> str:
    """The shell block of docs/containers.md after ``<!-- tested: NAME -->``, exactly as written."""
    text = (REPO / "docs" / "containers.md").read_text(encoding="utf-8")
    marker = f"<!-- tested: {name} -->\n```sh\n"
    assert text.count(marker) == 1, f"docs/containers.md has no single block marked {name!r}"
    return text.split(marker, 1)[1].split("\n```", 1)[0] + "\n"


def three_visits(export: Path) -> Path:
    """Two visits of the shared XA30 patient (bold; fieldmaps + a 2 mm T1w the schema holds back) and the
    shared GE T1w visit of another patient, over two days: the real-data set of the HPC tests."""
    from conftest import GE_T1W, XA30, add_series

    add_series(export, "20240105", "VISIT01", XA30 / "7_func-bold_task-fa_run-1")
    for series in ("5_anat-T1w_acq-tfl", "8_gre_field_mapping", "9_gre_field_mapping"):
        add_series(export, "20240106", "VISIT02", XA30 / series)
    add_series(export, "20240106", "GEVISIT", GE_T1W)
    return export


def dataset_files(bids: Path) -> dict[str, bytes]:
    """Every file of the dataset outside code/ (state, run records, scripts, logs) and CHANGES (dated
    entries, one per run); images compared by their uncompressed bytes."""
    files = {}
    for path in sorted(bids.rglob("*")):
        relpath = path.relative_to(bids).as_posix()
        if path.is_file() and not relpath.startswith("code/") and relpath != "CHANGES":
            data = path.read_bytes()
            files[relpath] = gzip.decompress(data) if relpath.endswith(".gz") else data
    return files


def differences(expected: dict[str, bytes], got: dict[str, bytes]) -> list[str]:
    """Files only in one dataset, and files whose contents differ."""
    return ([f"only in one: {name}" for name in sorted(set(expected) ^ set(got))]
            + [f"differs: {name}" for name in sorted(set(expected) & set(got)) if expected[name] != got[name]])


def labels(sif: Path) -> dict[str, str]:
    return json.loads(in_sid_root([str(sif.parent) + ":ro"], ["apptainer", "inspect", "--json", "--labels",
                                                               str(sif)]).stdout)["data"]["attributes"]["labels"]


def local_def(def_text: str, base_archive: Path) -> str:
    """Singularity.def with its two header lines (``Bootstrap: docker`` / ``From: ...``, which need a
    registry) swapped for a local ``docker-archive``; every section stays as shipped."""
    lines = def_text.splitlines()
    assert lines[0] == "Bootstrap: docker" and lines[1].startswith("From: "), lines[:2]
    return "\n".join(["Bootstrap: docker-archive", f"From: {base_archive}", *lines[2:]]) + "\n"


def _def_base() -> str:
    """The registry's debian:bookworm-slim stand-in; behind an intercepting proxy, with pip told the CA
    (an /etc/pip.conf: a .def build passes no host environment to %post). Made once per base image."""
    base = base_image()
    if not CA_BUNDLE.is_file():
        return base
    name, derived = "bids-factory-def-base", f"localhost/bids-factory-def-base:{image_id(base)[:16]}"
    with machine_lock("podman-build"):
        if subprocess.run(["podman", "image", "exists", derived]).returncode != 0:
            _derive(name, base, derived)
    return derived


def _derive(name: str, base: str, derived: str) -> None:
    subprocess.run(["buildah", "rm", name], capture_output=True)
    run(["buildah", "from", "--pull-never", "--name", name, base])
    try:
        run(["buildah", "copy", name, str(CA_BUNDLE), "/usr/local/share/ca-certificates/host-ca.crt"])
        run(["buildah", "run", "--isolation", "chroot", name, "--", "sh", "-c",
             "printf '[global]\\ncert = /usr/local/share/ca-certificates/host-ca.crt\\n' > /etc/pip.conf"])
        run(["buildah", "commit", "--rm", name, derived])
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True)


def _def_sources_digest(def_text: str) -> str:
    """A digest of the .def and of every file its %files section copies (a change makes a new SIF)."""
    import hashlib
    digest = hashlib.sha256(def_text.encode())
    section = def_text.split("%files", 1)[1].split("\n%", 1)[0]
    for line in section.splitlines():
        if line.strip() and not line.strip().startswith("#"):
            source = REPO / line.split()[0]
            for path in sorted([source] if source.is_file() else source.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@once
def sif_from_def() -> Path:
    """`apptainer build --fakeroot X.sif Singularity.def` in the checkout, the header swapped (local_def);
    the build runs the .def's %test."""
    def_text = (REPO / "Singularity.def").read_text(encoding="utf-8")
    base = _def_base()

    def make(target: Path) -> None:
        work = SIF_CACHE / "def-build"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            started = time.monotonic()
            run(["podman", "save", "--format", "docker-archive", "-o", str(work / "base.tar"), base])
            (work / "local.def").write_text(local_def(def_text, work / "base.tar"), encoding="utf-8")
            proc = in_sid_root([str(SIF_CACHE), f"{REPO}:ro"], [
                "sh", "-c", 'cd "$1" && apptainer build --fakeroot --disable-cache --force "$2" "$3"', "sh",
                str(REPO), str(target), str(work / "local.def")], check=False)
            assert proc.returncode == 0 and "bids-factory self-test passed" in proc.stdout, tail(proc)
            _timed("SIF from Singularity.def (apptainer build --fakeroot, with %test)", started)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    return _cached_sif(f"def-{_def_sources_digest(def_text)}-{image_id(base)[:8]}", make)
