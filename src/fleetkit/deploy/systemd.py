"""`fleet deploy systemd`: units for one host — a bot template (`fleet-bot@NAME`), the broker,
a one-shot migration, the fleet's other processes and a `fleet.target` — with restart,
resource limits and hardening, plus env files and an install script.

Each host runs what is enabled into the target, so several hosts can share one database,
each running a subset of the bots (a bot's lease in the database stops a second copy).

On PostgreSQL each bot connects as its own role and the metrics and dashboard as a read-only
one (docs/isolation.md): every role's password is a root-only file in /etc/<prefix>/db that
systemd hands to the one unit that needs it (LoadCredential=), and `<prefix>-roles.service`
creates the roles with those passwords before any bot starts.
"""

from __future__ import annotations

import dataclasses
import math
import re
import textwrap
from dataclasses import dataclass, field

from fleetkit.config.loader import LoadedConfig
from fleetkit.config.models import FleetConfig
from fleetkit.deploy.files import Bundle, GeneratedFile
from fleetkit.deploy.learning import CONSTRAINTS, bot_list, constraints_text
from fleetkit.deploy.learning import install_lines as install_ml_lines
from fleetkit.deploy.oncalendar import on_calendar
from fleetkit.deploy.passwords import install_password_files
from fleetkit.deploy.plugins import (
    PLUGIN_INSTALLER,
    FleetPlugins,
    fleet_plugins,
    install_plugin_lines,
    plugin_install_script,
)
from fleetkit.deploy.role_env import role_env_lines
from fleetkit.deploy.spec import (
    BOTS_AFTER,
    DbRoles,
    Process,
    bot_env_file,
    check_models_dirs,
    config_source_text,
    fleet_processes,
    learning_bots,
    needs_broker,
    one_line,
    require_bots,
    source_name,
)

GENERATOR = "fleet deploy systemd"
Section = tuple[str, list[tuple[str, str]]]

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_JOB_UNIT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # "job-" + a config job name
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")
_CALENDAR = re.compile(r"^[A-Za-z0-9*:/,.~ -]+$")


@dataclass(frozen=True, slots=True)
class SystemdOptions:
    prefix: str = "fleet"
    user: str = "fleet"
    home: str = "/var/lib/fleet"
    fleet_bin: str = "/opt/fleetkit/bin/fleet"
    roles: DbRoles = field(default_factory=DbRoles)
    python_path: str = ""  # PYTHONPATH of every unit: the plugin modules' directory, if any

    def __post_init__(self) -> None:
        if not _NAME.match(self.prefix):
            raise ValueError(f"--prefix {self.prefix!r}: lowercase letters, digits and '-', "
                             "starting with a letter")
        if not _USER.match(self.user):
            raise ValueError(f"--user {self.user!r} is not a system user name")
        for option, path in (("--home", self.home), ("--fleet-bin", self.fleet_bin)):
            if not _PATH.match(path) or "/.." in path or path == "/":
                raise ValueError(f"{option} {path!r}: an absolute path of letters, digits, "
                                 "'.', '_', '-' and '/'")

    @property
    def etc(self) -> str:
        """Where the config and env files live on the host."""
        return f"/etc/{self.prefix}"

    @property
    def plugins_dir(self) -> str:
        """The config's plugin modules, on every unit's PYTHONPATH."""
        return f"{self.etc}/plugins"

    @property
    def python(self) -> str:
        """The Python of the virtualenv `fleet_bin` belongs to: plugin packages go there."""
        return f"{self.fleet_bin.rsplit('/', 1)[0]}/python"

    @property
    def target(self) -> str:
        return f"{self.prefix}.target"

    @property
    def db_dir(self) -> str:
        """The database password files, one `<role>.password` each: root's only."""
        return f"{self.etc}/db"

    def password_file(self, role: str) -> str:
        return f"{self.db_dir}/{role}.password"

    def unit(self, name: str) -> str:
        return f"{self.prefix}-{name}.service"


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """A job the scheduler would run, as a systemd timer plus a one-shot service."""

    name: str
    on_calendar: str  # systemd calendar expression, e.g. "daily" or "*-*-* 02:30:00"
    args: tuple[str, ...]  # after `fleet`
    description: str

    def __post_init__(self) -> None:
        if not _JOB_UNIT.match(self.name):
            raise ValueError(f"job name {self.name!r}: lowercase letters, digits, '-' and "
                             "'_', starting with a letter or digit")
        if not _CALENDAR.match(self.on_calendar):
            raise ValueError(f"job {self.name}: {self.on_calendar!r} is not a calendar expression")


