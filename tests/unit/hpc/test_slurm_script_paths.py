"""The SLURM scripts hold any BIDS_DIR, export or working folder: spaces, quotes, ``%`` (sbatch and bash read them)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from bids_factory.hpc.slurm import SlurmRequest, slurm_folder, slurm_scripts


def _directive(script: str, option: str) -> str:
    """The value of an ``#SBATCH`` option as sbatch reads it (quotes group, a backslash escapes: shlex's
    double-quote rules for what the scripts write)."""
    [line] = [line for line in script.splitlines() if line.startswith(f"#SBATCH {option}=")]
    [word] = shlex.split(line.removeprefix("#SBATCH "))
    return word.removeprefix(f"{option}=")


def test_every_path_in_both_scripts_is_quoted(tmp_path):
    odd = tmp_path / 'my data "v2" 100%'
    export, bids, workdir = odd / "export dir", odd / "bids dir", odd / "work dir"
    for folder in (export, bids, workdir):
        folder.mkdir(parents=True)
    request = SlurmRequest(export=export, bids=bids, visits=("V 1", "it's"), workdir=workdir,
                           convert_args=("--heuristic", str(odd / "site rules.json")))
    folder = slurm_folder(bids)
    scripts = slurm_scripts(request, folder)

    sbatch_folder = str(folder).replace("%", "%%")  # sbatch's own pattern for a literal %
    assert _directive(scripts.array, "--output") == f"{sbatch_folder}/visit-%A_%a.out"
    assert _directive(scripts.finalize, "--output") == f"{sbatch_folder}/finalize-%j.out"
    assert _directive(scripts.array, "--chdir") == _directive(scripts.finalize, "--chdir") == str(workdir)
    [array_exec] = [line for line in scripts.array.splitlines() if line.startswith("exec ")]
    [finalize_exec] = [line for line in scripts.finalize.splitlines() if line.startswith("exec ")]
    words = shlex.split(finalize_exec)
    assert words[4:8] == ["convert", str(export.resolve()), str(bids.resolve()), "--heuristic"]
    assert words[8] == str(odd / "site rules.json")
    assert shlex.split(array_exec)[4:7] == ["convert", str(export.resolve()), str(bids.resolve())]
    assert "  'V 1'" in scripts.array.splitlines() and "  'it'\"'\"'s'" in scripts.array.splitlines()


def _run_script(script: str, folder: Path, **env: str) -> list[str]:
    """Run a job script as a node would (bash), its container command a stub that prints its words."""
    path = folder / "job.sbatch"
    path.write_text(script)
    done = subprocess.run(["bash", str(path)], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_a_kept_script_is_the_whole_job(tmp_path):
    """--sbatch options are #SBATCH lines (resubmitting one script by hand keeps them); the site's setup
    lines run first (before `set -u`, which breaks some module systems); the container command, its
    binds (a $VARIABLE expanded on the node) and the image are in the exec line."""
    stub = tmp_path / "bin" / "singularity"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\nfor word in "$@"; do echo "$word"; done\n')
    stub.chmod(0o755)
    sif = tmp_path / "images" / "bf 1.sif"
    request = SlurmRequest(export=tmp_path, bids=tmp_path / "bids", visits=("V1", "V2"), image=sif,
                           sbatch_args=("--partition=short", "--mem", "8G", "--comment=my study", "-t", "01:00:00"),
                           container_command=str(stub), container_binds=("$TMPDIR", "/scratch:/scratch:ro"),
                           setup=("module() { echo \"module $*\"; }", "module load apptainer", "echo ${UNSET_VAR}"))
    scripts = slurm_scripts(request, slurm_folder(tmp_path / "bids"))
    for script in (scripts.array, scripts.finalize):
        sbatch_lines = [line for line in script.splitlines() if line.startswith("#SBATCH")]
        assert sbatch_lines[-4:] == ["#SBATCH --partition=short", "#SBATCH --mem 8G", '#SBATCH "--comment=my study"',
                                     "#SBATCH -t 01:00:00"]
        assert script.index("#SBATCH --partition") < script.index("module load") < script.index("set -euo pipefail")
    words = _run_script(scripts.array, tmp_path, SLURM_ARRAY_TASK_ID="1", TMPDIR="/local/job 7")
    assert words[:2] == ["module load apptainer", ""]  # the setup ran (an unset variable is no error there)
    bids, export = (tmp_path / "bids").resolve(), tmp_path.resolve()
    assert words[2:12] == ["run", "--bind", f"{export}:{export}:ro", "--bind", f"{bids}:{bids}",
                           "--bind", "/local/job 7", "--bind", "/scratch:/scratch:ro", str(sif.resolve())]
    assert words[12:] == ["convert", str(export), str(bids), "--visit", "V2", "--wait", "3600"]
    words = _run_script(scripts.finalize, tmp_path, TMPDIR="/local/job 8")
    assert words[7:9] == ["--bind", "/local/job 8"] and words[-2:] == ["--wait", "3600"]
