"""dcm2niix's log as the visit's record keeps it: no folder of the host that converted the visit."""

from __future__ import annotations

from pathlib import Path

from bids_factory.extract.dicom_visit import portable_log


def test_the_staging_folder_reads_staging_and_a_folder_read_directly_reads_as_its_export_path():
    staging = Path("/mnt/site-3/bids/code/bids-factory/staging/run-x1/visit-00002")
    direct = Path("/mnt/site-3/export/DICOM/2024/20240312/V0001B")
    log = (f"Convert 48 DICOM as {staging}/output/2_T1_MPRAGE_SAG (64x64x48x1)\n"
           f"Warning: Unable to determine slice order for {direct}/series2/IM_0003.dcm\n"
           f"Error: not a DICOM image {staging}/input/000007.dcm\n")
    assert portable_log(log, staging, (direct, "DICOM/2024/20240312/V0001B")) == (
        "Convert 48 DICOM as <staging>/output/2_T1_MPRAGE_SAG (64x64x48x1)\n"
        "Warning: Unable to determine slice order for DICOM/2024/20240312/V0001B/series2/IM_0003.dcm\n"
        "Error: not a DICOM image <staging>/input/000007.dcm\n")
    assert portable_log(log, staging) == log.replace(str(staging), "<staging>")  # linked input: no direct folder


def test_a_folder_reached_through_a_link_is_taken_out_as_given_and_as_resolved(tmp_path):
    (tmp_path / "disk" / "staging").mkdir(parents=True)
    (tmp_path / "mount").symlink_to(tmp_path / "disk")
    staging = tmp_path / "mount" / "staging"
    log = f"Convert 1 DICOM as {staging}/output/a (1x1x1x1)\nConvert 1 DICOM as {staging.resolve()}/output/b (1x1x1x1)\n"
    assert portable_log(log, staging) == ("Convert 1 DICOM as <staging>/output/a (1x1x1x1)\n"
                                          "Convert 1 DICOM as <staging>/output/b (1x1x1x1)\n")
