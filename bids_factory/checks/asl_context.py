"""ASL (``perf/<name>_asl.nii.gz``): the ``aslcontext.tsv`` beside it, and how a site adds metadata.

Nothing here is invented: a field the BIDS schema requires that dcm2niix did not give (M0Type for
Philips, BackgroundSuppression, TotalAcquiredPairs...: :mod:`bids_factory.checks.required_metadata`) holds the
series back, and the reason names the field and how a site adds it.
dcm2niix does not report the label/control order of the volumes (rordenlab/dcm2niix#895), so the
order comes from the heuristic rule (``"bids_factory": {"aslcontext": {"first": [...], "repeat": [...]}}``).
"""

from __future__ import annotations

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
