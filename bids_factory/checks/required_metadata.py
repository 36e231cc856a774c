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

import ast
import functools
import re
import warnings
from dataclasses import dataclass

_NEGATION = re.compile(r"!(?!=)")
_WORDS = {"true": "True", "false": "False", "null": "None", "&&": " and ", "||": " or "}
_WORD = re.compile(r"\btrue\b|\bfalse\b|\bnull\b|&&|\|\|")


class _Unknown(Exception):
    """A selector outside the subset evaluated here."""


@dataclass(frozen=True)
class _Rule:
    name: str
    selectors: tuple[ast.Expression, ...]
    required: tuple[str, ...]  # sidecar keys


def required_fields(datatype: str, suffix: str, entities: dict[str, str], sidecar: dict) -> list[str]:
    """The sidecar keys the schema requires of ``<datatype>/..._<suffix>.nii.gz`` with these ``entities``
    and this ``sidecar`` (in the schema's order, each once)."""
    context = {"datatype": datatype, "suffix": suffix, "extension": ".nii.gz", "modality": "mri",
               "entities": dict(entities), "sidecar": sidecar}
    found: dict[str, None] = {}
    for rule in schema_rules():
        try:
            if all(_value(selector.body, context) for selector in rule.selectors):
                found.update(dict.fromkeys(rule.required))
        except _Unknown:
            continue
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
    from bidsschematools.schema import load_schema

    schema = load_schema()
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
                rules.append(_Rule(f"{path}.{name}", tuple(_parse(s) for s in rule.selectors), required))

    walk(schema.rules.sidecars, "sidecars")
    return tuple(rules)


def _parse(selector: str) -> ast.Expression:
    text = _WORD.sub(lambda m: _WORDS[m.group(0)], _NEGATION.sub(" not ", selector))
    try:
        with warnings.catch_warnings():  # regular expressions such as '\.nii' are not Python escapes
            warnings.simplefilter("ignore")
            return ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return ast.Expression(body=ast.Name(id="__unknown__"))


def _value(node: ast.AST, context: dict):
    """The value of a selector node (``_Unknown`` for anything outside the subset)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List):
        return [_value(item, context) for item in node.elts]
    if isinstance(node, ast.Name) and node.id in context:
        return context[node.id]
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("sidecar", "entities"):
        return context[node.value.id].get(node.attr)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _value(node.operand, context)
    if isinstance(node, ast.BoolOp):
        values = (_value(v, context) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = _value(node.left, context), _value(node.comparators[0], context)
        op = node.ops[0]
        if isinstance(op, (ast.Eq, ast.NotEq)):
            return (left == right) == isinstance(op, ast.Eq)
        if isinstance(op, ast.In) and isinstance(right, (dict, list)):
            return left in right
        raise _Unknown
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        args = [_value(a, context) for a in node.args]
        if node.func.id == "intersects" and len(args) == 2:
            first = args[0] if isinstance(args[0], list) else [args[0]]
            second = args[1] if isinstance(args[1], list) else [args[1]]
            return any(a is not None and a in second for a in first)
        if node.func.id == "match" and len(args) == 2 and isinstance(args[1], str):
            return isinstance(args[0], str) and re.search(args[1], args[0]) is not None
        if node.func.id == "length" and len(args) == 1:
            return len(args[0]) if isinstance(args[0], (list, str, dict)) else None
    raise _Unknown
