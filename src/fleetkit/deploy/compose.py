"""`fleet deploy compose`: a Docker Compose project for the fleet — PostgreSQL, one-shot
migrations and database roles, the sandbox broker, one service per bot — generated from the
fleet config.

Each bot connects as its own database role (docs/isolation.md), the metrics endpoint and the
dashboard as a read-only one, the rest as the owner. No password appears in a generated
file: each lives in `secrets/` (the generated secrets.sh creates them), is a Compose secret
given only to the services that connect with it, and reaches them as a file —
POSTGRES_PASSWORD_FILE, `database.password_file` in the config copy (the owner's),
FLEET_DB_PASSWORD_FILE (a bot's, the reader's).
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import yaml

from fleetkit.config.loader import LoadedConfig, parse_config
from fleetkit.config.models import BotSettings, FleetConfig
from fleetkit.core.errors import ConfigError
from fleetkit.deploy.files import Bundle, GeneratedFile
from fleetkit.deploy.learning import CONSTRAINTS, TORCH_BUILD, bot_list, constraints_text
from fleetkit.deploy.passwords import compose_secrets_script
from fleetkit.deploy.plugins import FleetPlugins, dockerfile_text, fleet_image, fleet_plugins
from fleetkit.deploy.role_env import comment as comment_lines
from fleetkit.deploy.spec import (
    BOTS_AFTER,
    DASHBOARD_PORT,
    METRICS_PORT,
    DbRoles,
    Process,
    bot_env_file,
    check_models_dirs,
    config_source_text,
    fleet_processes,
    learning_bots,
    learns,
    needs_broker,
    needs_internet,
    one_line,
    require_bots,
    source_name,
)

GENERATOR = "fleet deploy compose"
DEFAULT_IMAGE = "fleetkit:latest"
DB_USER = DB_NAME = "fleet"
DB_SECRET = "db_password"  # noqa: S105 - the secret's name; its value is never ours
SECRETS = "/run/secrets"  # where Compose mounts a service's secrets
# The dashboard's login files: Compose secrets from secrets/, never in the config directory.
DASHBOARD_USERS_SECRET = "dashboard_users"  # noqa: S105 - a secret's name
DASHBOARD_OIDC_SECRET = "dashboard_oidc.toml"  # noqa: S105 - a secret's name
SECRET_PATH = f"{SECRETS}/{DB_SECRET}"
DATABASE_URL = f"postgresql://{DB_USER}@postgres:5432/{DB_NAME}"
# Bots and readers name the server through Compose variables, so a host whose bots use a
# shared PostgreSQL sets FLEET_DB_HOST (and FLEET_DB_PORT) in .env, not in this file.
DB_ADDRESS = "${FLEET_DB_HOST:-postgres}:${FLEET_DB_PORT:-5432}"
# The roles one-shot finds every role's password here as <role>.password.
ROLE_PASSWORDS = SECRETS
CONFIG_DIR = "/etc/fleet"
HOME = "/var/lib/fleet"
PENDING_PROFILE = "pending"
SHARED = "x-fleet-service"
INTERNAL, OUTSIDE = "internal", "outside"  # networks: private to the fleet / with a way out
ENVIRONMENT = {"FLEET_CONFIG": f"{CONFIG_DIR}/fleet.yaml", "FLEET_HOME": HOME,
               "FLEET_LOG_FORMAT": "json"}
# The config's plugin modules: copied to config/plugins, on every fleet process's path.
PLUGINS_DIR = f"{CONFIG_DIR}/plugins"
# The plugin packages: built into the fleet's own image from image/ (never the project
# directory, which holds secrets/).
IMAGE_CONTEXT = "image"
PACKAGES_DIR = "/opt/fleet/packages"
# Learning bots: the ml extra goes into the fleet's own image too, built with torch's CPU
# build unless the operator's .env asks for another (a host with a GPU).
CONSTRAINTS_DIR = "/opt/fleet/constraints"
TORCH_BUILD_ARG = {TORCH_BUILD: "${FLEET_TORCH:-cpu}"}
HEALTHY = {"condition": "service_healthy"}
MIGRATED = {"condition": "service_completed_successfully"}


class _Dumper(yaml.SafeDumper):
    """Plain YAML: no anchors or aliases, even for repeated values."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _short_lists_inline(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    inline = all(isinstance(item, str | int) for item in data) and len(str(data)) <= 60
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=inline)


_Dumper.add_representer(list, _short_lists_inline)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=100)


