"""A trained model's directory: the files, a manifest with each one's sha256, and the one
way to load it, which verifies every checksum and the model's fit BEFORE loading anything.

    model.zip              the stable-baselines3 model (unpickled on load: hence checked first)
    normalisation.json     the features' normalisation with the feature set's hash (part 1)
    variable_weights.json  TFT only: the mean variable-selection weight of each column
    manifest.json          written last: the policy, steps, seed, observation shape, feature
                           set hash and columns, the training window and the files' sha256

A manifest that is missing or unreadable, a file missing or changed by one byte, or a model
for another feature set or observation shape is refused in one line (ModelRefusedError, a
ConfigError: the CLI exits 2) and nothing is unpickled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file

from fleetkit.core.errors import ConfigError
from fleetkit.core.hashing import sha256_file
from fleetkit.ml.policies import POLICIES
from fleetkit.ml.tft import ranked_weights

FORMAT = "fleetkit.ml.model/1"
MANIFEST = "manifest.json"
MODEL_FILE = "model.zip"
NORMALISATION_FILE = "normalisation.json"
WEIGHTS_FILE = "variable_weights.json"
_REQUIRED = (MODEL_FILE, NORMALISATION_FILE)


class ModelRefusedError(ConfigError):
    """A model directory that must not be loaded: changed, incomplete, or not for these
    features; the message names the file and the fix."""


@dataclass(frozen=True, slots=True)
class TrainingWindowInfo:
    """The bars a model learned from: instrument, bar length, first decision bar's open
    and the last bar's open (ISO 8601, UTC), and how many bars."""

    instrument: str
    interval_s: int
    start: str
    end: str
    bars: int


