"""Host security: failed SSH logins from journald and fail2ban's jails, as findings and a summary.

Parsing is pure (tests feed recorded output); the readers run `journalctl` and
`fail2ban-client` through an injectable `Runner`. A source this host lacks, or may not read
(fail2ban-client needs root, journald needs the systemd-journal or adm group), becomes a
`SkipReason` and one info finding: the other checks still run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetkit.core.alerts import Finding, Severity
from fleetkit.core.durations import format_duration

MONITOR = "security"
SSH_KEY = "ssh:failed_logins"
FAIL2BAN_KEY = "fail2ban"

# argv and timeout in seconds -> stdout, or None when the program is not installed. A
# program that runs but fails raises CommandFailed.
Runner = Callable[[Sequence[str], float], str | None]


class CommandFailed(Exception):
    """A command ran but gave no usable output (non-zero exit, timeout, refused)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SkipReason:
    """Why a source was not checked on this host ("journalctl not found on this host")."""

    reason: str


@dataclass(frozen=True, slots=True)
class FailedLogin:
    at: datetime
    user: str | None
    address: str | None
    message: str
    kind: str = ""  # failed_password, failed_publickey, invalid_user, pam, closed_preauth
    pid: int | None = None  # sshd's per-connection process: joins one attempt's lines


@dataclass(frozen=True, slots=True)
class FailedLogins:
    entries: tuple[FailedLogin, ...] = ()
    malformed: int = 0  # journal lines that were not readable entries, skipped


@dataclass(frozen=True, slots=True)
class JailStatus:
    jail: str
    currently_failed: int
    total_failed: int
    currently_banned: int
    total_banned: int
    banned_ips: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SecurityThresholds:
    failed_logins_warning: int = 20  # failed attempts per window
    window_s: float = 900.0

    def __post_init__(self) -> None:
        if self.failed_logins_warning < 1:
            raise ValueError("failed_logins_warning must be at least 1, "
                             f"got {self.failed_logins_warning}")
        if self.window_s <= 0:
            raise ValueError(f"window_s must be positive, got {self.window_s}")


# --- journald ---------------------------------------------------------------------------

SSHD_IDENTIFIERS = frozenset({"sshd", "sshd-session"})  # OpenSSH 9.8+ logs as sshd-session
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_USER_FROM = r"(?P<user>.*?) from (?P<address>\S+)"
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # "none" is left out: clients probe with it before every real login.
    ("failed", re.compile(r"^Failed (?P<method>password|publickey|keyboard-interactive/pam) "
                          rf"for (?:invalid user )?{_USER_FROM} port \d+")),
    ("invalid_user", re.compile(rf"^Invalid user {_USER_FROM}(?: port \d+)?\s*$")),
    ("pam", re.compile(r"authentication failure;.*\brhost=(?P<address>\S*)"
                       r"(?:\s+user=(?P<user>\S+))?")),
    ("closed_preauth", re.compile(r"^Connection closed by (?:invalid|authenticating) user "
                                  r"(?P<user>.*?) (?P<address>\S+) port \d+ \[preauth\]")),
)


def parse_journal_json(lines: Iterable[str]) -> FailedLogins:
    """Failed logins in `journalctl -o json` output (one object per line). Lines that are
    not entries are counted in `malformed` and skipped; sshd lines that are not failures
    and other programs' lines are ignored."""
    entries: list[FailedLogin] = []
    malformed = 0
    for line in lines:
        text = line.strip()
        if not text or text.startswith("-- "):  # "-- No entries --" and other markers
            continue
        try:
            entry = json.loads(text)
        except ValueError:
            malformed += 1
            continue
        if not isinstance(entry, dict):
            malformed += 1
            continue
        try:
            parsed = _failed_login(entry)
        except _MalformedEntry:
            malformed += 1
            continue
        if parsed is not None:
            entries.append(parsed)
    return FailedLogins(tuple(entries), malformed)


class _MalformedEntry(Exception):
    pass


def _failed_login(entry: dict[str, Any]) -> FailedLogin | None:
    idents = _values(entry.get("SYSLOG_IDENTIFIER")) + _values(entry.get("_COMM"))
    if not SSHD_IDENTIFIERS.intersection(idents):
        return None
    messages = _values(entry.get("MESSAGE"))
    at = _timestamp(entry.get("__REALTIME_TIMESTAMP"))
    if not messages or at is None:
        raise _MalformedEntry
    message = messages[0]
    for kind, pattern in _PATTERNS:
        match = pattern.search(message)
        if match:
            if kind == "failed":
                kind = "failed_" + match["method"].split("/")[0]
            return FailedLogin(at, match["user"] or None, match["address"] or None, message,
                               kind, _pid(entry.get("_PID")))
    return None


