"""Sidecar schemas are checked once per content in a process: a folder changed since is checked again."""

from __future__ import annotations

import json
import shutil

import pytest

from bids_factory.checks.sidecar_schemas import load_sidecar_schemas
from bids_factory.errors import SidecarSchemaError
from bids_factory.resources import default_sidecar_schemas


def test_a_schema_broken_after_a_good_load_is_refused_and_a_repaired_one_loads(tmp_path):
    folder = tmp_path / "schemas"
    shutil.copytree(default_sidecar_schemas(), folder)
    good = (folder / "T1w.schema.json").read_text()
    assert "T1w" in load_sidecar_schemas(folder).names
    (folder / "T1w.schema.json").write_text(json.dumps({**json.loads(good), "type": 12}))
    for _ in range(2):  # a fault is raised each time, never remembered as checked
        with pytest.raises(SidecarSchemaError, match="T1w.schema.json: not a valid JSON Schema"):
            load_sidecar_schemas(folder)
    (folder / "T1w.schema.json").write_text(json.dumps({**json.loads(good), "$ref": "missing.schema.json"}))
    with pytest.raises(SidecarSchemaError, match="cannot resolve"):
        load_sidecar_schemas(folder)
    (folder / "T1w.schema.json").write_text(good)
    assert load_sidecar_schemas(folder).schemas["T1w"] == json.loads(good)
