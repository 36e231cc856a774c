"""Siemens XA classic DICOM: each volume of a series has its own SeriesNumber (7001, 7002...).

dcm2niix merges them into one image named 7001; the other numbers are not "series of which dcm2niix
made no image". Built from the GE multiband fMRI (3 volumes of 48 slices) rewritten with pydicom as
XA classic: Manufacturer SIEMENS, software XA30, one SeriesNumber and SeriesInstanceUID per volume.
"""

from __future__ import annotations

import nibabel as nib
import pydicom
import pytest

from bids_factory.run.pipeline import ConvertOptions, convert
from bids_factory.report.summary import summary_lines
from conftest import SHARED_DICOM, assert_valid_bids

pytestmark = pytest.mark.realdata

FMRI = SHARED_DICOM / "ge_session" / "In" / "SliceTiming" / "14_Ax_fMRI_HB3_48sl_int_asc"


def _xa_classic_export(root):
    visit = root / "DICOM" / "2024" / "20240105" / "XA01"
    for path in sorted(FMRI.iterdir()):
        ds = pydicom.dcmread(path)
        volume = (int(ds.InstanceNumber) - 1) // 48
        ds.Manufacturer = "SIEMENS"
        ds.SoftwareVersions = "syngo MR XA30"
        ds.SeriesNumber = 7001 + volume
        ds.SeriesInstanceUID = f"{ds.SeriesInstanceUID}.{volume + 1}"
        ds.SeriesDescription = ds.ProtocolName = "func-bold_task-motor"
        folder = visit / f"{7001 + volume}"
        folder.mkdir(parents=True, exist_ok=True)
        ds.save_as(folder / path.name)
    # A series dcm2niix makes no image of stays reported: a DICOM without pixel data
    report = pydicom.dcmread(next(FMRI.iterdir()))
    del report.PixelData
    report.SeriesNumber, report.SeriesInstanceUID = 99, report.SeriesInstanceUID + ".99"
    report.SeriesDescription = "PhoenixZIPReport"
    (visit / "99").mkdir()
    report.save_as(visit / "99" / "report.dcm")


def test_volumes_with_their_own_series_number_are_one_converted_series(tmp_path):
    _xa_classic_export(tmp_path / "export")
    report = convert(ConvertOptions(export=tmp_path / "export", bids=tmp_path / "bids", validate=False))
    [visit] = report.visits
    [bold] = (tmp_path / "bids").rglob("*_task-motor_bold.nii.gz")
    assert nib.load(bold).shape[3] == 3
    assert [(o.series.series_number, o.status) for o in visit.not_placed] == [(99, "not-converted")]
    [line] = [line for line in summary_lines(report) if line.startswith("series: ")]
    counts = line.split(";")[0]
    assert counts == "series: 1 placed, 0 held back, 0 unmatched, 1 without image"
    page = (tmp_path / "bids" / "code" / "bids-factory" / "report.html").read_text()
    assert f"<br />{counts}<br />" in page  # the report page's "Last run" counts are the summary's
    assert_valid_bids(tmp_path / "bids")
