"""ASL (``perf/<name>_asl.nii.gz``): the metadata BIDS requires and the ``aslcontext.tsv`` beside it.

Nothing here is invented: a field dcm2niix did not give (M0Type for Philips, BackgroundSuppression,
TotalAcquiredPairs...) holds the series back, and the reason names the field and how a site adds it.
dcm2niix does not report the label/control order of the volumes (rordenlab/dcm2niix#895), so the
order comes from the heuristic rule (``"bids_factory": {"aslcontext": {"first": [...], "repeat": [...]}}``).
"""

from __future__ import annotations

# BIDS 1.10 schema, rules.sidecars.asl: REQUIRED for every *_asl.json, then per labelling type.
REQUIRED = ("ArterialSpinLabelingType", "PostLabelingDelay", "BackgroundSuppression", "M0Type",
            "TotalAcquiredPairs", "RepetitionTimePreparation")
REQUIRED_BY_TYPE = {"PCASL": ("LabelingDuration",), "CASL": ("LabelingDuration",), "PASL": ("BolusCutOffFlag",)}
HOW_TO_ADD = ("a site adds what its scanner does not report with sidecar_changes in its own heuristic "
              "(e.g. {\"M0Type\": \"Separate\", \"BackgroundSuppression\": false, \"TotalAcquiredPairs\": 30})")


def missing_fields(sidecar: dict) -> list[str]:
    """BIDS-required ASL fields absent from ``sidecar`` (after the heuristic's sidecar_changes)."""
    wanted = list(REQUIRED) + list(REQUIRED_BY_TYPE.get(str(sidecar.get("ArterialSpinLabelingType", "")), ()))
    if sidecar.get("M0Type") == "Estimate":
        wanted.append("M0Estimate")
    return [key for key in wanted if key not in sidecar]


def aslcontext(order: dict | None, volumes: int) -> tuple[str | None, str]:
    """(aslcontext.tsv text, "") or (None, why not): ``order`` is the rule's ``aslcontext`` setting."""
    if not order:
        return None, ("the label/control order of its volumes is unknown (dcm2niix does not report it): a site "
                      "gives it in its own heuristic rule, \"bids_factory\": {\"aslcontext\": "
                      "{\"first\": [\"m0scan\"], \"repeat\": [\"control\", \"label\"]}}")
    first, repeat = list(order.get("first", [])), list(order["repeat"])
    rest = volumes - len(first)
    if rest < 0 or rest % len(repeat):
        return None, (f"the rule's aslcontext ({len(first)} first + a repeat of {len(repeat)}) does not fit "
                      f"its {volumes} volumes")
    types = first + repeat * (rest // len(repeat))
    return "volume_type\n" + "".join(f"{t}\n" for t in types), ""
