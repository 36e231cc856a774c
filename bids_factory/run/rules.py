"""The rules a conversion applies (:class:`Rules`: heuristic, sidecar schemas, EHR mapping), loaded and
checked (against their JSON Schemas) before any visit is converted."""

from __future__ import annotations

from dataclasses import dataclass

from bids_factory.ehr.tables import load_ehr_mapping
from bids_factory.errors import HeuristicError
from bids_factory.config.heuristic import PLACEHOLDER, Heuristic, load_heuristic
from bids_factory.run.options import ConvertOptions
from bids_factory.checks.sidecar_schemas import SidecarSchemas, load_sidecar_schemas


@dataclass(frozen=True)
class Rules:
    """What decides where and whether a series is placed, loaded once before any conversion."""

    heuristic: Heuristic
    schemas: SidecarSchemas
    ehr_mapping: dict | None = None

    @classmethod
    def load(cls, options: ConvertOptions, allow_placeholders: bool = False) -> "Rules":
        heuristic, schemas = load_heuristic(options.heuristic), load_sidecar_schemas(options.schemas)
        unedited = heuristic.placeholder_rules()
        if unedited and not allow_placeholders:
            rules = list(dict.fromkeys(rule for rule, _ in unedited))
            raise HeuristicError(
                f"heuristic {heuristic.path}: {len(rules)} rule(s) still hold the placeholder {PLACEHOLDER!r} "
                f"(first: rule {rules[0]!r} at {', '.join(w for r, w in unedited if r == rules[0])}): replace each "
                f"{PLACEHOLDER} with what the series is (bids-factory inventory shows it), or delete the rule")
        for description in heuristic.all_descriptions:
            named = description.get("bids_factory", {}).get("sidecar_schema")
            if named and named not in schemas.names:
                raise HeuristicError(
                    f"heuristic {heuristic.path}: rule {heuristic.rule_name(description)} names the sidecar schema "
                    f"{named!r}, which is not in {schemas.folder} (there: {', '.join(schemas.names)})"
                )
        mapping = load_ehr_mapping(options.ehr_mapping) if options.ehr_mapping else None
        return cls(heuristic, schemas, mapping)

    def settings_key(self, options: ConvertOptions) -> str:
        """The key recorded with a visit converted by these rules (see :func:`bids_factory.run.options.settings_key`)."""
        return options.settings_key(self.heuristic.combined_sha256, self.schemas.schemas)
