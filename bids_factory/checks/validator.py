"""The official BIDS validator (``bids-validator-deno``, from PyPI), run on a written dataset."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bids_factory.errors import ToolMissingError, ValidatorFailedError
from bids_factory.model import BIDS_VERSION, VisitPlan, VisitRecord
from bids_factory.extract.staged_images import image_stem


@dataclass(frozen=True)
class ValidatorIssue:
    severity: str
    code: str
    location: str
    message: str


@dataclass(frozen=True)
class ValidatorResult:
    exit_code: int
    issues: tuple[ValidatorIssue, ...]
    version: str
    output: str = ""  # the validator's full JSON output, as it printed it

    @property
    def errors(self) -> tuple[ValidatorIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[ValidatorIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")

    @property
    def failure(self) -> str | None:
        """Why the validator could not check the dataset at all (it printed no report), else ``None``."""
        return next((i.message for i in self.issues if i.code == VALIDATOR_FAILED), None)


VALIDATOR_FAILED = "VALIDATOR_FAILED"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def write_check_dataset(plans: list[VisitPlan], folder: Path) -> dict[str, tuple[int, str]]:
    """A scratch BIDS dataset in the run's staging (never the dataset) holding planned visits: images
    linked, sidecars written. Returns validator location -> (index of the plan, placement session_path)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_description.json").write_text(
        json.dumps({"Name": "bids-factory visit check", "BIDSVersion": BIDS_VERSION, "DatasetType": "raw"}))
    paths = {}
    for index, plan in enumerate(plans):
        session = folder / f"sub-{plan.subject_label}" / f"ses-{plan.session_label}"
        for placement in plan.placements:
            target = session / placement.datatype / placement.stem
            target.parent.mkdir(parents=True, exist_ok=True)
            image = placement.series.nifti  # gzipped when placing; plain for ``inventory``
            for source, suffix in ((image, image.name[len(image_stem(image)):]),
                                   *((extra, extra.suffix) for extra in placement.series.extras)):
                Path(f"{target}{suffix}").symlink_to(source)
                paths[f"/{Path(f'{target}{suffix}').relative_to(folder).as_posix()}"] = (index, placement.session_path)
            Path(f"{target}.json").write_text(json.dumps(placement.sidecar, indent=2))
            paths[f"/{target.relative_to(folder).as_posix()}.json"] = (index, placement.session_path)
            for name, text in placement.extra_files:  # e.g. an ASL image's aslcontext.tsv
                extra = target.parent / placement.extra_file_stem(name)
                extra.write_text(text)
                paths[f"/{extra.relative_to(folder).as_posix()}"] = (index, placement.session_path)
    return paths


VALIDATOR_NEXT_STEP = ("; a site corrects or adds the field it names with sidecar_changes in its own heuristic "
                       "(or a rule that names the image differently)")


def batch_faults(plans: list[VisitPlan], folder: Path) -> list[dict[str, str]]:
    """Validator errors of planned visits, per visit: placement session_path -> reason (one dict per plan).

    What the validator refuses never reaches the dataset, whatever a vendor's converter wrote. The
    visits are checked together in one scratch dataset (one validator run per batch); only when that
    finds errors is the batch split in halves, down to the faulty visits alone, so a visit is held back
    only for what the validator says about it checked on its own. Errors about the scratch dataset
    itself (not about a placed file) are ignored.
    """
    faults: list[dict[str, str]] = [{} for _ in plans]
    sessions: dict[tuple[str, str], int] = {}
    groups: list[list[int]] = []
    for index, plan in enumerate(plans):  # two plans for one session cannot share a scratch dataset
        key = (plan.subject_label, plan.session_label)
        sessions[key] = sessions.get(key, -1) + 1
        if sessions[key] == len(groups):
            groups.append([])
        groups[sessions[key]].append(index)
    for number, group in enumerate(groups):
        _check(plans, group, folder / f"group-{number}", faults)
    return faults


