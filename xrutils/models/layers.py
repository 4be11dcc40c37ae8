"""Small helpers shared by every family: seeded initialisation and private-generator noise.

Only what is truly identical across the families lives here (STYLE.md §11); each network stays in its own file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from xrutils.config import ConfigError, _check_positive
from xrutils.seeding import derive_seed


@contextlib.contextmanager
def seeded_init(seed: int, purpose: str = "init") -> Iterator[None]:
    """Run a block (network construction) with the global torch RNG seeded from (seed, purpose), then restore it.

    PyTorch's default initialisers draw from the global RNG; forking it keeps ``build()`` deterministic for a
    seed without disturbing whatever RNG state the caller had.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, purpose))
        yield


def private_generator(generator: torch.Generator | None) -> torch.Generator:
    """The caller's generator, or a fresh CPU one with a non-deterministic seed (never the global RNG)."""
    if generator is not None:
        return generator
    g = torch.Generator()
    g.seed()
    return g


def randn(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """N(0, 1) noise drawn from ``generator`` on the generator's device, then moved to ``device``."""
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def randint(
    high: int, shape: tuple[int, ...], generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Integers uniform in [0, high) drawn from ``generator``, then moved to ``device``."""
    return torch.randint(0, high, shape, generator=generator, device=generator.device).to(device)


def check_image_size(family: str, size: int, allowed: tuple[int, ...]) -> None:
    """Raise a ConfigError naming ``data.image_size`` when ``family`` cannot build a network of this size."""
    if size not in allowed:
        raise ConfigError(
            f"data.image_size={size} is not supported by family {family!r}; expected one of {list(allowed)}"
        )


def check_positive(name: str, value: float, *, zero_ok: bool = False) -> None:
    """Raise a ConfigError naming ``model.<name>`` unless value > 0 (or >= 0 with ``zero_ok``)."""
    _check_positive("model", name, value, zero_ok=zero_ok)
