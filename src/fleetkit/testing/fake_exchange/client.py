"""ccxt wiring for the fake: Binance URLs rebased onto it, and a ready ccxt.binance client.

ccxt is imported inside the functions (it takes about a second), through importlib so the
result is plainly `Any` whatever mypy knows about ccxt.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fleetkit.brokers.ccxt.venue import rebase_urls

from .model import to_ms

# load_markets fetches spot only and nothing from sapi: no currencies (capital/config),
# no margin pairs; the fake answers the margin-pair calls too, but they cost two requests.
SPOT_ONLY_OPTIONS: dict[str, Any] = {
    "defaultType": "spot",
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "adjustForTimeDifference": False,
}


def ccxt_urls(base_url: str) -> dict[str, Any]:
    """Every entry of ccxt's `binance().urls['api']` (spot, sapi, futures, options...)
    pointed at `base_url`, paths kept: assign it to `client.urls['api']`. Entries the fake
    does not serve answer 404, so nothing a client calls can reach binance.com."""
    ccxt = importlib.import_module("ccxt")
    return dict(rebase_urls(ccxt.binance().urls["api"], base_url))


def binance_client(base_url: str, api_key: str, api_secret: str, *,
                   clock: Callable[[], datetime] | None = None, **config: Any) -> Any:
    """A ccxt.binance that talks only to the fake at `base_url`, for spot.

    `config` goes to ccxt's constructor (e.g. `timeout=500`); its `options` are laid over
    SPOT_ONLY_OPTIONS. Client-side rate limiting is off unless `enableRateLimit=True`:
    the fake does not need it and tests should not wait for it. The HTTP session ignores
    proxy environment variables, so loopback traffic stays on loopback.

    `clock`: sign requests with this clock's time instead of the wall clock, for a fake
    whose `now` is simulated (its recvWindow check compares against its own clock).
    """
    ccxt = importlib.import_module("ccxt")
    options = {**SPOT_ONLY_OPTIONS, **config.pop("options", {})}
    client = ccxt.binance({"apiKey": api_key, "secret": api_secret, "enableRateLimit": False,
                           **config, "options": options})
    urls = ccxt_urls(base_url)
    for name in ("api", "test", "demo"):  # sandbox or demo mode must not escape either
        client.urls[name] = dict(urls)
    client.session.trust_env = False
    if clock is not None:
        client.nonce = lambda: to_ms(clock())
    return client
