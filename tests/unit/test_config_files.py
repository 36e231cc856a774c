"""Configuration files (heuristic, EHR mapping, sidecar schemas) are read by one rule, and every
exception of the package is a precise error from bids_factory/errors.py."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import shutil
from pathlib import Path

import pytest

import bids_factory
from bids_factory import errors
from bids_factory.ehr.mapping import load_ehr_mapping
from bids_factory.config.heuristic import load_heuristic
from bids_factory.resources import default_heuristic
from bids_factory.checks.sidecar_schemas import default_folder, load_sidecar_schemas

BOM = b"\xef\xbb\xbf"


def _heuristic(tmp_path: Path, data: bytes):
    path = tmp_path / "heuristic.json"
    path.write_bytes(data)
    return lambda: load_heuristic(path), path, errors.HeuristicError, "heuristic"


def _mapping(tmp_path: Path, data: bytes):
    path = tmp_path / "mapping.json"
    path.write_bytes(data)
    return lambda: load_ehr_mapping(path), path, errors.EhrMappingError, "EHR mapping"


def _schema(tmp_path: Path, data: bytes):
    folder = tmp_path / "schemas"
    shutil.copytree(default_folder(), folder)
    path = folder / "T1w.schema.json"
    path.write_bytes(data)
    return lambda: load_sidecar_schemas(folder), path, errors.SidecarSchemaError, "sidecar schema"


LOADERS = [_heuristic, _mapping, _schema]


@pytest.mark.parametrize("loader", LOADERS)
def test_syntax_error_names_the_file_line_and_column(loader, tmp_path):
    load, path, error, what = loader(tmp_path, b'{\n  "descriptions": [],\n}\n')
    with pytest.raises(error) as raised:
        load()
    assert str(raised.value) == (f"{what} {path}: not valid JSON at line 3, column 1: "
                                 "Expecting property name enclosed in double quotes")


@pytest.mark.parametrize("loader", LOADERS)
def test_undecodable_file_is_the_same_message(loader, tmp_path):
    load, path, error, what = loader(tmp_path, b'{"a": "caf\xe9"}')
    with pytest.raises(error) as raised:
        load()
    assert str(raised.value) == f"{what} {path}: not UTF-8 text (invalid continuation byte at byte 10)"


@pytest.mark.parametrize("loader", LOADERS)
def test_unreadable_file_is_the_same_message(loader, tmp_path):
    load, path, error, what = loader(tmp_path, b"{}")
    path.unlink()
    path.mkdir()  # a folder where the file should be
    with pytest.raises(error) as raised:
        load()
    assert str(raised.value) == f"{what} {path}: cannot be read (Is a directory)"


@pytest.mark.parametrize("loader, content", [
    (_heuristic, default_heuristic().read_bytes()),
    (_mapping, b'{"tables": {}}'),
    (_schema, (default_folder() / "T1w.schema.json").read_bytes()),
])
def test_utf8_byte_order_mark_is_accepted(loader, content, tmp_path):
    load, *_ = loader(tmp_path, BOM + content)
    assert load()


def test_every_exception_is_a_precise_error_in_errors_py():
    """Public exception classes are defined in errors.py only, and all are BidsFactoryError (the CLI
    turns those into one line)."""
    misplaced, not_ours = [], []
    for module_info in pkgutil.iter_modules(bids_factory.__path__):
        if module_info.name == "__main__":
            continue
        module = importlib.import_module(f"bids_factory.{module_info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__ and not name.startswith("_"):
                misplaced.append(f"{module.__name__}.{name}")
    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__ and cls is not errors.BidsFactoryError:
            if not issubclass(cls, errors.BidsFactoryError):
                not_ours.append(name)
    assert [m for m in misplaced if not m.startswith("bids_factory.errors.")] == []
    assert not_ours == []
    assert {"CsvError", "EhrMappingError", "SidecarSchemaError"} <= {n.split(".")[-1] for n in misplaced}