def _values(value: Any) -> list[str]:
    """A journal field as text. journald writes a non-UTF-8 value as an array of byte values,
    and a field set several times in one entry as an array of such values."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if value and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255
                         for b in value):
            return [bytes(value).decode("utf-8", errors="replace")]
        texts: list[str] = []
        for item in value:
            if isinstance(item, str | list):
                texts.extend(_values(item))
        return texts
    return []


def _timestamp(value: Any) -> datetime | None:
    """`__REALTIME_TIMESTAMP`: microseconds since the epoch, as a decimal string."""
    try:
        return _EPOCH + timedelta(microseconds=int(value))
    except (TypeError, ValueError, OverflowError):
        return None


def _pid(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def journal_command(since: datetime) -> list[str]:
    if since.tzinfo is None:
        raise ValueError("since must be timezone-aware")
    # Matches on one field are OR'ed; "+" ORs the _COMM group with the identifier group.
    # --output-fields keeps a day of a brute-forced host's lines small (journalctl adds the
    # timestamp and cursor fields anyway; systemd 236+).
    return ["journalctl", "-o", "json", "--no-pager", "--since", f"@{int(since.timestamp())}",
            "--output-fields=MESSAGE,SYSLOG_IDENTIFIER,_COMM,_PID",
            "SYSLOG_IDENTIFIER=sshd", "SYSLOG_IDENTIFIER=sshd-session", "+",
            "_COMM=sshd", "_COMM=sshd-session"]


def read_failed_logins(since: datetime, runner: Runner | None = None, *,
                       timeout_s: float = 30.0) -> FailedLogins | SkipReason:
    output = _run(runner or default_runner, journal_command(since), timeout_s)
    return output if isinstance(output, SkipReason) else parse_journal_json(
        output.splitlines())


def failed_attempts(entries: Iterable[FailedLogin]) -> list[FailedLogin]:
    """One line per failed attempt. sshd logs one attempt several times ("Invalid user",
    the PAM failure, "Failed password", "Connection closed ... [preauth]"), all from the
    connection's process: a connection counts its "Failed ..." lines, or once if it has
    none. Lines without a pid count one each."""
    connections: dict[tuple[int, str | None], list[FailedLogin]] = {}
    attempts: list[FailedLogin] = []
    for entry in entries:
        if entry.pid is None:
            attempts.append(entry)
        else:
            connections.setdefault((entry.pid, entry.address), []).append(entry)
    for lines in connections.values():
        failures = [line for line in lines if line.kind.startswith("failed_")]
        attempts.extend(failures or lines[:1])
    return sorted(attempts, key=lambda attempt: attempt.at)


# --- fail2ban ---------------------------------------------------------------------------

def _tree_fields(text: str) -> dict[str, str]:
    """`fail2ban-client status` prints a tree ("|  |- Currently failed:\t0"): name -> value."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, colon, value = line.lstrip("|`- \t").partition(":")
        if colon:
            fields[name.strip().lower()] = value.strip()
    return fields


def parse_fail2ban_status(text: str) -> list[str]:
    """Jail names from `fail2ban-client status` ("`- Jail list:\tsshd, recidive")."""
    fields = _tree_fields(text)
    if "jail list" not in fields:
        raise ValueError("no jail list in fail2ban-client status output")
    return [name.strip() for name in fields["jail list"].split(",") if name.strip()]


def parse_jail_status(jail: str, text: str) -> JailStatus:
    """Counts from `fail2ban-client status JAIL`; ValueError when they are not there."""
    fields = _tree_fields(text)
    try:
        numbers = [int(fields[name]) for name in ("currently failed", "total failed",
                                                    "currently banned", "total banned")]
    except (KeyError, ValueError):
        raise ValueError(f"unexpected fail2ban-client status output for jail {jail}") from None
    currently_failed, total_failed, currently_banned, total_banned = numbers
    return JailStatus(jail, currently_failed, total_failed, currently_banned, total_banned,
                      tuple(fields.get("banned ip list", "").split()))


def read_jails(runner: Runner | None = None, *,
               timeout_s: float = 10.0) -> list[JailStatus] | SkipReason:
    run = runner or default_runner
    output = _run(run, ["fail2ban-client", "status"], timeout_s)
    if isinstance(output, SkipReason):
        return output
    jails: list[JailStatus] = []
    try:
        for jail in parse_fail2ban_status(output):
            status = _run(run, ["fail2ban-client", "status", jail], timeout_s)
            if isinstance(status, SkipReason):
                return status
            jails.append(parse_jail_status(jail, status))
    except ValueError as exc:
        return SkipReason(str(exc))
    return jails


# --- running commands -------------------------------------------------------------------

def default_runner(argv: Sequence[str], timeout_s: float) -> str | None:
    """Run `argv` and return its stdout; None when the program is not installed."""
    program = shutil.which(argv[0])
    if program is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv built here, no shell
            [program, *argv[1:]], capture_output=True, text=True, encoding="utf-8",
            errors="replace", timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"{argv[0]} timed out after {timeout_s:g} s") from None
    except OSError as exc:
        raise CommandFailed(f"{argv[0]} could not run: {exc.strerror or exc}") from None
    complaint = _first_line(done.stderr) or _first_line(done.stdout)
    if done.returncode != 0:
        raise CommandFailed(f"{argv[0]} exited with {done.returncode}: {complaint}")
    if not done.stdout.strip() and done.stderr.strip():
        # journalctl without read access to the system journal exits 0, prints nothing
        # and explains on stderr; "no failed logins" would then be a lie.
        raise CommandFailed(f"{argv[0]} gave no output: {complaint}")
    return done.stdout


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _run(runner: Runner, argv: Sequence[str], timeout_s: float) -> str | SkipReason:
    try:
        output = runner(argv, timeout_s)
    except CommandFailed as exc:
        return SkipReason(exc.reason)
    if output is None:
        return SkipReason(f"{argv[0]} not found on this host")
    return output


