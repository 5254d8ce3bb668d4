"""What every bench script does with its result: print it, and keep it as JSON when asked
(bench/results/ holds the runs docs/benchmarks.md quotes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def publish(result: Any, path: Path | None) -> None:
    print(json.dumps(result, indent=2))
    save(result, path)


def save(result: Any, path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2), encoding="utf-8")
