"""Staged images: dcm2niix writes plain NIfTI, only the images a visit places are gzipped (ISA-L), and the
header checks read plain and gzipped images alike."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np

from bids_factory.discover.visits import discover
from bids_factory.run.batches import convert_visit
from bids_factory.run.pipeline import ConvertOptions
from bids_factory.run.rules import Rules
from bids_factory.extract.staged_images import gzipped, image_stem


def test_a_plain_image_is_gzipped_without_a_byte_changed_and_reproducibly(tmp_path):
    plain = tmp_path / "a.nii"
    nib.save(nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4)), plain)
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
    plan = convert_visit(visit, tmp_path / "staging", Rules.load(options), options)
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
    assert set(plan.thumbnails) == {p.session_path for p in plan.placements}  # pictured before compression
