"""`fleet broker faults`: showing and changing a running sandbox's faults from the command line."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fleetkit.brokers.sandbox.client import SandboxClient
from fleetkit.brokers.sandbox.faults import FaultConfig
from fleetkit.brokers.sandbox.service import SandboxService
from fleetkit.brokers.sandbox.testing import (
    NEW_YORK_MIDDAY,
    ManualClock,
    ScriptedPrices,
    build_venue,
)
from fleetkit.core.errors import OrderRejectedError
from fleetkit.core.orders import OrderType, Side
from fleetkit.engine.ports import OrderRequest
from tests.acceptance.cli_support import fleet


def write_config(workdir: Path, url: str) -> Path:
    path = workdir / "fleet.yaml"
    path.write_text(f'sandbox: {{url: "{url}"}}\n', encoding="utf-8")
    return path


@pytest.fixture
def service() -> Iterator[SandboxService]:
    venue = build_venue(ScriptedPrices(), ManualClock(NEW_YORK_MIDDAY))
    with SandboxService(venue, faults=FaultConfig(seed=3, reject_probability=1.0)) as running:
        yield running


@pytest.fixture
def config(tmp_path: Path, service: SandboxService) -> Path:
    return write_config(tmp_path, service.url)


def faults_json(config: Path, *args: str) -> dict[str, Any]:
    result = fleet("broker", "faults", "--config", str(config), "--json", *args,
                   cwd=config.parent)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_faults_shows_the_running_settings_and_counters(service: SandboxService,
                                                        config: Path) -> None:
    order = OrderRequest("a", "NYSE:AAA", Side.BUY, OrderType.MARKET, Decimal(1))
    with SandboxClient(service.url, "bot-a") as client:
        for _ in range(2):  # the second time is a resend, answered with the same rejection
            with pytest.raises(OrderRejectedError, match="injected reject"):
                client.submit(order)

    shown = faults_json(config)

    assert shown["url"] == service.url
    assert shown["faults"]["reject_probability"] == 1.0 and shown["faults"]["seed"] == 3
    assert shown["injected"]["reject"] == 2
    assert shown["accounts"] == {"bot-a": {"submissions": 2, "duplicates": 1, "rejected": 1}}
    assert (shown["submissions"], shown["duplicates"]) == (2, 1)


def test_faults_are_changed_live_and_cleared(service: SandboxService, config: Path) -> None:
    changed = faults_json(config, "--set", "drop_ack_probability=0.25",
                          "--set", "garbage_kinds=nan_price,missing_field")

    assert changed["faults"]["drop_ack_probability"] == 0.25
    assert changed["faults"]["reject_probability"] == 1.0  # untouched
    assert changed["faults"]["garbage_kinds"] == ["nan_price", "missing_field"]
    with SandboxClient(service.url, "x") as client:
        assert client.faults().drop_ack_probability == 0.25

    cleared = faults_json(config, "--clear", "--set", "refuse_probability=0.5")

    assert cleared["faults"] == {**FaultConfig().to_dict(), "refuse_probability": 0.5}


def test_faults_are_described_in_words_without_json(config: Path) -> None:
    result = fleet("broker", "faults", "--config", str(config), cwd=config.parent)

    assert result.returncode == 0, result.stderr
    assert "faults (seed 3): reject_probability=1" in result.stdout
    assert "submissions: 0 from 0 accounts" in result.stdout


@pytest.mark.parametrize(("args", "fragment"), [
    (("--set", "nope=1"), "unknown fault setting 'nope'"),
    (("--set", "reject_probability=2"), "between 0 and 1"),
    (("--set", "reject_probability"), "expected NAME=VALUE"),
])
def test_a_bad_setting_is_one_line_and_changes_nothing(service: SandboxService, config: Path,
                                                       args: tuple[str, ...],
                                                       fragment: str) -> None:
    result = fleet("broker", "faults", "--config", str(config), *args, cwd=config.parent)

    assert result.returncode == 2
    assert fragment in result.stderr and "Traceback" not in result.stderr
    with SandboxClient(service.url, "x") as client:
        assert client.faults() == FaultConfig(seed=3, reject_probability=1.0)


def test_no_running_broker_says_how_to_start_one(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write_config(tmp_path, f"http://127.0.0.1:{port}")

    result = fleet("broker", "faults", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 2
    assert "no sandbox broker answers" in result.stderr and "fleet up" in result.stderr
