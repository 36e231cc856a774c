"""Pictures for the visual report: the middle slices of a NIfTI image side by side, as grayscale PNGs.

Two sizes of one picture (:func:`pictures`): the thumbnail the subject page shows and the larger one its
click-to-enlarge view opens. numpy and nibabel read the slices; Pillow resamples (Lanczos), letters the
edges (an antialiased font shipped with Pillow) and encodes the PNG.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

THUMBNAIL_SIZE = 256  # panel height of the thumbnail shown on a subject page, in pixels
ENLARGED_SIZE = 512  # panel height of the click-to-enlarge picture (JPEG: 5 ms where PNG takes 50-150 ms)
MEAN_VOLUMES = 12  # a 4D image is shown as the mean of at most this many volumes (memory: one volume at a time)
_MAX_ASPECT = 4  # a panel is at most 4x wider than high (a single-slice image would be a thin line)
_OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}


def pictures(nifti: Path) -> Pictures:
    """The report's two pictures of ``nifti``: the slices are read once."""
    slices = _Slices.read(Path(nifti))
    return Pictures(slices.picture(THUMBNAIL_SIZE, "PNG"), slices.picture(ENLARGED_SIZE, "JPEG"))


def thumbnail_png(nifti: Path, size: int = THUMBNAIL_SIZE) -> bytes:
    """Sagittal, coronal and axial middle slices of ``nifti`` side by side, as 8-bit grayscale PNG bytes.

    - 4D (or more) images: the temporal mean of at most :data:`MEAN_VOLUMES` volumes spread evenly over
      the series (what people look at; a single volume of some sequences is nearly black); 2D images are
      treated as one slice.
    - Oriented as ``nib.as_closest_canonical`` would (RAS+), shown the way viewers such as nilearn do:
      superior at the top of the sagittal and coronal panels, anterior at the top of the axial panel,
      anterior to the right in the sagittal panel, the subject's right on the right (neurological
      convention) in the coronal and axial panels. Each panel's edges carry their direction letters.
    - Intensities clipped to the 1st-99th percentile of the three slices shown and scaled to 0-255.
    - Each panel is ``size`` pixels high; its width keeps the physical aspect (voxel sizes), capped at
      4x ``size``. Panels are separated by a black gap.

    The bytes are a function of the image data and ``size`` only (deterministic).
    """
    return _Slices.read(Path(nifti)).picture(size, "PNG")


@dataclass(frozen=True)
class Pictures:
    """The report's pictures of a placed image (``VisitPlan.thumbnails``): the thumbnail a subject page shows
    (PNG) and the enlarged view its click opens (JPEG), written as ``<name>.png`` and ``<name>.jpg``."""

    thumbnail: bytes
    enlarged: bytes


