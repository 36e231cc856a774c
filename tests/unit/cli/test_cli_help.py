"""The command line helps: commands listed, examples in --help, "did you mean" for a typo, no pointer to
files the wheel does not carry; --authors/--license fill dataset_description.json without overwriting
a curator's edit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bids_factory.cli.main import main
from bids_factory.cli.args import command_line as _parser
from bids_factory.finalize.dataset_files import dataset_files
from bids_factory.write.dataset_writer import DatasetWriter


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bids_factory", *args], capture_output=True, text=True)


def test_bare_command_lists_the_commands():
    done = _run()
    assert done.returncode == 2 and "Traceback" not in done.stderr
    for command in ("convert", "inventory", "visits", "demo"):
        assert f"    {command} " in done.stdout
    assert "inventory -> write the heuristic -> convert -> open the report" in done.stdout


@pytest.mark.parametrize("args, hint", [
    (["convert", "e", "b", "--heurstic", "h.json"], "did you mean --heuristic?"),
    (["convert", "e", "b", "--autors", "A"], "did you mean --authors?"),
    (["inventory", "e", "--jsn"], "did you mean --json?"),
    (["convet", "e", "b"], "did you mean convert?"),
])
def test_mistyped_option_or_command_gets_a_suggestion(args, hint):
    done = _run(*args)
    assert done.returncode == 2 and hint in done.stderr and "Traceback" not in done.stderr


def test_help_has_examples_and_points_to_nothing_the_wheel_lacks():
    parser = _parser()
    commands = parser._subparsers._group_actions[0].choices
    texts = [parser.format_help()] + [sub.format_help() for sub in commands.values()]
    assert "examples:" in commands["convert"].format_help() and "examples:" in commands["inventory"].format_help()
    assert "bids-factory inventory /data/export --write-heuristic site.json" in commands["inventory"].format_help()
    for text in texts:
        assert "docs/" not in text  # the wheel carries bids_factory/ (with heuristics/, schemas/) only


def test_authors_and_license_are_merged_never_invented(tmp_path: Path):
    writer = DatasetWriter(tmp_path / "bids")
    first = json.loads(dataset_files(writer, "v1")["dataset_description.json"])
    assert "Authors" not in first and "License" not in first  # not invented
    writer.write_json("dataset_description.json", {**first, "Authors": ["A. Curator"], "Funding": ["grant 7"]})
    kept = json.loads(dataset_files(writer, "v1")["dataset_description.json"])
    assert kept["Authors"] == ["A. Curator"] and kept["Funding"] == ["grant 7"]  # the curator's edit stays
    given = json.loads(dataset_files(writer, "v1", authors=("B. Engineer", "C. Nurse"),
                                     license="CC-BY-4.0")["dataset_description.json"])
    assert given["Authors"] == ["B. Engineer", "C. Nurse"] and given["License"] == "CC-BY-4.0"
    assert given["Funding"] == ["grant 7"]


def test_convert_passes_authors_and_license(tmp_path: Path, monkeypatch):
    from bids_factory.run import pipeline as pipeline
    from bids_factory.errors import BidsFactoryError

    seen = {}

    def fake_convert(options):
        seen.update(authors=options.authors, license=options.license)
        raise BidsFactoryError("stop here")

    monkeypatch.setattr(pipeline, "convert", fake_convert)
    assert main(["convert", str(tmp_path), str(tmp_path / "b"), "--authors", "A B", "C D", "--license", "CC0"]) == 1
    assert seen == {"authors": ("A B", "C D"), "license": "CC0"}
