"""EPI is read from each vendor's own markers, never from dcm2niix's Estimated* keys. The rows are the keys
dcm2niix v1.0.20260724 writes for series of ../shared/dicom (one per kind of series) and for the Philips
reference sidecars of neurolabusc/dcm_qa_fmap and dcm_qa_philips."""

from __future__ import annotations

import pytest

from bids_factory.plan.epi import is_epi

ESTIMATED = {"EstimatedEffectiveEchoSpacing": 2.56e-06, "EstimatedTotalReadoutTime": 0.0001613}
CASES = [  # (what, sidecar keys, EPI?)
    ("Siemens XA30 bold", {"Manufacturer": "Siemens", "ScanningSequence": "EP", "SequenceVariant": "SK\\SS",
                           "SequenceName": "epfid2d1_64", "MRAcquisitionType": "2D"}, True),
    ("Siemens XA30 dwi", {"Manufacturer": "Siemens", "ScanningSequence": "EP", "SequenceName": "epse2d1_72"}, True),
    ("Siemens XA without ScanningSequence", {"Manufacturer": "Siemens", "PulseSequenceName": "epfid2d1_64"}, True),
    ("Siemens mosaic EPI", {"Manufacturer": "Siemens", "ScanningSequence": "EP", "SequenceName": "*epfid2d1_64"}, True),
    ("Siemens MPRAGE", {"Manufacturer": "Siemens", "ScanningSequence": "GR\\IR", "SequenceVariant": "SK\\SP\\MP",
                        "SequenceName": "*tfl3d1_16ns", "MRAcquisitionType": "3D"}, False),
    ("Siemens GRE field map", {"Manufacturer": "Siemens", "ScanningSequence": "GR", "SequenceVariant": "SP",
                               "SequenceName": "*fm2d2r", "MRAcquisitionType": "2D", "PhaseEncodingDirection": "j-"},
     False),
    ("GE fMRI", {"Manufacturer": "GE", "ScanningSequence": "EP\\GR", "SequenceName": "epiRT",
                 "InternalPulseSequenceName": "EPI", "ScanOptions": "EPI_GEMS\\PFF"}, True),
    ("GE DWI, ImageType OTHER", {"Manufacturer": "GE", "ScanningSequence": "EP\\SE", "SequenceName": "epi2",
                                 "ImageType": ["ORIGINAL", "PRIMARY", "OTHER"]}, True),
    ("GE SPGR T1", {"Manufacturer": "GE", "ScanningSequence": "GR", "SequenceVariant": "SS\\SP\\SK",
                    "SequenceName": "efgre3d", "ScanOptions": "FAST_GEMS\\EDR_GEMS\\ACC_GEMS"}, False),
    ("GE MP-RAGE", {"Manufacturer": "GE", "ScanningSequence": "RM\\IR", "SequenceName": "MP-RAGE"}, False),
    ("GE B0map with TotalReadoutTime", {"Manufacturer": "GE", "ScanningSequence": "RM", "TotalReadoutTime": 0.145,
                                        "Units": "Hz"}, False),
    ("Toshiba DTI", {"Manufacturer": "Toshiba", "ScanningSequence": "SE\\EP", "SequenceName": "SEEPI2D+0.7"}, True),
    ("Philips DTI", {"Manufacturer": "Philips", "ScanningSequence": "SE", "SequenceVariant": "SK",
                     "SequenceName": "DwiSE", "EchoTrainLength": 31, **ESTIMATED}, True),
    ("Philips source pCASL", {"Manufacturer": "Philips", "ScanningSequence": "GR", "SequenceVariant": "SK",
                              "SequenceName": "FEEPI", **ESTIMATED}, True),
    ("Philips classic FE-EPI, no sequence name", {"Manufacturer": "Philips", "ScanningSequence": "GR",
                                                  "SequenceVariant": "SK", "MRAcquisitionType": "2D",
                                                  "EchoTrainLength": 39}, True),
    ("Philips 3D T1 TFE", {"Manufacturer": "Philips", "ScanningSequence": "GR", "SequenceVariant": "SK",
                           "SequenceName": "T1TFE", "MRAcquisitionType": "3D", **ESTIMATED}, False),
    ("Philips B0 map (FFE)", {"Manufacturer": "Philips", "ScanningSequence": "RM", "SequenceVariant": "SS",
                              "MRAcquisitionType": "3D", **ESTIMATED}, False),
    ("Philips 2D TSE", {"Manufacturer": "Philips", "ScanningSequence": "SE", "SequenceVariant": "SK",
                        "MRAcquisitionType": "2D", "EchoTrainLength": 16, **ESTIMATED}, False),
]


@pytest.mark.parametrize("what,sidecar,epi", CASES, ids=[c[0] for c in CASES])
def test_epi_is_read_from_the_vendor_markers(what, sidecar, epi):
    assert is_epi(sidecar) is epi
