"""The fleet config (fleet.yaml) as typed, frozen models that reject unknown keys.

Names carry their units (`max_order_value_usd`, `heartbeat_interval_s`). Secrets never
live here: a database password comes from FLEET_DB_URL (FLEET_MARKET_DATA_DB_URL) or a
password file.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fleetkit.config.dashboard import DashboardSettings
from fleetkit.config.exits import ExitSettings
from fleetkit.config.market_data import MarketDataSettings
from fleetkit.config.ml import MLSettings, check_bot_timeframes, prepare_bot
from fleetkit.config.model_store import ModelsSettings
from fleetkit.config.notify import MonitorSettings, NotifySettings
from fleetkit.config.pipeline import TrainingSettings
from fleetkit.config.plugins import PluginRequirement
from fleetkit.config.reconcile import ReconcileSettings
from fleetkit.config.strict import Strict, require_unique
from fleetkit.core.instruments import MARKETS, AssetClass
from fleetkit.core.market_data import INTERVALS_S
from fleetkit.core.orders import OrderType
from fleetkit.strategy.base import describe_params_error, spec

BOT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
RESERVED_NAMES = frozenset({"broker", "scheduler", "metrics", "notifier", "dashboard",
                            "fleet", "supervisor"})


def _has_password(url: str) -> bool:
    """Whether the URL's user-info part carries a password (any scheme, empty user too)."""
    _, sep, rest = url.partition("://")
    if not sep:
        return False
    userinfo, at, _ = rest.partition("@")
    return bool(at) and "/" not in userinfo and ":" in userinfo


class RiskSettings(Strict):
    """Per-bot rails; any of them may be overridden bot by bot."""

    max_order_value_usd: Decimal = Field(default=Decimal(25_000), gt=0)
    max_position_value_usd: Decimal = Field(default=Decimal(50_000), gt=0)
    price_collar_pct: Decimal = Field(default=Decimal(5), gt=0, le=100)
    max_price_age_s: float = Field(default=180.0, gt=0)
    daily_loss_limit_usd: Decimal | None = Field(default=Decimal(5_000), gt=0)
    fill_price_tolerance_pct: Decimal | None = Field(
        default=None, gt=0, le=100, description="how far a market order's fill may be from "
        "the price it was decided on before it is refused; default: price_collar_pct")
    max_fee_pct: Decimal = Field(default=Decimal(1), ge=0, le=100, description="a fill "
                                 "whose fee is more than this % of its notional is refused")


class RiskOverrides(Strict):
    max_order_value_usd: Decimal | None = Field(default=None, gt=0)
    max_position_value_usd: Decimal | None = Field(default=None, gt=0)
    price_collar_pct: Decimal | None = Field(default=None, gt=0, le=100)
    max_price_age_s: float | None = Field(default=None, gt=0)
    daily_loss_limit_usd: Decimal | None = Field(default=None, gt=0)
    fill_price_tolerance_pct: Decimal | None = Field(default=None, gt=0, le=100)
    max_fee_pct: Decimal | None = Field(default=None, ge=0, le=100)


class FleetRiskSettings(Strict):
    daily_loss_limit_usd: Decimal | None = Field(default=Decimal(50_000), gt=0)


class MarketDataDatabaseSettings(Strict):
    """Market data (the market_data schema branch) in a database of its own."""

    url: str | None = Field(default=None, description="default: the fleet database")
    password_file: str | None = Field(default=None,
                                      description="file holding its database password")

    @field_validator("url")
    @classmethod
    def _no_password_in_yaml(cls, url: str | None) -> str | None:
        if url and _has_password(url):
            raise ValueError("a password in the YAML database URL is not allowed: put the URL "
                             "in FLEET_MARKET_DATA_DB_URL or the password in "
                             "database.market_data.password_file")
        return url


class DatabaseSettings(Strict):
    url: str | None = Field(default=None, description="default: sqlite under the fleet home")
    password_file: str | None = Field(default=None,
                                      description="file holding the database password")
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    market_data: MarketDataDatabaseSettings = Field(default_factory=MarketDataDatabaseSettings)

    @field_validator("url")
    @classmethod
    def _no_password_in_yaml(cls, url: str | None) -> str | None:
        if url and _has_password(url):
            raise ValueError("a password in the YAML database URL is not allowed: put the URL "
                             "in FLEET_DB_URL or the password in database.password_file")
        return url


