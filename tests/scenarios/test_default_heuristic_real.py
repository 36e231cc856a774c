"""The shipped default heuristic on every real DICOM set of ../shared/dicom (five vendors' conventions).

All sets are converted ONCE per test session into one dataset (one visit each; the GE session is two
patients, so two visits); every test reads that result. For each series: the exact placement, or the
exact reason it is not placed.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from bids_factory.config.heuristic import load_heuristic
from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import SHARED_DICOM, XA30, add_series, assert_valid_bids

GE = SHARED_DICOM / "ge_session" / "In"
VISITS = {  # visit folder -> DICOM folders of the shared sets
    "XA30": sorted(p for p in XA30.iterdir() if p.is_dir()),
    "GE1": [GE / "05_3D_Ax_T1_MP_RAGE_R22", GE / "01_Ax_DWI_TENSOR_R2"],
    "GE2": [GE / "SliceTiming" / "14_Ax_fMRI_HB3_48sl_int_asc"],
    "GET1W": [SHARED_DICOM / "ge_t1w_deidentified"],
    "PHILIPSASL": sorted((SHARED_DICOM / "philips_asl" / "In" / "Classic").iterdir()),
    "TOSHIBA": [SHARED_DICOM / "toshiba_dwi" / "In" / "Galan" / "8006_DTI_AX_30d"],
    "TS": sorted((SHARED_DICOM / "siemens_transfer_syntaxes").glob("*.dcm")),
}
DERIVED = "scanner-derived image (ImageType DERIVED/"
PERFUSION_MAP = "scanner-derived image (ImageType ORIGINAL/PRIMARY/PERFUSION/FFE/PERFUSION/FFE, the scanner's perfusion map"
ASL_SIEMENS = ("asl: BIDS requires RepetitionTimePreparation, BackgroundSuppression, M0Type, TotalAcquiredPairs, "
               "which the series' sidecar does not give; a site adds what its scanner does not report with "
               "sidecar_changes in its own heuristic")
_ASL_PHILIPS = ("asl: BIDS requires RepetitionTimePreparation, ArterialSpinLabelingType, PostLabelingDelay, "
                "BackgroundSuppression, M0Type, TotalAcquiredPairs")
ASL_PHILIPS_3D = _ASL_PHILIPS + ", which the series' sidecar does not give"
ASL_PHILIPS_2D = _ASL_PHILIPS + ", SliceTiming, which the series' sidecar does not give"  # the schema: 2D ASL needs SliceTiming
T1W_2MM = "T1w.schema.json: VoxelSize[0] 2.0 is greater than the maximum of 1.5"
EPI_1VOL = "not recognised (ImageType ORIGINAL/PRIMARY/M/ND/MOSAIC/MAGNITUDE, EPI of 1 volume(s) that the name does not"

# visit -> {(SeriesNumber, placed file name after sub-<p>_ses-<v>_, with its datatype folder)}
PLACED = {
    "XA30": {(7, "func/task-fa_run-1_bold.nii.gz"), (8, "fmap/magnitude1.nii.gz"), (8, "fmap/magnitude2.nii.gz"),
             (9, "fmap/phasediff.nii.gz"), (10, "dwi/dir-PA_dwi.nii.gz"), (17, "dwi/dir-AP_dwi.nii.gz")},
    "GE1": {(5, "anat/T1w.nii.gz")},
    "GE2": set(),
    "GET1W": {(10, "anat/T1w.nii.gz")},
    "PHILIPSASL": set(),
    "TOSHIBA": {(8006, "dwi/dwi.nii.gz")},  # no PhaseEncodingDirection from dcm2niix for Canon: no dir-
    "TS": set(),
}
# visit -> {SeriesNumber: (status, start of the reason)}
NOT_PLACED = {
    "XA30": {5: ("held-back", T1W_2MM), 6: ("held-back", T1W_2MM),
             **{n: ("unmatched", DERIVED) for n in (11, 12, 13, 14, 16, 19, 20, 21, 22, 24, 27, 28)},
             25: ("held-back", ASL_SIEMENS), 99: ("not-converted", "dcm2niix made no image of this DICOM series")},
    "GE1": {1: ("held-back", "dwi.schema.json: ImageDimensions[2] 2 is less than the minimum of 8")},
    "GE2": {14: ("held-back", "no task label: the series name gives no ReproIn task- and does not say rest")},
    "GET1W": {},
    "PHILIPSASL": {201: ("unmatched", PERFUSION_MAP), 401: ("unmatched", PERFUSION_MAP),
                   202: ("held-back", ASL_PHILIPS_2D), 402: ("held-back", ASL_PHILIPS_3D)},
    "TOSHIBA": {},
    "TS": {n: ("unmatched", EPI_1VOL) for n in range(1, 10)},
}


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    export = tmp_path_factory.mktemp("all-sets") / "export"
    for visit, sources in VISITS.items():
        for source in sources:
            add_series(export, "20240105", visit, source, subfolder=source.stem if source.is_file() else None)
    bids = export.parent / "bids"
    report = convert(ConvertOptions(export=export, bids=bids))
    return report, bids


def _placed(bids: Path, visit: str) -> set[tuple[int, str]]:
    found = list(bids.glob(f"sub-*/ses-{visit}/*_scans.tsv"))
    if not found:
        return set()
    [scans] = found
    prefix = scans.name.removesuffix("scans.tsv")
    with open(scans, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {(int(r["series_number"]), r["filename"].replace(prefix, "")) for r in rows}


@pytest.mark.parametrize("visit", list(VISITS))
def test_each_series_is_placed_where_a_neuroimager_expects(default_run, visit):
    _, bids = default_run
    assert _placed(bids, visit) == PLACED[visit]


@pytest.mark.parametrize("visit", list(VISITS))
def test_each_series_not_placed_has_its_exact_reason(default_run, visit):
    report, _ = default_run
    [result] = [v for v in report.visits if v.scan_research_id == visit]
    outcomes = {o.series.series_number: (o.status, o.reason) for o in result.not_placed}
    assert sorted(outcomes) == sorted(NOT_PLACED[visit])
    for number, (status, reason) in NOT_PLACED[visit].items():
        assert outcomes[number][0] == status and outcomes[number][1].startswith(reason), (number, outcomes[number])


def test_every_set_converts_to_a_valid_dataset_with_no_derived_image(default_run):
    report, bids = default_run
    assert not report.failed and report.validator_errors == 0
    assert_valid_bids(bids)
    sidecars = [p for p in bids.glob("sub-*/ses-*/*/*.json")]
    assert len(sidecars) == sum(len(v) for v in PLACED.values())
    for path in sidecars:
        sidecar = json.loads(path.read_text())
        image_type = sidecar.get("ImageType", [])
        assert "DERIVED" not in image_type and "PERFUSION" not in image_type, path.name
        assert not [k for k in sidecar if k.startswith("BidsFactory")], path.name


def test_bold_keeps_its_reproin_task_and_fieldmaps_point_to_bold_and_dwi(default_run):
    _, bids = default_run
    [session] = bids.glob("sub-*/ses-XA30")
    prefix = f"{session.parent.name}_{session.name}"
    bold = json.loads((session / "func" / f"{prefix}_task-fa_run-1_bold.json").read_text())
    assert bold["TaskName"] == "fa"
    phasediff = json.loads((session / "fmap" / f"{prefix}_phasediff.json").read_text())
    uri = f"bids::{session.parent.name}/{session.name}"
    assert sorted(phasediff["IntendedFor"]) == [f"{uri}/dwi/{prefix}_dir-AP_dwi.nii.gz",
                                                f"{uri}/dwi/{prefix}_dir-PA_dwi.nii.gz",
                                                f"{uri}/func/{prefix}_task-fa_run-1_bold.nii.gz"]


def test_site_heuristic_completes_asl_and_two_reconstructions_get_rec(tmp_path):
    """The XA30 ASL with what dcm2niix does not give added by a site heuristic (M0Type, ...; the volume
    order) is placed with its aslcontext.tsv; the two T1w reconstructions (NORM or not) get rec-, not run-."""
    export = tmp_path / "export"
    for number in ("5", "6", "25"):
        add_series(export, "20240105", "V1", next(XA30.glob(f"{number}_*")))
    site = json.loads(load_heuristic().path.read_text())
    rule = next(d for d in site["descriptions"] if d["suffix"] == "asl")
    rule["sidecar_changes"] = {"M0Type": "Included", "BackgroundSuppression": False, "TotalAcquiredPairs": 3,
                               "RepetitionTimePreparation": 4.8}
    rule["bids_factory"]["aslcontext"] = {"first": ["m0scan"], "repeat": ["label", "control"]}
    (tmp_path / "site.json").write_text(json.dumps(site))
    schemas = tmp_path / "schemas"  # a site that takes 2 mm T1w images: no T1w schema
    schemas.mkdir()
    shutil.copy(load_heuristic().path.parent.parent / "schemas" / "sidecar" / "forbidden.schema.json", schemas)
    report = convert(ConvertOptions(export=export, bids=tmp_path / "bids", heuristic=tmp_path / "site.json",
                                    schemas=schemas))
    assert not report.failed, report.visits[0].not_placed
    session = next((tmp_path / "bids").glob("sub-*/ses-V1"))
    prefix = f"{session.parent.name}_{session.name}"
    names = sorted(p.relative_to(session).as_posix() for p in session.rglob("*") if p.is_file())
    assert names == sorted([f"{prefix}_scans.tsv",
                     f"anat/{prefix}_acq-tfl_T1w.json", f"anat/{prefix}_acq-tfl_T1w.nii.gz",
                     f"anat/{prefix}_acq-tfl_rec-norm_T1w.json", f"anat/{prefix}_acq-tfl_rec-norm_T1w.nii.gz",
                     f"perf/{prefix}_dir-AP_asl.json", f"perf/{prefix}_dir-AP_asl.nii.gz",
                     f"perf/{prefix}_dir-AP_aslcontext.tsv"])
    assert (session / "perf" / f"{prefix}_dir-AP_aslcontext.tsv").read_text() == (
        "volume_type\nm0scan\n" + "label\ncontrol\n" * 3)
    assert_valid_bids(tmp_path / "bids")
