"""The shipped default heuristic on sidecars as dcm2niix writes them for Siemens, GE, Philips and Canon.

Synthetic series (a sidecar and a small NIfTI of the right shape, no DICOM): each case is one series
and where the default must place it (``rule``, file name after ``sub-P1_ses-V1_``) or the exact
reason it is not placed. Real scanner data: tests/scenarios/test_every_vendor.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_factory.plan.classify import classify_visit
from bids_factory.plan.series_facts import phase_encoding_label, reproin, says_rest
from bids_factory.config.heuristic import load_heuristic
from bids_factory.model import ExtractedVisit, Series, SourceFile, Visit, VisitFolder
from bids_factory.plan.placement import plan_visit
from bids_factory.privacy.identifier_match import VisitIdentifiers
from bids_factory.checks.sidecar_schemas import load_sidecar_schemas
from bids_factory.checks.gates import SCHEMA_NEXT_STEP

ORIGINAL = ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"]
T1 = {"MRAcquisitionType": "3D", "ScanningSequence": "GR\\IR", "EchoTime": 0.0025, "RepetitionTime": 2.3,
      "InversionTime": 0.9}
EPI = {"MRAcquisitionType": "2D", "ScanningSequence": "EP", "EchoTime": 0.03, "RepetitionTime": 2.0,
       "PhaseEncodingDirection": "j-"}
BOLD = (64, 64, 30, 10)
VOL = (64, 64, 30)
NO_TASK = ("held-back", "no task label: the series name gives no ReproIn task- and does not say rest")

# (SeriesDescription, extra sidecar fields, image shape, with .bval/.bvec, expected)
# expected: (rule, name after "sub-P1_ses-V1_") or (status, start of the reason)
VISIT = [
    ("t1_mprage_sag_p2_iso", T1, VOL, False, ("t1w", "run-01_T1w")),
    ("Accelerated SAG IR-SPGR", {"MRAcquisitionType": "3D", "ScanningSequence": "GR", "EchoTime": 0.0028,
                                 "RepetitionTime": 0.007, "InversionTime": 0.4,
                                 "ImageType": ["ORIGINAL", "PRIMARY", "OTHER"]}, VOL, False, ("t1w", "run-02_T1w")),
    ("sT1W_3D_TFE", {"MRAcquisitionType": "3D", "ScanningSequence": "GR", "EchoTime": 0.0046, "RepetitionTime": 0.0099,
                     "ImageType": ["ORIGINAL", "PRIMARY", "M", "FFE", "M", "FFE"]}, VOL, False, ("t1w", "run-03_T1w")),
    ("t1_se_tra", {"MRAcquisitionType": "2D", "ScanningSequence": "SE", "EchoTime": 0.012, "RepetitionTime": 0.5},
     VOL, False, ("unmatched", "not recognised (ImageType ORIGINAL/PRIMARY/M/ND/NORM, ScanningSequence SE")),
    ("t1_mprage_sag_p2_iso_MPR", {**T1, "ImageType": ["DERIVED", "PRIMARY", "MPR"]}, VOL, False,
     ("unmatched", "scanner-derived image (ImageType DERIVED/PRIMARY/MPR)")),
    ("AAHead_Scout_64ch-head-coil", T1, VOL, False, ("unmatched", "localizer/scout")),
    ("t2_tse_tra", {"MRAcquisitionType": "2D", "ScanningSequence": "SE", "EchoTime": 0.1, "RepetitionTime": 6.0},
     VOL, False, ("t2w", "T2w")),
    ("t2_space_dark-fluid_sag", {"MRAcquisitionType": "3D", "ScanningSequence": "SE\\IR", "EchoTime": 0.39,
                                 "RepetitionTime": 5.0, "InversionTime": 1.8}, VOL, False, ("flair", "FLAIR")),
    ("t2_tirm_cor_stir", {"MRAcquisitionType": "2D", "ScanningSequence": "SE\\IR", "EchoTime": 0.06,
                          "RepetitionTime": 5.0, "InversionTime": 0.16}, VOL, False,
     ("unmatched", "not recognised (ImageType ORIGINAL/PRIMARY/M/ND/NORM, ScanningSequence SE\\IR")),
    ("swi_tra", {"MRAcquisitionType": "3D", "ScanningSequence": "GR", "EchoTime": 0.02, "RepetitionTime": 0.028,
                 "ImageType": ["ORIGINAL", "PRIMARY", "M", "SWI", "ND"]}, VOL, False, ("t2starw", "T2starw")),
    ("swi_tra_mIP", {"MRAcquisitionType": "3D", "ScanningSequence": "GR",
                     "ImageType": ["DERIVED", "PRIMARY", "MNIP", "SWI"]}, VOL, False,
     ("unmatched", "scanner-derived image")),
    ("func-bold_task-nback_acq-mb3_run-2", EPI, BOLD, False, ("bold", "task-nback_acq-mb3_run-2_bold")),
    ("rsfMRI", {**EPI, "ScanningSequence": "EP\\GR"}, BOLD, False, ("bold", "task-rest_run-01_bold")),
    ("fMRI_rest_SENSE", {**EPI, "ScanningSequence": "GR", "SequenceName": "FEEPI"}, BOLD, False,
     ("bold", "task-rest_run-02_bold")),
    ("fcMRI", EPI, BOLD, False, ("bold", "task-rest_run-03_bold")),
    ("first_task_fMRI", EPI, BOLD, False, NO_TASK),  # 'first' holds "rs" but is not the word rs
    ("Ax fMRI HB3 48sl", {**EPI, "ImageType": ["ORIGINAL", "PRIMARY", "EPI", "NONE"]}, BOLD, False, NO_TASK),
    ("MoCoSeries", {**EPI, "ImageType": ["DERIVED", "PRIMARY", "MOCO"]}, BOLD, False,
     ("unmatched", "scanner-derived image")),
    ("ep2d_diff_mddw_30", {**EPI, "ImageType": ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]}, BOLD, True,
     ("dwi", "dir-AP_run-01_dwi")),
    ("DTI AX 30d", {**EPI, "ScanningSequence": "SE\\EP", "PhaseEncodingDirection": None, "PhaseEncodingAxis": "j",
                    "ImageType": ["ORIGINAL", "PRIMARY", "GDC"]}, BOLD, True, ("dwi", "dwi")),
    ("DWI_SENSE", {**EPI, "PhaseEncodingDirection": "j"}, BOLD, True, ("dwi", "dir-PA_dwi")),
    ("DWI_PA_SBRef", {**EPI, "PhaseEncodingDirection": "j"}, VOL, False, ("dwi-sbref", "dir-PA_sbref")),
    ("ep2d_diff_mddw_30_ADC", {**EPI, "ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]}, VOL, False,
     ("unmatched", "scanner-derived image")),
    ("ep2d_diff_mddw_30", {**EPI, "ImageType": ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]}, BOLD, True,
     ("dwi", "dir-AP_run-02_dwi")),
    ("gre_field_mapping", {"EchoNumber": 1, "ScanningSequence": "GR", "EchoTime": 0.00492,
                           "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"]}, VOL, False, ("fmap-magnitude1", "magnitude1")),
    ("gre_field_mapping", {"EchoNumber": 2, "ScanningSequence": "GR", "EchoTime": 0.00738,
                           "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"]}, VOL, False, ("fmap-magnitude2", "magnitude2")),
    ("gre_field_mapping", {"EchoNumber": 2, "ScanningSequence": "GR", "EchoTime": 0.00738, "EchoTime1": 0.00492,
                           "EchoTime2": 0.00738, "ImageType": ["ORIGINAL", "PRIMARY", "P", "ND"]}, VOL, False,
     ("fmap-phasediff", "phasediff")),
    ("B0map_lone", {"EchoNumber": 1, "ScanningSequence": "GR", "EchoTime": 0.005,
                    "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"]}, VOL, False,
     ("held-back", "field-map magnitude whose phase image is not placed ('B0map_lone'): a magnitude is never placed alone")),
    ("SpinEchoFieldMap_AP", {**EPI, "ScanningSequence": "EP\\SE"}, VOL, False, ("fmap-epi", "dir-AP_epi")),
    ("SpinEchoFieldMap_PA", {**EPI, "ScanningSequence": "EP\\SE", "PhaseEncodingDirection": "j"}, VOL, False,
     ("fmap-epi", "dir-PA_epi")),
    ("anat-T2w_acq-highres", {"MRAcquisitionType": "2D", "ScanningSequence": "GR", "EchoTime": 0.01,
                              "RepetitionTime": 0.5}, VOL, False, ("t2w", "acq-highres_T2w")),
    ("asl_3d_tra", {**EPI, "ImageType": ["ORIGINAL", "PRIMARY", "ASL", "NONE"], "ArterialSpinLabelingType": "PCASL",
                    "PostLabelingDelay": 1.8, "LabelingDuration": 1.8, "SliceTiming": [0.0, 0.5, 1.0]},
     (64, 64, 30, 7), False,
     ("held-back", "asl: BIDS requires RepetitionTimePreparation, BackgroundSuppression, M0Type, TotalAcquiredPairs, "
                   "which the series' sidecar does not give; a site adds what its scanner does not report with "
                   "sidecar_changes in its own heuristic")),
    ("pCASL", {**EPI, "ImageType": ["ORIGINAL", "PRIMARY", "PERFUSION", "FFE"]}, VOL, False,
     ("unmatched", "scanner-derived image (ImageType ORIGINAL/PRIMARY/PERFUSION/FFE, the scanner's perfusion map")),
]
PHILIPS_FIELDMAP = [  # dual-echo B0 map: both echoes' magnitude and phase (phase1/phase2, no EchoTime1/2)
    ("B0_map", {"EchoNumber": e, "ScanningSequence": "GR", "EchoTime": te, "ImageType": ["ORIGINAL", "PRIMARY", *it]},
     VOL, False, (f"fmap-{suffix}", suffix))
    for e, te, it, suffix in ((1, 0.003, ["M", "FFE"], "magnitude1"), (2, 0.0053, ["M", "FFE"], "magnitude2"),
                              (1, 0.003, ["PHASE MAP", "FFE"], "phase1"), (2, 0.0053, ["PHASE MAP", "FFE"], "phase2"))
]
ENHANCED_FIELDMAP = [  # Philips enhanced DICOM: one series, ImageType T1/MIXED; dcm2niix names the phase "_ph"
    ("B0map", {"EchoNumber": e, "ScanningSequence": "GR", "EchoTime": te, "_file": f"8_B0map_e{e}{ph}",
               "ImageType": ["ORIGINAL", "PRIMARY", "T1", "MIXED"]}, VOL, False, (f"fmap-{suffix}", suffix))
    for e, te, ph, suffix in ((1, 0.003, "", "magnitude1"), (2, 0.0053, "", "magnitude2"),
                              (1, 0.003, "_ph", "phase1"), (2, 0.0053, "_ph", "phase2"))
]
TWO_PHASE_ECHOES = [  # Siemens two-echo phase images: dcm2niix gives each EchoTime1/EchoTime2 and its EchoNumber
    ("gre_field_mapping", {"EchoNumber": e, "ScanningSequence": "GR", "EchoTime": te, "EchoTime1": 0.00492,
                           "EchoTime2": 0.00738, "_file": f"9_gre_field_mapping_e{e}{ph}",
                           "ImageType": ["ORIGINAL", "PRIMARY", *it]}, VOL, False, (f"fmap-{suffix}", suffix))
    for e, te, ph, it, suffix in ((1, 0.00492, "", ["M", "ND"], "magnitude1"), (2, 0.00738, "", ["M", "ND"], "magnitude2"),
                                  (1, 0.00492, "_ph", ["P", "ND"], "phase1"), (2, 0.00738, "_ph", ["P", "ND"], "phase2"))
]
# Philips as dcm2niix writes it: never EP in ScanningSequence, and EstimatedEffectiveEchoSpacing/
# EstimatedTotalReadoutTime on EVERY image with a WaterFatShift (EPI or not: dcm_qa_fmap Ph_801_WIP_B0_NS).
PHILIPS_ESTIMATED = {"Manufacturer": "Philips", "WaterFatShift": 0.14, "EstimatedEffectiveEchoSpacing": 2.56e-06,
                     "EstimatedTotalReadoutTime": 0.0001613}
PHILIPS_FFE_MAP = {**PHILIPS_ESTIMATED, "MRAcquisitionType": "3D", "ScanningSequence": "GR", "SequenceVariant": "SS",
                   "SequenceName": "T1FFE", "RepetitionTime": 0.0038}
PHILIPS = [
    ("sT1W_3D_TFE", {**PHILIPS_ESTIMATED, "MRAcquisitionType": "3D", "ScanningSequence": "GR", "SequenceVariant": "SK",
                     "SequenceName": "T1TFE", "EchoTime": 0.0046, "RepetitionTime": 0.0099,
                     "ImageType": ["ORIGINAL", "PRIMARY", "M", "FFE", "M", "FFE"]}, VOL, False, ("t1w", "T1w")),
    *[("B0_map", {**PHILIPS_FFE_MAP, "EchoNumber": e, "EchoTime": te, "_file": f"8_B0_map_e{e}{ph}",
                  "ImageType": ["ORIGINAL", "PRIMARY", "T1", "MIXED"]}, VOL, False, (f"fmap-{suffix}", suffix))
      for e, te, ph, suffix in ((1, 0.003, "", "magnitude1"), (2, 0.0053, "", "magnitude2"),
                                (1, 0.003, "_ph", "phase1"), (2, 0.0053, "_ph", "phase2"))],
    ("WIP B0 NS", {**PHILIPS_FFE_MAP, "ScanningSequence": "RM", "SequenceName": None, "EchoNumber": 1,
                   "EchoTime": 0.00152, "_file": "9_WIP_B0_NS_e1",
                   "ImageType": ["ORIGINAL", "PRIMARY", "T1", "MIXED", "FIELDMAPHZ"]}, VOL, False,
     ("fmap-magnitude", "magnitude")),
    ("WIP B0 NS", {**PHILIPS_FFE_MAP, "ScanningSequence": "RM", "SequenceName": None, "EchoNumber": 2, "Units": "Hz",
                   "_file": "9_WIP_B0_NS_e2_fieldmaphz",
                   "ImageType": ["ORIGINAL", "PRIMARY", "T1", "MIXED", "REAL", "FIELDMAPHZ"]}, VOL, False,
     ("fmap-fieldmap", "fieldmap")),
    ("fcMRI", {**PHILIPS_ESTIMATED, "MRAcquisitionType": "2D", "ScanningSequence": "GR", "SequenceVariant": "SK",
               "SequenceName": "FEEPI", "EchoTrainLength": 39, "EchoTime": 0.03, "RepetitionTime": 2.0,
               "ImageType": ["ORIGINAL", "PRIMARY", "M", "FFE", "M", "FFE"]}, BOLD, False, ("bold", "task-rest_run-01_bold")),
    # classic export without a sequence name (dcm_qa_philips EPI_asc_CLEAR_201): GR, SK, 2D, an echo train
    ("fMRI rest SENSE", {**PHILIPS_ESTIMATED, "MRAcquisitionType": "2D", "ScanningSequence": "GR",
                         "SequenceVariant": "SK", "EchoTrainLength": 39, "EchoTime": 0.03, "RepetitionTime": 2.0,
                         "ImageType": ["ORIGINAL", "PRIMARY", "M", "FFE", "M", "FFE"]}, BOLD, False,
     ("bold", "task-rest_run-02_bold")),
    ("dti_ax", {**PHILIPS_ESTIMATED, "MRAcquisitionType": "2D", "ScanningSequence": "SE", "SequenceVariant": "SK",
                "SequenceName": "DwiSE", "EchoTrainLength": 31, "EchoTime": 0.08, "RepetitionTime": 6.0,
                "PhaseEncodingAxis": "j", "ImageType": ["ORIGINAL", "PRIMARY", "M", "SE", "M", "SE"]}, BOLD, True,
     ("dwi", "dwi")),
    ("SOURCE - pCASL", {**PHILIPS_ESTIMATED, "MRAcquisitionType": "2D", "ScanningSequence": "GR", "SequenceVariant": "SK",
                        "SequenceName": "FEEPI", "EchoTrainLength": 39, "EchoTime": 0.014, "RepetitionTime": 4.0,
                        "ImageType": ["ORIGINAL", "PRIMARY", "M", "FFE", "M", "FFE"]}, (64, 64, 30, 6), False,
     ("held-back", "asl: BIDS requires")),
]
PEPOLAR = [  # GE pairs of opposite polarity named FM_... (no field-map word): fmap epi, whatever the name
    ("FM_Ax_EPI_1", {**EPI, "ScanningSequence": "EP\\SE", "PhaseEncodingDirection": "j-"}, (64, 64, 30, 2), False,
     ("fmap-epi", "dir-AP_epi")),
    ("FM_Ax_EPI_2", {**EPI, "ScanningSequence": "EP\\SE", "PhaseEncodingDirection": "j"}, (64, 64, 30, 2), False,
     ("fmap-epi", "dir-PA_epi")),
    ("func-bold_task-nback", EPI, BOLD, False, ("bold", "task-nback_bold")),
    ("func-bold_task-motor", EPI, (64, 64, 36, 10), False, ("bold", "task-motor_bold")),  # another grid
    # a short EPI series without an opposite partner on its grid stays what it was
    ("short_EPI", {**EPI, "PhaseEncodingDirection": "j-"}, (64, 64, 20, 3), False, NO_TASK),
    ("short_EPI_other_grid", {**EPI, "PhaseEncodingDirection": "j"}, (64, 64, 24, 3), False, NO_TASK),
]
TWO_RECONSTRUCTIONS = [  # Siemens: one acquisition, reconstructed with and without NORM (same AcquisitionTime)
    ("anat-T1w_acq-tfl", {**T1, "AcquisitionTime": "12:05:17.0", "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"]},
     VOL, False, ("t1w", "acq-tfl_T1w")),
    ("anat-T1w_acq-tfl", {**T1, "AcquisitionTime": "12:05:17.0",
                          "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"]}, VOL, False,
     ("t1w", "acq-tfl_rec-norm_T1w")),
]


ALL = {"visit": VISIT, "philips-b0": PHILIPS_FIELDMAP, "enhanced": ENHANCED_FIELDMAP, "two-phase": TWO_PHASE_ECHOES, "philips": PHILIPS,
       "recon": TWO_RECONSTRUCTIONS, "pepolar": PEPOLAR}


def _extracted(folder: Path, cases) -> ExtractedVisit:
    series = []
    for number, (description, extra, shape, diffusion, _) in enumerate(cases, start=1):
        sidecar = {"SeriesDescription": description, "ProtocolName": description, "SeriesNumber": number,
                   "ImageType": ORIGINAL, "AcquisitionTime": f"10:{number:02d}:00.000000", "Manufacturer": "Siemens",
                   "MagneticFieldStrength": 3, **{k: v for k, v in extra.items() if v is not None}}
        path = folder / f"{sidecar.pop('_file', f'{number:03d}')}.json"  # _file: dcm2niix's file name
        path.write_text(json.dumps(sidecar))
        nifti = path.with_name(path.stem + ".nii.gz")
        nib.save(nib.Nifti1Image(np.zeros(shape, dtype=np.int16), np.diag([2.0, 2.0, 2.0, 1.0])), nifti)
        extras = ()
        if diffusion:
            extras = (path.with_name(path.stem + ".bval"), path.with_name(path.stem + ".bvec"))
            for extra_path in extras:
                extra_path.write_text("0\n")
        series.append(Series(nifti=nifti, sidecar=path, extras=extras, series_number=number,
                             series_description=description, protocol_name=description,
                             image_type=tuple(sidecar["ImageType"]), source_folders=("DICOM/2024/20240101/V1",)))
    day = VisitFolder("DICOM", "20240101", folder, "DICOM/2024/20240101/V1")
    visit = Visit("V1", (day,), (SourceFile(folder / "x.dcm", day),))
    return ExtractedVisit(visit=visit, subject_label="P1", patient_key="k", staging=folder, series=tuple(series),
                          unconverted=(), non_dicom_files=0, problems=(), converter_version="v1", converter_log="")


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    heuristic = load_heuristic()
    result = {}
    for name, cases in ALL.items():
        result[name] = plan_visit(_extracted(tmp_path_factory.mktemp(name), cases), heuristic)
    return result


def _outcome(plan, number):
    placed = {p.series.series_number: p for p in plan.placements}
    if number in placed:
        p = placed[number]
        return p.rule, p.stem.removeprefix("sub-P1_ses-V1_")
    [outcome] = [o for o in plan.not_placed if o.series.series_number == number]
    return outcome.status, outcome.reason


CASE_IDS = [(name, i) for name, cases in ALL.items() for i in range(1, len(cases) + 1)]


@pytest.mark.parametrize("visit,number", CASE_IDS, ids=[f"{v}-{n}-{ALL[v][n - 1][0]}" for v, n in CASE_IDS])
def test_default_heuristic_places_each_series_or_says_why(plans, visit, number):
    expected = ALL[visit][number - 1][4]
    status, what = _outcome(plans[visit], number)
    if expected[0] in ("held-back", "unmatched"):
        assert status == expected[0] and what.startswith(expected[1]), (status, what)
    else:
        assert (status, what) == expected


def test_no_derived_key_reaches_a_placed_sidecar(plans):
    for plan in plans.values():
        for placement in plan.placements:
            assert not [k for k in placement.sidecar if k.startswith("BidsFactory")], placement.stem


def test_bold_task_name_comes_from_the_name_never_forced_to_rest(plans):
    bold = {p.stem: p.sidecar.get("TaskName") for p in plans["visit"].placements if p.stem.endswith("_bold")}
    assert bold["sub-P1_ses-V1_task-nback_acq-mb3_run-2_bold"] == "nback"
    assert bold["sub-P1_ses-V1_task-rest_run-03_bold"] == "rest"


def test_fieldmaps_point_to_the_bold_and_dwi(plans):
    plan = plans["visit"]
    phasediff = next(p for p in plan.placements if p.rule == "fmap-phasediff")
    targets = sorted(p.session_path for p in plan.placements if p.stem.endswith(("_bold", "_dwi")))
    assert sorted(phasediff.sidecar["IntendedFor"]) == [f"bids::sub-P1/ses-V1/{path}" for path in targets]
    lone = [o for o in plan.not_placed if o.series.series_description == "B0map_lone"]
    assert lone and lone[0].status == "held-back"


def test_opposite_polarity_pairs_point_to_the_epi_they_serve(plans):
    """The pair serves the BOLD on its own voxel grid, not the one acquired on another grid."""
    plan = plans["pepolar"]
    epis = [p for p in plan.placements if p.rule == "fmap-epi"]
    assert len(epis) == 2
    for epi in epis:
        intended = epi.sidecar["IntendedFor"]  # dcm2bids writes one target as a string
        assert ([intended] if isinstance(intended, str) else intended) == [
            "bids::sub-P1/ses-V1/func/sub-P1_ses-V1_task-nback_bold.nii.gz"]
        assert epi.sidecar["PhaseEncodingDirection"] in ("j", "j-")


def test_philips_phase1_phase2_keep_their_echo_times(plans):
    phases = {p.stem.rsplit("_", 1)[-1]: p.sidecar for p in plans["philips-b0"].placements}
    assert sorted(phases) == ["magnitude1", "magnitude2", "phase1", "phase2"]
    assert phases["phase1"]["EchoTime"] == 0.003 and phases["phase2"]["EchoTime"] == 0.0053


def test_philips_field_maps_with_estimated_keys_are_field_maps_for_the_bold_and_dwi(plans):
    """dcm2niix's Estimated* keys on a Philips FFE field map do not make it EPI: e1/e2 + _ph are
    magnitude1/2 + phase1/2 (each its EchoTime), the map in Hz + its magnitude are fieldmap (Units Hz) +
    magnitude, and each points to the BOLD and DWI of the visit."""
    placed = {p.stem.removeprefix("sub-P1_ses-V1_"): p.sidecar for p in plans["philips"].placements}
    fmaps = {stem: sidecar for stem, sidecar in placed.items()
             if stem.rsplit("_", 1)[-1] in ("magnitude1", "magnitude2", "phase1", "phase2", "fieldmap", "magnitude")}
    assert sorted(stem.rsplit("_", 1)[-1] for stem in fmaps) == [
        "fieldmap", "magnitude", "magnitude1", "magnitude2", "phase1", "phase2"]
    assert all("EstimatedTotalReadoutTime" in sidecar for sidecar in fmaps.values())
    phase = {stem.rsplit("_", 1)[-1]: sidecar for stem, sidecar in fmaps.items()}
    assert (phase["phase1"]["EchoTime"], phase["phase2"]["EchoTime"]) == (0.003, 0.0053)
    assert phase["fieldmap"]["Units"] == "Hz"
    targets = sorted(f"bids::sub-P1/ses-V1/{p.session_path}" for p in plans["philips"].placements
                     if p.stem.endswith(("_bold", "_dwi")))
    assert len(targets) == 3
    for sidecar in fmaps.values():
        assert sorted(sidecar["IntendedFor"]) == targets


@pytest.mark.parametrize("name,rest", [("rest", True), ("rs_fMRI", True), ("RestingState", True), ("fcMRI", True),
                                       ("Resting state BOLD", True), ("first", False), ("cross_task", False),
                                       ("mrs_press", False), ("forest_walk", False)])
def test_rest_is_a_word_of_the_name_not_a_substring(name, rest):
    assert says_rest(name) is rest


def test_required_fields_come_from_the_bids_schema_for_any_suffix(tmp_path):
    """What the official schema requires holds a series back with the field named (a site's rule too):
    a 2D ASL without SliceTiming, a phasediff without EchoTime2, a BOLD without RepetitionTime."""
    from bids_factory.checks.required_metadata import missing_fields, required_fields

    assert "SliceTiming" in missing_fields("perf", "asl", {}, {"MRAcquisitionType": "2D"})
    assert "SliceTiming" not in required_fields("perf", "asl", {}, {"MRAcquisitionType": "3D"})
    assert "M0Estimate" in required_fields("perf", "asl", {}, {"M0Type": "Estimate"})
    assert "LabelingDuration" in required_fields("perf", "asl", {}, {"ArterialSpinLabelingType": "PCASL"})
    assert "BolusCutOffFlag" in required_fields("perf", "asl", {}, {"ArterialSpinLabelingType": "PASL"})
    assert missing_fields("fmap", "phasediff", {}, {"EchoTime1": 0.004}) == ["EchoTime2"]
    assert missing_fields("func", "bold", {"task": "rest"}, {"TaskName": "rest", "VolumeTiming": [0, 2]}) == []
    assert "RepetitionTime" in missing_fields("func", "bold", {"task": "rest"}, {"TaskName": "rest"})
    assert missing_fields("anat", "T1w", {}, {}) == []
    site = json.loads(load_heuristic().path.read_text())  # a site rule that names a bold "phasediff"
    site["descriptions"] = [{"datatype": "fmap", "suffix": "phasediff", "criteria": {"SeriesDescription": "fmri*"}}]
    path = tmp_path / "site.json"
    path.write_text(json.dumps(site))
    plan = plan_visit(_extracted(tmp_path, [("fmri_x", EPI, BOLD, False, None)]), load_heuristic(path))
    assert not plan.placements
    assert plan.not_placed[0].reason.startswith(
        "phasediff: BIDS requires EchoTime1, EchoTime2, which the series' sidecar does not give")


def test_reproin_names_give_datatype_suffix_and_entities():
    assert reproin("func-bold_task-fa_run-1") == ("func", "bold", {"task": "fa", "run": "1"})
    assert reproin("anat-T1w_acq-tfl") == ("anat", "T1w", {"acq": "tfl"})
    assert reproin("dwi_dir-AP_run-2") == ("dwi", "dwi", {"dir": "AP", "run": "2"})
    assert reproin("fmap-epi_dir-PA__dup") == ("fmap", "epi", {"dir": "PA"})
    assert reproin("t1_mprage_sag") is None and reproin("rsfMRI") is None


def test_site_heuristic_with_asl_metadata_and_order_places_asl_with_aslcontext(tmp_path):
    """What dcm2niix does not give, a site gives in its own heuristic: then the ASL series is placed."""
    site = json.loads(load_heuristic().path.read_text())
    rule = next(d for d in site["descriptions"] if d["suffix"] == "asl")
    rule["sidecar_changes"] = {"M0Type": "Included", "BackgroundSuppression": False, "TotalAcquiredPairs": 3,
                               "RepetitionTimePreparation": 4.8}
    rule["bids_factory"]["aslcontext"] = {"first": ["m0scan"], "repeat": ["label", "control"]}
    path = tmp_path / "site.json"
    path.write_text(json.dumps(site))
    asl_case = [c for c in VISIT if c[0] == "asl_3d_tra"]
    plan = plan_visit(_extracted(tmp_path, asl_case), load_heuristic(path), load_sidecar_schemas())
    [placement] = plan.placements
    assert placement.session_path == "perf/sub-P1_ses-V1_dir-AP_asl.nii.gz"
    assert placement.extra_files == (("aslcontext.tsv", "volume_type\nm0scan\n" + "label\ncontrol\n" * 3),)
    assert placement.extra_file_stem("aslcontext.tsv") == "sub-P1_ses-V1_dir-AP_aslcontext.tsv"

    rule["bids_factory"]["aslcontext"] = {"repeat": ["label", "control"]}  # 7 volumes: does not fit
    path.write_text(json.dumps(site))
    (tmp_path / "again").mkdir()
    plan = plan_visit(_extracted(tmp_path / "again", asl_case), load_heuristic(path))
    assert plan.placements == ()
    assert plan.not_placed[0].reason == "ASL: the rule's aslcontext (0 first + a repeat of 2) does not fit its 7 volumes"


def test_magnitudes_are_held_back_with_their_phase(tmp_path):
    """A site schema refuses the phasediff: its magnitudes are not placed alone."""
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "phasediff.schema.json").write_text(json.dumps({"type": "object", "required": ["B0FieldIdentifier"]}))
    fieldmap = [c for c in VISIT if c[0] == "gre_field_mapping"]
    (tmp_path / "visit").mkdir()
    plan = plan_visit(_extracted(tmp_path / "visit", fieldmap), load_heuristic(), load_sidecar_schemas(schemas))
    assert plan.placements == ()
    reasons = sorted(o.reason for o in plan.not_placed)
    assert reasons == ["B0FieldIdentifier is missing: the phasediff schema requires it" + SCHEMA_NEXT_STEP] + [
        "field-map magnitude whose phase image is not placed ('gre_field_mapping'): a magnitude is never "
        "placed alone"] * 2
    assert {o.group for o in plan.not_placed} == {"supply"}  # the magnitudes wait for what the phasediff lacks


def test_a_sidecar_without_image_type_is_not_taken_for_a_derived_image():
    """Hospital NIfTI JSON (and some older exports) carry no ImageType: absent is not DERIVED."""
    from bids_factory.plan.series_facts import image_words as _image_words

    assert _image_words({}) == set()
    assert _image_words({"ImageType": None, "ImageTypeText": ""}) == set()
    assert _image_words({"ImageType": ["ORIGINAL", "PRIMARY", "M"]}) == {"ORIGINAL", "PRIMARY", "M"}


def test_dir_label_follows_the_images_orientation_not_a_fixed_table():
    """dcm2niix's PhaseEncodingDirection names a voxel axis; where that axis points in the subject comes
    from the image's affine (axial, sagittal, coronal, flipped storage order)."""
    assert phase_encoding_label("j-", ("L", "A", "S")) == "AP"  # dcm2niix's usual axial image
    assert phase_encoding_label("j", ("L", "A", "S")) == "PA"
    assert phase_encoding_label("j", ("L", "P", "S")) == "AP"  # rows stored the other way round
    assert phase_encoding_label("i", ("L", "A", "S")) == "RL" and phase_encoding_label("i", ("R", "A", "S")) == "LR"
    assert phase_encoding_label("j-", ("A", "S", "R")) == "SI"  # sagittal: j points superior, j- goes down
    assert phase_encoding_label("k", ("L", "A", "S")) == "IS"
    assert phase_encoding_label("", ("L", "A", "S")) == phase_encoding_label("j-", None) == ""
    assert phase_encoding_label("y-", ("L", "A", "S")) == ""


def test_a_sagittal_dwi_is_named_by_its_own_orientation(tmp_path):
    sidecar = {**EPI, "PhaseEncodingDirection": "j-", "SeriesDescription": "DWI", "ImageType": ORIGINAL}
    (tmp_path / "dwi.json").write_text(json.dumps(sidecar))
    sagittal = np.array([[0, 0, -2.0, 0], [2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0, 1]])  # i->A, j->S, k->L
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 3), dtype=np.int16), sagittal), tmp_path / "dwi.nii.gz")
    extras = (tmp_path / "dwi.bval", tmp_path / "dwi.bvec")
    for extra in extras:
        extra.write_text("0 1000 1000\n")
    series = Series(nifti=tmp_path / "dwi.nii.gz", sidecar=tmp_path / "dwi.json", extras=extras, series_number=1,
                    series_description="DWI", protocol_name="DWI", image_type=tuple(ORIGINAL), source_folders=())
    (found,) = classify_visit([(series, sidecar)]).values()
    assert found.kind == "dwi/dwi" and found.entities.get("dir") == "SI"  # a fixed table would say AP