@dataclass(frozen=True, slots=True)
class Limits:
    memory_max: str
    cpu_quota: str
    tasks_max: int


BOT_LIMITS = Limits("512M", "50%", 64)
# A learning bot's first start trains its models in a child process of the same unit: about
# 630 MB at the peak for the demo's TFT (rl-nifty; rl-btc's MLP 500 MB), beside the bot
# itself (300 MB once torch is loaded). Under a plain bot's 512M the kernel would kill the
# training and the bot would halt without a model. A drop-in per learning bot raises them.
LEARNING_BOT_LIMITS = Limits("2G", "100%", 128)
LEARNING_DROP_IN = "learning-bot.conf"
PROCESS_LIMITS = Limits("1G", "100%", 128)


def render_unit(sections: list[Section], comments: tuple[str, ...] = ()) -> str:
    out = [f"# {line}" for c in comments for line in textwrap.wrap(c, 96)]
    for name, entries in sections:
        if out:
            out.append("")
        out.append(f"[{name}]")
        out += [f"{key}={value}" for key, value in entries]
    return "\n".join(out) + "\n"


def systemd_bundle(loaded: LoadedConfig, options: SystemdOptions,
                   jobs: tuple[ScheduledJob, ...] | None = None) -> Bundle:
    """`jobs`: the timers to write; by default one per cron job in the config."""
    require_bots(loaded)
    config = loaded.config
    options.roles.every(config)  # every role name valid, or refused before writing anything
    if jobs is None:
        jobs = timer_jobs(config)[0]
    check_models_dirs(loaded, options.home)
    plugins = fleet_plugins(loaded)
    if plugins.modules:
        options = dataclasses.replace(options, python_path=options.plugins_dir)
    header = _header(loaded)
    units = [_bot_template(loaded, options, header), _target(loaded, options, header)]
    units += [_process_unit(loaded, options, p, header) for p in _processes(loaded, options)]
    for job in jobs:
        units += job_units(options, job, header)
    files = sorted(units, key=lambda f: f.path)
    files += [GeneratedFile("fleet.yaml", config_source_text(loaded)),
              GeneratedFile("fleet.env", _shared_env(options), 0o600, operator_edits=True),
              GeneratedFile("reader.env", _reader_env(loaded, options), 0o600,
                            operator_edits=True),
              GeneratedFile("install.sh", install_script(loaded, options, plugins), 0o755)]
    files += [GeneratedFile(f"plugins/{f.path}", f.content) for f in plugins.modules]
    learning = learning_bots(config)
    if learning:
        files += [GeneratedFile(CONSTRAINTS, constraints_text(GENERATOR, source_name(loaded))),
                  GeneratedFile(LEARNING_DROP_IN, _learning_drop_in(options, header))]
    if plugins.packages:
        files.append(GeneratedFile(PLUGIN_INSTALLER, plugin_install_script(
            plugins, GENERATOR, source_name(loaded), options.python), 0o755))
        files += [GeneratedFile(f"packages/{f.path}", f.content)
                  for package in plugins.packages for f in package.files]
    files += [GeneratedFile(f"bots/{bot.name}.env", bot_env_file(
                  config, bot, GENERATOR, _bot_database_lines(loaded, options, bot.name)),
                            0o600, operator_edits=True) for bot in config.bots]
    notes = ((f"{len(learning)} learning bot{'s' if len(learning) != 1 else ''} "
              f"({bot_list(learning)}): install.sh installs the ml extra (torch's CPU build) "
              f"into {options.python}'s virtualenv and gives their units "
              f"{LEARNING_BOT_LIMITS.memory_max} of memory; a first start trains the models "
              f"(seconds to minutes) into {options.home}",) if learning else ())
    return Bundle(GENERATOR, tuple(files), notes=notes)


