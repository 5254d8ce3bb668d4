"""Deployments of learning bots (strategy rl_policy): the ml extra goes into the fleet's image
(Compose) or the units' virtualenv (systemd), with torch's CPU build by default; their models
live under the fleet home; a config without learning bots deploys exactly as before."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetkit.config.loader import BUILTIN_DEMO, LoadedConfig, load_config, parse_config
from fleetkit.core.errors import ConfigError
from fleetkit.deploy.compose import compose_bundle
from fleetkit.deploy.files import write_bundle
from fleetkit.deploy.learning import TORCH_CPU_INDEX, TORCH_CPU_PINS
from fleetkit.deploy.systemd import SystemdOptions, systemd_bundle

ROOT = Path(__file__).resolve().parents[3]
LEARNING = ("rl-nifty", "rl-btc")  # the demo's learning bots


@pytest.fixture
def demo() -> LoadedConfig:
    return load_config(BUILTIN_DEMO)


def compose_files(loaded: LoadedConfig, **kwargs: Any) -> dict[str, str]:
    files = {f.path: f.content for f in compose_bundle(loaded, **kwargs).files}
    return {p: c for p, c in files.items() if isinstance(c, str)}


def systemd_files(loaded: LoadedConfig, **kwargs: Any) -> dict[str, str]:
    files = {f.path: f.content for f in systemd_bundle(loaded, SystemdOptions(**kwargs)).files}
    return {p: c for p, c in files.items() if isinstance(c, str)}


def pins(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def run_instruction(dockerfile: str, fragment: str) -> str:
    """The shell of the RUN instruction holding `fragment`, continuation lines joined."""
    joined = dockerfile.replace("\\\n", " ")
    return next(line.removeprefix("RUN ") for line in joined.splitlines()
                if line.startswith("RUN ") and fragment in line)


def fake_pip(tmp_path: Path) -> Path:
    """A `pip` that prints its arguments, one a line, and installs nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "pip").write_text('#!/bin/sh\nfor a in "$@"; do echo "[$a]"; done\n', "utf-8")
    (bin_dir / "pip").chmod(0o755)
    if not (bin_dir / "python").exists():
        (bin_dir / "python").symlink_to(sys.executable)
    return bin_dir


def pip_args(shell: str, tmp_path: Path, cwd: Path, **env: str) -> list[str]:
    bin_dir = fake_pip(tmp_path)
    result = subprocess.run(["sh", "-c", shell], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **env},
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [line[1:-1] for line in result.stdout.splitlines()]


# --- Compose --------------------------------------------------------------------------------


def test_the_demos_compose_project_builds_its_image_with_the_ml_extra(
        demo: LoadedConfig) -> None:
    files = compose_files(demo)
    compose = yaml.safe_load(files["docker-compose.yml"])
    shared = compose["x-fleet-service"]
    assert shared["image"] == "fleetkit-demo:latest"
    # The build arg picks torch's build; the operator's .env may ask for CUDA's.
    assert shared["build"] == {"context": "image", "args": {"TORCH": "${FLEET_TORCH:-cpu}"}}
    dockerfile = files["image/Dockerfile"]
    assert dockerfile.startswith("# The fleet's image: fleetkit:latest plus the ml extra")
    lines = dockerfile.splitlines()
    assert lines.index("FROM fleetkit:latest") < lines.index("USER root") \
        < lines.index("ARG TORCH=cpu") < lines.index("USER fleet") == len(lines) - 1
    assert "COPY constraints/ /opt/fleet/constraints/" in lines
    assert "'fleetkit[ml]'" in run_instruction(dockerfile, "fleetkit[ml]")
    # The compose file says so before the first `up`, and the command's summary too.
    assert "Learning bots (rl-nifty, rl-btc)" in files["docker-compose.yml"]
    notes = compose_bundle(demo).notes
    assert len(notes) == 1 and "2 learning bots (rl-nifty, rl-btc)" in notes[0]


