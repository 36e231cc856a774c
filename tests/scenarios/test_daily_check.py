"""A daily run checks what it changed (a scratch view); ``bids-factory check`` checks the whole dataset."""

from __future__ import annotations

import json
from pathlib import Path

from bids_factory.run import batches as conversion
from bids_factory.cli.main import main
from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import assert_valid_bids

STRAY = "sub-DEMO002/ses-V0002A/anat/sub-DEMO002_ses-V0002A_notasuffix.nii.gz"


def test_a_daily_run_validates_and_reads_back_only_what_it_changed(tmp_path, monkeypatch, capsys, new_demo):
    export = new_demo(tmp_path / "export").root
    bids = tmp_path / "bids"
    first = convert(ConvertOptions(export=export, bids=bids, visits=frozenset({"V0001A", "V0002-A"})))
    assert not first.failed and first.validator_errors == 0
    (bids / STRAY).write_bytes((bids / STRAY.replace("notasuffix", "T1w")).read_bytes())  # breaks an old session

    validated, read_back = [], []
    real_validator, real_read_back = conversion.run_validator, conversion.unindexed_images

    def validator(dataset, *args, **kwargs):
        validated.append(sorted(p.relative_to(dataset).as_posix() for p in Path(dataset).glob("sub-*/ses-*")))
        assert (Path(dataset) / "participants.tsv").is_file() and (Path(dataset) / "phenotype").is_dir()
        return real_validator(dataset, *args, **kwargs)

    def pybids(dataset, records):
        read_back.append(sorted(r["session_id"] for r in records))
        return real_read_back(dataset, records)

    monkeypatch.setattr(conversion, "run_validator", validator)
    monkeypatch.setattr(conversion, "unindexed_images", pybids)
    daily = convert(ConvertOptions(export=export, bids=bids))
    assert {v.scan_research_id: v.status for v in daily.visits} == {
        "V0001A": "unchanged", "V0001B": "placed", "V0002-A": "unchanged"}
    assert validated == [["sub-DEMO001/ses-V0001B"]] and read_back == [["ses-V0001B"]]
    assert daily.validator_errors == 0 and not daily.failed  # the old session is not this run's business

    capsys.readouterr()
    assert main(["check", str(bids)]) == 16  # the weekly full check finds it
    out, err = capsys.readouterr()
    assert STRAY in out and len(err.strip().splitlines()) == 1 and "check failed" in err
    (bids / STRAY).unlink()
    assert main(["check", str(bids)]) == 0
    assert "check passed" in capsys.readouterr().out
    assert_valid_bids(bids)


def test_check_names_a_placed_image_pybids_cannot_find_and_refuses_a_non_dataset(tmp_path, capsys, new_demo):
    export = new_demo(tmp_path / "export").root
    bids = tmp_path / "bids"
    convert(ConvertOptions(export=export, bids=bids, visits=frozenset({"V0002-A"}), validate=False))
    [record_path] = (bids / "code" / "bids-factory" / "visits").glob("*.json")
    record = json.loads(record_path.read_text())
    record["files"].append({"path": "anat/sub-DEMO002_ses-V0002A_T2w.nii.gz"})
    record_path.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["check", str(bids)]) == 1
    out, err = capsys.readouterr()
    assert "sub-DEMO002/ses-V0002A/anat/sub-DEMO002_ses-V0002A_T2w.nii.gz: pybids does not find" in out
    assert err.count("\n") == 1

    assert main(["check", str(tmp_path / "export")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a BIDS dataset" in err and "Traceback" not in err
