"""Benchmark: the raw DICOM walk of the header pass and of the identifier pass, files per second.

    python benchmarks/dicom_walk.py [--repeat 3] [--pydicom]

Every DICOM file of ../shared/dicom (all vendors, classic and enhanced, nine transfer syntaxes), read from the
page cache (one untimed pass first): ``read_head`` with the header pass's tags, ``read_identifiers``, and with
``--pydicom`` what each leaves to pydicom would cost on every file (``dcmread(stop_before_pixels=True)``).
Prints the best of ``--repeat`` runs (CPU time of this process). Never part of the test suite.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pydicom

from bids_factory.dicom.head import read_head
from bids_factory.dicom.identifiers import read_identifiers
from bids_factory.extract.dicom_headers import _HEADER_TAG_NUMBERS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "dicom"


def _files() -> list[Path]:
    return [p for p in sorted(SHARED.rglob("*"))
            if p.is_file() and p.name not in ("LICENSE", "README.md") and p.suffix != ".txt"]


def _best(run, files: list[Path], repeat: int) -> tuple[float, int]:
    """(best CPU seconds of ``repeat`` passes over ``files``, files the walk answered for)."""
    best, answered = float("inf"), 0
    for _ in range(repeat):
        start = time.process_time()
        answered = sum(run(path) is not None for path in files)
        best = min(best, time.process_time() - start)
    return best, answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pydicom", action="store_true", help="also time pydicom on every file")
    args = parser.parse_args()
    files = _files()
    for path in files:
        path.read_bytes()
    passes = {"header pass (read_head)": lambda path: read_head(path, _HEADER_TAG_NUMBERS),
              "identifier pass (read_identifiers)": read_identifiers}
    if args.pydicom:
        def whole(path):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return pydicom.dcmread(path, stop_before_pixels=True)
        passes["pydicom dcmread(stop_before_pixels)"] = whole
    print(f"{len(files)} files of {SHARED}")
    for name, run in passes.items():
        seconds, answered = _best(run, files, args.repeat)
        print(f"{name:40s} {len(files) / seconds:8.0f} files/s  {1000 * seconds / len(files):6.3f} ms/file  "
              f"answered {answered}/{len(files)}")


if __name__ == "__main__":
    main()
