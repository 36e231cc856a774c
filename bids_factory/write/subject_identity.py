"""Who a subject is, in one place: the raw PatientID behind each BIDS label, compared raw, never by label.

Labels are sanitised (``12343@hucheng`` -> ``12343hucheng``), so two patients can give one label, and one
patient's id can be spelled another way in the EHR (``sub-007``, spaces around it). The dataset keeps, per
label, only a keyed hash of the raw id (``code/bids-factory/subjects.json``, HMAC-SHA256 under the dataset's
own secret; older datasets: an unsalted SHA-256, upgraded when the subject is placed again). Every decision
about identity reads it through :class:`SubjectGuard`: the collision guard when a visit is placed, the link of
EHR rows to images, labels that differ only in case. Pure: the writer reads and writes the file.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from bids_factory.model import subject_label
from bids_factory.privacy.visit_identifiers import patient_hmac


def same_patient(stored, raw_id: str, secret: bytes) -> bool:
    """Whether a ``subjects.json`` entry is the key of ``raw_id``: an HMAC entry
    (``{"hmac_sha256": ...}``) or a legacy unsalted SHA-256 string of older datasets."""
    if isinstance(stored, dict):
        return hmac.compare_digest(str(stored.get("hmac_sha256", "")), patient_hmac(secret, raw_id))
    if isinstance(stored, str):
        return hmac.compare_digest(stored, hashlib.sha256(raw_id.encode("utf-8")).hexdigest())
    return False


def subject_entry(secret: bytes, raw_id: str) -> dict:
    return {"hmac_sha256": patient_hmac(secret, raw_id)}


def case_twin(label: str, labels) -> str | None:
    """A label among ``labels`` that differs from ``label`` only in case (``ABC``/``abc``: one folder on a
    case-insensitive disk), else None."""
    return next((other for other in sorted(labels) if other != label and other.casefold() == label.casefold()), None)


@dataclass
class SubjectGuard:
    """The subjects of a dataset: label -> the keyed hash of its raw PatientID (``subjects.json``)."""

    entries: dict
    secret: bytes

    def taken_by_another(self, label: str, raw_id: str) -> bool:
        """The label is a subject whose raw PatientID is not ``raw_id`` (compared exactly: two ids that
        sanitise alike are never merged)."""
        known = self.entries.get(label)
        return known is not None and not same_patient(known, raw_id, self.secret)

    def other_patient(self, label: str, ehr_id: str) -> bool:
        """An EHR id is another patient than the images of ``label``; an id written as a BIDS label
        (``sub-007``) or with spaces around it is the same id."""
        core = ehr_id.strip().removeprefix("sub-")
        spellings = {ehr_id, ehr_id.strip(), core, f"sub-{core}"}
        return label in self.entries and not any(same_patient(self.entries[label], raw, self.secret)
                                                 for raw in spellings)

    def own_id(self, ehr_id: str) -> bool:
        """An EHR id is the PatientID of the images of its own label (never taken for a person's name, even
        where a de-identified export made the PatientName the same word)."""
        label = subject_label(ehr_id.strip().removeprefix("sub-"))
        return label in self.entries and not self.other_patient(label, ehr_id)

    def record(self, label: str, raw_id: str) -> bool:
        """Keep the key of ``label``'s raw id (a legacy entry is upgraded); whether the entries changed."""
        entry = subject_entry(self.secret, raw_id)
        if self.entries.get(label) == entry:
            return False
        self.entries[label] = entry
        return True
