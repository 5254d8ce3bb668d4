"""Named registries of what users add to fleetkit (strategies; job kinds and feature sets fit
the same shape): built-ins, plugin modules and installed packages, each entry with its origin.

Nothing registers by being imported. A registry asks for its entries when a name is first
looked up or the whole list is wanted, in this order:

1. its built-ins: a function fleetkit passes in, which returns them;
2. what was added explicitly (`add`, `add_provided`): a config's `plugins:` modules;
3. installed packages, through the registry's entry-point group, only when 1 and 2 lack
   the name (or everything is listed), so a bot of built-ins never scans installed packages.
   An entry point names a function returning the entries it provides (or that sequence
   itself):

       [project.entry-points."fleetkit.strategies"]
       acme = "acme_strategies:strategies"   # def strategies() -> list[StrategySpec]

A package that fails to load (a SyntaxError, an exception, an entry clashing with another)
adds nothing and becomes a `PluginProblem` naming the package and the file and line; the
others load. Whoever needs the missing name reports it (`UnknownName` carries the problems).
"""

from __future__ import annotations

import importlib
import os
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

_HERE = os.path.abspath(__file__)
_IMPORT_MACHINERY = (os.path.dirname(os.path.abspath(importlib.__file__ or "")) + os.sep, "<")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an entry came from: fleetkit itself, a plugin module or an installed package."""

    kind: Literal["builtin", "module", "package"]
    name: str  # "fleetkit", the module's name, or the distribution's name
    version: str = ""  # a package's version
    entry_point: str = ""  # a package's entry point (its name in the group)

    def describe(self) -> str:
        if self.kind == "builtin":
            return "built-in"
        if self.kind == "module":
            return f"plugin module {self.name}"
        return f"package {self.name} {self.version}".rstrip()


BUILTIN = Origin("builtin", "fleetkit")


@dataclass(frozen=True, slots=True)
class PluginProblem:
    """A plugin that failed to load: which one, and what went wrong where."""

    plugin: str  # e.g. "package acme-strategies 1.0 (entry point acme)"
    error: str  # e.g. "SyntaxError: invalid syntax at /srv/acme/strategies.py:3"

    def describe(self) -> str:
        return f"{self.plugin} failed to load: {self.error}"


class UnknownName(KeyError):
    """A name no built-in, plugin module or package provides; `args[0]` is the message."""

    def __init__(self, message: str, problems: tuple[PluginProblem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems

    def __str__(self) -> str:
        return str(self.args[0])


class PluginLoadError(Exception):
    """A plugin module could not be imported or what it provides is unusable; the message is
    one line naming the file and line where it broke. `missing` when the module itself was
    not found (rather than broken)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    item: T
    origin: Origin


