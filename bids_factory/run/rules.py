"""The rules a conversion applies (:class:`Rules`: heuristic, sidecar schemas, EHR mapping), loaded and
checked (against their JSON Schemas) before any visit is converted."""

from __future__ import annotations

from dataclasses import dataclass

from bids_factory.ehr.tables import load_ehr_mapping
from bids_factory.errors import HeuristicError
from bids_factory.config.heuristic import PLACEHOLDER_SUFFIX, Heuristic, load_heuristic
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
            raise HeuristicError(
                f"heuristic {heuristic.path}: {len(unedited)} rule(s) still have the placeholder suffix "
                f"{PLACEHOLDER_SUFFIX!r} (first: {unedited[0]}): set their datatype and suffix, or delete them")
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
