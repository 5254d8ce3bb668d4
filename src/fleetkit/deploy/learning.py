"""What a deployment adds for learning bots (strategy rl_policy): the `ml` extra, installed
into the image or the units' virtualenv with torch's CPU build, and room for their first
training.

Without the extra such a bot exits 2 at start ("needs the ml extra") and its restart policy
loops it, so a config with one gets the extra wherever it is deployed. A config without one
gets exactly what it got before: no torch, no bigger image.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

ML_REQUIREMENT = "fleetkit[ml]"
# constraints/torch-cpu.txt's pins. constraints/ is not package data, so the generator
# carries them itself (a test keeps the two equal) and writes them into the bundle.
TORCH_CPU_PINS = ("torch==2.13.0",)
# PyTorch's index of CPU builds. On Linux PyPI's torch wheel is the CUDA build: with PyPI the
# only index, the pin alone would still bring gigabytes of CUDA libraries. This index's
# `2.13.0+cpu` matches the pin and, carrying a local label, sorts above PyPI's `2.13.0`.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CONSTRAINTS = "constraints/torch-cpu.txt"  # where a bundle carries the pins
# Which torch build gets installed: "cpu" (the default) or anything else for PyPI's (CUDA
# on Linux, for a GPU host). A Dockerfile build argument, a variable of install.sh.
TORCH_BUILD = "TORCH"


def bot_list(bots: Sequence[str]) -> str:
    return ", ".join(bots)


def constraints_text(generator: str, source: str) -> str:
    """The bundle's copy of constraints/torch-cpu.txt."""
    return "\n".join([
        f"# torch's CPU build for the learning bots of {source},",
        f"# written by `{generator}` (fleetkit's constraints/torch-cpu.txt). Installed with",
        f"# PyTorch's CPU index ({TORCH_CPU_INDEX}): PyPI's Linux torch is",
        "# the CUDA build, gigabytes a machine without an accelerator never uses. On a GPU host,",
        "# leave this file out to get that build (docs/deploy.md, Learning bots).",
        *TORCH_CPU_PINS,
    ]) + "\n"


def cpu_pip_options(constraints_path: str) -> str:
    """pip's options for torch's CPU build: the pins, and the index that has it."""
    return f"-c {shlex.quote(constraints_path)} --extra-index-url {TORCH_CPU_INDEX}"


def dockerfile_lines(bots: Sequence[str], constraints_dir: str) -> list[str]:
    """A Dockerfile's steps (as root, FROM the fleetkit image) adding the ml extra: the
    fleetkit already installed satisfies `fleetkit[ml]`, so pip adds only the extra's
    packages (none at all on an image built with it)."""
    constraints = shlex.quote(f"{constraints_dir}/torch-cpu.txt")
    return [
        f"# The ml extra, for the learning bots ({bot_list(bots)}). {TORCH_BUILD}=cpu (the "
        "default)",
        "# installs torch's CPU build (constraints/); any other value PyPI's, CUDA's on Linux",
        "# (FLEET_TORCH=cuda in the Compose project's .env, for a host with a GPU).",
        f"ARG {TORCH_BUILD}=cpu",
        f"COPY constraints/ {constraints_dir}/",
        f'RUN if [ "${TORCH_BUILD}" = cpu ]; then \\',
        f"      set -- -c {constraints} \\",
        f"        --extra-index-url {TORCH_CPU_INDEX}; \\",
        "    fi \\",
        f"    && pip install --no-cache-dir \"$@\" '{ML_REQUIREMENT}'",
    ]


def install_lines(bots: Sequence[str], python: str) -> list[str]:
    """systemd's install.sh: the ml extra into fleetkit's virtualenv (`python`'s), before
    any plugin package, so one that needs torch finds the CPU build there already."""
    options = cpu_pip_options(CONSTRAINTS)
    return [
        f"# The learning bots ({bot_list(bots)}) need the ml extra in fleetkit's virtualenv: "
        "torch's",
        f"# CPU build, unless {TORCH_BUILD}=cuda sh install.sh (a GPU host: PyPI's CUDA build).",
        f'if [ "${{{TORCH_BUILD}:-cpu}}" = cpu ]; then',
        f"  run {python} -m pip install {options} '{ML_REQUIREMENT}'",
        "else",
        f"  run {python} -m pip install '{ML_REQUIREMENT}'",
        "fi",
    ]
