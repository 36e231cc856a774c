"""Sidecar schemas: is a placed image "well-defined"?

Each ``<name>.schema.json`` of a schemas folder (default: the shipped ``schemas/sidecar``; a site
passes its own with ``--schemas DIR``) says what a well-defined image of one BIDS suffix is. A
placement is checked against the schema its heuristic rule names (``"bids_factory":
{"sidecar_schema": "T1w-strict"}``) or else the one named like its suffix; a suffix without a
schema is accepted. The instance validated is the sidecar plus two keys read from the NIfTI header
(header only, never the voxels), which are not written anywhere:

- ``ImageDimensions``: the image shape ``[x, y, z(, t)]`` (trailing size-1 dimensions after the third dropped);
- ``VoxelSize``: the voxel edge lengths in mm ``[dx, dy, dz]``, rounded to 4 decimals.

Schemas may ``$ref`` each other by file name (every shipped schema refers to
``forbidden.schema.json``, the de-identification deny list). See ``docs/schemas.md``.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import nibabel as nib
import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema.exceptions import SchemaError, ValidationError

from bids_factory.config.read import SCHEMA_SUFFIX as SUFFIX, read_schema_folder
from bids_factory.errors import SidecarSchemaError
from bids_factory.model import Placement
from bids_factory.resources import default_sidecar_schemas

BASE_URI = "https://bids-factory.org/schemas/sidecar/"
_REQUIRED = re.compile(r"^'(.+)' is a required property$")


@dataclass(frozen=True)
class SidecarSchemas:
    """The sidecar schemas of one folder, by name (file name without ``.schema.json``). Picklable."""

    folder: Path
    schemas: dict[str, dict]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.schemas))

    def validator(self, name: str) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator(self.schemas[name], registry=_registry(self.schemas))


def default_folder() -> Path:
    return default_sidecar_schemas()


def load_sidecar_schemas(folder: Path | None = None) -> SidecarSchemas:
    """Read and check every ``*.schema.json`` of ``folder``; any fault is a :class:`SidecarSchemaError`."""
    folder = Path(folder) if folder is not None else default_folder()
    schemas = read_schema_folder(folder)
    _check_schemas(str(folder), json.dumps(schemas, sort_keys=True))
    return SidecarSchemas(folder=folder.resolve(), schemas=schemas)


@functools.lru_cache(maxsize=8)
def _check_schemas(folder: str, text: str) -> None:
    """Each schema of ``text`` (the folder's schemas as JSON) is a valid JSON Schema whose every $ref resolves
    now, not in the middle of a conversion. Checked once per content in a process (a fault is not cached:
    it is raised each time)."""
    schemas = json.loads(text)
    for name, content in schemas.items():
        try:
            jsonschema.Draft202012Validator.check_schema(content)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
            raise SidecarSchemaError(
                f"sidecar schema {Path(folder) / (name + SUFFIX)}: not a valid JSON Schema at {where}: {exc.message}"
            ) from exc
    loaded = SidecarSchemas(folder=Path(folder), schemas=schemas)
    for name in loaded.names:
        try:
            list(loaded.validator(name).iter_errors({}))
        except referencing.exceptions.Unresolvable as exc:
            raise SidecarSchemaError(
                f"sidecar schema {Path(folder) / (name + SUFFIX)}: cannot resolve $ref {exc}") from exc


def _registry(schemas: dict[str, dict]) -> referencing.Registry:
    """Each schema under ``BASE_URI + file name`` and under its own ``$id``: file-name $refs resolve."""
    registry = referencing.Registry()
    for name, content in schemas.items():
        resource = referencing.Resource.from_contents(
            content, default_specification=referencing.jsonschema.DRAFT202012
        )
        uris = {BASE_URI + name + SUFFIX, content.get("$id") if isinstance(content.get("$id"), str) else None}
        registry = registry.with_resources((uri, resource) for uri in uris if uri)
    return registry


def header_facts(nifti: Path) -> dict:
    """``ImageDimensions`` and ``VoxelSize`` from the NIfTI header (the voxel data are not read)."""
    header = nib.load(str(nifti)).header
    shape = [int(n) for n in header.get_data_shape()]
    while len(shape) > 3 and shape[-1] == 1:
        shape.pop()
    zooms = [round(float(z), 4) for z in header.get_zooms()[:3]]
    return {"ImageDimensions": shape, "VoxelSize": zooms}


def check_placement(schemas: SidecarSchemas, placement: Placement, schema_name: str | None = None) -> list[str]:
    """Every fault of ``placement`` against its schema, one precise message each; [] when well-defined."""
    name = schema_name or placement.stem.rsplit("_", 1)[-1]
    if name not in schemas.schemas:
        if schema_name:
            return [f"sidecar schema {schema_name!r} named by the heuristic rule is not in {schemas.folder} "
                    f"(available: {', '.join(schemas.names)})"]
        return []
    label = f"the {name} schema"
    try:
        facts = header_facts(placement.series.nifti)
    except Exception as exc:  # nibabel raises many types for a damaged or missing file
        return [f"cannot read the NIfTI header of {placement.series.nifti.name} to check it against {label}: {exc}"]
    instance = {**placement.sidecar, **facts}
    try:
        errors = sorted(schemas.validator(name).iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    except referencing.exceptions.Unresolvable as exc:
        return [f"{label} cannot resolve $ref {exc}"]
    return list(dict.fromkeys(_message(error, name, instance) for error in errors))  # one line per fault


_BOUNDS = {"minimum": "fewer than", "exclusiveMinimum": "not more than", "maximum": "more than",
           "exclusiveMaximum": "not fewer than"}
# The two keys read from the NIfTI header, in words, with their unit
_HEADER_KEYS = {"VoxelSize": ("voxel size", " mm"), "ImageDimensions": ("image of", " voxels")}


def _field(error: ValidationError) -> str:
    """The sidecar field a fault is about (its first path part), never an index."""
    parts = [p for p in error.absolute_path if not isinstance(p, int)]
    return str(parts[0]) if parts else ""


def _value(key: str, value, instance: dict) -> str:
    """A value in words: the header keys as a vector with their unit (all axes: one message, not one per axis)."""
    if key in _HEADER_KEYS:
        words, unit = _HEADER_KEYS[key]
        vector = instance.get(key) or []
        return f"{words} {' x '.join(f'{round(v, 2):g}' for v in vector)}{unit}"
    return f"{key} {value!r}" if key else repr(value)


def _message(error: ValidationError, schema_name: str, instance: dict) -> str:
    """One fault in plain words: the field, what is wrong, the schema's bound with its title; no schema path,
    and never the value of a forbidden key."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    key, title, which = _field(error), schema.get("title"), f"the {schema_name} schema"
    unit = _HEADER_KEYS.get(key, ("", ""))[1]
    bound = error.validator_value
    if error.validator == "required":
        match = _REQUIRED.match(error.message)
        missing = match.group(1) if match else key
        sub = schema.get("properties", {}).get(missing, {}) if missing else {}
        title = sub.get("title") if isinstance(sub, dict) else None
        text = f"{missing} is missing: {which} requires it"
    elif error.validator == "not" and bound == {}:
        text = f"{key} must never appear in a sidecar"
    elif error.validator == "not":
        text = f"{key} {error.instance!r} is not allowed by {which}"
    elif error.validator == "const":
        text = f"{key} is {error.instance!r}, {which} requires {bound!r}"
    elif error.validator == "contains" and isinstance(bound, dict) and "const" in bound:
        text = f"{key} {'/'.join(map(str, error.instance))} has no {bound['const']!r}, which {which} requires"
    elif key == "ImageDimensions" and error.validator in _BOUNDS and error.absolute_path:
        axis = ("columns", "rows", "slices", "volumes")[min(int(error.absolute_path[-1]), 3)]
        text = (f"{_value(key, error.instance, instance)} has {error.instance} {axis}, "
                f"{_BOUNDS[error.validator]} {which}'s {'limit' if 'ax' in error.validator else 'minimum'} of {bound:g}")
    elif error.validator in ("maximum", "exclusiveMaximum"):
        text = f"{_value(key, error.instance, instance)} is larger than {which}'s limit of {bound:g}{unit}"
    elif error.validator in ("minimum", "exclusiveMinimum"):
        text = f"{_value(key, error.instance, instance)} is smaller than {which}'s minimum of {bound:g}{unit}"
    elif error.validator in ("minItems", "maxItems") and key in _HEADER_KEYS:
        text = (f"{_value(key, error.instance, instance)}: {len(error.instance)} dimensions, {which} requires "
                f"{'at least' if error.validator == 'minItems' else 'at most'} {bound}")
    elif error.validator == "type":
        text = f"{_value(key, error.instance, instance)} is not of type {bound!r}, as {which} requires"
    else:
        text = f"{key}: {error.message} ({which})" if key else f"{error.message} ({which})"
    return f"{text} ({title})" if title else text
