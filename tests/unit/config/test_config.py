"""fleet.yaml: the demo parses, and every mistake is one line naming the file, key and fix."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from fleetkit.config.loader import (
    BUILTIN_DEMO,
    DEMO_CONFIG,
    demo_config_text,
    load_config,
    parse_config,
)
from fleetkit.config.models import FleetConfig
from fleetkit.core.errors import ConfigError, UserError
from fleetkit.strategy.base import registered

SOURCE = "fleet.yaml"
BOT = "{name: us-sma, market: NYSE, symbols: [AAPL], strategy: sma_cross"


def bots(*lines: str) -> str:
    return "bots:\n" + "".join(f"  - {line}\n" for line in lines)


def config_error(text: str, source: str = SOURCE) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source)
    message = str(caught.value)
    assert "\n" not in message, "config errors are one line"
    assert message.startswith(f"{source}")
    return message


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No FLEET_CONFIG, an empty working directory, and FLEET_HOME under tmp."""
    monkeypatch.delenv("FLEET_CONFIG", raising=False)
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


# --- the demo ----------------------------------------------------------------------------


def test_demo_config_parses_into_37_bots_on_7_markets() -> None:
    config = parse_config(demo_config_text(), DEMO_CONFIG)
    assert len(config.bots) == 37
    assert {b.market for b in config.bots} == {"NYSE", "NSE", "LSE", "JPX", "XETRA", "CRYPTO",
                                               "NFO"}
    assert len({b.name for b in config.bots}) == 37
    assert sum(b.market == "CRYPTO" for b in config.bots) == 11
    learning = {b.name: b for b in config.bots if b.strategy == "rl_policy"}
    assert set(learning) == {"rl-nifty", "rl-btc"}
    nifty, btc = learning["rl-nifty"], learning["rl-btc"]
    assert (nifty.contract, nifty.signal, nifty.ml and nifty.ml.timeframes) == (
        "front_future", "NSE:NIFTY 50", ["15m", "1h", "1d"])
    assert (btc.symbols, btc.signal, btc.ml and btc.ml.timeframes) == (
        ["BTC/USDT:USDT"], "CRYPTO:BTC/USDT", ["1h", "4h"])


def test_demo_config_carries_its_rails_and_runtime() -> None:
    config = parse_config(demo_config_text(), DEMO_CONFIG)
    assert config.risk.max_order_value_usd == Decimal(25_000)
    assert config.fleet_risk.daily_loss_limit_usd == Decimal(50_000)
    assert config.runtime.stale_after_s > config.runtime.heartbeat_interval_s
    assert config.bot("us-sma-jpm").params == {"fast": 5, "slow": 20}


def test_builtin_demo_loads_the_demo(clean_env: Path) -> None:
    loaded = load_config(BUILTIN_DEMO)
    assert loaded.source == DEMO_CONFIG
    assert loaded.source_path is None
    assert len(loaded.config.bots) == 37
    assert loaded.home == clean_env.parent / "home"


def test_no_config_anywhere_loads_the_demo(clean_env: Path) -> None:
    loaded = load_config()
    assert loaded.source == DEMO_CONFIG
    assert len(loaded.config.bots) == 37


# --- loading files -----------------------------------------------------------------------


def test_load_config_reads_the_given_file(clean_env: Path, tmp_path: Path) -> None:
    file = tmp_path / "mine.yaml"
    file.write_text("fleet: {name: mine}\n" + bots(BOT + "}"), encoding="utf-8")
    loaded = load_config(file)
    assert loaded.config.fleet.name == "mine"
    assert loaded.source_path == file.absolute()
    assert [b.name for b in loaded.config.bots] == ["us-sma"]


