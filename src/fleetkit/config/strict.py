"""The base of every config model: frozen, and unknown keys are errors (a typo is caught)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def require_unique(kind: str, names: list[str]) -> None:
    """Refuse a list that names something twice (bots, jobs, underlyings ...)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"two {kind}s are named {name!r}; {kind} names must be unique")
        seen.add(name)
