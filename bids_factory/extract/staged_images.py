"""Images in the run's staging folder: plain NIfTI until planned, gzipped only when they will be placed.

dcm2niix is asked for plain ``.nii`` (``-z n``): its own gzip (zlib level 6) is about three quarters of
its run time (1.35 s of 1.8 s on the XA30 visit), and it would compress every series, including the
scanner-derived maps and unmatched series that are never placed. So the converter writes plain files, the
checks read them without decompressing (header text, completeness, thumbnails by memory map), and once a
visit is planned, the worker gzips the images it will place with ISA-L (``isal.igzip``, the gzip format
at about ten times zlib's speed: 0.13 s instead of 1.35 s on that visit, files about 7 % larger than
zlib level 6). A NIfTI export's already gzipped image is staged byte for byte and never recompressed.
Nothing here touches the dataset: the writer moves the gzipped files into place.
"""

from __future__ import annotations

import dataclasses
import os
import re
import zlib
from pathlib import Path
from typing import IO

from isal import igzip, isal_zlib

from bids_factory.model import VisitPlan

GZIP_MAGIC = b"\x1f\x8b"
COMPRESS_LEVEL = 2  # ISA-L levels are 0-3; 2 is its default (its 3 is twice slower for 0.3 % less)
_CHUNK = 1 << 22
VARIANT_STEM = re.compile(r"_(Eq|Tilt|Crop)_\d+$|_ROI\d+$")  # dcm2niix's re-sampled copies of one series
STAGED_IMAGE_SUFFIXES = (".nii.gz", ".nii")
READ_ERRORS = (OSError, EOFError, zlib.error, isal_zlib.error)  # a file cut short or damaged
VARIANT_STEM = re.compile(r"_(Eq|Tilt|Crop)_\d+$|_ROI\d+$")  # dcm2niix's re-sampled copies of one series
ADC_SUFFIX = "_ADC"  # dcm2niix: the whole DWI series, with the ADC/trace volume it removed from the DWI


def image_stem(path: Path) -> str:
    """``x/sub-1_T1w.nii.gz`` or ``x/sub-1_T1w.nii`` -> ``sub-1_T1w``."""
    name = path.name
    for suffix in STAGED_IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def is_gzipped(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_image(path: Path) -> IO[bytes]:
    """The image's bytes, decompressed when it is gzipped (by its magic bytes, never its name)."""
    return igzip.open(path, "rb") if is_gzipped(path) else open(path, "rb")


def gzip_file(source: IO[bytes], target: Path) -> int:
    """Write the stream ``source`` gzipped (ISA-L, no name or time in the gzip header: the same bytes give
    the same file) to ``target`` through a temporary name; the number of bytes read."""
    tmp = target.with_name(target.name + ".part")
    size = 0
    with open(tmp, "wb") as raw, igzip.IGzipFile(filename="", mode="wb", fileobj=raw,
                                                  compresslevel=COMPRESS_LEVEL, mtime=0) as writer:
        while chunk := source.read(_CHUNK):
            writer.write(chunk)
            size += len(chunk)
    os.replace(tmp, target)
    return size


def gzipped(image: Path) -> Path:
    """The staged ``image`` as ``<stem>.nii.gz``: a plain file is compressed (and removed), a gzipped one
    is returned as it is."""
    if image.name.endswith(".nii.gz") and is_gzipped(image):
        return image
    target = image.with_name(image_stem(image) + ".nii.gz")
    with open(image, "rb") as source:
        gzip_file(source, target)
    image.unlink()
    return target


def gzip_placed_images(plan: VisitPlan) -> VisitPlan:
    """The plan with every image it places gzipped in staging (the series it does not place stay plain
    and are removed with the staging folder)."""
    done: dict[Path, Path] = {}
    placements = []
    for placement in plan.placements:
        source = placement.series.nifti
        if source not in done:
            done[source] = gzipped(source)
        placements.append(dataclasses.replace(
            placement, series=dataclasses.replace(placement.series, nifti=done[source])))
    return dataclasses.replace(plan, placements=tuple(placements))

