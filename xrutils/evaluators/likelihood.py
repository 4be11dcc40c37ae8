"""Likelihood where it exists: bits per dimension on held-out real images (issue 4 §3).

Only the VAE and the PixelCNN define a likelihood. The PixelCNN's is exact (a product of 256-way softmaxes over
the pixels); the VAE's is the negative ELBO, an upper bound on its true bits/dim (see ``xrutils.models.vae``). The
GAN has no likelihood and the DDPM's variational bound needs a full pass over its 1,000 timesteps per image, so
both report ``None``. The value is the mean over the held-out ``test`` images (``eval.n_real`` of a seeded sample of
whole patients) with a bootstrap interval over patients; lower is better.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from xrutils.data.ranges import to_range
from xrutils.evaluators.stats import bootstrap_mean

BOUND_KIND = {"vae": "elbo-upper-bound", "pixelcnn": "exact"}


def has_likelihood(model: Any) -> bool:
    return callable(getattr(model, "bits_per_dim", None))


def bits_per_dim(
    model: Any,
    reals_uint8: torch.Tensor,
    *,
    batch_size: int,
    n_boot: int,
    seed: int = 0,
    family: str = "",
    groups: np.ndarray | None = None,
) -> dict[str, Any] | None:
    """``{"value", "lo", "hi", "n", "kind"}`` for a model with ``bits_per_dim``, else None; ``groups`` (the
    patient of each image) makes the interval a cluster bootstrap over patients."""
    if not has_likelihood(model):
        return None
    values = []
    with torch.no_grad():
        for i in range(0, reals_uint8.shape[0], batch_size):
            x = to_range(reals_uint8[i : i + batch_size], model.value_range).to(model.device)
            bpd = model.bits_per_dim(x)
            if bpd.shape != (x.shape[0],):
                raise ValueError(
                    f"{type(model).__name__}.bits_per_dim returned shape {tuple(bpd.shape)}; "
                    f"expected ({x.shape[0]},)"
                )
            values.append(bpd.double().cpu())
    v = torch.cat(values).numpy()
    if not np.isfinite(v).all():
        raise ValueError(f"{type(model).__name__}.bits_per_dim returned non-finite values")
    return {
        **bootstrap_mean(v, n_boot=n_boot, seed=seed, groups=groups),
        "kind": BOUND_KIND.get(family, "model-defined"),
    }
