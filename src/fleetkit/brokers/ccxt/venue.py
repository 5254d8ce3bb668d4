"""One ccxt exchange, configured for spot trading, and the translation of its errors.

Everything here is I/O plumbing shared by the live broker, the market data feed and the
paper-trading price source: build the ccxt object (rate limiting on, spot only, testnet or
a local fake by config), load its markets once, and turn ccxt's exceptions into ours with
any secret scrubbed from the message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

from fleetkit.core.errors import (
    BadBrokerReplyError,
    BrokerError,
    ConfigError,
    CredentialsError,
    OrderRejectedError,
    TransientBrokerError,
)

from .credentials import (
    Credentials,
    CredentialSources,
    guard_logs,
    load_credentials,
    redact,
)

T = TypeVar("T")

# Per-exchange defaults that keep a spot account spot-only; the user's options win.
SPOT_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                "fetchMargins": False},
    "binanceus": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                  "fetchMargins": False},
}


@dataclass(frozen=True, slots=True)
class VenueSpec:
    """What the adapter needs to know about one exchange (built from config by runtime)."""

    name: str
    ccxt_id: str
    testnet: bool = False
    api_base_url: str | None = None
    timeout_s: float = 10.0
    options: Mapping[str, Any] = field(default_factory=dict)
    credentials: CredentialSources = field(default_factory=CredentialSources)
    reserved: Mapping[str, Decimal] = field(default_factory=dict)
    refresh_every_s: float | None = None
    rate_limit: bool = True


class CcxtVenue:
    """A ccxt exchange object plus its markets, safe to share between threads (calls are
    serialised: ccxt instances are not thread-safe, and a bot makes one call at a time)."""

    def __init__(self, spec: VenueSpec, *, private: bool) -> None:
        self.spec = spec
        self._private = private
        self._lock = threading.RLock()
        self._credentials: Credentials | None = None
        self.exchange: Any = self._build()
        self._markets: dict[str, Any] | None = None

    # --- construction -----------------------------------------------------------------

    def _build(self) -> Any:
        ccxt = require_ccxt()  # heavy: only processes that talk to an exchange import it
        spec = self.spec
        options = {**SPOT_OPTIONS.get(spec.ccxt_id, {}), "defaultType": "spot", **spec.options}
        exchange = getattr(ccxt, spec.ccxt_id)({
            # ccxt spaces calls by the venue's published limits; off only for local fakes.
            "enableRateLimit": spec.rate_limit,
            "timeout": int(spec.timeout_s * 1000),
            "options": options,
        })
        if spec.testnet:
            try:
                exchange.set_sandbox_mode(True)
            except ccxt.NotSupported:
                raise ConfigError(f"exchange {spec.name}: {spec.ccxt_id} has no testnet in "
                                  "ccxt; set testnet: false (and live.enabled) or pick "
                                  "another exchange") from None
        if spec.api_base_url:
            exchange.urls["api"] = rebase_urls(exchange.urls["api"], spec.api_base_url)
            exchange.session.trust_env = False  # an explicit host means no proxy detour
        if self._private:
            self._apply_credentials(exchange)
        return exchange

    def _apply_credentials(self, exchange: Any) -> None:
        credentials = load_credentials(self.spec.credentials, self.spec.name)
        if credentials is None:
            raise ConfigError(f"exchange {self.spec.name}: trading needs credentials "
                              "(credentials.api_key_env and secret_env)")
        guard_logs(credentials)  # before the first request can log a header
        exchange.apiKey = credentials.api_key.reveal()
        exchange.secret = credentials.secret.reveal()
        if credentials.password is not None:
            exchange.password = credentials.password.reveal()
        self._credentials = credentials

    def refresh_credentials(self) -> None:
        """Re-read the credentials (a rotated token file, a new daily session) and prove
        them with an authenticated call. Raises CredentialsError or ConfigError."""
        with self._lock:
            self._apply_credentials(self.exchange)
            self.call(lambda ex: ex.fetch_balance())

    # --- calls ------------------------------------------------------------------------

    def markets(self) -> dict[str, Any]:
        if self._markets is None:
            self._markets = self.call(lambda ex: ex.load_markets())
        return self._markets

    def market(self, symbol: str) -> dict[str, Any]:
        markets = self.markets()
        found = markets.get(symbol)
        if found is None or not found.get("spot", True):
            close = [s for s in markets if s.split("/")[0] == symbol.split("/")[0]][:5]
            raise ConfigError(f"{self.spec.ccxt_id} has no spot market {symbol!r}"
                              + (f" (it has {', '.join(close)})" if close else ""))
        return dict(found)

    def call(self, action: Callable[[Any], T]) -> T:
        """Run one ccxt call; its exceptions come out as ours (see `translate`)."""
        with self._lock:
            try:
                return action(self.exchange)
            except Exception as exc:
                self.translate(exc)

    def translate(self, exc: Exception) -> NoReturn:
        import ccxt

        message = self._scrub(f"{self.spec.ccxt_id}: {type(exc).__name__}: {exc}")
        if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied
                      | ccxt.AccountSuspended) or _refused_credentials(str(exc)):
            raise CredentialsError(message) from None
        if isinstance(exc, ccxt.OrderNotFound):
            raise OrderNotFoundAtVenue(message) from None
        if isinstance(exc, ccxt.InsufficientFunds | ccxt.InvalidOrder | ccxt.BadSymbol
                      | ccxt.BadRequest):
            # BadRequest: Binance's -1013 filter failures (minimum notional ...) map there.
            raise OrderRejectedError(message) from None
        if isinstance(exc, ccxt.NetworkError | ccxt.ExchangeNotAvailable | ccxt.OnMaintenance):
            # RequestTimeout, DDoSProtection/RateLimitExceeded and 5xx all land here:
            # the request may or may not have been acted on.
            raise TransientBrokerError(message) from None
        if isinstance(exc, ccxt.BadResponse | ccxt.NullResponse | ValueError | KeyError
                      | TypeError):
            raise BadBrokerReplyError(message) from None
        if isinstance(exc, ccxt.ExchangeError):
            raise BadBrokerReplyError(message) from None
        raise BadBrokerReplyError(message) from None

    def _scrub(self, text: str) -> str:
        return redact(text, self._credentials.values() if self._credentials else [])


# Venue answers that mean "these credentials are refused" even when ccxt files them under
# another class (Binance's -2015 after a good call comes out as DDoSProtection).
_CREDENTIAL_REFUSALS = ('"code":-2015', '"code": -2015', "Invalid API-key", '"code":-1022',
                        "Signature for this request is not valid")


def _refused_credentials(text: str) -> bool:
    return any(marker in text for marker in _CREDENTIAL_REFUSALS)


def require_ccxt() -> Any:
    """The ccxt module, or a ConfigError naming the install command (it is an extra)."""
    try:
        import ccxt
    except ImportError:
        raise ConfigError("paper and live bots need ccxt, which is not installed: "
                          "pip install 'fleetkit[live]'") from None
    return ccxt


class OrderNotFoundAtVenue(BrokerError):
    """The venue has no order with that id (for a lookup, a normal answer)."""


def rebase_urls(urls: Any, base_url: str) -> Any:
    """Every URL in ccxt's (nested) `urls['api']` moved to `base_url`'s scheme and host,
    paths kept: the venue's own routing, served by a local fake or a proxy."""
    if isinstance(urls, str):
        parts = urlsplit(urls)
        base = urlsplit(base_url)
        return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, parts.fragment))
    if isinstance(urls, dict):
        return {key: rebase_urls(value, base_url) for key, value in urls.items()}
    return urls
