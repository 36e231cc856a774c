"""The sidecar fields BIDS requires of an image, read from the official schema (``bidsschematools``).

The schema's ``rules.sidecars`` say, per group of files, which metadata fields are required, with
selectors in the BIDS expression language (``datatype == "perf"``, ``suffix == "asl"``,
``sidecar.M0Type == "Estimate"``, ``!("VolumeTiming" in sidecar)``...). The selectors a placed MRI image
can meet are evaluated here over a safe subset of that language, parsed with :mod:`ast` (never
``eval``): comparisons, ``in``, ``intersects``, ``match``, ``length``, ``!``/``&&``/``||``, literals
and ``datatype``, ``suffix``, ``extension``, ``modality``, ``entities.<name>``, ``sidecar.<name>``. A
rule whose selectors use anything else (the dataset, other files, schema objects) is left to the
validator, which checks every batch before it is placed.

So a field BIDS requires that dcm2niix does not give holds the series back with the field named (never
invented), whatever the suffix, and the list follows the schema as BIDS evolves.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from bids_factory import bidsschema


@dataclass(frozen=True)
class _Rule:
    name: str
    selectors: tuple[str, ...]
    required: tuple[str, ...]  # sidecar keys


def required_fields(datatype: str, suffix: str, entities: dict[str, str], sidecar: dict) -> list[str]:
    """The sidecar keys the schema requires of ``<datatype>/..._<suffix>.nii.gz`` with these ``entities``
    and this ``sidecar`` (in the schema's order, each once)."""
    context = {"datatype": datatype, "suffix": suffix, "extension": ".nii.gz", "modality": "mri",
               "entities": dict(entities), "sidecar": sidecar}
    found: dict[str, None] = {}
    for rule in schema_rules():  # a rule applies when every selector is true; an unknown one is the validator's
        if all(bidsschema.evaluate(selector, context) is True for selector in rule.selectors):
            found.update(dict.fromkeys(rule.required))
    return list(found)


def missing_fields(datatype: str, suffix: str, entities: dict[str, str], sidecar: dict) -> list[str]:
    return [key for key in required_fields(datatype, suffix, entities, sidecar) if key not in sidecar]


_ASL_EXAMPLE = '{"M0Type": "Separate", "BackgroundSuppression": false, "TotalAcquiredPairs": 30}'


def missing_reason(suffix: str, missing: list[str]) -> str:
    """Why a series is held back for fields BIDS requires, and how a site adds what its scanner does not
    report (an ASL series gets a full example)."""
    example = _ASL_EXAMPLE if suffix == "asl" else "{" + ", ".join(f'"{key}": ...' for key in missing) + "}"
    return (f"{suffix}: BIDS requires {', '.join(missing)}, which the series' sidecar does not give; a site "
            f"adds what its scanner does not report with sidecar_changes in its own heuristic (e.g. {example})")


@functools.cache
def schema_rules() -> tuple[_Rule, ...]:
    """The schema's sidecar rules that require a field, selectors parsed (built once per process)."""
    schema = bidsschema.schema()
    metadata = schema.objects.metadata
    rules: list[_Rule] = []

    def walk(namespace, path: str) -> None:
        for name, rule in namespace.items():
            if "selectors" not in rule:
                walk(rule, f"{path}.{name}")
                continue
            required = tuple(metadata[field].name if field in metadata else field
                             for field, level in (rule.get("fields") or {}).items()
                             if (level if isinstance(level, str) else level.get("level")) == "required")
            if required:
                rules.append(_Rule(f"{path}.{name}", tuple(rule.selectors), required))

    walk(schema.rules.sidecars, "sidecars")
    return tuple(rules)
