"""A run that did not do what was asked never exits 0: unknown criteria fields, empty selections,
a dataset folder that is not one; and the same odd input is treated the same on both routes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bids_factory.cli.main import main
from bids_factory.extract.nifti_visit import ORPHAN_IMAGE
from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import GE_T1W, add_series


def _heuristic(tmp_path: Path, criteria: dict) -> Path:
    path = tmp_path / "site.json"
    path.write_text(json.dumps({"descriptions": [
        {"datatype": "anat", "suffix": "T1w", "criteria": criteria}]}))
    return path


@pytest.fixture
def ge_export(export):
    add_series(export, "20230301", "GE0001", GE_T1W)
    return export


@pytest.mark.realdata
def test_a_typo_in_a_criteria_field_is_refused_with_the_field_it_meant(ge_export, bids, tmp_path):
    report = convert(ConvertOptions(export=ge_export, bids=bids, validate=False,
                                    heuristic=_heuristic(tmp_path, {"SeriesDescriptoin": "*SAG*"})))
    [problem] = [p for p in report.problems if "criteria field" in p.reason]
    assert problem.fatal and report.failed
    assert "'SeriesDescriptoin'" in problem.reason and "did you mean 'SeriesDescription'" in problem.reason


@pytest.mark.realdata
def test_a_field_absent_from_this_runs_sidecars_but_no_typo_is_a_note(ge_export, bids, tmp_path):
    criteria = {"SeriesDescription": "*SAG*", "PhilipsRescaleSlopeOnly": "1"}
    report = convert(ConvertOptions(export=ge_export, bids=bids, validate=False,
                                    heuristic=_heuristic(tmp_path, criteria)))
    [problem] = [p for p in report.problems if "criteria field" in p.reason]
    assert not problem.fatal and "PhilipsRescaleSlopeOnly" in problem.reason


@pytest.mark.realdata
def test_known_fields_are_not_named(ge_export, bids, tmp_path):
    criteria = {"SeriesDescription": "*SAG*", "SidecarFilename": "*", "EchoTime": {"any": ["*"]}, "B0FieldIdentifier": "x"}
    report = convert(ConvertOptions(export=ge_export, bids=bids, validate=False,
                                    heuristic=_heuristic(tmp_path, criteria)))
    assert not [p for p in report.problems if "criteria field" in p.reason]


@pytest.mark.realdata
def test_a_participant_label_or_visit_that_matches_nothing_exits_1(ge_export, tmp_path, capsys):
    assert main(["convert", str(ge_export), str(tmp_path / "b1"), "--participant-label", "sub-nobody",
                 "--no-validate", "--quiet"]) == 1
    assert "FAILED: sub-nobody: --participant-label matches no visit of the export" in capsys.readouterr().out
    assert main(["convert", str(ge_export), str(tmp_path / "b2"), "--visit", "NOVISIT",
                 "--no-validate", "--quiet"]) == 1
    assert "FAILED: NOVISIT: visit named with --visit is not in the export" in capsys.readouterr().out


@pytest.mark.realdata
def test_a_folder_that_is_not_a_dataset_and_a_file_are_refused_in_one_line(ge_export, tmp_path, command_runs):
    other = tmp_path / "thesis"
    other.mkdir()
    (other / "chapter1.docx").write_text("mine")
    a_file = tmp_path / "bids.txt"
    a_file.write_text("not a folder")
    for target, message in ((other, "is not empty and not a BIDS dataset"), (a_file, "is a file, not a folder")):
        done = command_runs("convert", ge_export, target)
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert sorted(p.name for p in other.iterdir()) == ["chapter1.docx"]


NO_ADC_JSON = """#!/bin/sh
"{real}" "$@"
out=; prev=; for arg; do [ "$prev" = "-o" ] && out=$arg; prev=$arg; done
rm -f "$out"/*.json
"""


@pytest.mark.realdata
def test_an_image_without_json_is_the_same_note_on_the_dicom_route(ge_export, bids, tmp_path, monkeypatch):
    """(The NIfTI route: tests/scenarios/test_nifti_route.py::test_nifti_bad_pairs_are_reported_and_patient_field_option.)"""
    from bids_factory.extract import dicom_visit as extract

    wrapper = tmp_path / "dcm2niix"
    wrapper.write_text(NO_ADC_JSON.format(real=extract.dcm2niix_command()))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(extract, "dcm2niix_command", lambda: str(wrapper))
    report = convert(ConvertOptions(export=ge_export, bids=bids, validate=False))
    [problem] = [p for p in report.problems if p.reason == ORPHAN_IMAGE]
    assert not problem.fatal and not report.failed, report.problems
    assert "DICOM/2023/20230301/GE0001" in problem.path


def test_the_default_heuristics_own_derived_keys_are_never_reported_as_unknown_criteria():
    """The shipped default matches on keys the classifying step adds only where they apply: a run in which
    no series is held back (no ``BidsFactoryHold``) or none has entities must not call them typos or notes."""
    from bids_factory.config.heuristic import load_heuristic, unknown_criteria

    default = load_heuristic(None)
    assert "BidsFactoryHold" in default.criteria_fields()
    assert unknown_criteria(default, frozenset({"SeriesDescription", "ImageType", "BidsFactoryClass",
                                                "BidsFactoryVolumes"})) == []
    assert [f for f, _, _ in unknown_criteria(default, frozenset({"BidsFactoryClass"}))] == []
