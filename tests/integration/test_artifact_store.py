"""The artifact store on real backends: a local directory, and S3 through moto's server
mode on a loopback port (nothing outside 127.0.0.1). Round trips, corrupted and truncated
files caught both on download (nothing put in place) and by verify, an upload that never
finished, an unreachable store, an unsupported scheme."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetkit.artifacts import (
    COMPLETE,
    ArtifactMismatchError,
    ArtifactStore,
    ArtifactStoreUnavailableError,
    S3Options,
    SftpOptions,
    UnsupportedStoreError,
    open_store,
)
from fleetkit.core.errors import ConfigError

KEY = "rl-btc/1h/20261120T150000Z-abc"
FILES = {"model.zip": b"PK\x03\x04" + bytes(range(256)) * 40, "normalisation.json": b"{}\n",
         "manifest.json": b'{"format": "fleetkit.ml.model/1"}\n'}
EXPECTED = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Credentials from the environment, as in production; moto accepts any.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


def new_bucket(endpoint: str, name: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket=name)


class Backend:
    """A store, and a way to reach behind it to damage what it holds."""

    def __init__(self, store: ArtifactStore, tamper: object) -> None:
        self.store = store
        self._tamper = tamper

    def rewrite(self, name: str, change: object) -> None:
        self._tamper(name, change)  # type: ignore[operator]


@pytest.fixture(params=["file", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "file":
        root = tmp_path / "store"
        store = open_store(f"file://{root}")

        def tamper_file(name: str, change: object) -> None:
            path = root / KEY / name
            path.write_bytes(change(path.read_bytes()))  # type: ignore[operator]

        return Backend(store, tamper_file)
    request.getfixturevalue("s3_env")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"models-{request.node.name.split('[')[0][-30:].replace('_', '-')}"
    new_bucket(endpoint, bucket)
    store = open_store(f"s3://{bucket}/prod", s3=S3Options(endpoint_url=endpoint,
                                                           region="us-east-1"))
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    def tamper_object(name: str, change: object) -> None:
        key = f"prod/{KEY}/{name}"
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        client.put_object(Bucket=bucket, Key=key, Body=change(body))  # type: ignore[operator]

    return Backend(store, tamper_object)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for name, data in FILES.items():
        (folder / name).write_bytes(data)
    (folder / ".training-scratch").write_bytes(b"hidden files are not stored")
    return folder


def flip_a_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]


def test_put_get_verify_round_trip(backend: Backend, model_dir: Path, tmp_path: Path) -> None:
    stored = backend.store.put_dir(model_dir, KEY)
    assert {f.name: f.sha256 for f in stored} == EXPECTED
    assert {f.name: f.size for f in stored} == {n: len(d) for n, d in FILES.items()}
    assert all(f.url == f"{backend.store.url}/{KEY}/{f.name}" for f in stored)
    assert backend.store.list_keys() == [KEY]
    assert backend.store.list_keys("rl-btc/1h") == [KEY]
    assert backend.store.list_keys("rl-eth") == []
    assert backend.store.verify(KEY, EXPECTED) == []
    target = tmp_path / "local" / "1h"
    backend.store.get_dir(KEY, target, EXPECTED)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == FILES
    # Again over an existing directory: replaced whole, nothing left beside it.
    (target / "stale.bin").write_bytes(b"old")
    backend.store.get_dir(KEY, target, EXPECTED)
    assert sorted(p.name for p in target.iterdir()) == sorted(FILES)
    assert sorted(p.name for p in target.parent.iterdir()) == ["1h"]
    backend.store.delete(KEY)
    assert backend.store.list_keys() == []
    backend.store.delete(KEY)  # twice: nothing to do


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_a_damaged_stored_file_is_caught_by_get_dir_and_by_verify(
        backend: Backend, model_dir: Path, tmp_path: Path, damage: str) -> None:
    backend.store.put_dir(model_dir, KEY)
    change = flip_a_byte if damage == "flipped" else (lambda data: data[: len(data) // 3])
    backend.rewrite("model.zip", change)
    target = tmp_path / "local" / "1h"
    target.mkdir(parents=True)
    (target / "model.zip").write_bytes(b"the previous model")
    with pytest.raises(ArtifactMismatchError) as caught:
        backend.store.get_dir(KEY, target, EXPECTED)
    message = str(caught.value)
    assert f"{KEY}/model.zip" in message and EXPECTED["model.zip"] in message
    found = hashlib.sha256(change(FILES["model.zip"])).hexdigest()
    assert found in message
    # The previous directory is untouched and no half-download is left beside it.
    assert [p.name for p in target.iterdir()] == ["model.zip"]
    assert (target / "model.zip").read_bytes() == b"the previous model"
    assert sorted(p.name for p in target.parent.iterdir()) == ["1h"]
    problems = backend.store.verify(KEY, EXPECTED)
    assert len(problems) == 1 and "model.zip" in problems[0] and found in problems[0]


def test_a_missing_stored_file_is_reported_by_get_dir_and_verify(
        backend: Backend, model_dir: Path, tmp_path: Path) -> None:
    backend.store.put_dir(model_dir, KEY, ["model.zip", "manifest.json"])
    with pytest.raises(ArtifactMismatchError, match=r"normalisation\.json is missing"):
        backend.store.get_dir(KEY, tmp_path / "out", EXPECTED)
    assert not (tmp_path / "out").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    problems = backend.store.verify(KEY, EXPECTED)
    assert problems == [f"{backend.store.url}/{KEY}/normalisation.json is missing (expected "
                        f"sha256 {EXPECTED['normalisation.json']})"]
    other = "rl-btc/1h/unfinished"
    backend.store.put_dir(model_dir, other)
    backend.store.delete(KEY)
    assert backend.store.list_keys() == [other]


def test_an_interrupted_upload_is_not_a_version(model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = open_store(str(root))  # a plain path is a local directory
    assert store.url == f"file://{root}"
    store.put_dir(model_dir, KEY)
    (root / KEY / COMPLETE).unlink()  # as if killed before the marker was written
    assert store.list_keys() == []
    assert any(COMPLETE in p for p in store.verify(KEY, EXPECTED))
    # A re-upload completes it; no temporary file is left behind.
    store.put_dir(model_dir, KEY)
    assert store.list_keys() == [KEY]
    assert sorted(p.name for p in (root / KEY).iterdir()) == sorted([*FILES, COMPLETE])


def test_bad_names_and_schemes_are_refused_in_one_line(model_dir: Path,
                                                       tmp_path: Path) -> None:
    with pytest.raises(UnsupportedStoreError) as caught:
        open_store("ftp://host/models")
    assert str(caught.value) == (
        "artifact store URL 'ftp://host/models': the scheme 'ftp' is not supported; use "
        "file:///path (or a plain path), sftp://user@host:port/path or s3://bucket/prefix")
    store = open_store(str(tmp_path / "store"))
    for key in ("../escape", "a//b", "/abs", "a b"):
        with pytest.raises(ConfigError, match="not usable in an artifact store"):
            store.put_dir(model_dir, key)
    with pytest.raises(ConfigError, match="not usable"):
        store.get_dir(KEY, tmp_path / "x", {"../../etc/passwd": "0" * 64})
    with pytest.raises(ConfigError, match="names no host"):
        open_store("file://somehost/models")


@pytest.mark.usefixtures("s3_env")
def test_an_unreachable_or_missing_bucket_is_one_clear_error(model_dir: Path,
                                                             s3_endpoint: str) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    store = open_store("s3://models/prod", s3=S3Options(endpoint_url=dead, region="us-east-1",
                                                        connect_timeout_s=1))
    with pytest.raises(ArtifactStoreUnavailableError, match=r"s3://models/prod failed while "
                       r"storing .*EndpointConnectionError"):
        store.put_dir(model_dir, KEY)
    with pytest.raises(ArtifactStoreUnavailableError, match="failed while verifying"):
        store.verify(KEY, EXPECTED)
    missing = open_store("s3://no-such-bucket/prod", s3=S3Options(endpoint_url=s3_endpoint,
                                                                  region="us-east-1"))
    with pytest.raises(ArtifactStoreUnavailableError, match="create the bucket"):
        missing.put_dir(model_dir, KEY)


# --- SFTP: a real OpenSSH server on a loopback port (tests/integration/sshd.py's keys) ---


@pytest.fixture(scope="module")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """sshd with the SFTP subsystem (the trainer's fixture runs commands only)."""
    import subprocess

    from tests.integration.sshd import SSHD, _keygen, _missing, _wait_listening, free_port

    if not SSHD.is_file():
        _missing(f"no {SSHD}: apt-get install openssh-server")
    folder = tmp_path_factory.mktemp("sftpd")
    for name in ("host_key", "client_key"):
        _keygen(folder / name)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {folder / 'host_key'}\n"
                      f"PidFile {folder / 'sshd.pid'}\nAuthorizedKeysFile "
                      f"{folder / 'authorized_keys'}\nStrictModes no\nUsePAM no\n"
                      "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                      "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
                      "LogLevel ERROR\n")
    host_key = (folder / "host_key.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    (folder / "empty_known_hosts").write_text("")
    log = folder / "sshd.log"
    with log.open("wb") as err:
        process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)],
                                   stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        _wait_listening(port, process, log)
        user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
        yield {"port": port, "folder": folder, "user": user}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_sftp_round_trip_with_a_known_host_and_the_users_key(
        sftp_server: dict[str, Any], model_dir: Path, tmp_path: Path) -> None:
    folder, port, user = sftp_server["folder"], sftp_server["port"], sftp_server["user"]
    root = tmp_path / "remote-store"
    url = f"sftp://{user}@127.0.0.1:{port}{root}"
    store = open_store(url, sftp=SftpOptions(known_hosts=str(folder / "known_hosts"),
                                             key_file=str(folder / "client_key")))
    store.put_dir(model_dir, KEY)
    assert store.list_keys() == [KEY] and store.verify(KEY, EXPECTED) == []
    store.get_dir(KEY, tmp_path / "local", EXPECTED)
    assert {p.name: p.read_bytes() for p in (tmp_path / "local").iterdir()} == FILES
    path = root / KEY / "model.zip"
    path.write_bytes(flip_a_byte(path.read_bytes()))
    assert "model.zip has sha256" in store.verify(KEY, EXPECTED)[0]
    # An unknown host key is refused, never trusted on first use.
    with pytest.raises(ArtifactStoreUnavailableError, match=r"not in .*empty_known_hosts"):
        open_store(url, sftp=SftpOptions(known_hosts=str(folder / "empty_known_hosts"),
                                         key_file=str(folder / "client_key")))
