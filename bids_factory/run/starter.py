"""The starter heuristic ``inventory --write-heuristic`` writes: a rule only for what a curator must decide.

A site's heuristic adds to the default (:class:`bids_factory.config.heuristic.Heuristic`), so the starter
holds no rule for what the default places, nor for what is never placed (scouts/localizers, the scanner's
derived maps). It holds one rule per distinct series that

- no rule matches and that is not a scout or a derived map: what is it? (datatype/suffix from the
  classification where it knows them, :data:`PLACEHOLDER` otherwise);
- lacks fields BIDS requires of what it is (a bold without its task, an ASL series without its labelling
  parameters): ``sidecar_changes`` with a placeholder for each field, ``custom_entities`` ``task-EDITME`` for
  a bold without a task, an ``aslcontext`` placeholder for an ASL series.

Criteria are SeriesDescription and ImageType, and EchoNumber where series of one name and ImageType differ
only by their echo; rule names are unique. Convert refuses a heuristic that still holds a placeholder.
"""

from __future__ import annotations

from bids_factory.config.heuristic import PLACEHOLDER
from bids_factory.run.inventory import Inventory, SeriesEntry

NEVER_PLACED = ("derived", "localizer")  # the classification's kinds no rule should place


def starter_heuristic(inventory: Inventory) -> dict:
    """A Dcm2Bids v3 heuristic of the rules a curator must decide (see the module's description)."""
    wanted = [s for v in inventory.visits for s in v.series if _needs_a_rule(s)]
    echoes: dict[tuple, set] = {}
    for s in wanted:
        echoes.setdefault(_name_key(s), set()).add(s.sidecar.get("EchoNumber"))
    rules: dict[tuple, dict] = {}
    names: set[str] = set()
    for s in wanted:
        by_echo = len(echoes[_name_key(s)]) > 1
        key = _name_key(s) + ((s.sidecar.get("EchoNumber"),) if by_echo else ())
        if key not in rules:
            rules[key] = _rule(s, by_echo, names)
    return {
        "bids_factory": {"name": "site", "version": "1"},
        "search_method": "fnmatch",
        "case_sensitive": True,
        "dup_method": "run",
        "descriptions": list(rules.values()),
    }


def _needs_a_rule(s: SeriesEntry) -> bool:
    if s.kind in NEVER_PLACED or s.outcome in ("placed", "ambiguous", "rejected", "not-converted"):
        return False
    return not s.rule or bool(s.missing)  # nothing matched it, or what matched it lacks required fields


def _name_key(s: SeriesEntry) -> tuple:
    return s.series_description, s.image_type


def _rule(s: SeriesEntry, by_echo: bool, names: set[str]) -> dict:
    datatype, _, suffix = s.kind.partition("/") if "/" in s.kind else (PLACEHOLDER, "", PLACEHOLDER)
    criteria: dict = {"SeriesDescription": _literal(s.series_description)}
    if s.image_type:
        criteria["ImageType"] = [_literal(v) for v in s.image_type]
    if by_echo and s.sidecar.get("EchoNumber") is not None:
        criteria["EchoNumber"] = s.sidecar["EchoNumber"]
    name = (s.series_description or f"series {s.series_number}") + (
        f" echo {s.sidecar['EchoNumber']}" if "EchoNumber" in criteria else "")
    unique, count = name, 1
    while unique in names:
        count += 1
        unique = f"{name} #{count}"
    names.add(unique)
    own: dict = {"rule": unique}
    if datatype != PLACEHOLDER:
        own["classified_entities"] = True  # named as the default names it (task, dir, run...)
    rule: dict = {"bids_factory": own, "datatype": datatype, "suffix": suffix, "criteria": criteria}
    if suffix == "asl":
        own["aslcontext"] = {"first": [], "repeat": [PLACEHOLDER]}
    if suffix == "bold" and "task" not in dict(s.entities):
        rule["custom_entities"] = f"task-{PLACEHOLDER}"
    if s.missing:
        rule["sidecar_changes"] = {field: PLACEHOLDER for field in s.missing}
    return rule


def _literal(text: str) -> str:
    """An fnmatch pattern matching exactly ``text`` (its ``*?[`` escaped)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in str(text))
