"""`bids-factory slurm` on a real single-node SLURM (Debian's slurm-wlm + munge, as root; recipe in
docs/hpc-testing.md): the job array and the finalize job run for real, with this installation and
through an Apptainer SIF, and the dataset equals a local run's. Marked ``slurm`` (the SIF run also
``apptainer``); CI (.ci/run, root) installs the packages. Skipped only when not root or when the SLURM /
munge binaries are missing."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bids_factory.run.pipeline import ConvertOptions, convert
import container_images
from conftest import assert_valid_bids, fingerprint, run_bounded
from container_images import APPTAINER_ENTER, dataset_files, differences, sid_root, sif_from_image

pytestmark = [pytest.mark.realdata, pytest.mark.slurm, container_images.SLOW]

DAEMONS = {  # binary -> its pid file
    "/usr/sbin/munged": Path("/run/munge/munged.pid"),
    "/usr/sbin/slurmctld": Path("/var/run/slurmctld.pid"),
    "/usr/sbin/slurmd": Path("/var/run/slurmd.pid"),
}
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol")
JOBS_TIMEOUT = 900  # seconds for the array and the finalize job (about 1 minute here)


def _alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return run_bounded(cmd, timeout=120, **kw)


def _slurm_conf() -> str:
    host = socket.gethostname().split(".")[0]
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal:")))
    return f"""ClusterName=local
