"""Append-only steps are crash-safe: a decided run (``--apply-changes``) or a run adding a late series, killed
at each step that publishes something, leaves only complete files, and the same command run again finishes
the work: the dataset is the one an uninterrupted run writes, the images that left are kept under
``code/bids-factory/replaced/`` and CHANGES says so once. The kill is the one of ``test_crash_safety``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from conftest import TEST_HEURISTICS, XA30, add_series, real_folders
from test_crash_safety import _assert_no_partial_file, _published

pytestmark = pytest.mark.realdata

HEURISTIC = TEST_HEURISTICS / "xa30_reproin.json"
SERIES = {p.name.split("_")[0]: p for p in real_folders(XA30, "*/")}
T1W = "sub-12343hucheng/ses-VISIT01/anat/sub-12343hucheng_ses-VISIT01_acq-tfl_T1w"


def _run(runs, export: Path, bids: Path, heuristic: Path, schemas: Path, *extra: str, kill_at: int = 0) -> int:
    return runs("convert", export, bids, "--quiet", "--no-validate", "--heuristic", heuristic, "--schemas", schemas,
                *extra, kill_at=kill_at).returncode


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, command_runs):
    """An export (a T1w and field maps on day 1, a late T1w on day 2), site schemas accepting the 2 mm T1w, a
    heuristic without the T1w rule, and datasets: ``pending`` (the T1w's removal waits for a decision),
    ``placed`` (day 1 placed, before day 2 arrived) with the references of the uninterrupted runs."""
    from bids_factory.resources import shipped_dir

    work = tmp_path_factory.mktemp("append-only-crash")
    schemas = work / "schemas"
    shutil.copytree(shipped_dir("schemas") / "sidecar", schemas)
    t1w = json.loads((schemas / "T1w.schema.json").read_text())
    t1w["properties"]["VoxelSize"]["items"]["maximum"] = 2.0
    (schemas / "T1w.schema.json").write_text(json.dumps(t1w))
    heuristic = json.loads(HEURISTIC.read_text())
    heuristic["descriptions"] = [d for d in heuristic["descriptions"] if d["suffix"] != "T1w"]
    no_t1w = work / "no-t1w.json"
    no_t1w.write_text(json.dumps(heuristic))
    day1, both = work / "day1", work / "both"
    for export in (day1, both):
        for number in ("5", "8", "9"):
            add_series(export, "20240105", "VISIT01", SERIES[number])
    add_series(both, "20240106", "VISIT01", SERIES["6"])
    corrected = work / "corrected"  # day 1 purged, the visit exported again with a corrected PatientID
    for number in ("5", "8", "9"):
        for source in sorted(p for p in SERIES[number].iterdir() if p.name != "LICENSE"):
            dataset = pydicom.dcmread(source)
            dataset.PatientID = "P2024"
            target = corrected / "DICOM" / "2024" / "20240107" / "VISIT01" / SERIES[number].name / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            dataset.save_as(target)

    placed = work / "placed"
    assert _run(command_runs, day1, placed, HEURISTIC, schemas) == 0
    pending = work / "pending"
    shutil.copytree(placed, pending)
    assert _run(command_runs, day1, pending, no_t1w, schemas) == 0
    references = {}
    for name, source, export, heuristic_, extra in (("apply", pending, day1, no_t1w, ("--apply-changes", "VISIT01")),
                                                    ("late", placed, both, HEURISTIC, ()),
                                                    ("move", placed, corrected, HEURISTIC, ())):
        reference = work / f"reference-{name}"
        shutil.copytree(source, reference)
        assert _run(command_runs, export, reference, heuristic_, schemas, *extra) == 0
        references[name] = (source, export, heuristic_, extra, _published(reference))
    assert f"{T1W}.nii.gz" not in references["apply"][4] and f"{T1W}.nii.gz" in references["late"][4]
    return schemas, references


# an --apply-changes run makes 13 renames: 4 scans.tsv, 5-6 the session swap, 7 the visit record, 8 CHANGES;
# a late series' run 21: 1-5 staged images, 6-7 the new image placed in the new session folder, 8 scans.tsv,
# 9-10 the swap, 11-12 its pictures, 13 the record, 15 CHANGES; a corrected PatientID's 35: 7-11 the renamed
# session built, 12 swapped in under the new subject, 13-20 pictures, 21 its record, 22 the old session
# removed, 23 placing starts, 28 CHANGES
@pytest.mark.parametrize("name,kill_at", [("apply", 4), ("apply", 5), ("apply", 6), ("apply", 7), ("apply", 8),
                                          ("late", 6), ("late", 9), ("late", 10), ("late", 13), ("late", 15),
                                          ("move", 12), ("move", 13), ("move", 21), ("move", 22), ("move", 23),
                                          ("move", 28)])
def test_a_killed_append_only_run_leaves_complete_files_and_the_same_command_finishes(scenario, command_runs,
                                                                                       tmp_path, name, kill_at):
    schemas, references = scenario
    source, export, heuristic, extra, expected = references[name]
    bids = tmp_path / "bids"
    shutil.copytree(source, bids)
    killed = _run(command_runs, export, bids, heuristic, schemas, *extra, kill_at=kill_at)
    assert killed == 137, "finished before the kill"
    _assert_no_partial_file(bids)
    assert _run(command_runs, export, bids, heuristic, schemas, *extra) == 0
    _assert_no_partial_file(bids)
    assert _published(bids) == expected
    assert not (bids / "code" / "bids-factory" / "kept").exists()  # what the killed run wrote is no person's file
    changes = (bids / "CHANGES").read_text()
    if name == "apply":
        kept = sorted((bids / "code" / "bids-factory" / "replaced").rglob(Path(T1W).name + ".nii.gz"))
        assert kept and all(k.read_bytes() == (source / f"{T1W}.nii.gz").read_bytes() for k in kept)
        assert changes.count(f"Removed {T1W}.nii.gz (kept at code/bids-factory/replaced/") == 1
    elif name == "move":
        assert sorted(p.relative_to(bids).as_posix() for p in bids.glob("sub-*/ses-*")) == ["sub-P2024/ses-VISIT01"]
        assert changes.count("Moved sub-12343hucheng/ses-VISIT01 to sub-P2024/ses-VISIT01") == 1
    else:  # once, never twice: a run stopped between the visit's state and CHANGES leaves the line to the next
        assert changes.count("Placed sub-12343hucheng ses-VISIT01 (1 images)") == 1
