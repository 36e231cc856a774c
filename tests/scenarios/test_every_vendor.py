"""Every series of every real DICOM set of ../shared/dicom (Siemens, GE, Philips, Canon/Toshiba), with the
shipped default heuristic: ONE table of expected outcomes, checked by ONE test.

All sets are converted ONCE per test session into one dataset (one visit each; the GE session is two
patients, so two visits; the NIH set one visit per scanner); every test reads that result. A rule that
moves any vendor's series shows as a diff of ``EXPECTED``. The last column says what changed against
the outcomes before issue 26 (as bids-factory 0.1.0 gave them on 2026-12-03) and why; empty: unchanged.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from bids_factory.config.heuristic import load_heuristic
from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import SHARED_DICOM, XA30, add_series, assert_valid_bids, real_folders

pytestmark = pytest.mark.realdata

GE = SHARED_DICOM / "ge_session" / "In"
NIH = SHARED_DICOM / "nih_ge_siemens_epi"
VISITS = {  # visit folder -> DICOM folders of the shared sets
    "XA30": real_folders(XA30, "*/"),
    "GE1": [GE / "05_3D_Ax_T1_MP_RAGE_R22", GE / "01_Ax_DWI_TENSOR_R2"],
    "GE2": [GE / "SliceTiming" / "14_Ax_fMRI_HB3_48sl_int_asc"],
    "GET1W": [SHARED_DICOM / "ge_t1w_deidentified"],
    "PHILIPSASL": real_folders(SHARED_DICOM / "philips_asl" / "In" / "Classic"),
    "PHILIPSDWI": [SHARED_DICOM / "philips_dwi_classic" / "601_WIP_dti_ax"],
    "TOSHIBA": [SHARED_DICOM / "toshiba_dwi" / "In" / "Galan" / "8006_DTI_AX_30d"],
    "TS": real_folders(SHARED_DICOM / "siemens_transfer_syntaxes", "*.dcm"),
    "NIHGE": real_folders(NIH / "20180918GE"),
    "NIHSI": real_folders(NIH / "20180918Si"),
    "FMAP": real_folders(SHARED_DICOM / "siemens_fieldmaps", "*/"),
}
DERIVED = "scanner-derived image (ImageType DERIVED/"
PERFUSION_MAP = ("scanner-derived image (ImageType ORIGINAL/PRIMARY/PERFUSION/FFE/PERFUSION/FFE, the scanner's "
                 "perfusion map")
ASL_SIEMENS = ("asl: BIDS requires RepetitionTimePreparation, BackgroundSuppression, M0Type, TotalAcquiredPairs, "
               "which the series' sidecar does not give; a site adds what its scanner does not report with "
               "sidecar_changes in its own heuristic")
_ASL_PHILIPS = ("asl: BIDS requires RepetitionTimePreparation, ArterialSpinLabelingType, PostLabelingDelay, "
                "BackgroundSuppression, M0Type, TotalAcquiredPairs")
ASL_PHILIPS_3D = _ASL_PHILIPS + ", which the series' sidecar does not give"
ASL_PHILIPS_2D = _ASL_PHILIPS + ", SliceTiming, which the series' sidecar does not give"  # the schema: 2D ASL needs SliceTiming
T1W_2MM = "voxel size 2 x 2 x 2 mm is larger than the T1w schema's limit of 1.5 mm"
EPI_1VOL = "not recognised (ImageType ORIGINAL/PRIMARY/M/ND/MOSAIC/MAGNITUDE, EPI of 1 volume(s) that the name does not"
NO_TASK = "no task label: the series name gives no ReproIn task- and does not say rest"
EPI_5_SLICES = ("image of 72 x 72 x 5 x 2 voxels has 5 slices, fewer than the epi schema's minimum of 8 (plausibility: "
                "a brain volume); voxel size 3 x 3 x 12 mm is larger than the epi schema's limit of 10 mm")
PAIR = ("recognised as fmap epi (a pair of opposite phase-encoding polarity on one grid), was held back "
        "'no task label'; still held back: 5 slices of 12 mm, the plausibility bounds of the epi schema")

# (set, visit, SeriesNumber, outcome, what) + what changed before/after issue 26 and why ("" = unchanged).
# outcome "placed": ``what`` is the file after sub-<p>_ses-<v>_ with its datatype folder; "held-back",
# "unmatched": the start of the reason; "non-image": the start of the note naming the non-image objects.
EXPECTED = [
    ("siemens_xa30_visit", "XA30", 5, "held-back", T1W_2MM, ""),
    ("siemens_xa30_visit", "XA30", 6, "held-back", T1W_2MM, ""),
    ("siemens_xa30_visit", "XA30", 7, "placed", "func/task-fa_run-1_bold.nii.gz", ""),
    ("siemens_xa30_visit", "XA30", 8, "placed", "fmap/magnitude1.nii.gz", ""),
    ("siemens_xa30_visit", "XA30", 8, "placed", "fmap/magnitude2.nii.gz", ""),
    ("siemens_xa30_visit", "XA30", 9, "placed", "fmap/phasediff.nii.gz", ""),
    ("siemens_xa30_visit", "XA30", 10, "placed", "dwi/dir-PA_dwi.nii.gz", ""),
    *[("siemens_xa30_visit", "XA30", n, "unmatched", DERIVED, "") for n in (11, 12, 13, 14, 16)],
    ("siemens_xa30_visit", "XA30", 17, "placed", "dwi/dir-AP_dwi.nii.gz", ""),
    *[("siemens_xa30_visit", "XA30", n, "unmatched", DERIVED, "") for n in (19, 20, 21, 22, 24)],
    ("siemens_xa30_visit", "XA30", 25, "held-back", ASL_SIEMENS, ""),
    ("siemens_xa30_visit", "XA30", 27, "unmatched", DERIVED, ""),
    ("siemens_xa30_visit", "XA30", 28, "unmatched", DERIVED, ""),
    ("siemens_xa30_visit", "XA30", 99, "non-image",
     "7 non-image DICOM object(s): structured report (SeriesNumber 99 'PhoenixZIPReport')",
     "was not-converted 'dcm2niix made no image of this DICOM series': now recognised by its SOP Class "
     "(Enhanced SR) and named, never given to dcm2niix"),
    ("ge_session", "GE1", 1, "held-back",
     "image of 256 x 256 x 2 x 7 voxels has 2 slices, fewer than the dwi schema's minimum of 8",
     "before: one visit GESESSION FAILED (two PatientIDs); here, as in the tests before, one visit per patient"),
    ("ge_session", "GE1", 5, "placed", "anat/T1w.nii.gz", "(as above: one visit per patient)"),
    ("ge_session", "GE2", 14, "held-back", NO_TASK, "(as above: one visit per patient)"),
    ("ge_t1w_deidentified", "GET1W", 10, "placed", "anat/T1w.nii.gz", ""),
    ("philips_asl", "PHILIPSASL", 201, "unmatched", PERFUSION_MAP, ""),
    ("philips_asl", "PHILIPSASL", 202, "held-back", ASL_PHILIPS_2D, ""),
    ("philips_asl", "PHILIPSASL", 401, "unmatched", PERFUSION_MAP, ""),
    ("philips_asl", "PHILIPSASL", 402, "held-back", ASL_PHILIPS_3D, ""),
    # Philips gives no phase-encoding polarity (PhaseEncodingAxis only): no dir-
    ("philips_dwi_classic", "PHILIPSDWI", 601, "placed", "dwi/dwi.nii.gz",
     "was held back '585 of 1265 slice files missing' (InstanceNumber gaps): completeness is now read from the "
     "geometry and dcm2niix's report, the _ADC image holding the ADC/trace volume it removed"),
    ("toshiba_dwi", "TOSHIBA", 8006, "placed", "dwi/dwi.nii.gz", ""),  # Canon: no polarity, no dir-
    *[("siemens_transfer_syntaxes", "TS", n, "unmatched", EPI_1VOL, "") for n in range(1, 10)],
    *[("nih_ge_siemens_epi", "NIHGE", n, "held-back", NO_TASK, "") for n in (4, 5, 6, 7)],
    *[("nih_ge_siemens_epi", "NIHSI", n, "held-back", EPI_5_SLICES, PAIR) for n in (3, 4, 5, 6)],
    ("siemens_fieldmaps", "FMAP", 2, "placed", "fmap/magnitude1.nii.gz", ""),
    ("siemens_fieldmaps", "FMAP", 2, "placed", "fmap/magnitude2.nii.gz", ""),
    ("siemens_fieldmaps", "FMAP", 3, "placed", "fmap/phasediff.nii.gz", ""),
    ("siemens_fieldmaps", "FMAP", 4, "held-back", "phasediff without its magnitude image (magnitude1) in this visit", ""),
    ("siemens_fieldmaps", "FMAP", 5, "held-back", "field-map magnitude whose phase image is not placed",
     "same outcome, reworded: one wording of the lone-magnitude rule (checks.gates.lone_magnitude)"),
    ("siemens_fieldmaps", "FMAP", 5, "held-back", "field-map magnitude whose phase image is not placed",
     "same outcome, reworded: one wording of the lone-magnitude rule (checks.gates.lone_magnitude)"),
]


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    export = tmp_path_factory.mktemp("all-sets") / "export"
    for visit, sources in VISITS.items():
        for source in sources:
            add_series(export, "20240105", visit, source, subfolder=source.stem if source.is_file() else None)
    bids = export.parent / "bids"
    report = convert(ConvertOptions(export=export, bids=bids))
    return report, bids


def _placed(bids: Path) -> list[tuple[str, int, str, str]]:
    rows = []
    for scans in bids.glob("sub-*/ses-*/*_scans.tsv"):
        prefix = scans.name.removesuffix("scans.tsv")
        with open(scans, newline="") as handle:
            rows += [(scans.parent.name.removeprefix("ses-"), int(r["series_number"]), "placed",
                      r["filename"].replace(prefix, "")) for r in csv.DictReader(handle, delimiter="\t")]
    return rows


def outcomes(report, bids: Path) -> list[tuple[str, int, str, str]]:
    """(visit, SeriesNumber, outcome, file or reason) of every series of the run."""
    rows = _placed(bids)
    for visit in report.visits:
        rows += [(visit.scan_research_id, o.series.series_number, str(o.status), o.reason) for o in visit.not_placed]
    for problem in report.problems:
        if "non-image DICOM object" in problem.reason:
            visit = problem.path.split("/")[3]  # DICOM/<yyyy>/<day>/<visit>/<series folder>
            number = int(problem.reason.split("(SeriesNumber ")[1].split()[0])
            rows.append((visit, number, "non-image", problem.reason))
    return rows


def test_every_series_of_every_set_has_its_expected_outcome(default_run):
    report, bids = default_run
    actual = sorted(outcomes(report, bids))
    expected = sorted((visit, number, outcome, what) for _, visit, number, outcome, what, _ in EXPECTED)
    unmatched = list(actual)
    missing = []
    for row in expected:
        found = next((a for a in unmatched if a[:3] == row[:3] and a[3].startswith(row[3])), None)
        if found is None:
            missing.append(row)
        else:
            unmatched.remove(found)
    assert (missing, unmatched) == ([], []), "expected but not seen / seen but not expected"
    assert not report.failed and report.validator_errors == 0
    assert_valid_bids(bids)


def test_no_placed_sidecar_is_a_derived_image_or_carries_a_derived_key(default_run):
    _, bids = default_run
    sidecars = list(bids.glob("sub-*/ses-*/*/*.json"))
    assert len(sidecars) == sum(1 for row in EXPECTED if row[3] == "placed")
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
