"""The failure figures: what a run the thesis shows failing did here, measured from its samples, with named
thresholds (Figure 8: did the lr 1e-3 GAN fall apart; Figure 32: did the over-deep DDPM draw black images;
Supplementary Figure S2: the thesis's diversity loss at a scaled profile's width)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

from xrutils import figures
from xrutils.config import RunConfig
from xrutils.plotting.common import (
    figure_runs,
    final_epoch,
    grid_image,
    panel_figure,
    real_grid,
    run_info,
    tile,
)
from xrutils.runs import RunDir
from xrutils.studies import StudyContext, describe_data, label, short_source

# ----------------------------------------------------------------------------------------------------------------
# failure figures (8, 32): what the run did, measured


# When a run "fell apart" (Figure 8; images in [0, 1], statistics of collapse_stats). Any one suffices:
FELL_APART = {
    # mode collapse: the samples' mean pairwise distance below 35 % of the real images' (real vs real is 1.0, a
    # collapsed generator drawing one picture is 0)
    "diversity_ratio_below": 0.35,
    # saturation: more than half of all pixels pinned at black or white (below 0.02 or above 0.98); training
    # images have 8 % there on the phantom and 3.5 % on NIH small64 (512 demo images each, the black border)
    "saturated_fraction_above": 0.5,
    # a flat image: pixel standard deviation below 0.03 (about 8 grey levels); training images: 0.26 (phantom)
    # and 0.26 (NIH small64)
    "pixel_std_below": 0.03,
}
# When a DDPM drew "black images" (Figure 32): both dark on average and nearly uniform (training images: mean
# 0.60 and pixel std 0.26 on the phantom, 0.52 and 0.26 on NIH small64)
BLACK = {"mean_intensity_below": 0.08, "pixel_std_below": 0.08}


def fresh_samples(run_dir: str | Path, n: int = 64, seed: int = 0) -> tuple[RunConfig, torch.Tensor]:
    """``n`` samples of the run's last checkpoint in [0, 1] (DDPM through the evaluation sampler of its config)."""
    from xrutils.checkpoints import load_model
    from xrutils.data.ranges import convert

    cfg, model = load_model(run_dir)
    options = {"sampler": cfg.eval.sampler, "steps": cfg.eval.sampler_steps} if cfg.family == "ddpm" else {}
    with torch.no_grad():
        x = model.sample(n, generator=torch.Generator(device=model.device).manual_seed(seed), **options)
    return cfg, convert(x.float().cpu(), tuple(model.value_range), (0.0, 1.0)).clamp(0, 1)


def collapse_stats(fakes01: torch.Tensor, reals01: torch.Tensor) -> dict[str, float]:
    """Diversity of the fakes relative to real images, saturation, and brightness (all images in [0, 1])."""

    def mean_pdist(x):
        flat = x.flatten(1)
        return torch.pdist(flat).mean().item() if len(flat) > 1 else 0.0

    real_div = mean_pdist(reals01)
    return {
        "diversity_ratio": mean_pdist(fakes01) / real_div if real_div > 0 else float("nan"),
        "saturated_fraction": ((fakes01 < 0.02) | (fakes01 > 0.98)).float().mean().item(),
        "mean_intensity": fakes01.mean().item(),
        "real_mean_intensity": reals01.mean().item(),
        "pixel_std": fakes01.std().item(),
    }


def _reals01(cfg: RunConfig, n: int) -> torch.Tensor:
    from xrutils.data import load_images

    return load_images(cfg.data, progress=False).images[:n].float() / 255.0


def fig_08(ctx: StudyContext) -> plt.Figure:
    """The lr 1e-3 GAN with h 64: its last samples, the h 128 run that replaced it, its losses, and a verdict."""
    run, fixed = figure_runs(8)
    d = ctx.run_dir(run)
    cfg, fakes = fresh_samples(d, n=64)
    stats = collapse_stats(fakes, _reals01(cfg, 64))
    fell_apart = (
        stats["diversity_ratio"] < FELL_APART["diversity_ratio_below"]
        or stats["saturated_fraction"] > FELL_APART["saturated_fraction_above"]
        or stats["pixel_std"] < FELL_APART["pixel_std_below"]
    )
    verdict = (
        "fell apart (collapsed or saturated samples), as in the thesis"
        if fell_apart
        else "did NOT fall apart the way the thesis's run did: its samples stay diverse and unsaturated"
    )
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    e = final_epoch(d)
    for ax, (title, img) in zip(
        axes[:2],
        [
            (f"{label(run)}\nepoch {e}", grid_image(d, e)),
            (f"{label(fixed)}\nepoch {final_epoch(ctx.run_dir(fixed))}", grid_image(ctx.run_dir(fixed))),
        ],
        strict=True,
    ):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    rows = RunDir(d).read_history()
    for c in [c for c in (rows[0] if rows else {}) if "loss" in c.lower()]:
        axes[2].plot(
            [r.get("epoch", i + 1) for i, r in enumerate(rows)],
            [r[c] for r in rows],
            marker="o",
            ms=3,
            label=c,
        )
    axes[2].set_xlabel("Epoch")
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].set_title(f"{run}: training losses", fontsize=9)
    axes[2].legend(fontsize=7)
    axes[2].grid(alpha=0.3)
    fig.suptitle(
        f"This run {verdict}.\ndiversity vs real images {stats['diversity_ratio']:.2f}, saturated pixels "
        f"{stats['saturated_fraction']:.1%}, pixel std {stats['pixel_std']:.3f}",
        fontsize=9,
    )
    fig.tight_layout()
    figures.save(
        fig,
        8,
        ctx,
        runs=[run_info(d, "samples + verdict", e), run_info(ctx.run_dir(fixed), "samples (h 128)", None)],
        source=describe_data(cfg),
        short_source=short_source(cfg),
        notes=f"This run {verdict}.",
        extra={"verdict": {"fell_apart": fell_apart, **stats}},
    )
    ctx.verdicts[8] = {"fell_apart": fell_apart, "text": f"Figure 8: this run {verdict}.", **stats}
    return fig


