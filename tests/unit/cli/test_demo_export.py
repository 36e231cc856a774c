"""Tests for the synthetic Data Capture export, checked with the real dcm2niix."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import nibabel as nib
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from bids_factory.cli.demo_export import DemoExport, build_demo_export

EXPECTED_VISITS = {  # scan_research_id -> (day, PatientID)
    "V0001A": ("20240311", "DEMO-001"),
    "V0002-A": ("20240311", "DEMO_002"),
    "V0001B": ("20240312", "DEMO-001"),
}


def _dcm2niix() -> str:
    """The converter from the dcm2niix wheel, a dependency of the package (never skipped)."""
    import dcm2niix

    return dcm2niix.bin


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory, new_demo) -> DemoExport:
    """A copy of the session's demo export (``conftest.new_demo``: ``build_demo_export`` run once)."""
    return new_demo(tmp_path_factory.mktemp("demo") / "export")


@pytest.fixture(scope="module")
def converted(
    export: DemoExport, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, str]]:
    """dcm2niix output folder and console log of every visit."""
    exe = _dcm2niix()
    out: dict[str, tuple[Path, str]] = {}
    for visit, (day, _) in EXPECTED_VISITS.items():
        dest = tmp_path_factory.mktemp(f"nii_{visit}")
        src = export.root / "DICOM" / day[:4] / day / visit
        proc = subprocess.run(
            [exe, "-b", "y", "-ba", "n", "-z", "y", "-f", "%s_%p", "-o", str(dest), str(src)],
            capture_output=True, text=True, check=True)
        out[visit] = (dest, proc.stdout + proc.stderr)
    return out


def _sidecar(folder: Path, stem: str) -> dict:
    return json.loads((folder / f"{stem}.json").read_text())


def test_structure_matches_dataclass(export: DemoExport) -> None:
    assert export.patients == ("DEMO-001", "DEMO_002")
    assert export.visits == tuple(EXPECTED_VISITS)
    assert export.days == ("20240311", "20240312")
    dicom_days = sorted(p.name for p in (export.root / "DICOM" / "2024").iterdir())
    ehr_days = sorted(p.name for p in (export.root / "EHR" / "2024").iterdir())
    assert dicom_days == ehr_days == list(export.days)
    found = {(d.parent.name, d.name) for d in (export.root / "DICOM" / "2024").glob("*/*")}
    assert found == {(day, v) for v, (day, _) in EXPECTED_VISITS.items()}
    nested = export.root / "DICOM/2024/20240311/V0001A"
    assert (nested / "notes.txt").is_file()
    assert sorted(p.name for p in nested.iterdir() if p.is_dir()) == [
        "01_AAHead_Scout", "02_T1_MPRAGE_SAG", "03_T2_FLAIR_AX", "04_fMRI_rest"]
    size = sum(len(b) for b in _files(export.root).values())
    assert size < 5_000_000


def test_dicom_files_are_valid_part10_with_visit_patient(export: DemoExport) -> None:
    non_dicom = []
    for visit, (day, patient) in EXPECTED_VISITS.items():
        files = [p for p in (export.root / "DICOM/2024" / day / visit).rglob("*") if p.is_file()]
        dcm = [p for p in files if p.suffix == ".dcm"]
        non_dicom += [p.name for p in files if p.suffix != ".dcm"]
        assert len(dcm) == 3 + 48 + 20 + 16 * 5
        for path in dcm:
            assert path.read_bytes()[128:132] == b"DICM"
            ds = pydicom.dcmread(path)
            assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
            assert ds.SOPClassUID == MRImageStorage == ds.file_meta.MediaStorageSOPClassUID
            assert ds.PatientID == patient
            assert ds.StudyID == visit and ds.StudyDate == day
            assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
    assert non_dicom == ["notes.txt"]


@pytest.mark.parametrize("visit", list(EXPECTED_VISITS))
def test_dcm2niix_conversion(visit: str, converted: dict[str, tuple[Path, str]]) -> None:
    folder, log = converted[visit]
    bad = [line for line in log.splitlines()
           if any(w in line.lower() for w in ("warning", "spacing", "uniform", "error"))]
    assert bad == [], log

    t1 = nib.load(folder / "2_T1_MPRAGE_SAG.nii.gz")
    # dcm2niix reports 64x64x48 and stores the sagittal stack slice-first
    assert "(64x64x48x1)" in log
    assert t1.shape == (48, 64, 64)
    assert tuple(float(z) for z in t1.header.get_zooms()) == (1.0, 1.0, 1.0)
    side = _sidecar(folder, "2_T1_MPRAGE_SAG")
    assert side["MRAcquisitionType"] == "3D"
    assert side["RepetitionTime"] == pytest.approx(2.3)
    assert side["InversionTime"] == pytest.approx(0.9)
    assert side["SeriesDescription"] == "T1_MPRAGE_SAG"
    assert {"ORIGINAL", "PRIMARY"} <= set(side["ImageType"])
    assert side["PatientID"] == EXPECTED_VISITS[visit][1]

    bold = nib.load(folder / "4_fMRI_rest.nii.gz")
    assert bold.shape == (32, 32, 16, 5)
    side = _sidecar(folder, "4_fMRI_rest")
    assert side["RepetitionTime"] == pytest.approx(2.0)
    assert len(side["SliceTiming"]) == 16 and max(side["SliceTiming"]) < 2.0

    flair = nib.load(folder / "3_T2_FLAIR_AX.nii.gz")
    assert flair.shape == (64, 64, 20)
    side = _sidecar(folder, "3_T2_FLAIR_AX")
    assert side["MRAcquisitionType"] == "2D"
    assert side["RepetitionTime"] == pytest.approx(9.0)

    scouts = sorted(folder.glob("1_AAHead_Scout*.nii.gz"))
    assert len(scouts) == 3  # one image per plane, never stacked


def test_ehr_tables(export: DemoExport) -> None:
    def rows(day: str, table: str) -> list[dict[str, str]]:
        with open(export.root / "EHR/2024" / day / table, encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))

    day1, day2 = export.days
    demo1, demo2 = rows(day1, "demographics.csv"), rows(day2, "demographics.csv")
    ehr_patients = {r["patient_id"] for r in demo1}
    assert set(export.patients) < ehr_patients and "DEMO-003" in ehr_patients
    changed = [(a, b) for a, b in zip(demo1, demo2) if a != b]
    assert len(changed) == 1
    assert sum(a[k] != b[k] for a, b in changed for k in a) == 1
    scores = rows(day1, "cognitive_scores.csv") + rows(day2, "cognitive_scores.csv")
    assert {r["measurement"] for r in scores} == {"MMSE", "MOCA"}
    assert {r["scan_research_id"] for r in scores} - {""} == set(export.visits)
    assert not (export.root / "EHR/2024" / day1 / "diagnosis.csv").exists()
    assert {r["diagnosis"] for r in rows(day2, "diagnosis.csv")} <= {"AD", "CN", "MCI", "Other"}


def test_deterministic(export: DemoExport, tmp_path: Path) -> None:
    again = build_demo_export(tmp_path / "again")
    assert again.patients == export.patients and again.visits == export.visits
    assert _files(again.root) == _files(export.root)


def test_refuses_non_empty_root(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="non-empty"):
        build_demo_export(tmp_path / "root")
    assert [p.name for p in (tmp_path / "root").iterdir()] == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    assert build_demo_export(tmp_path / "empty").root == tmp_path / "empty"
