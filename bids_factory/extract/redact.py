"""Stage 2½ — redact a converted visit before it is planned: no identifier or removed date leaves staging.

Between extract and plan (in the worker, on staged copies only):

- every staged NIfTI's header text fields (``descrip``, ``aux_file``, ``intent_name``, ``db_name``) are
  blanked when they hold one of the visit's identifiers, or a calendar date the date policy removes;
- the series names (SeriesDescription, ProtocolName) shown in provenance, the run record and the
  report, the converter's log and the problems' reasons get every identifier replaced by ``[removed]``;
  an ImageType item holding one (and no word of its vocabulary) is shown as ``[removed]``.

After plan, :func:`redact_plan` cleans the reasons of what was not placed (they quote sidecar values) the
same way: every text that leaves a worker went through the visit's redaction.

Sidecars are filtered later, by plan (:func:`bids_factory.privacy.deidentify.keep_allowed`): heuristics match
on the converter's own sidecar, so matching is not changed by de-identification.
"""

from __future__ import annotations

import dataclasses

from bids_factory.dates import DatePolicy
from bids_factory.privacy.deidentify import Deidentification, bids_vocabulary, coded_items
from bids_factory.privacy.identifier_match import REDACTED, VisitIdentifiers
from bids_factory.model import ExtractedVisit, Problem, Series, VisitPlan
from bids_factory.extract.nifti_text import blank_text_fields


def redact_visit(extracted: ExtractedVisit, dates: DatePolicy = DatePolicy()) -> ExtractedVisit:
    identifiers = extracted.identifiers
    record = Deidentification()

    def must_go(text: str) -> bool:
        return identifiers.found_in(text) or dates.holds_date(text)

    for series in extracted.series:
        if series.nifti is not None:
            for name in blank_text_fields(series.nifti, must_go):
                record.nifti_header_fields[name] += 1

    def clean(text: str) -> str:
        cleaned = cleaner(identifiers, dates)(text)
        if cleaned != text:
            record.redacted_texts += 1
        return cleaned

    def series_of(series: Series) -> Series:
        image_type = tuple(clean(str(word)) for word in coded_items(series.image_type, identifiers, REDACTED))
        return dataclasses.replace(series, series_description=clean(series.series_description),
                                   protocol_name=clean(series.protocol_name), image_type=image_type)

    log = "\n".join(clean(line) for line in extracted.converter_log.splitlines())
    return dataclasses.replace(
        extracted,
        series=tuple(series_of(s) for s in extracted.series),
        unconverted=tuple(series_of(s) for s in extracted.unconverted),
        refused=tuple(dataclasses.replace(o, series=series_of(o.series), reason=clean(o.reason))
                      for o in extracted.refused),
        problems=tuple(Problem(clean(p.path), clean(p.reason), p.fatal) for p in extracted.problems),
        converter_log=log,
        deidentification=extracted.deidentification.merge(record),
    )


def cleaner(identifiers: VisitIdentifiers, dates: DatePolicy = DatePolicy(), spare: frozenset[str] = frozenset()):
    """The one redaction of a text leaving a worker: the visit's identifiers replaced by ``[removed]`` (but
    the words ``spare``), then the calendar dates the policy removes masked (messages, paths, logs)."""
    return lambda text: dates.mask_text(identifiers.redact(text, spare))


def redact_plan(plan: VisitPlan, dates: DatePolicy = DatePolicy()) -> VisitPlan:
    """The reasons of the series not placed (a classification quotes the sidecar's ImageType, a gate a
    value), cleaned like the series names."""
    clean = cleaner(plan.extracted.identifiers, dates, bids_vocabulary())  # the reasons' own words stay
    return dataclasses.replace(plan, not_placed=tuple(dataclasses.replace(o, reason=clean(o.reason))
                                                      for o in plan.not_placed))