def test_the_image_installs_torchs_cpu_build_unless_asked_for_another(
        demo: LoadedConfig, tmp_path: Path) -> None:
    dockerfile = compose_files(demo)["image/Dockerfile"]
    shell = run_instruction(dockerfile, "fleetkit[ml]")
    cpu = pip_args(shell, tmp_path, tmp_path, TORCH="cpu")
    assert cpu == ["install", "--no-cache-dir", "-c", "/opt/fleet/constraints/torch-cpu.txt",
                   "--extra-index-url", TORCH_CPU_INDEX, "fleetkit[ml]"]
    cuda = pip_args(shell, tmp_path, tmp_path, TORCH="cuda")
    assert cuda == ["install", "--no-cache-dir", "fleetkit[ml]"]


def test_the_learning_bots_services_run_from_that_image_and_keep_their_models_in_the_volume(
        demo: LoadedConfig) -> None:
    files = compose_files(demo)
    services = yaml.safe_load(files["docker-compose.yml"])["services"]
    for name in LEARNING:
        service = services[f"bot-{name}"]  # `<<: *x-fleet-service` merged by the loader
        assert service["command"] == ["bot", "run", name]
        assert service["image"] == "fleetkit-demo:latest"
        assert "fleet-home:/var/lib/fleet" in service["volumes"]
        assert service["restart"] == "unless-stopped"
        # No healthcheck to fail while the first models train (the bot heartbeats
        # `training` to the fleet's own hang detection meanwhile).
        assert "healthcheck" not in service
    assert "healthcheck" not in services["bot-us-sma-jpm"]
    # Every fleet service runs the one image: the ml extra is imported by learning bots only.
    images = {s["image"] for s in services.values()}
    assert images == {"postgres:15", "fleetkit-demo:latest"}
    # The config copy, read in the container (FLEET_HOME=/var/lib/fleet), puts the models
    # in the volume.
    config = parse_config(files["config/fleet.yaml"], "copy", home=Path("/var/lib/fleet"))
    for bot in config.bots:
        if bot.name in LEARNING:
            assert bot.ml is not None and bot.ml.models_dir == f"/var/lib/fleet/models/{bot.name}"


def test_without_learning_bots_the_image_has_no_ml_extra(plain_demo: LoadedConfig,
                                                         tmp_path: Path) -> None:
    files = compose_files(plain_demo)
    assert not [p for p in files if p.startswith("image/")]
    assert "build" not in yaml.safe_load(files["docker-compose.yml"])["x-fleet-service"]
    assert "ml extra" not in files["docker-compose.yml"]
    assert compose_bundle(plain_demo).notes == ()
    # With plugin packages only, their image is as it was: no ml extra, no torch arg.
    path = tmp_path / "plug" / "fleet.yaml"
    path.parent.mkdir()
    path.write_text("fleet: {name: plug}\nplugin_packages: ['acme-strategies==1.2']\n"
                    "bots:\n  - {name: a, market: CRYPTO, symbols: [BTC/USDT], "
                    "strategy: sma_cross}\n", "utf-8")
    plug = compose_files(load_config(path))
    assert "fleetkit[ml]" not in plug["image/Dockerfile"]
    assert "TORCH" not in plug["image/Dockerfile"]
    assert "image/constraints/torch-cpu.txt" not in plug
    assert yaml.safe_load(plug["docker-compose.yml"])["x-fleet-service"]["build"] == "image"


def test_learning_bots_and_plugin_packages_share_one_image_the_ml_extra_first(
        tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "src/fleetkit/demo/fleet.yaml").read_text("utf-8"))
    raw["plugin_packages"] = ["acme-strategies==1.2"]
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), "utf-8")
    dockerfile = compose_files(load_config(path))["image/Dockerfile"]
    assert dockerfile.startswith("# The fleet's image: fleetkit:latest plus the ml extra of "
                                 "its learning bots and the plugin packages")
    # A plugin package that needs torch then finds the CPU build installed.
    assert dockerfile.index("'fleetkit[ml]'") < dockerfile.index("acme-strategies==1.2")


