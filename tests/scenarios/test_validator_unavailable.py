"""The validator gate never waves images through: a validator that is missing, or installed but unable to
check the converted visits (Deno refuses a path under /dev, it crashes), stops the run in one line before
anything is placed; the next run with a working validator places everything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bids_factory.checks import validator
from bids_factory.cli.main import main

# what bids-validator-deno prints when its runtime refuses the dataset path: colours, then a stack trace
DENO_REFUSAL = (
    '\x1b[0m\x1b[1m\x1b[31merror\x1b[0m: Uncaught (in promise) NotCapable: Requires all access to '
    '"/dev/shm/site/bids/code/x", run again with the --allow-all flag\n'
    '    \x1b[0m\x1b[2m\x1b[38;5;245mat \x1b[0m\x1b[0m\x1b[2m\x1b[38;5;245mgetRid\x1b[0m (ext:deno_fs/30_fs.js:1:3183)\n'
    '    at async \x1b[0m\x1b[36mfile:///venv/lib/python3.11/src/main.ts\x1b[0m:\x1b[0m\x1b[33m69\x1b[0m:1\n')


def _images(bids: Path) -> list[Path]:
    return sorted(bids.glob("sub-*/ses-*/*/*.nii.gz"))


def _fake_validator(folder: Path, stderr: str) -> str:
    script = folder / "bids-validator-deno"
    (folder / "stderr.txt").write_text(stderr)
    script.write_text(f"#!/bin/sh\ncat '{folder / 'stderr.txt'}' >&2\nexit 1\n")
    script.chmod(0o755)
    return str(script)


def test_the_failure_line_is_the_runtimes_error_without_colours_or_stack():
    line = validator.failure_line(DENO_REFUSAL)
    assert line == ("Deno, which runs the validator, reads no path under /dev (/dev/shm/site/bids/code/x): keep "
                    "the dataset on another filesystem path")
    assert validator.failure_line("\x1b[31mSomething broke\x1b[0m\n  at x\n") == "at x"  # no error: line: the last
    assert validator.failure_line("error: Uncaught TypeError: boom\n  at main.ts:1\n") == "Uncaught TypeError: boom"
    assert validator.failure_line("") == "it exited without output"


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="this system has no /dev/shm")
def test_the_real_validator_under_dev_shm_is_named_as_a_failure_not_a_validation(tmp_path):
    dataset = Path("/dev/shm") / f"bids-factory-test-{os.getpid()}-{tmp_path.name}"
    dataset.mkdir()
    try:
        (dataset / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.10.0"}')
        result = validator.run_validator(dataset)
    finally:
        (dataset / "dataset_description.json").unlink()
        dataset.rmdir()
    assert result is not None and result.failure is not None
    assert f"reads no path under /dev ({dataset})" in result.failure and "\x1b" not in result.failure


@pytest.mark.parametrize("broken", ["refuses", "missing"])
def test_a_validator_that_cannot_check_places_nothing_and_the_next_run_places_all(
        broken, new_demo, tmp_path, monkeypatch, capsys):
    export, bids = new_demo(tmp_path / "export").root, tmp_path / "bids"
    command = _fake_validator(tmp_path, DENO_REFUSAL) if broken == "refuses" else None
    with monkeypatch.context() as patch:
        patch.setattr(validator, "validator_command", lambda: command)
        code = main(["convert", str(export), str(bids), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1, err
    expected = ("could not check the converted visits: Deno, which runs the validator, reads no path under /dev"
                if broken == "refuses" else "bids-validator-deno is not installed, so the converted visits cannot")
    assert expected in err[0] and "--no-validate" in err[0], err
    assert _images(bids) == [], "placed without the validator's check"
    assert not list((bids / "code" / "bids-factory" / "staging").glob("run-*")), "staging left behind"
    assert main(["convert", str(export), str(bids), "--quiet"]) == 0, capsys.readouterr()
    assert len(_images(bids)) == 9  # the demo's images, all checked and placed now


def test_no_validate_places_without_the_validator(new_demo, tmp_path, monkeypatch):
    export, bids = new_demo(tmp_path / "export").root, tmp_path / "bids"
    monkeypatch.setattr(validator, "validator_command", lambda: None)
    assert main(["convert", str(export), str(bids), "--quiet", "--no-validate"]) == 0
    assert len(_images(bids)) == 9


def test_check_names_a_validator_that_cannot_check_in_one_line(new_demo, tmp_path, monkeypatch, capsys):
    export, bids = new_demo(tmp_path / "export").root, tmp_path / "bids"
    assert main(["convert", str(export), str(bids), "--quiet", "--no-validate"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(validator, "validator_command", lambda: _fake_validator(tmp_path, DENO_REFUSAL))
    assert main(["check", str(bids)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"bids-factory: error: bids-validator-deno could not check {bids}: Deno, which runs the validator, "
                   "reads no path under /dev (/dev/shm/site/bids/code/x): keep the dataset on another filesystem path"]
