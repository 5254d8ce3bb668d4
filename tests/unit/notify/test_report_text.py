"""P&L update and daily summary texts: one readable message for the whole fleet, exact totals,
signs and separators, only open markets shown."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from fleetkit.core.controls import TradingState
from fleetkit.notify.reports import BotLine, FleetTotals, daily_summary, pnl_update, signed
from fleetkit.notify.telegram import TELEGRAM_TEXT_LIMIT, split_message

AT = datetime(2024, 5, 3, 14, 15, tzinfo=UTC)


def bot(name: str, net_usd: str, *, market: str = "crypto", open_: bool = True,
        state: TradingState = TradingState.ACTIVE, currency: str = "USD",
        net: str | None = None, realized: str | None = None, unrealized: str = "0",
        positions: int = 1, fills: int = 0, mode: str = "paper") -> BotLine:
    own = Decimal(net if net is not None else net_usd)
    return BotLine(name=name, market=market, mode=mode, state=state, currency=currency,
                   realized=Decimal(realized) if realized is not None else own - Decimal(
                       unrealized),
                   unrealized=Decimal(unrealized), net=own, net_usd=Decimal(net_usd),
                   positions=positions, fills_today=fills, open=open_)


def fleet_of_35() -> list[BotLine]:
    markets = ["crypto", "XNYS", "XETR"]
    lines = []
    for i in range(35):
        amount = Decimal(i * 37 - 400) + Decimal("0.25")
        lines.append(bot(f"bot{i:02d}", str(amount), market=markets[i % 3],
                         state=TradingState.HALTED if i in (3, 4, 5) else TradingState.ACTIVE))
    return lines


def line_of(text: str, name: str) -> str:
    found = [line for line in text.splitlines() if line.startswith(name + " ")]
    assert len(found) == 1, (name, text)
    return found[0]


# --- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "text"), [
    ("1234.565", "+1,234.56"),  # banker's rounding
    ("1234567.891", "+1,234,567.89"),
    ("-1234.5", "-1,234.50"),
    ("0", "+0.00"),
    ("-0.004", "+0.00"),  # never "-0.00"
    ("-0.005", "+0.00"),
    ("-0.006", "-0.01"),
])
def test_amounts_always_carry_a_sign_and_separators(amount: str, text: str) -> None:
    assert signed(Decimal(amount)) == text


def test_totals_add_the_exact_values_not_the_rounded_ones() -> None:
    totals = FleetTotals.of([bot("a", "0.004"), bot("b", "0.004"), bot("c", "0.004")])
    assert totals.net_usd == Decimal("0.012")
    assert totals.describe() == "+0.01 USD (3 bots)"


# --- P&L update -----------------------------------------------------------------------------


def test_the_header_carries_the_fleet_total_bot_count_and_halts() -> None:
    lines = [bot("alpha", "1000.50", state=TradingState.HALTED),
             bot("beta", "234.06", market="XNYS", open_=False),
             bot("gamma", "-100", state=TradingState.REDUCING)]
    text = pnl_update(lines, AT)
    assert text is not None
    assert text.splitlines()[0] == (
        "P&L 14:15 UTC — fleet +1,134.56 USD today (3 bots, 1 halted, 1 reducing)")


def test_the_header_time_is_in_the_requested_zone() -> None:
    text = pnl_update([bot("alpha", "1")], AT, tz_name="America/New_York")
    assert text is not None
    assert text.startswith("P&L 10:15 EDT — fleet +1.00 USD today (1 bot)")


def test_35_bots_make_one_message_grouped_by_market_best_first() -> None:
    lines = fleet_of_35()
    text = pnl_update(lines, AT)
    assert text is not None
    assert len(split_message(text)) == 1 and len(text) < TELEGRAM_TEXT_LIMIT
    total = sum((line.net_usd for line in lines), Decimal(0))
    assert text.splitlines()[0] == (
        f"P&L 14:15 UTC — fleet {signed(total)} USD today (35 bots, 3 halted)")
    for name in (f"bot{i:02d}" for i in range(35)):
        line_of(text, name)

    blocks = text.split("\n\n")[1:]
    assert [block.splitlines()[0].split(" — ")[0] for block in blocks] == [
        "crypto", "XETR", "XNYS"]
    for block, market in zip(blocks, ["crypto", "XETR", "XNYS"], strict=True):
        members = [line for line in lines if line.market == market]
        header, *rows = block.splitlines()
        group_total = sum((line.net_usd for line in members), Decimal(0))
        assert header.startswith(f"{market} — {signed(group_total)} USD ({len(members)} bots")
        expected = sorted(members, key=lambda line: line.net_usd, reverse=True)
        assert [row.split()[0] for row in rows] == [line.name for line in expected]


def test_a_bot_line_is_compact_and_columns_line_up() -> None:
    lines = [bot("alpha", "123.40", realized="100", unrealized="23.40", positions=2, fills=5,
                 state=TradingState.HALTED),
             bot("longer_name", "-1234.5", realized="-1234.5", positions=0)]
    text = pnl_update(lines, AT)
    assert text is not None
    alpha, longer = line_of(text, "alpha"), line_of(text, "longer_name")
    assert alpha.split() == ["alpha", "+123.40", "USD", "(r", "+100.00", "u", "+23.40)", "2",
                             "pos", "5", "fills", "HALTED"]
    assert longer.split() == ["longer_name", "-1,234.50", "USD", "(r", "-1,234.50", "u",
                              "+0.00)", "0", "pos"]
    assert alpha.index("USD") == longer.index("USD")
    assert alpha.index("(r") == longer.index("(r")
    assert alpha.index(" pos") == longer.index(" pos")


def test_a_bot_in_another_currency_shows_its_own_amounts_and_usd() -> None:
    lines = [bot("tokyo", "6.70", currency="JPY", net="1000", realized="1200",
                 unrealized="-200", market="XTKS"),
             bot("usd_bot", "1", market="XTKS")]
    text = pnl_update(lines, AT)
    assert text is not None
    assert line_of(text, "tokyo").split() == [
        "tokyo", "+1,000.00", "JPY", "=", "+6.70", "USD", "(r", "+1,200.00", "u", "-200.00)",
        "1", "pos"]
    assert "=" not in line_of(text, "usd_bot")
    assert "fleet +7.70 USD" in text.splitlines()[0]


def test_live_and_reducing_bots_are_flagged() -> None:
    text = pnl_update([bot("real", "1", mode="live", state=TradingState.REDUCING)], AT)
    assert text is not None
    assert line_of(text, "real").endswith("REDUCING LIVE")


def test_bots_of_closed_markets_are_left_out_but_counted() -> None:
    lines = [bot("btc", "10", market="crypto"),
             bot("lse1", "5", market="XLON", open_=False),
             bot("lse2", "5", market="XLON", open_=False)]
    text = pnl_update(lines, AT)
    assert text is not None
    assert "lse1" not in text and "lse2" not in text
    assert "XLON —" not in text
    assert text.splitlines()[0].endswith("fleet +20.00 USD today (3 bots)")
    assert text.splitlines()[-1] == "not shown, market closed: XLON (2 bots)"


def test_no_message_when_no_market_is_open() -> None:
    assert pnl_update([bot("lse", "5", market="XLON", open_=False)], AT) is None
    assert pnl_update([], AT) is None


def test_200_bots_may_exceed_one_message_and_split_on_lines() -> None:
    lines = [bot(f"bot{i:03d}", str(i - 100), market=f"M{i % 7}") for i in range(200)]
    text = pnl_update(lines, AT)
    assert text is not None
    parts = split_message(text)
    assert len(parts) > 1
    assert all(line.rstrip() == line for line in text.splitlines())


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        pnl_update([bot("a", "1")], datetime(2024, 5, 3, 14, 15))  # noqa: DTZ001


# --- daily summary --------------------------------------------------------------------------


def summary_of(lines: list[BotLine], *, halts: list[str] | None = None,
               denials: dict[str, int] | None = None, findings: list[str] | None = None) -> str:
    return daily_summary(lines, datetime(2024, 5, 3, 22, 0, tzinfo=UTC), trades=1234,
                         halts=halts or [], denials=denials or {}, findings=findings or [])


def test_the_summary_has_fleet_pnl_best_and_worst_three_and_trades() -> None:
    lines = [bot(name, amount) for name, amount in [
        ("a", "500"), ("b", "-300"), ("c", "20"), ("d", "1000"), ("e", "-50"), ("f", "0"),
        ("g", "7"), ("h", "-2000")]]
    lines.append(bot("yen", "100", currency="JPY", net="15000", state=TradingState.HALTED))
    text = summary_of(lines)
    assert text.splitlines()[:2] == ["Daily summary 2024-05-03 22:00 UTC",
                                     "Fleet P&L: -723.00 USD (9 bots, 1 halted)"]
    sections = text.split("\n")
    best = sections[sections.index("Best:") + 1:sections.index("Best:") + 4]
    worst = sections[sections.index("Worst:") + 1:sections.index("Worst:") + 4]
    assert [row.split()[0] for row in best] == ["d", "a", "yen"]
    assert [row.split()[0] for row in worst] == ["h", "b", "e"]
    assert best[0].split() == ["d", "+1,000.00", "USD"]
    assert best[2].split() == ["yen", "+100.00", "USD", "(+15,000.00", "JPY)"]
    assert "Trades: 1,234" in sections


def test_a_small_fleet_is_not_listed_twice() -> None:
    text = summary_of([bot("a", "5"), bot("b", "-5")])
    assert "Worst: none" in text.splitlines()
    assert text.count("  a ") + text.count("  b ") == 2


def test_empty_sections_say_none() -> None:
    text = summary_of([])
    for section in ("Halts: none", "Risk denials: none", "Monitor findings: none",
                    "Best: none", "Worst: none", "Fleet P&L: +0.00 USD (0 bots)"):
        assert section in text.splitlines()


def test_halts_denials_and_findings_are_listed() -> None:
    text = summary_of([bot("a", "1")],
                      halts=["alpha: daily loss $512.00 reached the limit $500"],
                      denials={"order value over limit": 3, "bot halted": 12,
                               "market closed": 3},
                      findings=["stale quotes on XNYS for 4 min", "beta restarted 3 times"])
    lines = text.splitlines()
    halts = lines.index("Halts:")
    assert lines[halts + 1] == "  alpha: daily loss $512.00 reached the limit $500"
    denials = lines.index("Risk denials (18):")
    assert lines[denials + 1:denials + 4] == ["  12  bot halted", "   3  market closed",
                                              "   3  order value over limit"]
    findings = lines.index("Monitor findings:")
    assert lines[findings + 1:] == ["  stale quotes on XNYS for 4 min",
                                    "  beta restarted 3 times"]
