"""Law 4: paper and live are the same code. Only the adapter selection (runtime/connections.py),
the config's validation, and deployment/operator tooling that must know what an adapter
needs may look at a bot's mode; nothing that trades may branch on it."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "fleetkit"
MODES = {"sandbox", "paper", "live", "testnet"}
ALLOWED = {
    Path("runtime/connections.py"): "picks the adapter",
    Path("config/models.py"): "validates each mode's settings",
    Path("deploy/spec.py"): "which environment a deployed bot's adapter needs",
    Path("cli/exchange_cmds.py"): "tells the operator whether an exchange is a testnet",
    # Not a bot's mode: a quote stream's tick mode (ltp / quote / full, as Kite's ticker).
    Path("testing/quote_stream_kit.py"): "checks a tick's fields against its ticker mode",
}


def _mode_branches(tree: ast.AST) -> list[int]:
    """Lines that compare something with a mode name, or compare/test a `.mode`/`.testnet`."""
    found: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            named = any(isinstance(o, ast.Constant) and o.value in MODES for o in operands)
            modal = any(isinstance(o, ast.Attribute) and o.attr in ("mode", "testnet",
                                                                      "is_live", "paper")
                        for o in operands)
            if named or modal:
                found.append(node.lineno)
        elif isinstance(node, ast.If | ast.IfExp | ast.While):
            test = node.test
            if isinstance(test, ast.Attribute) and test.attr in ("testnet", "is_live", "paper"):
                found.append(node.lineno)
        elif isinstance(node, ast.Match):
            subject = node.subject
            if isinstance(subject, ast.Attribute) and subject.attr == "mode":
                found.append(node.lineno)
    return found


def test_no_module_outside_the_adapter_selection_branches_on_the_mode() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC)
        if relative in ALLOWED or relative.parts[0] == "brokers":
            continue
        lines = _mode_branches(ast.parse(path.read_text(encoding="utf-8")))
        offenders += [f"{relative}:{line}" for line in lines]
    assert offenders == [], "mode branches outside runtime/connections.py: " + ", ".join(offenders)


def test_the_check_itself_catches_a_branch() -> None:
    sample = ast.parse("if bot.mode == 'live':\n    pass\nx = 1 if cfg.testnet else 2\n"
                       "if settings.mode != 'paper': pass\n")
    assert _mode_branches(sample) == [1, 3, 4]


def test_the_engine_never_imports_an_adapter() -> None:
    for layer in ("engine", "risk", "strategy", "core"):
        for path in (SRC / layer).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "fleetkit.brokers" not in text and "ccxt" not in text, path
