"""Memorisation: how close generated samples come to the images the model was trained on (issue 4 §3).

For each generated sample the distance to its nearest training image is measured in pixel space (root mean
squared difference of [0, 1] intensities) and in the X-ray feature space (Euclidean). Alone these numbers mean
little, so the same distances are measured for held-out real images (the ``test`` split): a model that copies its
training set puts its samples much closer to the training images than unseen real X-rays are (``ratio`` well
below 1). A grid of the closest pairs (sample above, its nearest training image below) is written as a PNG for a
human to look at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from xrutils.atomic import atomic_path
from xrutils.data.ranges import UNIT_RANGE, to_range

N_PAIRS = 8  # closest pairs shown in the grid


def nearest(queries: torch.Tensor, refs: torch.Tensor, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query row to its nearest reference row, and that row's index.

    ``refs`` may be uint8 images (converted to [0, 1] and flattened chunk by chunk, so a large training split is
    never held in float all at once) or a float matrix.
    """
    q = queries.double()
    best = torch.full((q.shape[0],), float("inf"), dtype=torch.float64)
    arg = torch.zeros(q.shape[0], dtype=torch.long)
    for j in range(0, refs.shape[0], chunk):
        r = refs[j : j + chunk]
        r = (to_range(r, UNIT_RANGE) if r.dtype == torch.uint8 else r).flatten(1).double()
        if r.shape[1] != q.shape[1]:
            raise ValueError(f"queries have dimension {q.shape[1]} but references {r.shape[1]}")
        v, i = torch.cdist(q, r).min(dim=1)
        better = v < best
        best[better], arg[better] = v[better], i[better] + j
    return best.numpy(), arg.numpy()


def pixel_nearest(images_uint8: torch.Tensor, train_uint8: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel RMS distance in [0, 1] intensities to the nearest training image, and its index."""
    d = images_uint8[0].numel()
    dist, idx = nearest(to_range(images_uint8, UNIT_RANGE).flatten(1), train_uint8)
    return dist / np.sqrt(d), idx


RATIO_BOOT = 200  # bootstrap replicates of the ratio's interval


def _summary(
    fake: np.ndarray, held_out: np.ndarray | None, held_out_patients: np.ndarray | None = None
) -> dict[str, float]:
    out = {"mean": float(fake.mean()), "median": float(np.median(fake)), "min": float(fake.min())}
    if held_out is not None and held_out.size:
        ref = float(np.median(held_out))
        out["test_median"] = ref
        out["ratio"] = float(np.median(fake) / ref) if ref > 0 else float("nan")
        if ref > 0:
            from xrutils.evaluators import stats

            def ratio(idx: dict[str, np.ndarray]) -> float:
                base = float(np.median(held_out[idx["held_out"]]))
                return float(np.median(fake[idx["fake"]]) / base) if base > 0 else float("nan")

            held = stats.Clusters(held_out_patients) if held_out_patients is not None else held_out.size
            ci = stats.bootstrap(ratio, {"fake": fake.size, "held_out": held}, n_boot=RATIO_BOOT, seed=0)
            out["ratio_lo"], out["ratio_hi"] = ci["lo"], ci["hi"]
    return out


def save_pairs_grid(
    fakes_uint8: torch.Tensor,
    train_uint8: torch.Tensor,
    dist: np.ndarray,
    idx: np.ndarray,
    path: str | Path,
    n_pairs: int = N_PAIRS,
) -> Path:
    """Grid of the ``n_pairs`` closest pairs: samples in the top row, their nearest training images below."""
    from torchvision.utils import make_grid, save_image  # imported here: torchvision takes seconds to import

    order = np.argsort(dist)[:n_pairs]
    top = fakes_uint8[torch.as_tensor(order)]
    bottom = train_uint8[torch.as_tensor(idx[order])]
    grid = make_grid(
        to_range(torch.cat([top, bottom]), UNIT_RANGE), nrow=len(order), padding=2, pad_value=1.0
    )
    path = Path(path)
    with atomic_path(path) as tmp:
        save_image(grid, tmp, format="PNG")
    return path


def memorisation_report(
    fakes_uint8: torch.Tensor,
    train_uint8: torch.Tensor,
    *,
    test_uint8: torch.Tensor | None = None,
    fake_features: np.ndarray | None = None,
    train_features: np.ndarray | None = None,
    test_features: np.ndarray | None = None,
    grid_path: str | Path | None = None,
    test_patients: np.ndarray | None = None,
    train_patients: np.ndarray | None = None,
) -> dict[str, Any]:
    """Nearest-training-image distances of generated (and held-out real) images, pixel and feature space.

    With ``test_patients`` and ``train_patients`` the held-out baseline is by patient: held-out images of a patient
    who also has training images are left out (their nearest training image may be the same chest), the counts
    are reported, and the ratio's 95% interval resamples the held-out images by patient (the samples by image)."""
    if fakes_uint8.shape[1:] != train_uint8.shape[1:]:
        raise ValueError(
            f"generated images {tuple(fakes_uint8.shape[1:])} and training images "
            f"{tuple(train_uint8.shape[1:])} differ in shape"
        )
    keep = None
    leaked = 0
    if test_uint8 is not None and test_patients is not None and train_patients is not None:
        inside = np.isin(np.asarray(test_patients), np.asarray(train_patients))
        leaked = int(np.unique(np.asarray(test_patients)[inside]).size)
        keep = np.flatnonzero(~inside)
        test_uint8 = test_uint8[torch.as_tensor(keep)]
        test_features = test_features[keep] if test_features is not None else None
        test_patients = np.asarray(test_patients)[keep]
    px, px_idx = pixel_nearest(fakes_uint8, train_uint8)
    has_test = test_uint8 is not None and test_uint8.shape[0] > 0
    px_test = pixel_nearest(test_uint8, train_uint8)[0] if has_test else None
    out: dict[str, Any] = {
        "pixel": _summary(px, px_test, test_patients),
        "n_fake": int(fakes_uint8.shape[0]),
        "n_train": int(train_uint8.shape[0]),
        "n_test": int(test_uint8.shape[0]) if test_uint8 is not None else 0,
    }
    if test_patients is not None:
        out["n_test_patients"] = int(np.unique(test_patients).size)
        out["test_patients_in_train"] = leaked  # left out of the baseline
        out["interval"] = "95% bootstrap of the ratio: samples by image, held-out reals by patient"
    if fake_features is not None and train_features is not None:
        tr = torch.as_tensor(train_features)
        ft = nearest(torch.as_tensor(fake_features), tr)[0]
        ft_test = (
            nearest(torch.as_tensor(test_features), tr)[0] if has_test and test_features is not None else None
        )
        out["feature"] = _summary(ft, ft_test, test_patients)
    if grid_path is not None:
        out["grid"] = str(save_pairs_grid(fakes_uint8, train_uint8, px, px_idx, grid_path))
    return out