@dataclass(frozen=True, slots=True)
class ModelManifest:
    policy: str
    algorithm: str
    steps: int
    seed: int
    device: str
    n_envs: int
    observation_shape: tuple[int, ...]
    actions: int
    window: int
    feature_set_hash: str
    feature_columns: tuple[str, ...]
    training_window: TrainingWindowInfo
    versions: dict[str, str]
    files: dict[str, str]  # file name -> sha256 of its bytes
    # The feature set's declaration (FeatureSet.to_mapping(): what parse_feature_set reads),
    # so a bot can rebuild the features the model was trained on from the model alone;
    # None in a manifest written before it was saved. `timeframe`: the set's base.
    feature_set: dict[str, Any] | None = None
    timeframe: str | None = None

    def to_json(self) -> str:
        body = asdict(self)
        body["observation_shape"] = list(self.observation_shape)
        body["feature_columns"] = list(self.feature_columns)
        return json.dumps({"format": FORMAT, **body}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelManifest:
        body = json.loads(text)
        if body.pop("format", None) != FORMAT:
            raise ValueError(f"not a {FORMAT} manifest")
        body["observation_shape"] = tuple(int(n) for n in body["observation_shape"])
        body["feature_columns"] = tuple(str(c) for c in body["feature_columns"])
        body["training_window"] = TrainingWindowInfo(**body["training_window"])
        body["files"] = {str(k): str(v) for k, v in body["files"].items()}
        manifest = cls(**body)
        if manifest.policy not in POLICIES:
            raise ValueError(f"policy {manifest.policy!r} is not one of {POLICIES}")
        return manifest


sha256_of = sha256_file  # the name this module's callers know


@dataclass(frozen=True, slots=True)
class TrainedModel:
    """A verified model directory, loaded."""

    directory: Path
    manifest: ModelManifest
    model: BaseAlgorithm

    def predict(self, observation: npt.NDArray[np.float32], state: Any = None,
                episode_start: npt.NDArray[np.bool_] | None = None,
                deterministic: bool = True) -> tuple[npt.NDArray[np.int64], Any]:
        """Actions for one observation or a batch; the LSTM policy needs `state` (None at
        the first step) and `episode_start` carried from one call to the next."""
        actions, new_state = self.model.predict(observation, state=state,
                                                episode_start=episode_start,
                                                deterministic=deterministic)
        return np.asarray(actions, dtype=np.int64), new_state

    def variable_weights(self) -> list[tuple[str, float]]:
        """TFT only: (feature column, weight), the heaviest first; [] for other policies."""
        return load_variable_weights(self.directory)


def write_manifest(directory: Path, manifest: ModelManifest) -> None:
    """Written last, once every file it names is complete."""
    (directory / MANIFEST).write_text(manifest.to_json() + "\n", encoding="utf-8")


def verify_model_dir(directory: Path, *, feature_set_hash: str | None = None,
                     observation_shape: tuple[int, ...] | None = None) -> ModelManifest:
    """The manifest, once every file it names has its sha256 and the model fits the given
    feature set and observation shape; ModelRefusedError otherwise. Reads bytes only."""
    path = directory / MANIFEST
    try:
        manifest = ModelManifest.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelRefusedError(f"{path} is missing: not a model directory (train one with "
                                "`fleet ml train`)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelRefusedError(f"{path} is not a readable model manifest ({exc}); train "
                                "the model again") from None
    for name in _REQUIRED:
        if name not in manifest.files:
            raise ModelRefusedError(f"{path} lists no {name}; train the model again")
    for name, expected in sorted(manifest.files.items()):
        _check_file(directory, name, expected)
    check_fit(directory, manifest, feature_set_hash=feature_set_hash,
              observation_shape=observation_shape)
    return manifest


def check_fit(directory: Path, manifest: ModelManifest, *, feature_set_hash: str | None = None,
              observation_shape: tuple[int, ...] | None = None) -> None:
    """ModelRefusedError unless the model is for this feature set and observation shape."""
    if feature_set_hash is not None and manifest.feature_set_hash != feature_set_hash:
        raise ModelRefusedError(
            f"{directory} was trained on feature set {manifest.feature_set_hash[:12]}, not "
            f"this one ({feature_set_hash[:12]}); train it again on these features")
    if observation_shape is not None and manifest.observation_shape != observation_shape:
        raise ModelRefusedError(
            f"{directory} takes observations of shape {manifest.observation_shape}, not "
            f"{observation_shape}; train it again with this window and these features")


def _check_file(directory: Path, name: str, expected: str) -> None:
    file = directory / name
    if Path(name).name != name:
        raise ModelRefusedError(f"{directory / MANIFEST} names {name!r}, outside the model "
                                "directory; train the model again")
    try:
        found = sha256_of(file)
    except FileNotFoundError:
        raise ModelRefusedError(f"{file} is missing; restore the model directory whole or "
                                "train again") from None
    if found != expected:
        raise ModelRefusedError(f"{file} has sha256 {found[:12]}…, the manifest says "
                                f"{expected[:12]}…: it changed since training; refusing to "
                                "load it (restore it or train again)")


def load_model(directory: Path, *, feature_set_hash: str | None = None,
               observation_shape: tuple[int, ...] | None = None,
               device: str = "cpu") -> TrainedModel:
    """Verifies the directory (verify_model_dir), then loads the model onto `device`."""
    manifest = verify_model_dir(directory, feature_set_hash=feature_set_hash,
                                observation_shape=observation_shape)
    return load_verified(directory, manifest, device=device)


class InferenceOnlyOptimizer:
    """Stands in for the optimiser of a model loaded only to act (a bot): building torch's
    Adam imports torch._dynamo — sympy, inductor, the distributed package, ~70 MiB of a
    bot's memory (bench/fleet_density.py --per-process) — for a model that never learns
    again. It takes the saved optimiser state and refuses to step."""

    def __init__(self, params: Any, **_settings: Any) -> None:
        self.param_groups: list[dict[str, Any]] = []
        del params

    def load_state_dict(self, _state: Any, **_options: Any) -> None:
        pass  # the saved Adam moments: of no use to a model that only predicts

    def state_dict(self) -> dict[str, Any]:
        return {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        raise RuntimeError("this model was loaded to act, not to learn: load it with "
                           "inference_only=False to train it further")

    def step(self, *_args: Any) -> None:
        self.zero_grad()


def load_verified(directory: Path, manifest: ModelManifest, *,
                  device: str = "cpu", inference_only: bool = False) -> TrainedModel:
    """Load a model whose directory `verify_model_dir` has just passed (its manifest).
    `inference_only`: without its optimiser (InferenceOnlyOptimizer), for a bot."""
    kind = RecurrentPPO if manifest.algorithm == "RecurrentPPO" else PPO
    custom: dict[str, Any] | None = None
    if inference_only:
        data, _, _ = load_from_zip_file(directory / MODEL_FILE, load_data=True,
                                        device=device)
        saved = dict((data or {}).get("policy_kwargs") or {})
        custom = {"policy_kwargs": {**saved, "optimizer_class": InferenceOnlyOptimizer}}
    model = kind.load(directory / MODEL_FILE, device=device, custom_objects=custom)
    shape = tuple(model.observation_space.shape or ())
    if shape != manifest.observation_shape:
        raise ModelRefusedError(f"{directory / MODEL_FILE} takes shape {shape}, its manifest "
                                f"says {manifest.observation_shape}; train the model again")
    return TrainedModel(directory, manifest, model)


def save_variable_weights(directory: Path, columns: tuple[str, ...],
                          weights: npt.NDArray[np.float64]) -> None:
    body = {"columns": list(columns), "weights": [float(w) for w in weights]}
    (directory / WEIGHTS_FILE).write_text(json.dumps(body, indent=1) + "\n",
                                          encoding="utf-8")


def load_variable_weights(directory: Path) -> list[tuple[str, float]]:
    """The TFT's saved variable weights as (column, weight), heaviest first; [] if the
    model has none (MLP, LSTM)."""
    path = directory / WEIGHTS_FILE
    if not path.exists():
        return []
    body = json.loads(path.read_text(encoding="utf-8"))
    return ranked_weights(body["columns"], body["weights"])
