"""One function per thesis figure (``fig_01`` ... ``fig_37``), plus the plots the model notebooks show.

Figures are a pure function of run folders and evaluation results (STYLE.md §7): sample panels read the fixed-noise
grids the training loop saved (``samples/epoch_NNN.png``), curves read the evaluators' JSON (a study's
:attr:`xrutils.studies.StudyContext.results`), the two failure figures (8 and 32) and the architecture diagrams
(3 and 4) run the stored or freshly built networks forward, never backward. Nothing here trains.

Every ``fig_NN(ctx, ...)`` draws, saves PNG + PDF with provenance through :func:`xrutils.figures.save` and returns the
matplotlib Figure. "Dataset" panels show real images of the run's own data (NIH or phantom) at the run's size.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyArrowPatch, Rectangle
from matplotlib.ticker import MaxNLocator
from PIL import Image

from xrutils import figures
from xrutils.config import RunConfig
from xrutils.runs import RunDir
from xrutils.studies import FIGURES, StudyContext, describe_data, label, short_source

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


def _tile(images: torch.Tensor, nrow: int, pad: int = 2) -> np.ndarray:
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
    return _tile(images, nrow=max(1, math.ceil(math.sqrt(len(images)))))  # the layout of train.save_grid


# ----------------------------------------------------------------------------------------------------------------
# building blocks


def _panels(panels: list[tuple[str, np.ndarray]], suptitle: str | None = None) -> plt.Figure:
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
    for r, d, cfg in zip(runs, dirs, cfgs, strict=True):
        e = final_epoch(d)
        # wrapped: a long trained-with line ran into the next panel's title
        trained = "\n".join(textwrap.wrap(f"{trained_label(cfg)}, epoch {e}", width=44))
        panels.append((f"{label(r)}\n{trained}", grid_image(d, e)))
        prov.append(run_info(d, "samples", e))
    fig = _panels(panels)
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


def _curve_axes(
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
    prov = _curve_axes(ax, ctx, runs, results, "judge")
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
    return _panels(
        [(f"epoch {e}", grid_image(run_dir, e)) for e in pick], suptitle=f"{rd.name}: fixed-noise samples"
    )


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


_BOX_LAYERS = (
    torch.nn.Conv2d,
    torch.nn.ConvTranspose2d,
    torch.nn.Linear,
    torch.nn.Flatten,
    torch.nn.Upsample,
)


def trace_layers(module: torch.nn.Module, *inputs: Any) -> list[dict[str, Any]]:
    """Run ``module`` forward once and record, in call order, each shape-changing layer with the ops after it."""
    records: list[dict[str, Any]] = []
    hooks = []

    def hook(mod, args, out):
        out = out[0] if isinstance(out, tuple) else out
        if not isinstance(out, torch.Tensor):
            return
        name = type(mod).__name__
        if isinstance(mod, _BOX_LAYERS) or not records:
            desc = name
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                desc = f"{name} {mod.kernel_size[0]}×{mod.kernel_size[1]} s{mod.stride[0]} p{mod.padding[0]}"
            records.append(
                {
                    "in": tuple(args[0].shape[1:]) if args and isinstance(args[0], torch.Tensor) else None,
                    "ops": [desc],
                    "shape": tuple(out.shape[1:]),
                }
            )
        else:
            records[-1]["ops"].append(name)
            records[-1]["shape"] = tuple(out.shape[1:])

    for m in module.modules():
        if len(list(m.children())) == 0:
            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            module.eval()
            module(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return records


_SHORT = {"ConvTranspose2d": "ConvT", "Conv2d": "Conv", "BatchNorm2d": "BN"}


def _box_chain(ax: plt.Axes, records: list[dict[str, Any]], first: tuple, title: str, y0: float) -> None:
    """Draw tensors as boxes (height ~ log spatial size, width ~ log channels), layers as labelled arrows."""
    shapes = [first] + [r["shape"] for r in records]
    x = 0.0
    prev_right = None
    for i, shape in enumerate(shapes):
        c = shape[0]
        s = shape[1] if len(shape) > 1 else 1
        w = 0.25 + 0.18 * math.log2(max(c, 1))
        h = 0.35 + 0.4 * math.log2(max(s, 1))
        ax.add_patch(
            Rectangle((x, y0 - h / 2), w, h, facecolor="#9ecae1" if i else "#fdd0a2", edgecolor="k", lw=0.8)
        )
        ax.text(x + w / 2, y0 - h / 2 - 0.15, "×".join(map(str, shape)), ha="center", va="top", fontsize=7)
        if prev_right is not None:
            ax.add_patch(
                FancyArrowPatch((prev_right, y0), (x, y0), arrowstyle="->", mutation_scale=8, lw=0.8)
            )
            # the layers that made this tensor, in the gap above the arrow
            ops = [
                _SHORT.get(op.split(" ")[0], op.split(" ")[0]) + op[len(op.split(" ")[0]) :]
                for op in records[i - 1]["ops"]
            ]
            ax.text((prev_right + x) / 2, y0 + 0.08, "\n".join(ops), ha="center", va="bottom", fontsize=6.5)
        prev_right = x + w
        x += w + 1.7
    ax.text(-0.3, y0 + 2.0, title, fontsize=9, weight="bold", va="center")
    ax.set_xlim(-0.5, max(ax.get_xlim()[1], x))


def fig_03(ctx: StudyContext, model: Any) -> plt.Figure:
    """The GAN (generator and discriminator) as tensor boxes, shapes taken from one forward pass."""
    gen, disc = model.generator, model.discriminator
    gen_out = model.sample(2, generator=torch.Generator().manual_seed(0))
    g_records = trace_layers(gen, _generator_input(model, gen))
    z_shape = g_records[0]["in"]
    d_records = trace_layers(disc, gen_out)
    fig, ax = plt.subplots(figsize=(13, 5.6))
    _box_chain(
        ax,
        g_records,
        z_shape,
        f"Generator ({sum(p.numel() for p in gen.parameters()):,} parameters): noise z -> image",
        5.0,
    )
    _box_chain(
        ax,
        d_records,
        tuple(gen_out.shape[1:]),
        f"Discriminator ({sum(p.numel() for p in disc.parameters()):,} parameters): image -> P(real)",
        0.0,
    )
    ax.set_ylim(-2.0, 7.6)
    ax.set_axis_off()
    ax.set_title(
        "DCGAN of the thesis (§2.3.1), drawn from a forward pass: boxes are tensors (C×H×W)", fontsize=10
    )
    figures.save(
        fig,
        3,
        ctx,
        source="no data (forward pass of an untrained network)",
        footer=_arch_footer(ctx),
        runs=[{"run_dir": "(built, untrained)", "role": f"gan {ctx.parameters.get('gan_preset', '')}"}],
    )
    return fig


def _arch_footer(ctx: StudyContext) -> str:
    return (
        f"{ctx.profile} profile build; {ctx.parameters.get('model_profile', 'thesis')}-size network, untrained, "
        "no data"
    )


def _generator_input(model: Any, gen: torch.nn.Module) -> torch.Tensor:
    """The generator's noise input: the model's fixed noise when it has one, else found from the first layer."""
    if hasattr(model, "fixed_noise"):
        z = model.fixed_noise(2, torch.Generator().manual_seed(0))
        if isinstance(z, torch.Tensor):
            return z
    first = next(m for m in gen.modules() if isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.Linear)))
    width = first.in_channels if isinstance(first, torch.nn.ConvTranspose2d) else first.in_features
    shape = (2, width, 1, 1) if isinstance(first, torch.nn.ConvTranspose2d) else (2, width)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def find_unet(model: Any) -> torch.nn.Module:
    for net in model.networks().values():
        if hasattr(net, "down_blocks") and hasattr(net, "up_blocks"):
            return net
    raise TypeError(
        f"{type(model).__name__} has no diffusers UNet among its networks {list(model.networks())}"
    )


def unet_shapes(unet: torch.nn.Module, image_size: int) -> list[dict[str, Any]]:
    """(stage, block class, output C×H×W) for conv_in, every down block, the mid block, every up block, conv_out."""
    stages: list[tuple[str, torch.nn.Module]] = [("in", unet.conv_in)]
    stages += [(f"down{i}", b) for i, b in enumerate(unet.down_blocks)]
    stages += [("mid", unet.mid_block)] if getattr(unet, "mid_block", None) is not None else []
    stages += [(f"up{i}", b) for i, b in enumerate(unet.up_blocks)]
    stages += [("out", unet.conv_out)]
    found: list[dict[str, Any]] = []
    hooks = []
    for name, mod in stages:

        def hook(m, args, out, name=name):
            t = out[0] if isinstance(out, tuple) else out
            found.append({"stage": name, "block": type(m).__name__, "shape": tuple(t.shape[1:])})

        hooks.append(mod.register_forward_hook(hook))
    x = torch.randn(
        1, unet.config.in_channels, image_size, image_size, generator=torch.Generator().manual_seed(0)
    )
    try:
        with torch.no_grad():
            unet.eval()
            unet(x, torch.tensor([10]))
    finally:
        for h in hooks:
            h.remove()
    return found


def fig_04(ctx: StudyContext, model: Any) -> plt.Figure:
    """The diffusion UNet as a U: down path, middle, up path, skip connections (blue), shapes from a forward pass."""
    unet = find_unet(model)
    size = model.image_size
    found = unet_shapes(unet, size)
    downs = [f for f in found if f["stage"].startswith("down")]
    ups = [f for f in found if f["stage"].startswith("up")]
    mid = [f for f in found if f["stage"] == "mid"]
    fig, ax = plt.subplots(figsize=(12, 6.5))
    levels = len(downs)

    def bar(x, level, f, color):
        c, s = f["shape"][0], f["shape"][1]
        w = 0.15 + 0.09 * math.log2(max(c, 1))
        h = 0.3 + 0.22 * math.log2(max(s, 1))
        y = -level * 1.0
        ax.add_patch(Rectangle((x - w / 2, y - h / 2), w, h, facecolor=color, edgecolor="k", lw=0.7))
        ax.text(x, y - h / 2 - 0.06, f"{c}×{s}×{s}", ha="center", va="top", fontsize=6.5)
        ax.text(x, y + h / 2 + 0.04, f["block"].replace("2D", ""), ha="center", va="bottom", fontsize=6)
        return x, y

    pos = {}
    inp = next(f for f in found if f["stage"] == "in")
    pos["in"] = bar(0.0, 0, inp, "#fdd0a2")
    for i, f in enumerate(downs):
        pos[f["stage"]] = bar(1.2 * (i + 1), i + 1, f, "#9ecae1")
    xm = 1.2 * (levels + 1)
    if mid:
        pos["mid"] = bar(xm, levels + 1, mid[0], "#c7e9c0")
    for i, f in enumerate(ups):
        pos[f["stage"]] = bar(xm + 1.2 * (i + 1), levels - i, f, "#9ecae1")
    out = next(f for f in found if f["stage"] == "out")
    pos["out"] = bar(xm + 1.2 * (len(ups) + 1), 0, out, "#fdd0a2")
    order = ["in", *[f["stage"] for f in downs], *(["mid"] if mid else []), *[f["stage"] for f in ups], "out"]
    for a, b in zip(order, order[1:], strict=False):
        ax.add_patch(
            FancyArrowPatch(
                pos[a], pos[b], arrowstyle="->", mutation_scale=8, lw=0.7, color="0.3", shrinkA=14, shrinkB=14
            )
        )
    for i in range(min(len(downs), len(ups))):
        a, b = pos[downs[i]["stage"]], pos[ups[len(ups) - 1 - i]["stage"]]
        ax.plot([a[0], b[0]], [a[1] + 0.02, b[1] + 0.02], color="tab:blue", lw=1, ls="--", alpha=0.7)
    n_params = sum(p.numel() for p in unet.parameters())
    ax.set_xlim(-0.8, xm + 1.2 * (len(ups) + 1) + 0.8)
    ax.set_ylim(-(levels + 2) * 1.0, 1.2)
    ax.set_axis_off()
    ax.set_title(
        f"Diffusion UNet of the DDPM ({size}²; {n_params:,} parameters), drawn from a forward pass. Boxes: "
        "tensors after each block (C×H×W); blue dashed: skip connections",
        fontsize=9,
    )
    figures.save(
        fig,
        4,
        ctx,
        source="no data (forward pass of an untrained network)",
        footer=_arch_footer(ctx),
        runs=[{"run_dir": "(built, untrained)", "role": f"ddpm {ctx.parameters.get('ddpm_preset', '')}"}],
    )
    return fig


# ----------------------------------------------------------------------------------------------------------------
# failure figures (8, 32): what the run did, measured


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
        stats["diversity_ratio"] < 0.35 or stats["saturated_fraction"] > 0.5 or stats["pixel_std"] < 0.03
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
    black = stats["mean_intensity"] < 0.08 and stats["pixel_std"] < 0.08
    verdict = (
        "produced (near-)black images, as in the thesis"
        if black
        else f"did NOT produce black images (mean intensity {stats['mean_intensity']:.2f} vs "
        f"{stats['real_mean_intensity']:.2f} for real images)"
    )
    mosaic = _tile((fakes * 255).round().to(torch.uint8), nrow=4)
    e = final_epoch(d)
    fig = _panels(
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
    """Classifier score (mean P(real)) per epoch of the selected models, with intervals and the judge's accuracy."""
    runs = figure_runs(37)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    prov = _curve_axes(ax, ctx, runs, results, "classifier")
    ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
    ax.text(ax.get_xlim()[0], 0.5, " chance", fontsize=7, va="bottom", color="0.4")
    ax.set_ylabel("Classifier score: mean P(real) of generated images")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(
        "Classifier score vs epoch (a score, not a loss; ~0 = detected as fake)\nSimpleCNN trained per "
        "image size on held-out real vs generated images; bands: 95% bootstrap",
        fontsize=9,
    )
    fig.tight_layout()
    cfg = RunDir(ctx.run_dir(runs[0])).read_config()
    figures.save(fig, 37, ctx, runs=prov, source=describe_data(cfg), short_source=short_source(cfg))
    return fig


def fig_S1(ctx, corrected: dict, original: dict) -> plt.Figure:
    """Supplementary: the same selected runs judged under the original and the corrected protocol."""
    runs = [r for r in figure_runs("S1") if r in corrected["runs"]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharex=True)
    prov = []
    for ax, (name, res) in zip(axes, [("original", original), ("corrected", corrected)], strict=True):
        prov = _curve_axes(ax, ctx, runs, res, "judge")
        ax.set_title(f"{name} protocol", fontsize=10)
        ax.set_ylabel(JUDGE_YLABEL, fontsize=8)
    fig.suptitle(
        "Same checkpoints, two protocols: original (train-mode BN, one batch of 128, unmatched value "
        "ranges) vs corrected (eval mode, matched ranges, held-out reals, many samples, intervals)",
        fontsize=9,
    )
    fig.tight_layout()
    cfg = RunDir(ctx.run_dir(runs[0])).read_config()
    figures.save(fig, "S1", ctx, runs=prov, source=describe_data(cfg), short_source=short_source(cfg))
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


def figure_numbers() -> list[int]:
    """Thesis figures that have a ``fig_NN`` function here (all 37)."""
    return [n for n in FIGURES if f"fig_{n:02d}" in globals()]
