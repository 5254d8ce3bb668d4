"""`plugin_packages:`: the packages a deployment installs for the fleet's own strategies."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# A pip requirement ("acme-strategies==1.2", "acme @ https://...") or a path, relative to
# the config, to a package's source directory, wheel or sdist ("./acme-strategies").
_LOCAL = ("./", "../", "/")
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


def is_local(requirement: str) -> bool:
    return requirement.startswith(_LOCAL)


def requirement_name(requirement: str) -> str | None:
    """The distribution a requirement names, normalized (PEP 503); None for a path."""
    if is_local(requirement):
        return None
    found = _NAME.match(requirement)
    return None if found is None else canonical_name(found.group(0))


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _check(requirement: str) -> str:
    if not requirement.strip() or not requirement.isprintable():
        raise ValueError(f"{requirement!r} is not a requirement: one line of printable text")
    if not is_local(requirement) and requirement_name(requirement) is None:
        raise ValueError(f"{requirement!r} is neither a requirement (e.g. "
                         '"acme-strategies==1.2") nor a path to a package beside the config '
                         '(e.g. "./acme-strategies")')
    return requirement


PluginRequirement = Annotated[str, AfterValidator(_check)]
