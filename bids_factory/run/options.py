"""What a run is asked to do (:class:`ConvertOptions`, the CLI's options) and the settings key that says
whether a converted visit is still up to date (:func:`settings_key`).

Light on purpose: a run with nothing to convert reads the heuristic and the sidecar schemas as data for
the key, without checking them; :class:`bids_factory.run.rules.Rules` loads and checks them when a visit is
converted."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from bids_factory import __version__
from bids_factory.config.heuristic import combined_sha256, falls_back_to_default
from bids_factory.config.read import read_config, read_schema_folder
from bids_factory.dates import DatePolicy
from bids_factory.errors import HeuristicError
from bids_factory.resources import default_heuristic, default_sidecar_schemas


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
    rescan: bool = False  # walk every day folder of the export, also those unchanged since the last run
    schemas: Path | None = None  # sidecar schemas folder (default: the shipped schemas/sidecar)
    ehr_mapping: Path | None = None  # EHR mapping file (JSON/YAML); without it columns are detected
    nifti_patient_field: str = "PatientID"  # NIfTI export: the JSON field holding the patient id
    visits: frozenset[str] = field(default_factory=frozenset)  # only these scan_research_ids
    wait: float = 0  # seconds to wait for another run's write lock
    dates: DatePolicy = DatePolicy()  # --dates keep|year|drop
    authors: tuple[str, ...] | None = None  # dataset_description.json Authors (None: keep what is there)
    license: str | None = None  # dataset_description.json License (None: keep what is there)
    # visits whose reported changes to placed images a person decided to apply (converted again)
    apply_changes: frozenset[str] = field(default_factory=frozenset)

    def settings_key(self, heuristic_sha256: str, schemas: dict[str, dict]) -> str:
        """What, besides its sources, decides a visit's output: a change reconverts the visit.

        ``heuristic_sha256``: of the heuristic file's bytes (and its fallback's, :func:`combined_sha256`); ``schemas``: the sidecar schemas' content by name."""
        schema_text = json.dumps(schemas, sort_keys=True)
        return hashlib.sha256(
            f"{__version__}|rules={OUTPUT_RULES}|{heuristic_sha256}|{self.keep_site_fields}|{schema_text}"
            f"|dates={self.dates.mode}".encode()
        ).hexdigest()


# Raised whenever what a placed visit contains changes for the same sources and options (what
# de-identification removes, how series are named): every visit converted under earlier rules is
# converted again by the next run. 2: scanner free text removed by default, NIfTI header extensions
# blanked, dir- from the image orientation, required fields from the BIDS schema.
OUTPUT_RULES = 2


def settings_key(options: ConvertOptions) -> str:
    """The settings key of ``options`` from the files' content (read, not checked: nothing is converted
    yet); the same key :class:`bids_factory.run.rules.Rules` gives once loaded. An unreadable file or one that
    is not JSON stops the run here with its one-line error."""
    path = options.heuristic or default_heuristic()
    config, raw, _ = read_config(path, "heuristic", HeuristicError)
    digests = [hashlib.sha256(raw).hexdigest()]
    if falls_back_to_default(options.heuristic, config):  # the default's rules match too: they are in the key
        digests.append(hashlib.sha256(read_config(default_heuristic(), "heuristic", HeuristicError)[1]).hexdigest())
    schemas = read_schema_folder(Path(options.schemas) if options.schemas else default_sidecar_schemas())
    return options.settings_key(combined_sha256(digests), schemas)
