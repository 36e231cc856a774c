"""The identifiers of one visit as a value (:class:`VisitIdentifiers`) and their whole-word match in free text.

Read from the visit's sources by :mod:`bids_factory.privacy.visit_identifiers`; kept apart from that reading (which
walks DICOM headers, with pydicom as the fallback) so that the typed values between the stages
(:mod:`bids_factory.model`) never import a DICOM reader: a run with nothing new imports none.
A value *holds* an identifier when the identifier appears in it as a whole word (letters and digits
around it are not part of a match: ``Smith`` is found in ``T1_SMITH`` but not in ``Smithson``).
The raw values live only in memory: nothing here is ever written or logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ALNUM = r"[^\W_]"  # a letter or a digit (any script): a match may not be glued to one
REDACTED = "[removed]"


@dataclass(frozen=True)
class VisitIdentifiers:
    """Every identifier of one visit (raw values, in memory only), with ``patient_id`` the raw PatientID."""

    patient_id: str = ""
    ids: frozenset[str] = frozenset()  # PatientID, OtherPatientIDs, AccessionNumber, NIfTI id fields
    names: frozenset[str] = frozenset()  # words of every person name (patient and staff)
    dates: frozenset[str] = frozenset()  # every spelling of the birth date(s)
    _pattern: re.Pattern | None = field(default=None, compare=False, repr=False)

    @property
    def values(self) -> frozenset[str]:
        return self.ids | self.names | self.dates

    def _regex(self) -> re.Pattern | None:
        if self._pattern is None and self.values:
            words = sorted(self.values, key=len, reverse=True)
            pattern = re.compile(f"(?<!{_ALNUM})(?:{'|'.join(map(re.escape, words))})(?!{_ALNUM})", re.IGNORECASE)
            object.__setattr__(self, "_pattern", pattern)
        return self._pattern

    def found_in(self, value) -> bool:
        """Whether ``value`` (a string, or any JSON value: lists and objects are searched) holds an identifier."""
        regex = self._regex()
        if regex is None:
            return False
        if isinstance(value, str):
            return regex.search(value) is not None
        if isinstance(value, dict):
            return any(self.found_in(k) or self.found_in(v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return any(self.found_in(v) for v in value)
        return False

    def redact(self, text: str, spare: frozenset[str] = frozenset()) -> str:
        """``text`` with every identifier replaced by ``[removed]`` (for logs and series names in records);
        a match that is one of the words ``spare`` (case-folded: the tool's own vocabulary in a text it
        wrote) stays."""
        regex = self._regex()
        if regex is None or not text:
            return text
        if not spare:
            return regex.sub(REDACTED, text)
        return regex.sub(lambda m: m.group(0) if m.group(0).casefold() in spare else REDACTED, text)
