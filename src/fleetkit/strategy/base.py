"""The Strategy protocol (a signal module), what it may see, and the registry of built-ins.

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

JSONValue = Any  # what json.dumps accepts; kept loose because strategies own their state


class StrategyContext:
    """A strategy's view of its world: its instrument, its position, its persisted state.

    `position` is an immutable Decimal copied from the ledger each cycle; `state` is the
    strategy's own dict (a copy: writing to it never touches the ledger).
    During warmup `warming_up` is True and `state` is a scratch dict that is thrown away.
    """

    __slots__ = ("instrument", "position", "state", "warming_up")

    def __init__(self, instrument: Instrument, position: Decimal = ZERO,
                 state: dict[str, JSONValue] | None = None, *, warming_up: bool = False) -> None:
        self.instrument = instrument
        self.position = position
        self.state: dict[str, JSONValue] = {} if state is None else state
        self.warming_up = warming_up


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
    name: str
    summary: str
    params_model: type[StrategyParams]
    factory: Callable[[Any], Strategy]

    def build(self, params: dict[str, JSONValue]) -> Strategy:
        return self.factory(self.params_model.model_validate(params))

    def validate(self, params: dict[str, JSONValue]) -> StrategyParams:
        return self.params_model.model_validate(params)


_REGISTRY: dict[str, StrategySpec] = {}
_REGISTRY_PARAMS: dict[str, tuple[str, ...]] = {}  # params model title -> field names


def register(name: str, summary: str, params_model: type[P]) -> Callable[[Callable[[P], Strategy]],
                                                                         Callable[[P], Strategy]]:
    """Decorator for a factory taking the validated params model and returning a Strategy."""

    def decorate(factory: Callable[[P], Strategy]) -> Callable[[P], Strategy]:
        if name in _REGISTRY:
            raise ValueError(f"strategy {name!r} registered twice")
        _REGISTRY[name] = StrategySpec(name, summary, params_model, factory)
        _REGISTRY_PARAMS[params_model.__name__] = tuple(params_model.model_fields)
        return factory

    return decorate


def unregister(name: str) -> None:
    """Remove a strategy (tests that register a throwaway one clean up with this)."""
    removed = _REGISTRY.pop(name, None)
    if removed is not None:
        _REGISTRY_PARAMS.pop(removed.params_model.__name__, None)


def registered() -> dict[str, StrategySpec]:
    _load_builtins()
    return dict(_REGISTRY)


def spec(name: str) -> StrategySpec:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown strategy {name!r}; built-in strategies: {known}") from None


def build_strategy(name: str, params: dict[str, JSONValue]) -> Strategy:
    return spec(name).build(params)


def describe_params_error(exc: ValidationError) -> str:
    """One line per problem, naming the parameter and (for typos) the known ones."""
    known = ", ".join(sorted((exc.title and _REGISTRY_PARAMS.get(exc.title, ())) or ()))
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            message = "unknown parameter" + (f" (known: {known})" if known else "")
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _load_builtins() -> None:
    # Imported for their @register side effect; late so this module has no import cycle.
    from fleetkit.strategy import builtin  # noqa: F401
