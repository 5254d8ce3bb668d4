"""SshTrainer: the Trainer port on a host reached with the user's own OpenSSH — the `ssh`
binary with ~/.ssh/config (or `ssh_config`), its keys, agent and host aliases, so a GPU
box on a WireGuard mesh is just a host name. Never a prompt (BatchMode=yes).

Everything goes through `ssh HOST <one command line>`, files included (`cat` at both ends):
one quoting rule for every path (shlex.quote, with a leading ~/ turned into "$HOME"/), an
upload written to `<name>.partial` and renamed whole, and no dependence on which protocol
a given OpenSSH's scp speaks (scp's remote paths are shell-expanded by the legacy protocol
and not by the SFTP one).

The remote side needs a POSIX sh, cat, mkdir, mv, rm and the trainer's Python (always
there: it trains). A command runs in its own session (setsid, where the trainer has it)
under a small sh wrapper that watches the connection's stdin: when the connection goes —
this process was killed, the command timed out and its ssh was killed, the network
dropped — the wrapper gets EOF and kills the command's process group (SIGTERM, SIGKILL 5 s
later), so no training runs on as an orphan that the next run would race.

ssh's exit 255 is its own failure; its stderr says which (see `_classify`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from fleetkit.config.pipeline import SshTrainerSettings
from fleetkit.pipeline.processes import Finished, guarded, stream_process
from fleetkit.pipeline.trainers import (
    LineCallback,
    RunResult,
    TrainerAuthRefused,
    TrainerCommandFailed,
    TrainerConnectionLost,
    TrainerError,
    TrainerOutOfDisk,
    TrainerTimeout,
    TrainerUnreachable,
    check_env,
    check_remote_name,
    check_run_id,
    last_line,
)

SSH_FAILED = 255  # ssh's own exit code: the connection or authentication failed
NO_FOLDER = 97  # the wrappers' exit code when the root or cwd is missing
SERVER_ALIVE_COUNT = 4

# Each script is `sh -c SCRIPT sh ROOT ARGS...`; $1 is the trainer's root.
_IN_ROOT = 'cd "$1" || exit 97; shift; exec "$@"'
_PREPARE = 'mkdir -p "$1/$2" && cd "$1/$2" && pwd'
_UPLOAD = ('cd "$1" || exit 97; d=$(dirname "$2"); mkdir -p "$d" || exit 1; '
           'if cat > "$2.partial"; then mv -f "$2.partial" "$2"; '
           'else rm -f "$2.partial"; exit 1; fi')
_DOWNLOAD = 'cd "$1" || exit 97; exec cat "$2"'
_CLEANUP = 'cd "$1" 2>/dev/null || exit 0; rm -rf "$2"'
_FREE = 'mkdir -p "$1" && cd "$1" || exit 97; shift; exec "$@"'
# The command wrapper (see the module docstring): fd 3 keeps the connection's stdin for the
# watcher; the command itself reads /dev/null. dash's kill takes no "--": "-PGID" it does.
_RUN = """exec 3<&0 </dev/null
cd "$1" && cd "$2" || { echo "no working directory $1/$2 on the trainer" >&2; exit 97; }
shift 2
if command -v setsid >/dev/null 2>&1; then setsid "$@" & else "$@" & fi
child=$!
( cat <&3 >/dev/null
  kill -TERM -"$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null
  sleep 5
  kill -KILL -"$child" 2>/dev/null || kill -KILL "$child" 2>/dev/null ) >/dev/null 2>&1 &
