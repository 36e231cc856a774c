"""`bids-factory slurm` without a cluster: the scripts, --dry-run, a missing or refusing sbatch, and
nothing to convert. The real cluster run is tests/system/test_slurm_cluster.py (marked ``slurm``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bids_factory.cli.main import main
from bids_factory.discover.visits import discover
from bids_factory.run.pipeline import ConvertOptions, convert
from bids_factory.resources import shipped_dir

HEURISTIC = shipped_dir("heuristics") / "default.json"


@pytest.fixture(scope="module")
def demo(tmp_path_factory, new_demo):
    """The synthetic demo export, read only (no test here converts all of it)."""
    return new_demo(tmp_path_factory.mktemp("slurm") / "export")


def _ids(export) -> list[str]:
    """The export's visits in the order discovery (and so the job array) lists them."""
    return [v.scan_research_id for v in discover(export.root).visits]


def _fake_sbatch(folder: Path, body: str) -> Path:
    """An ``sbatch`` on PATH that records its arguments (one call per line) and runs ``body``."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "sbatch"
    script.write_text(f'#!/bin/bash\necho "$*" >> "{folder}/calls"\n{body}\n')
    script.chmod(0o755)
    return folder


def _dry_run(capsys, *args: str) -> str:
    assert main(["slurm", *args, "--dry-run"]) == 0
    return capsys.readouterr().out


def test_dry_run_prints_both_scripts_and_writes_nothing(demo, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bids = tmp_path / "bids"
    out = _dry_run(capsys, str(demo.root), "bids", "--heuristic", str(HEURISTIC), "--array-limit", "2",
                   "--no-validate", "--wait", "900")
    assert not bids.exists() and not list(tmp_path.glob("*.out"))  # nothing written anywhere
    array, finalize = out.split("# ---- ")[1:]
    ids = _ids(demo)
    assert f"#SBATCH --array=0-{len(ids) - 1}%2" in array
    assert all(f"\n  {visit}\n" in array for visit in ids)  # every visit, one array element each
    assert f"{bids.resolve()}/code/bids-factory/slurm/" in array and f'#SBATCH --chdir="{tmp_path}"' in array
    command = f"exec {sys.executable} -m bids_factory convert {demo.root} {bids.resolve()} --heuristic {HEURISTIC} --no-validate"
    assert f'{command} --visit "$VISIT" --wait 900\n' in array
    assert finalize.rstrip().splitlines()[-1] == f"{command} --wait 900"  # a plain convert: every visit, no filter
    assert "--reconvert" not in out


def test_array_script_gives_each_task_its_visit(demo, tmp_path, capsys):
    """The array script run by bash, as SLURM runs task 1, converts the second visit (the command is
    replaced by echo: the Python of this installation is written into the script)."""
    out = _dry_run(capsys, str(demo.root), str(tmp_path / "bids"))
    array = out.split("# ---- ")[1].split("\n", 1)[1].replace(f"exec {sys.executable} ", "exec echo ")
    done = subprocess.run(["bash", "-c", array], env={**os.environ, "SLURM_ARRAY_TASK_ID": "1"},
                          capture_output=True, text=True, check=True)
    assert done.stdout.split()[-4:] == ["--visit", _ids(demo)[1], "--wait", "3600"]


def test_reconvert_and_visit_filter(demo, tmp_path, capsys):
    first, second = _ids(demo)[:2]
    out = _dry_run(capsys, str(demo.root), str(tmp_path / "bids"), "--visit", first, second, "--reconvert")
    array, finalize = out.split("# ---- ")[1:]
    assert "#SBATCH --array=0-1\n" in array and "--reconvert --visit" in array
    # the finalize job keeps to the named visits and does not reconvert what the tasks just converted
    assert finalize.rstrip().endswith(f"--visit {first} {second} --wait 3600") and "--reconvert" not in finalize


def test_image_runs_through_apptainer_with_the_export_read_only(demo, tmp_path, capsys):
    bids, sif = (tmp_path / "bids").resolve(), tmp_path / "bids-factory.sif"
    out = _dry_run(capsys, str(demo.root), str(bids), "--image", str(sif), "--heuristic", str(HEURISTIC))
    runner = (f"apptainer run --bind {demo.root}:{demo.root}:ro --bind {bids}:{bids} "
              f"--bind {HEURISTIC}:{HEURISTIC}:ro {sif} convert {demo.root} {bids}")
    assert out.count(f"exec {runner} --heuristic {HEURISTIC}") == 2 and sys.executable not in out


def test_nothing_to_convert_submits_nothing(demo, tmp_path, capsys, monkeypatch):
    """Only new or changed visits are submitted: after a local run of one visit, the others are
    listed; with that visit alone, nothing is submitted (sbatch is never called) and the exit is 0."""
    bids, done = tmp_path / "bids", _ids(demo)[0]
    convert(ConvertOptions(export=demo.root, bids=bids, visits=frozenset({done}), validate=False))
    fake = _fake_sbatch(tmp_path / "bin", "echo 1")
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    out = _dry_run(capsys, str(demo.root), str(bids))
    assert f"#SBATCH --array=0-{len(_ids(demo)) - 2}\n" in out and f"\n  {done}\n" not in out
    assert main(["slurm", str(demo.root), str(bids), "--visit", done]) == 0
    assert capsys.readouterr().out.startswith("nothing to convert:")
    assert not (fake / "calls").exists() and not (bids / "code" / "bids-factory" / "slurm").exists()


def test_submits_the_array_then_the_finalize_job_after_it(demo, tmp_path, capsys, monkeypatch):
    fake = _fake_sbatch(tmp_path / "bin", 'echo $(( 40 + $(wc -l < "$(dirname "$0")/calls") ))";cluster"')
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    bids = tmp_path / "bids"
    assert main(["slurm", str(demo.root), str(bids), "--sbatch=--partition=short --mem=8G"]) == 0
    out = capsys.readouterr().out
    assert "job array 41 and the finalize job 42" in out and "squeue -j 41,42" in out and "sacct -j 41,42" in out
    [folder] = (bids / "code" / "bids-factory" / "slurm").iterdir()
    array_call, finalize_call = (fake / "calls").read_text().splitlines()
    assert array_call == f"--parsable {folder}/convert-array.sbatch"  # the options are in the kept script
    assert finalize_call == f"--parsable --dependency=afterany:41 {folder}/finalize.sbatch"
    for script in ("convert-array.sbatch", "finalize.sbatch"):  # resubmitting a kept script keeps them
        assert "\n#SBATCH --partition=short\n#SBATCH --mem=8G\n" in (folder / script).read_text()
    assert f'#SBATCH --output="{folder}/visit-%A_%a.out"' in (folder / "convert-array.sbatch").read_text()
    assert (folder / "finalize.sbatch").read_text().startswith("#!/bin/bash\n#SBATCH --job-name=bids-factory-finalize")


def test_no_sbatch_on_path_is_one_line(demo, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["slurm", str(demo.root), str(tmp_path / "bids")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bids-factory: error: sbatch is not on PATH") and err.count("\n") == 1
    assert not (tmp_path / "bids").exists()


def test_refused_submission_is_one_line(demo, tmp_path, capsys, monkeypatch):
    fake = _fake_sbatch(tmp_path / "bin", 'echo "sbatch: error: Batch job submission failed: '
                                          'Invalid partition name specified" >&2; exit 1')
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    assert main(["slurm", str(demo.root), str(tmp_path / "bids"), "--sbatch=--partition=nope"]) == 1
    err = capsys.readouterr().err
    assert err == ("bids-factory: error: sbatch refused the job array (exit 1): "
                   "sbatch: error: Batch job submission failed: Invalid partition name specified\n")
    assert len((fake / "calls").read_text().splitlines()) == 1  # no finalize job without its array


def test_unknown_options_are_still_refused(demo, tmp_path):
    for command in ("convert", "slurm", "visits"):
        args = [command, str(demo.root)] + ([str(tmp_path / "bids")] if command != "visits" else [])
        with pytest.raises(SystemExit) as stop:
            main([*args, "--no-such-option"])
        assert stop.value.code == 2


def test_dry_run_shows_the_site_options(demo, tmp_path, capsys):
    sif = tmp_path / "bf.sif"
    out = _dry_run(capsys, str(demo.root), str(tmp_path / "bids"), "--image", str(sif), "--container-command",
                   "singularity", "--container-bind", "$TMPDIR", "--setup", "module load apptainer",
                   "--sbatch=--partition=short --mem=4G")
    scripts = out.split("# ---- ")[1:]
    assert len(scripts) == 2
    for script in scripts:
        assert "\n#SBATCH --partition=short\n#SBATCH --mem=4G\n" in script
        assert "\nmodule load apptainer\nset -euo pipefail\n" in script
        assert 'exec singularity run --bind ' in script and f'--bind "$TMPDIR" {sif}' in script


def test_container_options_need_an_image(demo, tmp_path, capsys):
    for option in (["--container-bind", "/scratch"], ["--container-command", "singularity"]):
        with pytest.raises(SystemExit) as stop:
            main(["slurm", str(demo.root), str(tmp_path / "bids"), *option])
        assert stop.value.code == 2 and "go with --image SIF" in capsys.readouterr().err
