"""Splitting long texts into Telegram messages: within the limit, cut where a reader expects,
numbered, and never through a character a reader sees as one."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetkit.notify.telegram import TELEGRAM_TEXT_LIMIT, split_message, utf16_len

LABEL = re.compile(r"^\((\d+)/(\d+)\) ")

FAMILY = "👨\u200d👩\u200d👧"  # one ZWJ sequence, five code points
THUMB = "👍🏽"  # emoji + skin-tone modifier
FLAG = "🇩🇪"  # a pair of regional indicators
E_ACUTE = "e\u0301"  # e + combining acute accent
KEYCAP = "1\ufe0f\u20e3"
SCOTLAND = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"  # tag sequence
CLUSTERS = ["a", "Ж", "中", "😀", "𝄞", FAMILY, THUMB, FLAG, E_ACUTE, KEYCAP, SCOTLAND]


def bodies(parts: list[str]) -> list[str]:
    """The parts without their "(k/n) " labels, checking the labels count 1..n."""
    found = []
    for number, part in enumerate(parts, 1):
        match = LABEL.match(part)
        assert match is not None, f"part {number} has no label: {part[:20]!r}"
        assert (int(match[1]), int(match[2])) == (number, len(parts))
        found.append(part[match.end():])
    return found


def test_a_text_of_exactly_the_limit_goes_as_one_unlabelled_message() -> None:
    text = "x" * TELEGRAM_TEXT_LIMIT
    assert split_message(text) == [text]


def test_one_character_over_the_limit_makes_two_numbered_parts_within_it() -> None:
    text = "x" * (TELEGRAM_TEXT_LIMIT + 1)
    parts = split_message(text)
    assert len(parts) == 2
    assert all(utf16_len(part) <= TELEGRAM_TEXT_LIMIT for part in parts)
    assert "".join(bodies(parts)) == text


def test_a_hard_cut_fills_the_part_to_the_limit_label_included() -> None:
    parts = split_message("y" * 10_000)
    assert [utf16_len(part) for part in parts[:-1]] == [TELEGRAM_TEXT_LIMIT] * (len(parts) - 1)
    assert "".join(bodies(parts)) == "y" * 10_000


def test_parts_end_at_line_breaks_when_there_are_some() -> None:
    lines = [f"line {n:04d} " + "z" * 80 for n in range(120)]
    parts = split_message("\n".join(lines))
    assert len(parts) > 1
    assert all(utf16_len(part) <= TELEGRAM_TEXT_LIMIT for part in parts)
    # every part is whole lines; the line break at each cut is the one thing dropped
    assert "\n".join(bodies(parts)).split("\n") == lines


def test_a_line_break_right_after_a_full_part_is_where_it_is_cut() -> None:
    label = len("(1/2) ")
    first = "a" * (TELEGRAM_TEXT_LIMIT - label)
    parts = split_message(first + "\n" + "b b b" * 10)
    assert bodies(parts) == [first, "b b b" * 10]


def test_without_line_breaks_parts_end_at_spaces() -> None:
    words = [f"w{n}" for n in range(3000)]
    parts = split_message(" ".join(words))
    assert len(parts) > 1
    assert " ".join(bodies(parts)).split(" ") == words


def test_crlf_line_ends_are_dropped_whole_at_a_cut() -> None:
    lines = ["r" * 100] * 60
    parts = split_message("\r\n".join(lines))
    assert all(not body.endswith("\r") and not body.startswith("\n") for body in bodies(parts))
    assert "\r\n".join(bodies(parts)).split("\r\n") == lines


def test_emoji_count_two_units_each_so_parts_hold_half_as_many() -> None:
    text = "😀" * 3000  # 3000 code points, 6000 UTF-16 units
    parts = split_message(text)
    assert len(parts) == 2
    assert all(utf16_len(part) <= TELEGRAM_TEXT_LIMIT for part in parts)
    assert "".join(bodies(parts)) == text


@pytest.mark.parametrize("cluster", [FAMILY, THUMB, FLAG, E_ACUTE, KEYCAP, SCOTLAND])
def test_a_hard_cut_never_splits_a_character_made_of_several_code_points(cluster: str) -> None:
    text = "q" + cluster * 3000  # "q" shifts the clusters off any lucky alignment
    parts = bodies(split_message(text))
    assert "".join(parts) == text
    assert parts[0].startswith("q")
    for body in parts:
        rest = body.removeprefix("q")
        assert rest == cluster * (len(rest) // len(cluster)), "a part cut inside a cluster"


def test_labels_widen_when_the_part_count_reaches_two_digits() -> None:
    parts = split_message("k" * 500, limit=40)
    assert len(parts) >= 10
    assert parts[0].startswith("(1/") and parts[-1].startswith(f"({len(parts)}/{len(parts)}) ")
    assert all(utf16_len(part) <= 40 for part in parts)
    assert "".join(bodies(parts)) == "k" * 500


def test_blank_texts_have_no_parts() -> None:
    assert split_message("") == []
    assert split_message(" \n\t") == []
    assert split_message("\n" * 9000) == []


def test_whitespace_only_stretches_do_not_become_empty_messages() -> None:
    parts = split_message("start" + "\n" * 9000 + "end")
    assert [body.strip() for body in bodies(parts)] == ["start", "end"]


def test_a_limit_too_small_for_a_label_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        split_message("text", limit=8)


@settings(max_examples=200, deadline=None)
@given(clusters=st.lists(st.sampled_from([*CLUSTERS, " ", "\n", "\r\n"]), max_size=400),
       limit=st.integers(32, 120))
def test_parts_fit_the_limit_and_keep_every_visible_character_in_order(
        clusters: list[str], limit: int) -> None:
    text = "".join(clusters)
    parts = split_message(text, limit=limit)
    assert all(utf16_len(part) <= limit for part in parts)
    if utf16_len(text) <= limit and text.strip():
        assert parts == [text]
    else:
        kept = "".join(bodies(parts)) if parts else ""
        assert "".join(kept.split()) == "".join(text.split())


@settings(max_examples=200, deadline=None)
@given(clusters=st.lists(st.sampled_from(CLUSTERS), min_size=1, max_size=400),
       limit=st.integers(32, 120))
def test_without_whitespace_every_cut_falls_between_clusters(
        clusters: list[str], limit: int) -> None:
    text = "".join(clusters)
    parts = split_message(text, limit=limit)
    if len(parts) == 1 and parts[0] == text:
        return
    found = bodies(parts)
    assert "".join(found) == text
    boundaries = {sum(len(c) for c in clusters[:n]) for n in range(len(clusters) + 1)}
    cut = 0
    for body in found:
        cut += len(body)
        assert cut in boundaries, f"cut at {cut} splits a cluster"


@given(text=st.text(max_size=3000))
@settings(max_examples=100, deadline=None)
def test_any_text_splits_within_the_limit_and_the_same_way_every_time(text: str) -> None:
    parts = split_message(text, limit=64)
    assert all(utf16_len(part) <= 64 and part.strip() for part in parts)
    # skip_parts relies on a retry cutting the text exactly as the first attempt did
    assert split_message(text, limit=64) == parts
