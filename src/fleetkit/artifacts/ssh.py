"""SFTP connections as the user's own OpenSSH would make them: ~/.ssh/config (HostName,
User, Port, IdentityFile), the agent and default keys, and the host's key checked against
known_hosts — an unknown host is refused, never trusted on first use (fsspec's default
would add any key it is shown)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import paramiko

from fleetkit.artifacts.port import SftpOptions


class KnownHostsOnly(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Accept a host key only when known_hosts holds exactly that key for the host."""

    def __init__(self, known_hosts: Path, port: int) -> None:
        self._file = known_hosts
        self._port = port

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        keys = paramiko.HostKeys()
        if self._file.is_file():
            keys.load(str(self._file))
        # paramiko already names a host on another port "[host]:port", as known_hosts does.
        name = hostname
        known = keys.lookup(name)
        if known is not None and known.get(key.get_name()) == key:
            return
        raise paramiko.SSHException(
            f"the host key of {name} is not in {self._file}: connect once with `ssh -p "
            f"{self._port} HOST` and check its fingerprint, or add it with ssh-keyscan")


def connect_kwargs(host: str, user: str | None, port: int | None,
                   options: SftpOptions) -> tuple[str, dict[str, Any]]:
    """(host to connect to, paramiko connect keyword arguments) for one store URL."""
    config_file = Path("~/.ssh/config").expanduser()
    entry: dict[str, Any] = {}
    if config_file.is_file():
        ssh_config = paramiko.SSHConfig.from_path(str(config_file))
        entry = dict(ssh_config.lookup(host))
    hostname = str(entry.get("hostname", host))
    chosen_port = port or int(entry.get("port", 22))
    username = user or entry.get("user") or os.environ.get("USER")
    key_files = [options.key_file] if options.key_file else [
        str(Path(f).expanduser()) for f in entry.get("identityfile", [])]
    known_hosts = Path(options.known_hosts or "~/.ssh/known_hosts").expanduser()
    kwargs: dict[str, Any] = {
        "port": chosen_port, "username": username, "timeout": options.connect_timeout_s,
        "banner_timeout": options.connect_timeout_s,
        "auth_timeout": options.connect_timeout_s,
        "host_key_policy": KnownHostsOnly(known_hosts, chosen_port),
    }
    if key_files:
        kwargs["key_filename"] = [f for f in key_files if Path(f).is_file()] or None
    return hostname, kwargs
