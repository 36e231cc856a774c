"""The free-text fields of a staged NIfTI header are read and blanked where nibabel says they are."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np

from bids_factory.nifti_text import blank_text_fields, header_texts


def _image(path, **texts):
    image = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    for name, text in texts.items():
        image.header[name] = text.encode()
    nib.save(image, path)
    return path


def test_every_text_field_is_read_and_blanked_at_its_own_place(tmp_path):
    path = _image(tmp_path / "a.nii.gz", db_name="DOE^JANE 1234567", descrip="TE=30;Time=101010",
                  aux_file="MRN 7654321", intent_name="JANE")
    assert header_texts(path) == {"db_name": "DOE^JANE 1234567", "descrip": "TE=30;Time=101010",
                                  "aux_file": "MRN 7654321", "intent_name": "JANE"}
    voxels = np.asanyarray(nib.load(path).dataobj).copy()
    assert sorted(blank_text_fields(path, lambda text: "JANE" in text or "MRN" in text)) == [
        "aux_file", "db_name", "intent_name"]
    header = nib.load(path).header
    assert header["db_name"].item() == b"" and header["aux_file"].item() == b"" and header["intent_name"].item() == b""
    assert header["descrip"].item() == b"TE=30;Time=101010"  # not an identifier: kept
    assert header["sizeof_hdr"] == 348 and header.get_data_dtype() == np.int16  # neighbours untouched
    assert np.array_equal(np.asanyarray(nib.load(path).dataobj), voxels)
    with gzip.open(path, "rb") as handle:
        assert b"DOE" not in handle.read(352) and b"7654321" not in gzip.open(path).read(352)
