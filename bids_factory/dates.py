"""Calendar dates, in one place: the date policy (``--dates keep|year|drop``: which dates the dataset may
hold), the spellings of a known date (a birth date, for the identifier match) and what an EHR date looks like.

- ``keep`` (default): export days (``source_day``, ``export_days``, export folder paths in provenance),
  conversion and run dates, and dates in EHR tables are written as they are.
- ``year``: every calendar date is reduced to its year (``20240312`` -> ``2024``,
  ``2026-11-30T05:53:19+00:00`` -> ``2026 05:53:19+00:00``); export paths lose their day folder
  (``DICOM/2024/20240312/V1`` -> ``DICOM/2024/V1``).
- ``drop``: no calendar date at all: a date becomes ``n/a`` (its time of day stays), export paths
  lose their year and day folders (``DICOM/V1``).

The writer applies :meth:`DatePolicy.mask_text` / :meth:`DatePolicy.mask_json` to every text file it
writes (TSV, JSON records, report, CHANGES, phenotype tables); sidecars go through
:meth:`DatePolicy.sidecar_value` (a date-valued key is dropped under ``drop``). A date is found as a
whole token: ``yyyymmdd`` (a real date, not glued to letters, digits or a ``.``, so software
versions such as ``v1.0.20250506`` stay), ``yyyy-mm-dd`` (with an optional time), ``dd.mm.yyyy``,
``dd/mm/yyyy`` and ``dd-mm-yyyy``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

POLICIES = ("keep", "year", "drop")
_B = r"(?<![0-9A-Za-z.])"
_E = r"(?![0-9A-Za-z])"
_EXPORT_PATH = re.compile(r"(?<![0-9A-Za-z])(DICOM|NIFTI|EHR)/(\d{4})/(\d{8})(?=/|$|[^0-9A-Za-z])")
_ISO = re.compile(_B + r"(\d{4})-(\d{2})-(\d{2})(?:([T ])(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?))?" + _E)
_COMPACT = re.compile(_B + r"((?:19|20)\d{2})(\d{2})(\d{2})" + _E)
_DOTTED = re.compile(_B + r"(\d{1,2})([./-])(\d{1,2})\2(\d{4})" + _E)
# What ``year`` leaves of a date, found again when a later run tightens it to ``drop``: the year folder of an
# export path, a year and its time of day, a JSON value that is a year alone.
_YEAR_PATH = re.compile(r"(?<![0-9A-Za-z])(DICOM|NIFTI|EHR)/(?:19|20)\d{2}(?=/|$|[^0-9A-Za-z])")
_YEAR_TIME = re.compile(_B + r"(?:19|20)\d{2} (\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)" + _E)
_YEAR_ALONE = re.compile(r"^(?:19|20)\d{2}$")
_YEAR_HEADER = re.compile(r"^(\d+(?:\.\d+)+) (?:19|20)\d{2}$", re.M)  # a CHANGES entry's version and year
# What an EHR cell that is a date (or a month) looks like: such a column is never categorical.
DATE_LIKE = re.compile(r"^\d{4}-\d{2}(-\d{2})?([ T].*)?$|^\d{1,2}[./]\d{1,2}[./]\d{2,4}$")
# Keys of provenance records that carry labels and fingerprints, never dates: not masked (a visit
# id that happens to look like a date must still match its own state).
_LABEL_KEYS = {"scan_research_id", "participant_id", "session_id", "subject_label", "session_label",
               "fingerprint", "settings", "sha256", "hmac_sha256"}


def _real(year: str, month: str, day: str) -> bool:
    try:
        dt.date(int(year), int(month), int(day))
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class DatePolicy:
    mode: str = "keep"

    def __post_init__(self):
        if self.mode not in POLICIES:
            raise ValueError(f"date policy {self.mode!r}: expected one of {', '.join(POLICIES)}")

    @property
    def keeps(self) -> bool:
        return self.mode == "keep"

    def _date(self, year: str, time: str = "") -> str:
        if self.mode == "year":
            return f"{year} {time}".strip()
        return time or "n/a"

    def mask_text(self, text: str) -> str:
        """``text`` with every calendar date reduced (``year``) or removed (``drop``)."""
        if self.keeps or not text:
            return text
        text = _EXPORT_PATH.sub(lambda m: f"{m.group(1)}/{m.group(2)}" if self.mode == "year" else m.group(1), text)
        text = _ISO.sub(lambda m: self._date(m.group(1), m.group(5) or "") if _real(*m.group(1, 2, 3))
                        else m.group(0), text)
        text = _COMPACT.sub(lambda m: self._date(m.group(1)) if _real(*m.group(1, 2, 3)) else m.group(0), text)

        def dotted(m):
            a, b, year = int(m.group(1)), int(m.group(3)), m.group(4)
            if _real(year, str(b), str(a)) or _real(year, str(a), str(b)):
                return self._date(year)
            return m.group(0)
        return _DOTTED.sub(dotted, text)

    def mask_json(self, data):
        """A copy of a JSON value with :meth:`mask_text` applied to every string (not to object keys,
        nor to label/fingerprint values)."""
        if self.keeps:
            return data
        if isinstance(data, str):
            return self.mask_text(data)
        if isinstance(data, list):
            return [self.mask_json(v) for v in data]
        if isinstance(data, dict):
            return {k: (v if k in _LABEL_KEYS else self.mask_json(v)) for k, v in data.items()}
        return data

    def mask_earlier_json(self, data):
        """:meth:`mask_json` of a value an earlier run wrote under a looser policy: under ``drop`` also the
        years a ``year`` run left (its export paths' year folders, a year with its time, a value that is a
        year alone, a CHANGES entry's year)."""
        if self.mode != "drop":
            return self.mask_json(data)
        if isinstance(data, str):
            return "n/a" if _YEAR_ALONE.match(data) else self.mask_earlier_text(data)
        if isinstance(data, list):
            return [self.mask_earlier_json(v) for v in data]
        if isinstance(data, dict):
            return {k: (v if k in _LABEL_KEYS else self.mask_earlier_json(v)) for k, v in data.items()}
        return data

    def mask_earlier_text(self, text: str) -> str:
        """:meth:`mask_text` of a text an earlier run wrote under a looser policy (see :meth:`mask_earlier_json`;
        in text a year alone cannot be told from another number, and the tool's texts hold none)."""
        text = self.mask_text(text)
        if self.mode == "drop":
            text = _YEAR_TIME.sub(lambda m: m.group(1), _YEAR_PATH.sub(lambda m: m.group(1), text))
            text = _YEAR_HEADER.sub(lambda m: f"{m.group(1)} n/a", text)
        return text

    def holds_date(self, value) -> bool:
        """Whether a JSON value holds a calendar date that this policy would change."""
        return not self.keeps and self.mask_json(value) != value

    def sidecar_value(self, value):
        """A sidecar value under this policy: ``None`` when it must be dropped (a date under ``drop``)."""
        if not self.holds_date(value):
            return value
        return self.mask_json(value) if self.mode == "year" else None


# -- a known date (a birth date) in every spelling a person or a scanner may have typed --------------

_DATE_FORMATS = ("%Y%m%d", "%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%Y/%m/%d", "%d-%m-%Y", "%m/%d/%Y", "%Y.%m.%d")


def date_spellings(text: str) -> set[str]:
    """Every usual spelling of the calendar date in ``text`` (empty when it is not a date)."""
    text = text.strip()[:10] if re.match(r"^\d{4}-\d{2}-\d{2}T", text.strip()) else text.strip()
    day = None
    for form in _DATE_FORMATS:
        try:
            day = dt.datetime.strptime(text, form).date()
            break
        except ValueError:
            continue
    if day is None:
        return set()
    spellings = {day.strftime(form) for form in _DATE_FORMATS}
    spellings |= {f"{day.day}.{day.month}.{day.year}", f"{day.day}/{day.month}/{day.year}",
                  f"{day.month}/{day.day}/{day.year}"}
    return spellings
