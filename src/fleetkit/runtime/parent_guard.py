"""`python -m fleetkit.runtime.parent_guard PARENT_PID ARGV...`: run ARGV so that it gets
SIGTERM when its parent dies, however it dies (Linux PR_SET_PDEATHSIG, kept across exec).

Why: a market-hours service holds no lease of its own; if the scheduler that started it
were killed with SIGKILL, it would run on as an orphan while the next scheduler started a
second copy. The guard asks the kernel first, then checks the parent is still the one
that started it (it may have died in between), then becomes ARGV.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main(args: list[str]) -> int:
    if len(args) < 2 or not args[0].isdigit():
        print("usage: python -m fleetkit.runtime.parent_guard PARENT_PID ARGV...",
              file=sys.stderr)
        return 2
    parent, argv = int(args[0]), args[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        print(f"parent_guard: prctl failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 1
    if os.getppid() != parent:
        return 0  # the parent is gone already: nobody wants this process any more
    os.execv(argv[0], argv)  # noqa: S606 - argv comes from the supervisor, no shell
    return 1  # not reached: execv replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
