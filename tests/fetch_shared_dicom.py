"""Fetch the real scanner data the tests use into ``../shared/dicom`` (beside the checkout).

    python tests/fetch_shared_dicom.py            # every set missing there; git and the network needed

Every set comes from a public repository of dcm2niix's test data (``github.com/neurolabusc/dcm_qa*``,
2-clause BSD; the LICENSE file is kept with each set). Only the folders the tests read are checked out
(a shallow, sparse clone), copied into ``<set>/`` with the layout ``tests/conftest.py`` expects, then
moved into place in one rename: a set is there whole or not at all. A set already there is left alone.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BASE_URL = "https://github.com/neurolabusc"
TARGET = Path(__file__).resolve().parents[2] / "shared" / "dicom"

# set -> (repository, [(path or glob in the repository, folder of the set it goes into)]).
# A glob ending in "/" takes folders only. Each match keeps its name. LICENSE goes with every set.
SETS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "siemens_xa30_visit": ("dcm_qa_xa30", [("In/*/", ".")]),
    "ge_t1w_deidentified": ("dcm_qa_deident", [("In/*.dcm", ".")]),
    "siemens_transfer_syntaxes": ("dcm_qa_ts", [("In/*.dcm", ".")]),
    "ge_session": ("dcm_qa_ge", [
        ("README.md", "."),
        ("In/05_3D_Ax_T1_MP_RAGE_R22", "In"),
        ("In/01_Ax_DWI_TENSOR_R2", "In"),
        ("In/SliceTiming/14_Ax_fMRI_HB3_48sl_int_asc", "In/SliceTiming"),
    ]),
    "philips_asl": ("dcm_qa_philips_asl", [
        ("README.md", "."),
        *[(f"In/Classic/{name}", "In/Classic") for name in (
            "201_pCASL", "202_SOURCE_-_pCASL", "401_3D_pCASL_6mm", "402_SOURCE_-_3D_pCASL_6mm")],
    ]),
    "toshiba_dwi": ("dcm_qa_toshiba", [("README.md", "."), ("In/Galan/8006_DTI_AX_30d", "In/Galan")]),
    "philips_dwi_classic": ("dcm_qa_philips", [("In/Vanderbilt_2018/601_WIP_dti_ax", ".")]),
    "nih_ge_siemens_epi": ("dcm_qa_nih", [
        *[(f"In/20180918GE/mr_000{n}", "20180918GE") for n in (4, 5, 6, 7)],
        *[(f"In/20180918Si/mr_000{n}", "20180918Si") for n in (3, 4, 5, 6)],
    ]),
    "siemens_fieldmaps": ("dcm_qa_fmap", [
        (f"In/Siemens/{name}", ".") for name in (
            "2_gre_field_magph", "3_gre_field_magph", "4_gre_field_ph", "5_gre_field_mag")]),
}


def _git(*args: str) -> None:
    subprocess.run(["git", *args], check=True)


def _checkout(url: str, patterns: list[str], into: Path) -> None:
    """A shallow clone holding only ``patterns`` (gitignore syntax, from the repository's root)."""
    _git("clone", "--quiet", "--depth", "1", "--filter=blob:none", "--no-checkout", url, str(into))
    _git("-C", str(into), "sparse-checkout", "set", "--no-cone", *patterns)
    _git("-C", str(into), "checkout", "--quiet")


def fetch_set(name: str, target: Path, base_url: str = BASE_URL) -> Path:
    repository, entries = SETS[name]
    sources = [("LICENSE", "."), *entries]
    with tempfile.TemporaryDirectory(dir=target) as scratch:
        clone = Path(scratch) / repository
        _checkout(f"{base_url}/{repository}", [f"/{source}" for source, _ in sources], clone)
        staged = Path(scratch) / name
        for source, folder in sources:
            matches = sorted(clone.glob(source.rstrip("/")))
            matches = [m for m in matches if m.is_dir()] if source.endswith("/") else matches
            if not matches:
                raise SystemExit(f"{repository} holds no {source}: not fetched ({name})")
            for match in matches:
                destination = staged / folder / match.name
                destination.parent.mkdir(parents=True, exist_ok=True)
                if match.is_dir():
                    shutil.copytree(match, destination)
                else:
                    shutil.copy2(match, destination)
        staged.rename(target / name)
    return target / name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--into", type=Path, default=TARGET, help="the shared dicom folder (default: %(default)s)")
    parser.add_argument("--base-url", default=BASE_URL, help="where the dcm_qa* repositories are")
    parser.add_argument("--required", action="store_true", help="exit 1 when a set cannot be fetched (default: "
                        "say so and go on: the tests of a missing set are skipped, the command named)")
    parser.add_argument("sets", nargs="*", metavar="SET", help=f"only these sets (default: every missing one): {', '.join(SETS)}")
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.sets) - set(SETS)):
        parser.error(f"no such set: {', '.join(unknown)}")
    args.into.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    for name in args.sets or list(SETS):
        if (args.into / name).exists():
            print(f"{name}: already there")
            continue
        print(f"{name}: from {args.base_url}/{SETS[name][0]}")
        try:
            fetch_set(name, args.into, args.base_url)
        except (subprocess.CalledProcessError, OSError) as exc:  # no network, no git: the tests say what is missing
            print(f"{name}: not fetched ({exc}); its tests are skipped: run this again where github.com is reachable",
                  file=sys.stderr)
            failed.append(name)
    if failed and args.required:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
