"""`fleet notify test|status|dead|retry` and `fleet status` against fake Bot APIs on loopback
and a real database: what each route answered, backlogs and dead letters, requeueing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetkit.cli.app import main
from fleetkit.core.alerts import Severity
from fleetkit.store.database import Database
from fleetkit.store.outbox import Outbox
from fleetkit.testing.fake_telegram import FakeTelegram
from tests.integration.notify.test_notifier_delivery import T0, Clock, notifier


def write_config(tmp_path: Path, telegram: FakeTelegram) -> Path:
    token_file = tmp_path / "trading.token"
    token_file.write_text(telegram.token + "\n", encoding="utf-8")
    config = tmp_path / "fleet.yaml"
    config.write_text(f"""
fleet: {{name: clitest}}
bots:
  - {{name: alpha, market: CRYPTO, symbols: ["BTC/USDT"], strategy: buy_and_hold}}
notify:
  routes:
    - {{name: trading, type: telegram, concerns: [trading], chat_id: "1001",
       token_file: trading.token, api_base_url: "{telegram.url}"}}
    - {{name: ops, type: telegram, concerns: [infrastructure], chat_id: "1002",
       token_env: OPS_TOKEN, api_base_url: "{telegram.url}"}}
""", encoding="utf-8")
    return config


@pytest.fixture(autouse=True)
def fleet_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLEET_DB_URL", raising=False)
    monkeypatch.delenv("FLEET_CONFIG", raising=False)


def test_notify_test_sends_through_every_route_and_names_the_one_that_failed(
        tmp_path: Path, telegram: FakeTelegram, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path, telegram)
    monkeypatch.delenv("OPS_TOKEN", raising=False)
    assert main(["notify", "test", "--config", str(config)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "✓ trading (telegram → 1001): delivered"
    assert out[1].startswith("✗ ops: route ops: the Telegram token comes from $OPS_TOKEN, "
                             "which is not set")
    [sent] = telegram.texts("1001")
    assert sent.startswith("✅ [clitest] test from `fleet notify test`")
    assert "route trading (trading) works" in sent

    monkeypatch.setenv("OPS_TOKEN", telegram.token)
    assert main(["notify", "test", "--config", str(config), "--concern", "infrastructure"]) == 0
    assert capsys.readouterr().out.strip() == "✓ ops (telegram → 1002): delivered"
    assert telegram.token not in "".join(telegram.texts())


def test_notify_test_refuses_what_it_cannot_do_with_exit_2(
        tmp_path: Path, telegram: FakeTelegram, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, telegram)
    assert main(["notify", "test", "--config", str(config), "--concern", "gossip"]) == 2
    assert "unknown concern 'gossip'" in capsys.readouterr().err
    assert main(["notify", "test", "--config", str(config), "--route", "nope"]) == 2
    assert "routes: trading, ops" in capsys.readouterr().err
    telegram.fail_next(1, "blocked")
    assert main(["notify", "test", "--config", str(config), "--route", "trading"]) == 1
    assert "rejected: sendMessage: HTTP 403: Forbidden: bot was blocked by the user" in \
        capsys.readouterr().out


def test_status_dead_and_retry_show_and_requeue_dead_letters(
        fleet_db: Database, tmp_path: Path, telegram: FakeTelegram,
        capsys: pytest.CaptureFixture[str]) -> None:
    with FakeTelegram("987654321:AAOps-token_for-tests-only-000000000") as ops:
        Outbox(fleet_db.engine).enqueue(kind="control.halted", concern="trading",
                                        severity=Severity.CRITICAL, text="operator halt",
                                        now=T0)
        telegram.fail_next(1, "blocked")
        notifier(fleet_db, telegram, ops, Clock()).run_once()
    config = write_config(tmp_path, telegram)
    db = ["--config", str(config), "--db", fleet_db.where]

    assert main(["notify", "status", "--json", *db]) == 0
    status: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert status["routes"]["trading"]["dead"] == 1
    assert "bot was blocked" in status["routes"]["trading"]["last_error"]
    [dead] = status["dead_letters"]
    assert (dead["kind"], dead["route"], dead["text"]) == ("control.halted", "trading",
                                                           "operator halt")

    assert main(["notify", "dead", *db]) == 0
    assert f"#{dead['id']} " in capsys.readouterr().out

    assert main(["status", "--json", *db]) == 0
    assert json.loads(capsys.readouterr().out)["notifications"]["trading"]["dead"] == 1

    assert main(["notify", "retry", "--route", "trading", *db]) == 0
    assert capsys.readouterr().out.strip() == "1 dead letter(s) queued again"
    assert main(["notify", "retry", *db]) == 0
    assert capsys.readouterr().out.strip() == "no dead letters matched"