GarbageKind = Literal["missing_field", "nan_price", "negative_price", "unknown_order_fill",
                     "unknown_instrument_fill"]
GARBAGE_KINDS: tuple[GarbageKind, ...] = get_args(GarbageKind)
Probability = Annotated[float, Field(ge=0, le=1)]


class SandboxFaultSettings(Strict):
    """Fault injection, to rehearse a misbehaving venue (brokers.sandbox.faults.FaultConfig,
    field for field). Probabilities are per request; 0, the default, never happens."""

    seed: int = 0
    drop_ack_probability: Probability = 0.0
    reject_probability: Probability = 0.0
    error_5xx_probability: Probability = 0.0
    refuse_probability: Probability = 0.0
    latency_spike_probability: Probability = 0.0
    latency_spike_ms: int = Field(default=0, ge=0, le=60_000)
    duplicate_fill_probability: Probability = 0.0
    delay_fills_s: float = Field(default=0.0, ge=0, le=86_400)
    fill_after_cancel_probability: Probability = 0.0
    garbage_probability: Probability = 0.0
    garbage_kinds: list[GarbageKind] = Field(default_factory=lambda: list(GARBAGE_KINDS),
                                             min_length=1)


class SandboxStreamSettings(Strict):
    """The sandbox's quote stream (WebSocket ticks, Kite's ticker shape) that trackers follow."""

    port: int = Field(default=0, ge=0, le=65535, description="its port; 0 picks a free one "
                      "(GET /v1/stream tells clients where)")
    tick_interval_s: float = Field(default=1.0, gt=0, le=60, description="seconds between "
                                   "ticks of each subscribed instrument")


