"""What a deployment carries of the fleet's own code: plugin modules beside the config
(copied into the generated project and put on every service's PYTHONPATH) and plugin
packages (installed into the image or the virtualenv).

A plugin package is one named under `plugin_packages:` (a pip requirement, or a path beside
the config to its source, wheel or sdist), or one that provides a strategy a bot uses
through its entry point, or a `plugins:` module that lives in an installed package. A package
found installed here is carried as it was installed: copied from the directory or archive it
was installed from, else pinned (`name==version`, `name @ url`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from fleetkit.config.loader import LoadedConfig
from fleetkit.config.plugins import canonical_name, is_local, requirement_name
from fleetkit.core.errors import ConfigError
from fleetkit.deploy.learning import dockerfile_lines as learning_dockerfile_lines
from fleetkit.strategy.base import STRATEGIES

# What is never copied: caches, version control, build output, virtualenvs.
_SKIPPED_DIRS = frozenset({"__pycache__", "build", "dist", "node_modules", "venv"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
MAX_FILES = 2_000
MAX_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CopiedFile:
    path: str  # '/'-separated, relative to where the deployment keeps it
    content: bytes


@dataclass(frozen=True, slots=True)
class PluginPackage:
    """One thing pip installs: a requirement, or a copied directory or archive (`files`,
    relative to the deployment's packages directory, `target` its top)."""

    target: str  # the requirement, or the copy's name in the packages directory
    why: str  # for the generated comment: why the fleet needs it
    files: tuple[CopiedFile, ...] = ()
    source: str = ""  # the directory or archive copied

    @property
    def copied(self) -> bool:
        return bool(self.files)


@dataclass(frozen=True, slots=True)
class FleetPlugins:
    modules: tuple[CopiedFile, ...]  # relative to the deployment's plugins directory
    packages: tuple[PluginPackage, ...]


def fleet_plugins(loaded: LoadedConfig) -> FleetPlugins:
    """Everything of the user's own that the fleet in `loaded` needs to run elsewhere."""
    config_dir = loaded.config_dir
    modules: dict[str, CopiedFile] = {}
    installed: dict[str, str] = {}  # distribution -> why
    for entry in loaded.config.plugins:
        local = _local_module(entry, config_dir)
        if local is not None:
            modules.update((f.path, f) for f in local)
        else:
            installed.setdefault(_module_distribution(entry, loaded.source),
                                 f"has plugin module {entry}")
    for bot in loaded.config.bots:
        origin = STRATEGIES.origin(bot.strategy)
        if origin.kind == "package":
            installed.setdefault(origin.name, f"provides strategy {bot.strategy}")
    explicit = [_explicit(r, config_dir, loaded.source) for r in loaded.config.plugin_packages]
    named = {requirement_name(r) for r in loaded.config.plugin_packages} - {None}
    copied = {p.source for p in explicit if p.copied}
    found = [_installed(name, why) for name, why in sorted(installed.items())
             if canonical_name(name) not in named | {"fleetkit"}]  # the image has fleetkit
    packages = [*explicit, *(p for p in found if not (p.copied and p.source in copied))]
    _check_unique(packages)
    return FleetPlugins(tuple(modules[k] for k in sorted(modules)), tuple(packages))


def _local_module(entry: str, config_dir: Path | None) -> tuple[CopiedFile, ...] | None:
    """A module (file or package directory) beside the config, copied whole; None when the
    module lives elsewhere (an installed package)."""
    top = entry.partition(":")[0].split(".")[0]
    spec = importlib.util.find_spec(top)
    if spec is None or config_dir is None:
        return None
    places = [Path(p) for p in spec.submodule_search_locations or ()]
    if not places and spec.origin:
        places = [Path(spec.origin)]
    for place in places:
        if place.parent.resolve() == config_dir.resolve():
            return _tree(place, place.name) if place.is_dir() else (
                CopiedFile(place.name, place.read_bytes()),)
    return None


def _module_distribution(entry: str, source: str) -> str:
    top = entry.partition(":")[0].split(".")[0]
    names = metadata.packages_distributions().get(top)
    if names:
        return names[0]
    spec = importlib.util.find_spec(top)
    where = spec.origin if spec is not None and spec.origin else "somewhere else"
    raise ConfigError(f"{source}: plugins: {entry!r} is imported from {where}, neither beside "
                      "the config nor in an installed package, so a deployment cannot carry "
                      "it — move it next to the config file")


def _explicit(requirement: str, config_dir: Path | None, source: str) -> PluginPackage:
    if not is_local(requirement):
        return PluginPackage(requirement, "plugin_packages")
    if config_dir is None:
        raise ConfigError(f"{source}: plugin_packages: {requirement!r} is a path, and the "
                          "built-in demo has no directory")
    path = (config_dir / requirement).resolve()
    if not path.exists():
        raise ConfigError(f"{source}: plugin_packages: {requirement!r} not found ({path}): "
                          "give a package's source directory, wheel or sdist beside the config")
    return _copied(path, f"plugin_packages: {requirement}")


def _installed(name: str, why: str) -> PluginPackage:
    """An installed distribution, carried the way it was installed (PEP 610)."""
    dist = metadata.distribution(name)
    pinned = f"{dist.metadata['Name'] or name}=={dist.version}"
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "null")
    except ValueError:
        direct = None
    if not isinstance(direct, dict) or not isinstance(direct.get("url"), str):
        return PluginPackage(pinned, why)
    url = direct["url"]
    parsed = urlparse(url)
    if parsed.scheme != "file":
        vcs = direct.get("vcs_info")
        if isinstance(vcs, dict) and vcs.get("vcs") and vcs.get("commit_id"):
            url = f"{vcs['vcs']}+{url}@{vcs['commit_id']}"
        return PluginPackage(f"{dist.metadata['Name'] or name} @ {url}", why)
    path = Path(unquote(parsed.path))
    if not path.exists():
        raise ConfigError(f"package {name} {dist.version} ({why}) was installed from {path}, "
                          "which is gone: name it under plugin_packages (a requirement, or "
                          "its path beside the config)")
    return _copied(path, f"{why} (installed here from {path.name})", canonical_name(name))


