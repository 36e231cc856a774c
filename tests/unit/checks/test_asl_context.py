"""An ASL image is placed only with its aslcontext.tsv, whose order comes from the site's rule, never invented."""

from __future__ import annotations

import pytest

from bids_factory.checks.asl_context import aslcontext


def test_without_the_rules_order_there_is_no_aslcontext_and_the_reason_says_how_to_give_it():
    for order in (None, {}):
        text, why = aslcontext(order, 61)
        assert text is None and "label/control order" in why and '"aslcontext"' in why


def test_an_m0_first_then_control_label_pairs_fill_every_volume_in_order():
    text, why = aslcontext({"first": ["m0scan"], "repeat": ["control", "label"]}, 5)
    assert why == "" and text == "volume_type\nm0scan\ncontrol\nlabel\ncontrol\nlabel\n"
    text, _ = aslcontext({"repeat": ["label", "control"]}, 4)
    assert text.splitlines() == ["volume_type", "label", "control", "label", "control"]


@pytest.mark.parametrize("volumes", [5, 1, 0])  # one volume more than the pairs; fewer volumes than the first ones
def test_an_order_that_does_not_fit_the_volumes_holds_the_image_back(volumes):
    text, why = aslcontext({"first": ["m0scan", "m0scan"], "repeat": ["control", "label"]}, volumes)
    assert text is None and f"its {volumes} volumes" in why and "2 first + a repeat of 2" in why
