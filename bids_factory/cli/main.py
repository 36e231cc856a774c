"""Command line: ``bids-factory convert | inventory | visits | check | slurm | demo``. Thin: parse, call the pipeline,
print, exit.

Every expected failure is one line on stderr and a non-zero exit status; ``--debug`` shows the
traceback of unexpected ones.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path

from bids_factory.cli.args import command_line
from bids_factory.errors import BidsFactoryError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INVALID = 0, 1, 2, 16  # 16: the validator's own status for errors
log = logging.getLogger("bids_factory")


def main(argv: list[str] | None = None) -> int:
    parser = command_line()
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
    from bids_factory.run.pipeline import convert

    return _finish(convert(_convert_options(args)), args.bids, args.export)


def _convert_options(args):
    from bids_factory.dates import DatePolicy
    from bids_factory.run.pipeline import ConvertOptions

    labels = frozenset(label.removeprefix("sub-") for label in args.participant_label)
    options = ConvertOptions(export=args.export, bids=args.bids, heuristic=args.heuristic, jobs=args.jobs,
                             participant_labels=labels, validate=args.validate,
                             dataset_name=args.dataset_name, keep_site_fields=args.keep_site_fields,
                             reconvert=args.reconvert, rescan=args.rescan, schemas=args.schemas,
                             ehr_mapping=args.ehr_mapping, nifti_patient_field=args.nifti_patient_field,
                             visits=frozenset(args.visit), apply_changes=frozenset(args.apply_changes),
                             wait=args.wait, dates=DatePolicy(args.dates),
                             authors=tuple(args.authors) if args.authors else None, license=args.license)
    return options


def _inventory(args) -> int:
    from bids_factory.run.inventory import inventory_lines, take_inventory
    from bids_factory.config.heuristic import PLACEHOLDER
    from bids_factory.run.starter import starter_heuristic

    inventory = take_inventory(args.export, args.heuristic, args.schemas, frozenset(args.visit), args.validate,
                               args.nifti_patient_field)
    if args.json:
        print(json.dumps(inventory.record(), indent=2, ensure_ascii=False))
    else:
        for line in inventory_lines(inventory):
            print(line)
    if args.write_heuristic:
        if args.write_heuristic.exists():
            raise BidsFactoryError(
                f"{args.write_heuristic} exists already: not overwritten. Write the starter to a new file "
                f"(--write-heuristic {args.write_heuristic.with_stem(args.write_heuristic.stem + '-new').name}) and "
                f"copy its rules into {args.write_heuristic.name}; with --heuristic {args.write_heuristic.name} the "
                f"starter holds only the series that file does not place yet")
        starter = starter_heuristic(inventory)
        if not starter["descriptions"]:
            raise BidsFactoryError("nothing for a curator to decide: every series is placed by a rule or is a "
                                   "scout or scanner-derived map (never placed); no starter heuristic written")
        args.write_heuristic.write_text(json.dumps(starter, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"starter heuristic with {len(starter['descriptions'])} rule(s) written to {args.write_heuristic}: "
              f"replace every {PLACEHOLDER} (what a series is, the fields BIDS requires that its scanner does not "
              f"report), then check it with bids-factory inventory {args.export} --heuristic {args.write_heuristic}",
              file=sys.stderr)
    failed = any(v.error for v in inventory.visits) or any(p.fatal for p in inventory.problems)
    return EXIT_FAILED if failed else EXIT_OK


def _visits(args) -> int:
    from bids_factory.discover.visits import discover

    for visit in discover(args.export).visits:
        print(visit.scan_research_id)
    return EXIT_OK


def _check(args) -> int:
    from bids_factory.run.pipeline import check

    result, unindexed, differences = check(args.bids, args.export)
    for issue in result.errors:
        print(f"error: {issue.location or args.bids}: {issue.code} {issue.message}".rstrip())
    for missing in unindexed:
        print(f"error: {missing}: pybids does not find this placed image when it reads the dataset")
    for difference in differences:
        print(f"{'error' if difference.error else 'note'}: {difference.path}: {difference.reason}")
    missing = sum(1 for d in differences if d.error)
    summary = (f"{args.bids}: BIDS validator {len(result.errors)} errors, {len(result.warnings)} warnings; "
               f"pybids misses {len(unindexed)} placed images; {missing} placed files missing from their session "
               "or visit index entries differing from their file")
    if result.errors or unindexed or missing:
        print(f"bids-factory: check failed: {summary}", file=sys.stderr)
        return EXIT_INVALID if result.errors else EXIT_FAILED
    print(f"check passed: {summary}")
    return EXIT_OK


def _slurm(args, extra: list[str]) -> int:
    from bids_factory.hpc import slurm as slurm
    from bids_factory.run.pipeline import pending_visits
    from bids_factory.write.dataset_writer import DatasetWriter

    if args.image is None and (args.container_bind or args.container_command != "apptainer"):
        command_line().error("--container-command and --container-bind go with --image SIF")
    convert_args = command_line().parse_args(["convert", str(args.export), str(args.bids), *extra,
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
        binds=tuple(p for p in (options.heuristic, options.schemas, options.ehr_mapping) if p), workdir=Path.cwd(),
        container_command=args.container_command, container_binds=tuple(args.container_bind),
        setup=tuple(args.setup))
    scripts = slurm.slurm_scripts(request, slurm.slurm_folder(args.bids))
    if args.dry_run:
        print(f"# dry run: {len(todo)} visit(s) to convert; nothing written, nothing submitted")
        for name, text in ((slurm.ARRAY_SCRIPT, scripts.array), (slurm.FINALIZE_SCRIPT, scripts.finalize)):
            print(f"# ---- {scripts.folder / name}\n{text}")
        return EXIT_OK
    submission = slurm.submit(scripts, DatasetWriter(args.bids))
    print(f"submitted {len(todo)} visit(s) as job array {submission.array_job} and the finalize job "
          f"{submission.finalize_job} (after every array task)")
    for line in slurm.follow_lines(submission):
        print(line)
    return EXIT_OK


def _demo(args) -> int:
    from bids_factory.cli.demo_export import build_demo_export
    from bids_factory.run.pipeline import ConvertOptions, convert
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
    from bids_factory.report.summary import summary_lines

    for line in summary_lines(report):
        print(line)
    print(f"BIDS dataset: {bids.resolve()}")
    if report.report_page:
        print(f"report: {report.report_page}")
    print(f"next: {_next_step(report, export)}")
    return EXIT_FAILED if report.failed else EXIT_OK


def _next_step(report, export: Path | None) -> str:
    """What the user does now, from this run's counts (the same ones the summary printed)."""
    from bids_factory.report.summary import TO_DECIDE, TO_FIX_EXPORT, TO_SUPPLY, run_counts

    counts = run_counts(report.record) if report.record else {}
    source = export or "EXPORT_DIR"
    if report.failed:
        return "fix what the FAILED lines say, then run the same command again (only what changed is converted)"
    if counts.get(TO_DECIDE) or report.dataset.get(TO_DECIDE):  # scouts and derived maps are never work
        return (f"write rules for the series no rule recognises: bids-factory inventory {source} --write-heuristic "
                "site-new.json (a new file), replace its EDITME values, then convert with --heuristic site-new.json "
                "(it adds to the default; merge it into your site heuristic if you have one)")
    if counts.get(TO_SUPPLY) or report.dataset.get(TO_SUPPLY):
        return ("open the report's \"to supply\" list: each series names the field it lacks; add it with "
                "sidecar_changes in your site heuristic, then run the same command again")
    if counts.get(TO_FIX_EXPORT) or report.dataset.get(TO_FIX_EXPORT):
        return ("open the report's \"export to fix\" list: export those series again, then run the same command "
                "again")
    return "open the report; run the same command after each export day (only new visits are converted)"
