"""Distribution metrics between generated and held-out real images, computed on feature vectors.

* Fréchet distance (Heusel et al. 2017): ``|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))``.
* Kernel distance KID (Bińkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
  ``(x.y / d + 1)^3``, averaged over random subsets (mean and standard deviation reported).
* Precision and recall (Kynkäänniemi et al. 2019): the fraction of generated samples inside the real manifold (the
  union of balls reaching each real sample's k-th nearest real neighbour, k = 3), and vice versa.

Implementation choices. FD comes from torchmetrics (``FrechetInceptionDistance``), maintained and tested against
the reference implementation, fed through a pass-through ``nn.Module`` (torchmetrics accepts a custom feature
extractor): the features are computed once and cached per split (:mod:`xrutils.evaluators.features`), so the
metric must take feature vectors, not images. It accumulates in float64 and takes the matrix square root through
the eigenvalues of ``S_r S_g`` (equivalent to ``scipy.linalg.sqrtm`` for covariance matrices, tested, and free of
sqrtm's complex round-off). Bootstrap resamples use :class:`FrechetReference`, the same quantity in a symmetric
form with the real side factored once. KID uses torchmetrics' polynomial kernel and unbiased MMD^2 functions
(``KernelInceptionDistance.compute`` itself draws its subsets from the global RNG and recomputes every kernel
matrix per subset: half a minute per run on two busy CPU cores); here the subsets come from a private generator
and all subset sums from one matrix product (:func:`kernel_distance`).
torchmetrics has no k-NN precision/recall for generative models, so that one is written here with
``torch.cdist``.

Every value is reported with the numbers of generated and real samples it was computed from: FD is biased upward
at small n (roughly by ``d / n``), KID is unbiased, precision/recall depend on n through the k-NN radii.

* FD8 (:func:`pooled_fd`): the same Fréchet distance on a tiny fixed feature space that needs no training, each
  image average-pooled to 8 x 8 (64 numbers in [0, 1]). It sees only the coarse layout (dark borders, bright
  body, lung fields), which is exactly what a model that has learned nothing lacks: real vs real is about 0.1 on
  the phantom (0.2 on NIH), noise 3-6. It is the learning check behind the build's learning summary
  (``bench/fd8.py`` prints it for any run), independent of the trained X-ray encoder.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import maximum_mean_discrepancy, poly_kernel

from xrutils.evaluators.stats import ALPHA

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000  # torchmetrics' default; capped by the sample counts
PR_K = 3  # Kynkäänniemi et al.'s k


class _PassThrough(nn.Module):
    """The 'feature extractor' for features that are already computed."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _as_features(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    if t.ndim != 2:
        raise ValueError(f"{name}: expected a (N, D) feature matrix, got shape {tuple(t.shape)}")
    if t.shape[0] < 2:
        raise ValueError(f"{name}: at least 2 feature vectors are needed, got {t.shape[0]}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: feature matrix holds NaN or infinite values")
    return t


def _check_dims(real: torch.Tensor, fake: torch.Tensor) -> None:
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real features have dimension {real.shape[1]} but generated ones {fake.shape[1]}")


