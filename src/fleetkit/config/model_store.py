"""The fleet's `models:` section: where model versions' files are stored and how many are
kept (docs/registry.md).

    models:
      store: s3://fleet-models/prod        # default file://<fleet home>/model-store
      keep_archived: 30                    # archived versions kept per bot and timeframe
      keep_local: 2                        # model directories kept on the production side
      s3: {endpoint_url: "http://minio:9000", region: eu-central-1,
           access_key_id_file: /run/secrets/s3_key, secret_access_key_file: /run/secrets/s3}
      sftp: {known_hosts: ~/.ssh/known_hosts, key_file: ~/.ssh/id_ed25519}

Secrets never sit in the YAML: S3 keys come from the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_S3 ...: botocore's own chain) or from the named
secret files; an SFTP URL carries a user, never a password (use your SSH key or agent).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from fleetkit.config.strict import Strict

if TYPE_CHECKING:
    from fleetkit.artifacts import ArtifactStore
    from fleetkit.config.loader import LoadedConfig

STORE_FOLDER = "model-store"
_SCHEMES = ("file", "sftp", "s3")  # artifacts.SCHEMES (config stays free of fsspec)


class S3Settings(Strict):
    endpoint_url: str | None = Field(default=None, description="an S3-compatible server "
                                     "(MinIO ...); default AWS, or $AWS_ENDPOINT_URL_S3")
    region: str | None = Field(default=None, description="default: botocore's ($AWS_REGION)")
    access_key_id_file: str | None = Field(default=None, description="secret file with the "
                                           "access key id (default: $AWS_ACCESS_KEY_ID ...)")
    secret_access_key_file: str | None = Field(default=None, description="secret file with "
                                               "the secret key")


class SftpSettings(Strict):
    known_hosts: str | None = Field(default=None, description="default ~/.ssh/known_hosts; "
                                    "an unknown host key is refused")
    key_file: str | None = Field(default=None, description="default: the agent, "
                                 "~/.ssh/config's IdentityFile, ~/.ssh/id_*")


class ModelsSettings(Strict):
    store: str | None = Field(default=None, description="artifact store URL: file:///dir "
                              "(or a path), sftp://user@host:port/dir, s3://bucket/prefix; "
                              "default file://<fleet home>/model-store")
    keep_archived: int = Field(default=30, ge=1, description="archived versions kept per bot "
                               "and timeframe (older ones are retired and their files deleted)")
    keep_local: int = Field(default=2, ge=1, description="model directories kept per "
                            "timeframe on the production side")
    s3: S3Settings = Field(default_factory=S3Settings)
    sftp: SftpSettings = Field(default_factory=SftpSettings)

    @field_validator("store")
    @classmethod
    def _supported(cls, url: str | None) -> str | None:
        if url is None or "://" not in url:
            return url
        parts = urlsplit(url)
        if parts.scheme.lower() not in _SCHEMES:
            raise ValueError(f"the scheme {parts.scheme!r} is not supported; use file:///path, "
                             "sftp://user@host:port/path or s3://bucket/prefix")
        if parts.password:
            raise ValueError("the URL carries a password: never put one in the YAML (SFTP: "
                             "your SSH key or agent; S3: the environment or a secret file)")
        return url


def store_url(loaded: LoadedConfig, override: str | None = None) -> str:
    """--store, else models.store (a relative path: beside the config), else the fleet
    home's model-store folder."""
    if override:
        return override
    configured = loaded.config.models.store
    if configured:
        if "://" in configured:
            return configured
        path = loaded.path_of(configured) or Path(configured)
        return f"file://{path.absolute()}"
    return f"file://{loaded.home / STORE_FOLDER}"


def open_model_store(loaded: LoadedConfig, url: str | None = None) -> ArtifactStore:
    """The artifact store at `url` (default: the config's), with the config's S3 and SFTP
    settings and secrets."""
    from fleetkit.artifacts import S3Options, SftpOptions, open_store
    from fleetkit.config.secrets import read_secret

    settings = loaded.config.models
    base = loaded.config_dir
    key_id = secret = None
    if settings.s3.access_key_id_file or settings.s3.secret_access_key_file:
        key_id = read_secret("models.s3.access_key_id_file", None,
                             settings.s3.access_key_id_file, base)
        secret = read_secret("models.s3.secret_access_key_file", None,
                             settings.s3.secret_access_key_file, base)
    return open_store(
        url or store_url(loaded),
        s3=S3Options(endpoint_url=settings.s3.endpoint_url, region=settings.s3.region,
                     access_key_id=key_id, secret_access_key=secret),
        sftp=SftpOptions(known_hosts=settings.sftp.known_hosts,
                         key_file=settings.sftp.key_file))
