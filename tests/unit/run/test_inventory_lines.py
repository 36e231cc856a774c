"""The inventory prints its problems as the run's summary does: one line per identical reason."""

from __future__ import annotations

from bids_factory.model import Problem
from bids_factory.run.inventory import Inventory, inventory_lines

OUTSIDE = "symbolic link that points outside the export: not followed"


def test_a_reason_shared_by_a_thousand_files_is_one_line_naming_the_first_three():
    """An export of links into a PACS store: each file is refused for the same reason; the inventory names the
    count and the first files, not 1 200 lines (the summary of ``convert`` reads the same)."""
    problems = tuple(Problem(f"DICOM/2024/20240501/PH001/601_dti/{i:04d}.dcm", OUTSIDE) for i in range(1200))
    problems += (Problem("DICOM/2024/20240501/PH001", "empty visit folder: no readable file in it"),
                 Problem("EHR/2024/20240501/labs.csv", "no mapping: patient id column guessed", fatal=False))
    lines = inventory_lines(Inventory(export="export", heuristic="bids-factory-default", visits=(),
                                      problems=problems))
    assert lines[1:] == [
        "  FAILED: DICOM/2024/20240501/PH001: empty visit folder: no readable file in it",
        "  FAILED \u00d71200: DICOM/2024/20240501/PH001/601_dti/0000.dcm, DICOM/2024/20240501/PH001/601_dti/0001.dcm, "
        f"DICOM/2024/20240501/PH001/601_dti/0002.dcm and 1197 more: {OUTSIDE}",
        "  note: EHR/2024/20240501/labs.csv: no mapping: patient id column guessed",
        "series: none"]