def _copied(path: Path, why: str, name: str | None = None) -> PluginPackage:
    if path.is_dir():
        target = name or path.name
        return PluginPackage(target, why, _tree(path, target), str(path))
    return PluginPackage(path.name, why, (CopiedFile(path.name, path.read_bytes()),), str(path))


def _tree(root: Path, prefix: str) -> tuple[CopiedFile, ...]:
    """Every file under `root` (sorted: the same bytes every time), as `prefix/...`."""
    files: list[CopiedFile] = []
    size = 0
    for path in _walk(root):
        content = path.read_bytes()
        size += len(content)
        files.append(CopiedFile(str(PurePosixPath(prefix, path.relative_to(root).as_posix())),
                                content))
        if len(files) > MAX_FILES or size > MAX_BYTES:
            raise ConfigError(f"{root} is too big to copy into a deployment (over {MAX_FILES} "
                              f"files or {MAX_BYTES >> 20} MiB): name a wheel, or a "
                              "requirement, under plugin_packages instead")
    return tuple(files)


def _walk(root: Path) -> Iterable[Path]:
    for directory, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _skipped(d))
        for name in sorted(names):
            if not _skipped(name) and not (Path(directory) / name).is_symlink():
                yield Path(directory) / name


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in _SKIPPED_DIRS or name.endswith(_SKIPPED_SUFFIXES)


def _check_unique(packages: list[PluginPackage]) -> None:
    seen: dict[str, str] = {}
    for package in packages:
        if package.copied and package.target in seen:
            raise ConfigError(f"two plugin packages would be copied as {package.target}: "
                              f"{seen[package.target]} and {package.source} — rename one")
        seen[package.target] = package.source


