"""A real OpenSSH server for the SSH trainer's tests: `/usr/sbin/sshd -D` on a free loopback
port, as the current user, with a throwaway host key and client key (ssh-keygen) in a
temporary folder, and a client config file (ssh -F) naming it by an alias, so that nothing
reads or writes ~/.ssh.

Without sshd the tests skip with the package to install; in CI (FLEET_TEST_REQUIRE_SSHD=1,
set by .ci/run, which installs it) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
ALIAS = "gpu-box"  # what a user's ~/.ssh/config would name the GPU box
WRONG_KEY_ALIAS = "gpu-box-wrong-key"  # the same server, a key it does not know
PRIVSEP_DIR = Path("/run/sshd")  # sshd started by root refuses to run without it


@dataclass(frozen=True)
class Sshd:
    port: int
    folder: Path
    client_config: Path  # ssh -F: the aliases, the port, the keys, known_hosts in folder
    client_key: Path
    wrong_key: Path
    user: str

    def ssh(self, command: str, alias: str = ALIAS,
            timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        """A second, independent connection (to look at the trainer from outside)."""
        return subprocess.run(["ssh", "-F", str(self.client_config), alias, command],
                              capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL, check=False)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _missing(reason: str) -> None:
    if os.environ.get("FLEET_TEST_REQUIRE_SSHD") == "1":
        pytest.fail(f"{reason} (FLEET_TEST_REQUIRE_SSHD=1: the SSH trainer must be tested)")
    pytest.skip(reason)


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleetkit-test",
                    "-f", str(path)], check=True, capture_output=True)


def _server_config(folder: Path, port: int) -> Path:
    config = folder / "sshd_config"
    config.write_text(f"""\
ListenAddress 127.0.0.1
Port {port}
HostKey {folder / "host_key"}
PidFile {folder / "sshd.pid"}
AuthorizedKeysFile {folder / "authorized_keys"}
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
LogLevel ERROR
""", encoding="utf-8")
    return config


def _client_config(folder: Path, port: int, user: str) -> Path:
    config = folder / "ssh_config"
    common = f"""\
    HostName 127.0.0.1
    Port {port}
    User {user}
    IdentitiesOnly yes
    UserKnownHostsFile {folder / "known_hosts"}
    StrictHostKeyChecking accept-new
    GlobalKnownHostsFile /dev/null
"""
    config.write_text(f"""\
Host {ALIAS}
    IdentityFile {folder / "client_key"}
{common}
Host {WRONG_KEY_ALIAS}
    IdentityFile {folder / "wrong_key"}
{common}""", encoding="utf-8")
    return config


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd exited with {process.returncode}: "
                        f"{log.read_text(errors='replace').strip()}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"sshd did not listen on 127.0.0.1:{port} within 15 s")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if not (SSHD.is_file() and os.access(SSHD, os.X_OK)):
        _missing(f"no {SSHD}: apt-get install openssh-server")
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        _missing("no ssh client: apt-get install openssh-client")
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        # What the Debian service does before it starts sshd as root.
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    folder = tmp_path_factory.mktemp("sshd")
    _keygen(folder / "host_key")
    _keygen(folder / "client_key")
    _keygen(folder / "wrong_key")
    shutil.copyfile(folder / "client_key.pub", folder / "authorized_keys")
    port = free_port()
    user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
    config = _server_config(folder, port)
    log = folder / "sshd.log"
    with log.open("wb") as err:
        process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)],
                                   stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        _wait_listening(port, process, log)
        yield Sshd(port, folder, _client_config(folder, port, user), folder / "client_key",
                   folder / "wrong_key", user)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