def frechet_distance(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (torchmetrics, float64)."""
    r, f = _as_features(real, "real"), _as_features(fake, "fake")
    _check_dims(r, f)
    fid = FrechetInceptionDistance(feature=_PassThrough(r.shape[1])).set_dtype(torch.float64)
    fid.update(r, real=True)
    fid.update(f, real=False)
    return max(0.0, float(fid.compute()))  # eigenvalue round-off can leave a tiny negative value at d = 0


def kid_subsets(nr: int, nf: int, size: int, subsets: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The random subsets of KID: ``(subsets, size)`` index matrices into the real and the generated features."""
    g = torch.Generator().manual_seed(seed)
    i = torch.stack([torch.randperm(nr, generator=g)[:size] for _ in range(subsets)])
    j = torch.stack([torch.randperm(nf, generator=g)[:size] for _ in range(subsets)])
    return i, j


def _block_sums(k: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``sum(k[r][:, c])`` for every subset pair at once, as ``1_r^T k 1_c`` with 0/1 membership matrices."""
    mr = torch.zeros(rows.shape[0], k.shape[0], dtype=k.dtype).scatter_(1, rows, 1.0)
    mc = torch.zeros(cols.shape[0], k.shape[1], dtype=k.dtype).scatter_(1, cols, 1.0)
    return ((mr @ k) * mc).sum(dim=1)


def kernel_distance(
    real: np.ndarray | torch.Tensor,
    fake: np.ndarray | torch.Tensor,
    *,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (mean, std over subsets) with the cubic polynomial kernel, deterministic under ``seed``.

    The kernel is torchmetrics' ``poly_kernel``. When the subset size equals both sample counts every subset is
    the whole set: one evaluation of torchmetrics' unbiased MMD^2 is exact and the std is 0. Otherwise the three
    kernel matrices are computed once and the per-subset sums come from one matrix product each (torchmetrics
    recomputes every kernel matrix per subset, 100x the work); the subsets come from a private generator.
    """
    r, f = _as_features(real, "real"), _as_features(fake, "fake")
    _check_dims(r, f)
    nr, nf = r.shape[0], f.shape[0]
    m = min(subset_size, nr, nf)
    if m == nr == nf:
        value = float(maximum_mean_discrepancy(poly_kernel(r, r), poly_kernel(r, f), poly_kernel(f, f)))
        return value, 0.0
    i, j = kid_subsets(nr, nf, m, subsets, seed)
    k_rr, k_rf, k_ff = poly_kernel(r, r), poly_kernel(r, f), poly_kernel(f, f)
    within_r = _block_sums(k_rr, i, i) - k_rr.diagonal()[i].sum(dim=1)  # off-diagonal sums
    within_f = _block_sums(k_ff, j, j) - k_ff.diagonal()[j].sum(dim=1)
    v = (within_r + within_f) / (m * (m - 1)) - 2 * _block_sums(k_rf, i, j) / m**2
    return float(v.mean()), float(v.std(unbiased=False))


def _kth_nn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    d = torch.cdist(x, x)
    # the k-th neighbour other than the point itself: index k of the sorted row (index 0 is the point, distance 0)
    return d.kthvalue(min(k + 1, x.shape[0]), dim=1).values


def _coverage(manifold: torch.Tensor, radii: torch.Tensor, queries: torch.Tensor, chunk: int = 1024) -> float:
    inside = []
    for i in range(0, queries.shape[0], chunk):
        d = torch.cdist(queries[i : i + chunk], manifold)  # (q, m)
        inside.append((d <= radii[None, :]).any(dim=1))
    return float(torch.cat(inside).double().mean())


def precision_recall(
    real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, k: int = PR_K
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds in feature space."""
    r, f = _as_features(real, "real"), _as_features(fake, "fake")
    _check_dims(r, f)
    precision = _coverage(r, _kth_nn_radii(r, k), f)
    recall = _coverage(f, _kth_nn_radii(f, k), r)
    return precision, recall


class FrechetReference:
    """The real side of the Fréchet distance, factored once, for the many evaluations of a bootstrap.

    Uses ``Tr((S_r S_g)^(1/2)) = Tr((S_r^(1/2) S_g S_r^(1/2))^(1/2))``: the inner matrix is symmetric positive
    semi-definite, so one ``eigvalsh`` per evaluation suffices (about 20x faster than torchmetrics' general
    ``eigvals`` of the non-symmetric product, which matters for 1,000 resamples). The value equals
    :func:`frechet_distance` to round-off (tested).
    """

    def __init__(self, real: np.ndarray | torch.Tensor):
        r = np.asarray(real, dtype=np.float64)
        if r.ndim != 2 or r.shape[0] < 2 or not np.isfinite(r).all():
            raise ValueError(f"real features: expected a finite (N >= 2, D) matrix, got shape {r.shape}")
        self.mu = r.mean(axis=0)
        cov = np.cov(r, rowvar=False)
        w, v = np.linalg.eigh(cov)
        self.sqrt_cov = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        self.trace = float(np.trace(cov))
        self.dim = r.shape[1]

    def distance(self, fake: np.ndarray) -> float:
        if fake.ndim != 2 or fake.shape[1] != self.dim:
            raise ValueError(f"generated features have shape {fake.shape}; expected (N, {self.dim})")
        mu = fake.mean(axis=0)
        cov = np.cov(fake, rowvar=False)
        inner = self.sqrt_cov @ cov @ self.sqrt_cov
        root_trace = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
        return max(0.0, float(((self.mu - mu) ** 2).sum() + self.trace + np.trace(cov) - 2 * root_trace))


def fd_interval(
    real: np.ndarray, fake: np.ndarray, *, n_boot: int, seed: int = 0, alpha: float = ALPHA
) -> tuple[float, float]:
    """Percentile interval of the FD over bootstrap resamples of the generated samples (the real set held fixed).

    Resampling duplicates samples, which biases FD upward; read the interval as the spread due to the finite
    generated sample, not as an unbiased confidence interval for the population FD.
    """
    ref = FrechetReference(real)
    rng = np.random.default_rng(seed)
    n = fake.shape[0]
    reps = [ref.distance(fake[rng.integers(0, n, size=n)]) for _ in range(n_boot)]
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


POOL = 8  # FD8: images average-pooled to 8 x 8


def pooled_features(images_uint8: torch.Tensor, pool: int = POOL) -> np.ndarray:
    """uint8 images (N, 1, S, S) -> (N, pool * pool) float64 in [0, 1]: each image average-pooled to pool x pool.

    S must be a multiple of ``pool`` (16, 32, 64, 128 px all are for the default 8).
    """
    if images_uint8.dtype != torch.uint8 or images_uint8.ndim != 4 or images_uint8.shape[1] != 1:
        raise ValueError(
            f"pooled_features expects uint8 images (N, 1, S, S), got {images_uint8.dtype} "
            f"{tuple(images_uint8.shape)}"
        )
    size = images_uint8.shape[-1]
    if size % pool or images_uint8.shape[-2] != size:
        raise ValueError(
            f"pooled_features needs square images whose side is a multiple of {pool}, got "
            f"{tuple(images_uint8.shape[-2:])}"
        )
    x = images_uint8.double().div_(255.0)
    return torch.nn.functional.avg_pool2d(x, size // pool).flatten(1).numpy()


def pooled_fd(real_uint8: torch.Tensor, fake_uint8: torch.Tensor, pool: int = POOL) -> float:
    """FD8: the Fréchet distance between real and generated images average-pooled to ``pool`` x ``pool``.

    The two sets may differ in image size (each is pooled to the same grid), so a 32 px model can be compared
    with 64 px reals.
    """
    return FrechetReference(pooled_features(real_uint8, pool)).distance(pooled_features(fake_uint8, pool))


def feature_metrics(
    real: np.ndarray, fake: np.ndarray, *, n_boot: int = 0, seed: int = 0, prefix: str = ""
) -> dict[str, float | int]:
    """FD (with a bootstrap interval when ``n_boot``), KID, precision and recall, with both sample counts."""
    fd = frechet_distance(real, fake)
    kid, kid_std = kernel_distance(real, fake, seed=seed)
    precision, recall = precision_recall(real, fake)
    out: dict[str, float | int] = {
        "fd": fd,
        "kid": kid,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "n_fake": int(fake.shape[0]),
        "n_real": int(real.shape[0]),
    }
    if n_boot:
        out["fd_lo"], out["fd_hi"] = fd_interval(real, fake, n_boot=n_boot, seed=seed)
    return {f"{prefix}{k}": v for k, v in out.items()}