def _processes(loaded: LoadedConfig, options: SystemdOptions) -> tuple[Process, ...]:
    # %d: the unit's credentials directory, where LoadCredential= puts <role>.password.
    processes = fleet_processes(loaded.config, options.roles, "%d")
    left = scheduler_work(loaded.config)
    return tuple(dataclasses.replace(p, off=None if left else TIMERS_NOTE)
                 if p.name == "scheduler" and not p.off else p for p in processes)


TIMERS_NOTE = ("every job runs from its own timer (fleet-job-*.timer) and there are no "
               "market-hours services: generated, but not started by default")


def timer_jobs(config: FleetConfig) -> tuple[tuple[ScheduledJob, ...], tuple[str, ...]]:
    """A timer for each enabled cron job; the names of the jobs left to the scheduler
    service (market-calendar jobs, cron lines with no OnCalendar form)."""
    timers: list[ScheduledJob] = []
    left: list[str] = []
    for job in config.jobs:
        if not job.enabled:
            continue
        try:
            calendar = on_calendar(job)
        except ValueError:
            left.append(job.name)
            continue
        timers.append(ScheduledJob(f"job-{job.name}", calendar, ("scheduler", "tick", job.name),
                                   f"job {job.name}: fleet {one_line(job.command)}"))
    return tuple(timers), tuple(left)


def scheduler_work(config: FleetConfig) -> tuple[str, ...]:
    """What still needs `fleet scheduler run` on a systemd host: jobs without a timer and
    market-hours services."""
    return (*timer_jobs(config)[1], *(f"service {s.name}" for s in config.services
                                      if s.enabled))


def _header(loaded: LoadedConfig) -> tuple[str, ...]:
    return (f"Written by `{GENERATOR}` from {source_name(loaded)}: edit the config and "
            "regenerate,",
            "or override with `systemctl edit` drop-ins rather than editing this file.")


def _unit_section(description: str, options: SystemdOptions, *, after: tuple[str, ...] = (),
                  wants: tuple[str, ...] = ()) -> Section:
    database = ("network-online.target", "postgresql.service")
    return ("Unit", [
        ("Description", description),
        ("After", " ".join((*database, *after))),
        ("Wants", " ".join((*database, *wants))),
        ("PartOf", options.target),
        # Never give up restarting: a database outage at boot can outlast any burst limit.
        ("StartLimitIntervalSec", "0"),
    ])


def _service_section(options: SystemdOptions, exec_args: str, env_files: tuple[str, ...],
                     limits: Limits, *, oneshot: bool = False, remain_after_exit: bool = True,
                     stop_timeout_s: float = 8.0,
                     credentials: tuple[tuple[str, str], ...] = ()) -> Section:
    entries = [("Type", "oneshot" if oneshot else "exec")]
    if oneshot and remain_after_exit:
        # Units ordered after it start once it has succeeded, and it counts as done.
        entries.append(("RemainAfterExit", "yes"))
    entries += [
        ("User", options.user),
        ("Group", options.user),
        ("WorkingDirectory", options.home),
        ("Environment", f"FLEET_HOME={options.home} FLEET_CONFIG={options.etc}/fleet.yaml "
                        "FLEET_LOG_FORMAT=json PYTHONUNBUFFERED=1"
                        + (f" PYTHONPATH={options.python_path}" if options.python_path else "")),
        *[("EnvironmentFile", f) for f in env_files],
        *credentials,
        ("ExecStart", f"{options.fleet_bin} {exec_args}"),
        ("SyslogIdentifier", "%N"),
    ]
    if oneshot:
        entries.append(("TimeoutStartSec", "300"))
    else:
        entries += [("Restart", "on-failure"), ("RestartSec", "5"),
                    ("TimeoutStopSec", str(math.ceil(stop_timeout_s) + 5))]
    entries += [
        ("MemoryMax", limits.memory_max),
        ("CPUQuota", limits.cpu_quota),
        ("TasksMax", str(limits.tasks_max)),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("ReadWritePaths", options.home),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("UMask", "0027"),
    ]
    return ("Service", entries)


