"""Deployments carry the fleet's own code: plugin modules beside the config are copied into the
generated project and put on every fleet process's PYTHONPATH; plugin packages are installed
into the image (a Dockerfile on top of fleetkit's) or into the units' virtualenv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetkit.config.loader import LoadedConfig, load_config
from fleetkit.core.errors import ConfigError
from fleetkit.deploy.compose import compose_bundle
from fleetkit.deploy.files import write_bundle
from fleetkit.deploy.systemd import SystemdOptions, systemd_bundle
from fleetkit.strategy.base import unregister
from tests.plugin_kit import package_source, strategy_source, unique

SCHEMA = Path(__file__).resolve().parents[2] / "data" / "compose-spec" / "compose-spec.json"


class Fleet:
    """A config beside its own strategy module and a helper package of the user's, plus
    plugin packages: one from an index, one a source tree beside the config."""

    def __init__(self, root: Path) -> None:
        self.module, self.package = unique("my_strategies"), unique("my_helpers")
        self.strategy = unique("momentum")
        (root / f"{self.module}.py").write_text(strategy_source(self.strategy), "utf-8")
        (root / self.package / "__pycache__").mkdir(parents=True)
        (root / self.package / "__init__.py").write_text("", "utf-8")
        (root / self.package / "indicators.py").write_text("FAST = 3\n", "utf-8")
        (root / self.package / "__pycache__" / "junk.pyc").write_bytes(b"\0junk")
        package_source(root / "vendor" / "acme-local", "acme-local", unique("acme"),
                       strategy_source(unique("unused")))
        self.path = root / "fleet.yaml"
        self.path.write_text(f"""
fleet: {{name: My Fleet}}
plugins: ["{self.module}:strategies", {self.package}]
plugin_packages: ["acme-strategies==1.2; python_version >= '3.11'", ./vendor/acme-local]
bots:
  - {{name: mom, market: CRYPTO, symbols: [BTC/USDT], strategy: {self.strategy}}}
  - {{name: sma, market: CRYPTO, symbols: [ETH/USDT], strategy: sma_cross}}
