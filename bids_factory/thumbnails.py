"""Thumbnails for the visual report: the middle slices of a NIfTI image as one small grayscale PNG.

The PNG is encoded here with ``zlib`` + ``struct`` (signature, IHDR, IDAT, IEND; CRCs by ``zlib.crc32``):
it is a dozen lines, and bids-factory deliberately has no imaging library (no Pillow, no matplotlib) to
install on hospital hosts and in the container. Only numpy and nibabel are used.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_ASPECT = 4  # a panel is at most 4x wider than high (a single-slice image would be a thin line)


def thumbnail_png(nifti: Path, size: int = 128) -> bytes:
    """Sagittal, coronal and axial middle slices of ``nifti`` side by side, as 8-bit grayscale PNG bytes.

    - 4D (or more) images: the first volume; 2D images are treated as one slice.
    - Oriented with ``nib.as_closest_canonical`` (RAS+), then shown the way viewers such as nilearn do:
      superior at the top of the sagittal and coronal panels, anterior at the top of the axial panel,
      anterior to the right in the sagittal panel, the subject's right on the right (neurological
      convention) in the coronal and axial panels.
    - Intensities clipped to the 1st-99th percentile of the volume and scaled to 0-255.
    - Each panel is ``size`` pixels high; its width keeps the physical aspect (voxel sizes), capped at
      4x ``size``; nearest-neighbour resampling (numpy indexing). Panels are separated by a black gap.

    The bytes are a function of the image data and ``size`` only (deterministic).
    """
    volume, zooms = _first_volume_ras(Path(nifti))
    lo, hi = _window(volume)
    scaled = np.clip((volume - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(volume)
    gray = np.rint(scaled * 255).astype(np.uint8)
    x, y, z = (n // 2 for n in gray.shape)
    dx, dy, dz = zooms
    panels = [
        _resize(gray[x, :, :].T[::-1], dz, dy, size),  # sagittal: rows superior->inferior, cols P->A
        _resize(gray[:, y, :].T[::-1], dz, dx, size),  # coronal: rows S->I, cols subject's left->right
        _resize(gray[:, :, z].T[::-1], dy, dx, size),  # axial: rows anterior->posterior, cols L->R
    ]
    gap = np.zeros((size, max(1, size // 32)), dtype=np.uint8)
    return encode_png(np.hstack([panels[0], gap, panels[1], gap, panels[2]]))


def _first_volume_ras(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The first 3D volume in RAS+ orientation (float64, NaN/inf -> 0) and its voxel sizes in mm.

    Only the first volume is read from disk, then reoriented (a long 4D series is never loaded whole).
    """
    image = nib.load(path)
    shape = image.shape
    if len(shape) > 3:
        data = np.asanyarray(image.dataobj[(slice(None),) * 3 + (0,) * (len(shape) - 3)])
    else:
        data = np.asanyarray(image.dataobj).reshape(tuple(shape) + (1,) * (3 - len(shape)))
    canonical = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data, dtype=np.float64), image.affine))
    volume = np.nan_to_num(np.asarray(canonical.dataobj, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    zooms = tuple(float(v) if v > 0 else 1.0 for v in canonical.header.get_zooms()[:3])
    return volume, zooms


def _window(volume: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(volume, [1, 99]) if volume.size else (0.0, 0.0)
    if hi <= lo:  # nearly constant image: use the full range so a mask or label image still shows
        lo, hi = float(volume.min(initial=0.0)), float(volume.max(initial=0.0))
    return float(lo), float(hi)


def _resize(panel: np.ndarray, row_mm: float, col_mm: float, size: int) -> np.ndarray:
    """Nearest-neighbour resampling to ``size`` rows, width from the physical aspect ratio."""
    rows, cols = panel.shape
    width = round(size * (cols * col_mm) / (rows * row_mm))
    width = min(max(width, 1), _MAX_ASPECT * size)
    row_index = np.minimum(((np.arange(size) + 0.5) * rows / size).astype(np.intp), rows - 1)
    col_index = np.minimum(((np.arange(width) + 0.5) * cols / width).astype(np.intp), cols - 1)
    return panel[np.ix_(row_index, col_index)]


def encode_png(gray: np.ndarray) -> bytes:
    """8-bit grayscale PNG (colour type 0, no interlace, filter type 0 on every row) of a 2D uint8 array."""
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    height, width = gray.shape
    raw = np.hstack([np.zeros((height, 1), dtype=np.uint8), gray]).tobytes()  # each row: filter byte 0

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))
