"""How the CLI and the registries are put together: every command module hands its commands
to `cli/app.py` through `register(app)` and none imports the app back (no import circle,
no registration by import side effect); a fleet of built-in strategies starts without
looking at installed packages' entry points."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import fleetkit.cli

CLI = Path(fleetkit.cli.__file__).parent
NOT_COMMANDS = {"__init__.py", "app.py", "dates.py", "errors.py", "options.py", "render.py",
                "backtest_impl.py", "backtest_output.py", "backtest_store.py"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_cli_module_imports_the_app_it_is_assembled_into() -> None:
    importers = [p.name for p in sorted(CLI.glob("*.py"))
                 if p.name != "app.py" and "fleetkit.cli.app" in imported_modules(p)]
    assert importers == []


def test_every_command_module_registers_its_commands_explicitly() -> None:
    from fleetkit.cli import app

    modules = sorted(p.stem for p in CLI.glob("*.py") if p.name not in NOT_COMMANDS)
    assembled = sorted(register.__module__.rsplit(".", 1)[1] for register in app.COMMANDS)
    assert assembled == modules


def test_a_fleet_of_built_in_strategies_loads_without_reading_entry_points() -> None:
    probe = """
import importlib.metadata as metadata
asked = []
real = metadata.entry_points
def counting(**kwargs):
    asked.append(kwargs.get("group"))
    return real(**kwargs)
metadata.entry_points = counting
from fleetkit.config.loader import BUILTIN_DEMO, load_config
from fleetkit.strategy.base import build_strategy
loaded = load_config(BUILTIN_DEMO)
for bot in loaded.config.bots:
    build_strategy(bot.strategy, bot.params)
print(asked.count("fleetkit.strategies"))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "0"