# --- how the generated files carry them ---------------------------------------------------

PLUGIN_INSTALLER = "install-plugins.sh"  # systemd: installs the packages into the virtualenv


def fleet_image(fleet_name: str) -> str:
    """The image `docker compose build` makes of the fleetkit image plus the fleet's plugin
    packages: named after the fleet, so two fleets on one host keep theirs apart."""
    slug = re.sub(r"[^a-z0-9]+", "-", fleet_name.lower()).strip("-") or "fleet"
    return f"fleetkit-{slug}:latest"


def dockerfile_text(plugins: FleetPlugins, generator: str, source: str, image: str,
                    packages_dir: str, *, learning: Sequence[str] = (),
                    constraints_dir: str = "") -> str:
    """FROM the fleetkit image, plus the ml extra for the `learning` bots (its pins copied
    from constraints/ to `constraints_dir`; first: the biggest layer, and a plugin package
    that needs torch then finds its CPU build there) and the plugin packages (the copied
    ones from packages/)."""
    targets = [(f"{packages_dir}/{p.target}" if p.copied else p.target, p.why)
               for p in plugins.packages]
    installs = [f"    {shlex.quote(target)}" for target, _ in targets]
    what = [*(["the ml extra of its learning bots"] if learning else []),
            *(["the plugin packages its strategies come from"] if plugins.packages else [])]
    return "\n".join([
        f"# The fleet's image: {image} plus {' and '.join(what)},",
        f"# written by `{generator}` from {source}. `docker compose build` builds it.",
        f"FROM {image}",
        "USER root",
        *(learning_dockerfile_lines(learning, constraints_dir) if learning else []),
        *([f"COPY packages/ {packages_dir}/"] if any(p.copied for p in plugins.packages) else []),
        *[f"# {_one_line(target)}: {_one_line(why)}" for target, why in targets],
        *(["RUN pip install --no-cache-dir \\", " \\\n".join(installs)] if installs else []),
        "USER fleet",
    ]) + "\n"


def install_plugin_lines(plugins: FleetPlugins, plugins_dir: str, python: str) -> list[str]:
    """systemd's install.sh: the plugin modules (replaced as a whole) and the packages."""
    lines = []
    if plugins.modules:
        lines += [f"# The config's plugin modules, on every unit's PYTHONPATH: {plugins_dir}",
                  f"run rm -rf {plugins_dir}",
                  f"run cp -R plugins {plugins_dir}",
                  f"run chmod -R u=rwX,go=rX {plugins_dir}"]
    if plugins.packages:
        lines.append(f"run sh {PLUGIN_INSTALLER}  # the plugin packages, into {python}'s "
                     "virtualenv")
    return lines


def plugin_install_script(plugins: FleetPlugins, generator: str, source: str,
                          python: str) -> str:
    """Installs the plugin packages into fleetkit's virtualenv (install.sh runs it; run it
    again after changing them). A copied package is built from a scratch copy, so the
    generated directory stays as it was written."""
    copied = any(p.copied for p in plugins.packages)
    targets = [(f'"$packages"/{shlex.quote(p.target)}' if p.copied else shlex.quote(p.target),
                f"{p.target}: {p.why}") for p in plugins.packages]
    return "\n".join([
        "#!/bin/sh",
        f"# Installs the plugin packages of {source} into fleetkit's virtualenv ({python}),",
        f"# written by `{generator}`. Run from this directory: sh {PLUGIN_INSTALLER}",
        "set -eu",
        'cd "$(dirname "$0")"',
        *(["packages=$(mktemp -d)",
           "trap 'rm -rf \"$packages\"' EXIT",
           'cp -R packages/. "$packages"'] if copied else []),
        *[f"# {_one_line(why)}" for _, why in targets],
        f"{python} -m pip install " + " ".join(t for t, _ in targets),
    ]) + "\n"


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text).strip()
