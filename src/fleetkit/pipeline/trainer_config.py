"""The fleet.yaml a trainer trains with: the production config cut down to one bot.

The trainer runs `fleet ml train BOT --config fleet.yaml --bars bars.npz` in the run's
folder with FLEET_HOME set to that folder, so the config must hold everything the bot's
training reads — the bot itself, its venue's costs (sandbox, paper), the calendars,
defaults and risk that build its recipe — and nothing it must not see: no database URL, no
notification routes, no secrets' paths, no other bots. The bot's models_dir becomes
`models` (relative: under the trainer's FLEET_HOME), so the model lands in the run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fleetkit.config.loader import LoadedConfig, demo_config_text
from fleetkit.core.errors import ConfigError
from fleetkit.core.yamltext import parse_yaml

# What a bot's training reads (ml.bot_data: the recipe, costs, calendars, catalog).
KEPT_SECTIONS = ("plugins", "sandbox", "exchanges", "paper", "live", "calendars", "fx_usd",
                 "risk", "fleet_risk", "defaults")
TRAINER_MODELS_DIR = "models"


def trainer_config_text(loaded: LoadedConfig, bot: str) -> str:
    """The YAML text (see the module docstring)."""
    path = loaded.source_path
    text = demo_config_text() if path is None else Path(path).read_text(encoding="utf-8")
    raw = parse_yaml(text, loaded.source) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{loaded.source}: the top level must be a mapping")
    bots = [b for b in raw.get("bots") or [] if isinstance(b, dict) and b.get("name") == bot]
    if len(bots) != 1:
        raise ConfigError(f"no bot named {bot!r} in {loaded.source}")
    chosen: dict[str, Any] = dict(bots[0])
    ml = dict(chosen.get("ml") or {})
    ml["models_dir"] = TRAINER_MODELS_DIR
    ml["tensorboard"] = False  # nothing on the trainer would ship the logs back
    chosen["ml"] = ml
    cut = {key: raw[key] for key in KEPT_SECTIONS if key in raw}
    cut["bots"] = [chosen]
    return yaml.safe_dump(cut, sort_keys=False)
