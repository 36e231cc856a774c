"""Typed values passed between the stages of the flow, and what a later run reads back.

- :mod:`~bids_factory.model.values`: discover -> ``Visit``; extract -> ``ExtractedVisit``; plan -> ``VisitPlan``;
  everything reported -> ``Problem``; a run -> ``RunSummary``. Plain, picklable dataclasses (worker processes).
- :mod:`~bids_factory.model.outcomes`: why a series was not placed and what a person must do about it.
- :mod:`~bids_factory.model.records`: the visit records and states, run records and history, typed and versioned.

Every stage imports these names from ``bids_factory.model``.
"""

from bids_factory.model.outcomes import (  # noqa: F401 (the package's face)
    SeriesStatus, VisitStatus, DERIVED_REASON, LOCALIZER_REASON, never_placed, ReasonGroup, outcome_group)
from bids_factory.model.records import (  # noqa: F401 (the package's face)
    VISIT_RECORD_VERSION, VISIT_STATE_VERSION, RUN_RECORD_VERSION, HISTORY_VERSION, readable, VisitState,
    RunRecord, HistoryEntry, PlacedFileRecord, VisitRecord)
from bids_factory.model.values import (  # noqa: F401 (the package's face)
    BIDS_VERSION, bids_label, subject_label, session_label, FILE_NAME_BYTES, too_long_file_name, shortened,
    Problem, VisitFolder, export_relpath, SourceFile, Visit, Series, ExtractedVisit, Placement, SeriesOutcome,
    VisitPlan, VisitResult, RunSummary)