watcher=$!
exec 3<&-
wait "$child"
code=$?
kill "$watcher" 2>/dev/null
exit "$code"
"""
_SHA256 = """import hashlib, json, sys
out = {}
for name in sys.argv[1:]:
    digest = hashlib.sha256()
    with open(name, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    out[name] = digest.hexdigest()
print(json.dumps(out))
"""
_LIST = """import json, os, sys
top = sys.argv[1]
if not os.path.isdir(top):
    sys.exit("no folder " + top)
found = []
for folder, _, files in os.walk(top):
    for name in files:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not os.path.islink(path):
            found.append(os.path.relpath(path, ".").replace(os.sep, "/"))
print(json.dumps(sorted(found)))
"""
_FREE_PY = 'import shutil; print(shutil.disk_usage(".").free)'

_AUTH = re.compile(r"Permission denied|Too many authentication failures|"
                   r"no mutual signature|Host key verification failed|"
                   r"REMOTE HOST IDENTIFICATION HAS CHANGED", re.IGNORECASE)
_UNREACHABLE = re.compile(r"Connection refused|No route to host|Connection timed out|"
                          r"Operation timed out|Could not resolve|Name or service not known|"
                          r"Temporary failure in name resolution|Network is unreachable|"
                          r"kex_exchange_identification|Connection closed by|"
                          r"banner exchange", re.IGNORECASE)
_LOST = re.compile(r"Connection reset|Broken pipe|Timeout, server .* not responding|"
                   r"client_loop: send disconnect|Connection to .* closed by remote host",
                   re.IGNORECASE)
_NO_SPACE = re.compile(r"No space left on device|Disk quota exceeded", re.IGNORECASE)


def remote_word(path: str) -> str:
    """One shell word for a path on the trainer: quoted, but a leading ~ or ~/ means the
    login's home (quoting alone would make it a literal "~")."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        rest = path[2:]
        return '"$HOME"/' + shlex.quote(rest) if rest else '"$HOME"/'
    return shlex.quote(path)


class SshTrainer:
    def __init__(self, name: str, settings: SshTrainerSettings, *,
                 ssh_binary: str = "ssh") -> None:
        self._name = name
        self.settings = settings
        self.ssh_binary = ssh_binary

    @property
    def name(self) -> str:
        return self._name

    @property
    def python(self) -> str:
        return self.settings.python

    @property
    def device(self) -> str:
        return self.settings.device

    def describe(self) -> str:
        port = f" port {self.settings.port}" if self.settings.port else ""
        return f"ssh {self.settings.host}{port}:{self.settings.workdir}"

    def ssh_argv(self) -> list[str]:
        """`ssh [options] -- HOST`, the remote command line to follow."""
        s = self.settings
        argv = [self.ssh_binary, "-o", "BatchMode=yes"]  # first: a prompt would hang us
        if s.ssh_config:
            argv += ["-F", os.path.expanduser(s.ssh_config)]
        for option in s.ssh_options:  # before the defaults: ssh keeps an option's first value
            argv += ["-o", option]
        if s.identity_file:
            argv += ["-i", os.path.expanduser(s.identity_file), "-o", "IdentitiesOnly=yes"]
        argv += ["-o", f"ConnectTimeout={s.connect_timeout_s}",
                 "-o", f"ServerAliveInterval={s.server_alive_interval_s}",
                 "-o", f"ServerAliveCountMax={SERVER_ALIVE_COUNT}",
                 "-o", "LogLevel=ERROR",  # errors only: no "Warning: Permanently added" noise
                 "-T"]
        if s.port:
            argv += ["-p", str(s.port)]
        return [*argv, "--", s.host]

    # --- the port ---

    def prepare(self, run_id: str) -> str:
        out = self._script(_PREPARE, [check_run_id(run_id)], what="prepare the run's folder")
        path = last_line(out)
        if not path.startswith("/"):
            raise self._failed(f"prepare printed {path!r}, not a path", out)
        return path

    def upload(self, local_path: Path, remote_name: str) -> None:
        with Path(local_path).open("rb") as stream:
            self._script(_UPLOAD, [check_remote_name(remote_name)], stdin=stream,
                         timeout_s=self.settings.transfer_timeout_s,
                         what=f"upload {remote_name}")

    def download(self, remote_name: str, local_path: Path) -> None:
        target = Path(local_path)
        partial = target.with_name(f"{target.name}.partial")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with partial.open("wb") as stream:
                self._script(_DOWNLOAD, [check_remote_name(remote_name)], stdout=stream,
                             timeout_s=self.settings.transfer_timeout_s,
                             what=f"download {remote_name}")
            os.replace(partial, target)  # whole or not at all
        finally:
            partial.unlink(missing_ok=True)

    def sha256(self, remote_names: Sequence[str]) -> dict[str, str]:
        names = [check_remote_name(n) for n in remote_names]
        if not names:
            return {}
        answer = _answer(self._name, self._python(_SHA256, names, what="hash files"))
        if not isinstance(answer, dict):
            raise self._failed(f"unexpected checksums {answer!r}", "")
        return {str(k): str(v) for k, v in answer.items()}

    def list_files(self, remote_dir: str) -> list[str]:
        answer = _answer(self._name, self._python(_LIST, [check_remote_name(remote_dir)],
                                                  what="list files"))
        if not isinstance(answer, list):
            raise self._failed(f"unexpected listing {answer!r}", "")
        return [str(name) for name in answer]

    def free_bytes(self) -> int:
        out = self._script(_FREE, [self._py_word(), "-c", shlex.quote(_FREE_PY)],
                           quoted=True, what="measure free space")
        try:
            return int(last_line(out))
        except ValueError:
            raise self._failed(f"free space: {last_line(out)!r} is not a number", out) from None

    def cleanup(self, run_id: str) -> None:
        self._script(_CLEANUP, [check_run_id(run_id)], what="remove the run's folder")

    def run(self, argv: Sequence[str], *, timeout_s: float,
            on_line: LineCallback | None = None, cwd: str | None = None,
            env: Mapping[str, str] | None = None, check: bool = True) -> RunResult:
        if not argv:
            raise ValueError("run: empty argv")
        words = [remote_word(argv[0]), *(shlex.quote(a) for a in argv[1:])]
        extra = check_env(env)
        if extra:
            words = ["env", *(shlex.quote(f"{k}={v}") for k, v in extra.items()), *words]
        folder = shlex.quote(check_remote_name(cwd)) if cwd else "."
        line = self._line(_RUN, [folder, *words])
        # stdin stays an open pipe for the wrapper's watcher: it closes when we go.
        process = self._spawn(line, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        finished = stream_process(process, timeout_s=timeout_s, on_line=on_line,
                                  stop=_kill_client)
        if finished.code is None:
            raise TrainerTimeout(self._name, f"the trainer {self._name}: {argv[0]} ran past "
                                 f"its limit of {timeout_s:g} s and was killed there",
                                 RunResult(-1, finished.stdout, finished.stderr,
                                           finished.seconds))
        result = RunResult(finished.code, finished.stdout, finished.stderr, finished.seconds)
        if result.exit_code == SSH_FAILED:  # ssh's own failure, or the command's 255
            error = _classify(self._name, self.settings.host, finished.stderr,
                              f"the run of {argv[0]}")
            if error is not None:
                raise error
        if check and result.exit_code != 0:
            line = result.last_stderr_line or f"exit code {result.exit_code}"
            self._raise_disk(line)
            raise TrainerCommandFailed(self._name, f"the trainer {self._name}: {argv[0]} "
                                       f"exited with code {result.exit_code}: {line}", result)
        return result

    # --- the ssh calls ---

    def _line(self, script: str, words: Sequence[str]) -> str:
        """`sh -c SCRIPT sh ROOT WORDS...` as one command line (words already quoted)."""
        return " ".join(["sh", "-c", shlex.quote(script), "sh",
                         remote_word(self.settings.workdir), *words])

    def _py_word(self) -> str:
        return remote_word(self.settings.python)

    def _python(self, code: str, args: Sequence[str], *, what: str) -> str:
        return self._script(_IN_ROOT, [self._py_word(), "-c", shlex.quote(code),
                                       *(shlex.quote(a) for a in args)], quoted=True,
                            what=what)

    def _script(self, script: str, args: Sequence[str], *, what: str,
                quoted: bool = False, stdin: IO[bytes] | None = None,
                stdout: IO[bytes] | None = None, timeout_s: float | None = None) -> str:
        """Run a housekeeping script; its stdout (unless sent to `stdout`), or the typed
        error."""
        words = list(args) if quoted else [shlex.quote(a) for a in args]
        process = self._spawn(self._line(script, words),
                              stdin=stdin if stdin is not None else subprocess.DEVNULL,
                              stdout=stdout if stdout is not None else subprocess.PIPE)
        limit = timeout_s if timeout_s is not None else self.settings.operation_timeout_s
        started = time.monotonic()
        try:
            out, err = process.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_client(process)
            process.communicate()
            raise TrainerTimeout(self._name, f"the trainer {self._name}: {what} took longer "
                                 f"than {limit:g} s", RunResult(-1, "", "", limit)) from None
        finished = Finished(process.returncode, (out or b"").decode("utf-8", "replace"),
                            err.decode("utf-8", "replace"), time.monotonic() - started)
        if finished.code == SSH_FAILED:
            self._raise_ssh(finished, what)
        if finished.code != 0:
            line = last_line(finished.stderr) or f"exit code {finished.code}"
            self._raise_disk(line)
            if finished.code == NO_FOLDER:
                line = f"its working directory {self.settings.workdir} is missing ({line})"
            raise TrainerCommandFailed(self._name, f"the trainer {self._name} could not "
                                       f"{what}: {line}", RunResult(
                                           finished.code or 1, finished.stdout,
                                           finished.stderr, finished.seconds))
        return finished.stdout

    def _spawn(self, line: str, *, stdin: IO[bytes] | int,
               stdout: IO[bytes] | int) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(  # noqa: S603 - our argv; the remote line is quoted
                guarded([_which(self.ssh_binary), *self.ssh_argv()[1:], line]), stdin=stdin,
                stdout=stdout, stderr=subprocess.PIPE)
        except OSError as exc:
            raise TrainerCommandFailed(self._name, f"cannot run {self.ssh_binary}: "
                                       f"{exc.strerror or exc} (install the OpenSSH client)",
                                       RunResult(127, "", str(exc), 0.0)) from None

    # --- errors ---

    def _raise_ssh(self, finished: Finished, what: str) -> None:
        """ssh exited 255: its own failure, typed by its stderr. A 255 without an ssh
        message is the remote command's own exit code."""
        error = _classify(self._name, self.settings.host, finished.stderr, what)
        if error is not None:
            raise error
        result = RunResult(SSH_FAILED, finished.stdout, finished.stderr, finished.seconds)
        raise TrainerCommandFailed(self._name, f"the trainer {self._name}: {what} exited "
                                   f"with code 255: {last_line(finished.stderr) or 'no output'}",
                                   result)

    def _raise_disk(self, line: str) -> None:
        if _NO_SPACE.search(line):
            raise TrainerOutOfDisk(self._name, f"the trainer {self._name} ran out of disk "
                                   f"space ({self.describe()}): {line}: free some space there")

    def _failed(self, message: str, out: str) -> TrainerCommandFailed:
        return TrainerCommandFailed(self._name, f"the trainer {self._name}: {message}",
                                    RunResult(1, out, "", 0.0))



def _answer(trainer: str, out: str) -> object:
    """The JSON value a helper printed on its last line."""
    try:
        return json.loads(last_line(out))
    except ValueError:
        raise TrainerCommandFailed(trainer, f"the trainer {trainer}: unexpected answer "
                                   f"{last_line(out)[:200]!r}", RunResult(1, out, "", 0.0)
                                   ) from None


def _classify(trainer: str, host: str, stderr: str, what: str) -> TrainerError | None:
    """The typed error for ssh's own failure (exit 255), None when stderr names none."""
    message = last_line(" ".join(line for line in stderr.splitlines()
                                 if _AUTH.search(line) or _UNREACHABLE.search(line)
                                 or _LOST.search(line)) or stderr)
    if _AUTH.search(stderr):
        if re.search(r"Host key verification failed|IDENTIFICATION HAS CHANGED", stderr):
            return TrainerAuthRefused(trainer, f"the trainer {trainer} ({host}): its host key "
                                      f"did not verify ({message}): connect once by hand "
                                      f"(ssh {host}) to check and accept it, or fix "
                                      "known_hosts")
        return TrainerAuthRefused(trainer, f"the trainer {trainer} refused the key for {host} "
                                  f"({message}): check ~/.ssh/config (User, IdentityFile) "
                                  "or ssh-add the key")
    if _UNREACHABLE.search(stderr):  # before connecting, or while saying hello
        return TrainerUnreachable(trainer, f"the trainer {trainer} ({host}) does not answer "
                                  f"({message}): check it is up and reachable "
                                  f"(ssh {host} true)")
    if _LOST.search(stderr):
        return TrainerConnectionLost(trainer, f"the trainer {trainer} ({host}): the "
                                     f"connection dropped during {what} ({message})")
    return None


def _kill_client(process: subprocess.Popen[bytes]) -> None:
    """Kill the local ssh: the connection closes, the remote wrapper's watcher gets EOF
    and kills the command's process group there."""
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def _which(binary: str) -> str:
    # parent_guard execs without a PATH search.
    return shutil.which(binary) or binary
