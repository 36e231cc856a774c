"""Benchmark: a first import by bids-factory vs bare dcm2niix and dcm2bids, on the same visits, in one run.

    python benchmarks/first_import.py [--visits 8] [--keep DIR]

Builds a Data Capture export of N visits by hard links to ../shared/dicom (the Siemens XA30 visit and
the GE 3D T1w alternately), then converts it with
  - bare dcm2niix (``-z y -b y -ba y``), one call per visit, serially: the converter's own speed;
  - dcm2bids (the installed CLI, dcm2niix + its matching engine) with bids-factory's default heuristic
    as its configuration, one call per visit, serially;
  - ``bids-factory convert --jobs 1`` and ``--jobs 2`` (each into a new dataset, validator on);
  - a no-op re-run of the ``--jobs 2`` dataset,
and prints wall and CPU times, ratios to the goals of issue #16 and the peak RSS (``/usr/bin/time``) of each.
The machine's CPU may be shared: numbers are noisy, run it twice. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hardlinks import link_tree

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "dicom"
SOURCES = (SHARED / "siemens_xa30_visit", SHARED / "ge_t1w_deidentified")
BIN = Path(sys.executable).parent




def build_export(root: Path, visits: int) -> list[Path]:
    folders = []
    for index in range(visits):
        day = f"202401{1 + index % 20:02d}"
        folder = root / "DICOM" / day[:4] / day / f"VISIT{index:03d}"
        link_tree(SOURCES[index % len(SOURCES)], folder)
        folders.append(folder)
    return folders


def timed(command: list[str], **kwargs) -> tuple[float, float, float, subprocess.CompletedProcess]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of the command and its children."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", *command], capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - start
    user, system, peak_kib = done.stderr.strip().splitlines()[-1].split()
    return elapsed, float(user) + float(system), int(peak_kib) / 1024, done


def run_serial(commands: list[list[str]], env: dict | None = None) -> tuple[float, float, float]:
    total, cpu, peak = 0.0, 0.0, 0.0
    for command in commands:
        elapsed, seconds, rss, done = timed(command, env=env)
        if done.returncode != 0:
            print(f"  warning: {' '.join(command[:2])}... exited {done.returncode}: {done.stderr[-300:]}")
        total, cpu, peak = total + elapsed, cpu + seconds, max(peak, rss)
    return total, cpu, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bids-factory-first-import-"))
    export = work / "export"
    folders = build_export(export, args.visits)
    import dcm2niix

    results: dict[str, tuple[float, float, float]] = {}
    out = work / "dcm2niix"
    commands = []
    for folder in folders:
        (out / folder.name).mkdir(parents=True)
        commands.append([dcm2niix.bin, "-z", "y", "-b", "y", "-ba", "y", "-o", str(out / folder.name), str(folder)])
    results["dcm2niix (serial)"] = run_serial(commands)

    config = REPO / "heuristics" / "default.json"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}  # dcm2bids calls dcm2niix by name
    results["dcm2bids (serial)"] = run_serial([
        [str(BIN / "dcm2bids"), "-d", str(folder), "-p", f"P{index:03d}", "-s", folder.name, "-c", str(config),
         "-o", str(work / "dcm2bids"), "-l", "ERROR"]
        for index, folder in enumerate(folders)], env)

    for jobs in (1, 2):
        elapsed, cpu, rss, done = timed([sys.executable, "-m", "bids_factory", "convert", str(export),
                                         str(work / f"bids-jobs{jobs}"), "--jobs", str(jobs), "--quiet"])
        print(f"  bids-factory --jobs {jobs}: {done.stdout.strip().splitlines()[:1]}")
        results[f"bids-factory --jobs {jobs}"] = (elapsed, cpu, rss)
    results["bids-factory no-op re-run"] = timed([sys.executable, "-m", "bids_factory", "convert", str(export),
                                                  str(work / "bids-jobs2"), "--jobs", "2", "--quiet"])[:3]

    bare, dcm2bids = results["dcm2niix (serial)"][0], results["dcm2bids (serial)"][0]
    print(f"\n{args.visits} visits ({', '.join(s.name for s in SOURCES)} alternately), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    bare_cpu = results["dcm2niix (serial)"][1]
    print(f"{'tool':28} {'wall s':>8} {'x dcm2niix':>11} {'x dcm2bids':>11} {'CPU s':>8} {'CPU x dcm2niix':>15} "
          f"{'peak RSS MiB':>13}")
    for name, (elapsed, cpu, rss) in results.items():
        print(f"{name:28} {elapsed:8.2f} {elapsed / bare:11.2f} {elapsed / dcm2bids:11.2f} {cpu:8.2f} "
              f"{cpu / bare_cpu:15.2f} {rss:13.0f}")
    one, two = results["bids-factory --jobs 1"][0], results["bids-factory --jobs 2"][0]
    noop = results["bids-factory no-op re-run"][0]
    print(f"goals: --jobs 1 <= 1.15x dcm2niix: {one / bare:.2f}; --jobs 2 <= 0.65x dcm2niix: {two / bare:.2f}, "
          f"<= 0.67x dcm2bids: {two / dcm2bids:.2f}; no-op <= 5 % of the first: {100 * noop / two:.1f} %")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
