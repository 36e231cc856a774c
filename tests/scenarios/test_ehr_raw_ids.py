"""EHR rows are linked to images by the raw ids (as the collision guard compares them), never by the
sanitised labels: a near-miss is reported, never linked silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from bids_factory.cli.main import main
from bids_factory.tsv import read_tsv
from conftest import GE_T1W, XA30, add_series

pytestmark = pytest.mark.realdata



def _participants(bids: Path) -> dict[str, dict]:
    return {row["participant_id"]: row for row in read_tsv(bids / "participants.tsv")[1]}


def test_an_ehr_id_that_only_sanitises_like_a_dicom_id_is_not_linked_and_reported(export, bids, capsys):
    for number in ("8", "9"):  # PatientID 12343@hucheng
        add_series(export, "20240105", "VISIT01", next(XA30.glob(f"{number}_*")))
    add_series(export, "20240105", "GE0001", GE_T1W)  # PatientID FRUIT
    command = ["convert", str(export), str(bids), "--no-validate"]
    assert main(command) == 0
    before = _participants(bids)
    assert sorted(before) == ["sub-12343hucheng", "sub-FRUIT"]
    ehr = export / "EHR" / "2024" / "20240106"
    ehr.mkdir(parents=True)
    # fruit: the GE export's PatientName is FRUIT too, so that id holds a word of a person's name (issue 22)
    (ehr / "demographics.csv").write_text("patient_id,age\n12343-hucheng,40\n12343HUCHENG,33\nfruit,20\nFRUIT,50\n")

    capsys.readouterr()
    assert main(command) == 1  # refused like any two raw ids giving one label
    out = capsys.readouterr()
    text = out.out + out.err
    assert ("patient id '12343-hucheng' becomes sub-12343hucheng, the subject of images whose PatientID is another "
            "id") in text
    assert "'FRUIT' becomes" not in text  # the images' own raw id is linked
    assert ("EHR participant sub-12343HUCHENG and the images' sub-12343hucheng differ only in case: not linked"
            in text)
    assert "1 patient id(s) of the EHR tables hold a word of a visit's person names" in text  # fruit, not FRUIT
    after = _participants(bids)
    assert sorted(after) == ["sub-12343HUCHENG", "sub-12343hucheng", "sub-FRUIT"]
    assert after["sub-12343hucheng"]["age"] == "n/a"  # not linked to the other id's row
    assert after["sub-FRUIT"]["age"] == "50" and after["sub-12343HUCHENG"]["age"] == "33"
    phenotype = read_tsv(bids / "phenotype" / "demographics.tsv")[1]
    assert sorted((r["participant_id"], r["age"]) for r in phenotype) == [("sub-12343HUCHENG", "33"),
                                                                          ("sub-FRUIT", "50")]
