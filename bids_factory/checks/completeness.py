"""Is a converted image complete? The DICOM headers, dcm2niix's report and the image it wrote must agree.

dcm2niix converts what it is given: one slice file missing from a 196-slice T1w still gives an image
(exit status 0, ``Error: Missing images`` only in its log). A series is placed only when

- its geometry shows no hole: per SeriesInstanceUID, echo and orientation, every slice position (along
  the slice normal) holds as many files as the others (one per volume), and no step between neighbouring
  positions is a multiple of the usual one; and no acquisition has fewer files than its
  ImagesInAcquisition (0020,1002). InstanceNumbers decide nothing: the standard does not make them
  sequential, and Philips numbers its files with regular gaps (16..1280 for 680 files);
- the images dcm2niix wrote hold as many slices x volumes as the DICOM files hold frames (one per
  single-frame image file, NumberOfFrames of a multi-frame file; mosaics: one volume per file). Non-image
  objects sharing the series (presentation states, raw data: :mod:`bids_factory.dicom.sop_classes`) are not
  frames, and the volume dcm2niix removes as the scanner's ADC/trace (its ``_ADC`` image holds the whole
  series, that volume included) is counted from that image;
- dcm2niix reported no missing image for it (its "Missing images" / "images may be missing" lines,
  attributed to the series whose file count they name; when several series have that count, all of them).

A series that fails is held back with the reason; a missing-image message that names no series of the
visit holds the whole visit back. When dcm2niix exits non-zero (disk full, unreadable file...), every
image it did write is read to the end (a half-written file is held back) and the visit is not recorded
as done, so the next run converts it again. Pure checks: nothing is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib

from bids_factory.dicom.image_header import ImageHeader
from bids_factory.extract.staged_images import ADC_SUFFIX, READ_ERRORS, VARIANT_STEM, image_stem, open_image

_MISSING = re.compile(r"Missing images|images may be missing", re.IGNORECASE)
_FOUND = re.compile(r"found (\d+) (?:slices|images)", re.IGNORECASE)


def missing_in_headers(images: tuple[ImageHeader, ...], mosaic: bool = False) -> str | None:
    """Why the image files of one series are not all there (by their headers), or None."""
    if not images or any(i.frames > 1 for i in images):
        return None  # multi-frame: one file is the whole series, checked against the image
    by_uid: dict[str, list[ImageHeader]] = {}
    for image in images:
        by_uid.setdefault(image.series_uid, []).append(image)
    for group in by_uid.values():
        reason = None if mosaic else missing_in_space(group)
        if reason:
            return reason
        if mosaic:
            continue  # a mosaic's ImagesInAcquisition counts the slices inside one file
        acquisitions: dict[int | None, int] = {}
        for image in group:
            acquisitions[image.acquisition] = acquisitions.get(image.acquisition, 0) + 1
        expected = {i.acquisition: i.images_in_acquisition for i in group if i.images_in_acquisition}
        for acquisition, count in acquisitions.items():
            wanted = expected.get(acquisition)
            if wanted and count < wanted:
                return (f"{wanted - count} of {wanted} slice files missing (ImagesInAcquisition {wanted}, "
                        f"{count} files)")
    return None


def missing_in_space(group: list[ImageHeader]) -> str | None:
    """A hole in space or time among single-frame files of one series: per echo and orientation, a slice
    position with fewer files than the others (a volume lacks it), or a step between neighbouring
    positions at least 1.5 times the usual one (a slice lacks in every volume)."""
    stacks: dict[tuple, dict[float, int]] = {}
    for image in group:
        where = image.slice_position()
        if where is None:
            return None  # no geometry: the image and dcm2niix's report decide
        counts = stacks.setdefault((image.echo, where[0]), {})
        counts[where[1]] = counts.get(where[1], 0) + 1
    for counts in stacks.values():
        volumes = max(counts.values())
        short = {d: c for d, c in counts.items() if c < volumes}
        if short:
            lacking = sum(volumes - c for c in short.values())
            first = min(short)
            return (f"{lacking} of {volumes * len(counts)} slice files missing (the slice at {first:g} mm along "
                    f"the slice normal is in {short[first]} of {volumes} volumes)")
        positions = sorted(counts)
        steps = [b - a for a, b in zip(positions, positions[1:])]
        if len(steps) >= 2:
            usual = sorted(steps)[(len(steps) - 1) // 2]
            wide = [(a, b) for a, b in zip(positions, positions[1:]) if usual > 0 and b - a >= 1.5 * usual]
            if wide:
                missing = sum(round((b - a) / usual) - 1 for a, b in wide)
                a, b = wide[0]
                return (f"{missing} of {len(positions) + missing} slice positions missing (none between {a:g} and "
                        f"{b:g} mm along the slice normal; slices are {usual:g} mm apart elsewhere)")
    return None


def image_planes(nifti: Path) -> int:
    """Slices x volumes of a NIfTI image (a 2D image is one)."""
    shape = nib.load(nifti).shape
    planes = 1
    for size in shape[2:]:
        planes *= max(int(size), 1)
    return planes


def unreadable_image(nifti: Path) -> str | None:
    """Why a NIfTI file is cut short (read to its end), or None."""
    try:
        with open_image(nifti) as handle:
            while handle.read(1 << 20):
                pass
        image = nib.load(nifti)
        image.dataobj[..., -1] if len(image.shape) > 2 else image.dataobj[:]
    except (*READ_ERRORS, ValueError) as exc:
        return f"the image is cut short ({type(exc).__name__}: {exc})"
    return None


@dataclass(frozen=True)
class Completeness:
    """The verdict on one converted visit."""

    incomplete: dict  # nifti path (str) -> reason
    unattributed: tuple[str, ...]  # dcm2niix missing-image messages that name no series of the visit


def check_visit(series, series_images: dict, converter_log: str, converter_exit: int) -> Completeness:
    """Compare, for every converted DICOM series, its headers, its image and dcm2niix's report."""
    by_number: dict = {}
    for one in series:
        if one.nifti is not None and one.series_number in series_images:
            by_number.setdefault(one.series_number, []).append(one)
    incomplete: dict[str, str] = {}
    for number, converted in by_number.items():
        images = series_images[number]
        mosaic = any(i.mosaic for i in images)
        reason = missing_in_headers(images, mosaic)
        if reason is None:
            reason = _planes_missing(converted, images, mosaic)
        if reason is None and converter_exit != 0:
            reason = next((f"dcm2niix exited {converter_exit} and {r}"
                           for r in (unreadable_image(s.nifti) for s in converted) if r), None)
        if reason:
            for one in converted:
                incomplete[str(one.nifti)] = reason
    unattributed = []
    for line in (raw.strip() for raw in converter_log.splitlines()):
        if not _MISSING.search(line):
            continue
        found = _FOUND.search(line)
        candidates = [n for n, images in series_images.items()
                      if found and len(images) == int(found.group(1))]
        if any(str(s.nifti) in incomplete for n in candidates for s in by_number.get(n, ())):
            continue  # already held back by the checks above
        held = [n for n in candidates if n in by_number]
        for number in held:  # several series of that many files: any could be the partial one, none is placed
            for one in by_number[number]:
                incomplete[str(one.nifti)] = f"dcm2niix: {line}" + (
                    "" if len(held) == 1 else f" ({len(held)} series have that many files: each is held back)")
        if not held and not incomplete:
            unattributed.append(line)
    return Completeness(incomplete=incomplete, unattributed=tuple(unattributed))


