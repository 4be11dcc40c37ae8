"""Seeds and ranking: runs of one configuration pooled over training seeds (:func:`seed_summary`), and the groups
of one image size ordered by a criterion with a paired bootstrap test of each adjacent gap (:func:`rank`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from xrutils.config import RunConfig
from xrutils.evaluators import metrics as met
from xrutils.evaluators import stats
from xrutils.evaluators.scored import ScoredRun


def _group_key(cfg: RunConfig) -> str:
    d = cfg.to_dict()
    d.pop("seed", None)
    d.pop("eval", None)
    return json.dumps(d, sort_keys=True)


def groups_of(runs: list[ScoredRun]) -> dict[str, list[ScoredRun]]:
    by_key: dict[str, list[ScoredRun]] = {}
    for r in runs:
        by_key.setdefault(_group_key(r.cfg), []).append(r)
    names: dict[str, list[ScoredRun]] = {}
    plain = [f"{g[0].family}__{g[0].cfg.preset}" for g in by_key.values()]
    for g, name in zip(by_key.values(), plain, strict=True):
        names[name if plain.count(name) == 1 else g[0].name] = g
    return names


def seed_summary(group: list[ScoredRun]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "runs": [r.name for r in group],
        "seeds": [r.cfg.seed for r in group],
        "n_seeds": len(group),
        "interval": "95% Student t over the training seeds' values (seed variance; each value's own evaluation "
        "noise included once)"
        if len(group) > 1
        else "one training seed: no seed interval",
    }
    curves = {  # per-epoch curves: result key, the value's key in it, and the summary's name
        "judge": ("judge", "score"),
        "classifier": ("classifier", "score"),
        "classifier_per_epoch": ("classifier_per_epoch", "score"),
        "fd_curve": ("fd_curve", "fd"),
    }
    for name, (key, value) in curves.items():
        if all((r.result.get(key) or {}).get(value) for r in group):
            common = sorted(set.intersection(*(set(r.result[key]["epochs"]) for r in group)))
            per_epoch = [
                stats.seed_interval([r.result[key][value][r.result[key]["epochs"].index(e)] for r in group])
                for e in common
            ]
            out[name] = {
                "epochs": common,
                "mean": [p["mean"] for p in per_epoch],
                "lo": [p["lo"] for p in per_epoch],
                "hi": [p["hi"] for p in per_epoch],
            }
    if all("metrics" in r.result for r in group):
        for k in ("fd", "kid", "precision", "recall", "bpd"):
            vals = [r.result["metrics"].get(k) for r in group]
            if all(v is not None for v in vals):
                out[k] = stats.seed_interval(vals)
    return out


def rank(
    groups: dict[str, list[ScoredRun]],
    criterion: str,
    n_boot: int,
    real_features: dict[int, np.ndarray],
    real_clusters: dict[int, stats.Clusters] | None = None,
) -> dict[str, Any] | None:
    """Order the groups of one image size by one criterion and test every pair of them.

    A pair whose groups both have several training seeds is tested with Welch's t over the seeds' values (seed
    variance, each value with its own evaluation noise); a pair with a one-seed group with a paired bootstrap over
    the evaluation samples (evaluation noise only). Holm's correction runs over all pairs; "significant" needs a
    test with seeds that survives it. ``gaps`` are the pairs adjacent in the order (the ranking as read)."""
    higher = criterion != "fd"
    real_clusters = real_clusters or {}
    sizes: dict[str, int | stats.Clusters] = {}
    stat_of = {}
    seed_stats: dict[str, list] = {}
    for gname, group in groups.items():
        for r in group:
            if criterion == "judge" and r.last_fake_terms is None:
                return None
            if criterion == "classifier" and r.last_p_real is None:
                return None
            if criterion == "fd" and r.fake_features is None:
                return None
        if len(group) > 1:
            sizes[f"seeds:{gname}"] = len(group)
        for r in group:
            if criterion == "judge":
                sizes[f"fake:{r.name}"] = r.last_fake_terms.size
                sizes[r.real_key] = r.real_clusters or r.last_real_terms.size  # by patient
            elif criterion == "classifier":
                sizes[f"fake:{r.name}"] = r.last_p_real.size
            else:
                sizes[f"fake:{r.name}"] = r.fake_features.shape[0]
                sizes[f"feat:{r.size}"] = real_clusters.get(r.size) or real_features[r.size].shape[0]
        stat_of[gname] = _make_stat(gname, group, criterion, real_features)
        seed_stats[gname] = [_make_stat(f"{gname}#{r.name}", [r], criterion, real_features) for r in group]
    ident = stats.identity_indices(sizes)
    values = {g: float(stat_of[g](ident)) for g in groups}
    seed_values = {g: [float(f(ident)) for f in fs] for g, fs in seed_stats.items()}
    order = sorted(values, key=lambda g: -values[g] if higher else values[g])
    pairs = []
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            with_seeds = len(groups[a]) > 1 and len(groups[b]) > 1
            if with_seeds:
                test = stats.welch_test(seed_values[a], seed_values[b])
            else:
                test = stats.paired_bootstrap(stat_of[a], stat_of[b], sizes, n_boot=n_boot, seed=len(pairs))
            if not higher:  # report the gap as "better minus worse" in the criterion's own direction
                test = {**test, "gap": -test["gap"], "lo": -test["hi"], "hi": -test["lo"]}
            pairs.append(
                {
                    "better": a,
                    "worse": b,
                    **test,
                    "adjacent": b == order[i + 1],
                    "test": "Welch t over the training seeds' values" if with_seeds else "paired bootstrap",
                    "variance": "training seeds and evaluation samples"
                    if with_seeds
                    else "evaluation samples only",
                }
            )
    for g, p_holm in zip(pairs, stats.holm([g["p_value"] for g in pairs]), strict=True):
        g["p_holm"] = p_holm
        g["significant"] = bool(g["variance"].startswith("training seeds") and p_holm < stats.ALPHA)
    return {
        "higher_is_better": higher,
        "order": order,
        "values": values,
        "seed_values": seed_values,
        "n_seeds": {g: len(m) for g, m in groups.items()},
        "pairs": pairs,
        "gaps": [p for p in pairs if p["adjacent"]],
        "correction": f"Holm over the {len(pairs)} pairs",
    }


def _make_stat(gname: str, group: list[ScoredRun], criterion: str, real_features: dict[int, np.ndarray]):
    seeds_key = f"seeds:{gname}"

    def stat(idx: Mapping[str, np.ndarray]) -> float:
        chosen = [group[i] for i in idx[seeds_key]] if seeds_key in idx else group
        vals = []
        for r in chosen:
            f = idx[f"fake:{r.name}"]
            if criterion == "judge":
                vals.append(r.last_real_terms[idx[r.real_key]].mean() + r.last_fake_terms[f].mean())
            elif criterion == "classifier":
                vals.append(r.last_p_real[f].mean())
            else:
                ref = met.FrechetReference(real_features[r.size][idx[f"feat:{r.size}"]])
                vals.append(ref.distance(r.fake_features[f]))
        return float(np.mean(vals))

    return stat