def _install(options: SystemdOptions) -> Section:
    return ("Install", [("WantedBy", options.target)])


def _bot_template(loaded: LoadedConfig, options: SystemdOptions,
                  header: tuple[str, ...]) -> GeneratedFile:
    before = tuple(options.unit(name) for name in BOTS_AFTER)
    sections = [
        _unit_section(f"{one_line(loaded.config.fleet.name)} bot %i", options,
                      after=(*before, options.unit("broker")), wants=before),
        _service_section(options, "bot run %i",
                         (f"-{options.etc}/fleet.env", f"{options.etc}/bots/%i.env"),
                         BOT_LIMITS, stop_timeout_s=loaded.config.runtime.stop_timeout_s,
                         credentials=_password_credential(
                             options.password_file(f"{options.roles.bot_prefix}%i"))),
        _install(options),
    ]
    comments = (*header, f"One bot per instance: systemctl enable --now "
                         f"{options.prefix}-bot@NAME.service")
    return GeneratedFile(f"units/{options.prefix}-bot@.service", render_unit(sections, comments))


def _process_unit(loaded: LoadedConfig, options: SystemdOptions, process: Process,
                  header: tuple[str, ...]) -> GeneratedFile:
    fleet = one_line(loaded.config.fleet.name)
    after = tuple(options.unit(name) for name in process.after)
    env_files, credentials = _database_access(loaded, options, process)
    sections = [
        _unit_section(f"{fleet} {process.description}", options, after=after, wants=after),
        _service_section(options, " ".join(process.args), env_files,
                         PROCESS_LIMITS, oneshot=process.oneshot,
                         stop_timeout_s=loaded.config.runtime.stop_timeout_s,
                         credentials=credentials),
        _install(options),
    ]
    comments = (*header, *((f"NOTE: {process.off}.",) if process.off else ()))
    return GeneratedFile(f"units/{options.unit(process.name)}", render_unit(sections, comments))


