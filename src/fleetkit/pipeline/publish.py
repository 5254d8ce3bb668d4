"""Publishing activated model files to a git remote (`training.publish.remote`): a working
copy under the fleet home, one commit per activated version, pushed to the branch. Uses the
user's own git and its credentials (ssh keys, credential helpers); nothing is stored here."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from fleetkit.core.errors import FleetError

GIT_TIMEOUT_S = 300.0
_IDENTITY = ("-c", "user.name=fleetkit", "-c", "user.email=fleetkit@localhost")


class PublishError(FleetError):
    """git refused: the message ends with its last line of output."""


def publish(repo: Path, remote: str, branch: str, bot: str, timeframe: str,
            source: Path, names: Iterable[str], message: str) -> str:
    """Commit the model files as `<bot>/<timeframe>/` and push; the commit id. Committing
    nothing new (a resumed run) still pushes, so a push that failed is retried."""
    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True, exist_ok=True)
        _git(repo, "init", "-q", "-b", branch)
    target = repo / bot / timeframe
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in names:
        shutil.copy2(source / name, target / name)
    _git(repo, "add", "-A", "--", f"{bot}/{timeframe}")
    if _git(repo, "status", "--porcelain").strip():
        _git(repo, *_IDENTITY, "commit", "-q", "-m", message)
    _git(repo, "push", "-q", remote, f"HEAD:refs/heads/{branch}")
    return _git(repo, "rev-parse", "HEAD").strip()


def _git(repo: Path, *args: str) -> str:
    try:
        # The user's own git from PATH, as their shell finds it; argv built here, no shell.
        done = subprocess.run(["git", "-C", str(repo), *args],  # noqa: S603,S607
                              capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PublishError(f"git {args[0]}: {exc}") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise PublishError(f"git {args[0]} failed: {lines[-1]}")
    return done.stdout
