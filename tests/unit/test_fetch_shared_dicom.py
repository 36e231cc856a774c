"""The real data's fetch script makes every set the tests read, in the layout they read it, and a fresh clone
without the data runs the rest with the real-data tests skipped, the fetch command named."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

import fetch_shared_dicom
from conftest import FETCH_COMMAND, REAL_DATA_SETS, REPO, SHARED_DICOM
from fetch_shared_dicom import SETS


def _concrete(source: str) -> str:
    """A repository path that ``source`` (a path or glob) matches."""
    return source.replace("*/", "series_1/f.dcm").replace("*", "1")


def _upstream(root: Path) -> None:
    """Local stand-ins of the dcm_qa* repositories: one file under each path the script takes, and decoys."""
    for repository, entries in SETS.values():
        repo = root / repository
        for path in ["LICENSE", "In/XA_validation.pdf", "Ref/out.json",
                     *(_concrete(s) if s.endswith(("/", ".dcm")) or s.endswith(".md") else f"{s}/0001.dcm"
                       for s, _ in entries)]:
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_text(path)
        for args in (["init", "-q"], ["add", "-A"],
                     ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "data"]):
            subprocess.run(["git", "-C", str(repo), *args], check=True)


def test_the_fetch_makes_every_set_the_tests_read_in_their_layout(tmp_path, capsys):
    assert set(SETS) == set(REAL_DATA_SETS)
    _upstream(tmp_path / "upstream")
    into = tmp_path / "shared" / "dicom"
    assert fetch_shared_dicom.main(["--into", str(into), "--base-url", f"file://{tmp_path / 'upstream'}"]) == 0

    assert sorted(p.name for p in into.iterdir()) == sorted(REAL_DATA_SETS)
    for name in REAL_DATA_SETS:
        assert (into / name / "LICENSE").is_file(), name
        assert not list((into / name).rglob("XA_validation.pdf")) and not list((into / name).rglob("out.json"))
    assert (into / "siemens_xa30_visit" / "series_1" / "f.dcm").is_file()  # the series folders of In/
    assert (into / "ge_t1w_deidentified" / "1.dcm").is_file()
    assert (into / "ge_session" / "In" / "SliceTiming" / "14_Ax_fMRI_HB3_48sl_int_asc" / "0001.dcm").is_file()
    assert (into / "philips_dwi_classic" / "601_WIP_dti_ax" / "0001.dcm").is_file()
    assert (into / "nih_ge_siemens_epi" / "20180918Si" / "mr_0006" / "0001.dcm").is_file()
    assert not [p for p in into.iterdir() if p.name.startswith("tmp")]  # the scratch clones are gone

    capsys.readouterr()
    fetch_shared_dicom.main(["--into", str(into), "--base-url", "file:///nowhere"])  # a set there is left alone
    assert capsys.readouterr().out.count("already there") == len(SETS)


def test_an_unknown_set_is_a_usage_error():
    with pytest.raises(SystemExit) as stop:
        fetch_shared_dicom.main(["--into", "unused", "siemens_xa31"])
    assert stop.value.code == 2


@pytest.mark.realdata
def test_the_fetch_mapping_is_the_layout_of_the_shared_data():
    """Every file of each shared set is where one entry of the mapping puts it, and every entry is there."""
    for name, (_, entries) in SETS.items():
        root = SHARED_DICOM / name
        placed = [("LICENSE", ".", False), *((s.rstrip("/"), f, s.endswith("/")) for s, f in entries)]
        for source, folder, _ in placed:
            if "*" not in source:
                assert (root / folder / PurePosixPath(source).name).exists(), (name, source)
        for file in (p for p in root.rglob("*") if p.is_file()):
            rel = PurePosixPath(file.relative_to(root).as_posix())
            assert any(_mapped(rel, source, folder, dirs) for source, folder, dirs in placed), (name, rel)


def _mapped(rel: PurePosixPath, source: str, folder: str, dirs_only: bool) -> bool:
    base = () if folder == "." else PurePosixPath(folder).parts
    rest = rel.parts[len(base):]
    if rel.parts[:len(base)] != base or not rest or (dirs_only and len(rest) < 2):
        return False
    return fnmatch.fnmatchcase(rest[0], PurePosixPath(source).name)


def test_without_the_data_the_real_data_tests_are_skipped_naming_the_fetch_command(tmp_path):
    """Every test module imports without the data, and every real-data test is skipped with the command."""
    empty = tmp_path / "no-dicom"
    empty.mkdir()
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:randomly", "-p", "no:cacheprovider", "-rs",
         "-m", "realdata"],
        cwd=REPO, env={**os.environ, "BIDS_FACTORY_SHARED_DICOM": str(empty)}, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert " skipped" in ran.stdout and " passed" not in ran.stdout and " error" not in ran.stdout
    assert f"fetch it with `{FETCH_COMMAND}`" in ran.stdout


def test_a_set_that_cannot_be_fetched_is_named_and_the_test_command_goes_on(tmp_path, capsys):
    """No network: the README's test command still runs the tests (the real-data ones skipped, the command
    named); ``--required`` makes it a failure. Nothing partial is left."""
    into = tmp_path / "dicom"
    assert fetch_shared_dicom.main(["--into", str(into), "--base-url", f"file://{tmp_path / 'nowhere'}",
                                    "toshiba_dwi"]) == 0
    assert "toshiba_dwi: not fetched" in capsys.readouterr().err
    assert list(into.iterdir()) == []
    assert fetch_shared_dicom.main(["--into", str(into), "--base-url", f"file://{tmp_path / 'nowhere'}",
                                    "--required", "toshiba_dwi"]) == 1