# --- findings and summary ---------------------------------------------------------------

def check_security(failed: FailedLogins | SkipReason, jails: list[JailStatus] | SkipReason,
                   thresholds: SecurityThresholds | None = None, *,
                   now: datetime | None = None) -> list[Finding]:
    """Findings for failed SSH logins and fail2ban. With `now`, only failures within
    `thresholds.window_s` before it count; without, `failed` is taken as the window."""
    thresholds = thresholds or SecurityThresholds()
    return [_ssh_finding(failed, thresholds, now), *_jail_findings(jails)]


def _ssh_finding(failed: FailedLogins | SkipReason, thresholds: SecurityThresholds,
                 now: datetime | None) -> Finding:
    if isinstance(failed, SkipReason):
        return Finding(MONITOR, SSH_KEY, Severity.INFO,
                       f"security: {failed.reason}, SSH logins not checked",
                       {"skipped": failed.reason})
    entries: Iterable[FailedLogin] = failed.entries
    if now is not None:
        start = now - timedelta(seconds=thresholds.window_s)
        entries = [entry for entry in entries if start < entry.at <= now]
    attempts = failed_attempts(entries)
    window = format_duration(thresholds.window_s)
    addresses = Counter(attempt.address or "unknown" for attempt in attempts)
    data = {"failed": len(attempts), "window_s": thresholds.window_s,
            "addresses": dict(addresses.most_common()), "malformed_lines": failed.malformed}
    unread = f"; {failed.malformed} journal lines unreadable" if failed.malformed else ""
    if len(attempts) >= thresholds.failed_logins_warning:
        return Finding(MONITOR, SSH_KEY, Severity.WARNING,
                       f"{_logins_text(attempts, addresses)} in {window} — warning at "
                       f"{thresholds.failed_logins_warning}{unread}", data)
    return Finding(MONITOR, SSH_KEY, Severity.INFO,
                   f"{_logins(len(attempts))} in {window} (warning at "
                   f"{thresholds.failed_logins_warning}){unread}", data)


def _logins_text(attempts: Sequence[FailedLogin], addresses: Counter[str]) -> str:
    top = ", ".join(f"{address} ×{count}" for address, count in addresses.most_common(3))
    return (f"{_logins(len(attempts))} from {len(addresses)} "
            f"{'address' if len(addresses) == 1 else 'addresses'} (top: {top})")


def _logins(count: int) -> str:
    return f"{count} failed SSH {'login' if count == 1 else 'logins'}"


def _jail_findings(jails: list[JailStatus] | SkipReason) -> list[Finding]:
    if isinstance(jails, SkipReason):
        return [Finding(MONITOR, FAIL2BAN_KEY, Severity.INFO,
                        f"security: {jails.reason}, fail2ban not checked",
                        {"skipped": jails.reason})]
    if not jails:
        return [Finding(MONITOR, FAIL2BAN_KEY, Severity.INFO, "fail2ban: no jails running")]
    # Bans are fail2ban doing its job, so they inform rather than alert.
    return [Finding(MONITOR, f"fail2ban:{jail.jail}", Severity.INFO,
                    f"fail2ban {_jail_text(jail)}",
                    {"jail": jail.jail, "currently_failed": jail.currently_failed,
                     "total_failed": jail.total_failed,
                     "currently_banned": jail.currently_banned,
                     "total_banned": jail.total_banned, "banned_ips": list(jail.banned_ips)})
            for jail in jails]


def _jail_text(jail: JailStatus) -> str:
    return f"{jail.jail}: {jail.currently_banned} banned now, {jail.total_banned} total"


def security_summary(failed: FailedLogins | SkipReason, jails: list[JailStatus] | SkipReason,
                     since: datetime, now: datetime) -> str:
    """The daily security paragraph: failed SSH logins since `since`, fail2ban's jails."""
    lines = [f"Security, last {format_duration((now - since).total_seconds())}:"]
    if isinstance(failed, SkipReason):
        lines.append(f"  SSH: not checked ({failed.reason})")
    else:
        attempts = failed_attempts(e for e in failed.entries if since <= e.at <= now)
        addresses = Counter(attempt.address or "unknown" for attempt in attempts)
        text = _logins_text(attempts, addresses) if attempts else "no failed SSH logins"
        unread = f" ({failed.malformed} journal lines unreadable)" if failed.malformed else ""
        lines.append(f"  SSH: {text}{unread}")
    if isinstance(jails, SkipReason):
        lines.append(f"  fail2ban: not checked ({jails.reason})")
    else:
        text = "; ".join(_jail_text(jail) for jail in jails) or "no jails running"
        lines.append(f"  fail2ban: {text}")
    return "\n".join(lines)
