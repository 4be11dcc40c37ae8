"""Statistics for the evaluators: bootstrap intervals, paired bootstrap tests, and intervals over seeds.

The thesis reports single-batch values with no interval and admits that no statistical test was done (spec §4.1,
§6 #13). Every score here therefore carries a 95% interval, and every gap in a ranking a test:

* :func:`bootstrap_mean` / :func:`bootstrap_sum_of_means`: percentile bootstrap of a mean of per-image terms (the
  judge score is ``mean(real terms) + mean(fake terms)`` over two independent samples, each resampled on its own).
* :func:`bootstrap` / :func:`paired_bootstrap`: the general form. A statistic is a function of named index sets
  (``{"real:judge64": idx, "fake:gan__baseline": idx}``); one replicate draws every named set once, so two
  statistics that share a set (the same held-out real images, the same seeds) are resampled *together*: the shared
  noise cancels in their gap. That is the paired bootstrap; sets a statistic does not share are independent.
* :class:`Clusters`: images of one patient are not independent, so every bootstrap over held-out real images
  resamples patients (a cluster bootstrap: whole patients drawn with replacement), in :func:`mean_replicates`,
  :func:`bootstrap_mean` and any index set of :func:`bootstrap` given as ``Clusters``.
* :func:`seed_interval`: mean and Student-t 95% interval over independent training seeds of one configuration
  (a bootstrap over two or three seeds would be meaningless).

p-values are two-sided bootstrap p-values, ``2 * min(P*(gap <= 0), P*(gap >= 0))``, floored at ``1 / n_boot``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
from scipy import stats as sps

ALPHA = 0.05  # 95% intervals everywhere


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _percentiles(reps: np.ndarray, alpha: float = ALPHA) -> tuple[float, float]:
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _as_1d(values: np.ndarray | list[float], name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError(f"{name}: no values to bootstrap")
    return a


class Clusters:
    """The cluster (patient) of each element of a sample: a cluster bootstrap draws whole clusters with
    replacement, so images of one patient, which are not independent, move together."""

    def __init__(self, groups: np.ndarray | list):
        g = np.asarray(groups).reshape(-1)
        if g.size == 0:
            raise ValueError("Clusters: no elements")
        _, self.codes = np.unique(g, return_inverse=True)
        self.n_clusters = int(self.codes.max()) + 1
        order = np.argsort(self.codes, kind="stable")
        self.members = np.split(order, np.cumsum(np.bincount(self.codes, minlength=self.n_clusters))[:-1])
        self.counts = np.array([m.size for m in self.members])

    @property
    def size(self) -> int:
        return int(self.codes.size)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Element indices of one replicate: ``n_clusters`` clusters drawn with replacement, all their members."""
        picked = rng.integers(0, self.n_clusters, size=self.n_clusters)
        return np.concatenate([self.members[c] for c in picked])


def _groups(groups: np.ndarray | list | Clusters | None, n: int) -> Clusters | None:
    if groups is None:
        return None
    c = groups if isinstance(groups, Clusters) else Clusters(groups)
    if c.size != n:
        raise ValueError(f"{c.size} cluster labels for {n} values")
    return c


def mean_replicates(
    values: np.ndarray | list[float],
    n_boot: int,
    seed: int,
    groups: np.ndarray | list | Clusters | None = None,
) -> np.ndarray:
    """``n_boot`` bootstrap replicates of the mean of ``values`` (vectorised). With ``groups`` (the cluster of
    each value, e.g. its patient) a cluster bootstrap: each replicate is the mean over resampled whole clusters."""
    a = _as_1d(values, "mean_replicates")
    c = _groups(groups, a.size)
    rng = _rng(seed)
    if c is None:
        idx = rng.integers(0, a.size, size=(n_boot, a.size))
        return a[idx].mean(axis=1)
    sums = np.bincount(c.codes, weights=a, minlength=c.n_clusters)
    picked = rng.integers(0, c.n_clusters, size=(n_boot, c.n_clusters))
    return sums[picked].sum(axis=1) / c.counts[picked].sum(axis=1)


def bootstrap_mean(
    values: np.ndarray | list[float],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = ALPHA,
    groups: np.ndarray | list | Clusters | None = None,
) -> dict[str, float]:
    """Mean of ``values`` with a percentile-bootstrap interval: ``{"value", "lo", "hi", "n"}`` (plus
    ``"clusters"`` for a cluster bootstrap over ``groups``)."""
    a = _as_1d(values, "bootstrap_mean")
    lo, hi = _percentiles(mean_replicates(a, n_boot, seed, groups), alpha)
    out = {"value": float(a.mean()), "lo": lo, "hi": hi, "n": int(a.size)}
    if groups is not None:
        out["clusters"] = _groups(groups, a.size).n_clusters
    return out


def bootstrap_sum_of_means(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    a_replicates: np.ndarray | None = None,
    alpha: float = ALPHA,
) -> dict[str, float]:
    """``mean(a) + mean(b)`` for two independent samples, each resampled on its own.

    ``a_replicates`` lets a caller reuse the replicates of a sample shared by many scores (the judge's fixed real
    set), so that part is drawn once.
    """
    a, b = _as_1d(a, "bootstrap_sum_of_means(a)"), _as_1d(b, "bootstrap_sum_of_means(b)")
    ra = mean_replicates(a, n_boot, seed) if a_replicates is None else a_replicates
    rb = mean_replicates(b, n_boot, seed + 1)
    lo, hi = _percentiles(ra + rb, alpha)
    return {"value": float(a.mean() + b.mean()), "lo": lo, "hi": hi}


