"""Known answers for the distribution metrics and the statistics (xrutils.evaluators.metrics / .stats)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import linalg

from xrutils.evaluators import metrics as met
from xrutils.evaluators import stats


def gaussian(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) * scale + shift


# ----------------------------------------------------------------------------------------------------------------
# Fréchet distance, KID, precision / recall


def test_same_distribution_gives_fd_kid_near_zero_and_precision_recall_near_one():
    a, b = gaussian(1200, 4, 0), gaussian(1200, 4, 1)
    assert met.frechet_distance(a, b) < 0.03
    kid, kid_std = met.kernel_distance(a, b)
    assert abs(kid) < 0.01 and kid_std >= 0
    precision, recall = met.precision_recall(a, b)
    assert precision > 0.9 and recall > 0.9


def test_different_distributions_give_large_distances():
    a, b = gaussian(1200, 4, 0), gaussian(1200, 4, 1, shift=1.0)
    assert met.frechet_distance(a, b) == pytest.approx(4.0, rel=0.1)  # |mu diff|^2 = 4, equal covariances
    assert met.kernel_distance(a, b)[0] > 0.3
    noise = gaussian(1200, 4, 2, shift=6.0)
    precision, recall = met.precision_recall(a, noise)
    assert precision < 0.05 and recall < 0.05


def test_fd_matches_scipy_sqrtm_formula_and_fast_form():
    a, b = gaussian(300, 16, 0), gaussian(200, 16, 1, shift=0.3, scale=1.5)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert met.frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)
    assert met.FrechetReference(a).distance(b) == pytest.approx(ref, rel=1e-6)
    assert met.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_kid_equals_unbiased_mmd_when_the_subset_is_the_whole_set():
    a, b = gaussian(60, 5, 0), gaussian(50, 5, 1, shift=0.5)
    d = a.shape[1]

    def k(x, y):
        return (x @ y.T / d + 1) ** 3

    m, n = 50, 50  # subset size = min(60, 50): real subsets are random, so compare with n = m = 50 exactly
    a = a[:50]
    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    mmd = (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )
    kid, kid_std = met.kernel_distance(a, b, subsets=5)
    assert kid == pytest.approx(mmd, rel=1e-6)
    assert kid_std == pytest.approx(0.0, abs=1e-9)


def test_kid_subsets_match_torchmetrics_mmd_per_subset():
    from torchmetrics.image.kid import maximum_mean_discrepancy, poly_kernel

    a, b = torch.as_tensor(gaussian(70, 3, 0)), torch.as_tensor(gaussian(60, 3, 1, shift=0.4))
    i, j = met.kid_subsets(70, 60, 25, 7, seed=5)
    expected = torch.stack(
        [
            maximum_mean_discrepancy(
                poly_kernel(a[r], a[r]), poly_kernel(a[r], b[c]), poly_kernel(b[c], b[c])
            )
            for r, c in zip(i, j, strict=True)
        ]
    )
    kid, kid_std = met.kernel_distance(a, b, subsets=7, subset_size=25, seed=5)
    assert kid == pytest.approx(float(expected.mean()), rel=1e-9)
    assert kid_std == pytest.approx(float(expected.std(unbiased=False)), rel=1e-9)


def test_kid_is_deterministic_and_leaves_the_global_rng_alone():
    a, b = gaussian(400, 4, 0), gaussian(400, 4, 1)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    r1 = met.kernel_distance(a, b, subset_size=100, seed=3)
    r2 = met.kernel_distance(a, b, subset_size=100, seed=3)
    assert r1 == r2
    assert torch.rand(1) == before


def test_precision_recall_known_configuration():
    # reals on a line at x = 0..9 (k=3 radii: 2 inside, 3 near the ends); fakes: a tight cluster over x = 0..1.5
    # and a tight cluster far away (radii 0.3)
    real = np.stack([np.arange(10.0), np.zeros(10)], axis=1)
    near = np.array([[0.0, 0.1], [0.5, 0.1], [1.0, 0.1], [1.5, 0.1]])  # k=3 radii 1.5, 1, 1, 1.5
    far = np.array([[50.0, 0.0], [50.0, 0.1], [50.0, 0.2], [50.0, 0.3]])
    precision, recall = met.precision_recall(real, np.concatenate([near, far]))
    assert precision == pytest.approx(0.5)  # the near cluster lies inside the real manifold, the far one not
    assert recall == pytest.approx(0.3)  # reals at x = 0, 1, 2 are covered; x = 3 is 1.503 > 1.5 away


def test_feature_metrics_reports_sample_counts_and_interval():
    a, b = gaussian(200, 8, 0), gaussian(120, 8, 1, shift=0.5)
    m = met.feature_metrics(a, b, n_boot=50)
    assert m["n_real"] == 200 and m["n_fake"] == 120
    assert m["fd_lo"] <= m["fd_hi"]
    assert all(math.isfinite(v) for v in m.values())


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((1, 4)), "at least 2"),
        (np.full((5, 4), np.nan), "NaN"),
        (np.zeros(5), r"\(N, D\)"),
    ],
)
def test_metrics_reject_bad_features(bad, match):
    with pytest.raises(ValueError, match=match):
        met.frechet_distance(gaussian(10, 4, 0), bad)


def test_metrics_reject_mismatched_dimensions():
    with pytest.raises(ValueError, match="dimension"):
        met.precision_recall(gaussian(10, 4, 0), gaussian(10, 5, 1))


# ----------------------------------------------------------------------------------------------------------------
# bootstrap and seeds


def test_bootstrap_interval_contains_estimate_and_shrinks_with_n():
    widths = []
    for n in (50, 5000):
        x = np.random.default_rng(n).exponential(size=n)
        ci = stats.bootstrap_mean(x, n_boot=500, seed=0)
        assert ci["lo"] <= ci["value"] <= ci["hi"]
        assert ci["n"] == n
        widths.append(ci["hi"] - ci["lo"])
    assert widths[1] < widths[0] / 4  # ~ 1/sqrt(n): a factor 10 expected


def test_bootstrap_is_deterministic_under_seed():
    x = np.arange(30.0)
    assert stats.bootstrap_mean(x, n_boot=100, seed=1) == stats.bootstrap_mean(x, n_boot=100, seed=1)
    assert stats.bootstrap_mean(x, n_boot=100, seed=1) != stats.bootstrap_mean(x, n_boot=100, seed=2)


def test_sum_of_means_interval():
    a, b = np.random.default_rng(0).normal(1, 1, 400), np.random.default_rng(1).normal(2, 1, 400)
    ci = stats.bootstrap_sum_of_means(a, b, n_boot=400)
    assert ci["value"] == pytest.approx(a.mean() + b.mean())
    assert ci["lo"] < ci["value"] < ci["hi"]
    assert 0.1 < ci["hi"] - ci["lo"] < 0.5  # sd of the sum ~ sqrt(2/400) = 0.07 -> width ~ 0.28


def test_paired_bootstrap_cancels_shared_noise():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 5, 300)  # a large per-item effect common to both (the same real images)
    a_items, b_items = shared + 0.3 + rng.normal(0, 0.2, 300), shared + rng.normal(0, 0.2, 300)

    def paired(x):
        return lambda idx: float(x[idx["items"]].mean())

    test = stats.paired_bootstrap(paired(a_items), paired(b_items), {"items": 300}, n_boot=500)
    assert test["gap"] == pytest.approx(0.3, abs=0.05)
    assert test["lo"] > 0 and test["p_value"] < 0.01
    # the same data treated as unpaired (independent index sets) cannot see the gap through the shared noise
    unpaired = stats.paired_bootstrap(
        lambda i: float(a_items[i["a"]].mean()),
        lambda i: float(b_items[i["b"]].mean()),
        {"a": 300, "b": 300},
        n_boot=500,
    )
    assert unpaired["p_value"] > 0.05
    assert (unpaired["hi"] - unpaired["lo"]) > 10 * (test["hi"] - test["lo"])


def test_paired_bootstrap_no_gap_is_not_significant():
    x = np.random.default_rng(0).normal(size=200)
    y = np.random.default_rng(1).normal(size=200)
    test = stats.paired_bootstrap(
        lambda i: float(x[i["x"]].mean()), lambda i: float(y[i["y"]].mean()), {"x": 200, "y": 200}, n_boot=400
    )
    assert test["p_value"] > 0.05 and test["lo"] < 0 < test["hi"]


def test_seed_interval_student_t():
    out = stats.seed_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, df=2) * sd / sqrt(n), sd = 1
    assert out["mean"] == 2.0 and out["n"] == 3
    assert out["lo"] == pytest.approx(2.0 - half) and out["hi"] == pytest.approx(2.0 + half)
    one = stats.seed_interval([5.0])
    assert one["lo"] == one["hi"] == 5.0 and one["n"] == 1


def test_bootstrap_rejects_empty_input():
    with pytest.raises(ValueError, match="no values"):
        stats.bootstrap_mean([])


# ---- the cluster (patient) bootstrap (issue 10) ---------------------------------------------------------------


def _clustered(
    n_patients: int, per_patient: int, spread: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Values whose patients differ (patient effect 1.0) and whose images of one patient are alike (``spread``)."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(0, 1.0, n_patients)
    groups = np.repeat(np.arange(n_patients), per_patient)
    return effect[groups] + rng.normal(0, spread, groups.size), groups


def test_cluster_bootstrap_is_wider_for_correlated_images():
    values, groups = _clustered(40, 10, spread=0.1)
    iid = stats.bootstrap_mean(values, n_boot=2000, seed=1)
    by_patient = stats.bootstrap_mean(values, n_boot=2000, seed=1, groups=groups)
    assert by_patient["value"] == pytest.approx(iid["value"]) and by_patient["clusters"] == 40
    # 400 correlated images carry about as much information as 40 patients: the honest interval is about
    # sqrt(10) ~ 3x wider than the i.i.d. one
    ratio = (by_patient["hi"] - by_patient["lo"]) / (iid["hi"] - iid["lo"])
    assert 2.2 < ratio < 4.0, ratio
    # the known answer: the standard error of the mean of 40 independent patient means
    se = values.reshape(40, 10).mean(axis=1).std(ddof=1) / math.sqrt(40)
    assert (by_patient["hi"] - by_patient["lo"]) / (2 * 1.96 * se) == pytest.approx(1.0, abs=0.15)


def test_cluster_bootstrap_of_independent_images_matches_the_iid_one():
    values = np.random.default_rng(3).normal(size=300)
    iid = stats.bootstrap_mean(values, n_boot=4000, seed=2)
    singletons = stats.bootstrap_mean(values, n_boot=4000, seed=2, groups=np.arange(300))
    assert (singletons["hi"] - singletons["lo"]) == pytest.approx(iid["hi"] - iid["lo"], rel=0.1)


def test_clusters_draw_whole_patients_in_paired_bootstraps():
    values, groups = _clustered(6, 3, spread=0.0, seed=4)
    c = stats.Clusters(groups)
    idx = c.draw(np.random.default_rng(0))
    assert idx.size == 18 and all(np.isin(np.flatnonzero(groups == groups[i]), idx).all() for i in idx)
    both = stats.paired_bootstrap(
        lambda ix: values[ix["real"]].mean(),
        lambda ix: values[ix["real"]].mean() - 1.0,
        {"real": c},
        n_boot=50,
    )
    assert both["gap"] == pytest.approx(1.0) and both["lo"] == pytest.approx(1.0)  # shared draws cancel
    with pytest.raises(ValueError, match="5 cluster labels for 4 values"):
        stats.bootstrap_mean([1.0, 2.0, 3.0, 4.0], groups=[0, 0, 1, 1, 2])


def test_holm_adjusts_step_down_and_stays_monotone():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5]) == [0.5] and stats.holm([]) == []
    assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert stats.holm([0.02, 0.3]) == pytest.approx([0.04, 0.3])
