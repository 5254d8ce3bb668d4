"""Finding, reading and validating fleet.yaml, with errors that name the file, key and fix."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from fleetkit.config.commands import check_commands
from fleetkit.config.models import FleetConfig
from fleetkit.core.errors import ConfigError
from fleetkit.core.yamltext import parse_yaml
from fleetkit.registry import Origin, PluginLoadError, import_provider
from fleetkit.strategy.base import STRATEGIES

DEMO_CONFIG = "built-in demo fleet"
BUILTIN_DEMO = "builtin:demo"  # how a child process is told to use the demo fleet


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    config: FleetConfig
    source: str  # a path, or DEMO_CONFIG
    home: Path  # where the embedded database, sandbox book and logs live

    @property
    def source_path(self) -> Path | None:
        return None if self.source == DEMO_CONFIG else Path(self.source)

    @property
    def config_dir(self) -> Path | None:
        """Where relative paths in the config start (None for the built-in demo)."""
        return None if self.source_path is None else self.source_path.parent

    def path_of(self, name: str | None) -> Path | None:
        """A path the config names (`~` expanded), a relative one taken from the config
        file's directory; None when the config names none."""
        if name is None:
            return None
        path = Path(name).expanduser()
        if not path.is_absolute() and self.config_dir is not None:
            path = self.config_dir / path
        return path


def fleet_home() -> Path:
    return Path(os.environ.get("FLEET_HOME", "var")).expanduser().absolute()


def demo_config_text() -> str:
    return resources.files("fleetkit.demo").joinpath("fleet.yaml").read_text(encoding="utf-8")


def load_config(path: str | Path | None = None) -> LoadedConfig:
    """--config, else FLEET_CONFIG, else ./fleet.yaml, else the built-in demo fleet."""
    file = _config_file(path)
    if file is None:
        demo = parse_config(demo_config_text(), DEMO_CONFIG, home=fleet_home())
        check_commands(demo, DEMO_CONFIG)
        return LoadedConfig(demo, DEMO_CONFIG, fleet_home())
    text = _read_config(file)
    config = parse_config(text, str(file), plugin_dir=file.absolute().parent,
                          home=fleet_home())
    # Here, not in `fleet jobs`: every command — `fleet up` too — refuses the same lines.
    # After parse_config, whose plugins may have registered job kinds.
    check_commands(config, str(file))
    return LoadedConfig(config, str(file.absolute()), fleet_home())


def parse_config(text: str, source: str, *, plugin_dir: Path | None = None,
                 home: Path | None = None) -> FleetConfig:
    """`home`: the fleet home that relative paths under it (a learning bot's models_dir)
    are resolved in; default fleet_home()."""
    raw = parse_yaml(text, source)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections "
                          "(fleet, database, sandbox, risk, bots ...)")
    import_plugins(raw.get("plugins"), source, plugin_dir)
    try:
        return FleetConfig.model_validate(raw, context={"home": home or fleet_home()})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe(exc, raw)}") from None


def import_plugins(plugins: object, source: str, plugin_dir: Path | None) -> None:
    """Load the modules named under `plugins:` so their strategies are registered before
    the bots that use them are validated. The config's own directory is importable, so a
    `my_strategies.py` next to fleet.yaml works without packaging it.

    An entry is `module` (its import registers, with `@register`) or `module:function`
    (fleetkit calls the function, which returns the StrategySpecs it provides, like an
    entry point of an installed package). One that is missing or broken is a ConfigError
    naming the plugin, the file and the line: the config needs it, so nothing starts."""
    if plugins is None:
        return
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError(f"{source}: plugins must be a list of module names")
    if plugin_dir is not None and str(plugin_dir) not in sys.path:
        sys.path.insert(0, str(plugin_dir))
    for name in plugins:
        if not _PLUGIN.match(name):
            raise ConfigError(f"{source}: plugins: {name!r} is not a module name (e.g. "
                              "my_strategies, or my_strategies:strategies)")
        try:
            provider = import_provider(name)
            module = name.partition(":")[0]
            if ":" in name:
                STRATEGIES.add_provided(provider, Origin("module", module), name)
        except PluginLoadError as exc:
            if exc.missing:
                raise ConfigError(f"{source}: plugins: cannot import {name!r} ({exc}); "
                                  "install it or put it next to the config file") from None
            raise ConfigError(f"{source}: plugins: {name!r} failed to load: {exc} — fix it, "
                              "or remove it from plugins") from None


_PLUGIN = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?$")


def import_config_plugins(path: str | Path | None = None) -> str | None:
    """Only the `plugins:` of the config `load_config` would pick (nothing for the demo),
    without validating the rest: what `fleet strategies` lists. Returns its source."""
    file = _config_file(path)
    if file is None:
        return None
    raw = parse_yaml(_read_config(file), str(file))
    if isinstance(raw, dict):
        import_plugins(raw.get("plugins"), str(file), file.absolute().parent)
    return str(file)


def _config_file(path: str | Path | None) -> Path | None:
    """--config, else FLEET_CONFIG, else ./fleet.yaml; None: the built-in demo fleet."""
    chosen = path or os.environ.get("FLEET_CONFIG")
    if chosen is None and Path("fleet.yaml").is_file():
        chosen = "fleet.yaml"
    if chosen is None or str(chosen) == BUILTIN_DEMO:
        return None
    return Path(chosen).expanduser()


def _read_config(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {file} not found: check --config / FLEET_CONFIG, "
                          "or run `fleet init` to write the demo config there") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None


def describe(exc: ValidationError, raw: dict[str, Any]) -> str:
    """The first problem as `key.path: what is wrong — how to fix`, plus a count of others."""
    # A misspelt key also makes the real one "missing": report the typo first.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(first["loc"])
    where = _path(loc, raw) or "top level"
    if first["type"] == "extra_forbidden":
        known = _known_keys(loc[:-1])
        hint = f"; known keys here: {', '.join(known)}" if known else ""
        message = f"unknown key{hint} — remove or rename it"
    elif first["type"] == "missing":
        message = "required key is missing — add it"
    else:
        message = _with_fix(first)
    more = f" (+{len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}"


_BOUNDS = {"greater_than": ">", "greater_than_equal": "≥", "less_than": "<",
           "less_than_equal": "≤"}
_KINDS = {"int_parsing": "a whole number", "int_type": "a whole number",
          "float_parsing": "a number", "float_type": "a number", "decimal_parsing": "a number",
          "decimal_type": "a number", "bool_parsing": "true or false",
          "bool_type": "true or false", "string_type": "text", "list_type": "a list",
          "dict_type": "a mapping", "model_type": "a mapping"}


def _with_fix(error: Any) -> str:
    """pydantic's wording turned into what to write instead."""
    kind, ctx, got = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        return f"must be a number {_BOUNDS[kind]} {bound}, got {got!r}"
    if kind in _KINDS:
        return f"must be {_KINDS[kind]}, got {got!r}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?')}, got {got!r}"
    return str(error["msg"]).removeprefix("Value error, ")


def _path(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            name = node[item].get("name") if isinstance(node, list) and item < len(node) \
                and isinstance(node[item], dict) else None
            parts[-1] += f"[{item}]" + (f" ({name})" if name else "")
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] | None = FleetConfig
    for item in loc:
        if isinstance(item, int) or model is None:
            continue
        field = model.model_fields.get(str(item))
        model = _model_of(field.annotation) if field is not None else None
    return sorted(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
