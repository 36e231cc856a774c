"""Issue 12's 'done when': one export holding every bad case together. The good visits are converted,
each bad one is named, the export is untouched, every curator edit is kept, the validator finds 0 errors."""

from __future__ import annotations

import os
import re

import pandas as pd
import pydicom
import pytest

from bids_factory.run.pipeline import ConvertOptions, convert
from conftest import GE_T1W, SHARED_DICOM, add_series, assert_valid_bids

pytestmark = pytest.mark.realdata


def fingerprint(folder) -> dict[str, str]:
    """Every entry below ``folder``: a link by its target (a loop cannot be read), a file by its content."""
    import hashlib

    return {p.relative_to(folder).as_posix(): (f"link -> {os.readlink(p)}" if p.is_symlink() else
                                               hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}

GE_SESSION_T1W = SHARED_DICOM / "ge_session" / "In" / "05_3D_Ax_T1_MP_RAGE_R22"


def _tsv(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def test_an_export_with_every_bad_case_converts_the_good_visits_and_names_the_bad_ones(export, bids):
    day = export / "DICOM" / "2023" / "20230301"
    add_series(export, "20230301", "GOOD1", GE_T1W)
    label = re.sub("[^A-Za-z0-9]", "", pydicom.dcmread(next(GE_T1W.glob("*.dcm")), stop_before_pixels=True).PatientID)
    partial = add_series(export, "20230301", "PARTIAL2", GE_SESSION_T1W)
    sorted((partial / GE_SESSION_T1W.name).iterdir())[40].unlink()  # one slice file missing
    looping = add_series(export, "20230301", "LOOP3", GE_SESSION_T1W)
    os.symlink(looping / "loop.dcm", looping / "loop.dcm")
    add_series(export, "20230301", "TAB\t4", GE_SESSION_T1W)
    add_series(export, "20230301", ".V5", GE_SESSION_T1W)
    phantom = add_series(export, "20230301", "PHANTOM_QA", GE_SESSION_T1W)
    (day / "GOOD1" / "from_phantom.dcm").symlink_to(next((phantom / GE_SESSION_T1W.name).iterdir()))
    ehr = export / "EHR" / "2023" / "20230301" / "demographics.csv"
    ehr.parent.mkdir(parents=True)
    ehr.write_bytes(f"patient_id,city,comment\nsub-{label},Zürich,\"\"\"\"\n".encode()
                    + "other,Genève,plain\n".encode("latin-1"))
    before = fingerprint(export)

    first = convert(ConvertOptions(export=export, bids=bids))
    statuses = {v.scan_research_id: v.status for v in first.visits}
    assert statuses == {"GOOD1": "placed", "PARTIAL2": "nothing-to-place"}, first.problems
    held = [o.reason for v in first.visits for o in v.not_placed if o.status == "held-back"]
    assert any("1 of 130 slice positions missing" in r for r in held), held
    named = {p.path: p for p in first.problems}
    assert "symbolic link loop" in named["DICOM/2023/20230301/LOOP3"].reason
    assert named[repr("DICOM/2023/20230301/TAB\t4")].fatal
    assert not named["DICOM/2023/20230301/.V5"].fatal
    assert "not followed" in named["DICOM/2023/20230301/GOOD1/from_phantom.dcm"].reason
    assert any("mixed encodings" in p.reason for p in first.problems)
    assert first.failed  # the bad visits are failures, named above
    assert_valid_bids(bids)

    # the curator's edits, then the next day's run
    participants = _tsv(bids / "participants.tsv")
    participants["group"] = "patient"
    participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    add_series(export, "20230302", "GOOD6", GE_SESSION_T1W)
    before = fingerprint(export)
    second = convert(ConvertOptions(export=export, bids=bids))
    assert {v.scan_research_id: v.status for v in second.visits}["GOOD6"] == "placed", second.problems
    participants = _tsv(bids / "participants.tsv").set_index("participant_id")
    assert participants.loc[f"sub-{label}", "group"] == "patient"
    assert participants.loc["sub-dicom", "group"] == "n/a"
    phenotype = _tsv(bids / "phenotype" / "demographics.tsv").set_index("participant_id")
    assert phenotype.loc[f"sub-{label}", "comment"] == '"' and phenotype.loc[f"sub-{label}", "city"] == "Zürich"
    assert phenotype.loc["sub-other", "city"] == "Genève"
    assert not list(bids.rglob("*TAB*")) and "TAB" not in (bids / "participants.tsv").read_text()
    assert fingerprint(export) == before
    assert_valid_bids(bids)