def test_a_models_dir_outside_the_fleet_home_is_refused(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "src/fleetkit/demo/fleet.yaml").read_text("utf-8"))
    bot = next(b for b in raw["bots"] if b["name"] == "rl-btc")
    for outside in ("/srv/models/rl-btc", "~/models"):
        bot["ml"]["models_dir"] = outside
        path = tmp_path / "fleet.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False), "utf-8")
        loaded = load_config(path)
        refused = r"rl-btc: ml\.models_dir .* outside the fleet home"
        with pytest.raises(ConfigError, match=refused):
            compose_bundle(loaded)
        with pytest.raises(ConfigError, match=refused):
            systemd_bundle(loaded, SystemdOptions())
    bot["ml"]["models_dir"] = "/var/lib/fleet/trained/rl-btc"  # under the home: fine
    path.write_text(yaml.safe_dump(raw, sort_keys=False), "utf-8")
    assert compose_bundle(load_config(path)).files


# --- the constraints ------------------------------------------------------------------------


def test_the_bundles_pin_torch_like_the_projects_constraints_file(demo: LoadedConfig) -> None:
    expected = pins((ROOT / "constraints" / "torch-cpu.txt").read_text("utf-8"))
    assert list(TORCH_CPU_PINS) == expected
    assert pins(compose_files(demo)["image/constraints/torch-cpu.txt"]) == expected
    assert pins(systemd_files(demo)["constraints/torch-cpu.txt"]) == expected


# --- the fleetkit image ---------------------------------------------------------------------


def fleetkit_dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text("utf-8")


def build_arg(name: str) -> str:
    return next(line.split("=", 1)[1] for line in fleetkit_dockerfile().splitlines()
                if line.startswith(f"ARG {name}="))


def test_the_fleetkit_image_adds_the_ml_extra_with_a_build_argument(tmp_path: Path) -> None:
    """The dependency layer, run with a pip that only prints: by default no torch (a small
    image); with `ml` in FLEETKIT_EXTRAS its requirements and torch's CPU build."""
    assert build_arg("FLEETKIT_EXTRAS") == "live,oidc"
    assert build_arg("TORCH") == "cpu"
    shell = run_instruction(fleetkit_dockerfile(), "pip install -r")
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy(ROOT / "pyproject.toml", context)
    shutil.copytree(ROOT / "constraints", context / "constraints")
    ml = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"][
        "optional-dependencies"]["ml"]

    plain = pip_args(shell, tmp_path, context, FLEETKIT_EXTRAS="live,oidc", TORCH="cpu")
    assert plain == ["install", "-r", "requirements.txt"]
    listed = (context / "requirements.txt").read_text("utf-8").splitlines()
    assert not set(ml) & set(listed)

    learning = pip_args(shell, tmp_path, context, FLEETKIT_EXTRAS="live,oidc,ml", TORCH="cpu")
    assert learning == ["install", "-r", "requirements.txt", "-c",
                        "constraints/torch-cpu.txt", "--extra-index-url", TORCH_CPU_INDEX]
    assert set(ml) <= set((context / "requirements.txt").read_text("utf-8").splitlines())

    cuda = pip_args(shell, tmp_path, context, FLEETKIT_EXTRAS="live,oidc,ml", TORCH="cuda")
    assert cuda == ["install", "-r", "requirements.txt"]


def test_the_constraints_are_in_the_dependency_layer_before_the_source() -> None:
    lines = [line for line in fleetkit_dockerfile().splitlines() if not line.startswith("#")]
    constraints = lines.index("COPY constraints/ ./constraints/")
    dependencies = next(i for i, line in enumerate(lines) if line.startswith("RUN python -c"))
    source = lines.index("COPY src ./src")
    assert constraints < dependencies < source


# --- systemd --------------------------------------------------------------------------------


def test_install_sh_installs_the_ml_extra_with_the_cpu_constraints_only_when_needed(
        demo: LoadedConfig, plain_demo: LoadedConfig) -> None:
    script = systemd_files(demo)["install.sh"]
    cpu = (f"  run /opt/fleetkit/bin/python -m pip install -c constraints/torch-cpu.txt "
           f"--extra-index-url {TORCH_CPU_INDEX} 'fleetkit[ml]'")
    assert cpu in script.splitlines()
    assert "  run /opt/fleetkit/bin/python -m pip install 'fleetkit[ml]'" in script.splitlines()
    # Before the plugin packages and the units, so a bot never starts without it.
    assert script.index("fleetkit[ml]") < script.index("install -m 0644 units/*")
    assert "2 learning bots (rl-nifty, rl-btc)" in systemd_bundle(demo, SystemdOptions()).notes[0]

    plain = systemd_files(plain_demo)
    assert "fleetkit[ml]" not in plain["install.sh"] and "torch" not in plain["install.sh"]
    assert "constraints/torch-cpu.txt" not in plain and "learning-bot.conf" not in plain
    assert systemd_bundle(plain_demo, SystemdOptions()).notes == ()


