"""`plugins:` and `plugin_packages:` in fleet.yaml: a module beside the config registers its
strategies (with `@register` as it is imported, or `module:function` returning them), and one
that is missing or broken is a ConfigError of one line naming it, its file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetkit.config.loader import import_config_plugins, load_config
from fleetkit.core.errors import ConfigError
from fleetkit.registry import Origin
from fleetkit.strategy.base import STRATEGIES, unregister
from tests.plugin_kit import decorated_source, strategy_source, unique


@pytest.fixture
def names() -> Iterator[list[str]]:
    """Strategies a test registers, removed afterwards (the registry is process-wide)."""
    made: list[str] = []
    yield made
    for name in made:
        unregister(name)


def config(tmp_path: Path, plugins: str, strategy: str = "sma_cross", extra: str = "") -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(f"plugins: {plugins}\n{extra}bots:\n"
                    f"  - {{name: a, market: CRYPTO, symbols: [BTC/USDT], strategy: {strategy}}}\n",
                    encoding="utf-8")
    return path


def test_a_function_named_under_plugins_provides_the_strategies(tmp_path: Path,
                                                                names: list[str]) -> None:
    module, name = unique("mine"), unique("momentum")
    names.append(name)
    (tmp_path / f"{module}.py").write_text(strategy_source(name), encoding="utf-8")
    path = config(tmp_path, f"['{module}:strategies']", name)
    assert load_config(path).config.bots[0].strategy == name
    assert STRATEGIES.origin(name) == Origin("module", module)
    load_config(path)  # loading the same config again registers nothing twice


def test_a_module_registering_as_it_is_imported_still_works(tmp_path: Path,
                                                            names: list[str]) -> None:
    module, name = unique("legacy"), unique("hold")
    names.append(name)
    (tmp_path / f"{module}.py").write_text(decorated_source(name), encoding="utf-8")
    assert load_config(config(tmp_path, f"[{module}]", name)).config.bots[0].strategy == name
    assert STRATEGIES.origin(name).describe() == f"plugin module {module}"


@pytest.mark.parametrize(("source", "error", "line"), [
    ("def strategies(:\n    return []\n", "SyntaxError: invalid syntax", 1),
    ("import os\n\nraise RuntimeError('set ACME_KEY first')\n",
     "RuntimeError: set ACME_KEY first", 3),
    ("import definitely_not_installed_xyz\n",
     "ModuleNotFoundError: No module named 'definitely_not_installed_xyz'", 1),
])
def test_a_broken_plugin_is_one_line_naming_it_its_file_and_line(
        tmp_path: Path, source: str, error: str, line: int) -> None:
    module = unique("broken")
    (tmp_path / f"{module}.py").write_text(source, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config(tmp_path, f"['{module}:strategies']"))
    message = str(caught.value)
    assert message == (f"{tmp_path / 'fleet.yaml'}: plugins: '{module}:strategies' failed to "
                       f"load: {error} at {tmp_path / module}.py:{line} — fix it, or remove it "
                       "from plugins")


@pytest.mark.parametrize(("entry", "fragment"), [
    ("nowhere_to_be_found", "cannot import 'nowhere_to_be_found' (No module named "
                            "'nowhere_to_be_found'); install it or put it next to the config"),
    ("my-strategies", "'my-strategies' is not a module name"),
    ("os:no_such_function", "'os:no_such_function' failed to load: os ("),
])
def test_a_plugin_that_is_not_there_says_what_to_do(tmp_path: Path, entry: str,
                                                    fragment: str) -> None:
    with pytest.raises(ConfigError, match="plugins: ") as caught:
        load_config(config(tmp_path, f"['{entry}']"))
    assert fragment in str(caught.value)


def test_an_unknown_strategy_names_the_built_ins_and_the_plugins(tmp_path: Path,
                                                                 names: list[str]) -> None:
    module, name = unique("mine"), unique("momentum")
    names.append(name)
    (tmp_path / f"{module}.py").write_text(strategy_source(name), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config(tmp_path, f"['{module}:strategies']", "macd"))
    assert "unknown strategy 'macd'; built-in strategies: buy_and_hold" in str(caught.value)
    assert name in str(caught.value).split("from plugins: ")[1]


def test_fleet_strategies_loads_only_the_plugins_of_a_config(tmp_path: Path,
                                                             names: list[str]) -> None:
    module, name = unique("mine"), unique("momentum")
    names.append(name)
    (tmp_path / f"{module}.py").write_text(strategy_source(name), encoding="utf-8")
    # The rest of the config is wrong, which listing strategies does not care about.
    path = config(tmp_path, f"['{module}:strategies']", "macd", extra="risk: 7\n")
    assert import_config_plugins(path) == str(path)
    assert name in STRATEGIES.loaded()


@pytest.mark.parametrize("requirement", [
    "acme-strategies==1.2", "acme[ta]>=1,<2", "acme @ https://example.org/acme-1.0.tar.gz",
    "./vendor/acme-strategies", "../acme-1.0-py3-none-any.whl"])
def test_plugin_packages_are_requirements_or_paths(tmp_path: Path, requirement: str) -> None:
    path = config(tmp_path, "[]", extra=f"plugin_packages: ['{requirement}']\n")
    assert load_config(path).config.plugin_packages == [requirement]


@pytest.mark.parametrize("requirement", ["--index-url=https://evil.example", "", "acme\nRUN x"])
def test_plugin_packages_refuse_what_is_neither(tmp_path: Path, requirement: str) -> None:
    path = config(tmp_path, "[]", extra=f"plugin_packages: [{json.dumps(requirement)}]\n")
    with pytest.raises(ConfigError, match=r"plugin_packages\[0\]"):
        load_config(path)
