"""Synthetic hospital "Data Capture" export for demos and tests.

:func:`build_demo_export` writes a small, fully synthetic (no real data) export::

    <root>/DICOM/2024/<yyyymmdd>/<scan_research_id>/**/*.dcm
    <root>/EHR/2024/<yyyymmdd>/<table>.csv

Content (deterministic: two calls give byte-identical files):

* Day 20240311: visits ``V0001A`` (patient ``DEMO-001``, one sub-folder per series, plus a
  non-DICOM ``notes.txt``) and ``V0002-A`` (patient ``DEMO_002``, flat files).
* Day 20240312: visit ``V0001B`` (second visit of ``DEMO-001``, flat files).
* Every visit holds 4 classic single-frame MR series: 1 ``AAHead_Scout`` (3-plane localizer),
  2 ``T1_MPRAGE_SAG`` (3D, 1 mm isotropic, 64x64x48), 3 ``T2_FLAIR_AX`` (2D, 20 slices),
  4 ``fMRI_rest`` (2D EPI, 32x32x16, 5 volumes, TR 2 s).
* EHR: ``demographics.csv`` (wide, full snapshot each day; day 2 corrects the handedness of
  ``DEMO_002`` from L to R), ``cognitive_scores.csv`` (long, MMSE/MOCA, only new rows each day)
  and, on day 2, ``diagnosis.csv``. ``DEMO-003`` has EHR rows but no images.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

__all__ = ["DemoExport", "build_demo_export"]

_YEAR = "2024"
_PATIENTS: dict[str, tuple[str, str, str]] = {  # id -> (name, birth date, sex)
    "DEMO-001": ("Demo^Patient1", "19500615", "F"),
    "DEMO_002": ("Demo^Patient2", "19621102", "M"),
}
# (day, scan_research_id, patient id, study start hhmm, series in sub-folders)
_VISITS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("20240311", "V0001A", "DEMO-001", "0910", True),
    ("20240311", "V0002-A", "DEMO_002", "1030", False),
    ("20240312", "V0001B", "DEMO-001", "0845", False),
)
_EHR: dict[str, dict[str, str]] = {
    "20240311": {
        "demographics.csv": "patient_id,sex,age,handedness\n"
        "DEMO-001,F,73,R\nDEMO_002,M,61,L\nDEMO-003,F,68,R\n",
        "cognitive_scores.csv": "patient_id,scan_research_id,measurement,value,date\n"
        "DEMO-001,V0001A,MMSE,27,2024-03-11\nDEMO-001,V0001A,MOCA,24,2024-03-11\n"
        "DEMO_002,V0002-A,MMSE,29,2024-03-11\nDEMO_002,V0002-A,MOCA,27,2024-03-11\n"
        "DEMO-003,,MMSE,21,2024-03-08\nDEMO-003,,MOCA,17,2024-03-08\n",
    },
    "20240312": {
        "demographics.csv": "patient_id,sex,age,handedness\n"
        "DEMO-001,F,73,R\nDEMO_002,M,61,R\nDEMO-003,F,68,R\n",
        "cognitive_scores.csv": "patient_id,scan_research_id,measurement,value,date\n"
        "DEMO-001,V0001B,MMSE,26,2024-03-12\nDEMO-001,V0001B,MOCA,23,2024-03-12\n",
        "diagnosis.csv": "patient_id,diagnosis\nDEMO-001,MCI\nDEMO_002,CN\nDEMO-003,AD\n",
    },
}


@dataclass(frozen=True)
class DemoExport:
    """What :func:`build_demo_export` wrote."""

    root: Path
    patients: tuple[str, ...]  # raw PatientIDs used
    visits: tuple[str, ...]  # scan_research_ids used
    days: tuple[str, ...]  # yyyymmdd day folders used


@dataclass(frozen=True)
class _Series:
    """Acquisition parameters of one synthetic series (times in ms, lengths in mm)."""

    number: int
    description: str
    acq_type: str  # MRAcquisitionType
    iop: tuple[float, ...]  # ImageOrientationPatient (row dir, column dir)
    matrix: int  # rows == columns
    pixel: float  # in-plane spacing
    thickness: float
    n_slices: int
    tr: float
    te: float
    ti: float | None
    flip: float
    sequence: str
    variant: str
    contrast: tuple[int, int, int, int]  # scalp, cortex, white matter, ventricles
    volumes: int = 1


_AX = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
_SAG = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
_COR = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
_SERIES = (
    _Series(1, "AAHead_Scout", "2D", _SAG, 64, 4.0, 7.0, 3, 8.6, 4.0, None, 20.0,
            "GR", "SP", (500, 450, 600, 200)),
    _Series(2, "T1_MPRAGE_SAG", "3D", _SAG, 64, 1.0, 1.0, 48, 2300.0, 2.98, 900.0, 9.0,
            "GR\\IR", "SK\\SP\\MP", (600, 500, 800, 150)),
    _Series(3, "T2_FLAIR_AX", "2D", _AX, 64, 0.9, 5.0, 20, 9000.0, 81.0, 2500.0, 150.0,
            "SE\\IR", "SK\\SP\\MP", (500, 700, 550, 100)),
    _Series(4, "fMRI_rest", "2D", _AX, 32, 3.5, 3.5, 16, 2000.0, 30.0, None, 90.0,
            "EP", "SK\\SS", (300, 900, 700, 1000), volumes=5),
)
_SCOUT_PLANES = (_SAG, _COR, _AX)  # the scout has one slice per plane


def _uid(*parts: str) -> str:
    """Deterministic UID derived from ``parts``."""
    return generate_uid(entropy_srcs=["bids-factory-demo|" + "|".join(parts)])


def _normal(iop: tuple[float, ...]) -> np.ndarray:
    return np.cross(np.array(iop[:3]), np.array(iop[3:]))


def _slice_origin(s: _Series, iop: tuple[float, ...], offset: float) -> np.ndarray:
    """ImagePositionPatient of a slice centred on the isocentre, ``offset`` mm along the normal."""
    half = (s.matrix - 1) / 2 * s.pixel
    return -half * np.array(iop[:3]) - half * np.array(iop[3:]) + offset * _normal(iop)


def _head(s: _Series, iop: tuple[float, ...], origin: np.ndarray, seed: int) -> np.ndarray:
    """Sample a synthetic head (ellipsoid, cortex shell, ventricles) on one slice, in uint16."""
    idx = np.arange(s.matrix) * s.pixel
    r, c = np.meshgrid(idx, idx, indexing="ij")
    xyz = origin + c[..., None] * np.array(iop[:3]) + r[..., None] * np.array(iop[3:])
    radius = np.sqrt(((xyz / np.array([22.0, 28.0, 26.0])) ** 2).sum(-1))
    vent = np.sqrt((((np.abs(xyz) - [4.0, 2.0, 4.0]) / [3.0, 9.0, 5.0]) ** 2).sum(-1))
    scalp, cortex, wm, ventricles = s.contrast
    img = np.zeros(radius.shape)
    img[radius <= 1.0] = scalp
    img[radius <= 0.9] = cortex
    img[radius <= 0.75] = wm
    img[(vent <= 1.0) & (radius <= 0.75)] = ventricles
    noise = np.random.default_rng(seed).normal(0.0, 12.0, img.shape)
    return np.clip(img + noise + 20.0, 0, 4095).astype(np.uint16)


def _time(start_hhmm: str, seconds: float) -> str:
    """DICOM TM ``start_hhmm`` + ``seconds``."""
    total = int(start_hhmm[:2]) * 3600 + int(start_hhmm[2:]) * 60 + seconds
    h, rem = divmod(total, 3600)
    m, sec = divmod(rem, 60)
    return f"{int(h):02d}{int(m):02d}{sec:09.6f}"


def _age(birth: str, day: str) -> str:
    years = int(day[:4]) - int(birth[:4]) - (day[4:] < birth[4:])
    return f"{years:03d}Y"


def _series_files(day: str, visit: str, patient: str, start: str, s: _Series) -> list[Dataset]:
    """All single-frame datasets of series ``s`` for one visit."""
    study_uid = _uid(visit, "study")
    series_uid = _uid(visit, s.description, "series")
    series_time = _time(start, 300.0 * s.number)
    # 2D multi-slice series are acquired interleaved (0, 2, 4, ..., 1, 3, ...) within each TR;
    # dcm2niix derives SliceTiming from the per-slice AcquisitionTime of classic Siemens DICOM.
    order = [*range(0, s.n_slices, 2), *range(1, s.n_slices, 2)]
    interleaved = s.acq_type == "2D" and s.number != 1
    series = _series_constants(day, visit, patient, start, s, study_uid, series_uid, series_time)
    out: list[Dataset] = []
    for vol in range(s.volumes):
        for k in range(s.n_slices):
            inst = vol * s.n_slices + k + 1
            iop = _SCOUT_PLANES[k] if s.number == 1 else s.iop
            offset = 0.0 if s.number == 1 else (k - (s.n_slices - 1) / 2) * s.thickness
            ipp = _slice_origin(s, iop, offset)
            ds = Dataset(dict(series))  # the series' elements shared (never changed), the slice's own added
            ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
            ds.SOPInstanceUID = _uid(visit, s.description, str(inst))
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            slice_time = order.index(k) * s.tr / 1000.0 / s.n_slices if interleaved else 0.0
            ds.AcquisitionTime = _time(start, 300.0 * s.number + vol * s.tr / 1000.0 + slice_time)
            ds.AcquisitionNumber = vol + 1
            ds.InstanceNumber = inst
            ds.ImagePositionPatient = [round(float(v), 4) for v in ipp]
            ds.ImageOrientationPatient = list(iop)
            if s.volumes > 1:
                ds.TemporalPositionIdentifier = vol + 1
                ds.NumberOfTemporalPositions = s.volumes
            ds.SliceLocation = round(float(ipp @ _normal(iop)), 4)
            seed = zlib.crc32(f"{visit}|{s.number}|{inst}".encode())
            ds.PixelData = _head(s, iop, ipp, seed).tobytes()
            out.append(ds)
    return out


def _series_constants(day: str, visit: str, patient: str, start: str, s: _Series, study_uid: str,
                      series_uid: str, series_time: str) -> Dataset:
    """The elements every slice of series ``s`` shares (set once: pydicom's per-element checks are most of
    the demo's time)."""
    name, birth, sex = _PATIENTS[patient]
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.SOPClassUID = MRImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = day
    ds.StudyTime = _time(start, 0.0)
    ds.SeriesTime = ds.ContentTime = series_time
    ds.AccessionNumber = ""
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.ManufacturerModelName = "Prisma_fit"
    ds.InstitutionName = "Demo Memorial Hospital"
    ds.InstitutionalDepartmentName = "Radiology"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Research^Memory"
    ds.SeriesDescription = ds.ProtocolName = s.description
    ds.PatientName = name
    ds.PatientID = patient
    ds.PatientBirthDate = birth
    ds.PatientSex = sex
    ds.PatientAge = _age(birth, day)
    ds.BodyPartExamined = "HEAD"
    ds.ScanningSequence = s.sequence
    ds.SequenceVariant = s.variant
    ds.ScanOptions = ""
    ds.MRAcquisitionType = s.acq_type
    ds.SliceThickness = s.thickness
    ds.SpacingBetweenSlices = s.thickness
    ds.RepetitionTime = s.tr
    ds.EchoTime = s.te
    if s.ti is not None:
        ds.InversionTime = s.ti
    ds.NumberOfAverages = 1
    ds.ImagingFrequency = 123.25
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = 1
    ds.MagneticFieldStrength = 3
    ds.PixelBandwidth = 2290 if s.sequence == "EP" else 240
    ds.SoftwareVersions = "syngo MR E11"
    ds.FlipAngle = s.flip
    ds.InPlanePhaseEncodingDirection = "COL" if s.iop == _AX else "ROW"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = visit
    ds.SeriesNumber = s.number
    ds.FrameOfReferenceUID = _uid(visit, "frame")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = s.matrix
    ds.PixelSpacing = [s.pixel, s.pixel]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = 600
    ds.WindowWidth = 1200
    return ds


def build_demo_export(root: Path) -> DemoExport:
    """Write the synthetic export under ``root`` (created; must not exist or be empty).

    Raises:
        FileExistsError: if ``root`` exists and is not an empty directory.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"refusing to write the demo export: {root} is a file")
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"refusing to write the demo export into non-empty {root}")
    root.mkdir(parents=True, exist_ok=True)
    for day, visit, patient, start, nested in _VISITS:
        visit_dir = root / "DICOM" / _YEAR / day / visit
        for s in _SERIES:
            folder = visit_dir / f"{s.number:02d}_{s.description}" if nested else visit_dir
            folder.mkdir(parents=True, exist_ok=True)
            for ds in _series_files(day, visit, patient, start, s):
                ds.save_as(folder / f"IM_{s.number:02d}_{ds.InstanceNumber:04d}.dcm",
                           enforce_file_format=True)
        if nested:
            (visit_dir / "notes.txt").write_text(
                "Exported by Data Capture (synthetic demo). Not a DICOM file.\n", encoding="utf-8")
    for day, tables in _EHR.items():
        ehr_dir = root / "EHR" / _YEAR / day
        ehr_dir.mkdir(parents=True, exist_ok=True)
        for table, text in tables.items():
            (ehr_dir / table).write_text(text, encoding="utf-8", newline="")
    return DemoExport(
        root=root,
        patients=tuple(dict.fromkeys(v[2] for v in _VISITS)),
        visits=tuple(v[1] for v in _VISITS),
        days=tuple(dict.fromkeys(v[0] for v in _VISITS)),
    )