def _site_rule(suffix: str, echo: int, image: str) -> dict:
    return {"bids_factory": {"rule": suffix}, "datatype": "fmap", "suffix": suffix,
            "criteria": {"SeriesDescription": "B0_map", "EchoNumber": echo, "ImageType": ["*", "*", image, "*"]}}


@pytest.mark.parametrize("refused", ["magnitude", "phase"])
@pytest.mark.parametrize("fallback", [True, False])
def test_a_site_rules_field_map_is_placed_whole_or_not_at_all(tmp_path, fallback, refused):
    """Gate 4 holds for a site's rules (alone or with the default): when a site schema refuses its magnitudes,
    its phase1/phase2 are held back, and its magnitudes when the phases are refused."""
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"bids_factory": {"fallback_to_default": fallback}, "descriptions": [
        _site_rule("magnitude1", 1, "M"), _site_rule("magnitude2", 2, "M"),
        _site_rule("phase1", 1, "PHASE MAP"), _site_rule("phase2", 2, "PHASE MAP")]}))
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    for suffix in ((f"{refused}1", f"{refused}2")):
        (schemas / f"{suffix}.schema.json").write_text(json.dumps({"required": ["B0FieldIdentifier"]}))
    (tmp_path / "visit").mkdir()
    plan = plan_visit(_extracted(tmp_path / "visit", PHILIPS_FIELDMAP), load_heuristic(site),
                      load_sidecar_schemas(schemas))
    assert plan.placements == ()
    reasons = {o.series.series_number: o.reason for o in plan.not_placed}
    assert {o.rule for o in plan.not_placed} == {
        f"site:{s}" if fallback else s for s in ("magnitude1", "magnitude2", "phase1", "phase2")}
    refused_numbers, set_numbers = ((1, 2), (3, 4)) if refused == "magnitude" else ((3, 4), (1, 2))
    for number in refused_numbers:
        assert reasons[number] == (f"B0FieldIdentifier is missing: the {refused}{number - refused_numbers[0] + 1} "
                                   "schema requires it" + SCHEMA_NEXT_STEP)
    if refused == "magnitude":
        assert [reasons[3], reasons[4]] == [
            f"field-map {phase} image whose magnitude1/magnitude2 image(s) are not placed ('B0_map'): a field map "
            "is never placed without its magnitudes; place them too (a rule that matches their series, or the "
            "metadata their reason names)" for phase in ("phase1", "phase2")]
    else:
        assert [reasons[1], reasons[2]] == ["field-map magnitude whose phase image is not placed ('B0_map'): a "
                                            "magnitude is never placed alone"] * 2


