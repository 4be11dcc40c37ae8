"""Figures 3 and 4: the GAN and DDPM architectures, drawn from real forward passes of the built networks (the
shapes are traced, not typed in)."""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyArrowPatch, Rectangle

from xrutils import figures
from xrutils.studies import StudyContext

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
