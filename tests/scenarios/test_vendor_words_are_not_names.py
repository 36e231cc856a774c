"""A word of a person's name may be a vendor's word ("Philips", "DTI", "T1", "SE", "Siemens", "EP"): it never changes what is
placed. Only free text (SeriesDescription, ProtocolName, ImageComments...) is searched for identifiers; a
vendor's controlled vocabulary (Manufacturer, SequenceName, ScanningSequence...) is not a name."""

from __future__ import annotations

import json
import shutil

import pydicom
import pytest

from bids_factory.privacy.deidentify import Deidentification, keep_allowed
from bids_factory.privacy.identifier_match import VisitIdentifiers
from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import TEST_HEURISTICS, TRANSFER_SYNTAXES, assert_valid_bids

EPI = TRANSFER_SYNTAXES / "1.dcm"  # a Siemens mosaic EPI volume: SIEMENS, EP, SK, ORIGINAL/PRIMARY/M/ND/MOSAIC


def _visit_with_patient_name(export, name: str | None):
    """The Siemens EPI volume with another PatientName, written into the test's own export."""
    folder = export / "DICOM" / "2024" / "20240105" / "SIEMENS1" / "epi"
    folder.mkdir(parents=True)
    if name is None:
        shutil.copy(EPI, folder / EPI.name)
        return folder
    ds = pydicom.dcmread(EPI)
    ds.PatientName = name
    ds.save_as(folder / EPI.name)
    return folder


@pytest.mark.realdata
def test_a_patient_named_like_the_vendor_and_the_sequence_changes_no_placement(tmp_path):
    placed = {}
    # vendor, sequence and common words: Manufacturer, ScanningSequence, SequenceVariant, ImageType; "asc" is
    # also a word of the series' free text (ax_asc_35sl)
    for label, name in (("plain", None), ("vendor", "Siemens^EP SK^Original Primary Mosaic ND Asc")):
        export, bids = tmp_path / label / "export", tmp_path / label / "bids"
        _visit_with_patient_name(export, name)
        report = convert(ConvertOptions(export=export, bids=bids, heuristic=TEST_HEURISTICS / "transfer_syntaxes.json",
                                        validate=False))
        assert not report.failed, report.problems
        [sidecar_path] = bids.glob("sub-*/ses-*/anat/*_T2starw.json")
        placed[label] = (sidecar_path.name, json.loads(sidecar_path.read_text()))
        assert_valid_bids(bids)
    assert placed["vendor"][0] == placed["plain"][0]
    plain, vendor = placed["plain"][1], placed["vendor"][1]
    assert (vendor["Manufacturer"], vendor["ScanningSequence"], vendor["SequenceVariant"]) == ("Siemens", "EP", "SK")
    assert vendor["ImageType"] == plain["ImageType"]
    free_text = {"SeriesDescription", "ProtocolName"}
    assert {k: v for k, v in vendor.items()} == {k: v for k, v in plain.items() if k not in free_text}
    # free text holding a word of the name ("ax_asc_35sl") is still dropped
    assert free_text <= set(plain) and not free_text & set(vendor)


def test_free_text_is_searched_and_a_vendor_vocabulary_is_not():
    identifiers = VisitIdentifiers(patient_id="P1", ids=frozenset({"P1"}), names=frozenset({"philips", "t1", "the"}))
    sidecar = {"Manufacturer": "Philips", "ManufacturersModelName": "Ingenia", "ScanningSequence": "GR",
               "SequenceName": "T1", "PulseSequenceType": "Gradient Echo", "MRAcquisitionType": "3D",
               "SeriesDescription": "T1 3D", "ProtocolName": "the t1", "ImageComments": "Philips demo"}
    record = Deidentification()
    kept = keep_allowed(sidecar, "anat", "T1w", identifiers, keep_site_fields=True, record=record)
    assert {k: kept[k] for k in ("Manufacturer", "SequenceName", "ScanningSequence")} == {
        "Manufacturer": "Philips", "SequenceName": "T1", "ScanningSequence": "GR"}
    assert not {"SeriesDescription", "ProtocolName", "ImageComments"} & set(kept)
    assert sorted(record.identifier_keys) == ["ImageComments", "ProtocolName", "SeriesDescription"]
