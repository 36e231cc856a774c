"""The official BIDS validator (``bids-validator-deno``, from PyPI), run on a written dataset."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bids_factory.model import VisitPlan
from bids_factory.write import write_check_dataset


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

    @property
    def errors(self) -> tuple[ValidatorIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[ValidatorIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")


def visit_faults(plan: VisitPlan, folder: Path) -> dict[str, str]:
    """Validator errors of one planned visit, checked alone in a scratch dataset: placement relpath -> reason.

    What the validator refuses never reaches the dataset, whatever a vendor's converter wrote.
    Errors about the scratch dataset itself (not about a placed file) are ignored.
    """
    paths = write_check_dataset(plan, folder)
    result = run_validator(folder)
    faults: dict[str, list[str]] = {}
    for issue in result.errors if result else ():
        relpath = paths.get(issue.location)
        if relpath:
            faults.setdefault(relpath, []).append(f"BIDS validator: {issue.code} {issue.message}".strip())
    return {relpath: "; ".join(dict.fromkeys(reasons)) for relpath, reasons in faults.items()}


def unindexed_images(dataset: Path, visit_records: list[dict]) -> list[str]:
    """Images the provenance records place that pybids does not find when it reads the dataset back.

    A dataset MRI pipelines cannot query (pybids is what they use) is a bug, even if it validates.
    """
    from bids import BIDSLayout  # slow to import: only when a run changed the dataset

    placed = {f"{r['participant_id']}/{r['session_id']}/{f['path']}" for r in visit_records for f in r["files"]}
    if not placed:
        return []
    layout = BIDSLayout(dataset, validate=False)
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
        message = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return ValidatorResult(exit_code=done.returncode, version="?",
                               issues=(ValidatorIssue("error", "VALIDATOR_FAILED", str(dataset), message[0]),))
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
                           version=str(report.get("summary", {}).get("schemaVersion", "?")))
