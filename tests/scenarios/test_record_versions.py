"""What a later run reads back (visit states, visit records) is versioned: an older format is read, a newer
one (written by a later bids-factory) stops the run with one clear line instead of being misread."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bids_factory.cli.main import main

STATE = Path("code") / "bids-factory"


@pytest.fixture
def converted(tmp_path: Path, converted_demo) -> tuple[Path, Path]:
    return converted_demo(tmp_path)


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_every_state_and_record_says_its_version(converted):
    _, bids = converted
    states, records = sorted((bids / STATE / "state").glob("*.json")), sorted((bids / STATE / "visits").glob("*.json"))
    assert states and records
    assert {json.loads(p.read_text())["state_version"] for p in states} == {1}
    assert {json.loads(p.read_text())["record_version"] for p in records} == {2}


def test_a_state_of_the_first_format_is_still_read(converted, capsys):
    export, bids = converted
    for path in (bids / STATE / "state").glob("*.json"):
        _edit(path, lambda data: data.pop("state_version"))
    assert main(["convert", str(export), str(bids), "--quiet", "--no-validate"]) == 0
    assert "visits: 0 placed" in capsys.readouterr().out  # nothing new: the old states were understood


@pytest.mark.parametrize("folder, key", [("state", "state_version"), ("visits", "record_version")])
@pytest.mark.parametrize("index", ["lost", "kept by the newer version"])
def test_a_record_written_by_a_newer_version_stops_the_run_in_one_line(converted, capsys, folder, key, index):
    """The visit index (derived from the records) is built again from them when lost; a newer version that
    keeps it says which formats it indexed."""
    export, bids = converted
    path = sorted((bids / STATE / folder).glob("*.json"))[0]
    _edit(path, lambda data: data.update({key: 99}))
    if index == "lost":
        (bids / STATE / "index.sqlite").unlink()
    else:
        with sqlite3.connect(bids / STATE / "index.sqlite") as db:
            db.execute("UPDATE meta SET value = '99' WHERE key = ?", (key,))
        db.close()
    assert main(["convert", str(export), str(bids), "--quiet", "--no-validate"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    named = path.name if index == "lost" else "index.sqlite"
    assert len(err) == 1 and f"{key} 99 is not one this bids-factory reads" in err[0] and named in err[0]
    assert "Traceback" not in err[0]