# ----------------------------------------------------------------------------------------------------------------
# general (paired) bootstrap over named index sets

Statistic = Callable[[Mapping[str, np.ndarray]], float]


# an index set is given by its size (its elements are independent) or by its Clusters (resampled by cluster)
IndexSet = int | Clusters


def _n(spec: IndexSet) -> int:
    return spec.size if isinstance(spec, Clusters) else int(spec)


def identity_indices(sizes: Mapping[str, IndexSet]) -> dict[str, np.ndarray]:
    return {k: np.arange(_n(n)) for k, n in sizes.items()}


def _draw(rng: np.random.Generator, sizes: Mapping[str, IndexSet]) -> dict[str, np.ndarray]:
    return {
        k: n.draw(rng) if isinstance(n, Clusters) else rng.integers(0, n, size=n) for k, n in sizes.items()
    }


def bootstrap(
    stat: Statistic, sizes: Mapping[str, IndexSet], *, n_boot: int = 1000, seed: int = 0, alpha: float = ALPHA
) -> dict[str, float]:
    """Percentile interval of ``stat`` when every named index set in ``sizes`` is resampled with replacement
    (a set given as :class:`Clusters` by whole clusters)."""
    for k, n in sizes.items():
        if _n(n) < 1:
            raise ValueError(f"bootstrap: index set {k!r} is empty")
    value = float(stat(identity_indices(sizes)))
    rng = _rng(seed)
    reps = np.array([stat(_draw(rng, sizes)) for _ in range(n_boot)], dtype=np.float64)
    lo, hi = _percentiles(reps, alpha)
    return {"value": value, "lo": lo, "hi": hi, "n_boot": int(n_boot)}


def paired_bootstrap(
    stat_a: Statistic,
    stat_b: Statistic,
    sizes: Mapping[str, IndexSet],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = ALPHA,
) -> dict[str, float]:
    """Test the gap ``stat_a - stat_b``; index sets named alike are shared (paired) between the two statistics.

    Returns ``{"gap", "lo", "hi", "p_value", "n_boot"}``: the observed gap, its 95% percentile interval and the
    two-sided bootstrap p-value of "no gap".
    """
    gap = float(stat_a(identity_indices(sizes)) - stat_b(identity_indices(sizes)))
    rng = _rng(seed)
    reps = np.empty(n_boot, dtype=np.float64)
    for i in range(n_boot):
        idx = _draw(rng, sizes)
        reps[i] = stat_a(idx) - stat_b(idx)
    lo, hi = _percentiles(reps, alpha)
    p = 2.0 * min(float(np.mean(reps <= 0)), float(np.mean(reps >= 0)))
    p = min(1.0, max(p, 1.0 / n_boot))
    return {"gap": gap, "lo": lo, "hi": hi, "p_value": p, "n_boot": int(n_boot)}


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


# ----------------------------------------------------------------------------------------------------------------
# several seeds of one configuration


def welch_test(
    a: list[float] | np.ndarray, b: list[float] | np.ndarray, alpha: float = ALPHA
) -> dict[str, float]:
    """Welch's t-test of ``mean(a) - mean(b)`` over two sets of training seeds' values (each value carries its own
    evaluation noise, so the test covers seeds and samples): the gap, its 95% Welch interval and the two-sided
    p-value. Needs >= 2 values on each side."""
    a, b = _as_1d(a, "welch_test a"), _as_1d(b, "welch_test b")
    if a.size < 2 or b.size < 2:
        raise ValueError(f"welch_test: {a.size} and {b.size} values; expected >= 2 on each side")
    gap = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0.0:  # identical values on both sides: no spread to test against
        return {"gap": gap, "lo": gap, "hi": gap, "p_value": 1.0 if gap == 0 else 0.0, "df": float("nan")}
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(sps.t.ppf(1 - alpha / 2, df)) * se
    p = float(2 * sps.t.sf(abs(gap) / se, df))
    return {"gap": gap, "lo": gap - half, "hi": gap + half, "p_value": p, "df": float(df)}


def seed_interval(values: list[float] | np.ndarray, alpha: float = ALPHA) -> dict[str, float]:
    """Mean over seeds with a Student-t interval; with one seed the interval collapses to the value (n=1)."""
    a = _as_1d(values, "seed_interval")
    mean = float(a.mean())
    if a.size == 1:
        return {"mean": mean, "lo": mean, "hi": mean, "sd": 0.0, "n": 1}
    sd = float(a.std(ddof=1))
    half = float(sps.t.ppf(1 - alpha / 2, df=a.size - 1)) * sd / math.sqrt(a.size)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "sd": sd, "n": int(a.size)}


# ----------------------------------------------------------------------------------------------------------------
# ROC AUC


def auc_interval(auc: float, n_pos: int, n_neg: int, alpha: float = ALPHA) -> dict[str, float]:
    """Normal interval of a ROC AUC from its Hanley-McNeil (1982) standard error over ``n_pos`` positive and
    ``n_neg`` negative test examples, clipped to [0, 1]. It covers the test sample's noise only (not the
    classifier's training noise), and treats the test images as independent."""
    if n_pos < 1 or n_neg < 1:
        raise ValueError(f"auc_interval: n_pos={n_pos}, n_neg={n_neg}; expected at least one of each")
    a = float(auc)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    half = float(sps.norm.ppf(1 - alpha / 2)) * math.sqrt(max(var, 0.0))
    return {"value": a, "lo": max(0.0, a - half), "hi": min(1.0, a + half), "se": math.sqrt(max(var, 0.0))}
