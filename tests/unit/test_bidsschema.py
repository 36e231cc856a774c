"""The BIDS schema's selectors, parsed by bidsschematools and evaluated in one place (bids_factory.bidsschema)."""

from __future__ import annotations

import pytest

from bids_factory import bidsschema
from bids_factory.checks.required_metadata import required_fields
from bids_factory.privacy.deidentify import bids_keys

ASL = {"datatype": "perf", "suffix": "asl", "entities": {}, "sidecar": {"MRAcquisitionType": "2D"}}


@pytest.mark.parametrize("selector, context, expected", [
    ('datatype == "perf"', ASL, True),
    ('datatype != "perf"', ASL, False),
    ('intersects(suffix, ["bold", "asl"])', ASL, True),
    ('sidecar.MRAcquisitionType == "2D" && suffix == "asl"', ASL, True),
    ('!("VolumeTiming" in sidecar)', ASL, True),
    ('"MRAcquisitionType" in sidecar', ASL, True),
    ('match(suffix, "^as")', ASL, True),
    ('length(entities) == 0', ASL, True),
    ('false', ASL, False),
    # what is not known is neither true nor false, and && / || follow three-valued logic
    ('sidecar.M0Type == "Estimate"', {"datatype": "perf"}, bidsschema.UNKNOWN),
    ('datatype == "anat" && sidecar.M0Type == "Estimate"', {"datatype": "perf"}, False),
    ('datatype == "perf" || sidecar.M0Type == "Estimate"', {"datatype": "perf"}, True),
    ('dataset.dataset_description.DatasetType == "raw"', ASL, bidsschema.UNKNOWN),
    ('intersects([sidecar.ArterialSpinLabelingType], ["CASL", "PCASL"])', {"suffix": "asl"}, bidsschema.UNKNOWN),
    ('nonsense((', ASL, bidsschema.UNKNOWN),
])
def test_selectors_are_true_false_or_unknown(selector, context, expected):
    assert bidsschema.evaluate(selector, context) is expected


def test_the_unknown_value_is_never_truthy_by_mistake():
    with pytest.raises(TypeError):
        bool(bidsschema.UNKNOWN)


def test_one_evaluator_serves_the_required_fields_and_the_allow_list():
    """2D ASL requires SliceTiming (a selector on a sidecar value); the allow-list of a T1w has no ASL field
    (datatype/suffix selectors exclude it) while any perf field stays allowed for an asl."""
    assert "SliceTiming" in required_fields("perf", "asl", {}, {"MRAcquisitionType": "2D"})
    assert "SliceTiming" not in required_fields("perf", "asl", {}, {"MRAcquisitionType": "3D"})
    assert "M0Type" in bids_keys("perf", "asl") and "ArterialSpinLabelingType" in bids_keys("perf", "asl")
    assert bidsschema.schema() is bidsschema.schema()  # one load per process
