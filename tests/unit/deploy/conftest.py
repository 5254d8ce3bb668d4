"""Fixtures shared by the deployment tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleetkit.config.loader import LoadedConfig, demo_config_text, load_config


@pytest.fixture
def plain_demo(tmp_path: Path) -> LoadedConfig:
    """The demo fleet without its learning bots: what every deployment was before them."""
    raw = yaml.safe_load(demo_config_text())
    raw["bots"] = [bot for bot in raw["bots"] if bot["strategy"] != "rl_policy"]
    # ... and their training pipeline: its settings and scheduled jobs name them.
    raw.pop("training", None)
    raw["jobs"] = [job for job in raw.get("jobs", [])
                   if not job["command"].startswith("train ")]
    path = tmp_path / "plain" / "fleet.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_config(path)
