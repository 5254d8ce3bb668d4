"""Plugins for tests: a strategy module's source, a package's source tree pip can build
offline (its own 30-line PEP 517 backend: no setuptools, no wheel, no index), and an
"installed" distribution written straight into a site directory (a dist-info with entry
points) for tests that need one without running pip."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

GROUP = "fleetkit.strategies"


def unique(prefix: str) -> str:
    """A module or strategy name no other test in this process uses."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def strategy_source(name: str, summary: str = "always long") -> str:
    """A module whose `strategies()` returns one strategy, `name`, that always wants a full
    long position (so a bot running it orders on its first bar)."""
    return textwrap.dedent(f'''\
        """A user's own strategy, provided explicitly by `strategies()`."""
        from typing import ClassVar

        from fleetkit.core.signals import Signal, SignalLevel
        from fleetkit.strategy.base import StrategyParams, StrategySpec


        class AlwaysLongParams(StrategyParams):
            level: int = 3


        class AlwaysLong:
            name: ClassVar[str] = "{name}"

            def __init__(self, params: AlwaysLongParams) -> None:
                self.params = params

            def warmup_bars(self) -> int:
                return 0

            def on_bar(self, bar, ctx):
                return Signal.at(SignalLevel.STRONG_BUY)


        def strategies():
            return [StrategySpec("{name}", "{summary}", AlwaysLongParams, AlwaysLong)]
        ''')


def decorated_source(name: str) -> str:
    """The older style a `plugins:` module may still use: `@register` as it is imported."""
    return textwrap.dedent(f'''\
        from fleetkit.core.signals import Signal, SignalLevel
        from fleetkit.strategy.base import StrategyParams, register


        class Params(StrategyParams):
            pass


        class Hold:
            name = "{name}"

            def warmup_bars(self):
                return 0

            def on_bar(self, bar, ctx):
                return Signal.at(SignalLevel.HOLD)


        @register("{name}", "holds", Params)
        def build(params):
            return Hold()
        ''')


_BACKEND = '''\
"""A PEP 517 backend in 30 lines: a pure-Python wheel, built offline."""
import base64, hashlib, pathlib, tomllib, zipfile


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]
    stem = f"{project['name'].replace('-', '_')}-{project['version']}"
    files = {p.as_posix(): p.read_bytes() for p in sorted(pathlib.Path().rglob("*.py"))
             if p.name != "wheel_backend.py" and "__pycache__" not in p.parts}
    info = f"{stem}.dist-info"
    files[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\\nName: {project['name']}\\n"
                                 f"Version: {project['version']}\\n").encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    files[f"{info}/entry_points.txt"] = "".join(
        f"[{group}]\\n" + "".join(f"{k} = {v}\\n" for k, v in points.items())
        for group, points in project.get("entry-points", {}).items()).encode()
    digest = lambda d: base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=")
    record = [f"{n},sha256={digest(d).decode()},{len(d)}" for n, d in files.items()]
    files[f"{info}/RECORD"] = "\\n".join([*record, f"{info}/RECORD,,", ""]).encode()
    name = f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / name, "w") as wheel:
        for n, d in files.items():
            wheel.writestr(n, d)
    return name
'''


def package_source(root: Path, dist: str, module: str, source: str,
                   version: str = "1.0") -> Path:
    """A package's source tree: pyproject.toml (with the entry point), the module, and the
    in-tree backend pip builds it with."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(f'''\
        [build-system]
        requires = []
        build-backend = "wheel_backend"
        backend-path = ["."]

        [project]
        name = "{dist}"
        version = "{version}"

        [project.entry-points."{GROUP}"]
        {module} = "{module}:strategies"
        '''), encoding="utf-8")
    (root / "wheel_backend.py").write_text(_BACKEND, encoding="utf-8")
    (root / module).mkdir()
    (root / module / "__init__.py").write_text(source, encoding="utf-8")
    return root


def pip_install(target: Path, *requirements: str, cwd: Path | None = None) -> None:
    """`pip install` into `target` (a directory for PYTHONPATH), offline, no dependencies."""
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                             "--target", str(target), *requirements], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def installed_dist(site: Path, dist: str, module: str, source: str, *, value: str | None = None,
                   version: str = "1.0", group: str = GROUP) -> None:
    """What pip would leave in `site`, written directly: the module and a dist-info whose
    entry point is `value` (default `module:strategies`)."""
    (site / f"{module}.py").write_text(source, encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text(
        f"[{group}]\n{module} = {value or module + ':strategies'}\n", encoding="utf-8")
    (info / "RECORD").write_text(f"{module}.py,,\n", encoding="utf-8")
    importlib.invalidate_caches()
