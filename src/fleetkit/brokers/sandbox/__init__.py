"""The sandbox venue: invents prices, matches orders, keeps one account per bot.

Runs in-process (tests, backtests) or as a loopback HTTP service shared by bot processes.
"""
