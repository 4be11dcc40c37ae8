"""One place for seeding: Python, NumPy and torch, plus private per-purpose generators.

The original code reseeded the global RNG inside its sampling loop (``generator=torch.manual_seed(0)``), which made
the training noise repeat every epoch. Here every consumer of randomness gets its own ``torch.Generator`` derived
from the run seed and a purpose name, so sampling never disturbs training and vice versa.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derive_seed(seed: int, purpose: str) -> int:
    """A stable 63-bit seed for ``purpose`` (e.g. "data", "fixed_noise", "eval/judge") from the run seed."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def make_generator(seed: int, purpose: str, device: str | torch.device = "cpu") -> torch.Generator:
    """A private ``torch.Generator`` on ``device`` seeded from (seed, purpose)."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, purpose))
    return g


def rng_state() -> dict:
    """Every global RNG state (for checkpoints)."""
    # Plain Python and torch types only, so checkpoints load with ``torch.load(weights_only=True)``.
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
