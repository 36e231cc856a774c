"""Why a series was not placed and what a person must do about it: the statuses and groups every stage,
record and report shares."""

from __future__ import annotations

from enum import StrEnum


class SeriesStatus(StrEnum):
    """Why a series was not placed (a str: records and JSON keep the plain value)."""

    UNMATCHED = "unmatched"  # no heuristic rule matches (or the default heuristic does not recognise it)
    AMBIGUOUS = "ambiguous"  # several rules match
    REJECTED = "rejected"  # the rule gives a name that is not BIDS, or two series aim at one file
    HELD_BACK = "held-back"  # matched, but not well-defined, incomplete or refused by the validator
    NOT_CONVERTED = "not-converted"  # dcm2niix made no image of it


class VisitStatus(StrEnum):
    """What happened to a visit in a run."""

    PLACED = "placed"
    NOTHING_TO_PLACE = "nothing-to-place"
    FAILED = "failed"
    UNCHANGED = "unchanged"  # sources and settings as at its last conversion: not converted again
    NOT_SELECTED = "not-selected"  # its subject is not among --participant-label


# How plan's classification begins the reason of a series that is never placed (nothing for anyone to do).
DERIVED_REASON, LOCALIZER_REASON = "scanner-derived image", "localizer/scout"


def never_placed(reason: str) -> bool:
    """A series not placed because it never is (a scanner-derived map, a scout)."""
    return reason.startswith((DERIVED_REASON, LOCALIZER_REASON))


class ReasonGroup(StrEnum):
    """What a person must do about a series not placed (given where the outcome is decided), the summary's
    and the report's groups."""
    NOTHING = "nothing"  # expected: scouts, localizers, scanner-derived maps, objects that are no image
    DECIDE = "decide"  # a series no rule places (or several rules, or a name that is not BIDS): a rule to write
    SUPPLY = "supply"  # metadata BIDS or a sidecar schema needs is missing or invalid: the field to add
    FIX_EXPORT = "fix-export"  # incomplete or unreadable in the export: the series to export again


def outcome_group(outcome: dict) -> ReasonGroup:
    """The :class:`ReasonGroup` of a recorded series not placed (``SeriesOutcome.record()``): its own, or, for
    a record written before outcomes carried one, derived here once from its status and reason."""
    if outcome.get("group") in tuple(ReasonGroup):
        return ReasonGroup(outcome["group"])
    status, reason = outcome.get("status"), str(outcome.get("reason") or "")
    if status == SeriesStatus.NOT_CONVERTED or never_placed(reason):
        return ReasonGroup.NOTHING
    if status in (SeriesStatus.UNMATCHED, SeriesStatus.AMBIGUOUS, SeriesStatus.REJECTED):
        return ReasonGroup.DECIDE
    if reason.startswith(("incomplete image", "dcm2niix exited", "SeriesNumber", "no PatientID")):
        return ReasonGroup.FIX_EXPORT
    return ReasonGroup.SUPPLY