class Registry(Generic[T]):
    """Entries of one kind by name. `kind` and `plural` word the messages ("strategy",
    "strategies"); `group` is the entry-point group packages provide them through."""

    def __init__(self, kind: str, plural: str, group: str, item_type: type[T],
                 name_of: Callable[[T], str], builtins: Callable[[], Iterable[T]]) -> None:
        self.kind = kind
        self.plural = plural
        self.group = group
        self._item_type = item_type
        self._name_of = name_of
        self._builtins = builtins
        self._entries: dict[str, Entry[T]] = {}
        self._providers: set[str] = set()  # `module:attribute`s already added
        self._problems: list[PluginProblem] = []
        self._builtins_loaded = False
        self._packages_loaded = False
        self._staging: tuple[dict[str, Entry[T]], Origin] | None = None
        self._lock = threading.RLock()

    # --- adding ----------------------------------------------------------------------------

    def add(self, item: T, origin: Origin) -> None:
        """Add one entry; ValueError if its name is taken. While a package loads, what its
        import adds (old-style decorators) belongs to the package, all or nothing."""
        with self._lock:
            self._load_builtins()
            if self._staging is not None:
                staged, origin = self._staging
                self._put(staged, item, origin)
                return
            self._put(self._entries, item, origin)

    def add_provided(self, provider: object, origin: Origin, key: str) -> None:
        """Add everything `provider` provides (see module docstring), once per `key`, all or
        nothing; PluginLoadError naming the file and line if it raises or provides junk."""
        with self._lock:
            self._load_builtins()
            if key in self._providers:
                return
            staged: dict[str, Entry[T]] = {}
            self._collect(provider, origin, staged)
            self._entries.update(staged)
            self._providers.add(key)

    def remove(self, name: str) -> T | None:
        """Forget an entry (a test's throwaway strategy); None if there was none."""
        with self._lock:
            entry = self._entries.pop(name, None)
            return None if entry is None else entry.item

    # --- looking up --------------------------------------------------------------------------

    def get(self, name: str) -> T:
        """The entry called `name`, loading installed packages only if nothing else has it;
        UnknownName (a KeyError) listing the known names and any plugin that failed."""
        return self.entry(name).item

    def entry(self, name: str) -> Entry[T]:
        with self._lock:
            self._load_builtins()
            if name not in self._entries:
                self._load_packages()
            try:
                return self._entries[name]
            except KeyError:
                raise self._unknown(name) from None

    def origin(self, name: str) -> Origin:
        return self.entry(name).origin

    def entries(self) -> dict[str, Entry[T]]:
        """Every entry, installed packages included, by name."""
        with self._lock:
            self._load_builtins()
            self._load_packages()
            return dict(self._entries)

    def problems(self) -> tuple[PluginProblem, ...]:
        """The packages that failed to load (only those tried so far: see `entries`)."""
        with self._lock:
            return tuple(self._problems)

    def loaded(self) -> dict[str, Entry[T]]:
        """What is registered now, without loading packages (for messages)."""
        with self._lock:
            self._load_builtins()
            return dict(self._entries)

    # --- inside ------------------------------------------------------------------------------

    def _unknown(self, name: str) -> UnknownName:
        builtin = sorted(n for n, e in self._entries.items() if e.origin.kind == "builtin")
        others = sorted(n for n, e in self._entries.items() if e.origin.kind != "builtin")
        message = f"unknown {self.kind} {name!r}; built-in {self.plural}: {', '.join(builtin)}"
        if others:
            message += f"; from plugins: {', '.join(others)}"
        if self._problems:
            message += "; " + "; ".join(p.describe() for p in self._problems)
        return UnknownName(message, tuple(self._problems))

    def _put(self, into: dict[str, Entry[T]], item: T, origin: Origin) -> None:
        if not isinstance(item, self._item_type):
            raise TypeError(f"a {self.kind} must be a {self._item_type.__name__}, "
                            f"got {type(item).__name__}")
        name = self._name_of(item)
        taken = into.get(name) or self._entries.get(name)
        if taken is not None:
            raise ValueError(f"{self.kind} {name!r} registered twice "
                             f"({taken.origin.describe()} has it)")
        into[name] = Entry(item, origin)

    def _collect(self, provider: object, origin: Origin, staged: dict[str, Entry[T]]) -> None:
        """Stage what a provider provides apart from the registry until all of it is good.
        A module (an entry point naming no function) provided through its import."""
        try:
            if not isinstance(provider, ModuleType):
                provided = provider() if callable(provider) else provider
                if not isinstance(provided, Iterable) or isinstance(provided, str | bytes):
                    raise TypeError(f"expected the {self.plural} it provides (a list), got "
                                    f"{type(provided).__name__}")
                for item in provided:
                    self._put(staged, item, origin)
        except Exception as exc:
            raise PluginLoadError(describe_failure(exc)) from None

    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        for item in self._builtins():
            self._put(self._entries, item, BUILTIN)

    def _load_packages(self) -> None:
        if self._packages_loaded:
            return
        self._packages_loaded = True
        for point in sorted(metadata.entry_points(group=self.group),
                            key=lambda p: (_dist_name(p), p.name)):
            self._load_package(point)

    def _load_package(self, point: metadata.EntryPoint) -> None:
        dist = point.dist
        origin = Origin("package", _dist_name(point), dist.version if dist else "", point.name)
        staged: dict[str, Entry[T]] = {}
        self._staging = (staged, origin)
        try:
            provider = point.load()
            self._staging = None
            self._collect(provider, origin, staged)
        except PluginLoadError as exc:
            self._problems.append(PluginProblem(_plugin_name(origin), str(exc)))
            return
        except (Exception, SystemExit) as exc:  # a broken package must not stop the others
            self._problems.append(PluginProblem(_plugin_name(origin), describe_failure(exc)))
            return
        finally:
            self._staging = None
        self._entries.update(staged)
        self._providers.add(point.value)


def _dist_name(point: metadata.EntryPoint) -> str:
    return point.dist.name if point.dist is not None else point.value.partition(":")[0]


def _plugin_name(origin: Origin) -> str:
    return f"{origin.describe()} (entry point {origin.entry_point})"


def import_provider(reference: str) -> object:
    """Import `module` (returned) or `module:attribute` (the attribute returned), as a
    config's `plugins:` names them; PluginLoadError naming the file and line if it fails."""
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name
                                     or module_name.startswith(exc.name + ".")):
            raise PluginLoadError(str(exc), missing=True) from None
        raise PluginLoadError(describe_failure(exc)) from None
    except (Exception, SystemExit) as exc:
        raise PluginLoadError(describe_failure(exc)) from None
    if not attribute:
        return module
    try:
        found: object = module
        for part in attribute.split("."):
            found = getattr(found, part)
    except AttributeError:
        where = getattr(module, "__file__", None) or module_name
        raise PluginLoadError(f"{module_name} ({where}) has no {attribute!r}") from None
    return found


def describe_failure(exc: BaseException) -> str:
    """One line: the exception and the plugin's own file and line where it happened."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{type(exc).__name__}: {exc.msg} at {exc.filename}:{exc.lineno}"
    text = " ".join(str(exc).split())
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    frame = _plugin_frame(exc)
    return message if frame is None else f"{message} at {frame.filename}:{frame.lineno}"


def _plugin_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The deepest frame in the plugin's own files: the first frame past the import
    machinery (and this module) is the plugin's; a package's files are its directory."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(_IMPORT_MACHINERY)
              and os.path.abspath(f.filename) != _HERE]
    if not frames:
        return None
    first = frames[0].filename
    root = os.path.dirname(first) + os.sep if os.path.basename(first) == "__init__.py" else first
    own = [f for f in frames if f.filename == first or f.filename.startswith(root)]
    return own[-1] if own else frames[-1]
