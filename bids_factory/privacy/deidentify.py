"""De-identification of placed sidecars by ALLOW-list: a key is kept only when it is known to be safe.

A placed sidecar (dcm2niix's, a hospital's NIfTI JSON, after a heuristic's ``sidecar_changes``) keeps:

1. the keys the official BIDS schema (``bidsschematools``, the schema as data) defines for its
   datatype and suffix: every field named by a ``rules.sidecars`` rule whose selectors can apply to
   that datatype/suffix (selectors on sidecar values, entities or extensions are taken as "may apply");
2. :data:`TECHNICAL_KEYS`: a short, named list of dcm2niix keys that pipelines or our own sidecar
   schemas read (matching fields, acquisition and timing details BIDS does not define).

Everything else is dropped and counted by key name in the visit's provenance (never a value).
Site keys that BIDS defines (InstitutionName, StationName, DeviceSerialNumber...) are dropped unless
``--keep-site-fields``. A kept key whose text holds one of the visit's identifiers
(:class:`~bids_factory.privacy.visit_identifiers.VisitIdentifiers`: patient ids and names, staff names, birth date)
is dropped too, with a note; so is a date-valued key under ``--dates drop`` (``year`` keeps the year).
Keys with a BIDS ``format`` or ``enum`` (IntendedFor paths, units, directions) are not free text.

What WAS done to de-identify the data is kept: ``DeidentificationMethod`` and
``DeidentificationMethodCodeSequence`` (BIDS fields; DICOM (0012,0063)/(0012,0064)) and
``PatientIdentityRemoved`` (DICOM (0012,0062)).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

from bids_factory import bidsschema
from bids_factory.dates import DatePolicy
from bids_factory.privacy.identifier_match import VisitIdentifiers

# dcm2niix keys that are not BIDS metadata but are read by pipelines (sdcflows/fMRIPrep/QSIPrep/MRIQC:
# readout and echo spacing fallbacks, GE/Philips polarity and EPI factors), by heuristics and by our
# sidecar schemas (SeriesDescription, ProtocolName, ImageType, SeriesNumber...). Free text among them
# is checked for identifiers like any other kept string.
TECHNICAL_KEYS = (
    # what heuristics match on and the sidecar schemas check
    "SeriesDescription", "ProtocolName", "ImageType", "ImageTypeText", "SeriesNumber", "AcquisitionNumber",
    "EchoNumber", "Modality", "BodyPartExamined", "PatientPosition", "RawImage", "BidsGuess",
    # conversion provenance
    "ConversionSoftware", "ConversionSoftwareVersion", "Dcm2bidsVersion",
    # acquisition geometry and timing (time of day only: dcm2niix -ba y writes no date)
    "AcquisitionTime", "SliceThickness", "SpacingBetweenSlices", "ImageOrientationPatientDICOM",
    "InPlanePhaseEncodingDirectionDICOM", "AcquisitionMatrixPE", "ReconMatrixPE", "BaseResolution",
    "PhaseResolution", "PercentPhaseFOV", "PercentSampling", "PhaseEncodingSteps", "PhaseEncodingStepsOutOfPlane",
    "FrequencyEncodingSteps", "RefLinesPE", "NumberOfAverages", "ImagingFrequency", "SAR",
    # distortion correction fallbacks (sdcflows get_trt / QSIPrep)
    "BandwidthPerPixelPhaseEncode", "PixelBandwidth", "DerivedVendorReportedEchoSpacing", "EchoTrainLength",
    "PhaseEncodingPolarityGE", "EPIFactor", "WaterFatShift", "EstimatedTotalReadoutTime",
    "EstimatedEffectiveEchoSpacing", "PhaseEncodingAxis",
    # vendor shim and transmitter settings (field map and QC tools)
    "ShimSetting", "TxRefAmp", "CoilString", "DiffusionScheme", "NumberOfKSpaceTrajectories",
    # the record of the de-identification itself
    "PatientIdentityRemoved",
)
# Text typed at the scanner or the RIS, for no pipeline (a name nobody listed may be in it): removed by
# default, kept with ``keep_site_fields`` (and then still dropped when it holds an identifier of the visit).
FREE_TEXT_KEYS = ("ImageComments", "StudyDescription", "ProcedureStepDescription")
# BIDS-defined site and device identifiers: removed by default, kept with ``keep_site_fields``.
SITE_KEYS = ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName",
             "DeviceSerialNumber")
DEIDENTIFICATION_KEYS = ("DeidentificationMethod", "DeidentificationMethodCodeSequence", "PatientIdentityRemoved")
# The safety net: keys no sidecar schema may ever see (schemas/sidecar/forbidden.schema.json; a test
# keeps both equal). None of them is in the allow-list; the schema makes a regression fail loudly.
PATIENT_KEYS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "PatientSex", "PatientAge",
    "PatientWeight", "PatientSize", "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName",
    "OtherPatientIDs", "OtherPatientNames", "OtherPatientIDsSequence", "PatientComments",
    "EthnicGroup", "MilitaryRank", "MedicalRecordLocator", "IssuerOfPatientID", "PatientInsurancePlanCodeSequence",
    "ReferringPhysicianName", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "OperatorsName", "RequestingPhysician",
    "PhysiciansOfRecord", "AccessionNumber", "StudyID", "AdmissionID", "AdditionalPatientHistory",
    "AcquisitionDateTime", "AcquisitionDate", "StudyDate", "SeriesDate", "ContentDate",
    "InstanceCreationDate", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
)
# Keys with a controlled vocabulary (DICOM code strings, a vendor's names of its scanners, software and
# sequences, versions): not free text, never searched for identifiers. A word of a person's name may
# well be "Philips", "DTI" or "T1"; it never makes a vendor's vocabulary an identifier (free text such as
# SeriesDescription, ProtocolName or ImageComments is still searched).
CODED_KEYS = frozenset({
    "ImageType", "ImageTypeText", "Modality", "PatientPosition", "ConversionSoftware", "ConversionSoftwareVersion",
    "PhaseEncodingAxis", "InPlanePhaseEncodingDirectionDICOM", "PatientIdentityRemoved",
    # the vendor's vocabulary: scanner, software and sequence names (DICOM CS/LO/SH values dcm2niix copies)
    "Manufacturer", "ManufacturersModelName", "SoftwareVersions", "ScanningSequence", "SequenceVariant",
    "ScanOptions", "PulseSequenceType", "MRAcquisitionType", "SequenceName", "PulseSequenceName",
    "InternalPulseSequenceName", "PulseSequenceDetails", "PhaseEncodingDirection", "SliceEncodingDirection",
    "ReceiveCoilName", "ReceiveCoilActiveElements", "TransmitCoilName", "CoilString", "BodyPartExamined",
    "NonlinearGradientCorrection", "ParallelAcquisitionTechnique", "PartialFourierDirection",
    "PhaseEncodingPolarityGE", "DiffusionScheme", "Units", "MTState", "SpoilingState"})
# The words of ImageType / ImageTypeText (DICOM CS values, PS3.3 C.7.6.1.1.2 and C.8.13.1.1.1, and the vendors'
# terms dcm2niix copies): a vocabulary, never an identifier (a patient may be named "Primary"). Any other item
# of a coded key's list that holds an identifier of the visit is dropped from the list (``ORIGINAL\PRIMARY\
# OTHER\JANE`` keeps ORIGINAL, PRIMARY, OTHER): the key stays, with its meaning, and is counted.
CODED_WORDS = frozenset({
    "ORIGINAL", "DERIVED", "PRIMARY", "SECONDARY", "OTHER", "NONE", "MIXED", "VOLUME", "LOCALIZER", "PROJECTION IMAGE",
    "M", "P", "R", "I", "MAGNITUDE", "PHASE", "REAL", "IMAGINARY", "ND", "NORM", "DIS2D", "DIS3D", "DIS2D", "MOSAIC",
    "MFSPLIT", "FM", "FMRI", "FIL", "DIFFUSION", "ADC", "EADC", "TRACEW", "FA", "TENSOR", "COLFA", "MOCO", "MPR",
    "MIP", "MNIP", "MINIP", "SUBTRACTION", "SUB", "CSA MPR", "CSAPARALLEL", "FUSED", "CALC_BRAIN", "RCBF", "CBF",
    "CBV", "TTP", "MTT", "PERFUSION", "ASL", "SE", "IR", "FFE", "GR", "EP", "SR", "DWI", "T1", "T2", "T2_STAR",
    "PROTON_DENSITY", "PD", "M_SE", "M_FFE", "M_IR", "M_PCA", "P_SE", "P_FFE", "P_IR", "R_SE", "R_FFE", "I_SE",
    "I_FFE", "B0", "B0 MAP", "B0MAP", "FIELDMAP", "FIELD_MAP", "FIELDMAPHZ", "ISOTROPIC", "ANGIO", "CARDIAC",
    "DYNAMIC", "FLOW_ENCODED", "FLUID_ATTENUATED", "MAX_IP", "MIN_IP", "METABOLITE_MAP", "MULTIECHO", "REALTIME",
    "STIR", "TAGGING", "TEMPERATURE", "TOF", "VELOCITY", "ADDITION", "DIVISION", "MAXIMUM", "MEAN", "MINIMUM",
    "MULTIPLICATION", "RESAMPLED", "STD_DEVIATION", "SUBTRACT", "QUANTITY", "EPI", "SWI", "MPR_SAG", "MPR_COR",
    "MPR_TRA", "UNI", "INV1", "INV2", "T1 MAP", "T2 MAP", "T2STAR MAP", "SCREENSHOT", "FILTERED", "WATER",
    "FAT", "IN_PHASE", "OUT_PHASE", "MOTIONCORRECTION", "PHASE_CONTRAST", "REFORMATTED", "CPR",
})
HIDDEN_KEY = "[a key whose name holds an identifier]"


_COUNTERS = ("dropped_keys", "identifier_keys", "identifier_items", "date_keys", "site_keys", "nifti_header_fields")


@dataclass
class Deidentification:
    """What de-identification removed from one visit: key and field names with counts, never values."""

    dropped_keys: Counter = field(default_factory=Counter)  # not on the allow-list
    identifier_keys: Counter = field(default_factory=Counter)  # allowed, but their text holds an identifier
    identifier_items: Counter = field(default_factory=Counter)  # list items of a coded key dropped (the key stays)
    date_keys: Counter = field(default_factory=Counter)  # dates removed by the date policy
    site_keys: Counter = field(default_factory=Counter)  # site fields (without --keep-site-fields)
    nifti_header_fields: Counter = field(default_factory=Counter)  # NIfTI header text blanked
    redacted_texts: int = 0  # series names / converter log lines with an identifier replaced

    def record(self) -> dict:
        out = {name: dict(sorted(getattr(self, name).items()))
               for name in _COUNTERS}
        out["redacted_texts"] = self.redacted_texts
        return out

    def merge(self, other: "Deidentification") -> "Deidentification":
        merged = Deidentification()
        for name in _COUNTERS:
            getattr(merged, name).update(getattr(self, name))
            getattr(merged, name).update(getattr(other, name))
        merged.redacted_texts = self.redacted_texts + other.redacted_texts
        return merged


@functools.cache
def _structured_keys() -> frozenset[str]:
    """BIDS fields whose values are constrained (a ``format`` or ``enum`` anywhere): not free text."""
    keys = set()
    for definition in bidsschema.schema().objects.metadata.values():
        text = repr(definition.to_dict() if hasattr(definition, "to_dict") else definition)
        if "'format'" in text or "'enum'" in text:
            keys.add(definition["name"])
    return frozenset(keys | CODED_KEYS)


@functools.cache
def _enums() -> dict[str, tuple]:
    """The values a BIDS field with a top-level ``enum`` may take."""
    enums: dict[str, list] = {}
    for d in bidsschema.schema().objects.metadata.values():  # a name may have several definitions (ScanningSequence:
        values = d.get("enum") if "enum" in d else None  # MRI free values, MRS an enum): all must give one
        if values is None or not all(isinstance(v, (str, int, float)) for v in values):
            enums[d["name"]] = None
        elif enums.setdefault(d["name"], []) is not None:
            enums[d["name"]] += list(values)
    return {name: tuple(values) for name, values in enums.items() if values}


def _constrained(key: str, value) -> bool:
    """The value of a structured field is not free text: an object's text is always checked, at any depth
    (a list holding objects or lists too), and a field with an ``enum`` only escapes the check with one of
    its values (a hospital JSON may put anything there). The items of a coded key's list are checked one by
    one (:func:`coded_items`); a list of ``format`` values (IntendedFor's BIDS URIs, made of the subject
    label) is not free text."""
    if key not in _structured_keys() or isinstance(value, dict):
        return False
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
        return False
    enum = _enums().get(key)
    if enum is None:
        return True
    return all(v in enum for v in value) if isinstance(value, list) else value in enum


def coded_items(values, identifiers: VisitIdentifiers, replacement: str | None = None) -> list:
    """The items of a coded key's list (ImageType...) without those that hold an identifier of the visit and
    are no word of :data:`CODED_WORDS` (nested lists and objects: checked whole); with ``replacement``, such
    an item is replaced by it instead (what a report shows)."""
    kept = []
    for item in values:
        if isinstance(item, str) and item.strip().upper() in CODED_WORDS or not identifiers.found_in(item):
            kept.append(item)
        elif replacement is not None:
            kept.append(replacement)
    return kept


@functools.cache
def bids_vocabulary() -> frozenset[str]:
    """The words the tool's own messages are made of when they name BIDS things (datatypes, suffixes, entities,
    metadata fields) and ImageType words, case-folded: a patient named "Asl" does not turn the reason
    "asl: BIDS requires ..." into "[removed]: ..." (what a message quotes of a sidecar is checked still)."""
    schema = bidsschema.schema()
    words = {d.get("value", key) for key, d in schema.objects.suffixes.items()}
    words |= {d.get("value", key) for key, d in schema.objects.datatypes.items()}
    words |= {d.get("name", key) for key, d in schema.objects.entities.items()}
    words |= {d["name"] for d in schema.objects.metadata.values()}
    return frozenset(w.casefold() for w in words | CODED_WORDS)


def _selector_may_apply(selector: str, facts: dict[str, str | None]) -> bool:
    """False only when the selector is false for these facts (``None``: unknown); a selector on what is not
    known here (sidecar values, entities, extensions) may apply (:mod:`bids_factory.bidsschema`)."""
    return bidsschema.evaluate(selector, {k: v for k, v in facts.items() if v is not None}) is not False


@functools.cache
def bids_keys(datatype: str, suffix: str | None) -> frozenset[str]:
    """Every sidecar field the BIDS schema's rules define for files of this datatype and suffix
    (``suffix`` None: any suffix), plus for MRI every field any MRI sidecar rule names (BIDS defines
    e.g. RepetitionTime only for bold, but a T1w's RepetitionTime is no identifier and MRIQC reads it)."""
    schema = bidsschema.schema()
    modality = next((name for name, m in schema.rules.modalities.items() if datatype in m["datatypes"]), "")
    keys = set(_rule_fields({"datatype": datatype, "suffix": suffix, "modality": modality}))
    if modality == "mri" and suffix is not None:
        for other in schema.rules.modalities["mri"]["datatypes"]:
            keys |= bids_keys(other, None)
    return frozenset(keys)


def _rule_fields(facts: dict) -> set[str]:
    schema = bidsschema.schema()
    names = {key: definition["name"] for key, definition in schema.objects.metadata.items()}
    keys: set[str] = set()
    for group in schema.rules.sidecars.values():
        for rule in group.values():
            if "fields" not in rule or "selectors" not in rule:
                continue
            if all(_selector_may_apply(s, facts) for s in rule["selectors"]):
                keys.update(names.get(field_key, field_key) for field_key in rule["fields"])
    return keys


def load_allow_list() -> None:
    """Build the schema-derived key sets now (what every MRI sidecar's allow-list is made of), e.g. before
    worker processes fork, so that they share them instead of each building them again."""
    for datatype in bidsschema.schema().rules.modalities["mri"]["datatypes"]:
        bids_keys(datatype, None)
    _structured_keys()


def allowed_keys(datatype: str, suffix: str, keep_site_fields: bool = False) -> frozenset[str]:
    allowed = bids_keys(datatype, suffix) | set(TECHNICAL_KEYS) | set(DEIDENTIFICATION_KEYS) | set(FREE_TEXT_KEYS)
    return frozenset(allowed if keep_site_fields else allowed - set(SITE_KEYS) - set(FREE_TEXT_KEYS))


def keep_allowed(sidecar: dict, datatype: str, suffix: str, identifiers: VisitIdentifiers,
                 dates: DatePolicy = DatePolicy(), keep_site_fields: bool = False,
                 record: Deidentification | None = None) -> dict:
    """A copy of ``sidecar`` with only allowed keys whose text holds no identifier (and no date the
    policy removes); what was dropped is counted in ``record``."""
    record = record if record is not None else Deidentification()
    allowed = allowed_keys(datatype, suffix, keep_site_fields=True)
    kept = {}
    for key, value in sidecar.items():
        name = HIDDEN_KEY if identifiers.found_in(key) else key
        if key not in allowed:
            record.dropped_keys[name] += 1
        elif (key in SITE_KEYS or key in FREE_TEXT_KEYS) and not keep_site_fields:
            record.site_keys[key] += 1
        elif key in CODED_KEYS and isinstance(value, list) and (items := coded_items(value, identifiers)) != value:
            if items:  # the key keeps its meaning without the items
                record.identifier_items[key] += len(value) - len(items)
                if (dated := dates.sidecar_value(items)) is None:
                    record.date_keys[key] += 1
                else:
                    kept[key] = dated
            else:
                record.identifier_keys[key] += 1
        elif not (key in CODED_KEYS and isinstance(value, list)) and not _constrained(key, value) \
                and identifiers.found_in(value):
            record.identifier_keys[key] += 1
        elif (dated := dates.sidecar_value(value)) is None:
            record.date_keys[key] += 1
        else:
            if dated != value:
                record.date_keys[key] += 1
            kept[key] = dated
    # BIDS: DeidentificationMethod is an array of strings, DeidentificationMethodCodeSequence an array
    # of code objects. dcm2niix writes arrays; a hospital's own JSON may hold one string / one object.
    if isinstance(kept.get("DeidentificationMethod"), str):
        kept["DeidentificationMethod"] = [kept["DeidentificationMethod"]]
    if isinstance(kept.get("DeidentificationMethodCodeSequence"), dict):
        kept["DeidentificationMethodCodeSequence"] = [kept["DeidentificationMethodCodeSequence"]]
    return kept