class SandboxSettings(Strict):
    """The sandbox venue: where it listens, where it keeps its book, how it behaves."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)
    url: str | None = Field(default=None, description="how bots reach it; default from host/port")
    database_url: str | None = Field(default=None, description="default: sqlite in the home")
    seed: int = 7
    time_mode: Literal["demo", "real"] = "demo"
    fee_bps: Decimal = Field(default=Decimal(1), ge=0, le=1000)
    slippage_bps: Decimal = Field(default=Decimal(2), ge=0, le=1000)
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    partial_fill_probability: float = Field(default=0.1, ge=0, le=1)
    instruments: list[dict[str, Any]] = Field(default_factory=list,
                                              description="extra instruments to invent")
    faults: SandboxFaultSettings = Field(default_factory=SandboxFaultSettings,
                                         description="fault injection, all off by default")
    stream: SandboxStreamSettings = Field(default_factory=SandboxStreamSettings)
    derivatives_file: str | None = Field(
        default=None, min_length=1, description="your index options' and futures' contract "
        "rules (lot sizes, expiry weekdays ...), in derivatives.yaml's shape, laid over the "
        "ones fleetkit ships key by key; a relative path is from the config's directory")

    @property
    def base_url(self) -> str:
        return self.url or f"http://{self.host}:{self.port}"


ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class CredentialSettings(Strict):
    """Where an exchange's API key and secret come from: the NAMES of environment variables
    or the paths of secret files, never the values (a key in YAML is refused)."""

    api_key_env: str | None = None
    secret_env: str | None = None
    password_env: str | None = Field(default=None, description="some venues add a passphrase")
    api_key_file: str | None = None
    secret_file: str | None = None
    password_file: str | None = None

    @field_validator("api_key_env", "secret_env", "password_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        if name is not None and not ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name (expected e.g. "
                             "BINANCE_API_KEY); put the secret itself in the environment")
        return name

    @model_validator(mode="after")
    def _one_source_each(self) -> CredentialSettings:
        for what in ("api_key", "secret", "password"):
            if getattr(self, f"{what}_env") and getattr(self, f"{what}_file"):
                raise ValueError(f"give {what}_env or {what}_file, not both")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.api_key_env or self.api_key_file)


def _ccxt_exchange_ids() -> list[str] | None:
    """ccxt's exchange ids (one module per exchange) without importing ccxt: its package
    imports every exchange, about a second and tens of MB in each process that loads a
    config naming an exchange — sandbox bots included. None when ccxt is not installed."""
    if "ccxt" in sys.modules and sys.modules["ccxt"] is None:
        return None  # Python's own mark for "this import must fail"
    spec = importlib.util.find_spec("ccxt")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


class ExchangeSettings(Strict):
    """A real venue reached through ccxt: spot markets, by ccxt exchange id."""

    ccxt_id: str = Field(description="ccxt exchange id, e.g. binance, kraken, coinbase")
    testnet: bool = Field(default=False, description="use the exchange's testnet/sandbox URLs")
    credentials: CredentialSettings = Field(default_factory=CredentialSettings)
    api_base_url: str | None = Field(
        default=None, description="send every API request to this scheme://host[:port] "
        "instead, paths unchanged (a local fake exchange, a recording proxy)")
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    rate_limit: bool = Field(default=True, description="space calls by the exchange's "
                             "published rate limits (turn off only for a local fake)")
    options: dict[str, Any] = Field(default_factory=dict, description="ccxt options (no secrets)")
    reserved: dict[str, Decimal] = Field(
        default_factory=dict, description="balances in the account the bots do not own, by "
        "asset: subtracted before positions are compared with the ledger")
    refresh_credentials_every_s: float | None = Field(
        default=None, gt=0, description="re-read the credentials and re-authenticate on this "
        "schedule (venues with daily tokens); a failure halts the bot until it succeeds")

    @field_validator("ccxt_id")
    @classmethod
    def _known_exchange(cls, ccxt_id: str) -> str:
        known = _ccxt_exchange_ids()
        if known is None:
            raise ValueError(f"exchange {ccxt_id!r} needs ccxt, which is not installed: "
                             "pip install 'fleetkit[live]'")
        if ccxt_id not in known:
            close = [e for e in known if e.startswith(ccxt_id[:3])][:6]
            raise ValueError(f"unknown ccxt exchange id {ccxt_id!r}"
                             + (f" (did you mean {', '.join(close)}?)" if close else ""))
        return ccxt_id

    @field_validator("options")
    @classmethod
    def _no_secrets(cls, options: dict[str, Any]) -> dict[str, Any]:
        secret = {"apikey", "secret", "password", "token", "privatekey", "uid", "login"}
        found = [k for k in options if k.lower().replace("_", "") in secret]
        if found:
            raise ValueError(f"{', '.join(found)} in options: secrets never go in YAML — name "
                             "an environment variable under credentials instead")
        return options

    @field_validator("reserved")
    @classmethod
    def _non_negative(cls, reserved: dict[str, Decimal]) -> dict[str, Decimal]:
        bad = [asset for asset, amount in reserved.items() if amount < 0]
        if bad:
            raise ValueError(f"reserved amounts cannot be negative: {', '.join(bad)}")
        return reserved

    @field_validator("api_base_url")
    @classmethod
    def _url_shape(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^/@\s]+/?$", url):
            raise ValueError("api_base_url is scheme://host[:port] (no path, no user info)")
        return url


class LiveSettings(Strict):
    """Real money is opt-in twice: here, and per bot in FLEET_LIVE_CONFIRM."""

    enabled: bool = Field(default=False, description="allow bots with mode: live on a "
                          "non-testnet exchange (FLEET_LIVE_CONFIRM must also name the bot)")


class PaperSettings(Strict):
    """Paper trading on real prices: the sandbox's matching, an exchange's public quotes."""

    fee_bps: Decimal = Field(default=Decimal(10), ge=0, le=1000)
    slippage_bps: Decimal = Field(default=Decimal(2), ge=0, le=1000)
    starting_cash: Decimal = Field(default=Decimal(100_000), gt=0,
                                   description="per bot, in the quote currency")


class RuntimeSettings(Strict):
    heartbeat_interval_s: float = Field(default=10.0, gt=0)
    stale_after_s: float = Field(default=90.0, gt=0)
    reconcile_interval_s: float = Field(default=300.0, gt=0)
    bar_settle_s: float = Field(default=1.0, ge=0, description="wait after a bar closes")
    broker_timeout_s: float = Field(default=5.0, gt=0)
    unknown_order_grace_s: float = Field(
        default=15.0, gt=0, description="how long an unanswered order may still reach the "
        "broker before a lookup that finds nothing declares it never received")
    restart_backoff_initial_s: float = Field(default=1.0, gt=0)
    restart_backoff_max_s: float = Field(default=60.0, gt=0)
    hang_timeout_s: float = Field(default=180.0, gt=0)
    stop_timeout_s: float = Field(default=8.0, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> RuntimeSettings:
        if self.stale_after_s <= self.heartbeat_interval_s:
            raise ValueError("stale_after_s must be longer than heartbeat_interval_s")
        if self.unknown_order_grace_s <= self.broker_timeout_s:
            # A request may still reach the broker until the client gives up on it: voiding
            # its order sooner could let it fill unseen.
            raise ValueError("unknown_order_grace_s must be longer than broker_timeout_s")
        return self


class BotDefaults(Strict):
    bar_interval: str = "1m"
    position_size_usd: Decimal = Field(default=Decimal(10_000), gt=0)
    allow_short: bool = False
    order_type: OrderType = OrderType.MARKET
    limit_offset_bps: Decimal = Field(default=Decimal(5), ge=0, le=1000)
    exits: ExitSettings = Field(default_factory=ExitSettings,
                                description="protective exits for every bot (none by default)")

    @field_validator("bar_interval")
    @classmethod
    def _known_interval(cls, value: str) -> str:
        if value not in INTERVALS_S:
            raise ValueError(f"unknown bar interval {value!r}; use one of {', '.join(INTERVALS_S)}")
        return value


class BotSettings(Strict):
    name: str
    market: str
    symbols: list[str] = Field(min_length=1)
    strategy: str
    params: dict[str, Any] = Field(default_factory=dict)
    mode: Literal["sandbox", "paper", "live"] = Field(
        default="sandbox", description="sandbox: invented prices; paper: an exchange's real "
        "prices, simulated fills; live: real orders on the exchange")
    exchange: str | None = Field(default=None, description="an entry of `exchanges` "
                                 "(paper and live bots)")
    bar_interval: str | None = None
    position_size_usd: Decimal | None = Field(default=None, gt=0)
    allow_short: bool | None = None
    order_type: OrderType | None = None
    limit_offset_bps: Decimal | None = Field(default=None, ge=0, le=1000)
    risk: RiskOverrides = Field(default_factory=RiskOverrides)
    exits: ExitSettings | None = Field(default=None, description="this bot's protective "
                                       "exits, instead of defaults.exits")
    ml: MLSettings | None = Field(default=None, description="a learning bot's training "
                                  "(`fleet ml train`, docs/ml.md)")
    contract: Literal["listed", "front_future"] = Field(
        default="listed", description="listed: each symbol is an instrument of the market; "
        "front_future: each symbol is an index (NIFTY) whose front-month future the bot "
        "trades, rolled to the next month before expiry (docs/futures.md)")
    signal: str | None = Field(
        default=None, description='an instrument ("NSE:NIFTY 50") whose bars the strategy '
        "reads instead of the traded instrument's: a futures bot deciding on the index")

    @model_validator(mode="before")
    @classmethod
    def _ml_paths(cls, data: Any, info: ValidationInfo) -> Any:
        # Before the params are checked: an rl_policy bot's model may come from ml.
        return prepare_bot(data, (info.context or {}).get("home"))

    @field_validator("name")
    @classmethod
    def _name_shape(cls, name: str) -> str:
        if not BOT_NAME.match(name):
            raise ValueError("bot names are 1-48 lowercase letters, digits, '-' or '_', "
                             "starting with a letter or digit")
        if name in RESERVED_NAMES:
            raise ValueError(f"{name!r} names one of the fleet's own processes; pick another "
                             "bot name")
        return name

    @field_validator("market")
    @classmethod
    def _known_market(cls, market: str) -> str:
        if market not in MARKETS:
            raise ValueError(f"unknown market {market!r}; known: {', '.join(MARKETS)}")
        return market

    @field_validator("bar_interval")
    @classmethod
    def _known_interval(cls, value: str | None) -> str | None:
        if value is not None and value not in INTERVALS_S:
            raise ValueError(f"unknown bar interval {value!r}; use one of {', '.join(INTERVALS_S)}")
        return value

    def _check_contract_and_signal(self) -> None:
        if self.contract == "front_future":
            if MARKETS[self.market].asset_class is not AssetClass.DERIVATIVE:
                derivatives = ", ".join(k for k, m in MARKETS.items()
                                        if m.asset_class is AssetClass.DERIVATIVE)
                raise ValueError(f"contract front_future trades futures: market must be a "
                                 f"derivatives segment ({derivatives}), got {self.market}")
            if self.mode != "sandbox":
                raise ValueError("contract front_future is served by the sandbox only for "
                                 "now: set mode sandbox")
        if self.signal is not None:
            market_code, _, symbol = self.signal.partition(":")
            if market_code not in MARKETS or not symbol:
                raise ValueError(f"signal {self.signal!r}: write it MARKET:SYMBOL, e.g. "
                                 "'NSE:NIFTY 50'")
            if len(self.symbols) != 1:
                raise ValueError("signal names the bars of one traded instrument: give the "
                                 "bot one symbol")
            if self.ml is not None and self.ml.signal not in (None, self.signal):
                raise ValueError(f"signal {self.signal!r} and ml.signal {self.ml.signal!r} "
                                 "differ: the strategy reads the bars its model learned "
                                 "from; set signal once, at the bot")

    @model_validator(mode="after")
    def _strategy_and_params(self) -> BotSettings:
        try:
            strategy = spec(self.strategy)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        try:
            strategy.validate(self.params)
        except ValidationError as exc:
            raise ValueError(f"params for {self.strategy}: {describe_params_error(exc)}") from None
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols are listed twice")
        self._check_contract_and_signal()
        if self.mode == "sandbox" and self.exchange is not None:
            raise ValueError("sandbox bots trade the sandbox: drop `exchange`, or set mode "
                             "to paper or live")
        if self.mode != "sandbox":
            if self.exchange is None:
                raise ValueError(f"mode {self.mode} needs `exchange:` naming an entry of "
                                 "exchanges")
            if self.market != "CRYPTO":
                raise ValueError(f"mode {self.mode} trades spot crypto through ccxt: market "
                                 "must be CRYPTO")
            quotes = {s.partition("/")[2] for s in self.symbols}
            if "" in quotes or len(quotes) != 1:
                raise ValueError("exchange symbols are BASE/QUOTE (e.g. BTC/USDT), all with "
                                 "the same quote currency")
        return self

    @property
    def quote_currency(self) -> str | None:
        """The quote currency of an exchange bot's symbols (None for sandbox bots)."""
        return None if self.mode == "sandbox" else self.symbols[0].partition("/")[2]


