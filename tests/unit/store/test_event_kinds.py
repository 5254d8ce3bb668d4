"""`fleet events --kind` names kinds by whole dotted parts, at either end of the kind."""

from __future__ import annotations

import pytest

from fleetkit.store.audit import kind_matches


@pytest.mark.parametrize(("wanted", "kind"), [
    ("order.fill", "order.fill"),
    ("order", "order.fill"), ("order.", "order.submitted"),
    ("fill", "order.fill"), ("fill", "fill.refused"),
    ("denied", "risk.denied"), ("control", "control.halted"),
])
def test_a_kind_is_named_by_itself_or_its_leading_or_trailing_parts(wanted: str,
                                                                    kind: str) -> None:
    assert kind_matches(kind, wanted)


@pytest.mark.parametrize(("wanted", "kind"), [
    ("fil", "order.fill"), ("ord", "order.fill"), ("", "order.fill"), (".", "order.fill"),
    ("rder.fil", "order.fill"), ("outcome", "order.outcome_unknown"),
])
def test_part_of_a_word_names_nothing(wanted: str, kind: str) -> None:
    assert not kind_matches(kind, wanted)
