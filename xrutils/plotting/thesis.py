"""The thesis's Figures 1-2 and 5-37 (except the failure figures 8 and 32), one function each."""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from xrutils import figures
from xrutils.plotting.common import curve_axes, curve_figure, figure_runs, sample_figure
from xrutils.runs import RunDir
from xrutils.studies import StudyContext, describe_data, short_source

# ----------------------------------------------------------------------------------------------------------------
# Figures 1-4: data and architectures


def fig_01(ctx: StudyContext, counts: Any, *, from_metadata: str) -> plt.Figure:
    """Images per finding (train_val + test stacked). ``counts``: label_counts() frame; ``from_metadata`` says whose."""
    table = counts.pivot_table(index="label", columns="split", values="count", aggfunc="sum").fillna(0)
    table = table.loc[table.sum(axis=1).sort_values(ascending=False).index]
    fig, ax = plt.subplots(figsize=(8, 4.6))
    left = np.zeros(len(table))
    for split in [s for s in ("train_val", "test") if s in table.columns]:
        ax.barh(table.index, table[split], left=left, label=split)
        left += table[split].to_numpy()
    for y, total in enumerate(left):
        ax.text(total, y, f" {int(total):,}", va="center", fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("images (a multi-label image counts once per finding)")
    ax.set_title(f"Images per finding, train_val + test\nsource: {from_metadata}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    figures.save(
        fig,
        1,
        ctx,
        source=from_metadata,
        short_source="phantom" if "phantom" in from_metadata else "NIH ChestX-ray14",
        notes=f"Counts from {from_metadata}.",
    )
    return fig


def fig_02(ctx: StudyContext, image_set: Any, n: int = 16) -> plt.Figure:
    """A grid of real images with their findings."""
    from xrutils.data import LABELS

    n = min(n, len(image_set.names))
    cols = max(1, int(math.sqrt(n)))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(image_set.images[i, 0].numpy(), cmap="gray", vmin=0, vmax=255)
        found = [LABELS[j] for j in np.flatnonzero(image_set.labels[i].numpy())]
        ax.set_title(", ".join(found)[:38], fontsize=6)
    fig.tight_layout()
    source = f"{image_set.source} images from {image_set.root}"
    figures.save(
        fig,
        2,
        ctx,
        source=source,
        short_source="NIH ChestX-ray14" if image_set.source == "nih" else "phantom",
    )
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Figures 5-37: one function each


def fig_05(ctx):
    return sample_figure(ctx, 5)


def fig_06(ctx, results=None):
    return curve_figure(ctx, 6, results=results, title="GAN baseline, judged by its own final D")


def fig_07(ctx):
    return sample_figure(ctx, 7)


def fig_09(ctx, results=None):
    return curve_figure(
        ctx,
        9,
        results=results,
        title="GAN learning rates (64²)",
    )


def fig_10(ctx):
    return sample_figure(ctx, 10)


def fig_11(ctx):
    return sample_figure(ctx, 11)


def fig_12(ctx, results=None):
    return curve_figure(
        ctx,
        12,
        results=results,
        title="GAN image sizes, each judged by the discriminator of its own size",
    )


def fig_13(ctx):
    return sample_figure(ctx, 13)


def fig_14(ctx, results=None):
    return curve_figure(
        ctx,
        14,
        results=results,
        title="GAN hidden sizes (64²)",
    )


def fig_15(ctx):
    return sample_figure(ctx, 15)


def fig_16(ctx, results=None):
    return curve_figure(ctx, 16, results=results, title="VAE baseline (128² judge)")


def fig_17(ctx, results=None):
    return curve_figure(ctx, 17, results=results, title="VAE learning rates")


def fig_18(ctx, results=None):
    return curve_figure(
        ctx,
        18,
        results=results,
        title="VAE image sizes, each judged by the discriminator of its own size",
    )


def fig_19(ctx):
    return sample_figure(ctx, 19)


def fig_20(ctx, results=None):
    return curve_figure(
        ctx,
        20,
        results=results,
        title="VAE hidden sizes",
    )


def fig_21(ctx):
    return sample_figure(ctx, 21)


def fig_22(ctx):
    return sample_figure(ctx, 22)


def fig_23(ctx, results=None):
    return curve_figure(ctx, 23, results=results, title="PixelCNN baseline")


def fig_24(ctx, results=None):
    return curve_figure(
        ctx,
        24,
        results=results,
        title="PixelCNN learning rates",
    )


def fig_25(ctx):
    return sample_figure(ctx, 25)


def fig_26(ctx, results=None):
    return curve_figure(
        ctx,
        26,
        results=results,
        title="PixelCNN image sizes, each judged by the discriminator of its own size",
    )


def fig_27(ctx):
    return sample_figure(ctx, 27)


def fig_28(ctx):
    return sample_figure(ctx, 28)


def fig_29(ctx, results=None):
    return curve_figure(ctx, 29, results=results, title="DDPM baseline")


def fig_30(ctx):
    return sample_figure(ctx, 30)


def fig_31(ctx, results=None):
    return curve_figure(
        ctx,
        31,
        results=results,
        title="DDPM learning rates",
    )


def fig_33(ctx, results=None):
    return curve_figure(
        ctx,
        33,
        results=results,
        title="DDPM image sizes, each judged by the discriminator of its own size",
    )


def fig_34(ctx):
    return sample_figure(ctx, 34)


def fig_35(ctx):
    return sample_figure(
        ctx,
        35,
        notes="GAN baseline added as the last panel (the thesis text discusses it; the caption omits it).",
    )


def fig_36(ctx, results=None):
    return curve_figure(
        ctx,
        36,
        results=results,
        title="Selected models, each judged by the discriminator of its own size",
    )


def fig_37(ctx, results=None):
    """Figure 37 in two panels that each say what they measure: (a) the thesis's score, mean P(real) of each
    epoch's samples under one classifier trained on the final-epoch samples (earlier epochs lie outside its training
    data, so the curve is not a learning curve); (b) a learning curve, a fresh classifier per epoch and its held-out
    ROC AUC against real images (0.5 = indistinguishable)."""
    runs = figure_runs(37)
    res = (results or ctx.results or {}).get("runs", {})
    per_epoch = all((res.get(r) or {}).get("classifier_per_epoch", {}).get("score") for r in runs)
    fig, axes = plt.subplots(
        1, 2 if per_epoch else 1, figsize=(12.4 if per_epoch else 6.4, 4.4), squeeze=False
    )
    ax = axes[0][0]
    prov = curve_axes(ax, ctx, runs, results, "classifier")
    ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
    ax.text(ax.get_xlim()[0], 0.5, " chance", fontsize=7, va="bottom", color="0.4")
    ax.set_ylabel("Classifier score: mean P(real) of generated images")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(
        "(a) thesis score: one SimpleCNN per image size, trained on held-out reals vs the FINAL-epoch samples,\n"
        "applied to every epoch (earlier epochs are outside its training data); bands: 95% bootstrap",
        fontsize=8,
    )
    if per_epoch:
        ax = axes[0][1]
        curve_axes(ax, ctx, runs, results, "classifier_per_epoch")
        ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
        ax.text(ax.get_xlim()[0], 0.5, " indistinguishable", fontsize=7, va="bottom", color="0.4")
        ax.set_ylabel("Held-out ROC AUC, real vs this epoch's samples")
        ax.set_ylim(0.3, 1.02)
        ax.set_title(
            "(b) learning curve: a fresh SimpleCNN per epoch, trained on held-out reals vs that epoch's samples;\n"
            "lower = harder to tell from real; bands: 95% Hanley-McNeil over the test images",
            fontsize=8,
        )
    fig.tight_layout()
    cfg = RunDir(ctx.run_dir(runs[0])).read_config()
    figures.save(fig, 37, ctx, runs=prov, source=describe_data(cfg), short_source=short_source(cfg))
    return fig