JOB_NAME = BOT_NAME
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
CRON_HELP = ('five fields "minute hour day-of-month month day-of-week", e.g. "0 2 * * *" '
             '(02:00 daily) or "30 9 * * 1-5" (09:30 Monday to Friday)')


def zone(name: str) -> Any:
    """The ZoneInfo for an IANA time zone name; ValueError with the fix for anything else."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as "
                         "Asia/Kolkata, Europe/London, America/New_York or UTC") from None


def crontab_trigger(expr: str, timezone: str) -> Any:
    """APScheduler's CronTrigger for a standard crontab line, in `timezone`.

    Day-of-week numbers follow crontab (0 or 7 = Sunday), not APScheduler 3's own
    (0 = Monday): "30 9 * * 1-5" means Monday to Friday, as it does in every crontab.
    Raises ValueError naming the fix. (apscheduler is imported only when jobs exist.)
    """
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"cron {expr!r} has {len(fields)} fields; write {CRON_HELP}")
    try:
        fields[4] = _crontab_weekdays(fields[4])
        return CronTrigger.from_crontab(" ".join(fields), timezone=zone(timezone))
    except ValueError as exc:
        raise ValueError(f"cron {expr!r} is not valid ({exc}); write {CRON_HELP}") from None


def _crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field as APScheduler weekday names (sun,mon,...)."""
    if field == "*":
        return field
    return ",".join(_WEEKDAYS[day] for day in crontab_weekday_numbers(field))


