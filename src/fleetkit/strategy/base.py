"""The Strategy protocol (a signal module), what it may see, and the registry of strategies.

A strategy turns bars into signals. It keeps its indicators on itself (rebuilt after a
restart by replaying `warmup_bars` of history) and anything that must survive a restart
("already entered today") in `ctx.state`, which the engine persists after every cycle.
It never sees the ledger, the broker or the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from fleetkit.core.instruments import Instrument
from fleetkit.core.market_data import Bar
from fleetkit.core.numbers import ZERO
from fleetkit.core.signals import Signal
from fleetkit.registry import Origin, Registry

JSONValue = Any  # what json.dumps accepts; kept loose because strategies own their state


class StrategyContext:
    """A strategy's view of its world: its instrument, its position, its persisted state.

    `position` is an immutable Decimal copied from the ledger each cycle; `state` is the
    strategy's own dict (a copy: writing to it never touches the ledger).
    During warmup `warming_up` is True and `state` is a scratch dict that is thrown away.
    `average_price` is the position's average entry price (the ledger's), and
    `position_size_usd` / `usd_per_unit` the bot's sizing (None outside a bot): what a
    learned policy's observation expresses the position and its P&L against.
    """

    __slots__ = ("average_price", "instrument", "position", "position_size_usd", "state",
                 "usd_per_unit", "warming_up")

    def __init__(self, instrument: Instrument, position: Decimal = ZERO,
                 state: dict[str, JSONValue] | None = None, *, warming_up: bool = False,
                 average_price: Decimal = ZERO, position_size_usd: Decimal | None = None,
                 usd_per_unit: Decimal | None = None) -> None:
        self.instrument = instrument
        self.position = position
        self.state: dict[str, JSONValue] = {} if state is None else state
        self.warming_up = warming_up
        self.average_price = average_price
        self.position_size_usd = position_size_usd
        self.usd_per_unit = usd_per_unit


class Strategy(Protocol):
    """What a signal module implements. `on_bar` is called once per completed bar."""

    name: ClassVar[str]

    def warmup_bars(self) -> int:
        """How many past bars must be replayed before its signals mean anything."""
        ...

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> Signal | None:
        """The signal after `bar`, or None for "nothing new" (same as HOLD)."""
        ...


class StrategyParams(BaseModel):
    """Base for a strategy's parameters: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=StrategyParams)


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """A strategy as the registry knows it: its name, one line saying what it does, its
    parameters' model and the factory building it from validated parameters."""

    name: str
    summary: str
    params_model: type[StrategyParams]
    factory: Callable[[Any], Strategy]

    def build(self, params: dict[str, JSONValue]) -> Strategy:
        return self.factory(self.params_model.model_validate(params))

    def validate(self, params: dict[str, JSONValue]) -> StrategyParams:
        return self.params_model.model_validate(params)


def _builtin_strategies() -> tuple[StrategySpec, ...]:
    from fleetkit.strategy.builtin import strategies  # late: the built-ins import this module

    return strategies()


# Every strategy by name: the built-ins, a config's `plugins:` modules, and installed
# packages' `fleetkit.strategies` entry points (looked at only for a name nothing else has).
STRATEGIES: Registry[StrategySpec] = Registry(
    "strategy", "strategies", "fleetkit.strategies", StrategySpec, lambda s: s.name,
    _builtin_strategies)


def register(name: str, summary: str, params_model: type[P]) -> Callable[[Callable[[P], Strategy]],
                                                                         Callable[[P], Strategy]]:
    """Decorator for a factory taking the validated params model and returning a Strategy:
    the way a `plugins:` module registers one as it is imported. A package provides its
    strategies through the `fleetkit.strategies` entry point instead (a function returning
    `StrategySpec`s), and so can a `plugins:` entry written `module:function`."""

    def decorate(factory: Callable[[P], Strategy]) -> Callable[[P], Strategy]:
        STRATEGIES.add(StrategySpec(name, summary, params_model, factory),
                       Origin("module", factory.__module__))
        return factory

    return decorate


def unregister(name: str) -> None:
    """Remove a strategy (tests that register a throwaway one clean up with this)."""
    STRATEGIES.remove(name)


def registered() -> dict[str, StrategySpec]:
    """Every strategy, installed packages' included (see `STRATEGIES.problems()` for any
    that failed to load)."""
    return {name: entry.item for name, entry in STRATEGIES.entries().items()}


def spec(name: str) -> StrategySpec:
    """The strategy called `name`; UnknownName (a KeyError) naming the known ones."""
    return STRATEGIES.get(name)


def build_strategy(name: str, params: dict[str, JSONValue]) -> Strategy:
    return spec(name).build(params)


def describe_params_error(exc: ValidationError) -> str:
    """One line per problem, naming the parameter and (for typos) the known ones."""
    models = (e.item.params_model for e in STRATEGIES.loaded().values())
    fields = next((tuple(m.model_fields) for m in models if m.__name__ == exc.title), ())
    known = ", ".join(sorted(fields))
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            message = "unknown parameter" + (f" (known: {known})" if known else "")
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