def compose_bundle(loaded: LoadedConfig, *, image: str = DEFAULT_IMAGE,
                   roles: DbRoles | None = None) -> Bundle:
    require_bots(loaded)
    config = loaded.config
    roles = roles or DbRoles()
    role_names = roles.every(config)
    if DB_SECRET in role_names:
        raise ConfigError(f"a database role may not be named {DB_SECRET}: that is the owner's "
                          "secret here")
    plugins = fleet_plugins(loaded)
    learning = learning_bots(config)
    check_models_dirs(loaded, HOME)
    files = [GeneratedFile("docker-compose.yml", compose_text(loaded, image, roles, plugins)),
             GeneratedFile("config/fleet.yaml", compose_config_text(loaded)),
             GeneratedFile("secrets.sh", compose_secrets_script(
                 GENERATOR, (DB_SECRET, *(password_file(r) for r in role_names))), 0o755)]
    files += [GeneratedFile(f"env/{bot.name}.env",
                            bot_env_file(config, bot, GENERATOR, _database_lines(roles.bot(
                                bot.name))), mode=0o600, operator_edits=True)
              for bot in config.bots]
    files += [GeneratedFile(f"config/plugins/{f.path}", f.content) for f in plugins.modules]
    if plugins.packages or learning:
        files.append(GeneratedFile(f"{IMAGE_CONTEXT}/Dockerfile", dockerfile_text(
            plugins, GENERATOR, source_name(loaded), image, PACKAGES_DIR, learning=learning,
            constraints_dir=CONSTRAINTS_DIR)))
        files += [GeneratedFile(f"{IMAGE_CONTEXT}/packages/{f.path}", f.content)
                  for package in plugins.packages for f in package.files]
    if learning:
        files.append(GeneratedFile(f"{IMAGE_CONTEXT}/{CONSTRAINTS}",
                                   constraints_text(GENERATOR, source_name(loaded))))
    notes = ((f"{len(learning)} learning bot{'s' if len(learning) != 1 else ''} "
              f"({bot_list(learning)}): the fleet's image {fleet_image(config.fleet.name)} "
              f"adds the ml extra ({IMAGE_CONTEXT}/Dockerfile, torch's CPU build; `docker "
              "compose build`); a first start trains the models (seconds to minutes) into "
              f"the fleet-home volume",) if learning else ())
    # secrets/ and .env are the operator's: present is not foreign, whatever they hold.
    return Bundle(GENERATOR, tuple(files), operator_files=("secrets/", ".env"), notes=notes)


def password_file(role: str) -> str:
    """A role's password file under secrets/ (also its name inside the roles service)."""
    return f"{role}.password"


def _database_lines(role: str) -> tuple[str, ...]:
    return comment_lines(f"The database: this bot connects as its own role {role} "
                         "(FLEET_DB_URL and FLEET_DB_PASSWORD_FILE are set in "
                         f"docker-compose.yml); its password is secrets/{password_file(role)}, "
                         "never here.")


def compose_config_text(loaded: LoadedConfig) -> str:
    """The user's config with the database and broker addresses of the Compose project.

    A copy rather than the user's file mounted as is: inside Compose the database is the
    `postgres` service and the broker is `broker`, which the user's file cannot know.
    """
    raw = yaml.safe_load(config_source_text(loaded)) or {}
    database = {k: v for k, v in (raw.get("database") or {}).items()
                if k not in ("url", "password_file")}
    raw["database"] = {**database, "url": DATABASE_URL, "password_file": SECRET_PATH}
    port = loaded.config.sandbox.port
    raw["sandbox"] = {**(raw.get("sandbox") or {}), "host": "0.0.0.0",  # noqa: S104 - in a container
                      "url": f"http://broker:{port}"}
    auth_files = dashboard_secrets(loaded.config)
    if auth_files:
        dashboard = raw.get("dashboard") or {}
        auth = dashboard.get("auth") or {}
        if DASHBOARD_USERS_SECRET in auth_files:
            auth["users_file"] = f"{SECRETS}/{DASHBOARD_USERS_SECRET}"
        if DASHBOARD_OIDC_SECRET in auth_files:
            auth["oidc_secrets_file"] = f"{SECRETS}/{DASHBOARD_OIDC_SECRET}"
        raw["dashboard"] = {**dashboard, "auth": auth}
    header = "\n".join([
        f"# A copy of {source_name(loaded)} for Docker Compose, written by `{GENERATOR}`:",
        "# the database is the postgres service (password from the secret), the sandbox broker",
        "# the broker service. Edit your own config and regenerate rather than this copy.",
        f"# Its plugins: modules are copied to plugins/ here ({PLUGINS_DIR}, on PYTHONPATH); a",
        "# calendars.overrides_file goes next to it, in the directory mounted at /etc/fleet.",
        ""])
    text = header + _dump(raw)
    parse_config(text, "the generated config/fleet.yaml")  # still valid, or it is our bug
    return text