def crontab_weekday_numbers(field: str) -> list[int]:
    """The days a crontab day-of-week field matches, 0 = Sunday ... 6 = Saturday."""
    if field == "*":
        return list(range(7))
    days: set[int] = set()
    for item in field.lower().split(","):
        spec, slash, step_text = item.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"day-of-week step {step_text!r} must be a positive number")
        step = int(step_text) if slash else 1
        if spec == "*":
            low, high = 0, 6
        else:
            first, dash, last = spec.partition("-")
            low = _weekday(first)
            high = _weekday(last) if dash else (6 if slash else low)
            if high < low:
                raise ValueError(f"day-of-week range {spec!r} runs backwards")
        days.update(day % 7 for day in range(low, high + 1, step))
    return sorted(days)


def _weekday(text: str) -> int:
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text[:3] in _WEEKDAYS and len(text) == 3:
        return _WEEKDAYS.index(text)
    raise ValueError(f"day-of-week {text!r} must be 0-7 (0 and 7 are Sunday) or sun..sat")


def fleet_command(command: str, example: str) -> str:
    """A fleet command line as config gives it: splittable words, without `fleet` first."""
    import shlex

    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"command {command!r} cannot be split into words ({exc}): "
                         "check its quotes") from None
    if not words:
        raise ValueError(f"command is empty: give a fleet command, {example}")
    if words[0] in ("fleet", "python"):
        raise ValueError(f"write the command without {words[0]!r}, {example}")
    return command