def test_fleet_config_env_var_names_the_file(clean_env: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "from-env.yaml"
    file.write_text("fleet: {name: from-env}\n", encoding="utf-8")
    monkeypatch.setenv("FLEET_CONFIG", str(file))
    assert load_config().config.fleet.name == "from-env"


def test_fleet_config_env_var_may_name_the_builtin_demo(clean_env: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_CONFIG", BUILTIN_DEMO)
    assert load_config().source == DEMO_CONFIG


def test_an_explicit_path_beats_the_env_var(clean_env: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("fleet: {name: explicit}\n", encoding="utf-8")
    monkeypatch.setenv("FLEET_CONFIG", str(tmp_path / "missing.yaml"))
    assert load_config(explicit).config.fleet.name == "explicit"


def test_fleet_yaml_in_the_working_directory_is_used(clean_env: Path) -> None:
    (clean_env / "fleet.yaml").write_text("fleet: {name: local}\n", encoding="utf-8")
    loaded = load_config()
    assert loaded.config.fleet.name == "local"
    assert loaded.source == str((clean_env / "fleet.yaml").absolute())


def test_a_missing_file_is_a_config_error_with_the_fix(clean_env: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    message = str(caught.value)
    assert str(missing) in message
    assert "not found" in message
    assert "fleet init" in message


def test_an_unreadable_path_is_a_config_error(clean_env: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path)  # a directory


def test_errors_from_a_file_name_that_file(clean_env: Path, tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("risk:\n  max_order_value: 5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    assert str(caught.value).startswith(f"{file}: risk.max_order_value: unknown key")


def test_an_empty_file_means_all_defaults() -> None:
    assert parse_config("", SOURCE) == FleetConfig()
    assert parse_config("# only a comment\n", SOURCE).bots == []


def test_config_error_is_a_user_error_that_exits_2() -> None:
    assert issubclass(ConfigError, UserError)
    assert ConfigError.exit_code == 2


# --- every bad input ---------------------------------------------------------------------


def test_unknown_top_level_key_lists_the_known_sections() -> None:
    message = config_error("fleet: {name: x}\nbogus: 1\n")
    assert message.startswith("fleet.yaml: bogus: unknown key; known keys here: bots, "
                              "calendars, dashboard, database, ")
    assert message.endswith("— remove or rename it")


def test_misspelt_nested_key_lists_the_known_keys_there() -> None:
    message = config_error("risk:\n  max_order_value: 5000\n")
    assert message == (
        "fleet.yaml: risk.max_order_value: unknown key; known keys here: daily_loss_limit_usd, "
        "fill_price_tolerance_pct, max_fee_pct, max_order_value_usd, max_position_value_usd, "
        "max_price_age_s, price_collar_pct "
        "— remove or rename it")


def test_misspelt_bot_key_names_the_bot() -> None:
    message = config_error(bots(BOT + ", paramz: {}}"))
    assert message.startswith("fleet.yaml: bots[0] (us-sma).paramz: unknown key; known keys here:")
    assert "params" in message


def test_misspelt_key_inside_a_bots_risk_overrides() -> None:
    message = config_error(bots(BOT + ", risk: {max_position_usd: 1}}"))
    assert message.startswith("fleet.yaml: bots[0] (us-sma).risk.max_position_usd: unknown key")
    assert "max_position_value_usd" in message


def test_unknown_strategy_lists_the_built_ins() -> None:
    message = config_error(bots("{name: a, market: NYSE, symbols: [X], strategy: macd}"))
    # Other tests in the same process may register strategies, so compare with the registry.
    known = ", ".join(sorted(registered()))
    assert message == ("fleet.yaml: bots[0] (a): unknown strategy 'macd'; "
                       f"built-in strategies: {known}")
    for name in ("buy_and_hold", "donchian_breakout", "rsi_reversion", "sma_cross"):
        assert name in known.split(", ")


def test_bad_params_name_the_strategy_and_the_problem() -> None:
    message = config_error(bots(BOT + ", params: {fast: 30, slow: 10}}"))
    assert message == ("fleet.yaml: bots[0] (us-sma): params for sma_cross: "
                       "fast (30) must be smaller than slow (10)")


def test_unknown_param_lists_the_known_params() -> None:
    message = config_error(bots(BOT + ", params: {fastt: 3}}"))
    assert message.endswith("params for sma_cross: fastt: unknown parameter (known: fast, slow)")


@pytest.mark.parametrize(("text", "where"), [
    ("risk:\n  max_order_value_usd: -5\n", "risk.max_order_value_usd"),
    ("risk:\n  max_position_value_usd: 0\n", "risk.max_position_value_usd"),
    ("risk:\n  daily_loss_limit_usd: -1\n", "risk.daily_loss_limit_usd"),
    ("fleet_risk:\n  daily_loss_limit_usd: -1\n", "fleet_risk.daily_loss_limit_usd"),
    ("defaults:\n  position_size_usd: -100\n", "defaults.position_size_usd"),
    (bots(BOT + ", risk: {max_order_value_usd: -1}}"), "bots[0] (us-sma).risk.max_order_value_usd"),
])
def test_negative_limits_name_the_key_and_the_bound(text: str, where: str) -> None:
    assert config_error(text).startswith(f"fleet.yaml: {where}: must be a number > 0, got ")


def test_unknown_market_lists_the_known_ones() -> None:
    message = config_error(bots("{name: a, market: NASDAQ, symbols: [X], strategy: sma_cross}"))
    assert message == ("fleet.yaml: bots[0] (a).market: unknown market 'NASDAQ'; "
                       "known: NYSE, NSE, BSE, NFO, BFO, LSE, JPX, XETRA, CRYPTO")


def test_bad_default_bar_interval_lists_the_intervals() -> None:
    message = config_error("defaults:\n  bar_interval: 2m\n")
    assert message == ("fleet.yaml: defaults.bar_interval: unknown bar interval '2m'; "
                       "use one of 5s, 10s, 15s, 30s, 1m, 5m, 15m, 30m, 1h")


def test_bad_bot_bar_interval_names_the_bot() -> None:
    message = config_error(bots(BOT + ", bar_interval: 1d}"))
    assert message.startswith("fleet.yaml: bots[0] (us-sma).bar_interval: unknown bar interval")


def test_duplicate_bot_names_name_the_bots_key() -> None:
    message = config_error(bots(BOT + "}", "{name: us-sma, market: NYSE, symbols: [MSFT], "
                                           "strategy: rsi_reversion}"))
    assert message == "fleet.yaml: bots: two bots are named 'us-sma'; bot names must be unique"


@pytest.mark.parametrize("name", ["Bad Name", "UPPER", "-leading-dash", "a" * 49, "dots.no"])
def test_bad_bot_name_says_what_names_may_be(name: str) -> None:
    message = config_error(bots(f"{{name: '{name}', market: NYSE, symbols: [X], "
                                "strategy: sma_cross}"))
    assert message.startswith(f"fleet.yaml: bots[0] ({name}).name: bot names are 1-48 lowercase")


def test_a_missing_bot_key_says_to_add_it() -> None:
    message = config_error(bots("{name: a, market: NYSE, symbols: [X]}"))
    assert message == "fleet.yaml: bots[0] (a).strategy: required key is missing — add it"


def test_symbols_listed_twice_are_refused() -> None:
    message = config_error(bots("{name: a, market: NYSE, symbols: [X, X], strategy: sma_cross}"))
    assert message == "fleet.yaml: bots[0] (a): symbols are listed twice"


@pytest.mark.parametrize("url", [
    "postgresql://fleet:secret@db:5432/fleet",
    "postgresql+psycopg://fleet:s3cr3t@127.0.0.1/fleet",
])
def test_password_in_the_yaml_database_url_is_refused_with_the_alternatives(url: str) -> None:
    message = config_error(f"database:\n  url: {url}\n")
    assert message.startswith("fleet.yaml: database.url: a password in the YAML database URL")
    assert "FLEET_DB_URL" in message
    assert "database.password_file" in message
    assert "secret" not in message.split("database.url:")[0]


@pytest.mark.parametrize("url", ["postgresql://fleet@db:5432/fleet", "sqlite:///var/fleet.db"])
def test_database_url_without_a_password_is_accepted(url: str) -> None:
    assert parse_config(f"database:\n  url: {url}\n", SOURCE).database.url == url


def test_malformed_yaml_names_the_line() -> None:
    message = config_error("fleet:\n  name: demo\n   extra: 2\n")
    assert message == ("fleet.yaml line 3: mapping values are not allowed here "
                       "— fix the YAML syntax there")


def test_unclosed_bracket_names_a_line_and_the_problem() -> None:
    message = config_error("fleet:\n  name: [demo\nbots: []\n")
    assert message.startswith("fleet.yaml line 3: ")
    assert message.endswith("— fix the YAML syntax there")


@pytest.mark.parametrize("text", ["- fleet\n- bots\n", "just a string\n", "42\n"])
def test_a_top_level_that_is_not_a_mapping_is_refused(text: str) -> None:
    assert config_error(text) == ("fleet.yaml: the top level must be a mapping of sections "
                                  "(fleet, database, sandbox, risk, bots ...)")


@pytest.mark.parametrize(("heartbeat", "stale"), [(10, 10), (30, 20)])
def test_stale_after_must_be_longer_than_the_heartbeat(heartbeat: int, stale: int) -> None:
    message = config_error(f"runtime:\n  heartbeat_interval_s: {heartbeat}\n"
                           f"  stale_after_s: {stale}\n")
    assert message == "fleet.yaml: runtime: stale_after_s must be longer than heartbeat_interval_s"


def test_non_positive_fx_rate_is_refused() -> None:
    message = config_error("fx_usd:\n  EUR: 0\n")
    assert message == "fleet.yaml: fx_usd: FX rates must be positive: EUR"


def test_more_problems_are_counted_after_the_first() -> None:
    message = config_error("bogus: 1\nrisk:\n  max_order_value_usd: -1\n")
    assert message.startswith("fleet.yaml: bogus: unknown key")
    assert message.endswith("(+1 more problems)")


def test_fx_rates_merge_over_the_defaults() -> None:
    config = parse_config("fx_usd:\n  EUR: 1.1\n", SOURCE)
    assert config.fx_usd["EUR"] == Decimal("1.1")
    assert config.fx_usd["JPY"] == Decimal("0.0066")


def test_a_key_given_twice_in_one_section_is_refused() -> None:
    message = config_error("sandbox:\n  fee_bps: 1\n  fee_bps: 3\n")
    assert message == ("fleet.yaml line 3: key 'fee_bps' appears twice in the same section "
                       "— keep one")


def test_an_order_grace_no_longer_than_the_broker_timeout_is_refused() -> None:
    message = config_error("runtime:\n  broker_timeout_s: 10\n  unknown_order_grace_s: 5\n")
    assert "unknown_order_grace_s must be longer than broker_timeout_s" in message
