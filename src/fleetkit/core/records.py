"""evolve(): a copy of a frozen dataclass with some fields changed, cheaper than
dataclasses.replace (which re-inspects the class and re-runs __init__ on every call).

It skips __init__ and __post_init__, so use it only where the changes keep the record valid
by construction — the ledger's and the venue's own bookkeeping, on their hot paths.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_COPIERS: dict[type, Callable[..., Any]] = {}
_UNCHANGED = object()


def evolve(record: T, **changes: Any) -> T:
    cls = type(record)
    copier = _COPIERS.get(cls)
    if copier is None:
        copier = _COPIERS[cls] = _copier(cls)
    try:
        copied: T = copier(record, **changes)
    except TypeError:
        unknown = set(changes) - {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        if unknown:
            raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}") from None
        raise
    return copied


def _copier(cls: type) -> Callable[..., Any]:
    """A function made for `cls` alone, as dataclasses makes __init__: one keyword per field,
    each set on a bare instance straight from the old record or the change, without a loop
    or a dict lookup per field (through each slot's own setter, where the class has slots,
    which skips the attribute lookup a generic setattr makes)."""
    names = [f.name for f in dataclasses.fields(cls)]
    if {"record", "new"} & set(names):
        return lambda record, **changes: dataclasses.replace(record, **changes)
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_same": _UNCHANGED}
    setters = []
    for n, name in enumerate(names):
        slot = cls.__dict__.get(name)
        if isinstance(slot, types.MemberDescriptorType):
            scope[f"_set{n}"] = slot.__set__
            setters.append(f"    _set{n}(new, record.{name} if {name} is _same else {name})")
        else:
            scope[f"_set{n}"] = object.__setattr__
            setters.append(f"    _set{n}(new, {name!r}, record.{name} if {name} is _same "
                           f"else {name})")
    keywords = ", ".join(f"{name}=_same" for name in names)
    source = "\n".join([f"def copy(record, *, {keywords}):", "    new = _new(_cls)", *setters,
                        "    return new"])
    exec(source, scope)  # noqa: S102 - the source is built from field names alone
    copier: Callable[..., Any] = scope["copy"]
    return copier
