"""A model loaded for a bot acts exactly as trained but is built without its optimiser:
torch's Adam imports torch._dynamo (sympy, inductor ... ~70 MiB of a bot's memory) that a
model which only predicts never uses (docs/benchmarks.md, RL bots' memory)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fleetkit.ml.model_dir import load_model, load_verified, verify_model_dir
from fleetkit.ml.training import train
from tests.unit.ml.envs import coin_market, fast_env


def test_an_inference_load_acts_as_trained_and_refuses_to_learn(tmp_path: Path) -> None:
    market = coin_market(bars=200)
    trained = train(lambda: fast_env(market), "mlp", 64, 5, out_dir=tmp_path / "m", n_envs=1)
    full = load_model(trained.directory)
    light = load_verified(trained.directory, verify_model_dir(trained.directory),
                          inference_only=True)
    observations = np.random.default_rng(0).normal(
        size=(32, *full.manifest.observation_shape)).astype(np.float32)
    assert np.array_equal(full.predict(observations)[0], light.predict(observations)[0])
    with pytest.raises(RuntimeError, match="loaded to act, not to learn"):
        light.model.policy.optimizer.zero_grad()

    probe = (f"import sys; from pathlib import Path; "
             f"from fleetkit.ml.policy_loader import load_policy; "
             f"load_policy(Path({str(trained.directory)!r})); "
             f"print('torch._dynamo' in sys.modules, 'sympy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr[-2000:]
