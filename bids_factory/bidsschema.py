"""The BIDS schema as data (``bidsschematools``), loaded once per process, and the one evaluator of its
selector expressions.

The schema's rules say which files they apply to with selectors in the BIDS expression language
(``datatype == "perf"``, ``intersects(suffix, ["bold", "sbref"])``, ``!("VolumeTiming" in sidecar)``...).
They are parsed by bidsschematools' own parser (``bidsschematools.expressions``, pyparsing: never ``eval``)
and evaluated here over what is known of a file. What is not known (a name absent from the context, a
function outside the subset, arithmetic) makes a selector :data:`UNKNOWN` rather than true or false:
the sidecar allow-list reads that as "may apply" (:mod:`bids_factory.privacy.deidentify`), the
required-field check as "cannot say: left to the validator" (:mod:`bids_factory.checks.required_metadata`).
Imported lazily: a run with nothing new imports neither bidsschematools nor pyparsing.
"""

from __future__ import annotations

import functools
import re

UNKNOWN = type("Unknown", (), {"__repr__": lambda self: "UNKNOWN", "__bool__": None})()  # never truthy by mistake
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_LITERALS = {"true": True, "false": False, "null": None}


@functools.cache
def schema():
    """The official BIDS schema shipped with bidsschematools (one load per process)."""
    from bidsschematools.schema import load_schema

    return load_schema()


@functools.cache
def metadata_names() -> frozenset[str]:
    """Every sidecar field name the BIDS schema defines."""
    return frozenset(entry["name"] for entry in schema().objects.metadata.values())


@functools.cache
def parse(selector: str):
    """A selector's syntax tree (bidsschematools' parser); a selector it cannot parse is ``None``."""
    from bidsschematools import expressions
    from pyparsing import ParseException

    try:
        return expressions.expression.parse_string(selector, parse_all=True)[0]
    except ParseException:
        return None


def evaluate(selector: str, context: dict):
    """``True``, ``False`` or :data:`UNKNOWN`: the selector over ``context`` (names such as ``datatype``,
    ``suffix``, ``entities``, ``sidecar``; a name absent from it, or bound to :data:`UNKNOWN`, is unknown)."""
    tree = parse(selector)
    if tree is None:
        return UNKNOWN
    value = _value(tree, context)
    return value if value is UNKNOWN else bool(value)


def _value(node, context: dict):
    from bidsschematools import expressions as e

    if isinstance(node, str):
        return _atom(node, context)
    if isinstance(node, (int, float)):  # the parser gives numbers as numbers
        return node
    if isinstance(node, e.Array):
        items = [_value(item, context) for item in node.elements]
        return UNKNOWN if any(item is UNKNOWN for item in items) else items
    if isinstance(node, e.Property):
        base = _value(node.name, context)
        return base.get(node.field) if isinstance(base, dict) else UNKNOWN
    if isinstance(node, e.RightOp):
        operand = _value(node.rh, context)
        if operand is UNKNOWN or node.op != "!":
            return UNKNOWN
        return not operand
    if isinstance(node, e.BinOp):
        return _binary(node.op, _value(node.lh, context), _value(node.rh, context))
    if isinstance(node, e.Function):
        return _function(node.name, [_value(arg, context) for arg in node.args])
    return UNKNOWN


def _atom(token: str, context: dict):
    if token[:1] in "\"'":
        return token[1:-1]
    if token in _LITERALS:
        return _LITERALS[token]
    if _NUMBER.match(token):
        return float(token) if "." in token else int(token)
    return context.get(token, UNKNOWN)


def _binary(op: str, left, right):
    if op == "&&":
        if left is False or right is False or (left is not UNKNOWN and not left) or (right is not UNKNOWN and not right):
            return False
        return UNKNOWN if UNKNOWN in (left, right) else True
    if op == "||":
        if (left is not UNKNOWN and left) or (right is not UNKNOWN and right):
            return True
        return UNKNOWN if UNKNOWN in (left, right) else False
    if left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    if op in ("==", "!="):
        return (left == right) == (op == "==")
    if op == "in":
        return left in right if isinstance(right, (dict, list, str)) else UNKNOWN
    if op in ("<", ">", "<=", ">=") and isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op]
    return UNKNOWN


def _function(name: str, args: list):
    if UNKNOWN in args:
        return UNKNOWN
    if name == "intersects" and len(args) == 2:
        first, second = ([a] if not isinstance(a, list) else a for a in args)
        return any(a is not None and a in second for a in first)
    if name == "match" and len(args) == 2 and isinstance(args[1], str):
        return isinstance(args[0], str) and re.search(args[1], args[0]) is not None
    if name == "length" and len(args) == 1:
        return len(args[0]) if isinstance(args[0], (list, str, dict)) else None
    if name == "type" and len(args) == 1:
        return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
            type(args[0]), "number")
    return UNKNOWN