def compose_text(loaded: LoadedConfig, image: str, roles: DbRoles,
                 plugins: FleetPlugins | None = None) -> str:
    config = loaded.config
    plugins = plugins or FleetPlugins((), ())
    environment = _environment(plugins)
    fleet = one_line(config.fleet.name)
    learning = learning_bots(config)
    # The fleet's own image, FROM `image`: the plugin packages, the ml extra, or both.
    own_image = bool(plugins.packages or learning)
    lines = [
        f"# Docker Compose for fleet {fleet!r} ({len(config.bots)} bots), written by "
        f"`{GENERATOR}`",
        f"# from {source_name(loaded)}. Edit the config and regenerate rather than editing "
        "this file.",
        "#",
        "# Before the first `docker compose up -d` (see docs/deploy.md):",
        f"#   1. build the image from the fleetkit source tree:  docker build -t {image} .",
        *([f"#      then this fleet's own, {fleet_image(config.fleet.name)}: docker compose "
           "build", f"#      ({image} plus {_own_image_adds(plugins, learning)}: "
                    f"{IMAGE_CONTEXT}/Dockerfile)"]
          if own_image else []),
        "#   2. create the database passwords: sh secrets.sh  (one file per role in secrets/,",
        "#      random, never replacing one that is there: the owner's db_password, each bot's",
        f"#      {roles.bot_prefix}<bot>.password, the read-only {roles.reader}.password)",
        "#   3. fill in env/<bot>.env for bots that need credentials (live bots).",
        *_dashboard_steps(config),
        "# Then: docker compose up -d; the fleet's status: docker compose run --rm migrate status",
        "# Each bot connects as its own role and gets only its own password; `roles` creates",
        "# the roles (and sets each password to its file's) before any bot starts.",
        *_learning_header(learning),
        "",
        "# What every fleetkit container shares, merged into each of them below.",
        f"{SHARED}: &{SHARED}",
        *[f"  {line}" for line in _dump(_fleet_service(
            fleet_image(config.fleet.name) if own_image else image, environment,
            _build(plugins, learning))).splitlines()],
        "",
        "services:",
    ]
    for comment, name, spec, shared in _services(loaded, roles, environment):
        lines += [f"  # {line}" for c in comment for line in textwrap.wrap(c, 94)]
        lines += [f"  {name}:", *([f"    <<: *{SHARED}"] if shared else []),
                  *[f"    {line}" for line in _dump(spec).splitlines()]]
    lines.append(_dump({
        "networks": {INTERNAL: {"internal": True}, OUTSIDE: {}},
        "volumes": {"pgdata": {}, "fleet-home": {}},
        "secrets": {DB_SECRET: {"file": f"./secrets/{DB_SECRET}"},
                    **{r: {"file": f"./secrets/{password_file(r)}"}
                       for r in roles.every(config)},
                    **{name: {"file": f"./secrets/{name}"}
                       for name in dashboard_secrets(config)}},
    }).rstrip("\n"))
    return "\n".join(lines) + "\n"


def _own_image_adds(plugins: FleetPlugins, learning: tuple[str, ...]) -> str:
    return " and ".join([*(["the ml extra"] if learning else []),
                         *(["the plugin packages"] if plugins.packages else [])])


def _build(plugins: FleetPlugins, learning: tuple[str, ...]) -> str | dict[str, Any] | None:
    """How Compose builds the fleet's own image, if it has one: from image/ (never the
    project directory, which holds secrets/), with torch's build as an argument when it
    installs the ml extra."""
    if learning:
        return {"context": IMAGE_CONTEXT, "args": dict(TORCH_BUILD_ARG)}
    return IMAGE_CONTEXT if plugins.packages else None


