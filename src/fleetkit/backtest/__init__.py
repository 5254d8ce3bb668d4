"""Backtests: replay a strategy through the live engine on a tape of bars."""
