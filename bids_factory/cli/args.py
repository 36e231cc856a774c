"""The command line's grammar: commands, options, help texts and examples (argparse), for :mod:`bids_factory.cli.main`."""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

from bids_factory import __version__


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for a mistyped option or command (difflib over the known names)."""

    def error(self, message: str):
        hint = _suggestion(self, message)
        super().error(message + (f" (did you mean {hint}?)" if hint else ""))


def _known_names(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string and command name of ``parser`` and of its subcommands."""
    names = []
    for action in parser._actions:
        names += [o for o in action.option_strings if o.startswith("--")]
        if isinstance(action, argparse._SubParsersAction):
            names += list(action.choices)
            for sub in action.choices.values():
                names += _known_names(sub)
    return sorted(set(names))


def _suggestion(parser: argparse.ArgumentParser, message: str) -> str | None:
    if message.startswith("unrecognized arguments: "):
        words = message.removeprefix("unrecognized arguments: ").split()
    elif "invalid choice: " in message:
        words = [message.split("invalid choice: ", 1)[1].split(" ", 1)[0].strip("'\"")]
    else:
        return None
    for word in words:
        typed = word.split("=", 1)[0]
        close = difflib.get_close_matches(typed, _known_names(parser), n=1, cutoff=0.6)
        if close:
            return close[0]
    return None


class _CommandsFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps every command name on the line of its help (argparse measures subcommands 2 columns short)."""

    def add_argument(self, action):
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            self._action_max_length = max(self._action_max_length,
                                          max(len(name) for name in action.choices) + self._current_indent + 4)


EXAMPLES_CONVERT = """\
examples:
  bids-factory inventory /data/export                      # what a convert would do, nothing written
  bids-factory convert /data/export /data/bids             # convert what is new since the last run
  bids-factory convert /data/export /data/bids --heuristic site.json --jobs 4 \\
      --authors "A. Curator" "B. Engineer" --license CC-BY-4.0
  bids-factory convert /data/export /data/bids --visit VISIT0001   # one visit (e.g. a SLURM array task)

The report of the dataset is code/bids-factory/report.html inside BIDS_DIR.
"""
EXAMPLES_INVENTORY = """\
examples:
  bids-factory inventory /data/export                      # every series, and where it would go
  bids-factory inventory /data/export --visit VISIT0001 --json > inventory.json
  bids-factory inventory /data/export --write-heuristic site.json   # rules for what a curator must decide
  # replace every EDITME of site.json (what a series is, the fields its scanner does not report), then:
  bids-factory inventory /data/export --heuristic site.json