def fig_32(ctx: StudyContext) -> plt.Figure:
    """The over-deep 32² DDPM: fresh samples, the 3-level 32² run next to it, and whether they are black."""
    run, fixed = figure_runs(32)
    d = ctx.run_dir(run)
    cfg, fakes = fresh_samples(d, n=16)
    stats = collapse_stats(fakes, _reals01(cfg, 16))
    black = (
        stats["mean_intensity"] < BLACK["mean_intensity_below"]
        and stats["pixel_std"] < BLACK["pixel_std_below"]
    )
    verdict = (
        "produced (near-)black images, as in the thesis"
        if black
        else f"did NOT produce black images (mean intensity {stats['mean_intensity']:.2f} vs "
        f"{stats['real_mean_intensity']:.2f} for real images)"
    )
    mosaic = tile((fakes * 255).round().to(torch.uint8), nrow=4)
    e = final_epoch(d)
    fig = panel_figure(
        [
            (f"{label(run)}\n16 fresh samples, epoch {e}", mosaic),
            (f"{label(run)}\ntraining grid, epoch {e}", grid_image(d, e)),
            (f"{label(fixed)}\nepoch {final_epoch(ctx.run_dir(fixed))}", grid_image(ctx.run_dir(fixed))),
        ],
        suptitle=f"This run {verdict}.",
    )
    figures.save(
        fig,
        32,
        ctx,
        runs=[run_info(d, "samples + verdict", e), run_info(ctx.run_dir(fixed), "samples (3-level)", None)],
        source=describe_data(cfg),
        short_source=short_source(cfg),
        notes=f"This run {verdict}.",
        extra={"verdict": {"black": black, **stats}},
    )
    ctx.verdicts[32] = {"black": black, "text": f"Figure 32: this run {verdict}.", **stats}
    return fig


def fig_S2(ctx: StudyContext) -> plt.Figure:
    """Supplementary: the thesis's diversity loss at a scaled profile's width, next to the setting without it.

    Panels: training images, both runs' last grids, FD8 of every grid against the training images, and the two
    terms of the generator's loss (adversarial BCE and the weighted diversity term) per epoch."""
    from xrutils.data import load_images
    from xrutils.evaluators.metrics import pooled_fd
    from xrutils.runs import read_grid

    run, faithful = figure_runs("S2")
    dirs = {r: ctx.run_dir(r) for r in (run, faithful)}
    cfgs = {r: RunDir(d).read_config() for r, d in dirs.items()}
    real = load_images(cfgs[run].data, progress=False).images
    fig = plt.figure(figsize=(13, 6.6))
    top = fig.add_gridspec(2, 3, height_ratios=[1.15, 1])
    panels = [("Training images", real_grid(cfgs[run]))]
    for r, d in dirs.items():
        e = final_epoch(d)
        panels.append(
            (f"{label(r)}\ndiversity weight {cfgs[r].model.diversity_weight:g}, epoch {e}", grid_image(d, e))
        )
    for i, (title, img) in enumerate(panels):
        ax = fig.add_subplot(top[0, i])
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    ax_fd, ax_loss = fig.add_subplot(top[1, 0:2]), fig.add_subplot(top[1, 2])
    fd8 = {}
    for r, d in dirs.items():
        rd, cfg = RunDir(d), cfgs[r]
        epochs = rd.grid_epochs()
        fd8[r] = [
            pooled_fd(real, read_grid(rd.sample_path(e), cfg.data.image_size, cfg.train.n_grid))
            for e in epochs
        ]
        ax_fd.plot(epochs, fd8[r], marker="o", ms=3, label=label(r))
        rows = rd.read_history()
        x = [row["epoch"] for row in rows]
        (line,) = ax_loss.plot(x, [row["loss_g_adv"] for row in rows], label=f"{label(r)}: BCE(D(G(z)), 1)")
        ax_loss.plot(
            x,
            [cfg.model.diversity_weight * row["diversity"] for row in rows],
            ls="--",
            color=line.get_color(),
            label=f"{label(r)}: weight x diversity",
        )
    ax_fd.set_xlabel("Epoch")
    ax_fd.set_ylabel("FD8 vs training images (lower is better)")
    ax_fd.set_title("FD8 of each fixed-noise grid (8x8-pooled pixels)", fontsize=9)
    ax_fd.grid(alpha=0.3)
    ax_fd.legend(fontsize=7)
    ax_loss.set_xlabel("Epoch")
    ax_loss.set_title("The generator's loss, term by term (epoch means)", fontsize=9)
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=6)
    c = cfgs[run]
    fig.suptitle(
        f"The thesis's diversity loss at {ctx.profile}-profile scale ({c.data.image_size}², h "
        f"{c.model.hidden}, lr {c.train.lr:g}, {RunDir(dirs[run]).read_history()[-1]['step']} steps): "
        f"last FD8 {fd8[run][-1]:.2f} without it, {fd8[faithful][-1]:.2f} with it",
        fontsize=10,
    )
    fig.tight_layout()
    figures.save(
        fig,
        "S2",
        ctx,
        runs=[run_info(d, "samples + losses", final_epoch(d)) for d in dirs.values()],
        source=describe_data(c),
        short_source=short_source(c),
        extra={"fd8": {r: v[-1] for r, v in fd8.items()}},
    )
    return fig
