"""DICOM objects that are not images: what a PACS or CD/DVD export carries beside the images.

Recognised by their SOP Class UID (0008,0016), or for a DICOMDIR by its Media Storage SOP Class UID
(0002,0002) in the file meta group, as dcm2niix does (nii_dicom.cpp, "isRawDataStorage"). They are not
frames of any image: never given to dcm2niix, never counted when an image's completeness is checked, never
a failure. Sources: DICOM PS3.6 (pydicom's UID dictionary) and dcm2niix's Philips/README "Non-Image DICOMs".
Philips ``1.3.46.670589.11.0.0.51.4.x`` objects may carry pixels: they are not listed here.
"""

from __future__ import annotations

MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR: the index of a CD/DVD export

# (UID, or a UID family ending in "."), what it is
_NON_IMAGE = (
    (MEDIA_DIRECTORY, "DICOMDIR (the index of a CD/DVD export)"),
    ("1.2.840.10008.5.1.4.1.1.11.", "presentation state"),
    ("1.2.840.10008.5.1.4.1.1.88.", "structured report"),
    ("1.2.840.10008.5.1.4.1.1.66", "raw data"),
    ("1.2.840.10008.5.1.4.1.1.66.", "raw data, registration or segmentation"),
    ("1.2.840.10008.5.1.4.1.1.104.", "encapsulated document (PDF/CDA)"),
    ("1.3.46.670589.11.0.0.12.", "Philips private non-image object (spectrum, series data, ExamCard)"),
    ("1.3.12.2.1107.5.9.1", "Siemens CSA non-image object (PhoenixZIPReport, physiology log)"),
)


def non_image_kind(sop_class_uid: str) -> str | None:
    """What a non-image DICOM object is, from its SOP Class UID; ``None`` for an image (or an unknown class)."""
    uid = str(sop_class_uid or "").strip()
    for known, kind in _NON_IMAGE:
        if uid == known or (known.endswith(".") and uid.startswith(known)):
            return kind
    return None