def _known_market(market: str) -> str:
    if market not in MARKETS:
        raise ValueError(f"unknown market {market!r}; known: {', '.join(MARKETS)}")
    return market


MarketName = Annotated[str, AfterValidator(_known_market)]


def _scheduled_name(kind: str) -> AfterValidator:
    """The name rule of jobs and services (they name units, runs and leases)."""
    def check(name: str) -> str:
        if not JOB_NAME.match(name):
            raise ValueError(f"{kind} names are 1-48 lowercase letters, digits, '-' or '_', "
                             "starting with a letter or digit")
        return name
    return AfterValidator(check)


def _command_line(example: str) -> AfterValidator:
    return AfterValidator(lambda command: fleet_command(command, example))


class JobWhen(Strict):
    """A market-calendar schedule: at each session's open or close on that market's trading
    days (none on holidays), shifted by `offset_minutes`."""

    market: MarketName
    at: Literal["open", "close"]
    offset_minutes: int = Field(default=0, ge=-720, le=720)

    def describe(self) -> str:
        offset = f" {self.offset_minutes:+d}m" if self.offset_minutes else ""
        return f"{self.market} {self.at}{offset}"


class JobSettings(Strict):
    """A scheduled job: a fleet command run at each cron fire time (or market open/close).

    Each fire time is one period, run at most once fleet-wide (the database deduplicates);
    `catch_up` says what happens to periods missed while no scheduler was running.
    """

    name: Annotated[str, _scheduled_name("job")]
    command: Annotated[str, _command_line('e.g. "reconcile --all"')] = Field(
        description='a fleet command line, e.g. "reconcile --all", or a registered job kind')
    cron: str | None = Field(default=None, description='crontab line, e.g. "0 2 * * *"')
    timezone: str | None = Field(default=None, description="IANA zone of the cron line "
                                 "(default UTC)")
    when: JobWhen | None = Field(default=None, description="instead of cron: at a market's "
                                 "open or close, trading days only")
    catch_up: Literal["none", "latest", "all"] = Field(
        default="latest", description="runs missed while down: none, the latest, or all "
        "(up to max_catch_up)")
    max_catch_up: int = Field(default=10, ge=1, le=1000)
    timeout_s: float = Field(default=3600.0, gt=0, le=7 * 86_400)
    enabled: bool = True

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str | None) -> str | None:
        if name is not None:
            zone(name)
        return name

    @model_validator(mode="after")
    def _one_schedule(self) -> JobSettings:
        if (self.cron is None) == (self.when is None):
            raise ValueError('give either cron (e.g. cron: "0 2 * * *") or when (e.g. when: '
                             "{market: NSE, at: open}), not both or neither")
        if self.when is not None and self.timezone is not None:
            raise ValueError("timezone applies to cron only: drop it (market sessions carry "
                             "their own time)")
        if self.cron is not None:
            crontab_trigger(self.cron, self.zone_name)
        return self

    @property
    def zone_name(self) -> str:
        return self.timezone or "UTC"

    def describe_schedule(self) -> str:
        if self.when is not None:
            return self.when.describe()
        return f"{self.cron} {self.zone_name}"


