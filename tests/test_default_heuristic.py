"""The shipped default heuristic on sidecars as dcm2niix writes them for Siemens, GE and Philips.

Sidecars only (no DICOM needed): each case is one series' sidecar fields and the rule that must
place it, or None when nothing may place it (localizers, derived maps, 2D T1w...).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bids_factory.heuristic import load_heuristic
from bids_factory.model import ExtractedVisit, Series, SourceFile, Visit, VisitFolder
from bids_factory.plan import plan_visit

ORIGINAL = ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"]
CASES = [
    # (SeriesDescription, extra sidecar fields, expected rule)
    ("t1_mprage_sag_p2_iso", {"MRAcquisitionType": "3D", "ScanningSequence": "GR\\IR"}, "t1w-3d"),
    ("Accelerated SAG IR-SPGR", {"MRAcquisitionType": "3D", "ScanningSequence": "GR",
                                 "ImageType": ["ORIGINAL", "PRIMARY", "OTHER"]}, "t1w-3d"),
    ("Sag T1 BRAVO", {"MRAcquisitionType": "3D", "ScanningSequence": "GR"}, "t1w-3d"),
    ("sT1W_3D_TFE", {"MRAcquisitionType": "3D", "ScanningSequence": "GR",
                     "ImageType": ["ORIGINAL", "PRIMARY", "M", "FFE", "M", "FFE"]}, "t1w-3d"),
    ("t1_se_tra", {"MRAcquisitionType": "2D", "ScanningSequence": "SE"}, None),
    ("t1_mprage_sag_p2_iso", {"MRAcquisitionType": "3D", "ImageType": ["DERIVED", "PRIMARY", "MPR"]}, None),
    ("AAHead_Scout_64ch-head-coil", {"MRAcquisitionType": "3D", "ScanningSequence": "GR"}, None),
    ("t2_tse_tra", {"MRAcquisitionType": "2D", "ScanningSequence": "SE"}, "t2w"),
    ("Ax T2 FSE", {"MRAcquisitionType": "2D", "ScanningSequence": "SE"}, "t2w"),
    ("T2W_TSE", {"MRAcquisitionType": "2D", "ScanningSequence": "SE"}, "t2w"),
    ("t2_space_dark-fluid_sag", {"MRAcquisitionType": "3D", "ScanningSequence": "SE\\IR"}, "flair"),
    ("Sag CUBE FLAIR", {"MRAcquisitionType": "3D", "ScanningSequence": "SE\\IR"}, "flair"),
    ("ep2d_bold_resting_state", {"ScanningSequence": "EP"}, "bold-rest"),
    ("rsfMRI", {"ScanningSequence": "EP\\GR"}, "bold-rest"),
    ("fMRI_rest_SENSE", {"ScanningSequence": "GR"}, "bold-rest"),  # Philips: no EP in ScanningSequence
    ("MoCoSeries", {"ScanningSequence": "EP", "ImageType": ["DERIVED", "PRIMARY", "MOCO"]}, None),
    ("ep2d_diff_mddw_30", {"ScanningSequence": "EP"}, "dwi"),
    ("DTI_32dir", {"ScanningSequence": "EP\\SE"}, "dwi"),
    ("DWI_SENSE", {"ScanningSequence": "SE"}, "dwi"),
    ("ep2d_diff_mddw_30_ADC", {"ScanningSequence": "EP", "ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]}, None),
    ("gre_field_mapping", {"EchoNumber": 1, "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"]}, "fmap-magnitude1"),
    ("gre_field_mapping", {"EchoNumber": 2, "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"]}, "fmap-magnitude2"),
    ("gre_field_mapping", {"EchoNumber": 2, "ImageType": ["ORIGINAL", "PRIMARY", "P", "ND"]}, "fmap-phasediff"),
    ("SpinEchoFieldMap_AP", {"ScanningSequence": "EP", "PhaseEncodingDirection": "j-"}, "fmap-epi"),
]


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sidecars")
    series = []
    for number, (description, extra, _) in enumerate(CASES, start=1):
        sidecar = {"SeriesDescription": description, "ProtocolName": description, "SeriesNumber": number,
                   "ImageType": ORIGINAL, "AcquisitionTime": f"10:{number:02d}:00.000000", **extra}
        path = folder / f"{number:03d}.json"
        path.write_text(json.dumps(sidecar))
        series.append(Series(nifti=path.with_suffix(".nii.gz"), sidecar=path, extras=(), series_number=number,
                             series_description=description, protocol_name=description,
                             image_type=tuple(sidecar["ImageType"]), source_folders=("DICOM/2024/20240101/V1",)))
    day = VisitFolder("DICOM", "20240101", folder, "DICOM/2024/20240101/V1")
    visit = Visit("V1", (day,), (SourceFile(folder / "x.dcm", day),))
    extracted = ExtractedVisit(visit=visit, subject_label="P1", patient_key="k", staging=folder,
                               series=tuple(series), unconverted=(), non_dicom_files=0, problems=(),
                               converter_version="v1", converter_log="")
    return plan_visit(extracted, load_heuristic())


@pytest.mark.parametrize("number", range(1, len(CASES) + 1), ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_default_heuristic_places_what_mip_pipelines_take(plan, number):
    expected = CASES[number - 1][2]
    rules = {p.series.series_number: p.rule for p in plan.placements}
    assert rules.get(number) == expected, [o.reason for o in plan.not_placed if o.series.series_number == number]


def test_fieldmaps_point_to_the_bold(plan):
    phasediff = next(p for p in plan.placements if p.rule == "fmap-phasediff")
    bold = [p.relpath for p in plan.placements if p.rule == "bold-rest"]
    assert phasediff.sidecar["IntendedFor"] == [f"bids::sub-P1/ses-V1/{path}" for path in bold]
    epi = next(p for p in plan.placements if p.rule == "fmap-epi")
    assert "_dir-AP_epi" in epi.stem
