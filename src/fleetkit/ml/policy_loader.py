"""The `rl_policy` strategy's model loader: a model directory verified (every sha256 before
anything is unpickled), its feature set read from the manifest (or the bot's, which must be
the same), checked against the observation shape its window makes, and its normalisation
read back for that feature set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fleetkit.features.errors import FeatureSetError
from fleetkit.features.normalise import Normalisation, load_normalisation
from fleetkit.features.observation import Float32Array, observation_size
from fleetkit.features.parse import parse_feature_set
from fleetkit.features.spec import FeatureSet
from fleetkit.ml.devices import resolve_device
from fleetkit.ml.model_dir import (
    MANIFEST,
    NORMALISATION_FILE,
    ModelManifest,
    ModelRefusedError,
    TrainedModel,
    check_fit,
    load_verified,
    verify_model_dir,
)


class VerifiedPolicy:
    """A loaded model that acts on one observation at a time, deterministically; the LSTM's
    state is carried from one call to the next."""

    def __init__(self, model: TrainedModel, normalisation: Normalisation,
                 feature_set: FeatureSet) -> None:
        self.model = model
        self.directory = model.directory
        self.window = model.manifest.window
        self.actions = model.manifest.actions
        self.normalisation = normalisation
        self.feature_set = feature_set
        self._state: Any = None
        self._start = np.ones(1, dtype=bool)

    def act(self, observation: Float32Array) -> int:
        actions, self._state = self.model.predict(observation[None, :], state=self._state,
                                                  episode_start=self._start)
        self._start = np.zeros(1, dtype=bool)
        return int(actions[0])


def manifest_feature_set(directory: Path, manifest: ModelManifest) -> FeatureSet | None:
    """The feature set the manifest declares (None in a manifest written before models
    saved it); ModelRefusedError if it is unreadable or not the set its hash names."""
    if manifest.feature_set is None:
        return None
    try:
        declared = parse_feature_set(manifest.feature_set)
    except FeatureSetError as exc:
        raise ModelRefusedError(f"{directory / MANIFEST} declares a feature set that does "
                                f"not read ({exc}); train the model again") from None
    if declared.hash() != manifest.feature_set_hash:
        raise ModelRefusedError(f"{directory / MANIFEST} declares a feature set whose hash "
                                f"({declared.hash()[:12]}) is not its feature_set_hash "
                                f"({manifest.feature_set_hash[:12]}); train the model again")
    return declared


def load_policy(directory: Path, feature_set: FeatureSet | None = None, *,
                device: str = "cpu") -> VerifiedPolicy:
    """ModelRefusedError / NormalisationMismatchError (ConfigErrors, one line) when the
    directory changed, is incomplete, or is for another feature set or shape. `feature_set`:
    the bot's, which must be the model's; None takes the manifest's."""
    manifest = verify_model_dir(directory)  # every sha256, before the manifest is trusted
    declared = manifest_feature_set(directory, manifest)
    if feature_set is None:
        if declared is None:
            raise ModelRefusedError(
                f"{directory / MANIFEST} does not declare its feature set (trained before "
                "models saved it); give the strategy the set it was trained on as "
                "params.features, or train it again")
        feature_set = declared
    elif feature_set.hash() != manifest.feature_set_hash:
        raise ModelRefusedError(
            f"params.features is not the feature set {directory} was trained on "
            f"({feature_set.hash()[:12]}, not {manifest.feature_set_hash[:12]}); drop "
            "params.features (the manifest declares the set) or train the model again on "
            "these features")
    # The shape follows from the model's own window: checked once that is known, without
    # hashing every file a second time.
    check_fit(directory, manifest, observation_shape=(
        observation_size(manifest.window, len(feature_set.columns)),))
    # A bot acts one bar at a time: torch's default of a thread per core only queues the
    # threads behind each other on a small box (on 2 cores a 3-model TFT bot's p99 went
    # from 6 to 18 ms and its worst bar to 212 ms; bench/rl_inference.py), and the bot
    # process runs nothing else of torch's.
    torch.set_num_threads(1)
    model = load_verified(directory, manifest, device=resolve_device(device),
                          inference_only=True)
    normalisation = load_normalisation(directory / NORMALISATION_FILE, feature_set)
    return VerifiedPolicy(model, normalisation, feature_set)
