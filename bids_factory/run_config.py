"""What a run is asked to do (:class:`ConvertOptions`, the CLI's options) and the rules it applies
(:class:`Rules`: heuristic, sidecar schemas, EHR mapping), loaded and checked before any conversion."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from bids_factory import __version__
from bids_factory.dates import DatePolicy
from bids_factory.ehr import load_ehr_mapping
from bids_factory.errors import HeuristicError
from bids_factory.heuristic import PLACEHOLDER_SUFFIX, Heuristic, load_heuristic
from bids_factory.sidecar_check import SidecarSchemas, load_sidecar_schemas


@dataclass(frozen=True)
class ConvertOptions:
    export: Path
    bids: Path
    heuristic: Path | None = None
    jobs: int = 1
    participant_labels: frozenset[str] = field(default_factory=frozenset)
    validate: bool = True
    dataset_name: str | None = None
    keep_site_fields: bool = False
    reconvert: bool = False
    schemas: Path | None = None  # sidecar schemas folder (default: the shipped schemas/sidecar)
    ehr_mapping: Path | None = None  # EHR mapping file (JSON/YAML); without it columns are detected
    nifti_patient_field: str = "PatientID"  # NIfTI export: the JSON field holding the patient id
    visits: frozenset[str] = field(default_factory=frozenset)  # only these scan_research_ids
    wait: float = 0  # seconds to wait for another run's write lock
    dates: DatePolicy = DatePolicy()  # --dates keep|year|drop
    authors: tuple[str, ...] | None = None  # dataset_description.json Authors (None: keep what is there)
    license: str | None = None  # dataset_description.json License (None: keep what is there)

    def settings_key(self, heuristic: Heuristic, schemas: SidecarSchemas) -> str:
        """What, besides its sources, decides a visit's output: a change reconverts the visit."""
        schema_text = json.dumps(schemas.schemas, sort_keys=True)
        return hashlib.sha256(
            f"{__version__}|{heuristic.sha256}|{self.keep_site_fields}|{schema_text}|dates={self.dates.mode}".encode()
        ).hexdigest()


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
        for description in heuristic.descriptions:
            named = description.get("bids_factory", {}).get("sidecar_schema")
            if named and named not in schemas.names:
                raise HeuristicError(
                    f"heuristic {heuristic.path}: rule {heuristic.rule_name(description)} names the sidecar schema "
                    f"{named!r}, which is not in {schemas.folder} (there: {', '.join(schemas.names)})"
                )
        mapping = load_ehr_mapping(options.ehr_mapping) if options.ehr_mapping else None
        return cls(heuristic, schemas, mapping)
