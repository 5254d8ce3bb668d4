"""The user's derivatives file laid over the shipped contract rules: key by key, new
underlyings, dropped schedules and roots, and every bad file refused in one line that names
the file, the key and the fix."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from fleetkit.brokers.sandbox.contracts import (
    ContractRules,
    lay_over_rules,
    load_contract_rules,
)
from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.core.errors import ConfigError
from fleetkit.runtime.wiring import derivatives_path, sandbox_contract_rules


@pytest.fixture(scope="module")
def shipped() -> dict[str, ContractRules]:
    return load_contract_rules()


def rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "derivatives.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_is_the_shipped_rules_exactly(shipped: dict[str, ContractRules]) -> None:
    assert load_contract_rules(None) == shipped
    assert sorted(shipped) == ["BANKNIFTY", "NIFTY", "SENSEX"]


def test_an_override_changes_only_the_keys_it_gives(tmp_path: Path,
                                                    shipped: dict[str, ContractRules]) -> None:
    rules = load_contract_rules(rules_file(
        tmp_path, "NIFTY:\n  lot_size: 65\n  weekly: {weekday: thursday}\n"))
    nifty = rules["NIFTY"]
    assert nifty.lot_size == 65
    assert nifty.weekly is not None and nifty.weekly.weekday == "thursday"
    assert nifty.weekly.listed == 1, "the schedule's other key keeps the shipped value"
    assert nifty.model_copy(update={"lot_size": 75, "weekly": shipped["NIFTY"].weekly}) \
        == shipped["NIFTY"]
    assert (rules["BANKNIFTY"], rules["SENSEX"]) == (shipped["BANKNIFTY"], shipped["SENSEX"])


def test_a_new_underlying_is_added_with_all_its_rules(
        shipped: dict[str, ContractRules]) -> None:
    finnifty = {"spot": "NSE:NIFTY 50", "exchange": "NFO", "lot_size": 65,
                "strike_step": "50", "strikes_each_side": 20,
                "monthly": {"weekday": "tuesday", "listed": 1}, "atm_volatility": 0.16,
                "atm_open_interest_lots": 20000}
    rules = lay_over_rules(shipped, {"FINNIFTY": finnifty})
    assert rules["FINNIFTY"].strike_step == Decimal(50) and rules["FINNIFTY"].weekly is None
    assert rules["FINNIFTY"].futures_listed == 0, "an optional key takes its default"
    with pytest.raises(ValueError, match=r"^FINNIFTY: a new underlying needs every rule; "
                                         r"missing lot_size$"):
        lay_over_rules(shipped, {"FINNIFTY": {k: v for k, v in finnifty.items()
                                              if k != "lot_size"}})


def test_null_drops_a_schedule_or_a_whole_underlying(
        shipped: dict[str, ContractRules]) -> None:
    rules = lay_over_rules(shipped, {"NIFTY": {"weekly": None}, "BANKNIFTY": None})
    assert rules["NIFTY"].weekly is None and rules["NIFTY"].monthly is not None
    assert sorted(rules) == ["NIFTY", "SENSEX"]
    assert lay_over_rules(shipped, None) == shipped, "an empty file changes nothing"


@pytest.mark.parametrize(("text", "message"), [
    ("NIFTY: {strike_size: 50}\n",
     "NIFTY.strike_size: unknown key; known: atm_open_interest_lots, atm_volatility, "
     "exchange, futures_listed, lot_size, margin_rate, monthly, roll_days_before, spot, "
     "strike_step, "
     "strikes_each_side, weekly"),
    ("NIFTY: {weekly: {day: thursday}}\n",
     "NIFTY.weekly.day: unknown key; known: listed, weekday"),
    ("NIFTY: {weekly: {weekday: thrusday}}\n",
     "NIFTY: weekly.weekday: Input should be 'monday', 'tuesday', 'wednesday', 'thursday' "
     "or 'friday'"),
    ("NIFTY: {lot_size: 0}\n", "NIFTY: lot_size: Input should be greater than 0"),
    ("NIFTY: {exchange: NSE}\n",
     "NIFTY: exchange 'NSE' is not a derivatives segment; use one of BFO, NFO"),
    ("SENSEX: {monthly: null}\n", "SENSEX: futures expire on the monthly schedule"),
    ("nifty: {lot_size: 65}\n", "'nifty': a root is capital letters and digits, like NIFTY"),
    ("NIFTY: 65\n", "NIFTY: expected a mapping of the rules to change"),
    ("- NIFTY\n", "the file must map underlying roots (NIFTY:) to the rules to change"),
    ("NIFTY: {lot_size: 65\n", "line 2: expected ',' or '}'"),
    ("NIFTY: {lot_size: 65}\nNIFTY: {lot_size: 50}\n", "key 'NIFTY' appears twice"),
])
def test_a_bad_file_is_one_line_naming_the_file_and_the_key(tmp_path: Path, text: str,
                                                            message: str) -> None:
    path = rules_file(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_contract_rules(path)
    said = str(raised.value)
    assert said.startswith(str(path)), said
    assert message in said
    assert "\n" not in said


def test_a_missing_or_unreadable_file_names_the_config_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml not found: fix "
                                          r"sandbox\.derivatives_file in the config"):
        load_contract_rules(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="cannot read derivatives file"):
        load_contract_rules(tmp_path)  # a directory


def loaded_config(tmp_path: Path, sandbox: str) -> LoadedConfig:
    path = tmp_path / "fleet.yaml"
    text = f"sandbox: {sandbox}\n"
    path.write_text(text, encoding="utf-8")
    return LoadedConfig(parse_config(text, str(path)), str(path), tmp_path)


def test_the_config_names_the_file_relative_to_its_own_directory(tmp_path: Path) -> None:
    rules_file(tmp_path, "NIFTY: {lot_size: 65}\n")
    loaded = loaded_config(tmp_path, "{derivatives_file: derivatives.yaml}")
    assert derivatives_path(loaded) == tmp_path / "derivatives.yaml"
    assert sandbox_contract_rules(loaded)["NIFTY"].lot_size == 65
    assert derivatives_path(loaded_config(tmp_path, "{}")) is None
    assert sandbox_contract_rules(loaded_config(tmp_path, "{}")) == load_contract_rules()


def test_an_underlying_on_a_spot_the_sandbox_does_not_price_is_refused(
        tmp_path: Path) -> None:
    rules_file(tmp_path, "NIFTY: {spot: 'NSE:NIFTY MIDCAP'}\n")
    loaded = loaded_config(tmp_path, "{derivatives_file: derivatives.yaml}")
    with pytest.raises(ConfigError, match=r"derivatives\.yaml: NIFTY\.spot: 'NSE:NIFTY "
                                          r"MIDCAP' is no instrument the sandbox prices; "
                                          r"add it under sandbox\.instruments"):
        sandbox_contract_rules(loaded)


def test_an_empty_file_name_is_refused_at_config_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sandbox\.derivatives_file"):
        loaded_config(tmp_path, "{derivatives_file: ''}")
