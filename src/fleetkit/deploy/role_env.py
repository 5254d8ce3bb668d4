"""Environment-file lines that point a process at its own database role: FLEET_DB_URL
naming the role (never a password), filled in from the config or left as a template."""

from __future__ import annotations

import textwrap

from sqlalchemy.engine import make_url


def role_env_lines(config_url: str | None, role: str, who: str,
                   password_note: str) -> tuple[str, ...]:
    """Filled in when the config's database.url is PostgreSQL (the same server, this role);
    else a commented template: on SQLite there are no roles and it must stay unset."""
    url = role_url(config_url, role)
    intro = comment(f"The database: on PostgreSQL {who} as the role {role}; {password_note}.")
    if url is not None:
        return (*intro, "# The server is the one in fleet.yaml (database.url):",
                f"FLEET_DB_URL={url}")
    return (*intro, *comment("fleet.yaml has no PostgreSQL database.url: with PostgreSQL, "
                             "uncomment this line and set HOST; with SQLite leave it as it "
                             "is."),
            f"# FLEET_DB_URL=postgresql://{role}@HOST:5432/fleet")


def role_url(config_url: str | None, role: str) -> str | None:
    """The config's PostgreSQL URL with `role` as its user (a YAML URL holds no password)."""
    if not config_url:
        return None
    url = make_url(config_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(username=role, password=None).render_as_string(hide_password=False)


def comment(text: str) -> tuple[str, ...]:
    """`text` as `# ` lines that fit a terminal."""
    return tuple(f"# {line}" for line in textwrap.wrap(text, 88))
