"""The plotting building blocks: run grids and labels, sample panels, judge and metric curves with their
intervals, and the plots a model notebook shows of its own run."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import MaxNLocator
from PIL import Image

from xrutils import figures
from xrutils.config import RunConfig
from xrutils.runs import GRID_PADDING, RunDir
from xrutils.studies import StudyContext, describe_data, label, short_source

BAND_ALPHA = 0.18
JUDGE_YLABEL = "Discriminator loss: BCE(D(real),1) + BCE(D(fake),0)"

# ----------------------------------------------------------------------------------------------------------------
# reading run folders


def final_epoch(run_dir: str | Path) -> int:
    """The last epoch with a saved sample grid (else a checkpoint)."""
    rd = RunDir(run_dir)
    grids = sorted(int(p.stem.split("_")[1]) for p in rd.samples_dir.glob("epoch_*.png"))
    if grids:
        return grids[-1]
    epochs = rd.checkpoint_epochs()
    if not epochs:
        raise FileNotFoundError(f"{run_dir}: no sample grids and no checkpoints; has it been trained?")
    return epochs[-1]


def grid_image(run_dir: str | Path, epoch: int | None = None) -> np.ndarray:
    """The saved fixed-noise sample grid of ``epoch`` (default: the last) as a uint8 greyscale array."""
    rd = RunDir(run_dir)
    epoch = final_epoch(run_dir) if epoch is None else epoch
    path = rd.sample_path(epoch)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no sample grid for epoch {epoch}")
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


# The families whose training grids the original saved min-max scaled (save_image(normalize=True): the GAN's,
# spec §2.1, §6 #36); the VAE's were saved unscaled, the PixelCNN's and the DDPM's from [0, 1] images.
MINMAX_FAMILIES = ("gan",)


def minmax_grid(grid: np.ndarray, tile: int, pad: int = GRID_PADDING) -> np.ndarray:
    """A saved sample grid as ``save_image(normalize=True)`` would have saved it (the original protocol's
    ``minmax_grids``): the tiles' pixels scaled so that the grid's darkest becomes 0 and its brightest 255, the
    padding left black. Brightness then says nothing across epochs or models."""
    mask = np.zeros(grid.shape, dtype=bool)
    for r0 in range(pad, grid.shape[0] - tile + 1, tile + pad):
        for c0 in range(pad, grid.shape[1] - tile + 1, tile + pad):
            mask[r0 : r0 + tile, c0 : c0 + tile] = True
    if not mask.any():
        raise ValueError(f"grid of shape {grid.shape} holds no {tile}x{tile} tiles with padding {pad}")
    px = grid[mask].astype(np.float64)
    lo, hi = px.min(), px.max()
    out = np.zeros_like(grid)
    out[mask] = np.clip(np.round((px - lo) / max(hi - lo, 1e-12) * 255.0), 0, 255).astype(grid.dtype)
    return out


def protocol_quirks(ctx: StudyContext):
    """The judge protocol a study notebook was run with (its ``protocol`` parameter), as Quirks."""
    from xrutils.config import Quirks

    return Quirks.from_protocol(ctx.parameters.get("protocol", "corrected"))


def size_label(cfg: RunConfig) -> str:
    """'64²', or '128² (upsampled from a 64 px source)' when the run trained above its images' own resolution."""
    size = cfg.data.image_size
    native = _native(cfg.data)
    return f"{size}²" + (f" (upsampled from a {native} px source)" if native < size else "")


def trained_label(cfg: RunConfig) -> str:
    """:func:`size_label` plus the learning rate and width the run really trained with where its profile changed
    them from the thesis's run of the same preset ('64², demo lr 0.001, h 16'), and its lr schedule and the
    PixelCNN's position channels where those differ: a legend names the thesis's run, this says what the picture
    is of."""
    from xrutils.registry import build_config

    out = size_label(cfg)
    if cfg.profile == "thesis":
        return out
    thesis = build_config(cfg.family, cfg.preset, "thesis")
    changed = []
    if cfg.train.lr != thesis.train.lr:
        changed.append(f"lr {cfg.train.lr:g}")
    if cfg.model.hidden != thesis.model.hidden:  # every family's config has a width
        changed.append(f"h {cfg.model.hidden}")
    if cfg.train.lr_schedule != thesis.train.lr_schedule:
        changed.append(f"{cfg.train.lr_schedule} lr")
    if getattr(cfg.model, "coords", False) and not getattr(thesis.model, "coords", False):
        changed.append("position channels")
    return out + (f", {cfg.profile} " + ", ".join(changed) if changed else "")