def _database_access(loaded: LoadedConfig, options: SystemdOptions, process: Process
                     ) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The env files and credentials a process connects with: the owner's from fleet.env
    (the roles one-shot also gets every role's password), the reader's from reader.env."""
    shared = f"-{options.etc}/fleet.env"
    if process.login == "reader":
        return ((shared, f"{options.etc}/reader.env"),
                _password_credential(options.password_file(options.roles.reader)))
    if process.name == "roles":
        return ((shared,), tuple(("LoadCredential", f"{role}.password:"
                                                    f"{options.password_file(role)}")
                                 for role in options.roles.every(loaded.config)))
    return (shared,), ()


def _password_credential(path: str) -> tuple[tuple[str, str], ...]:
    """The password file handed to the service by systemd, which reads it as root: the file
    stays root's only (mode 0600) and no other unit, so no other bot, can read it."""
    return (("LoadCredential", f"db:{path}"),
            ("Environment", "FLEET_DB_PASSWORD_FILE=%d/db"))


def _learning_drop_in(options: SystemdOptions, header: tuple[str, ...]) -> str:
    """Installed as each learning bot's own drop-in (`<prefix>-bot@NAME.service.d/`): the
    template stays one for every bot."""
    limits = LEARNING_BOT_LIMITS
    return render_unit([("Service", [("MemoryMax", limits.memory_max),
                                     ("CPUQuota", limits.cpu_quota),
                                     ("TasksMax", str(limits.tasks_max))])],
                       (*header, f"A learning bot's limits, over {options.prefix}-bot@.service's: "
                                 "its first start trains its models in a child process of "
                                 "the unit (about 600 MB at the peak, beside the bot's own "
                                 "300 MB with torch loaded)."))


def _target(loaded: LoadedConfig, options: SystemdOptions,
            header: tuple[str, ...]) -> GeneratedFile:
    sections: list[Section] = [
        ("Unit", [("Description", f"{one_line(loaded.config.fleet.name)} trading fleet")]),
        ("Install", [("WantedBy", "multi-user.target")]),
    ]
    comments = (*header, "This host runs what is enabled into this target (systemctl enable "
                         "UNIT): see install.sh.")
    return GeneratedFile(f"units/{options.target}", render_unit(sections, comments))


def job_units(options: SystemdOptions, job: ScheduledJob,
              header: tuple[str, ...] = ()) -> list[GeneratedFile]:
    """A scheduled job as a timer and the one-shot service it starts. Persistent: a run
    missed while the host was down happens at the next boot."""
    service = options.unit(job.name)
    timer = service.removesuffix(".service") + ".timer"
    service_sections = [
        _unit_section(job.description, options, after=(options.unit("migrate"),)),
        _service_section(options, " ".join(job.args), (f"-{options.etc}/fleet.env",),
                         # Not "active" after its run, or the timer could never start it again.
                         PROCESS_LIMITS, oneshot=True, remain_after_exit=False),
    ]
    timer_sections: list[Section] = [
        ("Unit", [("Description", f"{job.description} (timer)"), ("PartOf", options.target)]),
        # AccuracySec: systemd's default lets a timer fire up to a minute late, which the
        # scheduler would count as a missed period.
        ("Timer", [("OnCalendar", job.on_calendar), ("AccuracySec", "1s"),
                   ("Persistent", "true"), ("Unit", service)]),
        _install(options),
    ]
    return [GeneratedFile(f"units/{service}", render_unit(service_sections, header)),
            GeneratedFile(f"units/{timer}", render_unit(timer_sections, header))]


def _shared_env(options: SystemdOptions) -> str:
    return "\n".join([
        f"# Environment of every fleet process on this host, installed as {options.etc}/"
        "fleet.env",
        "# (mode 600, read by systemd as root). Yours once you fill it in: regenerating keeps it.",
        "# The database: set database.url (and password_file) in fleet.yaml, or the whole URL",
        "# here — a URL with its password belongs here, never in fleet.yaml. For example:",
        "# FLEET_DB_URL=postgresql://fleet:PASSWORD@127.0.0.1:5432/fleet",
        "# That is the owner's (migrations, roles, broker, scheduler). On PostgreSQL each bot",
        f"# connects as its own role instead (FLEET_DB_URL in {options.etc}/bots/NAME.env, "
        "which wins),",
        f"# and the metrics and dashboard as {options.roles.reader} ({options.etc}/reader.env).",
    ]) + "\n"


def _reader_env(loaded: LoadedConfig, options: SystemdOptions) -> str:
    return "\n".join([
        "# Environment of the fleet's read-only processes on this host (metrics, dashboard),",
        f"# installed as {options.etc}/reader.env (mode 600, read by systemd as root, after "
        "fleet.env).",
        "# Yours once you fill it in: regenerating keeps it.",
        *_role_lines(loaded, options, options.roles.reader, "they connect"),
    ]) + "\n"


def _bot_database_lines(loaded: LoadedConfig, options: SystemdOptions,
                        bot_name: str) -> tuple[str, ...]:
    return _role_lines(loaded, options, options.roles.bot(bot_name), "this bot connects")


def _role_lines(loaded: LoadedConfig, options: SystemdOptions, role: str,
                who: str) -> tuple[str, ...]:
    return role_env_lines(loaded.config.database.url, role, who,
                          f"systemd hands it the password from {options.password_file(role)} "
                          "(root's only, never here)")


def install_script(loaded: LoadedConfig, options: SystemdOptions,
                   plugins: FleetPlugins | None = None) -> str:
    """Copies everything into place (never over env files the operator filled in) and says
    what to enable; DRY_RUN=1 only prints."""
    o = options
    plugins = plugins or FleetPlugins((), ())
    bots = " ".join(b.name for b in loaded.config.bots)
    broker = any(needs_broker(b) for b in loaded.config.bots)
    enable = [o.unit(p.name) for p in _processes(loaded, options)
              if not p.off and (p.name != "broker" or broker)]
    enable += [o.unit(job.name).removesuffix(".service") + ".timer"
               for job in timer_jobs(loaded.config)[0]]
    return "\n".join([
        "#!/bin/sh",
        f"# Installs the units written by `{GENERATOR}` from {source_name(loaded)}.",
        "# Run as root from this directory: sh install.sh    (DRY_RUN=1 sh install.sh only "
        "prints)",
        "set -eu",
        'cd "$(dirname "$0")"',
        'run() { echo "+ $*"; [ "${DRY_RUN:-0}" = 1 ] || "$@"; }',
        f"id -u {o.user} >/dev/null 2>&1 || run useradd --system --user-group --home-dir "
        f"{o.home} --shell /usr/sbin/nologin {o.user}",
        f"run install -d -o {o.user} -g {o.user} -m 0750 {o.home}",
        f"run install -d -m 0755 {o.etc}",
        f"run install -d -m 0700 {o.etc}/bots",
        f"cmp -s fleet.yaml {o.etc}/fleet.yaml || run install -b -m 0644 fleet.yaml "
        f"{o.etc}/fleet.yaml  # the old one kept as fleet.yaml~",
        f"[ -e {o.etc}/fleet.env ] || run install -m 0600 fleet.env {o.etc}/fleet.env",
        f"for bot in {bots}; do",
        f'  [ -e "{o.etc}/bots/$bot.env" ] || '
        f'run install -m 0600 "bots/$bot.env" "{o.etc}/bots/$bot.env"',
        "done",
        f"[ -e {o.etc}/reader.env ] || run install -m 0600 reader.env {o.etc}/reader.env",
        *install_password_files(o.db_dir, o.roles.every(loaded.config)),
        *_install_learning_lines(loaded, options),
        *install_plugin_lines(plugins, o.plugins_dir, o.python),
        "run install -m 0644 units/* /etc/systemd/system/",
        "run systemctl daemon-reload",
        f'echo "Installed. Set the database in {o.etc}/fleet.env or {o.etc}/fleet.yaml; on '
        f'PostgreSQL check FLEET_DB_URL"',
        f'echo "(each bot\'s own role) in {o.etc}/bots/*.env and {o.etc}/reader.env; fill in '
        'live bots\' credentials there,"',
        'echo "then enable what this host runs (each host a subset of the bots, if you like):"',
        f'echo "  systemctl enable --now {" ".join(enable)}"',
        f"echo '  for bot in {bots}; do systemctl enable --now {o.prefix}-bot@$bot.service; "
        "done'",
        f'echo "  systemctl enable --now {o.target}"',
    ]) + "\n"



def _install_learning_lines(loaded: LoadedConfig, options: SystemdOptions) -> list[str]:
    """The ml extra for the learning bots, and their drop-in (none without learning bots)."""
    learning = learning_bots(loaded.config)
    if not learning:
        return []
    o = options
    drop_in = f"/etc/systemd/system/{o.prefix}-bot@$bot.service.d"
    return [*install_ml_lines(learning, o.python),
            f"for bot in {' '.join(learning)}; do  # more memory for their first training",
            f'  run install -d -m 0755 "{drop_in}"',
            f'  run install -m 0644 {LEARNING_DROP_IN} "{drop_in}/learning.conf"',
            "done"]
