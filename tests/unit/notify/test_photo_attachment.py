"""The pure parts of sending a chart: the photo's caption, reading the attachment file, and
how `send_due` keeps part numbers steady when the file cannot be read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetkit.core.alerts import Severity
from fleetkit.notify.base import Failure, SendOutcome
from fleetkit.notify.telegram import TELEGRAM_PHOTO_LIMIT_BYTES, photo_caption, utf16_len
from fleetkit.runtime.notifier import read_attachment, send_due
from fleetkit.store.outbox import Due
from fleetkit.testing.fake_telegram import png_bytes

CHART = png_bytes()


@pytest.mark.parametrize("text, caption", [
    ("P&L today\nalpha +1", "P&L today"),
    ("\n  \n  indented first line  \nrest", "indented first line"),
    ("", ""),
    (" \n ", ""),
])
def test_the_caption_is_the_first_non_blank_line(text: str, caption: str) -> None:
    assert photo_caption(text) == caption


def test_a_long_caption_is_cut_within_the_limit_never_inside_a_character() -> None:
    flag = "🇩🇪"  # two regional indicators: cutting between them would break the flag
    caption = photo_caption("x" + flag * 600, limit=1024)
    assert utf16_len(caption) <= 1024 and caption.endswith("…")
    assert caption[1:-1] == flag * ((len(caption) - 2) // 2)
    assert photo_caption("a" * 1024) == "a" * 1024
    assert photo_caption("a" * 1025) == "a" * 1023 + "…"


def test_read_attachment_returns_the_bytes_or_why_not(tmp_path: Path) -> None:
    (tmp_path / "chart.png").write_bytes(CHART)
    (tmp_path / "chart.gif").write_bytes(b"GIF89a")
    (tmp_path / "folder.png").mkdir()
    assert read_attachment(str(tmp_path / "chart.png")) == CHART
    assert read_attachment("chart.png", tmp_path) == CHART
    assert read_attachment(str(tmp_path / "nope.png")) == f"{tmp_path / 'nope.png'} is missing"
    assert read_attachment("chart.gif", tmp_path) == "chart.gif is not a PNG"
    assert str(read_attachment("folder.png", tmp_path)).startswith(
        "folder.png could not be read: ")


def test_read_attachment_refuses_a_file_over_telegrams_photo_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    with big.open("wb") as out:
        out.write(CHART)
        out.truncate(TELEGRAM_PHOTO_LIMIT_BYTES + 1)
    assert read_attachment(str(big)) == \
        f"{big} is too big (over {TELEGRAM_PHOTO_LIMIT_BYTES} bytes)"


@dataclass
class ScriptedSender:
    """Answers each send with the next scripted (delivered, total, ok) and records calls."""

    script: list[tuple[int, int, bool]]
    calls: list[tuple[str, int, bool]] = field(default_factory=list)

    def send(self, destination: str, text: str, *, skip_parts: int = 0,
             photo: bytes | None = None) -> SendOutcome:
        self.calls.append((text, skip_parts, photo is not None))
        delivered, total, ok = self.script.pop(0)
        if ok:
            return SendOutcome.delivered(["1"] * (total - skip_parts), total)
        return SendOutcome.failed(Failure.retry("HTTP 502"), delivered, total,
                                  ["1"] * (delivered - skip_parts))


def due(attachment: str | None, delivered_parts: int = 0) -> Due:
    return Due(1, 1, "brief", 0, delivered_parts, "report.pnl", "brief", Severity.INFO,
               "text", None, datetime(2026, 11, 20, tzinfo=UTC), attachment)


def test_without_an_attachment_send_due_is_a_plain_send() -> None:
    sender = ScriptedSender([(1, 1, True)])
    assert send_due(sender, "42", "text", due(None)).ok
    assert sender.calls == [("text", 0, False)]


def test_a_readable_chart_goes_as_the_photo_with_the_stored_skip(tmp_path: Path) -> None:
    (tmp_path / "c.png").write_bytes(CHART)
    sender = ScriptedSender([(3, 3, True)])
    outcome = send_due(sender, "42", "text", due("c.png", delivered_parts=1), tmp_path)
    assert outcome.ok and sender.calls == [("text", 1, True)]


def test_a_missing_chart_keeps_the_photos_place_in_the_part_count(tmp_path: Path) -> None:
    note = f"text\n(chart not attached: {tmp_path / 'x.png'} is missing)"
    # nothing out yet and nothing goes: nothing counted, so a chart back later is sent
    failed = send_due(ScriptedSender([(0, 2, False)]), "42", "text", due(str(tmp_path / "x.png")))
    assert (failed.delivered_parts, failed.total_parts) == (0, 3)
    # a text part goes: the photo's place is counted as taken along with it
    sender = ScriptedSender([(1, 2, False)])
    part = send_due(sender, "42", "text", due(str(tmp_path / "x.png")))
    assert (part.delivered_parts, part.total_parts) == (2, 3)
    assert sender.calls == [(note, 0, False)]
    # the photo went out on an earlier attempt: the text resumes from its own first part
    sender = ScriptedSender([(2, 2, True)])
    done = send_due(sender, "42", "text", due(str(tmp_path / "x.png"), delivered_parts=1))
    assert done.ok and (done.delivered_parts, done.total_parts) == (3, 3)
    assert sender.calls == [(note, 0, False)]
