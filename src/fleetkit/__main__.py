"""`python -m fleetkit ...` is the `fleet` command (how the supervisor starts children)."""

import gc
import sys

from fleetkit.cli.app import main

code = main()
# The command is done: everything it opened is closed, its logs are flushed. What is left
# is interpreter teardown, whose cost is the cyclic collector walking every object still
# alive (~95,000 in a bot) again and again as modules are cleared: ~0.4 s of CPU per
# process, measured. A fleet stops 36 processes at once, so on a 2-core machine that was
# 5-6 s of queueing after each bot's "bot stopped" line — and SIGKILLs at the supervisor's
# deadline. Frozen objects are skipped by the collector; teardown still frees them by
# reference counting, and still runs atexit handlers and flushes files, so nothing is lost.
gc.freeze()
sys.exit(code)
