"""The starter heuristic (``inventory --write-heuristic``) holds rules only for what a curator must decide."""

from __future__ import annotations

from bids_factory.run.inventory import Inventory, SeriesEntry, VisitEntry
from bids_factory.run.starter import starter_heuristic

M = ("ORIGINAL", "PRIMARY", "M")


def _series(number, description, outcome, kind, image_type=M, echo=None, rule=None, missing=(), entities=()):
    return SeriesEntry(number, description, description, image_type, outcome, rule=rule, kind=kind,
                       sidecar={} if echo is None else {"EchoNumber": echo}, missing=missing, entities=entities)


def _starter(*series) -> dict:
    return starter_heuristic(Inventory("export", "default", (VisitEntry("V1", (), series=tuple(series)),), ()))


def test_no_rule_for_scouts_derived_maps_or_what_a_rule_places():
    starter = _starter(_series(1, "localizer", "unmatched", "localizer"),
                       _series(2, "T1_ADC", "unmatched", "derived"),
                       _series(3, "t1_mprage", "placed", "anat/T1w", rule="t1w"),
                       _series(4, "odd", "held-back", "anat/T1w", rule="t1w"))  # held by a schema: not metadata
    assert starter["descriptions"] == []


def test_echoes_of_one_name_get_an_echo_criterion_and_every_rule_a_unique_name():
    starter = _starter(_series(5, "me_gre", "unmatched", "unknown", echo=1),
                       _series(6, "me_gre", "unmatched", "unknown", echo=2),
                       _series(7, "me_gre", "unmatched", "unknown", echo=2),  # a repeat: the same rule
                       _series(8, "mystery", "unmatched", "unknown", image_type=("ORIGINAL", "PRIMARY", "P")),
                       _series(9, "mystery", "unmatched", "unknown"))
    rules = starter["descriptions"]
    assert [r["bids_factory"]["rule"] for r in rules] == ["me_gre echo 1", "me_gre echo 2", "mystery", "mystery #2"]
    assert [r["criteria"].get("EchoNumber") for r in rules] == [1, 2, None, None]
    assert {(r["datatype"], r["suffix"]) for r in rules} == {("EDITME", "EDITME")}


def test_known_classes_are_pre_filled_and_missing_fields_are_placeholders():
    starter = _starter(_series(10, "rest?", "held-back", "func/bold", missing=("TaskName",)),
                       _series(11, "pcasl", "held-back", "perf/asl", rule="bids-factory-default:asl",
                               missing=("M0Type", "TotalAcquiredPairs")),
                       _series(12, "task-nback_bold", "held-back", "func/bold", entities=(("task", "nback"),),
                               rule="bids-factory-default:bold", missing=("RepetitionTime",)))
    bold, asl, nback = starter["descriptions"]
    assert (bold["datatype"], bold["suffix"], bold["custom_entities"]) == ("func", "bold", "task-EDITME")
    assert bold["sidecar_changes"] == {"TaskName": "EDITME"} and bold["bids_factory"]["classified_entities"]
    assert (asl["datatype"], asl["suffix"]) == ("perf", "asl")
    assert asl["sidecar_changes"] == {"M0Type": "EDITME", "TotalAcquiredPairs": "EDITME"}
    assert asl["bids_factory"]["aslcontext"] == {"first": [], "repeat": ["EDITME"]}
    assert "custom_entities" not in nback  # its task comes from its name