SlurmctldHost={host}
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SlurmctldPidFile=/var/run/slurmctld.pid
SlurmdPidFile=/var/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName={host} CPUs={os.cpu_count()} RealMemory={max(mem_kb // 1024 - 1024, 512)} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _start_munge() -> None:
    for folder in ("/etc/munge", "/var/log/munge", "/run/munge", "/var/lib/munge"):
        Path(folder).mkdir(parents=True, exist_ok=True)
    key = Path("/etc/munge/munge.key")
    if not key.exists() or key.stat().st_size == 0:
        key.write_bytes(os.urandom(1024))
    subprocess.run(["chown", "-R", "munge:munge", "/etc/munge", "/var/log/munge", "/run/munge", "/var/lib/munge"],
                   check=True)
    key.chmod(0o400)
    subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"], check=True, timeout=60)


def _start_slurm() -> None:
    for folder in ("/etc/slurm", "/var/spool/slurmctld", "/var/spool/slurmd", "/var/log/slurm"):
        Path(folder).mkdir(parents=True, exist_ok=True)
    Path("/etc/slurm/slurm.conf").write_text(_slurm_conf())
    Path("/etc/slurm/cgroup.conf").unlink(missing_ok=True)  # slurmd 22.05 does not start here with one
    subprocess.run(["/usr/sbin/slurmctld"], check=True, timeout=60)
    subprocess.run(["/usr/sbin/slurmd"], check=True, timeout=60)


@pytest.fixture(scope="module")
def cluster():
    """A one-node SLURM cluster; the daemons this fixture started are stopped (by pid file) at the end,
    also when a test fails. Daemons already running are used and left running."""
    if os.geteuid() != 0:
        pytest.skip("the single-node SLURM cluster is started as root (CI runs this test as root)")
    missing = [b for b in DAEMONS if not Path(b).exists()] + [c for c in CLIENTS if not shutil.which(c)]
    if missing:
        pytest.skip(f"slurm-wlm / munge not installed (missing {', '.join(missing)}): apt-get install slurm-wlm munge")
    started: list[Path] = []
    try:
        if not _alive(DAEMONS["/usr/sbin/munged"]):
            _start_munge()
            started.append(DAEMONS["/usr/sbin/munged"])
        if not _alive(DAEMONS["/usr/sbin/slurmctld"]):
            _start_slurm()
            started += [DAEMONS["/usr/sbin/slurmctld"], DAEMONS["/usr/sbin/slurmd"]]
        deadline = time.monotonic() + 60
        while _run(["sinfo", "-h", "-o", "%T"]).stdout.strip() not in ("idle", "mixed", "allocated"):
            assert time.monotonic() < deadline, f"the node did not register: {_run(['sinfo']).stdout}"
            time.sleep(1)
        yield
    finally:
        for pidfile in reversed(started):  # slurmd, slurmctld, then munged
            pid = _alive(pidfile)
            if pid:
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    if not _alive(pidfile):
                        break
                    time.sleep(0.1)


@pytest.fixture(scope="module")
def three_visits(tmp_path_factory) -> Path:
    return container_images.three_visits(tmp_path_factory.mktemp("slurm-export") / "export")


@pytest.fixture(scope="module")
def local_files(three_visits, tmp_path_factory) -> dict[str, bytes]:
    local = tmp_path_factory.mktemp("slurm-local") / "bids"
    convert(ConvertOptions(export=three_visits, bids=local, dataset_name="SLURM test"))
    return dataset_files(local)


def _submit_and_wait(export: Path, bids: Path, cwd: Path, *options: str) -> tuple[str, str, dict[str, str]]:
    """`bids-factory slurm EXPORT BIDS --dataset-name "SLURM test" OPTIONS`, then wait for both jobs:
    (array job, finalize job, {log name: text})."""
    started = time.monotonic()
    submitted = run_bounded(
        [sys.executable, "-m", "bids_factory", "slurm", str(export), str(bids),
         "--dataset-name", "SLURM test", "--array-limit", "2", "--wait", "600", *options], timeout=600, cwd=cwd)
    assert submitted.returncode == 0, submitted.stderr
    words = submitted.stdout.split()
    array_job, finalize_job = words[words.index("array") + 1], words[words.index("finalize") + 2]
    assert f"squeue -j {array_job},{finalize_job}" in submitted.stdout
    limits = _run(["scontrol", "show", "job", array_job]).stdout
    deadline = time.monotonic() + JOBS_TIMEOUT
    while _run(["squeue", "-h", "-j", f"{array_job},{finalize_job}"]).stdout.strip():
        if time.monotonic() > deadline:
            _run(["scancel", array_job, finalize_job])
            pytest.fail(f"the jobs did not end in {JOBS_TIMEOUT} s: {_run(['squeue']).stdout}")
        time.sleep(2)
    print(f"\nSLURM {' '.join(options)}: 3 visits as a job array + finalize, from submission to the end: "
          f"{time.monotonic() - started:.1f} s")
    [folder] = (bids / "code" / "bids-factory" / "slurm").iterdir()
    logs = {p.name: p.read_text() for p in sorted(folder.glob("*.out"))}
    assert sorted(logs) == [f"finalize-{finalize_job}.out"] + [f"visit-{array_job}_{i}.out" for i in range(3)], logs
    return array_job, limits, logs


def test_slurm_job_array_gives_the_local_dataset(cluster, three_visits, local_files, tmp_path):
    before = fingerprint(three_visits)
    bids = tmp_path / "bids"
    _, limits, logs = _submit_and_wait(three_visits, bids, tmp_path, "--sbatch=--time=00:20:00")
    assert "TimeLimit=00:20:00" in limits  # an #SBATCH line of the kept script

    # every visit was converted by its own array task; the finalize run found all three unchanged
    runs = [json.loads(p.read_text()) for p in sorted((bids / "code" / "bids-factory" / "runs").glob("run-*.json"))]
    assert len(runs) == 4, logs
    visits_of_runs = sorted(sorted((v["scan_research_id"], v["status"]) for v in r["visits"]) for r in runs)
    assert visits_of_runs == [[], [("GEVISIT", "placed")], [("VISIT01", "placed")], [("VISIT02", "placed")]], logs
    assert [r.get("visits_counted") for r in runs if not r["visits"]] == [{"unchanged": 3}], logs  # counted only

    got = dataset_files(bids)
    assert differences(local_files, got) == []
    assert len([f for f in got if f.endswith(".nii.gz")]) == 5  # bold, 3 fieldmap images, GE T1w
    assert_valid_bids(bids)
    assert fingerprint(three_visits) == before


@pytest.mark.apptainer
@pytest.mark.container
def test_slurm_job_array_through_the_sif(cluster, three_visits, local_files, tmp_path):
    """`--image SIF`: every job runs `apptainer run ... SIF convert ...`. This machine's apptainer lives in
    a Debian sid root, so the site's container command (--container-command) is a wrapper that enters
    it; its host folders come from a --setup line; --container-bind binds $SLURM_SUBMIT_DIR, expanded
    on the node. The wrapper notes each job that ran it."""
    sif, root = sif_from_image(), sid_root()
    before = fingerprint(three_visits)
    bids, calls = tmp_path / "bids", tmp_path / "sif-calls"
    wrapper = tmp_path / "apptainer-in-sid-root"
    enter = shlex.join([str(APPTAINER_ENTER), str(root)])
    wrapper.write_text(f'#!/bin/sh\necho "$SLURM_JOB_ID $*" >> {shlex.quote(str(calls))}\n'
                       f'exec {enter} $HOST_BINDS -- apptainer "$@"\n')
    wrapper.chmod(0o755)
    host_binds = f"{three_visits}:ro {tmp_path} {sif.parent}:ro"
    array_job, limits, logs = _submit_and_wait(
        three_visits, bids, tmp_path, "--image", str(sif), "--container-command", str(wrapper),
        "--container-bind", "$SLURM_SUBMIT_DIR", "--setup", f"export HOST_BINDS={shlex.quote(host_binds)}",
        "--sbatch=--time=00:30:00 --mem=3G")
    assert "TimeLimit=00:30:00" in limits and "mem=3G" in limits
    runs = calls.read_text().splitlines()
    assert len(runs) == 4, logs  # three array tasks and the finalize job
    for line in runs:
        assert f"run --bind {three_visits}:{three_visits}:ro" in line and f"--bind {tmp_path} {sif}" in line, line
    got = dataset_files(bids)
    assert differences(local_files, got) == [], logs
    assert_valid_bids(bids)
    assert fingerprint(three_visits) == before
