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


def test_each_fault_of_a_heuristic_names_its_own_line(tmp_path):
    """Several faults in one file: each names the line of its own rule's key (not the first such key of the
    file), the rules before it skipped whole whatever their layout."""
    import json

    rule = {"datatype": "anat", "suffix": "T1w", "criteria": {"SeriesDescription": "t1", "ImageType": ["A", "B"]}}
    rules = [rule, {**rule, "datatype": "anatomy"}, rule, {**rule, "suffix": 5},
             {"datatype": "anat", "suffix": "T2w", "critera": {"SeriesDescription": "t2"}}]
    text = json.dumps({"descriptions": rules}, indent=2).replace('"ImageType": [\n', '"ImageType": [ ')
    path = tmp_path / "site.json"
    path.write_text(text)
    lines = text.splitlines()

    def line_of(marker: str) -> int:
        [number] = [i for i, line in enumerate(lines, start=1) if marker in line]
        return number

    with pytest.raises(errors.HeuristicError) as raised:
        load_heuristic(path)
    message = str(raised.value)
    assert f"at descriptions/4 (line {line_of('critera')}): Additional properties are not allowed" in message
    assert f"at descriptions/1/datatype (line {line_of('anatomy')}): 'anatomy' is not one of" in message
    five = line_of('"suffix": 5')
    assert f"at descriptions/3/suffix (line {five}): 5 is not of type 'string'" in message


def test_a_yaml_mappings_fault_names_its_line(tmp_path):
    from bids_factory.config.check import _line_hint

    text = "tables:\n  - file: a.csv\n  - file: b.csv\n    colums: [x]\n"
    assert _line_hint(text, ["tables", 1, "file"]) == " (line 3)"
    assert _line_hint(text, ["tables", 1, "colums"]) == " (line 4)"
    assert _line_hint(text, ["tables", 0]) == " (line 2)"
