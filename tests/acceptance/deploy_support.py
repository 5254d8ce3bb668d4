"""Running what a generated deployment would run, here: a systemd unit's ExecStart= with its
Environment= and EnvironmentFile= as install.sh installs them, a Compose service's command
and environment with its volumes mapped to the generated project."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import IO

import yaml

ETC = "/etc/fleet"  # where install.sh puts the config and plugins: here, the generated dir


class Unit:
    """What systemd would run for a generated unit: ExecStart= with Environment= and
    EnvironmentFile=, as installed (paths under /etc/fleet are the generated directory's)."""

    def __init__(self, out: Path, name: str, instance: str = "") -> None:
        self.out = out
        text = (out / "units" / name).read_text(encoding="utf-8")
        text = text.replace("%i", instance).replace("%d", str(out / "no-credentials"))
        entries = [line.split("=", 1) for line in text.splitlines() if "=" in line
                   and not line.startswith("#")]
        self.env: dict[str, str] = {}
        for key, value in entries:
            if key == "Environment":
                self.env.update(pair.split("=", 1) for pair in shlex.split(self.installed(value)))
            if key == "EnvironmentFile":
                self.env.update(self.env_file(Path(self.installed(value.lstrip("-")))))
        self.argv = shlex.split(self.installed(dict(entries)["ExecStart"]))
        self.cwd = dict(entries)["WorkingDirectory"]

    def installed(self, value: str) -> str:
        return value.replace(ETC, str(self.out))

    @staticmethod
    def env_file(path: Path) -> dict[str, str]:
        if not path.exists():
            return {}
        lines = path.read_text(encoding="utf-8").splitlines()
        return dict(line.split("=", 1) for line in lines
                    if "=" in line and not line.startswith("#") and line.split("=", 1)[1])

    def environment(self) -> dict[str, str]:
        return {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **self.env}

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv, cwd=self.cwd, env=self.environment(),
                              capture_output=True, text=True, timeout=120, check=False)

    def start(self, log: IO[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv, cwd=self.cwd, env=self.environment(), stdout=log,
                                stderr=subprocess.STDOUT, text=True)


def compose_service(out: Path, name: str, home: Path) -> tuple[list[str], dict[str, str]]:
    """A Compose service's command and environment, with its volumes mapped here and the
    database left to FLEET_HOME's SQLite (no postgres service here)."""
    document = yaml.safe_load((out / "docker-compose.yml").read_text(encoding="utf-8"))
    service = document["services"][name]  # x-fleet-service merged in
    mounts = dict(volume.split(":")[1::-1] for volume in service["volumes"]
                  if volume.startswith("./"))
    env = {key: value for key, value in service["environment"].items()
           if not key.startswith("FLEET_DB_")}
    for inside, outside in mounts.items():
        env = {k: v.replace(inside, str(out / outside.removeprefix("./"))) for k, v in env.items()}
    env["FLEET_HOME"] = str(home)
    return service["command"], {"PATH": os.environ["PATH"], **env}
