"""Runtime: the runner loop, clocks, the supervisor, the fleet, backtests — the wiring layer."""
