"""A visit's identifiers are found as whole words in any JSON value, and redacted from text, never partly."""

from __future__ import annotations

from bids_factory.privacy.identifier_match import REDACTED, VisitIdentifiers

VISIT = VisitIdentifiers("IPP-4711", frozenset({"IPP-4711", "ACC99"}), frozenset({"Smith", "Anna"}),
                         frozenset({"19500203"}))


def test_an_identifier_is_found_as_a_whole_word_in_any_case_and_never_inside_another_word():
    assert VISIT.found_in("T1_SMITH") and VISIT.found_in("anna^smith") and VISIT.found_in("born 19500203")
    assert not VISIT.found_in("Smithson") and not VISIT.found_in("Annabel") and not VISIT.found_in("ACC990")
    assert VISIT.found_in("Müller-Smith") and not VISIT.found_in("Smithé")  # a letter of any script glues


def test_lists_objects_and_their_keys_are_searched_other_values_are_not():
    assert VISIT.found_in({"ImageComments": ["ok", {"by": "Dr Anna"}]})
    assert VISIT.found_in({"ACC99": 1})  # a key holding an identifier (a sidecar written from free text)
    assert not VISIT.found_in({"EchoTime": 0.0047, "SeriesNumber": 19500203, "flags": [True, None]})
    assert not VisitIdentifiers().found_in("anything at all") and VisitIdentifiers().redact("Smith") == "Smith"


def test_redaction_removes_every_identifier_and_spares_the_tools_own_words():
    assert VISIT.redact("Series T1_Smith of IPP-4711 (acc ACC99)") == f"Series T1_{REDACTED} of {REDACTED} (acc {REDACTED})"
    # the longest value first: a name that is part of a longer identifier does not leave half of it
    longer = VisitIdentifiers(names=frozenset({"Anna", "Anna-Lena"}))
    assert longer.redact("patient Anna-Lena") == f"patient {REDACTED}"
    assert VisitIdentifiers(names=frozenset({"Field"})).redact("Field map of FIELD", frozenset({"field"})) == (
        "Field map of FIELD")