class ServiceSettings(Strict):
    """A market-hours service: a long-running fleet command (a data collector, say) the
    scheduler starts when its market opens and stops when it closes; on a holiday there is
    no session, so it stays off. A 24/7 market's service simply runs."""

    name: Annotated[str, _scheduled_name("service")]
    command: Annotated[str, _command_line('e.g. "metrics serve --port 9200"')] = Field(
        description='a long-running fleet command line, e.g. "metrics serve --port 9200"')
    market: MarketName
    start_minutes_before_open: int = Field(default=0, ge=0, le=720)
    stop_minutes_after_close: int = Field(default=0, ge=0, le=720)
    stop_timeout_s: float = Field(default=10.0, gt=0, le=600)
    clock: Literal["wall", "sandbox"] = Field(
        default="wall", description="whose time the hours are judged in: the wall clock, or "
        "the sandbox venue's (its demo time puts a closed market in an earlier session, so "
        "a demo's collectors run whenever the sandbox trades that market)")
    enabled: bool = True

    @property
    def on_venue_clock(self) -> bool:
        """Its hours are judged in the sandbox venue's time, not the wall clock's."""
        return self.clock == "sandbox"

    def describe_hours(self) -> str:
        before = f" -{self.start_minutes_before_open}m" if self.start_minutes_before_open else ""
        after = f" +{self.stop_minutes_after_close}m" if self.stop_minutes_after_close else ""
        clock = " (sandbox time)" if self.on_venue_clock else ""
        return f"{self.market} open{before} to close{after}{clock}"


class CalendarSettings(Strict):
    overrides_file: str | None = Field(
        default=None, description="your calendar override file (holidays, special sessions), "
        "laid over the one fleetkit ships; a relative path is from the config's directory")


class FleetInfo(Strict):
    name: str = "fleet"


