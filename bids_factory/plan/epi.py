"""Is an image echo-planar? Each vendor says so in its own words; dcm2niix passes them on.

What dcm2niix writes (v1.0.20260724, its source and the dcm_qa reference sidecars; checked against every
series of ``../shared/dicom``):

- Siemens (pre-XA), GE, Canon/Toshiba: ``ScanningSequence`` holds ``EP`` (``EP``, ``EP\\GR``, ``SE\\EP``).
- Siemens: ``SequenceName`` ``*epfid2d1_64``, ``*ep_b1000``, ``epse2d1_72`` (XA: the name, without ``*``,
  comes from PulseSequenceName and may be written under either key).
- GE: ``SequenceName``/``PulseSequenceName`` ``epi``, ``epiRT``, ``epi2``, ``epi_pepolar``;
  ``InternalPulseSequenceName`` ``EPI``/``EPI2``; ``ScanOptions`` ``EPI_GEMS``.
- Canon/Toshiba: ``SequenceName`` ``SEEPI2D+0.7``.
- Philips: never ``EP`` in ScanningSequence (only ``GR``/``SE``); the sequence name is ``FEEPI``, ``SEEPI``
  or ``DwiSE`` where the export carries one (0018,9005). Older classic exports carry none: a 2D gradient
  echo with segmented k-space (``SequenceVariant`` ``SK``) and an echo train is Philips' FE-EPI.
- ``PulseSequenceType`` (recent dcm2niix) says ``... EPI`` where ScanningSequence holds EP.

NOT markers: ``EstimatedEffectiveEchoSpacing``/``EstimatedTotalReadoutTime`` (dcm2niix writes them for
every Philips image with a WaterFatShift: a 3D T1 TFE and an FFE field map have them), ``TotalReadoutTime``
(GE writes it for its non-EPI B0 map), ``PhaseEncodingDirection`` (every 2D image), ``EchoTrainLength``
alone (a turbo spin echo has one).
"""

from __future__ import annotations

from bids_factory.plan.series_facts import words

_SEQUENCE_NAME_KEYS = ("SequenceName", "PulseSequenceName", "InternalPulseSequenceName")


def _epi_sequence_name(name: str) -> bool:
    name = name.strip().lstrip("*").lower()
    return name.startswith("ep") or "epi" in name or name == "dwise"


def _philips_classic_fe_epi(sidecar: dict) -> bool:
    """A Philips classic export without a sequence name: 2D gradient echo, segmented k-space, echo train."""
    try:
        train = int(sidecar.get("EchoTrainLength") or 0)
    except (TypeError, ValueError):
        train = 0
    return (str(sidecar.get("Manufacturer", "")).lower().startswith("philips")
            and not any(sidecar.get(key) for key in _SEQUENCE_NAME_KEYS)
            and "GR" in words(sidecar.get("ScanningSequence")) and "SK" in words(sidecar.get("SequenceVariant"))
            and str(sidecar.get("MRAcquisitionType", "")).upper() == "2D" and train > 1)


def is_epi(sidecar: dict) -> bool:
    """The image was read out echo-planar, by the markers of its vendor (see the module docstring)."""
    if "EP" in words(sidecar.get("ScanningSequence")):
        return True
    if any(_epi_sequence_name(str(sidecar.get(key) or "")) for key in _SEQUENCE_NAME_KEYS):
        return True
    if "EPI_GEMS" in words(sidecar.get("ScanOptions")) or "EPI" in str(sidecar.get("PulseSequenceType", "")):
        return True
    if {"FMRI", "EPI"} & words(sidecar.get("ImageType")):  # Siemens XA fMRI, GE fMRI
        return True
    return _philips_classic_fe_epi(sidecar)