def dry_run(out: Path, tmp_path: Path, **env: str) -> str:
    fake = tmp_path / "fake"
    fake.mkdir(exist_ok=True)
    for name in ("install", "systemctl", "useradd"):  # a dry run must call none of them
        (fake / name).write_text(f"#!/bin/sh\necho {name} >> {tmp_path}/called\n", "utf-8")
        (fake / name).chmod(0o755)
    result = subprocess.run(["sh", str(out / "install.sh")], capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}",
                                 "DRY_RUN": "1", **env}, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "called").exists()
    return result.stdout


def test_install_sh_takes_the_cpu_build_by_default_and_cuda_when_asked(
        demo: LoadedConfig, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_bundle(out, systemd_bundle(demo, SystemdOptions(fleet_bin="/srv/venv/bin/fleet")))
    pip = "+ /srv/venv/bin/python -m pip install"
    default = dry_run(out, tmp_path)
    assert (f"{pip} -c constraints/torch-cpu.txt --extra-index-url {TORCH_CPU_INDEX} "
            "fleetkit[ml]\n") in default
    cuda = dry_run(out, tmp_path, TORCH="cuda")
    assert f"{pip} fleetkit[ml]\n" in cuda and "torch-cpu.txt" not in cuda
    # The constraints path is relative to the bundle, which install.sh runs from.
    assert (out / "constraints" / "torch-cpu.txt").is_file()
    for bot in LEARNING:
        drop_in = f"/etc/systemd/system/fleet-bot@{bot}.service.d"
        assert f"+ install -d -m 0755 {drop_in}\n" in default
        assert f"+ install -m 0644 learning-bot.conf {drop_in}/learning.conf\n" in default
    assert "fleet-bot@us-sma-jpm.service.d" not in default


def test_learning_bots_get_more_memory_through_a_drop_in_over_the_one_template(
        demo: LoadedConfig) -> None:
    files = systemd_files(demo)
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(files["learning-bot.conf"])
    assert dict(parser["Service"]) == {"MemoryMax": "2G", "CPUQuota": "100%", "TasksMax": "128"}
    template = files["units/fleet-bot@.service"]
    assert "MemoryMax=512M" in template.splitlines()  # plain bots keep theirs
    # Type=exec: started once exec succeeds, so a first training counts against no start
    # timeout (TimeoutStartSec) — only its own ml.train_timeout_s.
    assert "Type=exec" in template.splitlines()


def test_the_learning_drop_in_passes_systemd_analyze_verify(demo: LoadedConfig,
                                                            tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    fleet = Path(sys.executable).parent / "fleet"
    write_bundle(tmp_path / "out", systemd_bundle(demo, SystemdOptions(
        fleet_bin=str(fleet if fleet.exists() else Path(sys.executable)))))
    units = tmp_path / "out" / "units"
    drop_in = units / "fleet-bot@rl-nifty.service.d"
    drop_in.mkdir()
    shutil.copy(tmp_path / "out" / "learning-bot.conf", drop_in / "learning.conf")
    result = subprocess.run(["systemd-analyze", "verify",
                             str(units / "fleet-bot@rl-nifty.service")],
                            env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"},
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_the_install_line_is_one_pip_command_per_build() -> None:
    from fleetkit.deploy.learning import install_lines

    lines = install_lines(["a"], "/v/bin/python")
    commands = [shlex.split(line.strip().removeprefix("run ")) for line in lines
                if line.strip().startswith("run ")]
    assert commands == [
        ["/v/bin/python", "-m", "pip", "install", "-c", "constraints/torch-cpu.txt",
         "--extra-index-url", TORCH_CPU_INDEX, "fleetkit[ml]"],
        ["/v/bin/python", "-m", "pip", "install", "fleetkit[ml]"]]
