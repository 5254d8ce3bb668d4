"""`database.market_data`: market data in a database of its own, its secrets kept out of the
YAML like the fleet database's, and where `market_data_url` finds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.core.errors import ConfigError
from fleetkit.runtime.wiring import MARKET_DATA_DB_URL_ENV, market_data_url

FLEET = "postgresql://fleet@db:5432/fleet"


def loaded(text: str, tmp_path: Path) -> LoadedConfig:
    return LoadedConfig(parse_config(text, "fleet.yaml"), "fleet.yaml", tmp_path)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MARKET_DATA_DB_URL_ENV, raising=False)


def test_a_password_in_the_yaml_market_data_url_is_refused_with_the_alternatives() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("database:\n  market_data: {url: 'postgresql://md:s3cret@h/market'}\n",
                     "fleet.yaml")
    message = str(caught.value)
    assert "database.market_data.url" in message
    assert "FLEET_MARKET_DATA_DB_URL" in message
    assert "database.market_data.password_file" in message
    assert "s3cret" not in message


def test_unknown_keys_under_market_data_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config("database:\n  market_data: {database_url: 'sqlite:///m.db'}\n",
                     "fleet.yaml")


def test_without_the_setting_market_data_lives_in_the_fleet_database(tmp_path: Path) -> None:
    assert market_data_url(loaded("{}", tmp_path), FLEET) == FLEET


def test_the_config_url_takes_its_password_from_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "md.password"
    secret.write_text("s3cret\n", encoding="utf-8")
    config = loaded(f"database:\n  market_data: {{url: 'postgresql://md@h:5432/market', "
                    f"password_file: '{secret}'}}\n", tmp_path)
    assert market_data_url(config, FLEET) == "postgresql://md:s3cret@h:5432/market"


def test_a_missing_password_file_names_the_setting(tmp_path: Path) -> None:
    config = loaded("database:\n  market_data: {url: 'postgresql://md@h/market', "
                    f"password_file: '{tmp_path / 'absent'}'}}\n", tmp_path)
    with pytest.raises(ConfigError, match=r"database\.market_data\.password_file"):
        market_data_url(config, FLEET)


def test_the_option_beats_the_environment_which_beats_the_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = loaded("database:\n  market_data: {url: 'sqlite:///from-config.db'}\n", tmp_path)
    assert market_data_url(config, FLEET) == "sqlite:///from-config.db"
    monkeypatch.setenv(MARKET_DATA_DB_URL_ENV, "sqlite:///from-env.db")
    assert market_data_url(config, FLEET) == "sqlite:///from-env.db"
    assert market_data_url(config, FLEET, "sqlite:///option.db") == "sqlite:///option.db"