class FleetConfig(Strict):
    fleet: FleetInfo = Field(default_factory=FleetInfo)
    plugins: list[str] = Field(
        default_factory=list, description="your strategy modules, loaded first: `module` "
        "(registers with @register) or `module:function` (returns its StrategySpecs); a "
        "module beside the config is found there, and `fleet deploy` carries it")
    plugin_packages: list[PluginRequirement] = Field(
        default_factory=list, description="packages `fleet deploy` installs in the image or "
        'virtualenv: pip requirements ("acme-strategies==1.2") or paths beside the config '
        '("./acme-strategies"); install them here too (their entry points need no plugins line)')
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    exchanges: dict[str, ExchangeSettings] = Field(
        default_factory=dict, description="real venues for paper and live bots, by name")
    paper: PaperSettings = Field(default_factory=PaperSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    calendars: CalendarSettings = Field(default_factory=CalendarSettings)
    fx_usd: dict[str, Decimal] = Field(default_factory=lambda: dict(DEFAULT_FX_USD))
    risk: RiskSettings = Field(default_factory=RiskSettings)
    fleet_risk: FleetRiskSettings = Field(default_factory=FleetRiskSettings)
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings,
                                         description="tolerances beyond quantities")
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    defaults: BotDefaults = Field(default_factory=BotDefaults)
    bots: list[BotSettings] = Field(default_factory=list)
    jobs: list[JobSettings] = Field(default_factory=list,
                                    description="scheduled jobs (`fleet scheduler run`)")
    services: list[ServiceSettings] = Field(
        default_factory=list, description="market-hours services the scheduler starts at "
        "open and stops at close")
    notify: NotifySettings = Field(default_factory=NotifySettings, description="alerts by "
                                   "concern, reports and Telegram commands (`fleet notify run`)")
    monitors: MonitorSettings = Field(default_factory=MonitorSettings,
                                      description="server, heartbeat and security checks")
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings,
                                         description="the Streamlit dashboard "
                                         "(`fleet dashboard`)")
    market_data: MarketDataSettings = Field(
        default_factory=MarketDataSettings, description="what the options collector and "
        "the straddle tracker collect (docs/market-data.md)")
    models: ModelsSettings = Field(
        default_factory=ModelsSettings, description="the model registry's artifact store "
        "and retention (docs/registry.md)")
    training: TrainingSettings = Field(
        default_factory=TrainingSettings, description="the training pipeline: trainers, "
        "retries, per-bot runs and gates (docs/pipeline.md)")

    @field_validator("fx_usd")
    @classmethod
    def _positive_rates(cls, rates: dict[str, Decimal]) -> dict[str, Decimal]:
        merged = {**DEFAULT_FX_USD, **rates}
        bad = [k for k, v in merged.items() if v <= 0]
        if bad:
            raise ValueError(f"FX rates must be positive: {', '.join(bad)}")
        return merged

    # Field validators, so an error is reported at `bots` / `jobs`, not at the top level.
    @field_validator("bots")
    @classmethod
    def _unique_names(cls, bots: list[BotSettings]) -> list[BotSettings]:
        require_unique("bot", [bot.name for bot in bots])
        return bots

    @field_validator("jobs")
    @classmethod
    def _unique_job_names(cls, jobs: list[JobSettings]) -> list[JobSettings]:
        require_unique("job", [job.name for job in jobs])
        return jobs

    @field_validator("services")
    @classmethod
    def _unique_service_names(cls, services: list[ServiceSettings]) -> list[ServiceSettings]:
        require_unique("service", [service.name for service in services])
        return services

    @model_validator(mode="after")
    def _training_bots(self) -> FleetConfig:
        names = {bot.name for bot in self.bots}
        for name in self.training.bots:
            if name not in names:
                raise ValueError(f"training.bots.{name}: there is no bot {name!r} "
                                 f"(bots: {', '.join(sorted(names)) or 'none'})")
        return self

    @model_validator(mode="after")
    def _ml_timeframes(self) -> FleetConfig:
        for bot in self.bots:  # here: a bot's default timeframe is in `defaults`
            check_bot_timeframes(bot, self.defaults.bar_interval)
        return self

    @model_validator(mode="after")
    def _exchange_bots(self) -> FleetConfig:
        owners: dict[tuple[str, ...], str] = {}
        for bot in self.bots:
            if bot.exchange is None:
                continue
            venue = self.exchanges.get(bot.exchange)
            if venue is None:
                known = ", ".join(self.exchanges) or "none configured"
                raise ValueError(f"bot {bot.name}: exchange {bot.exchange!r} is not under "
                                 f"exchanges (known: {known})")
            if bot.mode == "live" and not venue.credentials.configured:
                raise ValueError(f"bot {bot.name}: live trading on {bot.exchange} needs "
                                 "credentials (api_key_env/secret_env or *_file)")
            short = self.defaults.allow_short if bot.allow_short is None else bot.allow_short
            if short:
                raise ValueError(f"bot {bot.name}: spot accounts cannot go short; set "
                                 "allow_short: false for paper and live bots")
            if venue.timeout_s >= self.runtime.unknown_order_grace_s:
                # An order may still land until the request times out: voiding it sooner
                # could let it fill unseen.
                raise ValueError(f"exchange {bot.exchange}: timeout_s must be shorter than "
                                 "runtime.unknown_order_grace_s")
            if bot.mode != "live":
                continue
            # A spot position is the account's balance of the base asset: two live bots
            # sharing one would each see the other's trades as a mismatch. One account is
            # one venue and one key, whatever the entries are called.
            c = venue.credentials
            account = (venue.ccxt_id, str(venue.testnet), venue.api_base_url or "",
                       c.api_key_env or c.api_key_file or "")
            for symbol in bot.symbols:
                key = (*account, symbol.partition("/")[0])
                if key in owners:
                    raise ValueError(f"bots {owners[key]} and {bot.name} both trade {key[-1]} "
                                     f"live in one {venue.ccxt_id} account: give each its own "
                                     "account (or sub-account)")
                owners[key] = bot.name
        return self

    def bot(self, name: str) -> BotSettings:
        for bot in self.bots:
            if bot.name == name:
                return bot
        raise KeyError(name)

    def job(self, name: str) -> JobSettings:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)

    @property
    def scheduled_work(self) -> bool:
        """Whether a scheduler has anything to do: an enabled job or service."""
        return any(j.enabled for j in self.jobs) or any(s.enabled for s in self.services)


DEFAULT_FX_USD: dict[str, Decimal] = {
    "USD": Decimal(1), "USDT": Decimal(1), "EUR": Decimal("1.08"), "GBX": Decimal("0.0127"),
    "GBP": Decimal("1.27"), "INR": Decimal("0.0119"), "JPY": Decimal("0.0066"),
}
