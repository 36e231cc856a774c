"""Heuristic files: Dcm2Bids v3 configuration files, checked by ``schemas/heuristic.schema.json``."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

from bids_factory import bidsschema
from bids_factory.errors import HeuristicError
from bids_factory.config.check import schema_faults
from bids_factory.config.read import read_config
from bids_factory.resources import default_heuristic

log = logging.getLogger(__name__)
PLACEHOLDER = "EDITME"  # what a starter heuristic (``inventory --write-heuristic``) leaves to the curator
# The keys plan's classification adds to the copy of a sidecar dcm2bids matches on (never to a placed
# sidecar): a rule's criteria may name them (the default heuristic does), so they are fields a heuristic knows.
CLASSIFIED_KEY_PREFIX = "BidsFactory"
CLASSIFIED_KEYS = frozenset(f"{CLASSIFIED_KEY_PREFIX}{name}" for name in ("Class", "Hold", "Entities", "Volumes"))


@dataclass(frozen=True)
class Heuristic:
    """A heuristic file; a site's heuristic carries the default as its ``fallback`` (unless it says
    ``"bids_factory": {"fallback_to_default": false}``): a series no site rule matches is matched by the
    default's rules, and a site rule wins over a default rule on the same series."""

    path: Path
    name: str
    sha256: str
    config: dict
    fallback: "Heuristic | None" = None

    @property
    def descriptions(self) -> list[dict]:
        """This file's own rules (not the fallback's)."""
        return self.config["descriptions"]

    @property
    def layers(self) -> tuple["Heuristic", ...]:
        """The files whose rules match, in order of precedence (the site's, then the default's)."""
        return (self, self.fallback) if self.fallback else (self,)

    @property
    def all_descriptions(self) -> list[dict]:
        return [d for layer in self.layers for d in layer.descriptions]

    @property
    def combined_sha256(self) -> str:
        """What the records and the settings key name: this file's bytes, and the fallback's when there is one."""
        return combined_sha256([layer.sha256 for layer in self.layers])

    @property
    def combined_name(self) -> str:
        return " + ".join(layer.name for layer in self.layers)

    def layer_of(self, description: dict) -> "Heuristic":
        return next(layer for layer in self.layers if any(d is description for d in layer.descriptions))

    def rule_name(self, description: dict) -> str:
        """The rule's own name, or ``#<index> <datatype>/<suffix>``; with a fallback, prefixed with the name of
        the file that holds the rule (``site:t1w``, ``bids-factory-default:bold``)."""
        if self.fallback:
            layer = self.layer_of(description)
            return f"{layer.name}:{replace(layer, fallback=None).rule_name(description)}"
        named = description.get("bids_factory", {}).get("rule")
        if named:
            return named
        index = next(i for i, d in enumerate(self.descriptions) if d is description)
        return f"#{index} {description['datatype']}/{description['suffix']}"

    def placeholder_rules(self) -> list[tuple[str, str]]:
        """(rule, where) for every value of a rule still holding the starter's placeholder (not edited yet):
        ``datatype``, ``suffix``, ``custom_entities``, a ``sidecar_changes`` field, an aslcontext..."""
        return [(self.rule_name(d), where) for d in self.descriptions for where in _placeholders(d, "")]

    def criteria_fields(self) -> dict[str, list[str]]:
        """Sidecar field named in a rule's criteria -> the rules naming it."""
        fields: dict[str, list[str]] = {}
        for description in self.all_descriptions:
            for name in description.get("criteria", {}):
                fields.setdefault(name, []).append(self.rule_name(description))
        return fields


def _placeholders(value, where: str) -> list[str]:
    if isinstance(value, dict):
        return [w for key, item in value.items() for w in _placeholders(item, f"{where}/{key}" if where else key)]
    if isinstance(value, list):
        return [w for item in value for w in _placeholders(item, where)]
    return [where] if isinstance(value, str) and PLACEHOLDER in value else []