"""


def command_line() -> argparse.ArgumentParser:
    """The commands, their options and help texts."""
    parser = Parser(
        prog="bids-factory",
        description="Turn a hospital's dated Data Capture exports (DICOM/<yyyy>/<yyyymmdd>/<visit>/) "
                    "into one BIDS dataset.",
        epilog="the workflow: inventory -> write the heuristic -> convert -> open the report\n\n"
               + EXAMPLES_CONVERT.split("\n\n")[0],
        formatter_class=_CommandsFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bids-factory {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    convert = commands.add_parser("convert", help="convert an export into a BIDS dataset (incrementally)",
                                  description="Convert every visit of EXPORT_DIR into the BIDS dataset BIDS_DIR.",
                                  epilog=EXAMPLES_CONVERT, formatter_class=argparse.RawDescriptionHelpFormatter)
    convert.add_argument("export", type=Path, metavar="EXPORT_DIR", help="the Data Capture export (read only)")
    convert.add_argument("bids", type=Path, metavar="BIDS_DIR", help="the BIDS dataset to create or update")
    convert.add_argument("--heuristic", type=Path, metavar="FILE",
                         help="Dcm2Bids v3 configuration file (default: the shipped heuristics/default.json)")
    convert.add_argument("--schemas", type=Path, metavar="DIR",
                         help="folder of sidecar schemas <suffix>.schema.json (default: the shipped schemas/sidecar)")
    convert.add_argument("--ehr-mapping", type=Path, metavar="FILE",
                         help="EHR mapping (JSON or YAML, checked against the shipped schemas/ehr-mapping.schema.json); "
                              "without it EHR columns are detected")
    convert.add_argument("--nifti-patient-field", default="PatientID", metavar="NAME",
                         help="NIfTI exports: the JSON field that holds the patient id (default: PatientID)")
    convert.add_argument("--jobs", type=_positive, default=1, metavar="N", help="visits converted in parallel: at most the visits to convert and the CPUs this "
                              "process may use (its affinity, else os.cpu_count())")
    convert.add_argument("--participant-label", nargs="+", default=[], metavar="LABEL",
                         help="only convert visits of these subjects (labels with or without 'sub-')")
    convert.add_argument("--reconvert", action="store_true",
                         help="convert every visit again, even those unchanged since the last run")
    convert.add_argument("--rescan", action="store_true",
                         help="walk every file of the export, also in day folders unchanged since the last run "
                              "(a file rewritten in place in an old day's visit folder)")
    convert.add_argument("--visit", nargs="+", default=[], metavar="ID",
                         help="only convert these visits (scan_research_id), e.g. one per SLURM array task")
    convert.add_argument("--apply-changes", nargs="+", default=[], metavar="VISIT",
                         help="apply what the new conversion changes in these visits' placed images (a run reports "
                              "such changes and keeps the placed images until a person decides): the images that "
                              "leave are kept under code/bids-factory/replaced/ and CHANGES says why")
    convert.add_argument("--wait", type=_seconds, default=0, metavar="SECONDS",
                         help="wait this long for another run's write lock instead of stopping (default 0)")
    convert.add_argument("--dataset-name", help="Name in dataset_description.json (first run)")
    convert.add_argument("--authors", nargs="+", metavar="NAME",
                         help="Authors in dataset_description.json (replaces the list there; kept when not given)")
    convert.add_argument("--license", metavar="ID",
                         help="License in dataset_description.json, e.g. CC0 or CC-BY-4.0 (kept when not given)")
    convert.add_argument("--keep-site-fields", action="store_true",
                         help="keep InstitutionName/StationName/DeviceSerialNumber... and the scanner's free text "
                              "(ImageComments, StudyDescription) in sidecars (removed by default)")
    convert.add_argument("--dates", choices=("keep", "year", "drop"), default="keep",
                         help="calendar dates in the dataset (export days, run dates, EHR dates): keep them, "
                              "keep only the year, or drop them (default: keep)")
    convert.add_argument("--no-validate", dest="validate", action="store_false",
                         help="do not run bids-validator-deno at the end")
    _common(convert)

    inventory = commands.add_parser(
        "inventory", help="show what a convert would do with every series, writing nothing",
        description="List every series of every visit of EXPORT_DIR (SeriesNumber, description, ImageType, "
                    "dimensions) and what a convert would do with it: its BIDS path, or unmatched / held back "
                    "with the reason. Converts in a temporary folder it removes; writes nothing else.",
        epilog=EXAMPLES_INVENTORY, formatter_class=argparse.RawDescriptionHelpFormatter)
    inventory.add_argument("export", type=Path, metavar="EXPORT_DIR", help="the Data Capture export (read only)")
    inventory.add_argument("--heuristic", type=Path, metavar="FILE",
                           help="Dcm2Bids v3 configuration file (default: the shipped heuristics/default.json)")
    inventory.add_argument("--schemas", type=Path, metavar="DIR", help="folder of sidecar schemas (as convert)")
    inventory.add_argument("--visit", nargs="+", default=[], metavar="ID", help="only these visits")
    inventory.add_argument("--nifti-patient-field", default="PatientID", metavar="NAME",
                           help="NIfTI exports: the JSON field that holds the patient id (default: PatientID)")
    inventory.add_argument("--json", action="store_true", help="print the inventory as JSON")
    inventory.add_argument("--write-heuristic", type=Path, metavar="FILE",
                           help="write a starter heuristic: rules only for what a curator must decide (EDITME where unknown)")
    inventory.add_argument("--no-validate", dest="validate", action="store_false",
                           help="skip the per-visit validator check (faster; misses what it would hold back)")
    _common(inventory)

    visits = commands.add_parser("visits", help="list the visits (scan_research_id) of an export, one per line",
                                 description="List the visits of EXPORT_DIR, one per line (for job arrays).")
    visits.add_argument("export", type=Path, metavar="EXPORT_DIR")
    _common(visits)

    check = commands.add_parser("check", help="validate a whole dataset and read it back with pybids (a weekly job)",
                                description="Run bids-validator-deno on the whole BIDS_DIR and read it back with "
                                            "pybids (a daily convert checks only what it changed). Exit status "
                                            "16 when the validator finds errors, 1 when pybids misses a placed image.")
    check.add_argument("bids", type=Path, metavar="BIDS_DIR")
    check.add_argument("--export", type=Path, metavar="EXPORT_DIR",
                       help="also walk every file of the export and name the visits whose files changed since their "
                            "conversion where a daily run does not look (convert --rescan converts them)")
    _common(check)

    slurm = commands.add_parser(
        "slurm", help="convert on a SLURM cluster: a job array of the new or changed visits, then a finalize job",
        description="Submit the visits of EXPORT_DIR that need converting (new or changed) as a SLURM job array, "
                    "one task per visit, and a finalize job after it. Every convert option (--heuristic, "
                    "--ehr-mapping, --no-validate...), given after BIDS_DIR, is passed on to the jobs.")
    slurm.add_argument("export", type=Path, metavar="EXPORT_DIR", help="the Data Capture export (read only)")
    slurm.add_argument("bids", type=Path, metavar="BIDS_DIR", help="the BIDS dataset to create or update")
    slurm.add_argument("--array-limit", type=_positive, metavar="N", help="at most N array tasks at once")
    slurm.add_argument("--sbatch", default="", metavar="ARGS",
                       help='more sbatch options for both jobs, written into the kept scripts as #SBATCH lines, '
                            'e.g. --sbatch="--partition=short --mem=8G"')
    slurm.add_argument("--image", type=Path, metavar="SIF",
                       help="run bids-factory in this Apptainer image (the export is bound read-only)")
    slurm.add_argument("--container-command", default="apptainer", metavar="CMD",
                       help="with --image: the command that runs it, e.g. singularity (default apptainer)")
    slurm.add_argument("--container-bind", action="append", default=[], metavar="SPEC",
                       help='with --image: one more --bind for it, e.g. --container-bind \'$TMPDIR\' (a $VARIABLE '
                            "is expanded when the job runs); repeat for more")
    slurm.add_argument("--setup", action="append", default=[], metavar="LINE",
                       help="a shell line every job runs first, e.g. --setup 'module load apptainer'; repeat for more")
    slurm.add_argument("--wait", type=_seconds, default=3600, metavar="SECONDS",
                       help="how long a job waits for another job's write lock (default 3600)")
    slurm.add_argument("--visit", nargs="+", default=[], metavar="ID", help="only these visits")
    slurm.add_argument("--reconvert", action="store_true", help="convert every visit again")
    slurm.add_argument("--dry-run", action="store_true", help="print the scripts; write and submit nothing")
    _common(slurm)

    demo = commands.add_parser("demo", help="write a small synthetic export and convert it",
                               description="Write a synthetic Data Capture export into OUT_DIR/export and "
                                           "convert it into OUT_DIR/bids.")
    demo.add_argument("out", type=Path, metavar="OUT_DIR")
    demo.add_argument("--jobs", type=_positive, default=2, metavar="N")
    _common(demo)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="verbose logging and tracebacks")
    parser.add_argument("--quiet", action="store_true", help="only warnings and the summary")


def _seconds(text: str) -> float:
    """A duration: a finite number >= 0 (``--wait -5`` or ``nan`` is a wrong command line)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value