@dataclass(frozen=True)
class _Slices:
    panels: tuple[np.ndarray, np.ndarray, np.ndarray]  # scaled to 0-1, rows top->bottom, cols left->right
    mm: tuple[tuple[float, float], ...]  # (row mm, column mm) of each panel
    letters: tuple[tuple[str, str, str, str], ...]  # (left, right, top, bottom) of each panel

    @classmethod
    def read(cls, path: Path) -> _Slices:
        (sagittal, coronal, axial), (dx, dy, dz), codes = _middle_slices_ras(path)
        lo, hi = _window(np.concatenate([sagittal.ravel(), coronal.ravel(), axial.ravel()]))

        def scaled(panel: np.ndarray) -> np.ndarray:
            return np.clip((panel - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(panel)

        views = [(sagittal, dz, dy, (1, 2)), (coronal, dz, dx, (0, 2)), (axial, dy, dx, (0, 1))]
        return cls(tuple(scaled(panel).T[::-1] for panel, *_ in views),
                   tuple((row_mm, col_mm) for _, row_mm, col_mm, _ in views),
                   tuple((_OPPOSITE[codes[c]], codes[c], codes[r], _OPPOSITE[codes[r]]) for *_, (c, r) in views))

    def picture(self, size: int, kind: str) -> bytes:
        """PNG (lossless, zlib level 1: 256 px in a few ms) or JPEG (quality 90) bytes, ``size`` px high."""
        gap = max(1, size // 32)
        images = [_panel(panel, row_mm, col_mm, size, letters)
                  for panel, (row_mm, col_mm), letters in zip(self.panels, self.mm, self.letters)]
        canvas = Image.new("L", (sum(i.width for i in images) + 2 * gap, size), 0)
        left = 0
        for image in images:
            canvas.paste(image, (left, 0))
            left += image.width + gap
        out = BytesIO()
        canvas.save(out, format=kind, **({"compress_level": 1} if kind == "PNG" else {"quality": 90}))
        return out.getvalue()


def _panel(panel: np.ndarray, row_mm: float, col_mm: float, size: int, letters: tuple[str, ...]) -> Image.Image:
    """One panel resampled to ``size`` rows (Lanczos; width from the physical aspect), its edges lettered."""
    rows, cols = panel.shape
    width = min(max(round(size * (cols * col_mm) / (rows * row_mm)), 1), _MAX_ASPECT * size)
    image = Image.fromarray(np.rint(panel * 255).astype(np.uint8), mode="L")
    image = image.resize((width, size), Image.Resampling.LANCZOS)
    if size >= 64:  # letters need room
        _letter(image, letters, size)
    return image


def _letter(image: Image.Image, letters: tuple[str, ...], size: int) -> None:
    """The direction letters (white, a black outline) in the middle of each edge, in place."""
    font = _font(max(9, size // 14))
    draw = ImageDraw.Draw(image)
    stroke = max(1, size // 128)
    w, h = image.size
    pad = stroke + 1
    for letter, anchor, xy in zip(letters, ("lm", "rm", "mt", "mb"),
                                  ((pad, h / 2), (w - pad, h / 2), (w / 2, pad), (w / 2, h - pad))):
        left, top, right, bottom = draw.textbbox(xy, letter, font=font, anchor=anchor, stroke_width=stroke)
        if right - left + 2 * pad > w or bottom - top + 2 * pad > h:
            continue
        draw.text(xy, letter, fill=255, font=font, anchor=anchor, stroke_width=stroke, stroke_fill=0)


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _middle_slices_ras(path: Path) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray],
                                             tuple[float, float, float], tuple[str, str, str]]:
    """The middle sagittal, coronal and axial slices in RAS+ orientation (float64, NaN/inf -> 0) of the 3D
    image or of the mean of up to :data:`MEAN_VOLUMES` volumes of a 4D one, the voxel sizes in mm along R,
    A, S and the direction each axis points to (``aff2axcodes`` of the canonical affine).

    Volumes are read one at a time (a plain staged image is memory-mapped) and only their three slices are
    kept: memory stays that of one volume whatever the series' length.
    """
    image = nib.load(path)
    shape = image.shape
    ornt = nib.orientations.io_orientation(image.affine)
    if len(shape) > 3:
        count = int(np.prod(shape[3:]))
        chosen = np.unique(np.linspace(0, count - 1, min(count, MEAN_VOLUMES)).round().astype(int))
        volumes = (np.asanyarray(image.dataobj[(slice(None),) * 3 + np.unravel_index(t, shape[3:])])
                   for t in chosen)
    else:
        chosen = [0]
        volumes = iter([np.asanyarray(image.dataobj).reshape(tuple(shape) + (1,) * (3 - len(shape)))])
    total, affine = None, None
    for data in volumes:
        volume = nib.orientations.apply_orientation(data, ornt)
        if affine is None:
            affine = image.affine @ nib.orientations.inv_ornt_aff(ornt, data.shape)
        x, y, z = (n // 2 for n in volume.shape)
        slices = [_clean(volume[x, :, :]), _clean(volume[:, y, :]), _clean(volume[:, :, z])]
        total = slices if total is None else [a + b for a, b in zip(total, slices)]
    zooms = tuple(float(v) if v > 0 else 1.0 for v in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    mean = tuple(s / len(chosen) for s in total)
    return mean, zooms, tuple(nib.orientations.aff2axcodes(affine))


def _clean(panel: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(panel, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def _window(volume: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(volume, [1, 99]) if volume.size else (0.0, 0.0)
    if hi <= lo:  # nearly constant image: use the full range so a mask or label image still shows
        lo, hi = float(volume.min(initial=0.0)), float(volume.max(initial=0.0))
    return float(lo), float(hi)
