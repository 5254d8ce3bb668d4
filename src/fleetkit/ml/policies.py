"""The three policies a learning bot can train, each as a stable-baselines3 algorithm, its
policy class and keyword arguments:

    mlp   PPO, MlpPolicy: two layers of 64 on the flattened observation
    lstm  RecurrentPPO (sb3-contrib), MlpLstmPolicy: an LSTM of 64 carried across steps
    tft   PPO, MlpPolicy on ml.tft.TemporalFusionExtractor's features

Hyperparameters are chosen for throughput on a few CPU cores (bench/rl_train.py): rollouts
of `n_steps` per environment, large minibatches, few epochs. `sb3_defaults=True` gives
stable-baselines3's own instead, for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO

from fleetkit.core.errors import ConfigError
from fleetkit.ml.tft import TemporalFusionExtractor

POLICIES = ("mlp", "lstm", "tft")


class UnknownPolicyError(ConfigError, ValueError):
    """A policy name that is not one of POLICIES (the CLI exits 2)."""


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """What `training.train` builds: `algorithm(policy, env, **hyperparameters,
    policy_kwargs=policy_kwargs)`."""

    name: str
    algorithm: type[PPO] | type[RecurrentPPO]
    policy: str
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    @property
    def recurrent(self) -> bool:
        """Whether `predict` needs the LSTM state carried from one step to the next."""
        return self.algorithm is RecurrentPPO


# Per environment per rollout; with 8 environments a rollout is 2,048 steps, as SB3's
# default of 2,048 with one. Minibatches of 512 and 4 epochs: ~800 gradient steps per
# 100,000 environment steps instead of the defaults' ~15,600, which on a CPU is what
# dominates (the ratio is in docs/benchmarks.md).
_FAST = {"n_steps": 256, "batch_size": 512, "n_epochs": 4, "learning_rate": 3e-4,
         "ent_coef": 0.01}
# The recurrent policy backpropagates through whole sequences: shorter rollouts, one
# sequence-minibatch fewer per epoch.
_RECURRENT = {"n_steps": 128, "batch_size": 512, "n_epochs": 4, "learning_rate": 3e-4,
              "ent_coef": 0.01}


def policy_spec(name: str, *, window: int, columns: tuple[str, ...],
                sb3_defaults: bool = False) -> PolicySpec:
    """The spec of policy `name` for observations of `window` rows of `columns` (plus the
    state columns); UnknownPolicyError in one line for any other name."""
    if name == "mlp":
        return PolicySpec(name, PPO, "MlpPolicy", {}, {} if sb3_defaults else dict(_FAST))
    if name == "lstm":
        return PolicySpec(name, RecurrentPPO, "MlpLstmPolicy",
                          {"lstm_hidden_size": 64, "n_lstm_layers": 1},
                          {} if sb3_defaults else dict(_RECURRENT))
    if name == "tft":
        kwargs = {"features_extractor_class": TemporalFusionExtractor,
                  "features_extractor_kwargs": {"window": window, "columns": list(columns)},
                  "net_arch": {"pi": [32], "vf": [32]}}
        return PolicySpec(name, PPO, "MlpPolicy", kwargs, {} if sb3_defaults else dict(_FAST))
    raise UnknownPolicyError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}")
