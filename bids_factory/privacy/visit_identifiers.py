"""The identifiers of one visit: what free text placed in the dataset must never contain.

Collected from the visit's own sources, never guessed from a list of field names alone:

- DICOM (one representative file per series, read whole up to the per-frame functional groups and
  the pixel data, by a walk over its raw tags, pydicom for what the walk leaves): PatientID,
  OtherPatientIDs (and the PatientID items of OtherPatientIDsSequence), AccessionNumber,
  PatientBirthDate, and the value of EVERY person-name (VR ``PN``) element anywhere in the header,
  sequences included: the patient's names and every staff name (operators, physicians...).
- NIfTI exports: the JSON field that holds the patient id (``--nifti-patient-field``) and every key
  that names an identity field (patient id/name/birth, MRN, IPP, accession, physician, operator...).

Names are split into words (``DOE^JANE`` -> ``doe``, ``jane``; single letters are ignored); ids are
kept whole; a birth date gives every usual spelling (``19800101``, ``1980-01-01``, ``01.01.1980``,
``01/01/1980``...). A value *holds* an identifier when the identifier appears in it as a whole word
(letters and digits around it are not part of a match: ``Smith`` is found in ``T1_SMITH`` but not in
``Smithson``). The raw values live only in memory: nothing here is ever written or logged. The value
(:class:`~bids_factory.privacy.identifier_match.VisitIdentifiers`) and its matching live in
:mod:`bids_factory.privacy.identifier_match`.

The collision check of subject labels keeps an HMAC-SHA256 of the raw PatientID under a per-dataset
secret key (:func:`patient_hmac`); unsalted SHA-256 values of older datasets are still recognised
(:func:`same_patient`) and upgraded when the raw id is seen again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import warnings
from pathlib import Path
from typing import Iterable, Sequence

from bids_factory.dicom.head import PYDICOM_READ_ERRORS
from bids_factory.dicom.identifiers import HeaderIdentifiers, read_identifiers
from bids_factory.dates import date_spellings
from bids_factory.errors import IdentifiersUnreadable
from bids_factory.privacy.identifier_match import VisitIdentifiers

_WORDS = re.compile(r"[\W_]+")
_ID_ELEMENTS = ("PatientID", "OtherPatientIDs", "AccessionNumber")
_DATE_ELEMENTS = ("PatientBirthDate",)
# NIfTI JSON keys (lower case, letters and digits only) that name an identity field.
_IDENTITY_WORDS = ("birth", "dob", "mrn", "ipp", "accession", "physician", "operator", "surname",
                   "firstname", "lastname", "givenname", "familyname", "maidenname", "ssn", "insurance")
_PATIENT_WORDS = ("id", "name", "birth", "number", "address", "phone", "telephone")
_NOT_IDENTITY = {"patientposition", "patientorientation", "patientidentityremoved", "patientsex",
                 "patientage", "patientweight", "patientsize"}


def visit_identifiers(dicom_series: Iterable[Sequence[Path]], nifti_sidecars: Iterable[dict] = (),
                      nifti_patient_field: str = "PatientID", where: str = "visit") -> VisitIdentifiers:
    """The identifiers of a visit from its DICOM series and the JSON of each NIfTI image.

    ``dicom_series``: per series, its files in order; the header of the first one that reads whole is
    used. A series none of whose headers reads whole (cut short, malformed) has no pixel data the
    converter could make an image of, so it gives no identifier (the converter names its files). When
    no DICOM header of the visit reads whole (and it has no NIfTI JSON), nothing could be checked:
    :class:`IdentifiersUnreadable`, naming the file, never a value.
    """
    ids: set[str] = set()
    names: set[str] = set()
    dates: set[str] = set()
    patient_ids: list[str] = []
    failures: list[IdentifiersUnreadable] = []
    nifti_sidecars = list(nifti_sidecars)
    for candidates in dicom_series:
        try:
            header = _first_whole_header(candidates, where)
        except IdentifiersUnreadable as exc:
            failures.append(exc)
            continue
        patient_ids.append(header.patient_id)
        ids.update(header.ids)
        for text in header.birth_dates:
            dates.update(date_spellings(text))
        for name in header.person_names:
            names.update(_name_words(name))
    for sidecar in nifti_sidecars:
        patient_ids.append(_text(sidecar.get(nifti_patient_field)))
        for key, value in sidecar.items():
            if key == nifti_patient_field or _is_identity_key(key):
                for text in _json_strings(value):
                    spellings = date_spellings(text)
                    dates.update(spellings)
                    if not spellings:
                        ids.add(text.strip())
                        if "name" in key.lower():  # a person's name: each of its words
                            names.update(_name_words(text))
    if failures and not patient_ids:  # not one DICOM header nor NIfTI JSON could be read
        raise failures[0]
    ids = {i for i in ids if len(i) >= 3}
    return VisitIdentifiers(patient_id=next((p for p in patient_ids if p), ""), ids=frozenset(ids),
                            names=frozenset(names - {""}), dates=frozenset(dates))


_PER_FRAME_GROUPS = 0x52009230  # PerFrameFunctionalGroupsSequence: no PN in any functional group macro


def _stop_at_per_frame_groups(tag, vr, length) -> bool:
    return tag >= _PER_FRAME_GROUPS


def _first_whole_header(candidates: Sequence[Path], where: str) -> HeaderIdentifiers:
    """The identifiers of the first of ``candidates`` whose header reads whole: from the raw tag walk
    (:mod:`bids_factory.dicom.identifiers`), or from pydicom for a file the walk leaves to it."""
    failure = None
    for path in candidates:
        header = read_identifiers(path)
        if header is not None:
            return header
        try:
            return _dataset_identifiers(_read_whole_header(path, where))
        except IdentifiersUnreadable as exc:
            failure = failure or exc
    if failure is None:
        raise IdentifiersUnreadable(f"{where}: a DICOM series without files")  # pragma: no cover
    raise failure


def _read_whole_header(path: Path, where: str):
    """Every element before the per-frame functional groups (PS3.3 C.7.6.16: none holds a person name)
    and the pixel data: enhanced DICOM repeats them per frame, 10x the time of everything else."""
    from pydicom.filereader import read_partial

    try:
        with warnings.catch_warnings(), open(path, "rb") as handle:
            warnings.simplefilter("ignore")
            dataset = read_partial(handle, stop_when=_stop_at_per_frame_groups)
    except PYDICOM_READ_ERRORS as exc:
        problem = type(exc).__name__
    else:
        if not _cut_short(dataset):
            return dataset
        problem = "its header is cut short"
    raise IdentifiersUnreadable(
        f"{where}: the identifiers of {path.name} cannot be read ({problem}), so its free text "
        "cannot be checked: the visit is not placed")


def _cut_short(dataset) -> bool:
    """pydicom silently shortens the value of an element cut by the end of the file: find it."""
    from pydicom.dataelem import RawDataElement

    return any(isinstance(e, RawDataElement) and e.value is not None and e.length != 0xFFFFFFFF
               and len(e.value) < e.length for e in getattr(dataset, "_dict", {}).values())


def _dataset_identifiers(dataset) -> HeaderIdentifiers:
    """The identifiers of a header pydicom read."""
    ids = [i for keyword in _ID_ELEMENTS for i in _multi(dataset.get(keyword))]
    ids += [i for item in dataset.get("OtherPatientIDsSequence") or () for i in _multi(item.get("PatientID"))]
    return HeaderIdentifiers(patient_id=_text(dataset.get("PatientID")), ids=frozenset(ids),
                             birth_dates=frozenset(t for k in _DATE_ELEMENTS if (t := _text(dataset.get(k)))),
                             person_names=frozenset(_person_names(dataset)))


def _person_names(dataset) -> list[str]:
    """The value of every PN element of the header, sequences included."""
    names: list[str] = []

    def visit(ds, element):
        if element.VR == "PN":
            names.extend(_multi(element.value))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset.walk(visit)
    return names


def _name_words(value: str) -> set[str]:
    """``DOE^JANE^^DR`` -> {doe, jane, dr}: words of two letters or more (initials alone are ignored)."""
    return {w.lower() for w in _WORDS.split(value) if len(w) >= 2}


def _multi(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [t for t in (_text(v) for v in value) if t]
    text = _text(value)
    return [t.strip() for t in text.split("\\") if t.strip()] if text else []


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1", errors="replace")
    return str(value).strip()


def _json_strings(value) -> list[str]:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        text = str(value).strip()
        return [text] if text else []
    if isinstance(value, list):
        return [t for v in value for t in _json_strings(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _json_strings(v)]
    return []


def _is_identity_key(key: str) -> bool:
    flat = re.sub(r"[^a-z0-9]", "", key.lower())
    if flat in _NOT_IDENTITY:
        return False
    if "patient" in flat and any(word in flat for word in _PATIENT_WORDS):
        return True
    return any(word in flat for word in _IDENTITY_WORDS)


# -- keyed hashes of a visit's identifiers (found again in the EHR tables) ------------------------------

def patient_hmac(secret: bytes, raw_id: str) -> str:
    """The keyed hash (HMAC-SHA256 under the dataset's secret) of a raw id or identifier."""
    return hmac.new(secret, raw_id.encode("utf-8"), hashlib.sha256).hexdigest()


def identifier_digests(secret: bytes, identifiers: VisitIdentifiers, known: dict | None = None) -> dict:
    """The keyed hashes (HMAC-SHA256 under the dataset's secret) of a visit's identifiers by kind (``ids``,
    ``names``, ``dates``), merged into ``known`` (a subject's earlier visits): what lets a later run find them
    in the EHR tables without keeping them (:func:`identifier_tokens`)."""
    merged = {kind: set((known or {}).get(kind, ())) for kind in ("ids", "names", "dates")}
    for kind in merged:
        merged[kind] |= {patient_hmac(secret, value.casefold()) for value in getattr(identifiers, kind)}
    return {kind: sorted(values) for kind, values in merged.items()}


def identifier_tokens(text: str) -> set[str]:
    """What of a text (an EHR cell) is compared with a subject's identifier digests: the whole cell and its
    words (split at spaces and name separators), case-folded."""
    text = text.strip().casefold()
    return {text, *(w for w in re.split(r"[\s^,;/|]+", text) if w)} if text else set()


def read_nifti_sidecars(paths: Iterable[Path]) -> list[dict]:
    """The staged NIfTI JSONs of a visit (already checked to be JSON objects when staged)."""
    sidecars = []
    for path in paths:
        data = json.loads(path.read_bytes().decode("utf-8"))
        if isinstance(data, dict):
            sidecars.append(data)
    return sidecars