def unknown_criteria(heuristic: Heuristic, sidecar_fields: frozenset[str]) -> list[tuple[str, str, str | None]]:
    """(field, rules, closest known field) for every criteria field that no sidecar of the run holds.

    Known fields: those of the sidecars converted in this run, the BIDS schema's metadata fields,
    dcm2bids' own ``SidecarFilename`` and the keys the classifying step derives (``BidsFactory*``: a
    series has only those that apply, so a run may have none with ``BidsFactoryHold``). A field close to a known one (``SeriesDescriptoin``) is a typo: the
    caller refuses it; one that is merely absent (a vendor's field on another vendor's day) is a note.
    """
    fields = heuristic.criteria_fields()
    missing = [name for name in fields if name not in sidecar_fields | DCM2BIDS_FIELDS | CLASSIFIED_KEYS]
    if not missing:
        return []
    known = sorted(sidecar_fields | DCM2BIDS_FIELDS | bidsschema.metadata_names())
    found = []
    for name in missing:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
        found.append((name, ", ".join(fields[name]), close[0] if close else None))
    return found


DCM2BIDS_FIELDS = frozenset({"SidecarFilename"})


def _invalid_pattern(config: dict, text: str) -> str | None:
    """With ``search_method: re``, the first criteria value that is not a regular expression, named by
    its rule and line (dcm2bids would fail every visit on it)."""
    if config.get("search_method") != "re":
        return None
    for index, description in enumerate(config.get("descriptions", [])):
        for field, value in description.get("criteria", {}).items():
            for pattern in _strings(value):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    rule = description.get("bids_factory", {}).get("rule") or \
                        f"#{index} {description.get('datatype')}/{description.get('suffix')}"
                    at = text.find(json.dumps(pattern))
                    line = f" (line {text.count(chr(10), 0, at) + 1})" if at >= 0 else ""
                    return (f"rule {rule}: criteria {field} {pattern!r}{line} is not a regular expression "
                            f"({exc}) and search_method is re: escape the special character with a backslash "
                            "(\\\\ in JSON), or use search_method fnmatch")
    return None


def _strings(value) -> list[str]:
    """Every string in a criteria value (a string, a list, ``{"any": [...]}``/``{"all": [...]}``)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []


def combined_sha256(digests: list[str]) -> str:
    """One file's digest as is; a site file and its fallback: the digest of both (either changing changes it)."""
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("+".join(digests).encode()).hexdigest()


def falls_back_to_default(path: Path | None, config: dict) -> bool:
    """A site's heuristic adds to the default unless it says ``"bids_factory": {"fallback_to_default": false}``;
    the default itself has no fallback."""
    if path is None or Path(path).resolve() == default_heuristic().resolve():
        return False
    own = config.get("bids_factory", {}) if isinstance(config, dict) else {}
    return own.get("fallback_to_default", True) is not False


def load_heuristic(path: Path | None = None) -> Heuristic:
    """Read and check a heuristic (a site's with the default as its fallback, see :class:`Heuristic`); any
    fault is a :class:`HeuristicError` naming where it is."""
    own = _load_file(path or default_heuristic())
    if falls_back_to_default(path, own.config):
        return replace(own, fallback=_load_file(default_heuristic()))
    return own


def _load_file(path: Path) -> Heuristic:
    config, raw, text = read_config(path, "heuristic", HeuristicError)
    faults = schema_faults(config, "heuristic.schema.json", text)
    if faults:
        raise HeuristicError(f"heuristic {path}: {faults}")
    bad_pattern = _invalid_pattern(config, text)
    if bad_pattern:
        raise HeuristicError(f"heuristic {path}: {bad_pattern}")
    if config.get("post_op"):
        log.warning("heuristic %s: post_op is ignored (bids-factory never runs shell commands from a heuristic)", path)
    name = config.get("bids_factory", {}).get("name") or path.stem
    return Heuristic(path=path.resolve(), name=name, sha256=hashlib.sha256(raw).hexdigest(), config=config)
