"""Security checks: failed SSH logins from journald, fail2ban jails, and hosts lacking either."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fleetkit.core.alerts import Finding, Severity
from fleetkit.monitor.security import (
    CommandFailed,
    FailedLogin,
    FailedLogins,
    JailStatus,
    SecurityThresholds,
    SkipReason,
    check_security,
    default_runner,
    failed_attempts,
    journal_command,
    parse_fail2ban_status,
    parse_jail_status,
    parse_journal_json,
    read_failed_logins,
    read_jails,
    security_summary,
)

NOW = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
NOW_US = int(NOW.timestamp()) * 1_000_000

# What `journalctl -o json` prints for one sshd line (fields trimmed to the usual ones).
REAL_LINE = json.dumps({
    "__CURSOR": "s=5f0c1e;i=1a2b;b=9d3e;m=3b9aca00;t=61a0;x=77c1",
    "__REALTIME_TIMESTAMP": str(NOW_US + 123_456), "__MONOTONIC_TIMESTAMP": "1000000000",
    "_BOOT_ID": "9d3e0c7d7f3b4a51a1e3b0f6f2f2c9aa", "_TRANSPORT": "syslog", "PRIORITY": "6",
    "SYSLOG_FACILITY": "4", "SYSLOG_IDENTIFIER": "sshd-session", "SYSLOG_PID": "48213",
    "_PID": "48213", "_UID": "0", "_GID": "0", "_COMM": "sshd-session",
    "_EXE": "/usr/lib/openssh/sshd-session", "_SYSTEMD_UNIT": "ssh.service",
    "_HOSTNAME": "box", "MESSAGE": "Failed password for root from 203.0.113.7 port 52814 ssh2",
})

FAIL2BAN_STATUS = "Status\n|- Number of jail:\t2\n`- Jail list:\tsshd, recidive\n"
SSHD_STATUS = (
    "Status for the jail: sshd\n"
    "|- Filter\n"
    "|  |- Currently failed:\t3\n"
    "|  |- Total failed:\t147\n"
    "|  `- Journal matches:\t_SYSTEMD_UNIT=sshd.service + _COMM=sshd\n"
    "`- Actions\n"
    "   |- Currently banned:\t2\n"
    "   |- Total banned:\t14\n"
    "   `- Banned IP list:\t203.0.113.7 198.51.100.4\n")
RECIDIVE_STATUS = (
    "Status for the jail: recidive\n"
    "|- Filter\n"
    "|  |- Currently failed:\t0\n"
    "|  |- Total failed:\t1\n"
    "|  `- File list:\t/var/log/fail2ban.log\n"
    "`- Actions\n"
    "   |- Currently banned:\t0\n"
    "   |- Total banned:\t0\n"
    "   `- Banned IP list:\t\n")
PERMISSION_DENIED = ("ERROR  Permission denied to socket: /var/run/fail2ban/fail2ban.sock, "
                     "(you must be root)")


def line(message: Any, *, ident: str | None = "sshd", comm: str | None = None,
         us: Any = NOW_US, pid: str | None = "100") -> str:
    entry: dict[str, Any] = {"__REALTIME_TIMESTAMP": us, "MESSAGE": message}
    for name, value in (("SYSLOG_IDENTIFIER", ident), ("_COMM", comm), ("_PID", pid)):
        if value is not None:
            entry[name] = value
    return json.dumps(entry)


def login(address: str | None, *, minutes_ago: float = 1.0, pid: int | None = None,
          kind: str = "failed_password") -> FailedLogin:
    return FailedLogin(NOW - timedelta(minutes=minutes_ago), "root", address, "Failed ...",
                       kind, pid)


class FakeRunner:
    """Answers by argv; an exception answer is raised, as a failing command would."""

    def __init__(self, answers: dict[tuple[str, ...], str | Exception | None]) -> None:
        self.answers = answers
        self.calls: list[tuple[list[str], float]] = []

    def __call__(self, argv: Sequence[str], timeout_s: float) -> str | None:
        self.calls.append((list(argv), timeout_s))
        answer = self.answers.get(tuple(argv), self.answers.get((argv[0],)))
        if isinstance(answer, Exception):
            raise answer
        return answer


# --- journal parsing ----------------------------------------------------------------------


def test_real_journal_line_from_sshd_session_is_a_failed_login() -> None:
    parsed = parse_journal_json([REAL_LINE])
    assert parsed == FailedLogins((FailedLogin(
        at=datetime(2026, 3, 9, 14, 0, 0, 123_456, tzinfo=UTC), user="root",
        address="203.0.113.7", message="Failed password for root from 203.0.113.7 port 52814 "
        "ssh2", kind="failed_password", pid=48213),), malformed=0)


@pytest.mark.parametrize(("message", "kind", "user", "address"), [
    ("Failed password for root from 203.0.113.7 port 52814 ssh2",
     "failed_password", "root", "203.0.113.7"),
    ("Failed password for invalid user admin from 198.51.100.4 port 40022 ssh2",
     "failed_password", "admin", "198.51.100.4"),
    ("Invalid user oracle from 198.51.100.4 port 40022", "invalid_user", "oracle",
     "198.51.100.4"),
    ("Failed publickey for deploy from 2001:db8::1 port 50000 ssh2: ED25519 SHA256:Zm9vYmFy",
     "failed_publickey", "deploy", "2001:db8::1"),
    ("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
     "rhost=203.0.113.7  user=root", "pam", "root", "203.0.113.7"),
    ("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
     "rhost=203.0.113.7", "pam", None, "203.0.113.7"),
    ("Connection closed by invalid user test 192.0.2.9 port 33000 [preauth]",
     "closed_preauth", "test", "192.0.2.9"),
    ("Connection closed by authenticating user root 192.0.2.9 port 33001 [preauth]",
     "closed_preauth", "root", "192.0.2.9"),
    ("Failed password for invalid user  from 192.0.2.10 port 1022 ssh2",
     "failed_password", None, "192.0.2.10"),
])
def test_each_sshd_failure_pattern_is_recognised(message: str, kind: str, user: str | None,
                                                 address: str) -> None:
    (found,) = parse_journal_json([line(message)]).entries
    assert (found.kind, found.user, found.address, found.message) == (kind, user, address,
                                                                      message)


@pytest.mark.parametrize(("ident", "comm"), [("sshd", None), ("sshd-session", None),
                                             (None, "sshd"), (None, "sshd-session"),
                                             ("sshd-session", "sshd-session")])
def test_sshd_and_sshd_session_by_identifier_or_command(ident: str | None,
                                                        comm: str | None) -> None:
    message = "Invalid user oracle from 198.51.100.4 port 40022"
    assert len(parse_journal_json([line(message, ident=ident, comm=comm)]).entries) == 1


def test_other_programs_and_sshd_successes_are_ignored_not_malformed() -> None:
    parsed = parse_journal_json([
        line("pam_unix(sudo:auth): authentication failure; logname=al uid=1000 euid=0 "
             "tty=/dev/pts/0 ruser=al rhost=  user=al", ident="sudo"),
        line("Accepted publickey for deploy from 192.0.2.1 port 5022 ssh2: ED25519 SHA256:x"),
        line("Disconnected from user deploy 192.0.2.1 port 5022"),
        line("Failed none for invalid user admin from 192.0.2.2 port 7 ssh2"),
    ])
    assert parsed == FailedLogins((), 0)


def test_byte_array_message_is_decoded() -> None:
    raw = b"Failed password for invalid user caf\xe9 from 192.0.2.3 port 22 ssh2"  # latin-1
    (found,) = parse_journal_json([line(list(raw))]).entries
    assert found.user == "caf\ufffd"
    assert found.address == "192.0.2.3"


def test_field_written_several_times_is_an_array_and_still_read() -> None:
    entry = line(["Invalid user bob from 192.0.2.4 port 1", list(b"second value")],
                 ident=None, comm=None)
    data = json.loads(entry) | {"SYSLOG_IDENTIFIER": ["sshd", "other"]}
    (found,) = parse_journal_json([json.dumps(data)]).entries
    assert found.user == "bob"


def test_malformed_lines_are_counted_and_skipped_never_raised() -> None:
    failure = "Failed password for root from 203.0.113.7 port 1 ssh2"
    parsed = parse_journal_json([
        "not json at all", "[1, 2, 3]", '{"MESSAGE": "truncated',
        line(failure, us=None),          # no timestamp
        line(failure, us="yesterday"),   # not microseconds
        line(None),                       # MESSAGE too large for journalctl: null
        line([300, 1]),                   # not bytes
        "", "-- No entries --",          # not entries, not malformed either
        line(failure, pid="not-a-pid"),  # a bad pid only loses the pid
    ])
    assert parsed.malformed == 7
    (found,) = parsed.entries
    assert found.pid is None


def test_journal_command_asks_for_both_sshd_names_since_an_epoch() -> None:
    argv = journal_command(NOW)
    assert argv[:6] == ["journalctl", "-o", "json", "--no-pager", "--since",
                        f"@{int(NOW.timestamp())}"]
    assert argv[-5:] == ["SYSLOG_IDENTIFIER=sshd", "SYSLOG_IDENTIFIER=sshd-session", "+",
                         "_COMM=sshd", "_COMM=sshd-session"]
    with pytest.raises(ValueError, match="timezone"):
        journal_command(datetime(2026, 3, 9))  # noqa: DTZ001 - the naive time is the point


# --- counting attempts --------------------------------------------------------------------


def test_one_attempt_logged_several_ways_counts_once() -> None:
    connection = [login("192.0.2.9", pid=100, kind=kind) for kind in
                  ("invalid_user", "pam", "failed_password", "failed_password",
                   "closed_preauth")]
    key_only_scan = [login("192.0.2.8", pid=200, kind=kind) for kind in
                     ("invalid_user", "closed_preauth")]
    without_pid = [login("192.0.2.7", kind="pam"), login("192.0.2.7", kind="pam")]
    attempts = failed_attempts(connection + key_only_scan + without_pid)
    assert sorted((a.address, a.kind) for a in attempts) == [
        ("192.0.2.7", "pam"), ("192.0.2.7", "pam"), ("192.0.2.8", "invalid_user"),
        ("192.0.2.9", "failed_password"), ("192.0.2.9", "failed_password")]


# --- findings -----------------------------------------------------------------------------


def ssh_finding(findings: list[Finding]) -> Finding:
    (found,) = [f for f in findings if f.key == "ssh:failed_logins"]
    return found


def burst(count: int, address: str, **kwargs: Any) -> list[FailedLogin]:
    return [login(address, **kwargs) for _ in range(count)]


def test_failed_logins_reaching_the_threshold_warn_with_top_sources() -> None:
    failed = FailedLogins(tuple(burst(10, "203.0.113.7") + burst(5, "198.51.100.4") +
                                burst(3, "192.0.2.1") + burst(2, "192.0.2.2")))
    found = ssh_finding(check_security(failed, [], SecurityThresholds(), now=NOW))
    assert (found.monitor, found.severity) == ("security", Severity.WARNING)
    assert found.message == ("20 failed SSH logins from 4 addresses (top: 203.0.113.7 ×10, "
                             "198.51.100.4 ×5, 192.0.2.1 ×3) in 15 min — warning at 20")
    assert found.data["addresses"]["192.0.2.2"] == 2


def test_failed_logins_below_the_threshold_are_info() -> None:
    failed = FailedLogins(tuple(burst(19, "203.0.113.7")))
    found = ssh_finding(check_security(failed, [], SecurityThresholds(), now=NOW))
    assert found.severity is Severity.INFO
    assert found.message == "19 failed SSH logins in 15 min (warning at 20)"


def test_only_failures_inside_the_window_count() -> None:
    failed = FailedLogins(tuple(burst(5, "203.0.113.7", minutes_ago=1) +
                                burst(30, "203.0.113.7", minutes_ago=16)), malformed=2)
    found = ssh_finding(check_security(failed, [], SecurityThresholds(), now=NOW))
    assert found.severity is Severity.INFO
    assert found.data["failed"] == 5
    assert found.message.endswith("; 2 journal lines unreadable")
    # Without `now` the caller has already cut the window.
    found = ssh_finding(check_security(failed, [], SecurityThresholds()))
    assert found.severity is Severity.WARNING


def test_skipped_sources_give_one_info_finding_each_with_the_reason() -> None:
    findings = check_security(SkipReason("journalctl not found on this host"),
                              SkipReason("fail2ban-client not found on this host"))
    assert [(f.key, f.severity, f.message) for f in findings] == [
        ("ssh:failed_logins", Severity.INFO,
         "security: journalctl not found on this host, SSH logins not checked"),
        ("fail2ban", Severity.INFO,
         "security: fail2ban-client not found on this host, fail2ban not checked")]


def test_jails_are_info_with_current_and_total_bans() -> None:
    jails = [JailStatus("sshd", 3, 147, 2, 14, ("203.0.113.7", "198.51.100.4")),
             JailStatus("recidive", 0, 1, 0, 0)]
    findings = check_security(FailedLogins(), jails, now=NOW)
    assert [(f.key, f.severity, f.message) for f in findings[1:]] == [
        ("fail2ban:sshd", Severity.INFO, "fail2ban sshd: 2 banned now, 14 total"),
        ("fail2ban:recidive", Severity.INFO, "fail2ban recidive: 0 banned now, 0 total")]
    assert findings[1].data["banned_ips"] == ["203.0.113.7", "198.51.100.4"]


def test_fail2ban_without_jails_says_so() -> None:
    (_, found) = check_security(FailedLogins(), [])
    assert (found.key, found.message) == ("fail2ban", "fail2ban: no jails running")


@pytest.mark.parametrize("kwargs", [{"failed_logins_warning": 0}, {"window_s": 0}])
def test_security_thresholds_reject_impossible_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SecurityThresholds(**kwargs)  # type: ignore[arg-type]


def test_daily_summary_counts_attempts_and_bans() -> None:
    failed = FailedLogins(tuple(burst(20, "203.0.113.7", minutes_ago=60) +
                                burst(9, "198.51.100.4", minutes_ago=600) +
                                burst(8, "192.0.2.1", minutes_ago=900) +
                                burst(50, "192.0.2.99", minutes_ago=2000)))  # before `since`
    jails = [JailStatus("sshd", 3, 147, 3, 12), JailStatus("recidive", 0, 1, 0, 1)]
    text = security_summary(failed, jails, NOW - timedelta(hours=24), NOW)
    assert text == (
        "Security, last 24 h:\n"
        "  SSH: 37 failed SSH logins from 3 addresses (top: 203.0.113.7 ×20, "
        "198.51.100.4 ×9, 192.0.2.1 ×8)\n"
        "  fail2ban: sshd: 3 banned now, 12 total; recidive: 0 banned now, 1 total")


def test_daily_summary_with_nothing_to_tell_and_sources_missing() -> None:
    since = NOW - timedelta(hours=24)
    assert security_summary(FailedLogins(), SkipReason("fail2ban-client not found on this "
                                                       "host"), since, NOW) == (
        "Security, last 24 h:\n"
        "  SSH: no failed SSH logins\n"
        "  fail2ban: not checked (fail2ban-client not found on this host)")
    assert "SSH: not checked (journalctl exited with 1: boom)" in security_summary(
        SkipReason("journalctl exited with 1: boom"), [], since, NOW)


# --- fail2ban parsing ---------------------------------------------------------------------


def test_jail_list_is_read_from_fail2ban_status() -> None:
    assert parse_fail2ban_status(FAIL2BAN_STATUS) == ["sshd", "recidive"]
    assert parse_fail2ban_status("Status\n|- Number of jail:\t0\n`- Jail list:\t\n") == []


def test_output_without_a_jail_list_is_rejected() -> None:
    with pytest.raises(ValueError, match="jail list"):
        parse_fail2ban_status("Server replied: pong\n")


def test_jail_status_tree_is_read() -> None:
    assert parse_jail_status("sshd", SSHD_STATUS) == JailStatus(
        "sshd", currently_failed=3, total_failed=147, currently_banned=2, total_banned=14,
        banned_ips=("203.0.113.7", "198.51.100.4"))
    assert parse_jail_status("recidive", RECIDIVE_STATUS) == JailStatus(
        "recidive", 0, 1, 0, 0, ())


def test_jail_status_without_counts_is_rejected() -> None:
    with pytest.raises(ValueError, match="jail sshd"):
        parse_jail_status("sshd", "Sorry but the jail 'sshd' does not exist\n")


# --- readers ------------------------------------------------------------------------------


def test_failed_logins_are_read_through_the_runner() -> None:
    runner = FakeRunner({("journalctl",): REAL_LINE + "\nnot json\n"})
    got = read_failed_logins(NOW - timedelta(minutes=15), runner, timeout_s=7)
    assert isinstance(got, FailedLogins)
    assert (len(got.entries), got.malformed) == (1, 1)
    assert runner.calls == [(journal_command(NOW - timedelta(minutes=15)), 7)]


def test_absent_journalctl_is_a_skip() -> None:
    got = read_failed_logins(NOW, FakeRunner({("journalctl",): None}))
    assert got == SkipReason("journalctl not found on this host")


def test_failing_journalctl_is_a_skip_with_its_reason() -> None:
    got = read_failed_logins(NOW, FakeRunner({("journalctl",): CommandFailed(
        "journalctl gave no output: Hint: You are currently not seeing messages from other "
        "users and the system.")}))
    assert isinstance(got, SkipReason)
    assert "not seeing messages" in got.reason


def test_jails_are_read_one_status_call_each() -> None:
    runner = FakeRunner({("fail2ban-client", "status"): FAIL2BAN_STATUS,
                         ("fail2ban-client", "status", "sshd"): SSHD_STATUS,
                         ("fail2ban-client", "status", "recidive"): RECIDIVE_STATUS})
    got = read_jails(runner)
    assert got == [parse_jail_status("sshd", SSHD_STATUS),
                   parse_jail_status("recidive", RECIDIVE_STATUS)]


def test_absent_fail2ban_is_a_skip() -> None:
    assert read_jails(FakeRunner({("fail2ban-client",): None})) == SkipReason(
        "fail2ban-client not found on this host")


def test_fail2ban_without_root_is_a_skip_not_an_exception() -> None:
    # The real default runner on a real failing command: fail2ban-client exits 255 when the
    # socket is refused to a non-root user.
    script = f"echo '{PERMISSION_DENIED}' >&2; exit 255"

    def runner(argv: Sequence[str], timeout_s: float) -> str | None:
        return default_runner(["sh", "-c", script], timeout_s)

    got = read_jails(runner)
    assert got == SkipReason(f"sh exited with 255: {PERMISSION_DENIED}")


def test_unexpected_jail_output_is_a_skip() -> None:
    runner = FakeRunner({("fail2ban-client", "status"): FAIL2BAN_STATUS,
                         ("fail2ban-client", "status", "sshd"): "garbage\n"})
    assert read_jails(runner) == SkipReason("unexpected fail2ban-client status output for "
                                            "jail sshd")


# --- the default runner -------------------------------------------------------------------


def test_default_runner_returns_none_for_a_missing_program() -> None:
    assert default_runner(["fleetkit-no-such-program-xyz", "status"], 5) is None


def test_default_runner_returns_stdout() -> None:
    assert default_runner(["sh", "-c", "echo hello"], 5) == "hello\n"


def test_default_runner_raises_on_non_zero_exit_with_the_first_complaint() -> None:
    with pytest.raises(CommandFailed, match=r"^sh exited with 3: first$"):
        default_runner(["sh", "-c", "printf '\\n first \\nsecond\\n' >&2; exit 3"], 5)


def test_default_runner_treats_silence_with_a_complaint_as_failure() -> None:
    with pytest.raises(CommandFailed, match="gave no output: Hint: not seeing messages"):
        default_runner(["sh", "-c", "echo 'Hint: not seeing messages' >&2"], 5)


def test_default_runner_times_out() -> None:
    with pytest.raises(CommandFailed, match=r"timed out after 0\.2 s"):
        default_runner([sys.executable, "-c", "import time; time.sleep(5)"], 0.2)
