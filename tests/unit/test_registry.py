"""The registry: built-ins first, installed packages (entry points) only when a name is missing
or everything is listed, each entry with its origin; a broken package is skipped, named with
its file and line, and never stops the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleetkit.registry import (
    BUILTIN,
    Origin,
    PluginLoadError,
    Registry,
    UnknownName,
    import_provider,
)
from fleetkit.strategy.base import STRATEGIES, StrategySpec
from tests.plugin_kit import installed_dist, strategy_source, unique


def builtin_spec(name: str) -> StrategySpec:
    return StrategySpec(name, "a built-in", STRATEGIES.get("buy_and_hold").params_model,
                        lambda params: None)


@pytest.fixture
def group() -> str:
    return unique("fleetkit.tests")


@pytest.fixture
def registry(group: str) -> Registry[StrategySpec]:
    return Registry("strategy", "strategies", group, StrategySpec, lambda s: s.name,
                    lambda: [builtin_spec("steady")])


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path for "installed" distributions."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


def test_a_built_in_is_found_without_reading_installed_packages(
        registry: Registry[StrategySpec], monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[Any] = []
    monkeypatch.setattr("fleetkit.registry.metadata.entry_points",
                        lambda **kwargs: scans.append(kwargs) or [])
    assert registry.get("steady").summary == "a built-in"
    assert registry.origin("steady") == BUILTIN
    assert scans == []
    for _ in range(3):
        with pytest.raises(UnknownName):
            registry.get("elsewhere")
    assert len(scans) == 1  # looked at once, on the first miss


def test_an_installed_package_provides_its_strategies_with_its_name_and_version(
        registry: Registry[StrategySpec], site: Path, group: str) -> None:
    name, module = unique("momentum"), unique("acme")
    installed_dist(site, "acme-strategies", module, strategy_source(name), version="2.1",
                   group=group)
    assert registry.get(name).summary == "always long"
    assert registry.origin(name) == Origin("package", "acme-strategies", "2.1", module)
    assert registry.origin(name).describe() == "package acme-strategies 2.1"
    assert set(registry.entries()) == {"steady", name}
    assert registry.problems() == ()


def test_a_broken_package_is_skipped_naming_its_file_and_line_and_the_others_load(
        registry: Registry[StrategySpec], site: Path, group: str) -> None:
    good, syntax, raising = unique("good"), unique("syntax"), unique("raising")
    installed_dist(site, "good-strategies", good, strategy_source(good), group=group)
    installed_dist(site, "syntax-strategies", syntax, "def strategies(:\n", group=group)
    installed_dist(site, "raising-strategies", raising,
                   "import os\n\n\ndef helper():\n    raise RuntimeError('no keys here')\n\n\n"
                   "helper()\n", group=group)
    assert set(registry.entries()) == {"steady", good}
    problems = {p.plugin: p.error for p in registry.problems()}
    assert problems == {
        f"package raising-strategies 1.0 (entry point {raising})":
            f"RuntimeError: no keys here at {site / raising}.py:5",
        f"package syntax-strategies 1.0 (entry point {syntax})":
            f"SyntaxError: invalid syntax at {site / syntax}.py:1",
    }


def test_a_name_nobody_provides_lists_the_known_ones_and_the_packages_that_failed(
        registry: Registry[StrategySpec], site: Path, group: str) -> None:
    good, broken = unique("good"), unique("broken")
    installed_dist(site, "good-strategies", good, strategy_source(good), group=group)
    installed_dist(site, "broken-strategies", broken, "raise ImportError('needs numpyy')\n",
                   group=group)
    with pytest.raises(UnknownName) as caught:
        registry.get("macd")
    message = str(caught.value)
    assert message.startswith(f"unknown strategy 'macd'; built-in strategies: steady; "
                              f"from plugins: {good}; package broken-strategies 1.0 (entry "
                              f"point {broken}) failed to load: ImportError: needs numpyy at ")
    assert isinstance(caught.value, KeyError)  # what config validation catches
    assert len(caught.value.problems) == 1


def test_a_package_clashing_with_a_built_in_adds_nothing_at_all(
        registry: Registry[StrategySpec], site: Path, group: str) -> None:
    mine = unique("mine")
    source = strategy_source(mine) + (
        "\n\ndef more():\n    return [*strategies(), StrategySpec('steady', 'mine', "
        "AlwaysLongParams, AlwaysLong)]\n")
    module = unique("clash")
    installed_dist(site, "clash-strategies", module, source, value=f"{module}:more",
                   group=group)
    assert set(registry.entries()) == {"steady"}  # not `mine` either: all or nothing
    (problem,) = registry.problems()
    assert problem.error == "ValueError: strategy 'steady' registered twice (built-in has it)"
    assert registry.get("steady").summary == "a built-in"


@pytest.mark.parametrize(("provides", "error"), [
    ("[1]", "TypeError: a strategy must be a StrategySpec, got int"),
    ("'momentum'", "TypeError: expected the strategies it provides (a list), got str"),
])
def test_a_package_providing_something_else_is_a_problem(
        registry: Registry[StrategySpec], site: Path, group: str, provides: str,
        error: str) -> None:
    module = unique("junk")
    installed_dist(site, "junk-strategies", module, f"def strategies():\n    return {provides}\n",
                   group=group)
    assert set(registry.entries()) == {"steady"}
    assert [p.error for p in registry.problems()] == [error]


def test_what_a_module_provides_is_added_once_and_all_or_nothing(
        registry: Registry[StrategySpec]) -> None:
    origin = Origin("module", "my_strategies")
    first, second = builtin_spec(unique("first")), builtin_spec(unique("second"))
    registry.add_provided(lambda: [first, second], origin, "my_strategies:strategies")
    registry.add_provided(lambda: [first, second], origin, "my_strategies:strategies")  # again
    assert registry.origin(first.name) == origin
    with pytest.raises(PluginLoadError, match="'steady' registered twice"):
        registry.add_provided(lambda: [builtin_spec("third"), builtin_spec("steady")], origin,
                              "other:strategies")
    assert "third" not in registry.loaded()


def test_importing_a_provider_says_missing_or_broken_apart(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    broken, helper = unique("broken"), unique("helper")
    (tmp_path / f"{helper}.py").write_text("import definitely_not_installed_xyz\n",
                                           encoding="utf-8")
    (tmp_path / f"{broken}.py").write_text(f"import {helper}\n", encoding="utf-8")
    with pytest.raises(PluginLoadError) as missing:
        import_provider(unique("nowhere"))
    assert missing.value.missing
    with pytest.raises(PluginLoadError) as caught:
        import_provider(f"{broken}:strategies")
    assert not caught.value.missing  # the plugin exists; something it imports does not
    # The plugin's own line, not the helper's: that is the file the user named.
    assert str(caught.value) == ("ModuleNotFoundError: No module named "
                                 f"'definitely_not_installed_xyz' at {tmp_path / broken}.py:1")
