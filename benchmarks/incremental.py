"""Benchmark: first run vs no-op re-run on the shared XA30 visit replicated to N visits.

    python benchmarks/incremental.py [--visits 20] [--jobs 2] [--keep DIR]

Builds DICOM/<yyyy>/<yyyymmdd>/<visit>/ with hard links (copies across filesystems) to
../shared/dicom/siemens_xa30_visit, runs ``bids-factory convert`` twice and reports wall time
and peak memory (RSS of the children). Run on demand; never part of the test suite.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hardlinks import link_tree

SHARED = Path(__file__).resolve().parents[2] / "shared" / "dicom" / "siemens_xa30_visit"


def build_export(root: Path, visits: int) -> None:
    for index in range(visits):
        day = f"202401{1 + index % 20:02d}"
        visit_dir = root / "DICOM" / day[:4] / day / f"VISIT{index:03d}"
        link_tree(SHARED, visit_dir)


def timed_run(export: Path, bids: Path, jobs: int) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bids_factory", "convert", str(export), str(bids),
                           "--jobs", str(jobs), "--quiet"], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, peak_kib, done.stdout.strip().splitlines()[0] if done.stdout else done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bids-factory-bench-"))
    export, bids = work / "export", work / "bids"
    build_export(export, args.visits)
    first, peak, summary = timed_run(export, bids, args.jobs)
    print(f"first run : {first:7.2f} s  ({args.visits} visits, --jobs {args.jobs})  {summary}")
    again, _, summary = timed_run(export, bids, args.jobs)
    print(f"no-op run : {again:7.2f} s  = {100 * again / first:.1f} % of the first run  {summary}")
    print(f"peak RSS of one bids-factory process (children): {peak / 1024:.0f} MiB")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
