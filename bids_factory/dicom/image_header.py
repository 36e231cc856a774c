"""What one DICOM image file says about its place in its series (read in the header pass, checked by
:mod:`bids_factory.checks.completeness`): its series, numbers, frames, and its geometry (where its slice
lies, along which normal, at which echo)."""

from __future__ import annotations

from dataclasses import dataclass

COMPLETENESS_TAGS = ("SOPClassUID", "SeriesInstanceUID", "AcquisitionNumber", "InstanceNumber", "EchoNumbers",
                     "ImagePositionPatient", "ImageOrientationPatient", "ImagesInAcquisition", "NumberOfFrames")


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _floats(value, count: int) -> tuple[float, ...] | None:
    """A DICOM multi-value (pydicom's list, or the header reader's backslash-separated text) as floats."""
    try:
        items = str(value).split("\\") if isinstance(value, str) else list(value or ())
        numbers = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None


@dataclass(frozen=True)
class ImageHeader:
    """What one DICOM file says about its place in its series."""

    series_uid: str
    acquisition: int | None
    instance: int | None
    frames: int  # NumberOfFrames (1 for a single-frame file)
    images_in_acquisition: int | None
    mosaic: bool = False  # Siemens mosaic: one file is one volume of many slices
    position: tuple[float, float, float] | None = None  # ImagePositionPatient
    orientation: tuple[float, ...] | None = None  # ImageOrientationPatient (row, column direction cosines)
    echo: int | None = None  # EchoNumbers

    @classmethod
    def read(cls, ds) -> "ImageHeader":
        return cls(series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
                   acquisition=_int(ds.get("AcquisitionNumber")),
                   instance=_int(ds.get("InstanceNumber")),
                   frames=max(_int(ds.get("NumberOfFrames")) or 1, 1),
                   images_in_acquisition=_int(ds.get("ImagesInAcquisition")),
                   mosaic="MOSAIC" in [str(v).upper() for v in (ds.get("ImageType") or ())],
                   position=_floats(ds.get("ImagePositionPatient"), 3),
                   orientation=_floats(ds.get("ImageOrientationPatient"), 6),
                   echo=_int(ds.get("EchoNumbers")))

    def slice_position(self) -> tuple[tuple, float] | None:
        """(rounded orientation, distance along the slice normal in mm), or None without geometry."""
        if self.position is None or self.orientation is None:
            return None
        row, column = self.orientation[:3], self.orientation[3:]
        normal = (row[1] * column[2] - row[2] * column[1], row[2] * column[0] - row[0] * column[2],
                  row[0] * column[1] - row[1] * column[0])
        return (tuple(round(v, 3) for v in self.orientation),
                round(sum(p * n for p, n in zip(self.position, normal)), 2))