def _planes_missing(converted, images: tuple[ImageHeader, ...], mosaic: bool) -> str | None:
    """The image(s) hold fewer slices x volumes than the DICOM files hold frames."""
    main = [s for s in converted if not VARIANT_STEM.search(image_stem(s.nifti))]
    if not main:
        return None
    whole = [s.nifti.with_name(image_stem(s.nifti) + ADC_SUFFIX + ".nii") for s in main]
    if not mosaic and any(path.exists() for path in whole):  # dcm2niix removed the ADC/trace volume
        planes = sum(image_planes(w if w.exists() else s.nifti) for s, w in zip(main, whole))
        expected = sum(i.frames for i in images)
        if planes < expected:
            return (f"the image holds {planes} slices x volumes (its ADC/trace volume included) but the series "
                    f"has {expected} DICOM frames ({expected - planes} missing)")
        return None
    if mosaic:
        volumes = sum(int(nib.load(s.nifti).shape[3]) if len(nib.load(s.nifti).shape) > 3 else 1 for s in main)
        expected = len(images)
        what = "volumes"
    else:
        volumes = sum(image_planes(s.nifti) for s in main)
        expected = sum(i.frames for i in images)
        what = "slices x volumes"
    if volumes < expected:
        return (f"the image holds {volumes} {what} but the series has {expected} DICOM frames "
                f"({expected - volumes} missing)")
    return None
