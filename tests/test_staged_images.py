"""Staged images: dcm2niix writes plain NIfTI, only the images a visit places are gzipped (ISA-L), and the
header checks read plain and gzipped images alike."""

from __future__ import annotations

import gzip
import struct

import nibabel as nib
import numpy as np

from bids_factory.discover import discover
from bids_factory.nifti_text import blank_text_fields, header_texts
from bids_factory.pipeline import ConvertOptions, Rules, extract_and_plan
from bids_factory.staged_images import gzipped, image_stem


def _plain_image(path, **texts):
    image = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    for name, text in texts.items():
        image.header[name] = text.encode()
    nib.save(image, path)
    return path


def test_a_plain_image_is_gzipped_without_a_byte_changed_and_reproducibly(tmp_path):
    plain = _plain_image(tmp_path / "a.nii")
    content = plain.read_bytes()
    packed = gzipped(plain)
    assert packed == tmp_path / "a.nii.gz" and not plain.exists()
    raw = packed.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and gzip.decompress(raw) == content  # any gzip reader reads it
    plain.write_bytes(content)
    assert gzipped(plain).read_bytes() == raw  # no time or name in the gzip header: same bytes again
    assert gzipped(packed) == packed and packed.read_bytes() == raw  # already gzipped: left as it is
    assert image_stem(packed) == image_stem(tmp_path / "a.nii") == "a"


def test_only_the_images_a_visit_places_are_gzipped(xa30_export, tmp_path):
    options = ConvertOptions(export=xa30_export, bids=tmp_path / "bids")
    visit = discover(xa30_export).visits[0]
    plan = extract_and_plan(visit, tmp_path / "staging", Rules.load(options), options)
    placed = {p.series.nifti for p in plan.placements}
    assert len(placed) >= 6
    for image in placed:
        assert image.name.endswith(".nii.gz") and image.read_bytes()[:2] == b"\x1f\x8b"
        assert not image.with_name(image_stem(image) + ".nii").exists()
        assert nib.load(image).shape  # readable as NIfTI
    staged = {p for p in (tmp_path / "staging").rglob("*.nii*") if p.is_file()}
    not_placed = staged - placed
    # the scanner-derived maps (ADC, FA, TRACEW...) are converted and checked, never compressed
    assert len(not_placed) >= 8 and all(p.name.endswith(".nii") for p in not_placed)
    assert set(plan.thumbnails) == {p.relpath for p in plan.placements}  # pictured before compression


def test_plain_header_text_is_blanked_in_place(tmp_path):
    path = _plain_image(tmp_path / "a.nii", descrip="TE=30;Time=101010", aux_file="DOE^JANE")
    voxels = path.read_bytes()[352:]
    assert header_texts(path)["aux_file"] == "DOE^JANE"
    assert blank_text_fields(path, lambda text: "JANE" in text) == ["aux_file"]
    assert b"DOE" not in path.read_bytes() and path.read_bytes()[352:] == voxels
    assert header_texts(path)["descrip"] == "TE=30;Time=101010"


def _with_extension(path, payload: bytes, compress: bool):
    """A NIfTI-1 file with one header extension (code 2, DICOM: what some converters embed)."""
    image = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    padded = payload + b"\0" * (-(len(payload) + 8) % 16)
    image.header.extensions.append(nib.nifti1.Nifti1Extension(2, padded))
    plain = path.with_name(path.name.removesuffix(".gz"))
    nib.save(image, plain)
    if compress:
        path.write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
    return path


def test_header_extensions_are_blanked_plain_and_gzipped(tmp_path):
    for name, compress in (("x.nii", False), ("y.nii.gz", True)):
        path = _with_extension(tmp_path / name, b"(0010,0010) PN DOE^JANE", compress)
        before = nib.load(path)
        original = gzip.decompress(path.read_bytes()) if compress else path.read_bytes()
        assert len(before.header.extensions) == 1
        voxels = np.asanyarray(before.dataobj).copy()
        assert blank_text_fields(path, lambda text: False) == ["extensions"]  # whatever it holds
        raw = gzip.decompress(path.read_bytes()) if compress else path.read_bytes()
        assert b"DOE" not in raw and raw[348:352] == b"\0\0\0\0"
        after = nib.load(path)
        assert len(after.header.extensions) == 0 and np.array_equal(np.asanyarray(after.dataobj), voxels)
        assert raw[108:112] == original[108:112] and struct.unpack("<f", raw[108:112])[0] > 352  # not moved
        assert raw[:348] == original[:348] and raw[384:] == original[384:]  # only the extension blanked