def test_a_site_rule_for_a_phasediff_alone_places_nothing(tmp_path):
    """A site's heuristic alone with a rule for the phase series only: the phasediff is not placed alone."""
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"bids_factory": {"fallback_to_default": False}, "descriptions": [
        {"datatype": "fmap", "suffix": "phasediff", "criteria": {"SeriesDescription": "gre_field_mapping",
                                                                 "ImageType": ["*", "*", "P", "*"]}}]}))
    fieldmap = [c for c in VISIT if c[0] == "gre_field_mapping"]
    (tmp_path / "visit").mkdir()
    plan = plan_visit(_extracted(tmp_path / "visit", fieldmap), load_heuristic(site))
    assert plan.placements == ()
    held = [o for o in plan.not_placed if o.status == "held-back"]
    assert [o.reason for o in held] == [
        "field-map phasediff image whose magnitude1 image(s) are not placed ('gre_field_mapping'): a field map is "
        "never placed without its magnitudes; place them too (a rule that matches their series, or the metadata "
        "their reason names)"]


def test_dcm2bids_root_log_lines_go_to_debug_never_raw_to_the_terminal(tmp_path, caplog):
    """A field map in a visit without bold or dwi: dcm2bids says ``No id found for 'IntendedFor' value`` on
    the root logger for each; those lines reach the log at debug only, through bids-factory's logger."""
    import logging

    fieldmap = [c for c in VISIT if c[0] == "gre_field_mapping"]
    (tmp_path / "visit").mkdir()
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="bids_factory"):  # whatever
        plan_visit(_extracted(tmp_path / "visit", fieldmap), load_heuristic())  # level a CLI test left it at
    lines = [r for r in caplog.records if "No id found" in r.getMessage()]
    assert lines and {(r.name, r.levelno) for r in lines} == {("bids_factory.plan.placement", logging.DEBUG)}


def test_a_required_key_that_truly_holds_an_identifier_holds_the_series_back_naming_it(tmp_path):
    """The operator typed the patient's name into a ReproIn name (task-quartermaine): TaskName, which BIDS
    requires of a BOLD image, holds an identifier, is removed, and the series is held back naming TaskName
    (never placed without it, never silently); the other BOLD series is placed."""
    extracted = _extracted(tmp_path, [("func-bold_task-quartermaine", EPI, BOLD, False, None),
                                      ("func-bold_task-nback", EPI, BOLD, False, None)])
    extracted = dataclasses.replace(extracted, identifiers=VisitIdentifiers(
        patient_id="P1", ids=frozenset({"P1"}), names=frozenset({"quartermaine"})))
    plan = plan_visit(extracted, load_heuristic())
    assert [p.stem for p in plan.placements] == ["sub-P1_ses-V1_task-nback_bold"]
    [held] = plan.not_placed
    assert (held.series.series_number, held.status) == (1, "held-back")
    assert held.reason.startswith("TaskName holds an identifier of this visit"), held.reason
