"""Supplementary figures of the compare study: S1, how much of the thesis's curves the original judge protocol
explains (each quirk on its own), and S3, the four families at one image size over their training seeds. (S2, the
diversity loss, is a failure figure: :mod:`xrutils.plotting.failures`.)"""

from __future__ import annotations

import textwrap
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from xrutils import figures
from xrutils.plotting.common import (
    BAND_ALPHA,
    JUDGE_YLABEL,
    MINMAX_FAMILIES,
    curve_axes,
    figure_runs,
    final_epoch,
    grid_image,
    minmax_grid,
    run_info,
    trained_label,
)
from xrutils.runs import RunDir
from xrutils.studies import StudyContext, describe_data, label, short_source
from xrutils.studies.results import RANKING_CRITERIA

# ----------------------------------------------------------------------------------------------------------------
# S1: the original protocol, quirk by quirk


def _final_score(res: dict[str, Any], run: str) -> float:
    scores = ((res.get("runs") or {}).get(run) or {}).get("judge", {}).get("score") or [np.nan]
    return float(scores[-1]) if scores[-1] is not None else np.nan


def fig_S1(
    ctx: StudyContext,
    corrected: dict,
    original: dict,
    per_quirk: dict[str, dict] | None = None,
    *,
    skipped: dict[str, str] | None = None,
) -> plt.Figure:
    """Supplementary: the selected runs judged under the original and the corrected protocol.

    (a) and (b): the judge curves under both. (c): is the judge valid? Its held-out real-vs-fake ROC AUC per epoch
    in eval mode (corrected) and in train mode (``per_quirk["train_mode_bn"]``). (d): the final-epoch score with each
    quirk of the original protocol switched on alone (``per_quirk``: quirk name -> that evaluation), then all
    together: which quirk moves the curves, and how far. (e): the GAN's first and last training grids as saved and
    min-max scaled as the original saved them (``minmax_grids``, which changes pictures, not scores). ``skipped``:
    quirks left off in this build and why.
    """
    runs = [r for r in figure_runs("S1") if r in corrected["runs"]]
    per_quirk = per_quirk or {}
    skipped = skipped or {}
    fig = plt.figure(figsize=(16, 9.6))
    gs = fig.add_gridspec(2, 3, height_ratios=[1, 1.05])
    prov: list[dict[str, Any]] = []
    for i, (name, res) in enumerate([(original["protocol"], original), ("corrected", corrected)]):
        ax = fig.add_subplot(gs[0, i])
        prov = curve_axes(ax, ctx, runs, res, "judge")
        ax.set_title(f"({'ab'[i]}) {name} protocol", fontsize=10)
        ax.set_ylabel(JUDGE_YLABEL, fontsize=8)

    ax = fig.add_subplot(gs[0, 2])
    train_bn = per_quirk.get("train_mode_bn")
    validity: dict[str, dict[str, float]] = {}
    for r in runs:
        color = None
        for res, style, mode in ((corrected, "-", "eval mode"), (train_bn, "--", "train mode")):
            j = ((res or {}).get("runs", {}).get(r) or {}).get("judge") or {}
            if j.get("auc"):
                (line,) = ax.plot(
                    j["epochs"], j["auc"], style, marker="o", ms=3, color=color, label=f"{label(r)}, {mode}"
                )
                color = line.get_color()
                validity.setdefault(r, {})[mode] = j["auc"][-1]
    ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
    ax.set_ylim(0.3, 1.02)
    ax.set_xlabel("Epoch")
    ax.set_ylabel("judge's ROC AUC, held-out reals vs the epoch's samples", fontsize=8)
    ax.set_title("(c) is the judge valid? eval-mode D (solid) vs train-mode D (dashed)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)

    ax = fig.add_subplot(gs[1, 0:2])
    columns = [("corrected", corrected), *per_quirk.items(), (original["protocol"], original)]
    x = np.arange(len(columns))
    for r in runs:
        y = [_final_score(res, r) for _, res in columns]
        ax.plot(x, y, marker="o", ms=4, lw=0.8, label=label(r))
    ax.set_xticks(
        x, [n.replace("original-except-", "original\nexcept ").replace("_", "\n") for n, _ in columns]
    )
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("final-epoch judge score", fontsize=8)
    ax.set_title("(d) each quirk alone on top of the corrected protocol, then all together", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)

    ax = fig.add_subplot(gs[1, 2])
    gan = next((r for r in runs if RunDir(ctx.run_dir(r)).read_config().family in MINMAX_FAMILIES), None)
    if gan is not None:
        d = ctx.run_dir(gan)
        cfg = RunDir(d).read_config()
        epochs = RunDir(d).grid_epochs()
        first, last = epochs[0], final_epoch(d)
        grids = [grid_image(d, first), grid_image(d, last)]
        gap = np.full((grids[0].shape[0], 6), 255, dtype=np.uint8)
        top = np.hstack([grids[0], gap, grids[1]])
        size = cfg.data.image_size
        bottom = np.hstack([minmax_grid(grids[0], size), gap, minmax_grid(grids[1], size)])
        ax.imshow(
            np.vstack([top, np.full((6, top.shape[1]), 255, dtype=np.uint8), bottom]),
            cmap="gray",
            vmin=0,
            vmax=255,
            interpolation="nearest",
        )
        ax.set_title(
            f"(e) {label(gan)}: epoch {first} (left) and {last} (right)\n"
            "top: as saved (fixed range); bottom: min-max scaled as the original saved them",
            fontsize=9,
        )
        prov.append(run_info(d, "grids", last))
    ax.set_axis_off()

    on = [k for k, v in (original.get("quirks") or {}).items() if v]
    text = "Original protocol here: " + ", ".join(on)
    if skipped:
        text += "; left off: " + "; ".join(f"{k} ({why})" for k, why in skipped.items())
    head = (
        "Same checkpoints, two protocols. Corrected: eval-mode judge, matched value ranges, held-out reals by "
        "patient, many samples, intervals."
    )
    fig.suptitle("\n".join(textwrap.wrap(head, 150) + textwrap.wrap(text, 150)), fontsize=9)
    fig.tight_layout()
    cfg = RunDir(ctx.run_dir(runs[0])).read_config()
    figures.save(
        fig,
        "S1",
        ctx,
        runs=prov,
        source=describe_data(cfg),
        short_source=short_source(cfg),
        extra={
            "final_scores": {n: {r: _final_score(res, r) for r in runs} for n, res in columns},
            "final_judge_auc": validity,
            "skipped_quirks": skipped,
        },
    )
    return fig


# ----------------------------------------------------------------------------------------------------------------
# S3: the four families at one image size, over their training seeds

CRITERIA = {  # summary key in results["groups"][g] -> axis label, and whether higher is better
    "judge": ("Discriminator judge score (higher = fooled more)", True),
    "classifier_per_epoch": (
        "Held-out ROC AUC of a fresh classifier, real vs samples (lower = closer)",
        False,
    ),
    "fd_curve": ("Fréchet distance in the X-ray encoder's space (lower = closer)", False),
}


def ranking_lines(ranking: dict[str, Any]) -> list[str]:
    """One line per criterion: the order, and for every pair its gap, Holm p and whether it is significant."""
    lines = []
    for crit, title in RANKING_CRITERIA.items():
        r = ranking.get(crit)
        if not r:
            continue
        lines.append(
            f"{title}: " + " > ".join(label(g) for g in r["order"]) + f"  ({r.get('correction', '')})"
        )
        for p in r.get("pairs", []):
            mark = "significant" if p.get("significant") else "not significant"
            lines.append(
                f"    {p['better']} vs {p['worse']}: gap {p['gap']:.3g} [{p['lo']:.3g}, {p['hi']:.3g}], "
                f"Holm p {p['p_holm']:.2g}, {mark} ({p['variance']})"
            )
    return lines


def fig_S3(ctx: StudyContext, results: dict, runs: list[str]) -> plt.Figure:
    """Supplementary: one run per family at the common image size (``runs``, the seed-0 names), each pooled over
    its training seeds: per-epoch judge score, per-epoch classifier AUC and feature-space FD (mean over seeds, band:
    95% Student t over the seeds), and the ranking at that size with every pairwise test."""
    groups = results.get("groups") or {}
    missing = [r for r in runs if r not in groups]
    if missing:
        raise KeyError(
            f"study {ctx.study.name}: no seed group for {missing} in the evaluation (have {sorted(groups)})"
        )
    cfgs = {r: RunDir(ctx.run_dir(r)).read_config() for r in runs}
    size = {c.data.image_size for c in cfgs.values()}
    if len(size) != 1:
        raise ValueError(f"Figure S3 compares one image size; the runs {runs} have sizes {sorted(size)}")
    size = size.pop()
    fig = plt.figure(figsize=(13, 9.4))
    gs = fig.add_gridspec(2, 3, height_ratios=[1, 0.8])
    for i, (key, (ylabel, _)) in enumerate(CRITERIA.items()):
        ax = fig.add_subplot(gs[0, i])
        for r in runs:
            g = groups[r].get(key)
            if not g:
                continue
            x = np.asarray(g["epochs"], dtype=float)
            (line,) = ax.plot(x, g["mean"], marker="o", ms=3, label=f"{label(r)}, {trained_label(cfgs[r])}")
            ax.fill_between(x, g["lo"], g["hi"], color=line.get_color(), alpha=BAND_ALPHA, lw=0)
        ax.set_xlabel("Epoch (each family its own length)")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=6)
    ax = fig.add_subplot(gs[1, :])
    ax.set_axis_off()
    ranking = ((results.get("ranking") or {}).get("by_size") or {}).get(str(size)) or {}
    seeds = sorted({groups[r].get("n_seeds", 1) for r in runs})
    lines = [
        f"Ranking at {size}x{size}, training seeds per family: {'/'.join(map(str, seeds))}",
        *ranking_lines(ranking),
    ]
    ax.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=7, family="monospace")
    fig.suptitle(
        f"The four families at {size}x{size}: one judge, one classifier, one feature encoder; lines: mean over "
        "training seeds, bands: 95% Student t over the seeds",
        fontsize=10,
    )
    fig.tight_layout()
    prov = [run_info(ctx.run_dir(m), "scored", None) for r in runs for m in groups[r]["runs"]]
    figures.save(
        fig,
        "S3",
        ctx,
        runs=prov,
        source=describe_data(cfgs[runs[0]]),
        short_source=short_source(cfgs[runs[0]]),
        extra={"ranking": ranking, "groups": {r: groups[r]["runs"] for r in runs}},
    )
    return fig
