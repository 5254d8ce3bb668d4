"""Real exchanges through ccxt: the live broker adapter and real prices for paper trading."""
