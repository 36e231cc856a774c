"""The free-text fields of a staged NIfTI header are read and blanked where nibabel says they are."""

from __future__ import annotations

import gzip
import struct

import nibabel as nib
import numpy as np

from bids_factory.extract.nifti_text import blank_text_fields, header_texts


def _image(path, **texts):
    image = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    for name, text in texts.items():
        image.header[name] = text.encode()
    nib.save(image, path)
    return path


def test_every_text_field_is_read_and_blanked_at_its_own_place(tmp_path):
    path = _image(tmp_path / "a.nii.gz", db_name="DOE^JANE 1234567", descrip="TE=30;Time=101010",
                  aux_file="MRN 7654321", intent_name="JANE")
    assert header_texts(path) == {"data_type": "", "db_name": "DOE^JANE 1234567", "descrip": "TE=30;Time=101010",
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


def test_the_unused_nifti1_text_fields_are_blanked_whatever_they_hold(tmp_path):
    """data_type (10 bytes) and db_name (18), ANALYZE leftovers nothing reads: blanked even when the caller
    finds nothing in them (a name nobody listed may be there)."""
    path = _image(tmp_path / "a.nii", descrip="TE=30", db_name="ward 7")
    with open(path, "r+b") as image:
        image.seek(4)
        image.write(b"SMITH".ljust(10, b"\0"))
    assert header_texts(path)["data_type"] == "SMITH"
    assert sorted(blank_text_fields(path, lambda text: False)) == ["data_type", "db_name"]
    assert header_texts(path) == {"data_type": "", "db_name": "", "descrip": "TE=30", "aux_file": "",
                                  "intent_name": ""}
    assert b"SMITH" not in path.read_bytes()


def test_plain_header_text_is_blanked_in_place(tmp_path):
    path = _image(tmp_path / "a.nii", descrip="TE=30;Time=101010", aux_file="DOE^JANE")
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


def test_an_extension_of_megabytes_is_blanked_too(tmp_path):
    """A whole DICOM header (with its private blocks) may be megabytes: blanked, never a failed visit."""
    payload = b"(0010,0010) PN DOE^JANE " + b"x" * (3 << 20)
    for name, compress in (("big.nii", False), ("big.nii.gz", True)):
        path = _with_extension(tmp_path / name, payload, compress)
        voxels = np.asanyarray(nib.load(path).dataobj).copy()
        assert blank_text_fields(path, lambda text: False) == ["extensions"]
        raw = gzip.decompress(path.read_bytes()) if compress else path.read_bytes()
        assert b"DOE" not in raw and b"xxxx" not in raw
        after = nib.load(path)
        assert len(after.header.extensions) == 0 and np.array_equal(np.asanyarray(after.dataobj), voxels)
