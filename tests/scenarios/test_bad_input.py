"""Bad input is named by its export path with a reason; the rest of the export still converts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import GE_T1W, TEST_HEURISTICS, TRANSFER_SYNTAXES, add_series, assert_valid_bids, fingerprint

pytestmark = pytest.mark.realdata


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _problems(report) -> dict[str, tuple[str, bool]]:
    return {p.path: (p.reason, p.fatal) for p in report.problems}


def test_truncated_corrupt_and_foreign_files_are_named(export, bids):
    # a GE T1w whose 2nd slice was cut in half (a copy: never touch the shared data)
    visit = add_series(export, "20230301", "GE-0001", GE_T1W)
    cut = visit / "ge_t1w_deidentified" / "00002.dcm"
    data = cut.read_bytes()
    cut.unlink()
    _write(cut, data[: len(data) // 2])
    # a good visit with a corrupt DICOM (valid preamble, garbage after it) and a text file
    for dicom in sorted(TRANSFER_SYNTAXES.glob("*.dcm")):
        add_series(export, "20230302", "TS01", dicom, subfolder=dicom.stem)
    ts = export / "DICOM/2023/20230302/TS01"
    _write(ts / "broken.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"garbage" * 10)
    _write(ts / "notes.txt", b"scanner operator notes")
    _write(ts / "cut-header.dcm", (TRANSFER_SYNTAXES / "2.dcm").read_bytes()[:1000])
    before = fingerprint(export)

    report = convert(ConvertOptions(export=export, bids=bids, heuristic=TEST_HEURISTICS / "transfer_syntaxes.json",
                                    validate=False))

    assert {v.scan_research_id: v.status for v in report.visits} == {"GE-0001": "failed", "TS01": "placed"}
    problems = _problems(report)
    reason, fatal = problems["DICOM/2023/20230302/TS01/broken.dcm"]
    assert fatal and reason.startswith("corrupt DICOM file")
    assert problems["DICOM/2023/20230302/TS01/notes.txt"] == ("not a DICOM file: ignored", False)
    reason, fatal = problems["DICOM/2023/20230302/TS01/cut-header.dcm"]
    assert fatal and reason.startswith("dcm2niix: Warning")
    [ge] = [p for p in report.problems if p.path == "DICOM/2023/20230301/GE-0001"]
    assert "DICOM/2023/20230301/GE-0001/ge_t1w_deidentified/00002.dcm" in ge.reason
    assert "not large enough" in ge.reason
    assert report.failed
    assert len(list(bids.rglob("*_T2starw.nii.gz"))) == 9
    assert fingerprint(export) == before
    assert_valid_bids(bids)


def test_visit_label_without_letters_or_digits_fails_alone(export, bids):
    for dicom in sorted(TRANSFER_SYNTAXES.glob("*.dcm"))[:1]:
        add_series(export, "20230302", "@@@", dicom, subfolder="a")
        add_series(export, "20230302", "V2", dicom, subfolder="a")
    report = convert(ConvertOptions(export=export, bids=bids, heuristic=TEST_HEURISTICS / "transfer_syntaxes.json",
                                    validate=False))
    assert {v.scan_research_id: v.status for v in report.visits} == {"@@@": "failed", "V2": "placed"}
    assert any("has no letter or digit to make a session label" in p.reason for p in report.problems)
    assert_valid_bids(bids)


def test_cli_reports_bad_input_in_one_line_and_debug_shows_more(export, tmp_path, command_runs):
    add_series(export, "20230302", "V1", sorted(TRANSFER_SYNTAXES.glob("*.dcm"))[0], subfolder="a")
    (export / "DICOM/2023/2023-03-03").mkdir(parents=True)
    done = command_runs("convert", export, tmp_path / "bids", "--heuristic", TEST_HEURISTICS / "transfer_syntaxes.json",
                        "--no-validate")
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert "FAILED: DICOM/2023/2023-03-03: not a <yyyymmdd> day folder: ignored" in done.stdout
    locked = tmp_path / "bids" / "code" / "bids-factory"
    import fcntl

    with open(locked / "lock") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        plain = command_runs("convert", export, tmp_path / "bids")
        debug = command_runs("convert", export, tmp_path / "bids", "--debug")
    assert plain.returncode == 1 and plain.stderr.count("\n") == 1
    assert "another bids-factory run is writing" in plain.stderr and "Traceback" not in plain.stderr
    assert "Traceback" in debug.stderr and "another bids-factory run is writing" in debug.stderr