_NATIVE: dict[Any, int] = {}


def _native(data_cfg: Any) -> int:
    from xrutils.data import native_resolution

    key = (
        data_cfg.source,
        data_cfg.root,
        data_cfg.phantom_n,
        data_cfg.phantom_seed,
        data_cfg.chestmnist_path,
    )
    if key not in _NATIVE:
        _NATIVE[key] = native_resolution(data_cfg)
    return _NATIVE[key]


def run_info(run_dir: str | Path, role: str, epoch: int | None = None) -> dict[str, Any]:
    cfg = RunDir(run_dir).read_config()
    return {
        "run_dir": str(run_dir),
        "role": role,
        "epoch": epoch,
        "family": cfg.family,
        "preset": cfg.preset,
        "image_size": cfg.data.image_size,
    }


def tile(images: torch.Tensor, nrow: int, pad: int = 2) -> np.ndarray:
    """(N,1,H,W) uint8 -> one greyscale mosaic (the same layout as the training grids)."""
    n, _, h, w = images.shape
    rows = math.ceil(n / nrow)
    out = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = (
            images[i, 0].numpy()
        )
    return out


def real_grid(cfg: RunConfig, n: int | None = None) -> np.ndarray:
    """A mosaic of the first ``n`` training images of ``cfg``'s data at its image size."""
    from xrutils.data import load_images

    n = n or cfg.train.n_grid
    images = load_images(cfg.data, progress=False).images[:n]
    return tile(images, nrow=max(1, math.ceil(math.sqrt(len(images)))))  # the layout of train.save_grid


# ----------------------------------------------------------------------------------------------------------------
# building blocks


def panel_figure(panels: list[tuple[str, np.ndarray]], suptitle: str | None = None) -> plt.Figure:
    lines = max(title.count("\n") + 1 for title, _ in panels)  # room for titles of three lines and more
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.3 * len(panels), 3.7 + 0.18 * max(0, lines - 2)), squeeze=False
    )
    for ax, (title, img) in zip(axes[0], panels, strict=False):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_anchor("S")  # the spare height of a square image goes above it, to the title
        ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def figure_runs(key: int | str) -> list[str]:
    """The runs figure ``key`` draws, in its order: the figure table (:data:`xrutils.studies.FIGURES`) says."""
    return list(figures.spec(key).runs)


def sample_figure(ctx: StudyContext, key: int | str, *, dataset: bool = True, notes: str = "") -> plt.Figure:
    """Dataset panel (left) and each of the figure's runs' final-epoch sample grid, left to right."""
    runs = figure_runs(key)
    dirs = [ctx.run_dir(r) for r in runs]
    cfgs = [RunDir(d).read_config() for d in dirs]
    panels, prov = [], []
    if dataset:
        ref = max(cfgs, key=lambda c: c.data.image_size)
        panels.append((f"Dataset ({size_label(ref)})", real_grid(ref)))
    minmax = protocol_quirks(ctx).minmax_grids
    for r, d, cfg in zip(runs, dirs, cfgs, strict=True):
        e = final_epoch(d)
        scaled = minmax and cfg.family in MINMAX_FAMILIES
        # wrapped: a long trained-with line ran into the next panel's title
        trained = "\n".join(
            textwrap.wrap(
                f"{trained_label(cfg)}, epoch {e}"
                + (", min-max scaled as the original saved it" if scaled else ""),
                width=44,
            )
        )
        grid = grid_image(d, e)
        panels.append((f"{label(r)}\n{trained}", minmax_grid(grid, cfg.data.image_size) if scaled else grid))
        prov.append(run_info(d, "samples", e))
    fig = panel_figure(panels)
    figures.save(
        fig,
        key,
        ctx,
        runs=prov,
        source=describe_data(cfgs[0]),
        short_source=short_source(cfgs[0]),
        notes=notes,
    )
    return fig


def _results_runs(ctx: StudyContext, results: dict | None) -> dict[str, Any]:
    results = results or ctx.results
    if not results:
        raise ValueError(f"study {ctx.study.name}: no evaluation results; call ctx.evaluate() first")
    return results["runs"]


