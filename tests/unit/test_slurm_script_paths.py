"""The SLURM scripts hold any BIDS_DIR, export or working folder: spaces, quotes, ``%`` (sbatch and bash read them)."""

from __future__ import annotations

import shlex
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
