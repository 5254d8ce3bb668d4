"""A bad `sandbox.derivatives_file` through the real commands: `fleet broker serve` and
`fleet up` stop before serving or writing anything, in one line naming the file, the key
and the fix, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.cli_support import assert_user_error, fleet

pytestmark = pytest.mark.slow  # every test starts `fleet` processes


def config_with_rules(tmp_path: Path, rules: str) -> Path:
    (tmp_path / "nse-rules.yaml").write_text(rules, encoding="utf-8")
    config = tmp_path / "fleet.yaml"
    config.write_text(
        "sandbox: {port: 1, derivatives_file: nse-rules.yaml}\n"  # never reached: refused first
        'bots:\n  - {name: india, market: NSE, symbols: ["RELIANCE"], strategy: sma_cross}\n',
        encoding="utf-8")
    return config


def test_broker_serve_refuses_a_misspelt_weekday(tmp_path: Path) -> None:
    config = config_with_rules(tmp_path, "NIFTY: {weekly: {weekday: thrusday}}\n")
    result = fleet("broker", "serve", "--config", str(config), cwd=tmp_path, timeout=60)
    assert_user_error(result, f"{tmp_path / 'nse-rules.yaml'}: NIFTY: weekly.weekday: "
                      "Input should be 'monday'")
    assert not (tmp_path / "var" / "sandbox.db").exists(), "refused before the book opened"


def test_fleet_up_refuses_a_zero_lot_size_before_starting_anything(tmp_path: Path) -> None:
    config = config_with_rules(tmp_path, "NIFTY: {lot_size: 0}\n")
    result = fleet("up", "--config", str(config), "--for", "5", "--no-live", cwd=tmp_path,
                   timeout=60)
    assert_user_error(result, "nse-rules.yaml: NIFTY: lot_size: Input should be greater "
                      "than 0")
    assert not (tmp_path / "var" / "fleet.db").exists()
