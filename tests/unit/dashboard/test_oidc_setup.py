"""`fleet dashboard` checks an OIDC login's secrets.toml before it serves: each gap is one
line naming the key or file to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetkit.config.dashboard import DashboardAuth
from fleetkit.core.errors import ConfigError
from fleetkit.dashboard import oidc
from fleetkit.dashboard.oidc import check_oidc_setup

COOKIE = "c" * 48
COMPLETE = f"""[auth]
redirect_uri = "http://127.0.0.1:8501/oauth2callback"
cookie_secret = "{COOKIE}"
client_id = "fleet"
client_secret = "s3cret"
server_metadata_url = "https://id.example.test/.well-known/openid-configuration"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def check(tmp_path: Path, **auth: str) -> oidc.OidcSetup:
    return check_oidc_setup(DashboardAuth(oidc=True, **auth), tmp_path / "conf",
                            cwd=tmp_path / "cwd", home=tmp_path / "home")


def test_an_explicit_file_is_found_next_to_the_config_and_handed_to_streamlit(
        tmp_path: Path) -> None:
    path = write(tmp_path / "conf" / "secrets" / "oidc.toml", COMPLETE)

    setup = check(tmp_path, oidc_secrets_file="secrets/oidc.toml")

    assert setup.secrets_file == path
    assert setup.found_in == (path,)


def test_streamlits_own_places_are_read_and_left_to_streamlit(tmp_path: Path) -> None:
    home = write(tmp_path / "home" / ".streamlit" / "secrets.toml", COMPLETE)
    here = write(tmp_path / "cwd" / ".streamlit" / "secrets.toml", '[other]\nkey = "x"\n')

    setup = check(tmp_path)

    assert setup.found_in == (home, here)
    assert setup.secrets_file is None


def test_the_working_directorys_auth_replaces_the_homes_whole_as_in_streamlit(
        tmp_path: Path) -> None:
    """Streamlit merges its secrets files table by table: an [auth] with only a client
    secret in the working directory hides every key of the home file's [auth]."""
    write(tmp_path / "home" / ".streamlit" / "secrets.toml", COMPLETE)
    here = write(tmp_path / "cwd" / ".streamlit" / "secrets.toml",
                 '[auth]\nclient_secret = "from-the-working-directory"\n')

    with pytest.raises(ConfigError, match=f"{here} \\[auth\\] lacks redirect_uri, "
                                          "cookie_secret, client_id, server_metadata_url"):
        check(tmp_path)


def test_no_auth_section_anywhere_names_the_places_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no secrets.toml with an \[auth\] section.*cwd"):
        check(tmp_path)


def test_a_missing_explicit_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"oidc_secrets_file .*oidc\.toml does not exist"):
        check(tmp_path, oidc_secrets_file="secrets/oidc.toml")


@pytest.mark.parametrize(("drop", "named"), [
    ('client_secret = "s3cret"\n', "client_secret"),
    (f'cookie_secret = "{COOKIE}"\n', "cookie_secret"),
    ('server_metadata_url = "https://id.example.test/.well-known/openid-configuration"\n',
     "server_metadata_url"),
])
def test_each_missing_key_is_named(tmp_path: Path, drop: str, named: str) -> None:
    write(tmp_path / "conf" / "oidc.toml", COMPLETE.replace(drop, ""))
    with pytest.raises(ConfigError, match=f"lacks {named}"):
        check(tmp_path, oidc_secrets_file="oidc.toml")


@pytest.mark.parametrize(("old", "new", "message"), [
    ("8501/oauth2callback", "8501/", "must be the dashboard's address ending in "
                                     "/oauth2callback"),
    (COOKIE, "short", "cookie_secret is shorter than 32"),
    ("https://id.example.test", "id.example.test", "must be an http"),
])
def test_values_streamlit_would_reject_at_login_are_refused_now(
        tmp_path: Path, old: str, new: str, message: str) -> None:
    write(tmp_path / "conf" / "oidc.toml", COMPLETE.replace(old, new))
    with pytest.raises(ConfigError, match=message):
        check(tmp_path, oidc_secrets_file="oidc.toml")


def test_a_named_provider_needs_its_own_section(tmp_path: Path) -> None:
    shared = COMPLETE.split("client_id")[0]
    write(tmp_path / "conf" / "oidc.toml", shared + '[auth.corp]\nclient_id = "fleet"\n')

    with pytest.raises(ConfigError, match=r"lacks corp\.client_secret, "
                                          r"corp\.server_metadata_url"):
        check(tmp_path, oidc_secrets_file="oidc.toml", oidc_provider="corp")
    with pytest.raises(ConfigError, match=r"no \[auth.okta\] section"):
        check(tmp_path, oidc_secrets_file="oidc.toml", oidc_provider="okta")


def test_a_secrets_file_streamlit_would_not_read_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "conf" / "oidc.secret", COMPLETE)
    with pytest.raises(ConfigError, match=r"must name a \.toml file, not oidc\.secret"):
        check(tmp_path, oidc_secrets_file="oidc.secret")


def test_a_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "oidc.toml").write_bytes(b"[auth]\nclient_id = '\xff'\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        check(tmp_path, oidc_secrets_file="oidc.toml")


def test_broken_toml_is_one_line(tmp_path: Path) -> None:
    write(tmp_path / "conf" / "oidc.toml", "[auth\nclient_id = 1\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        check(tmp_path, oidc_secrets_file="oidc.toml")


def test_without_authlib_it_says_which_extra_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oidc, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"needs Authlib: pip install -e '\.\[oidc\]'"):
        check(tmp_path)


def test_the_oidc_options_need_oidc_on() -> None:
    with pytest.raises(ValueError, match="need oidc: true"):
        DashboardAuth(oidc_secrets_file="oidc.toml")


def test_a_provider_name_streamlit_would_refuse_is_refused_in_the_config() -> None:
    with pytest.raises(ValueError, match="should match pattern"):
        DashboardAuth(oidc=True, oidc_provider="my_corp")
    assert DashboardAuth(oidc=True, oidc_provider="corp-sso").oidc_provider == "corp-sso"
