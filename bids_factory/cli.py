"""Command line: ``bids-factory convert | inventory | visits | check | slurm | demo``. Thin: parse, call the pipeline,
print, exit.

Every expected failure is one line on stderr and a non-zero exit status; ``--debug`` shows the
traceback of unexpected ones.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import shlex
import sys
from pathlib import Path

from bids_factory import __version__
from bids_factory.errors import BidsFactoryError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INVALID = 0, 1, 2, 16  # 16: the validator's own status for errors
log = logging.getLogger("bids_factory")


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
  bids-factory inventory /data/export --write-heuristic site.json   # one rule per unmatched series
  # edit datatype/suffix of every rule of site.json (they say EDITME), then:
  bids-factory inventory /data/export --heuristic site.json
"""


def _parser() -> argparse.ArgumentParser:
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
    convert.add_argument("--jobs", type=_positive, default=1, metavar="N", help="visits converted in parallel")
    convert.add_argument("--participant-label", nargs="+", default=[], metavar="LABEL",
                         help="only convert visits of these subjects (labels with or without 'sub-')")
    convert.add_argument("--reconvert", action="store_true",
                         help="convert every visit again, even those unchanged since the last run")
    convert.add_argument("--visit", nargs="+", default=[], metavar="ID",
                         help="only convert these visits (scan_research_id), e.g. one per SLURM array task")
    convert.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                         help="wait this long for another run's write lock instead of stopping (default 0)")
    convert.add_argument("--dataset-name", help="Name in dataset_description.json (first run)")
    convert.add_argument("--authors", nargs="+", metavar="NAME",
                         help="Authors in dataset_description.json (replaces the list there; kept when not given)")
    convert.add_argument("--license", metavar="ID",
                         help="License in dataset_description.json, e.g. CC0 or CC-BY-4.0 (kept when not given)")
    convert.add_argument("--keep-site-fields", action="store_true",
                         help="keep InstitutionName/StationName/DeviceSerialNumber... in sidecars (removed by default)")
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
                           help="write a starter heuristic with one rule per distinct unmatched series")
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
                       help='more sbatch options for both jobs, e.g. --sbatch="--partition=short --mem=8G"')
    slurm.add_argument("--image", type=Path, metavar="SIF",
                       help="run bids-factory in this Apptainer image (the export is bound read-only)")
    slurm.add_argument("--wait", type=float, default=3600, metavar="SECONDS",
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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)  # unknown options: only `slurm` takes them (convert's)
    if extra and args.command != "slurm":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:  # bare ``bids-factory``: what can it do?
        parser.print_help()
        return EXIT_USAGE
    level = logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s" if args.debug else "%(message)s")
    log.setLevel(level)
    if not args.debug:
        logging.getLogger("pydicom").setLevel(logging.ERROR)
    try:
        if args.command == "demo":
            return _demo(args)
        if args.command == "visits":
            return _visits(args)
        if args.command == "check":
            return _check(args)
        if args.command == "slurm":
            return _slurm(args, extra)
        if args.command == "inventory":
            return _inventory(args)
        return _convert(args)
    except BidsFactoryError as exc:
        if args.debug:
            log.debug("traceback of the error below", exc_info=True)
        print(f"bids-factory: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # the dataset's disk or folder: full, read-only, not a folder...
        if args.debug:
            log.debug("traceback of the error below", exc_info=True)
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"bids-factory: error: {exc.strerror or exc}{where}; the dataset holds only complete visits, "
              "run again once this is fixed", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("bids-factory: interrupted; the dataset holds only complete visits", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line for the user, the traceback with --debug
        if args.debug:
            raise
        print(f"bids-factory: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return EXIT_FAILED


def _convert(args) -> int:
    from bids_factory.pipeline import convert

    return _finish(convert(_convert_options(args)), args.bids, args.export)


def _convert_options(args):
    from bids_factory.dates import DatePolicy
    from bids_factory.pipeline import ConvertOptions

    labels = frozenset(label.removeprefix("sub-") for label in args.participant_label)
    options = ConvertOptions(export=args.export, bids=args.bids, heuristic=args.heuristic, jobs=args.jobs,
                             participant_labels=labels, validate=args.validate,
                             dataset_name=args.dataset_name, keep_site_fields=args.keep_site_fields,
                             reconvert=args.reconvert, schemas=args.schemas,
                             ehr_mapping=args.ehr_mapping, nifti_patient_field=args.nifti_patient_field,
                             visits=frozenset(args.visit), wait=args.wait, dates=DatePolicy(args.dates),
                             authors=tuple(args.authors) if args.authors else None, license=args.license)
    return options


def _inventory(args) -> int:
    from bids_factory.inventory import inventory_lines, starter_heuristic, take_inventory

    inventory = take_inventory(args.export, args.heuristic, args.schemas, frozenset(args.visit), args.validate,
                               args.nifti_patient_field)
    if args.json:
        print(json.dumps(inventory.record(), indent=2, ensure_ascii=False))
    else:
        for line in inventory_lines(inventory):
            print(line)
    if args.write_heuristic:
        if args.write_heuristic.exists():
            raise BidsFactoryError(f"{args.write_heuristic} exists already: not overwritten (choose a new file)")
        starter = starter_heuristic(inventory)
        if not starter["descriptions"]:
            raise BidsFactoryError("every series is matched by a rule: no starter heuristic to write")
        args.write_heuristic.write_text(json.dumps(starter, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"starter heuristic with {len(starter['descriptions'])} rules written to {args.write_heuristic}: "
              f"set datatype and suffix of each rule (now {starter['descriptions'][0]['suffix']}), then run "
              f"bids-factory inventory {args.export} --heuristic {args.write_heuristic}", file=sys.stderr)
    return EXIT_FAILED if any(v.error for v in inventory.visits) else EXIT_OK


def _visits(args) -> int:
    from bids_factory.discover import discover

    for visit in discover(args.export).visits:
        print(visit.scan_research_id)
    return EXIT_OK


def _check(args) -> int:
    from bids_factory.pipeline import check

    result, unindexed = check(args.bids)
    for issue in result.errors:
        print(f"error: {issue.location or args.bids}: {issue.code} {issue.message}".rstrip())
    for missing in unindexed:
        print(f"error: {missing}: pybids does not find this placed image when it reads the dataset")
    summary = (f"{args.bids}: BIDS validator {len(result.errors)} errors, {len(result.warnings)} warnings; "
               f"pybids misses {len(unindexed)} placed images")
    if result.errors or unindexed:
        print(f"bids-factory: check failed: {summary}", file=sys.stderr)
        return EXIT_INVALID if result.errors else EXIT_FAILED
    print(f"check passed: {summary}")
    return EXIT_OK


def _slurm(args, extra: list[str]) -> int:
    from bids_factory import slurm
    from bids_factory.pipeline import pending_visits
    from bids_factory.write import DatasetWriter

    convert_args = _parser().parse_args(["convert", str(args.export), str(args.bids), *extra,
                                         *(["--visit", *args.visit] if args.visit else []),
                                         *(["--reconvert"] if args.reconvert else [])])
    options = _convert_options(convert_args)
    todo, problems = pending_visits(options)
    for problem in problems:
        log.warning("%s: %s", problem.path, problem.reason)
    if not todo:
        print(f"nothing to convert: every visit of {args.export} is in {args.bids} and unchanged; nothing submitted")
        return EXIT_OK
    request = slurm.SlurmRequest(
        export=args.export, bids=args.bids, visits=tuple(v.scan_research_id for v in todo),
        convert_args=tuple(extra), visit_filter=tuple(args.visit), reconvert=args.reconvert, wait=args.wait,
        array_limit=args.array_limit, sbatch_args=tuple(shlex.split(args.sbatch)), image=args.image,
        binds=tuple(p for p in (options.heuristic, options.schemas, options.ehr_mapping) if p), workdir=Path.cwd())
    scripts = slurm.slurm_scripts(request, slurm.slurm_folder(args.bids))
    if args.dry_run:
        print(f"# dry run: {len(todo)} visit(s) to convert; nothing written, nothing submitted")
        for name, text in ((slurm.ARRAY_SCRIPT, scripts.array), (slurm.FINALIZE_SCRIPT, scripts.finalize)):
            print(f"# ---- {scripts.folder / name}\n{text}")
        return EXIT_OK
    submission = slurm.submit(scripts, DatasetWriter(args.bids), request.sbatch_args)
    print(f"submitted {len(todo)} visit(s) as job array {submission.array_job} and the finalize job "
          f"{submission.finalize_job} (after every array task)")
    for line in slurm.follow_lines(submission):
        print(line)
    return EXIT_OK


def _demo(args) -> int:
    from bids_factory.demo_export import build_demo_export
    from bids_factory.pipeline import ConvertOptions, convert
    from bids_factory.resources import shipped_dir

    try:
        export = build_demo_export(args.out / "export")
    except FileExistsError as exc:
        raise BidsFactoryError(f"{exc} (choose a new OUT_DIR)") from exc
    log.info("demo export written to %s (%d patients, %d visits, %d export days)",
             export.root, len(export.patients), len(export.visits), len(export.days))
    options = ConvertOptions(export=export.root, bids=args.out / "bids", jobs=args.jobs,
                             dataset_name="bids-factory demo dataset",
                             ehr_mapping=shipped_dir("heuristics") / "demo-ehr-mapping.json")
    return _finish(convert(options), args.out / "bids", export.root)


def _finish(report, bids: Path, export: Path | None = None) -> int:
    from bids_factory.summary import summary_lines

    for line in summary_lines(report):
        print(line)
    print(f"BIDS dataset: {bids.resolve()}")
    if report.report_page:
        print(f"report: {report.report_page}")
    print(f"next: {_next_step(report, export)}")
    return EXIT_FAILED if report.failed else EXIT_OK


def _next_step(report, export: Path | None) -> str:
    """What the user does now, from this run's counts (the same ones the summary printed)."""
    from bids_factory.summary import run_counts

    counts = run_counts(report.record) if report.record else {}
    source = export or "EXPORT_DIR"
    if report.failed:
        return "fix what the FAILED lines say, then run the same command again (only what changed is converted)"
    if counts.get("series unmatched") or report.dataset.get("series unmatched"):
        return (f"write rules for the unmatched series: bids-factory inventory {source} --write-heuristic site.json, "
                "edit it, then convert with --heuristic site.json")
    if counts.get("series held back") or report.dataset.get("series held back"):
        return ("open the report to see why series are held back (a missing field: add it with your heuristic's "
                "sidecar_changes), or accept it")
    return "open the report; run the same command after each export day (only new visits are converted)"
