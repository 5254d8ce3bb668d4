"""Random streams for invented prices: one reproducible stream per instrument, use and day."""

from __future__ import annotations

import hashlib
from enum import IntEnum

import numpy as np

_UINT32 = 0xFFFF_FFFF


class Stream(IntEnum):
    """What a stream is drawn for; part of its entropy so two uses never share draws."""

    DAY_LEVELS = 1
    INTRADAY = 2


def stream_root(seed: int, instrument_key: str) -> tuple[int, ...]:
    """Entropy naming one instrument under one seed, as 32-bit words.

    The key is hashed with BLAKE2b, not hash(): Python salts str hashes per process, and the
    prices must come out the same in every process and after every restart.
    """
    # Any int is a seed, negative or past 64 bits: its sign and length lead, so no two seeds
    # (or seed and key words) run together into the same entropy.
    magnitude = abs(seed)
    seed_words = [magnitude >> shift & _UINT32
                  for shift in range(0, max(64, magnitude.bit_length()), 32)]
    digest = hashlib.blake2b(instrument_key.encode("utf-8"), digest_size=16).digest()
    key_words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return (int(seed < 0), len(seed_words), *seed_words, *key_words)


def generator(root: tuple[int, ...], stream: Stream, index: int) -> np.random.Generator:
    """The generator for block or day `index` of `stream`; independent of every other index."""
    if index < 0:
        raise ValueError(f"stream index must be non-negative, got {index}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([*root, stream, index])))
