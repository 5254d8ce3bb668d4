"""How far calendar data reaches, and which markets are flagged before it runs out."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from fleetkit.calendars.coverage import (
    Expiring,
    calendars_expiring,
    coverage_end,
    library_coverage_end,
    market_coverage,
)
from fleetkit.calendars.overrides import load_overrides, parse_overrides
from fleetkit.core.instruments import ALWAYS_OPEN, MARKETS

DECEMBER_15 = date(2026, 12, 15)


def test_the_librarys_nse_data_ends_with_2026() -> None:
    assert library_coverage_end("XNSE") == date(2026, 12, 31)
    assert coverage_end("XNSE") == date(2026, 12, 31)


def test_rule_based_calendars_reach_the_librarys_horizon() -> None:
    for calendar in ("XNYS", "XLON", "XTKS", "XETR"):
        end = coverage_end(calendar)
        assert end is not None and end.year >= 2100


def test_an_always_open_market_has_nothing_to_run_out() -> None:
    assert coverage_end(ALWAYS_OPEN) is None
    assert coverage_end(ALWAYS_OPEN, load_overrides()) is None
    [crypto] = market_coverage(["CRYPTO"])
    assert (crypto.ends, crypto.basis, crypto.days_left(DECEMBER_15)) == (None, "always open",
                                                                          None)


def test_nse_is_flagged_in_mid_december_on_the_librarys_data_alone() -> None:
    # BSE and the F&O segments trade on NSE's calendar: they run out with it.
    assert calendars_expiring(list(MARKETS), DECEMBER_15) == [
        Expiring(code, "XNSE", date(2026, 12, 31)) for code in ("NSE", "BSE", "NFO", "BFO")]


def test_the_shipped_override_covers_nse_until_its_coverage_until() -> None:
    shipped = load_overrides()
    nse = shipped.get("XNSE")
    assert nse is not None and nse.coverage_until is not None
    until = nse.coverage_until
    assert coverage_end("XNSE", shipped) == until
    [coverage] = market_coverage(["NSE"], shipped)
    assert (coverage.library_ends, coverage.override_until, coverage.basis) == (
        date(2026, 12, 31), until, "override file")
    assert calendars_expiring(list(MARKETS), DECEMBER_15, overrides=shipped) == []
    # ... and NSE is flagged again 30 days before that date.
    assert calendars_expiring(["NSE"], until - timedelta(days=31), overrides=shipped) == []
    assert calendars_expiring(["NSE"], until - timedelta(days=30), overrides=shipped) == [
        Expiring("NSE", "XNSE", until)]


def test_a_calendar_whose_data_has_ended_stays_flagged() -> None:
    assert calendars_expiring(["NSE", "NYSE"], date(2027, 6, 1)) == [
        Expiring("NSE", "XNSE", date(2026, 12, 31))]


def test_an_override_extends_coverage_but_never_shortens_it() -> None:
    later = parse_overrides("calendars: {XNSE: {coverage_until: 2027-12-31}}", "f.yaml")
    earlier = parse_overrides("calendars: {XNSE: {coverage_until: 2026-06-30},"
                              " XNYS: {coverage_until: 2030-01-01}}", "f.yaml")
    assert coverage_end("XNSE", later) == date(2027, 12, 31)
    assert coverage_end("XNSE", earlier) == date(2026, 12, 31)
    assert coverage_end("XNYS", earlier) == coverage_end("XNYS")
    assert market_coverage(["NSE"], earlier)[0].basis == "library"


def test_a_users_coverage_until_replaces_the_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text("calendars: {XNSE: {coverage_until: 2027-12-31}}\n", encoding="utf-8")
    assert coverage_end("XNSE", load_overrides(path)) == date(2027, 12, 31)
    assert calendars_expiring(["NSE"], DECEMBER_15, overrides=load_overrides(path)) == []


def test_the_warning_window_is_adjustable_and_markets_are_listed_once() -> None:
    assert calendars_expiring(["NSE"], DECEMBER_15, within_days=15) == []
    assert calendars_expiring(["NSE"], DECEMBER_15, within_days=16) == [
        Expiring("NSE", "XNSE", date(2026, 12, 31))]
    assert [c.market for c in market_coverage(["NSE", "NYSE", "NSE"])] == ["NSE", "NYSE"]


def test_an_unknown_market_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown market 'MARS'"):
        calendars_expiring(["MARS"], DECEMBER_15)