""", "utf-8")
        self.loaded = load_config(self.path)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    root = tmp_path / "mine"
    root.mkdir()
    made = Fleet(root)
    yield made
    unregister(made.strategy)


def compose_files(loaded: LoadedConfig) -> dict[str, str | bytes]:
    return {f.path: f.content for f in compose_bundle(loaded).files}


def systemd_files(loaded: LoadedConfig, **options: Any) -> dict[str, str | bytes]:
    return {f.path: f.content for f in systemd_bundle(loaded, SystemdOptions(**options)).files}


def text(files: dict[str, str | bytes], path: str) -> str:
    content = files[path]
    assert isinstance(content, str)
    return content


def test_compose_copies_the_plugin_modules_beside_the_config_and_puts_them_on_the_path(
        fleet: Fleet) -> None:
    files = compose_files(fleet.loaded)
    assert files[f"config/plugins/{fleet.module}.py"] == (
        fleet.path.parent / f"{fleet.module}.py").read_bytes()
    assert files[f"config/plugins/{fleet.package}/indicators.py"] == b"FAST = 3\n"
    assert not [p for p in files if "__pycache__" in p]
    document = yaml.safe_load(text(files, "docker-compose.yml"))  # merges x-fleet-service
    fleet_services = {n: s for n, s in document["services"].items() if n != "postgres"}
    assert {n: s["environment"]["PYTHONPATH"] for n, s in fleet_services.items()} == {
        n: "/etc/fleet/plugins" for n in fleet_services}
    assert "./config:/etc/fleet:ro" in document["x-fleet-service"]["volumes"]


def test_compose_builds_the_fleets_image_with_its_plugin_packages(fleet: Fleet) -> None:
    files = compose_files(fleet.loaded)
    shared = yaml.safe_load(text(files, "docker-compose.yml"))["x-fleet-service"]
    assert shared["build"] == "image"  # never the project directory: it holds secrets/
    assert shared["image"] == "fleetkit-my-fleet:latest"
    assert text(files, "image/Dockerfile").splitlines()[2:] == [
        "FROM fleetkit:latest",
        "USER root",
        "COPY packages/ /opt/fleet/packages/",
        "# acme-strategies==1.2; python_version >= '3.11': plugin_packages",
        "# /opt/fleet/packages/acme-local: plugin_packages: ./vendor/acme-local",
        "RUN pip install --no-cache-dir \\",
        "    'acme-strategies==1.2; python_version >= '\"'\"'3.11'\"'\"'' \\",
        "    /opt/fleet/packages/acme-local",
        "USER fleet",
    ]
    assert "image/packages/acme-local/pyproject.toml" in files
    assert "docker compose build" in text(files, "docker-compose.yml")


def test_the_compose_file_with_plugins_is_valid_against_the_compose_specification(
        fleet: Fleet) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text("utf-8")))
    document = yaml.safe_load(text(compose_files(fleet.loaded), "docker-compose.yml"))
    assert [e.message for e in validator.iter_errors(document)] == []


def test_a_fleet_without_plugins_deploys_as_before(plain_demo: LoadedConfig) -> None:
    files = compose_files(plain_demo)
    assert not [p for p in files if p.startswith(("image/", "config/plugins"))]
    compose = text(files, "docker-compose.yml")
    assert "PYTHONPATH" not in compose and "build:" not in compose
    units = systemd_files(plain_demo)
    assert not [p for p in units if p.startswith(("plugins/", "packages/", "install-plugins"))]
    assert not [p for p, c in units.items() if isinstance(c, str) and "PYTHONPATH" in c]


def test_systemd_puts_the_plugin_modules_on_every_units_path(fleet: Fleet) -> None:
    files = systemd_files(fleet.loaded)
    assert files[f"plugins/{fleet.module}.py"] == (
        fleet.path.parent / f"{fleet.module}.py").read_bytes()
    assert f"plugins/{fleet.package}/__init__.py" in files
    units = {p: c for p, c in files.items() if p.endswith(".service")}
    for path, unit in units.items():
        assert isinstance(unit, str)
        environment = [line for line in unit.splitlines() if line.startswith("Environment=FLEET")]
        assert environment and environment[0].endswith(" PYTHONPATH=/etc/fleet/plugins"), path
    install = text(files, "install.sh")
    assert ("run rm -rf /etc/fleet/plugins\nrun cp -R plugins /etc/fleet/plugins\n"
            "run chmod -R u=rwX,go=rX /etc/fleet/plugins\n") in install
    assert "run sh install-plugins.sh" in install


def test_systemd_installs_the_plugin_packages_into_fleetkits_virtualenv(fleet: Fleet) -> None:
    files = systemd_files(fleet.loaded, fleet_bin="/srv/venv/bin/fleet")
    script = text(files, "install-plugins.sh")
    assert script.splitlines()[-1] == (
        "/srv/venv/bin/python -m pip install 'acme-strategies==1.2; python_version >= "
        "'\"'\"'3.11'\"'\"'' \"$packages\"/acme-local")
    assert 'cp -R packages/. "$packages"' in script  # built from a copy: no build/ left here
    assert "packages/acme-local/wheel_backend.py" in files


def test_the_install_script_only_prints_the_plugin_steps_on_a_dry_run(
        fleet: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_bundle(out, systemd_bundle(fleet.loaded, SystemdOptions()))
    fake = tmp_path / "bin"  # stand-ins for what changes the system: none may be called
    fake.mkdir()
    for name in ("install", "systemctl", "useradd", "cp", "rm", "chmod", "sh"):
        (fake / name).write_text(f"#!/bin/sh\necho {name} >> {tmp_path}/called\n", "utf-8")
        (fake / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "DRY_RUN": "1"}
    result = subprocess.run(["/bin/sh", str(out / "install.sh")], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "+ cp -R plugins /etc/fleet/plugins\n" in result.stdout
    assert "+ sh install-plugins.sh\n" in result.stdout
    assert not (tmp_path / "called").exists()
    for script in ("install.sh", "install-plugins.sh"):
        assert subprocess.run(["/bin/sh", "-n", str(out / script)], check=False).returncode == 0


def test_the_units_with_a_python_path_pass_systemd_analyze(fleet: Fleet, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    fleet_bin = shutil.which("fleet") or "/usr/bin/env"
    write_bundle(tmp_path / "out", systemd_bundle(fleet.loaded,
                                                  SystemdOptions(fleet_bin=fleet_bin)))
    units = tmp_path / "out" / "units"
    paths = [str(p) for p in sorted(units.iterdir())] + [str(units / "fleet-bot@mom.service")]
    result = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_regenerating_is_byte_identical_and_drops_a_plugin_no_longer_named(
        fleet: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_bundle(out, compose_bundle(fleet.loaded))
    first = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    report = write_bundle(out, compose_bundle(load_config(fleet.path)))
    assert report.removed == ()
    assert {p.relative_to(out).as_posix(): p.read_bytes()
            for p in out.rglob("*") if p.is_file()} == first
    fleet.path.write_text(fleet.path.read_text("utf-8").replace(f", {fleet.package}]", "]"),
                          "utf-8")
    report = write_bundle(out, compose_bundle(load_config(fleet.path)))
    assert f"config/plugins/{fleet.package}/indicators.py" in report.removed


def test_a_plugin_module_from_neither_the_config_nor_a_package_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere, module = tmp_path / "elsewhere", unique("stray")
    elsewhere.mkdir()
    (elsewhere / f"{module}.py").write_text("", "utf-8")
    monkeypatch.syspath_prepend(str(elsewhere))
    path = tmp_path / "fleet.yaml"
    path.write_text(f"plugins: [{module}]\nbots:\n  - {{name: a, market: CRYPTO, "
                    "symbols: [BTC/USDT], strategy: sma_cross}\n", "utf-8")
    loaded = load_config(path)  # importable here, so the fleet runs here ...
    with pytest.raises(ConfigError, match=f"plugins: '{module}' is imported from .*"
                                          "move it next to the config file"):
        compose_bundle(loaded)  # ... but no deployment could carry it


def test_a_plugin_package_path_that_is_not_there_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("plugin_packages: [./vendor/gone]\nbots:\n  - {name: a, market: CRYPTO, "
                    "symbols: [BTC/USDT], strategy: sma_cross}\n", "utf-8")
    with pytest.raises(ConfigError, match=r"plugin_packages: './vendor/gone' not found"):
        systemd_bundle(load_config(path), SystemdOptions())
