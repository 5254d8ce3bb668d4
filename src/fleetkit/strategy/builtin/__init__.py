"""Built-in signal modules; importing this package registers them."""

from fleetkit.strategy.builtin import buy_and_hold, donchian_breakout, rsi_reversion, sma_cross

__all__ = ["buy_and_hold", "donchian_breakout", "rsi_reversion", "sma_cross"]
