"""The shape of the code: dependencies point inward, adapters never import each other."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_layers_point_inward_and_adapters_stay_apart() -> None:
    cwd = Path.cwd()
    # import-linter configures logging with disable_existing_loggers: put every logger back
    # as it was, or later tests in this process would see no log records at all.
    loggers = [lg for lg in logging.root.manager.loggerDict.values()
               if isinstance(lg, logging.Logger)]
    disabled = {lg.name: lg.disabled for lg in loggers}
    os.chdir(ROOT)  # the contracts live in pyproject.toml
    try:
        assert lint_imports(no_cache=True) == 0
    finally:
        os.chdir(cwd)
        for lg in loggers:
            lg.disabled = disabled[lg.name]


def test_bot_processes_do_not_import_numpy_pandas_or_alembic() -> None:
    """A fleet is many bot processes: each must stay lean (see docs/benchmarks.md). ccxt
    too: only a bot that trades on a real exchange pays for importing it; and the learning
    stack (features, TA-Lib, torch) only a bot that runs a learned policy; and the market-
    data collectors (Arrow, WebSockets, their stores) only the collectors."""
    import subprocess
    import sys

    probe = ("import sys, fleetkit.cli.app; "
             "import fleetkit.runtime.runner, fleetkit.runtime.connections; "
             "print(','.join(m for m in ('numpy', 'pandas', 'alembic', 'ccxt', 'talib', "
             "'torch', 'gymnasium', 'fleetkit.features', 'fleetkit.ml', 'pyarrow', "
             "'websockets', 'fleetkit.data.option_collector', 'fleetkit.store.option_quotes', "
             "'fleetkit.pipeline', 'fleetkit.artifacts', 'fsspec', 's3fs', 'paramiko', "
             "'boto3', 'botocore', 'aiobotocore') "
             "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == ""
