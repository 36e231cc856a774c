"""SLURM: the visits that need converting as one job array (a task per visit), then a finalize job.

Each array task is a plain ``bids-factory convert EXPORT BIDS --visit <id> --wait S`` (conversions run
at once on many nodes, only their short writes queue on the dataset lock); the finalize job, started
after every task has ended (``afterany``), is a plain ``convert`` of the same export: it finds the
visits the tasks placed unchanged, converts what is still missing, writes the dataset-level files and
runs the validator. The scripts are data (:class:`SlurmScripts`); the writer stores them in the
dataset (``code/bids-factory/slurm/<time>/``) next to the jobs' logs; ``sbatch`` submits them. A kept
script is the whole job: the ``--sbatch`` options are ``#SBATCH`` lines in it, the site's setup lines
(``module load apptainer``) and container command (``apptainer``/``singularity``, binds) are in it, so
``sbatch`` of that file alone runs the same job again.
"""

from __future__ import annotations

import datetime as dt
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bids_factory.errors import SlurmError
from bids_factory.write.dataset_writer import DatasetWriter
from bids_factory.write.dataset_paths import SLURM_DIR

ARRAY_SCRIPT, FINALIZE_SCRIPT = "convert-array.sbatch", "finalize.sbatch"
LOCK_WAIT = 60  # seconds to wait for a running job's write to end before writing the scripts


@dataclass(frozen=True)
class SlurmRequest:
    """What to submit: the export, the dataset, the visits, and how to run bids-factory on a node."""

    export: Path
    bids: Path
    visits: tuple[str, ...]  # scan_research_ids, one array task each
    convert_args: tuple[str, ...] = ()  # convert options given by the user, passed to every job
    visit_filter: tuple[str, ...] = ()  # the user's --visit: the finalize job keeps to them too
    reconvert: bool = False  # array tasks only: the finalize job finds the reconverted visits unchanged
    wait: float = 3600  # seconds a job waits for the dataset's write lock
    array_limit: int | None = None  # at most this many array tasks at once (``%N``)
    sbatch_args: tuple[str, ...] = ()  # more sbatch options, for both jobs
    image: Path | None = None  # an Apptainer image (.sif): the jobs run bids-factory in it
    binds: tuple[Path, ...] = ()  # files the jobs read besides the export (heuristic...), bound read-only
    container_command: str = "apptainer"  # or "singularity", or a full path: runs ``CMD run ... SIF``
    container_binds: tuple[str, ...] = ()  # more ``--bind`` specs, e.g. "$TMPDIR" (expanded on the node)
    setup: tuple[str, ...] = ()  # shell lines run first in every job, e.g. "module load apptainer"
    workdir: Path = Path(".")  # relative paths in convert_args are relative to this folder


@dataclass(frozen=True)
class SlurmScripts:
    folder: Path  # absolute: code/bids-factory/slurm/<time>/ in the dataset
    array: str
    finalize: str


@dataclass(frozen=True)
class Submission:
    array_job: str
    finalize_job: str
    folder: Path


def slurm_folder(bids: Path, now: dt.datetime | None = None) -> Path:
    """``code/bids-factory/slurm/<UTC time>`` in the dataset (a new name if that one is taken)."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    base = bids.resolve() / SLURM_DIR
    folder, n = base / stamp, 1
    while folder.exists():
        n += 1
        folder = base / f"{stamp}-{n}"
    return folder


def slurm_scripts(request: SlurmRequest, folder: Path) -> SlurmScripts:
    export, bids, workdir = request.export.resolve(), request.bids.resolve(), request.workdir.resolve()
    command = _bids_factory_command(request, export, bids)
    common = ["convert", str(export), str(bids), *request.convert_args]
    wait = ["--wait", f"{request.wait:g}"]
    limit = f"%{request.array_limit}" if request.array_limit else ""
    task = [*common, *(["--reconvert"] if request.reconvert else [])]
    options = _sbatch_directives(request.sbatch_args)
    setup = [*(["# the site's setup (--setup)"] if request.setup else []), *request.setup]
    array = "\n".join([
        "#!/bin/bash",
        "#SBATCH --job-name=bids-factory-visit",
        f"#SBATCH --array=0-{len(request.visits) - 1}{limit}",
        f"#SBATCH --output={_directive_path(folder, 'visit-%A_%a.out')}",
        f"#SBATCH --chdir={_directive_path(workdir)}",
        *options,
        "# One visit (scan_research_id) per array task, written by `bids-factory slurm`.",
        *setup,
        "set -euo pipefail",
        "VISITS=(",
        *(f"  {shlex.quote(visit)}" for visit in request.visits),
        ")",
        'VISIT="${VISITS[$SLURM_ARRAY_TASK_ID]}"',
        f'exec {command} {_join(task)} --visit "$VISIT" {_join(wait)}',
        "",
    ])
    visits = ["--visit", *request.visit_filter] if request.visit_filter else []
    finalize = "\n".join([
        "#!/bin/bash",
        "#SBATCH --job-name=bids-factory-finalize",
        f"#SBATCH --output={_directive_path(folder, 'finalize-%j.out')}",
        f"#SBATCH --chdir={_directive_path(workdir)}",
        *options,
        "# After every array task has ended: converts what is still missing, writes the dataset-level",
        "# files and runs the validator (a plain convert run).",
        *setup,
        "set -euo pipefail",
        f"exec {command} {_join([*common, *visits, *wait])}",
        "",
    ])
    return SlurmScripts(folder, array, finalize)


def _bids_factory_command(request: SlurmRequest, export: Path, bids: Path) -> str:
    """This very installation (its Python), or the image's entry point through Apptainer (shell words)."""
    if request.image is None:
        return _join([sys.executable, "-m", "bids_factory"])
    binds = [f"{export}:{export}:ro", f"{bids}:{bids}"]
    binds += [f"{path}:{path}:ro" for path in dict.fromkeys(p.resolve() for p in request.binds)]
    words = [_join([request.container_command, "run", *(arg for bind in binds for arg in ("--bind", bind))])]
    words += [f"--bind {_expanding(spec)}" for spec in request.container_binds]
    return " ".join([*words, shlex.quote(str(request.image.resolve()))])


