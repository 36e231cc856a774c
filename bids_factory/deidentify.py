"""De-identification of sidecars: what must never reach the dataset.

dcm2niix ``-ba y`` already drops the patient's name, id and birth date, but keeps institution,
address and device identifiers. Every sidecar is scrubbed with this deny list before it is
placed, whatever produced it (dcm2niix, a hospital's NIfTI export, a heuristic's
``sidecar_changes``).

What WAS done to de-identify the data is kept: ``DeidentificationMethod`` and
``DeidentificationMethodCodeSequence`` are the BIDS fields for it (BIDS schema 1.11, MRI "Deidentification
information"; DICOM (0012,0063)/(0012,0064), which dcm2niix copies), and ``PatientIdentityRemoved``
(DICOM (0012,0062), "YES"/"NO") is kept beside them. They are never on the deny list.
"""

from __future__ import annotations

# Direct and indirect identifiers of the patient and of the staff (DICOM PS3.15 Annex E keywords
# as dcm2niix and hospital exports spell them in JSON).
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
# Site and device identifiers: removed by default, kept with ``keep_site_fields``.
SITE_KEYS = (
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName",
    "DeviceSerialNumber",
)


# The record of the de-identification: kept, and normalised to the BIDS types (arrays).
DEIDENTIFICATION_KEYS = ("DeidentificationMethod", "DeidentificationMethodCodeSequence", "PatientIdentityRemoved")


def denied_keys(keep_site_fields: bool = False) -> tuple[str, ...]:
    return PATIENT_KEYS if keep_site_fields else PATIENT_KEYS + SITE_KEYS


def scrub(sidecar: dict, keep_site_fields: bool = False) -> dict:
    """A copy of ``sidecar`` without any denied key, its de-identification record kept in BIDS form."""
    denied = set(denied_keys(keep_site_fields))
    kept = {key: value for key, value in sidecar.items() if key not in denied}
    # BIDS: DeidentificationMethod is an array of strings, DeidentificationMethodCodeSequence an array
    # of code objects. dcm2niix writes arrays; a hospital's own JSON may hold one string / one object.
    if isinstance(kept.get("DeidentificationMethod"), str):
        kept["DeidentificationMethod"] = [kept["DeidentificationMethod"]]
    if isinstance(kept.get("DeidentificationMethodCodeSequence"), dict):
        kept["DeidentificationMethodCodeSequence"] = [kept["DeidentificationMethodCodeSequence"]]
    return kept
