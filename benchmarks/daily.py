"""Benchmark: a daily run (4 new visits) into an empty dataset vs into large ones built by hard links.

    python benchmarks/daily.py [--sessions 256 1000] [--new 4] [--jobs 2] [--keep DIR]

A seed visit (the shared Siemens XA30 visit, series 5-10: T1w, bold, field maps, dwi) is converted once.
Each large dataset is then built without converting anything: N sessions ``sub-P<i>/ses-VISIT<i>`` are
hard links of the seed session's images (sidecars and scans.tsv rewritten with the new labels), with a
visit record, a visit state and a thumbnail each, and the export holds the N visits (hard links of the
seed visit) whose states match, so bids-factory believes it converted them; a run over that export (the
previous day's run, not timed) builds the visit index and keeps the day folders' listings. Then the same 4 new visits
(a new export day) are converted into an empty dataset and into each large one; wall time, CPU time and
peak RSS (``/usr/bin/time``: bids-factory, its workers, the validator) are printed. The CPU may be shared:
numbers are noisy. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hardlinks import link_file, link_tree

REPO = Path(__file__).resolve().parents[1]
XA30 = REPO.parent / "shared" / "dicom" / "siemens_xa30_visit"
SEED_SERIES = ("5_", "6_", "7_", "8_", "9_", "10_")
STATE = Path("code") / "bids-factory"


def link_visit(folder: Path) -> None:
    for series in sorted(XA30.iterdir()):
        if series.is_dir() and series.name.startswith(SEED_SERIES):
            link_tree(series, folder / series.name)


def convert(export: Path, bids: Path, jobs: int) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (user + system, with children) and peak RSS (MiB) of one run."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", sys.executable, "-m", "bids_factory", "convert",
                           str(export), str(bids), "--jobs", str(jobs), "--quiet"], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    user, system, peak = done.stderr.strip().splitlines()[-1].split()
    summary = " | ".join(line for line in done.stdout.splitlines() if line.startswith(("visits:", "BIDS validator")))
    return elapsed, float(user) + float(system), int(peak) / 1024, summary


def build_large(seed_bids: Path, export: Path, bids: Path, sessions: int) -> None:
    """N sessions bids-factory believes it placed: files, records, states, thumbnails, subjects."""
    from bids_factory.discover.visits import discover
    from bids_factory.run.rules import Rules
    from bids_factory.run.options import ConvertOptions
    from bids_factory.write.dataset_writer import DatasetWriter

    [seed_record_path] = (seed_bids / STATE / "visits").glob("*.json")
    seed = json.loads(seed_record_path.read_text())
    old_sub, old_ses = seed["participant_id"], seed["session_id"]
    seed_session = seed_bids / old_sub / old_ses
    for index in range(sessions):
        day = f"2023{1 + index // 28 % 12:02d}{1 + index % 28:02d}"
        link_visit(export / "DICOM" / day[:4] / day / f"VISIT{index:04d}")
    for path in seed_bids.iterdir():  # dataset-level files (rewritten by the daily run's finalize anyway)
        if path.is_file():
            shutil.copy2(path, bids / path.name)
    shutil.copytree(seed_bids / STATE / "runs", bids / STATE / "runs")
    options = ConvertOptions(export=export, bids=bids)
    rules = Rules.load(options)
    settings = rules.settings_key(options)
    writer = DatasetWriter(bids)
    writer.index.db().execute("PRAGMA synchronous = OFF")  # built again by the previous day's run below
    subjects = {}
    for visit in discover(export).visits:
        index = int(visit.scan_research_id.removeprefix("VISIT"))
        sub, ses = f"sub-P{index:04d}", f"ses-{visit.scan_research_id}"

        def renamed(text: str) -> str:
            return text.replace(old_sub, sub).replace(old_ses, ses)
        for path in seed_session.rglob("*"):
            if path.is_file():
                target = bids / sub / ses / renamed(path.relative_to(seed_session).as_posix())
                if path.suffix in (".json", ".tsv"):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(renamed(path.read_text()))
                else:
                    link_file(path, target)
        for png in (seed_bids / STATE / "thumbnails" / old_sub / old_ses).rglob("*.png"):
            link_file(png, bids / STATE / "thumbnails" / sub / ses / renamed(png.name))
        record = json.loads(renamed(json.dumps(seed)))
        record["scan_research_id"] = visit.scan_research_id
        record["export_folders"] = [{"kind": f.kind, "day": f.day, "path": f.relpath} for f in visit.folders]
        (bids / STATE / "visits").mkdir(parents=True, exist_ok=True)
        (bids / STATE / "visits" / f"{sub}_{ses}.json").write_text(json.dumps(record, indent=2))
        (bids / sub / f"{sub}_sessions.tsv").write_text(
            f"session_id\tscan_research_id\texport_days\n{ses}\t{visit.scan_research_id}\t{visit.days[0]}\n")
        subjects[sub.removeprefix("sub-")] = f"{index:064x}"
        writer.states.write({"scan_research_id": visit.scan_research_id, "fingerprint": visit.fingerprint,
                             "settings": settings, "status": "placed", "subject_label": sub[4:],
                             "session_label": ses[4:]})
    participants = ["participant_id"] + [f"sub-{label}" for label in sorted(subjects)]
    (bids / "participants.tsv").write_text("\n".join(participants) + "\n")
    (bids / STATE / "subjects.json").write_text(json.dumps(subjects))
    (bids / STATE / "unlisted").mkdir()  # every sessions.tsv lists its sessions (as finalize leaves it)
    writer.index.close()
    (bids / STATE / "index.sqlite").unlink()  # records were written here by hand: the run builds it from them
    subprocess.run([sys.executable, "-m", "bids_factory", "convert", str(export), str(bids), "--quiet"],
                   check=False, capture_output=True)  # the previous day's run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[256, 1000], help="e.g. 4000 20000")
    parser.add_argument("--new", type=int, default=4, help="new visits of the daily run")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bids-factory-daily-"))
    seed_export, seed_bids = work / "seed-export", work / "seed-bids"
    link_visit(seed_export / "DICOM" / "2023" / "20230101" / "SEED")
    subprocess.run([sys.executable, "-m", "bids_factory", "convert", str(seed_export), str(seed_bids), "--quiet",
                    "--no-validate"], check=False, capture_output=True)
    rows = []
    for size in [0, *args.sessions]:
        export, bids = work / f"export-{size}", work / f"bids-{size}"
        bids.mkdir(parents=True)
        start = time.perf_counter()
        if size:
            build_large(seed_bids, export, bids, size)
        built = time.perf_counter() - start
        for index in range(args.new):
            link_visit(export / "DICOM" / "2024" / "20240105" / f"NEW{index:03d}")
        elapsed, cpu, peak, summary = convert(export, bids, args.jobs)
        again, again_cpu, again_peak, _ = convert(export, bids, args.jobs)
        rows.append((size, elapsed, cpu, peak, again, again_cpu))
        print(f"{size:5d} sessions (built in {built:5.1f} s): {args.new} new visits {elapsed:6.2f} s ({cpu:.1f} s CPU), "
              f"peak RSS {peak:5.0f} MiB; no-op re-run {again:5.2f} s ({again_cpu:.1f} s CPU), {again_peak:4.0f} MiB "
              f"[{summary}]", flush=True)
        if size and not args.keep:
            shutil.rmtree(export, ignore_errors=True)
            shutil.rmtree(bids, ignore_errors=True)
    base, base_cpu = rows[0][1], rows[0][2]
    print(f"\n{args.new} new visits, --jobs {args.jobs}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'sessions':>8} {'wall s':>8} {'x empty':>8} {'CPU s':>8} {'CPU x empty':>12} {'peak RSS MiB':>13} "
          f"{'no-op s':>8} {'no-op CPU s':>12}")
    for size, elapsed, cpu, peak, again, again_cpu in rows:
        print(f"{size:8d} {elapsed:8.2f} {elapsed / base:8.2f} {cpu:8.2f} {cpu / base_cpu:12.2f} {peak:13.0f} "
              f"{again:8.2f} {again_cpu:12.2f}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