def _learning_header(learning: tuple[str, ...]) -> list[str]:
    if not learning:
        return []
    text = (f"Learning bots ({bot_list(learning)}): the fleet's image adds the ml extra with "
            "torch's CPU build (for a GPU host, FLEET_TORCH=cuda in .env before building, "
            "and the GPU given to their services: docs/deploy.md). Their models live in the "
            f"fleet-home volume ({HOME}/models/<bot>/<timeframe>/ by default); a first start "
            "without them trains them before trading, for seconds to minutes, heartbeating "
            "`training` meanwhile.")
    return [f"# {line}" for line in textwrap.wrap(text, 92)]


def dashboard_secrets(config: FleetConfig) -> tuple[str, ...]:
    """The dashboard's login files, as Compose secrets: a users file, an OIDC [auth]
    section (always a file in Compose: Streamlit's default places are not in the image)."""
    auth = config.dashboard.auth
    return ((DASHBOARD_USERS_SECRET,) if auth.users_file else ()) + (
        (DASHBOARD_OIDC_SECRET,) if auth.oidc else ())


def _dashboard_steps(config: FleetConfig) -> list[str]:
    # Mode 644 like secrets.sh's files: Compose bind-mounts them with their host mode, and
    # the image reads them as a non-root user; secrets/ itself (0700) keeps them private.
    auth = config.dashboard.auth
    steps = []
    if auth.users_file:
        steps.append(f"copy the dashboard's users file ({auth.users_file}) to "
                     f"secrets/{DASHBOARD_USERS_SECRET}")
    if auth.oidc:
        steps.append(f"put the dashboard's OIDC [auth] section in "
                     f"secrets/{DASHBOARD_OIDC_SECRET} (docs/dashboard.md)")
    if steps:
        steps[-1] += "; chmod 644 it, as secrets.sh does with its files"
    return [f"#   {number}. {step}" for number, step in enumerate(steps, start=4)]


Service = tuple[list[str], str, dict[str, Any], bool]  # comment, name, spec, shares x-fleet
LEARNING_NOTE = ("Learning: needs the ml extra (in the fleet's image); without its models it "
                 "trains them first, into the fleet-home volume.")


def _environment(plugins: FleetPlugins) -> dict[str, str]:
    """Every fleet container's environment: with plugin modules, their directory on the path."""
    return {**ENVIRONMENT, "PYTHONPATH": PLUGINS_DIR} if plugins.modules else dict(ENVIRONMENT)


def _services(loaded: LoadedConfig, roles: DbRoles, environment: dict[str, str]
              ) -> list[Service]:
    config = loaded.config
    services: list[Service] = [
        (["PostgreSQL: the fleet's one database, on the private network only."],
         "postgres", _postgres(), False)]
    # Inside its container a process must listen on every interface to be reachable at
    # all; what leaves the host is decided by `ports` (none, or 127.0.0.1 only).
    every = "0.0.0.0"  # noqa: S104
    for process in fleet_processes(config, roles, ROLE_PASSWORDS, broker_args=("--host", every),
                                   dashboard_host=every):
        note = [f"NOTE: {process.off} (profile {PENDING_PROFILE})."] if process.off else []
        spec = _process(process, config.sandbox.port)
        spec.update(_process_database(process, roles, roles.every(config), environment))
        if process.name == "dashboard":
            spec["secrets"] = [*spec.get("secrets", []), *dashboard_secrets(config)]
        if process.name == "dashboard" and config.dashboard.auth.users_env:
            name = config.dashboard.auth.users_env
            # Interpolated by compose from the operator's environment or .env: the users'
            # hashes never land in a generated file.
            spec["environment"] = {**spec.get("environment", environment), name: (
                f"${{{name}:?set {name} to the lines of `fleet dashboard passwd NAME`}}")}
        services.append(([f"{process.description[0].upper()}{process.description[1:]}.", *note],
                         process.name, spec, True))
    stop_grace = f"{math.ceil(config.runtime.stop_timeout_s) + 5}s"
    services += [([f"bot {bot.name}: {bot.mode}, {bot.market}, {bot.strategy}; database role "
                   f"{roles.bot(bot.name)}.", *([LEARNING_NOTE] if learns(bot) else [])],
                  f"bot-{bot.name}", _bot(bot, stop_grace, roles.bot(bot.name), environment),
                  True)
                 for bot in config.bots]
    return services


