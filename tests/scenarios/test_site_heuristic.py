"""A site's heuristic adds to the default (real XA30 visit): its rules first, the default's for every series
no site rule matches; ``"bids_factory": {"fallback_to_default": false}`` uses the site's rules alone."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from bids_factory.checks.sidecar_schemas import default_folder
from bids_factory.run.options import settings_key
from bids_factory.run.pipeline import ConvertOptions, convert
from bids_factory.run.rules import Rules
from conftest import assert_valid_bids

SUB, SES = "sub-12343hucheng", "ses-VISIT01"
# the XA30 T1w of 2 mm (series 5 and 6): the default's t1w rule matches it and its schema (MIP: max. 1.5 mm)
# holds it back; this site places it as a low-resolution T1w checked by the site's own schema
LOWRES_RULE = {"bids_factory": {"rule": "t1w-2mm", "sidecar_schema": "T1w-lowres"},
               "datatype": "anat", "suffix": "T1w", "custom_entities": "acq-lowres",
               "criteria": {"SeriesDescription": "anat-T1w_acq-tfl"}}


def _site(tmp: Path, rules: list[dict], **own) -> Path:
    path = tmp / "site.json"
    path.write_text(json.dumps({"bids_factory": {"name": "site", **own}, "descriptions": rules}, indent=2))
    return path


@pytest.fixture(scope="module")
def site_schemas(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("schemas") / "sidecar"
    shutil.copytree(default_folder(), folder)
    lowres = json.loads((folder / "T1w.schema.json").read_text())
    lowres["$id"] = lowres["$id"].replace("T1w.schema", "T1w-lowres.schema")
    lowres["properties"]["VoxelSize"]["items"]["maximum"] = 2.5
    (folder / "T1w-lowres.schema.json").write_text(json.dumps(lowres))
    return folder


def _placed(bids: Path) -> dict[str, str]:
    """Placed image -> the rule recorded in scans.tsv."""
    with open(bids / SUB / SES / f"{SUB}_{SES}_scans.tsv", newline="") as handle:
        return {row["filename"]: row["heuristic_rule"] for row in csv.DictReader(handle, delimiter="\t")
                if row["filename"].endswith(".nii.gz")}


@pytest.fixture(scope="module")
def default_placed(xa30_export, tmp_path_factory) -> dict[str, str]:
    bids = tmp_path_factory.mktemp("default") / "bids"
    convert(ConvertOptions(export=xa30_export, bids=bids, validate=False))
    return _placed(bids)


@pytest.mark.realdata
def test_a_site_rule_adds_its_placement_and_keeps_every_placement_of_the_default(
        xa30_export, default_placed, site_schemas, tmp_path):
    site = _site(tmp_path, [LOWRES_RULE])
    bids = tmp_path / "bids"
    report = convert(ConvertOptions(export=xa30_export, bids=bids, heuristic=site, schemas=site_schemas,
                                    validate=False))
    assert not report.failed
    assert_valid_bids(bids)
    placed = _placed(bids)
    assert len(default_placed) == 6 and not any("T1w" in name for name in default_placed)
    # every placement of the default, named by the file its rule comes from
    assert {name: placed[name] for name in default_placed} == {
        name: f"bids-factory-default:{rule}" for name, rule in default_placed.items()}
    # and the site's: its rule won over the default's t1w rule on the same series
    assert {name: rule for name, rule in placed.items() if name not in default_placed} == {
        f"anat/{SUB}_{SES}_acq-lowres_run-01_T1w.nii.gz": "site:t1w-2mm",
        f"anat/{SUB}_{SES}_acq-lowres_run-02_T1w.nii.gz": "site:t1w-2mm"}
    record = json.loads((bids / "code" / "bids-factory" / "visits" / f"{SUB}_{SES}.json").read_text())
    assert record["heuristic"]["name"] == "site + bids-factory-default"


@pytest.mark.realdata
def test_a_site_heuristic_alone_places_only_what_its_rules_match(xa30_export, site_schemas, tmp_path):
    site = _site(tmp_path, [LOWRES_RULE], fallback_to_default=False)
    bids = tmp_path / "bids"
    report = convert(ConvertOptions(export=xa30_export, bids=bids, heuristic=site, schemas=site_schemas,
                                    validate=False))
    assert sorted(_placed(bids).items()) == [(f"anat/{SUB}_{SES}_acq-lowres_run-01_T1w.nii.gz", "t1w-2mm"),
                                             (f"anat/{SUB}_{SES}_acq-lowres_run-02_T1w.nii.gz", "t1w-2mm")]
    bold = next(o for o in report.visits[0].not_placed if o.series.series_number == 7)
    assert bold.status == "unmatched"


@pytest.mark.realdata
def test_only_rules_of_one_file_are_ambiguous_and_the_reason_says_the_fix(xa30_export, site_schemas, tmp_path):
    other = dict(LOWRES_RULE, bids_factory={"rule": "t1w-other"}, custom_entities="acq-other")
    site = _site(tmp_path, [LOWRES_RULE, other])
    report = convert(ConvertOptions(export=xa30_export, bids=tmp_path / "bids", heuristic=site,
                                    schemas=site_schemas, validate=False))
    outcomes = {o.series.series_number: o for o in report.visits[0].not_placed}
    assert outcomes[5].status == "ambiguous"
    assert outcomes[5].reason == (
        "several rules of heuristic site.json match: site:t1w-2mm, site:t1w-other; add a criterion that tells "
        "them apart (e.g. SeriesDescription, EchoNumber or ImageType) or delete all but one")
    # the site's rules and the default's never are: the default's place the bold and the field maps
    assert {7, 8, 9} - set(outcomes) == {7, 8, 9}


def test_the_settings_key_changes_with_the_rules_combined(tmp_path, site_schemas):
    site = _site(tmp_path, [LOWRES_RULE])
    combined = ConvertOptions(export=tmp_path, bids=tmp_path / "bids", heuristic=site, schemas=site_schemas)
    key = settings_key(combined)
    assert key == Rules.load(combined).settings_key(combined)  # read as data or loaded: one key
    alone = tmp_path / "alone" / "site.json"
    alone.parent.mkdir()
    alone.write_text(site.read_text())
    assert settings_key(combined) == settings_key(ConvertOptions(export=tmp_path, bids=tmp_path / "bids",
                                                                 heuristic=alone, schemas=site_schemas))
    _site(tmp_path / "alone", [LOWRES_RULE], fallback_to_default=False)
    alone_options = ConvertOptions(export=tmp_path, bids=tmp_path / "bids", heuristic=alone, schemas=site_schemas)
    assert settings_key(alone_options) != key
    assert settings_key(alone_options) == Rules.load(alone_options).settings_key(alone_options)


def test_a_changed_default_changes_the_key_of_a_site_that_falls_back_to_it(tmp_path, site_schemas, monkeypatch):
    from bids_factory import resources

    site = _site(tmp_path, [LOWRES_RULE])
    options = ConvertOptions(export=tmp_path, bids=tmp_path / "bids", heuristic=site, schemas=site_schemas)
    before = settings_key(options)
    default = json.loads(resources.default_heuristic().read_text())
    default["descriptions"] = default["descriptions"][1:]
    changed = tmp_path / "default.json"
    changed.write_text(json.dumps(default))
    for module in ("bids_factory.run.options", "bids_factory.config.heuristic"):
        monkeypatch.setattr(f"{module}.default_heuristic", lambda: changed)
    assert settings_key(options) != before
    assert settings_key(options) == Rules.load(options).settings_key(options)


@pytest.mark.realdata
def test_the_next_step_asks_for_rules_only_when_a_series_is_not_recognised(xa30_export, site_schemas, tmp_path,
                                                                          capsys):
    """XA30 with the default: every unmatched series is a scanner-derived map (nothing to do), so the next
    step is about what is held back; with a site's heuristic alone that leaves the bold unrecognised, it is
    a rule to write."""
    from bids_factory.cli.main import main

    main(["convert", str(xa30_export), str(tmp_path / "bids"), "--no-validate"])
    out = capsys.readouterr().out
    assert "12 unmatched" in out
    [next_line] = [line for line in out.splitlines() if line.startswith("next: ")]
    assert next_line.startswith("next: open the report's \"to supply\" list")
    site = _site(tmp_path, [LOWRES_RULE], fallback_to_default=False)
    main(["convert", str(xa30_export), str(tmp_path / "alone"), "--no-validate", "--heuristic", str(site),
          "--schemas", str(site_schemas)])
    [next_line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("next: ")]
    assert next_line.startswith(f"next: write rules for the series no rule recognises: bids-factory inventory "
                                f"{xa30_export} --write-heuristic site-new.json (a new file)")
