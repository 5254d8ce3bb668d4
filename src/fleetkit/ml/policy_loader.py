"""The `rl_policy` strategy's model loader: a model directory verified (every sha256 before
anything is unpickled), checked against the bot's feature set and the observation shape
its window makes, and its normalisation read back for that feature set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fleetkit.features.normalise import Normalisation, load_normalisation
from fleetkit.features.observation import Float32Array, observation_size
from fleetkit.features.spec import FeatureSet
from fleetkit.ml.devices import resolve_device
from fleetkit.ml.model_dir import (
    NORMALISATION_FILE,
    TrainedModel,
    check_fit,
    load_verified,
    verify_model_dir,
)


class VerifiedPolicy:
    """A loaded model that acts on one observation at a time, deterministically; the LSTM's
    state is carried from one call to the next."""

    def __init__(self, model: TrainedModel, normalisation: Normalisation) -> None:
        self.model = model
        self.window = model.manifest.window
        self.actions = model.manifest.actions
        self.normalisation = normalisation
        self._state: Any = None
        self._start = np.ones(1, dtype=bool)

    def act(self, observation: Float32Array) -> int:
        actions, self._state = self.model.predict(observation[None, :], state=self._state,
                                                  episode_start=self._start)
        self._start = np.zeros(1, dtype=bool)
        return int(actions[0])


def load_policy(directory: Path, feature_set: FeatureSet, *, device: str = "cpu"
                ) -> VerifiedPolicy:
    """ModelRefusedError / NormalisationMismatchError (ConfigErrors, one line) when the
    directory changed, is incomplete, or is for another feature set or shape."""
    manifest = verify_model_dir(directory, feature_set_hash=feature_set.hash())
    # The shape follows from the model's own window: checked once that is known, without
    # hashing every file a second time.
    check_fit(directory, manifest, observation_shape=(
        observation_size(manifest.window, len(feature_set.columns)),))
    model = load_verified(directory, manifest, device=resolve_device(device))
    normalisation = load_normalisation(directory / NORMALISATION_FILE, feature_set)
    return VerifiedPolicy(model, normalisation)