def curve_axes(
    ax: plt.Axes, ctx: StudyContext, runs: list[str], results: dict | None, part: str
) -> list[dict[str, Any]]:
    """Draw one line per run with its 95% band; returns the provenance of the runs and judges used."""
    res = _results_runs(ctx, results)
    prov = []
    for r in runs:
        if r not in res:
            raise KeyError(f"study {ctx.study.name}: run {r} has no evaluation result (have {sorted(res)})")
        c = res[r].get(part) or {}
        if not c.get("score"):
            raise KeyError(f"study {ctx.study.name}: run {r} has no {part!r} scores in the evaluation result")
        x = np.asarray(c["epochs"], dtype=float)
        y = np.asarray(c["score"], dtype=float)
        name = f"{label(r)}, {trained_label(RunDir(ctx.run_dir(r)).read_config())}"
        if part == "classifier" and c.get("test_accuracy") is not None:
            name += f" [clf acc {c['test_accuracy']:.2f}]"
        (line,) = ax.plot(x, y, marker="o", ms=3, label=name)
        if c.get("lo") and c.get("hi"):
            ax.fill_between(x, c["lo"], c["hi"], color=line.get_color(), alpha=BAND_ALPHA, lw=0)
        prov.append(run_info(ctx.run_dir(r), "scored", int(x[-1]) if len(x) else None))
    ax.set_xlabel("Epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return prov


def curve_figure(
    ctx: StudyContext, key: int | str, *, results: dict | None = None, title: str = "", notes: str = ""
) -> plt.Figure:
    """Thesis-style "discriminator loss per epoch" curves of the figure's runs (corrected protocol unless the
    study says otherwise)."""
    runs = figure_runs(key)
    res = _results_runs(ctx, results)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    prov = curve_axes(ax, ctx, runs, results, "judge")
    protocol = (results or ctx.results or {}).get("protocol", "corrected")
    ax.set_ylabel(JUDGE_YLABEL, fontsize=8)
    ax.set_title(
        (title or "Discriminator loss vs epoch") + f"\n{protocol} protocol; higher = judge fooled more; "
        "bands: 95% bootstrap",
        fontsize=9,
    )
    fig.tight_layout()
    judges = (results or ctx.results or {}).get("judges", {})
    prov += [
        {"run_dir": j.get("run_dir"), "role": f"judge ({s}²)"}
        for s, j in judges.items()
        if int(s) in {res[r].get("judge_size") for r in runs if r in res}
    ]
    cfg = RunDir(ctx.run_dir(runs[0])).read_config()
    figures.save(
        fig,
        key,
        ctx,
        runs=prov,
        source=describe_data(cfg),
        short_source=short_source(cfg),
        notes=notes,
        extra={"results": str(ctx.fig_dir / "results" / f"{ctx.study.name}_{protocol}.json")},
    )
    return fig


# ----------------------------------------------------------------------------------------------------------------
# model notebooks: what a run did


def loss_curves(run_dir: str | Path) -> plt.Figure:
    """Every loss column of history.csv against the epoch."""
    rows = RunDir(run_dir).read_history()
    if not rows:
        raise FileNotFoundError(f"{run_dir}: history.csv is empty or missing")
    cols = [c for c in rows[0] if "loss" in c.lower() or c.lower() in ("bpd", "kl", "bce")]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    x = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    for c in cols:
        ax.plot(x, [r[c] for r in rows], marker="o", ms=3, label=c)
    ax.set_xlabel("Epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("training loss (epoch mean)")
    ax.set_title(f"{Path(run_dir).name}: training losses", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sample_grids(run_dir: str | Path, n: int = 4) -> plt.Figure:
    """Up to ``n`` fixed-noise grids spread over the run's epochs (first, ..., last)."""
    rd = RunDir(run_dir)
    epochs = sorted(int(p.stem.split("_")[1]) for p in rd.samples_dir.glob("epoch_*.png"))
    if not epochs:
        raise FileNotFoundError(f"{rd.samples_dir}: no sample grids")
    pick = sorted({epochs[round(i * (len(epochs) - 1) / max(1, n - 1))] for i in range(min(n, len(epochs)))})
    return panel_figure(
        [(f"epoch {e}", grid_image(run_dir, e)) for e in pick], suptitle=f"{rd.name}: fixed-noise samples"
    )