def _check(plans: list[VisitPlan], indices: list[int], folder: Path, faults: list[dict[str, str]]) -> None:
    paths = write_check_dataset([plans[i] for i in indices], folder)
    try:
        result = validated(folder, "the converted visits", "; nothing was placed (or run with --no-validate)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    found: dict[int, dict[str, list[str]]] = {}
    for issue in result.errors:
        where = paths.get(issue.location)
        if where:
            found.setdefault(indices[where[0]], {}).setdefault(where[1], []).append(
                " ".join(f"BIDS validator: {issue.code} {issue.message}".split()))  # one line, never a JSON block
    if len(indices) == 1 and found:
        faults[indices[0]] = {relpath: "; ".join(dict.fromkeys(reasons)) + VALIDATOR_NEXT_STEP
                              for relpath, reasons in found[indices[0]].items()}
        return
    middle = len(indices) // 2
    for number, half in enumerate((indices[:middle], indices[middle:])):
        if any(i in found for i in half):
            _check(plans, half, folder.with_name(f"{folder.name}-{number}"), faults)


def dataset_view(dataset: Path, sessions: list[tuple[str, str]], folder: Path) -> Path:
    """A scratch view of what a run changed, for the validator and pybids: the dataset-level files
    (dataset_description, participants, phenotype/, README, CHANGES, scans/sessions.json...), the
    sessions files of the subjects named, and the ``(sub-<p>, ses-<v>)`` folders named, hard-linked
    (symbolic links across filesystems). Its cost follows the run, not the dataset. A run that placed
    no session shows the first session of the dataset, so participant files have a subject to describe.
    """
    if not sessions:
        first = next((ses for sub in sorted(dataset.glob("sub-*")) if sub.is_dir()
                      for ses in sorted(sub.glob("ses-*")) if ses.is_dir()), None)
        sessions = [(first.parent.name, first.name)] if first else []
    folder.mkdir(parents=True)
    for path in dataset.iterdir():
        if path.is_file() and (not path.name.startswith(".") or path.name == ".bidsignore"):
            _link(path, folder / path.name)
    if (dataset / "phenotype").is_dir():
        _link_tree(dataset / "phenotype", folder / "phenotype")
    for subject in sorted({subject for subject, _ in sessions}):
        for path in (dataset / subject).glob("*"):
            if path.is_file():
                _link(path, folder / subject / path.name)
    for subject, session in sessions:
        _link_tree(dataset / subject / session, folder / subject / session)
    return folder


def _link_tree(source: Path, target: Path) -> None:
    for path in source.rglob("*"):
        if path.is_file():
            _link(path, target / path.relative_to(source))


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        target.symlink_to(source)


def unindexed_images(dataset: Path, visit_records: list[VisitRecord]) -> list[str]:
    """Images the provenance records place that pybids does not find when it reads the dataset back.

    A dataset MRI pipelines cannot query (pybids is what they use) is a bug, even if it validates.
    """
    from bids import BIDSLayout, BIDSLayoutIndexer  # slow to import: only when a run changed the dataset

    placed = {f"{r['participant_id']}/{r['session_id']}/{f['path']}" for r in visit_records for f in r["files"]}
    if not placed:
        return []
    # file names only: the sidecars' content is the validator's business (half pybids' indexing time)
    layout = BIDSLayout(dataset, validate=False, indexer=BIDSLayoutIndexer(index_metadata=False))
    found = {Path(f).relative_to(dataset).as_posix()
             for f in layout.get(extension=".nii.gz", return_type="filename")}
    return sorted(placed - found)


def validator_command() -> str | None:
    beside = Path(sys.executable).parent / "bids-validator-deno"
    return str(beside) if beside.exists() else shutil.which("bids-validator-deno")


def run_validator(dataset: Path, timeout: float = 900) -> ValidatorResult | None:
    """Validate ``dataset``; ``None`` when the validator is not installed.

    bids-validator-deno exits 16 when it finds errors and 0 otherwise.
    """
    command = validator_command()
    if command is None:
        return None
    done = subprocess.run(
        [command, "--format", "json", str(dataset)], capture_output=True, text=True, timeout=timeout, check=False
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        return ValidatorResult(exit_code=done.returncode, version="?", issues=(
            ValidatorIssue("error", VALIDATOR_FAILED, str(dataset), failure_line(done.stderr or done.stdout)),))
    issues = tuple(
        ValidatorIssue(
            severity=item.get("severity", "error"),
            code=item.get("code", "?") + (f"/{item['subCode']}" if item.get("subCode") else ""),
            location=item.get("location", ""),
            message=(item.get("issueMessage") or "").strip().splitlines()[0] if item.get("issueMessage") else "",
        )
        for item in report.get("issues", {}).get("issues", [])
    )
    return ValidatorResult(exit_code=done.returncode, issues=issues,
                           version=str(report.get("summary", {}).get("schemaVersion", "?")), output=done.stdout)


def failure_line(output: str) -> str:
    """The one line that says why the validator printed no report: its runtime's ``error:`` line (Deno
    prints an uncaught error so, then a stack trace), colours removed; else the last line it printed."""
    lines = [line.strip() for line in _ANSI.sub("", output).splitlines() if line.strip()]
    line = next((line.removeprefix("error:").strip() for line in lines if line.startswith("error:")),
                lines[-1] if lines else "it exited without output")
    refused = re.search(r'NotCapable: Requires all access to "(/dev/[^"]*)"', line)
    if refused:  # Deno reads nothing under /dev without --allow-all, which bids-factory does not give it
        return (f"Deno, which runs the validator, reads no path under /dev ({refused.group(1)}): keep the "
                "dataset on another filesystem path")
    return line


def validated(dataset: Path, what: str, hint: str = "") -> ValidatorResult:
    """:func:`run_validator` where a result is needed to go on (the gate before placing, ``check``): a
    validator that is missing or cannot check ``what`` stops the run in one line, ending with ``hint``."""
    result = run_validator(dataset)
    if result is None:
        raise ToolMissingError(f"bids-validator-deno is not installed, so {what} cannot be checked: "
                               f"pip install bids-validator-deno{hint}")
    if result.failure:
        raise ValidatorFailedError(f"bids-validator-deno could not check {what}: {result.failure}{hint}")
    return result


def issue_summary(result: ValidatorResult, examples: int = 3) -> list[dict]:
    """One entry per (severity, code): how many issues, the first message, a few locations."""
    groups: dict[tuple[str, str], dict] = {}
    for issue in result.issues:
        group = groups.setdefault((issue.severity, issue.code), {
            "severity": issue.severity, "code": issue.code, "count": 0, "message": issue.message, "locations": []})
        group["count"] += 1
        if issue.location and len(group["locations"]) < examples:
            group["locations"].append(issue.location)
    return sorted(groups.values(), key=lambda g: (g["severity"] != "error", -g["count"], g["code"]))
