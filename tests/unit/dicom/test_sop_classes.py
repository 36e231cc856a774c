"""What a PACS or CD export carries beside the images is known by its SOP Class UID and never counted as an image."""

from __future__ import annotations

import pytest
from pydicom.uid import UID

from bids_factory.dicom.sop_classes import MEDIA_DIRECTORY, non_image_kind


@pytest.mark.parametrize("uid, kind", [
    (MEDIA_DIRECTORY, "DICOMDIR"),
    ("1.2.840.10008.5.1.4.1.1.11.1", "presentation state"),  # Grayscale Softcopy Presentation State
    ("1.2.840.10008.5.1.4.1.1.88.22", "structured report"),  # Enhanced SR
    ("1.2.840.10008.5.1.4.1.1.66", "raw data"),
    ("1.2.840.10008.5.1.4.1.1.66.4", "segmentation"),
    ("1.2.840.10008.5.1.4.1.1.104.1", "encapsulated document"),  # Encapsulated PDF
    ("1.3.46.670589.11.0.0.12.4", "Philips private non-image"),  # spectrum, series data, ExamCard
    (" 1.3.12.2.1107.5.9.1 ", "Siemens CSA"),  # padded as a header may give it
])
def test_non_image_objects_are_named(uid, kind):
    assert kind in non_image_kind(uid)


@pytest.mark.parametrize("uid", [
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.1104",  # not the encapsulated family: a family is matched at a dot only
    "1.2.840.10008.5.1.4.1.1.660",  # not raw data: "...66" is one exact UID, "...66." a family
    "1.3.46.670589.11.0.0.51.4.1",  # Philips private that may carry pixels: left to dcm2niix
    "1.3.12.2.1107.5.9.11",
    "", None,
])
def test_images_and_unknown_classes_are_not_non_images(uid):
    assert non_image_kind(uid) is None


def test_the_families_agree_with_pydicoms_uid_names():
    for uid, words in [("1.2.840.10008.5.1.4.1.1.11.1", "Presentation State"), ("1.2.840.10008.5.1.4.1.1.88.11", "SR"),
                       ("1.2.840.10008.5.1.4.1.1.104.1", "Encapsulated PDF"), ("1.2.840.10008.5.1.4.1.1.66", "Raw Data")]:
        assert words in UID(uid).name and non_image_kind(uid) is not None
    assert "Image" in UID("1.2.840.10008.5.1.4.1.1.4").name and non_image_kind("1.2.840.10008.5.1.4.1.1.4") is None
