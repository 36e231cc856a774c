"""The NIfTI + JSON export variant goes through the same plan -> write -> finalize path as DICOM."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import dcm2niix
import nibabel as nib
import numpy as np
import pydicom
import pytest

from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import TEST_HEURISTICS, XA30, add_series, assert_valid_bids, fingerprint

pytestmark = pytest.mark.realdata

HEURISTIC = TEST_HEURISTICS / "xa30_reproin.json"
# keys that say how the sidecar was made, not what the image is
CONVERSION_KEYS = {"ConversionSoftware", "ConversionSoftwareVersion", "Dcm2bidsVersion"}


def _nifti_export(root: Path, day: str, visit: str, series_dirs: list[Path]) -> Path:
    """What a hospital's NIfTI export looks like: dcm2niix without anonymisation, images as .nifti."""
    out = root / "NIFTI" / day[:4] / day / visit
    out.mkdir(parents=True)
    for series in series_dirs:
        subprocess.run([dcm2niix.bin, "-b", "y", "-ba", "n", "-z", "n", "-f", "%s_%p", "-o", str(out), str(series)],
                       check=True, capture_output=True)
    for image in out.glob("*.nii"):
        image.rename(image.with_suffix(".nifti"))
    return out


def _dataset_images(bids: Path) -> dict[str, Path]:
    return {p.relative_to(bids).as_posix(): p for p in bids.glob("sub-*/ses-*/*/*.nii.gz")}


@pytest.fixture(scope="module")
def both_routes(tmp_path_factory):
    work = tmp_path_factory.mktemp("routes")
    wanted = [p for p in sorted(XA30.iterdir()) if p.is_dir() and p.name.split("_")[0] in {"7", "8", "9", "10"}]
    dicom_export = work / "dicom-export"
    for series in wanted:
        add_series(dicom_export, "20240105", "VISIT01", series)
    nifti_export = work / "nifti-export"
    _nifti_export(nifti_export, "20240105", "VISIT01", wanted)
    before = fingerprint(nifti_export)
    dicom_report = convert(ConvertOptions(export=dicom_export, bids=work / "bids-dicom", heuristic=HEURISTIC,
                                          validate=False))
    nifti_report = convert(ConvertOptions(export=nifti_export, bids=work / "bids-nifti", heuristic=HEURISTIC,
                                          validate=False))
    return work, dicom_report, nifti_report, before, nifti_export


def test_nifti_export_gives_the_same_dataset_as_dicom(both_routes):
    work, dicom_report, nifti_report, _, _ = both_routes
    assert not dicom_report.failed and not nifti_report.failed
    dicom_images, nifti_images = _dataset_images(work / "bids-dicom"), _dataset_images(work / "bids-nifti")
    assert sorted(nifti_images) == sorted(dicom_images) and len(dicom_images) == 5
    for name, path in dicom_images.items():
        a, b = nib.load(path), nib.load(nifti_images[name])
        assert np.array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj)), name
        assert np.allclose(a.affine, b.affine), name
        sidecar_a = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        sidecar_b = json.loads(nifti_images[name].with_name(path.name.replace(".nii.gz", ".json")).read_text())
        assert {k: v for k, v in sidecar_a.items() if k not in CONVERSION_KEYS} == \
               {k: v for k, v in sidecar_b.items() if k not in CONVERSION_KEYS}, name
    assert_valid_bids(work / "bids-nifti")


def test_nifti_route_leaks_no_patient_field_and_keeps_the_export(both_routes):
    work, _, _, before, nifti_export = both_routes
    header = pydicom.dcmread(next(XA30.glob("7_*/*")), stop_before_pixels=True)
    raw = [json.loads(p.read_text()) for p in nifti_export.rglob("*.json")]
    assert all(r.get("PatientName") for r in raw)  # the export's JSON does carry patient fields
    secrets = [str(header.PatientName), header.PatientBirthDate, header.PatientID, header.InstitutionName]
    for path in (work / "bids-nifti").rglob("*"):
        if path.is_file() and path.suffix in {".json", ".tsv"}:
            text = path.read_text()
            assert not [s for s in secrets if s in text], path
    assert fingerprint(nifti_export) == before


def test_one_visit_exported_as_dicom_then_as_nifti_is_one_session(tmp_path):
    series = {p.name.split("_")[0]: p for p in XA30.iterdir() if p.is_dir()}
    export = tmp_path / "export"
    add_series(export, "20240105", "VISIT01", series["7"])
    _nifti_export(export, "20240106", "VISIT01", [series["8"], series["9"]])
    report = convert(ConvertOptions(export=export, bids=tmp_path / "bids", heuristic=HEURISTIC, validate=False))
    assert [(v.status, v.placed) for v in report.visits] == [("placed", 4)]
    names = sorted(p.name for p in (tmp_path / "bids").glob("sub-12343hucheng/ses-VISIT01/*/*.nii.gz"))
    assert names == ["sub-12343hucheng_ses-VISIT01_magnitude1.nii.gz", "sub-12343hucheng_ses-VISIT01_magnitude2.nii.gz",
                     "sub-12343hucheng_ses-VISIT01_phasediff.nii.gz", "sub-12343hucheng_ses-VISIT01_task-fa_bold.nii.gz"]
    assert_valid_bids(tmp_path / "bids")


def test_nifti_bad_pairs_are_reported_and_patient_field_option(tmp_path):
    series = {p.name.split("_")[0]: p for p in XA30.iterdir() if p.is_dir()}
    export = tmp_path / "export"
    visit = _nifti_export(export, "20240105", "VISIT01", [series["7"], series["8"]])
    next(visit.glob("8_*e1.json")).unlink()  # an image without its JSON
    for sidecar in visit.glob("*.json"):  # the hospital names the patient field differently
        data = json.loads(sidecar.read_text())
        data["ResearchPatient"] = data.pop("PatientID")
        sidecar.write_text(json.dumps(data))
    report = convert(ConvertOptions(export=export, bids=tmp_path / "bids", heuristic=HEURISTIC))
    assert report.visits[0].status == "failed"
    assert any("no patient id field in the JSON" in p.reason for p in report.problems)
    assert report.validator_errors == 0
    report = convert(ConvertOptions(export=export, bids=tmp_path / "bids", heuristic=HEURISTIC,
                                    nifti_patient_field="ResearchPatient"))
    assert report.visits[0].status == "placed" and not report.failed  # an orphan image is a note, as for DICOM
    [problem] = [p for p in report.problems if p.path.endswith("e1.nifti")]
    assert not problem.fatal and "JSON" in problem.reason

