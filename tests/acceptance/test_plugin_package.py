"""A strategy package, as a user would publish one: built here from its pyproject.toml (with the
`fleetkit.strategies` entry point) and pip-installed offline. `pip install` is all it takes —
no `plugins:` line — and `fleet deploy` carries it: the generated Dockerfile and systemd
install script install it, and the fleet's processes find it there."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.cli_support import fleet
from tests.acceptance.deploy_support import Unit, compose_service
from tests.plugin_kit import package_source, pip_install, strategy_source

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
CONFIG = """
bots:
  - {name: acme-btc, market: CRYPTO, symbols: [BTC/USDT], strategy: acme_long}
"""


@pytest.fixture
def installed(tmp_path: Path) -> dict[str, str]:
    """acme-strategies 1.0 pip-installed into a directory on PYTHONPATH: the environment."""
    source = package_source(tmp_path / "src" / "acme-strategies", "acme-strategies",
                            "acme_strategies", strategy_source("acme_long", "ACME: always long"))
    pip_install(tmp_path / "site", str(source))
    (tmp_path / "fleet.yaml").write_text(CONFIG, encoding="utf-8")
    return {"PYTHONPATH": str(tmp_path / "site")}


def run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=120, check=False)


def test_an_installed_package_is_listed_and_backtested_without_a_plugins_line(
        tmp_path: Path, installed: dict[str, str]) -> None:
    listed = fleet("strategies", cwd=tmp_path, env=installed)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^acme_long +ACME: always long \(package acme-strategies 1\.0\)$",
                     listed.stdout, re.M), listed.stdout
    alone = fleet("backtest", "--strategy", "acme_long", "--bars", "200", "--json",
                  "--no-progress", cwd=tmp_path, env=installed)
    assert alone.returncode == 0, alone.stderr
    assert json.loads(alone.stdout)["strategy"] == "acme_long"
    bot = fleet("backtest", "--config", "fleet.yaml", "--bot", "acme-btc", "--bars", "200",
                "--json", "--no-progress", cwd=tmp_path, env=installed)
    assert bot.returncode == 0, bot.stderr
    assert json.loads(bot.stdout)["fills"] >= 1
    missing = fleet("backtest", "--config", "fleet.yaml", "--bot", "acme-btc", cwd=tmp_path)
    assert missing.returncode == 2 and "unknown strategy 'acme_long'" in missing.stderr


def test_deployments_install_the_package_and_their_processes_find_it(
        tmp_path: Path, installed: dict[str, str]) -> None:
    units, project = tmp_path / "units", tmp_path / "project"
    for out, kind, options in ((units, "systemd", ["--fleet-bin", str(BIN / "fleet"),
                                                   "--home", str(tmp_path / "home")]),
                               (project, "compose", [])):
        made = fleet("deploy", kind, "--out", str(out), "--config", "fleet.yaml", *options,
                     cwd=tmp_path, env=installed)
        assert made.returncode == 0, made.stderr
    shutil.rmtree(tmp_path / "src")  # the package's source and installation are gone:
    shutil.rmtree(tmp_path / "site")  # only the generated files have it now
    (tmp_path / "home").mkdir()
    replay = ["backtest", "--bot", "acme-btc", "--bars", "100", "--json", "--no-progress"]

    # systemd: install.sh runs install-plugins.sh, which installs into fleetkit's virtualenv
    # (pip's --target here: a stand-in for it); the bot's unit then finds the strategy.
    assert "run sh install-plugins.sh" in (units / "install.sh").read_text(encoding="utf-8")
    venv = tmp_path / "venv-site"
    pip_env = {"PIP_TARGET": str(venv), "PIP_NO_INDEX": "1", "PIP_NO_DEPS": "1"}
    script = run(["sh", str(units / "install-plugins.sh")], pip_env, tmp_path)
    assert script.returncode == 0, script.stdout + script.stderr
    assert sorted(p.name for p in (units / "packages").iterdir()) == ["acme-strategies"]
    assert not (units / "packages" / "acme-strategies" / "build").exists()
    bot = Unit(units, "fleet-bot@.service", "acme-btc")
    ran = run([bot.argv[0], *replay], {**bot.environment(), "PYTHONPATH": str(venv)},
              Path(bot.cwd))
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["strategy"] == "acme_long"

    # Compose: the generated Dockerfile's COPY and RUN pip install (the image's
    # /opt/fleet/packages being the project's image/packages), then the bot's service.
    dockerfile = (project / "image" / "Dockerfile").read_text(encoding="utf-8")
    assert "COPY packages/ /opt/fleet/packages/" in dockerfile
    run_line = dockerfile.split("RUN ", 1)[1].split("\nUSER", 1)[0].replace("\\\n", " ")
    argv = shlex.split(run_line.replace("/opt/fleet/packages", str(project / "image" /
                                                                   "packages")))
    assert argv[:3] == ["pip", "install", "--no-cache-dir"]
    image = tmp_path / "image-site"
    pip_install(image, *argv[3:], cwd=tmp_path)
    command, env = compose_service(project, "bot-acme-btc", tmp_path / "home")
    assert command == ["bot", "run", "acme-btc"]
    ran = run([str(BIN / "fleet"), *replay], {**env, "PYTHONPATH": str(image)}, tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["strategy"] == "acme_long"
