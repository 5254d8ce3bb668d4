"""Broker adapters: each implements the engine's Broker and MarketData ports."""
