"""Where a model runs: "cpu", or "cuda" where torch sees a GPU; "auto" picks. Shared by
training and by the `rl_policy` strategy's loader (which must not import the training
code and its simulators)."""

from __future__ import annotations

import torch

from fleetkit.core.errors import ConfigError

DEVICES = ("cpu", "cuda", "auto")


class DeviceError(ConfigError, ValueError):
    """A device that is not there (`cuda` without one) or not a device name."""


def resolve_device(device: str) -> str:
    """"cpu", or "cuda" where torch sees a GPU; "auto" picks. DeviceError in one line."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise DeviceError(f"--device cuda: torch {torch.__version__} sees no CUDA GPU here; "
                          "use --device cpu (or auto), or on a machine with an NVIDIA GPU "
                          "install torch without -c constraints/torch-cpu.txt")
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    return device
