"""evolve(): a copy of a frozen dataclass with some fields changed, cheaper than
dataclasses.replace (which re-inspects the class and re-runs __init__ on every call).

It skips __init__ and __post_init__, so use it only where the changes keep the record valid
by construction — the ledger's and the venue's own bookkeeping, on their hot paths.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_FIELDS: dict[type, tuple[str, ...]] = {}


def evolve(record: T, **changes: Any) -> T:
    cls = type(record)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(record))  # type: ignore[arg-type]
        unknown = set(changes) - set(names)
        if unknown:
            raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}")
    copy = object.__new__(cls)
    set_field = object.__setattr__
    for name in names:
        set_field(copy, name, changes[name] if name in changes else getattr(record, name))
    return copy