def _expanding(text: str) -> str:
    """``text`` in double quotes for bash: ``$TMPDIR`` is expanded when the job runs, nothing else is."""
    return '"' + "".join("\\" + c if c in '"\\`' else c for c in text) + '"'


def _sbatch_directives(args: tuple[str, ...]) -> list[str]:
    """``--sbatch`` options as ``#SBATCH`` lines, one option (with its value word, if separate) a line."""
    groups: list[list[str]] = []
    for arg in args:
        if arg.startswith("-") or not groups:
            groups.append([arg])
        else:
            groups[-1].append(arg)
    return ["#SBATCH " + " ".join(_quoted(w) if not w or set(w) & set(' \t"\'\\') else w for w in group)
            for group in groups]


def _quoted(word: str) -> str:
    """A word in double quotes, ``\\`` and ``"`` escaped: how sbatch reads an ``#SBATCH`` value."""
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _directive_path(folder: Path, pattern: str | None = None) -> str:
    """A path in an ``#SBATCH`` line, as sbatch reads it: in double quotes, ``\\`` and ``"`` escaped (a space
    or quote in BIDS_DIR stays in the path); a ``%`` of the path doubled, so only ``pattern``'s are
    sbatch's file name patterns (``%A``, ``%a``, ``%j``)."""
    text = str(folder) if pattern is None else f"{str(folder).replace('%', '%%')}/{pattern}"  # --chdir: no pattern
    return _quoted(text)


def _join(words: list[str]) -> str:
    return " ".join(shlex.quote(word) for word in words)


def sbatch_path() -> str:
    found = shutil.which("sbatch")
    if found is None:
        raise SlurmError("sbatch is not on PATH: run this on a SLURM login node (or load the slurm module); "
                         "--dry-run prints the scripts without submitting them")
    return found


def submit(scripts: SlurmScripts, writer: DatasetWriter) -> Submission:
    """Write the scripts into the dataset, submit the array, then the finalize job after it (the ``--sbatch``
    options are ``#SBATCH`` lines of the scripts)."""
    sbatch = sbatch_path()
    relative = scripts.folder.relative_to(writer.root)
    with writer.lock.held(wait=LOCK_WAIT):
        writer.write_text(relative / ARRAY_SCRIPT, scripts.array)
        writer.write_text(relative / FINALIZE_SCRIPT, scripts.finalize)
    array_job = _sbatch(sbatch, [str(scripts.folder / ARRAY_SCRIPT)], "the job array")
    finalize_job = _sbatch(sbatch, [f"--dependency=afterany:{array_job}", str(scripts.folder / FINALIZE_SCRIPT)],
                           f"the finalize job (the array {array_job} is submitted: `scancel {array_job}` "
                           "to cancel it, or run a plain convert once it has ended)")
    return Submission(array_job, finalize_job, scripts.folder)


def _sbatch(sbatch: str, args: list[str], what: str) -> str:
    try:
        done = subprocess.run([sbatch, "--parsable", *args], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"sbatch could not submit {what}: {exc}") from None
    job = done.stdout.strip().split(";")[0]
    if done.returncode != 0 or not job:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise SlurmError(f"sbatch refused {what} (exit {done.returncode}): {said[-1] if said else 'no message'}")
    return job


def follow_lines(submission: Submission) -> list[str]:
    jobs = f"{submission.array_job},{submission.finalize_job}"
    return [
        f"follow: squeue -j {jobs}",
        f"when done: sacct -j {jobs} --format=JobID,JobName,State,Elapsed,ExitCode",
        f"scripts and logs: {submission.folder}",
    ]