def _postgres() -> dict[str, Any]:
    return {
        "image": "postgres:15",
        "environment": {"POSTGRES_USER": DB_USER, "POSTGRES_DB": DB_NAME,
                        "POSTGRES_PASSWORD_FILE": SECRET_PATH},
        "secrets": [DB_SECRET],
        "volumes": ["pgdata:/var/lib/postgresql/data"],
        "healthcheck": {"test": ["CMD", "pg_isready", "-U", DB_USER, "-d", DB_NAME],
                        "interval": "5s", "timeout": "5s", "retries": 12, "start_period": "10s"},
        "restart": "unless-stopped",
        "networks": [INTERNAL],
    }


def _fleet_service(image: str, environment: dict[str, str],
                   build: str | dict[str, Any] | None) -> dict[str, Any]:
    """What every fleetkit container shares: image (built from `build`, with plugin
    packages), config, home, hardening. Not a secret: each service names the ones it
    connects with, so a bot never gets the owner's."""
    return {
        "image": image,
        **({"build": build} if build else {}),
        "environment": dict(environment),
        "volumes": [f"./config:{CONFIG_DIR}:ro", f"fleet-home:{HOME}"],
        "read_only": True,
        "tmpfs": ["/tmp"],  # noqa: S108 - the container's own, private /tmp
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
    }


def _process(process: Process, broker_port: int) -> dict[str, Any]:
    # Jobs may reach exchanges, the notifier Telegram; the dashboard has a published port.
    outside = process.name in ("scheduler", "notifier", "dashboard")
    spec: dict[str, Any] = {"command": list(process.args),
                            "networks": [INTERNAL, OUTSIDE] if outside else [INTERNAL]}
    spec["restart"] = "no" if process.oneshot else "unless-stopped"
    spec["depends_on"] = {"postgres": dict(HEALTHY),
                          **{name: dict(MIGRATED) for name in process.after}}
    if process.off:
        spec["profiles"] = [PENDING_PROFILE]
    if process.name == "broker":
        probe = ("import urllib.request as u; "
                 f"u.urlopen('http://127.0.0.1:{broker_port}/v1/health', timeout=3)")
        spec["healthcheck"] = {"test": ["CMD", "python", "-c", probe], "interval": "5s",
                               "timeout": "5s", "retries": 12, "start_period": "10s"}
    if process.name == "dashboard":
        spec["ports"] = [f"127.0.0.1:{DASHBOARD_PORT}:{DASHBOARD_PORT}"]  # this host only
    if process.name == "metrics":
        spec["ports"] = [f"127.0.0.1:{METRICS_PORT}:{METRICS_PORT}"]  # Prometheus on this host
    return spec


def _process_database(process: Process, roles: DbRoles, role_names: tuple[str, ...],
                      environment: dict[str, str]) -> dict[str, Any]:
    """The secrets (and, for the reader, the environment) a fleet process connects with."""
    if process.login == "reader":
        return {"environment": _role_environment(roles.reader, environment),
                "secrets": [roles.reader]}
    if process.name != "roles":
        return {"secrets": [DB_SECRET]}
    # `fleet db roles --passwords-from /run/secrets` reads <role>.password for each role.
    return {"secrets": [DB_SECRET, *({"source": r, "target": f"{ROLE_PASSWORDS}/"
                                                             f"{password_file(r)}"}
                                     for r in role_names)]}


def _role_environment(role: str, environment: dict[str, str]) -> dict[str, str]:
    """The shared environment plus the role's URL and password file: FLEET_DB_URL wins over
    the config copy's database.url (the owner's), and its password comes from the file."""
    return {**environment, "FLEET_DB_URL": f"postgresql://{role}@{DB_ADDRESS}/{DB_NAME}",
            "FLEET_DB_PASSWORD_FILE": f"{SECRETS}/{role}"}


def _bot(bot: BotSettings, stop_grace: str, role: str, environment: dict[str, str]
         ) -> dict[str, Any]:
    networks = [INTERNAL, OUTSIDE] if needs_internet(bot) else [INTERNAL]  # exchanges
    spec: dict[str, Any] = {"command": ["bot", "run", bot.name], "networks": networks}
    spec["env_file"] = [f"env/{bot.name}.env"]
    spec["environment"] = _role_environment(role, environment)
    spec["secrets"] = [role]  # its own password, and no other
    spec["restart"] = "unless-stopped"
    spec["stop_grace_period"] = stop_grace
    spec["depends_on"] = {"postgres": dict(HEALTHY),
                          **{name: dict(MIGRATED) for name in BOTS_AFTER}}
    if needs_broker(bot):
        spec["depends_on"]["broker"] = dict(HEALTHY)
    return spec
