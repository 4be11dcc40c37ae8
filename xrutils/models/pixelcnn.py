"""PixelCNN (thesis §2.3, §3.4; spec original-code.md §2.3, §3.3).

van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel recurrent neural networks": masked convolutions (type A in the
first layer, the centre pixel hidden; type B after it), a 256-way softmax over the intensity of each pixel, trained
with cross-entropy on the target ``round(255 x)``; the input is the continuous [0, 1] image (not one-hot).

Two networks, chosen by ``model.arch``:

* ``residual`` (the thesis text, §2.3.4; default): a masked-A k x k conv, then residual blocks of
  1x1 conv (hidden -> hidden/2) + ReLU, masked-B k x k conv + ReLU, 1x1 conv (-> hidden) + ReLU, plus the skip;
  10 masked layers of 400 channels, kernel 7. BatchNorm follows every conv, as in the original's layers.
* ``plain`` (what the original code ran, ``Model()`` with its defaults): 8 masked layers of 64 channels, kernel 7,
  each conv + BN + ReLU, no residuals (1,425,728 parameters; 1,827,392 with 10 layers).

Both end in a 1x1 conv to 256 logits per pixel.

``model.coords`` (off in the thesis; on in the demo, docs/DISCREPANCIES.md) gives the first masked conv two more
input channels, each pixel's row and column scaled to [-1, 1] ("CoordConv", Liu et al. 2018). Positions are no
data, so seeing them breaks no causality; without them a net whose reach is smaller than the image cannot tell
where in the chest it is once it is away from the borders, and its samples lose the chest's layout.

Deliberate deviations (docs/DISCREPANCIES.md): the mask is a buffer multiplied into the weight in ``forward``
(the original multiplied ``weight.data`` in place, so masked weights still received Adam updates); sampling runs
in eval mode under ``no_grad`` (the original's in-training samples ran in train mode, spec §6 #10) with every
draw from a private generator; and sampling goes by wavefronts of mutually independent pixels. By default
(``order="cached"``) each layer's output is computed once per position, as soon as the pixels it depends on are
drawn, and kept for the layers above; ``order="wavefront"`` computes each pixel's logits on its receptive field
only. Both are exact: eval-mode BN and 1x1 convs are pointwise, masked rows below the centre are zero, and
zeroing outside the image reproduces the full network's zero padding (tests compare both with the original
full-canvas way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from xrutils.config import ConfigError, ModelConfig, RunConfig
from xrutils.data.ranges import UNIT_RANGE
from xrutils.models.base import GenerativeModel, StepContext, checkpointed, eval_mode, logged, weighted
from xrutils.models.family import Family
from xrutils.models.layers import check_image_size, check_positive, private_generator, seeded_init

SIZES = (16, 28, 32, 64, 128, 256)
LEVELS = 256


@dataclass(frozen=True)
class PixelCNNConfig(ModelConfig):
    # residual = thesis text; plain = the network the code ran
    arch: Literal["residual", "plain"] = "residual"
    hidden: int = 400  # channels of every masked layer (residual: of the skip path)
    layers: int = 10  # masked convolutions in total, the type-A first layer included
    kernel: int = 7  # masked kernel size (odd)
    bottleneck: int = 0  # residual blocks' inner width; 0 = hidden // 2 (van den Oord 2016, Fig. 5)
    coords: bool = (
        False  # the first layer also sees each pixel's (row, column) in [-1, 1] (not in the thesis)
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("layers", self.layers)
        check_positive("bottleneck", self.bottleneck, zero_ok=True)
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ConfigError(f"model.kernel={self.kernel!r} is invalid; expected an odd number >= 1")


class MaskedConv2d(nn.Conv2d):
    """A k x k conv that sees only pixels above, and left of, the centre (type A) or the centre too (type B)."""

    def __init__(self, mask_type: Literal["A", "B"], c_in: int, c_out: int, kernel: int):
        super().__init__(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type={mask_type!r}; expected 'A' or 'B'")
        centre = kernel // 2
        mask = torch.ones(kernel, kernel)
        mask[centre, centre + (mask_type == "B") :] = (
            0  # the centre row from the centre (A) / right of it (B)
        )
        mask[centre + 1 :] = 0  # every row below the centre
        self.mask_type = mask_type
        self.register_buffer("mask", mask.expand_as(self.weight).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The masked conv, computed with the kernel rows down to the centre only: rows below it are zero, so a
        (h + 1) x k kernel over the input padded by h on every side gives the same outputs in its first H rows
        (output row r sees input rows r - h .. r) at (h + 1) / k of the multiply-adds (4/7 at the thesis's k = 7,
        plus h / H for the rows cut off; bench/throughput.py, docs/PERFORMANCE.md)."""
        h = self.kernel_size[0] // 2
        weight = (self.weight * self.mask)[:, :, : h + 1]
        return F.conv2d(x, weight, None, padding=(h, h))[:, :, : x.shape[2]]

    def forward_cone(self, x: torch.Tensor) -> torch.Tensor:
        """The conv without padding, keeping only the kernel rows down to the centre (the rest are masked).

        (N, C, H, W) -> (N, C', H - h, W - 2h) with h = k // 2: the output window ends on the input's last row.
        """
        h = self.kernel_size[0] // 2
        return F.conv2d(x, (self.weight * self.mask)[:, :, : h + 1])


class PlainLayer(nn.Module):
    """Masked conv + BN + ReLU (the original's layer)."""

    def __init__(self, mask_type: Literal["A", "B"], c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.conv = MaskedConv2d(mask_type, c_in, c_out, kernel)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))

    def forward_cone(self, x: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        # zeroing outside the image = the full network's zero padding at this layer's input
        return F.relu(self.bn(self.conv.forward_cone(x * inside)))


class ResidualBlock(nn.Module):
    """x + ReLU(BN(1x1 up(ReLU(BN(masked-B(ReLU(BN(1x1 down(x))))))))) (thesis §2.3.4)."""

    def __init__(self, channels: int, bottleneck: int, kernel: int):
        super().__init__()
        self.down = nn.Conv2d(channels, bottleneck, 1, bias=False)
        self.bn_down = nn.BatchNorm2d(bottleneck)
        self.conv = MaskedConv2d("B", bottleneck, bottleneck, kernel)
        self.bn_conv = nn.BatchNorm2d(bottleneck)
        self.up = nn.Conv2d(bottleneck, channels, 1, bias=False)
        self.bn_up = nn.BatchNorm2d(channels)

    def _inner(self, y: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn_up(self.up(F.relu(self.bn_conv(y)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.relu(self.bn_down(self.down(x))))
        return x + self._inner(y)

    def forward_cone(self, x: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        y = self.conv.forward_cone(F.relu(self.bn_down(self.down(x))) * inside)
        h = self.conv.kernel_size[0] // 2
        return x[:, :, h:, h : x.shape[3] - h] + self._inner(y)  # the skip, cropped to the output window


class PixelCNNNet(nn.Module):
    """x (B, 1, S, S) in [0, 1] -> logits (B, 256, S, S): masked stages (A first, then B) and a 1x1 head."""

    def __init__(self, cfg: PixelCNNConfig, image_size: int):
        super().__init__()
        h, k = cfg.hidden, cfg.kernel
        self.kernel = k
        if cfg.coords:
            axis = torch.linspace(-1.0, 1.0, image_size)
            rows, cols = torch.meshgrid(axis, axis, indexing="ij")
            self.register_buffer("coords", torch.stack([rows, cols])[None], persistent=False)  # (1, 2, S, S)
        else:
            self.coords = None
        stages: list[nn.Module] = [PlainLayer("A", 1 + 2 * cfg.coords, h, k)]
        for _ in range(cfg.layers - 1):
            if cfg.arch == "plain":
                stages.append(PlainLayer("B", h, h, k))
            else:
                stages.append(ResidualBlock(h, cfg.bottleneck or max(1, h // 2), k))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Conv2d(h, LEVELS, 1)
        self.checkpointing = False  # recompute each stage in the backward pass (set by the training loop)

    def with_coords(self, x: torch.Tensor) -> torch.Tensor:
        """The first layer's input: the image, plus the position channels when ``model.coords`` is on."""
        if self.coords is None:
            return x
        if self.coords.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"this PixelCNN was built for {self.coords.shape[-1]} px images (model.coords); got {tuple(x.shape)}"
            )
        return torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.with_coords(x)
        if self.checkpointing and self.training and torch.is_grad_enabled():
            for stage in self.stages:  # each stage's activations recomputed in the backward pass
                x = checkpointed(stage, x)
            return self.head(x)
        return self.head(self.stages(x))

    @property
    def reach(self) -> int:
        """R: output (r, c) depends on input rows r-R..r and columns c-R..c+R (each masked conv adds k // 2)."""
        return len(self.stages) * (self.kernel // 2)

    def cone_logits(self, windows: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        """Logits (N, 256) of the bottom-centre pixel of each receptive-field window.

        ``windows`` (N, C, R+1, 2R+1) are crops of the first layer's input (:meth:`with_coords` of the canvas) ending on the pixel's row and centred on its column, zero
        outside the image; ``inside`` (N or 1, 1, R+1, 2R+1) is 1 where the crop lies inside the image. Each stage
        shrinks the window by k // 2 on the top, left and right, so only the receptive field is computed; this is
        exact because 1x1 convs and eval-mode BN are pointwise and masked rows below the centre are zero.
        """
        x = windows
        for stage in self.stages:
            top, left = inside.shape[2] - x.shape[2], (inside.shape[3] - x.shape[3]) // 2
            x = stage.forward_cone(x, inside[:, :, top:, left : inside.shape[3] - left])
        return self.head(x)[:, :, 0, 0]

    def logits_at(self, canvas: torch.Tensor, r: int, c: int) -> torch.Tensor:
        """The logits (B, 256) of pixel (r, c) of ``canvas`` (B, 1, S, S), computed on its receptive field only."""
        windows, inside = receptive_windows(
            self.with_coords(canvas), self.reach, torch.tensor([r]), torch.tensor([c])
        )
        return self.cone_logits(windows, inside)


def receptive_windows(
    canvas: torch.Tensor, reach: int, rows: torch.Tensor, cols: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops (P*B, C, R+1, 2R+1) of ``canvas`` (B, C, S, S) ending at pixels (rows[p], cols[p]), pixel-major, and
    their inside-the-image masks (P*B, 1, R+1, 2R+1)."""
    b, ch, s = canvas.shape[0], canvas.shape[1], canvas.shape[-1]
    pad = (reach, reach, reach, 0)  # left, right, top; nothing below the pixel's row is ever seen
    views = [
        F.pad(t, pad).unfold(2, reach + 1, 1).unfold(3, 2 * reach + 1, 1)  # (., 1, S, S, R+1, 2R+1)
        for t in (canvas, canvas.new_ones(1, 1, s, s))
    ]
    windows = views[0][:, :, rows, cols].permute(2, 0, 1, 3, 4).reshape(-1, ch, reach + 1, 2 * reach + 1)
    inside = views[1][:, 0, rows, cols].transpose(0, 1).repeat_interleave(b, dim=0)
    return windows, inside.reshape(-1, 1, reach + 1, 2 * reach + 1)


def _finality(net: PixelCNNNet, when: torch.Tensor) -> list[torch.Tensor]:
    """Per stage, the step after which each position's output is final: ``(S, S)`` integers, -1 = before the
    first pixel is drawn. ``when[r, c]`` is the wavefront of pixel (r, c); a stage's output at q is final once
    every input its masked kernel sees is (outside the image counts as always final)."""
    out, prev = [], when
    for stage in net.stages:
        conv = stage.conv
        h = conv.kernel_size[0] // 2
        mask = conv.mask[0, 0, : h + 1].bool().cpu()  # (h + 1, 2h + 1)
        win = (
            F.pad(prev[None, None].float(), (h, h, h, 0), value=-1.0)
            .unfold(2, h + 1, 1)
            .unfold(3, 2 * h + 1, 1)
        )
        prev = win[0, 0].masked_fill(~mask, -1.0).amax(dim=(-2, -1)).long()  # (S, S)
        out.append(prev)
    return out


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``x * scale + shift`` per channel."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class _Incremental:
    """Each stage's output computed once per position, when its inputs are final (the ``cached`` sampler).

    Per stage it keeps the masked conv's input, zero-padded as ``forward`` pads it, and for residual blocks the
    skip path, as channels-last ``(n, positions, C)`` arrays so a position's channels are contiguous. After each
    wavefront is drawn, every position whose output just became final is computed from its (h + 1) x (2h + 1)
    window: the masked weights as one matrix product, then eval-mode BN, ReLU and the 1x1 convs as per-position
    affine maps, the same functions ``forward`` computes. The work per sample is one network pass over the image
    instead of one receptive field per pixel.
    """

    def __init__(self, net: PixelCNNNet, n: int, groups: list, size: int):
        self.net, self.n, self.size = net, n, size
        dev = net.head.weight.device
        zeros = lambda *shape: net.head.weight.new_zeros(shape)  # noqa: E731
        when = torch.empty(size, size, dtype=torch.long)
        for t, (rows, cols) in enumerate(groups):
            when[rows, cols] = t
        steps = torch.arange(-1, len(groups) + 1)
        self.stages: list[dict[str, Any]] = []
        for stage, final in zip(net.stages, _finality(net, when), strict=True):
            conv = stage.conv
            h = conv.kernel_size[0] // 2
            width = size + 2 * h
            dr, dc = torch.meshgrid(torch.arange(h + 1), torch.arange(2 * h + 1), indexing="ij")
            order = torch.argsort(final.flatten(), stable=True)
            bounds = torch.searchsorted(final.flatten()[order], steps)
            st: dict[str, Any] = {
                "h": h,
                "width": width,
                # the masked conv's input, padded h on the top, left and right; (n, (S + h)(S + 2h), C)
                "pad": zeros(n, (size + h) * width, conv.in_channels),
                # kernel rows down to the centre, as (C', (h + 1)(2h + 1) C) in the windows' (row, col, channel)
                "weight": (conv.weight * conv.mask)[:, :, : h + 1].permute(0, 2, 3, 1).flatten(1),
                "window": (dr * width + dc).flatten().to(dev),  # window offsets from its top-left corner
                # per step t + 1: the positions (flat r S + c) whose output becomes final after step t
                "due": [order[bounds[i] : bounds[i + 1]].to(dev) for i in range(len(steps) - 1)],
            }
            if isinstance(stage, ResidualBlock):
                st["skip"] = zeros(n, size * size, stage.down.in_channels)
                st["down"], st["bn_down"] = stage.down.weight.flatten(1), _bn_affine(stage.bn_down)
                st["bn_conv"], st["bn_up"] = _bn_affine(stage.bn_conv), _bn_affine(stage.bn_up)
                st["up"] = stage.up.weight.flatten(1)
            else:
                st["bn"] = _bn_affine(stage.bn)
            self.stages.append(st)
        self.out = zeros(n, size * size, net.head.in_channels)  # the last stage's output
        if net.coords is not None:
            first = self.stages[0]
            every = torch.arange(size * size, device=dev)
            first["pad"][:, self._padded(first, every), 1:] = net.coords[0].flatten(1).t()

    def _padded(self, st: dict[str, Any], pos: torch.Tensor) -> torch.Tensor:
        """Flat positions r S + c -> their index in the stage's padded input."""
        h = st["h"]
        return (pos // self.size + h) * st["width"] + pos % self.size + h

    def advance(self, t: int) -> None:
        """Compute every stage output that becomes final after step ``t`` (-1: before any pixel is drawn)."""
        n = self.n
        for i, st in enumerate(self.stages):
            pos = st["due"][t + 1]
            m = len(pos)
            if m == 0:
                continue
            corner = (pos // self.size) * st["width"] + pos % self.size  # the window's top-left, padded
            idx = (corner[:, None] + st["window"][None]).flatten()
            y = st["pad"].index_select(1, idx).reshape(n * m, -1) @ st["weight"].t()  # (n m, C')
            if "skip" in st:
                (s1, b1), (s2, b2) = st["bn_conv"], st["bn_up"]
                inner = torch.relu(torch.relu(y * s1 + b1) @ st["up"].t() * s2 + b2)
                a = st["skip"].index_select(1, pos).reshape(n * m, -1) + inner
            else:
                s0, b0 = st["bn"]
                a = torch.relu(y * s0 + b0)
            if i + 1 == len(self.stages):
                self.out.index_copy_(1, pos, a.view(n, m, -1))
                continue
            nxt = self.stages[i + 1]
            if "skip" in nxt:
                nxt["skip"].index_copy_(1, pos, a.view(n, m, -1))
                s0, b0 = nxt["bn_down"]
                a = torch.relu(a @ nxt["down"].t() * s0 + b0)
            nxt["pad"].index_copy_(1, self._padded(nxt, pos), a.view(n, m, -1))

    def logits(self, pos: torch.Tensor) -> torch.Tensor:
        """Pixel-major logits (P n, 256) of flat positions ``pos``, whose last stage must be final."""
        x = self.out.index_select(1, pos).transpose(0, 1).reshape(len(pos) * self.n, -1)
        return F.linear(x, self.net.head.weight.flatten(1), self.net.head.bias)

    def draw(self, pos: torch.Tensor, values: torch.Tensor) -> None:
        """Set the pixels at flat positions ``pos`` to ``values`` (n, P) in the first stage's input."""
        first = self.stages[0]
        first["pad"][:, self._padded(first, pos), 0] = values


def wavefronts(size: int, reach: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Groups of pixels that can be sampled together, in dependency order.

    Pixel (r, c) sees row r left of c and rows above up to column c + R, so with t = c + r (R + 1) every pixel it
    sees has a smaller t: all pixels of one t are independent of each other. (S - 1)(R + 1) + S groups instead of
    S^2 single pixels.
    """
    groups: dict[int, list[tuple[int, int]]] = {}
    for r in range(size):
        for c in range(size):
            groups.setdefault(c + r * (reach + 1), []).append((r, c))
    return [
        (torch.tensor([p[0] for p in g]), torch.tensor([p[1] for p in g])) for _, g in sorted(groups.items())
    ]


def draw_levels(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw of one level per row of ``logits`` (N, 256) from uniforms ``u`` (N,) in [0, 1)."""
    cdf = torch.softmax(logits.float(), dim=1).cumsum(dim=1)
    return torch.searchsorted(cdf, u[:, None].to(cdf.device), right=True)[:, 0].clamp_(max=LEVELS - 1)


class PixelCNN(GenerativeModel):
    value_range = UNIT_RANGE

    def __init__(self, cfg: PixelCNNConfig, image_size: int):
        super().__init__()
        self.cfg = cfg
        self.image_size = image_size
        self.net = PixelCNNNet(cfg, image_size)

    def networks(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def set_checkpointing(self, on: bool) -> bool:
        self.net.checkpointing = bool(on)
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, S, S) in [0, 1] -> logits (B, 256, S, S)."""
        return self.net(x)

    def configure_optimizers(self, train_cfg: Any) -> dict[str, torch.optim.Optimizer]:
        return {"net": torch.optim.Adam(self.net.parameters(), lr=train_cfg.lr)}

    def training_step(
        self, batch: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], ctx: StepContext
    ) -> dict[str, torch.Tensor]:
        opt = optimizers["net"]
        opt.zero_grad(set_to_none=True)
        total = batch.new_zeros((), dtype=torch.float64)
        # BatchNorm normalises each micro-batch by its own statistics and updates its running statistics once per
        # micro-batch (docs/DISCREPANCIES.md); with micro_batch 0 the step is the batch's exactly
        for share, (x,) in ctx.micro_batches(batch):
            target = (x[:, 0] * (LEVELS - 1)).round().long()  # (B, H, W) in 0..255
            with ctx.autocast():
                logits = self(x)
            loss = F.cross_entropy(logits.float(), target)  # mean over B x H x W, nats
            ctx.backward(weighted(loss, share))
            total = total + weighted(loss.detach().double(), share)
        ctx.step(opt)
        return logged(loss=total, bits_per_dim=total / math.log(2))

    def supports_micro_batches(self) -> bool:
        return True

    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """Exact negative log-likelihood of the 256-level images, in bits per pixel; (B,), x in [0, 1]."""
        target = (x[:, 0].float() * (LEVELS - 1)).round().clamp(0, LEVELS - 1).long()
        with eval_mode(self):
            nll = F.cross_entropy(self(x.float()).float(), target, reduction="none")  # (B, H, W)
        return nll.flatten(1).mean(dim=1) / math.log(2)

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        order: Literal["cached", "wavefront", "raster", "full"] = "cached",
        **options: Any,
    ) -> torch.Tensor:
        """Pixel by pixel; pixel (r, c) draws its level from the softmax by inverse CDF with its own uniform
        ``u[r, c]``, all drawn from ``generator`` up front, so every ``order`` gives the same images:

        * ``full``: the whole network on the whole canvas for every pixel, in raster order (the original's way);
        * ``raster``: the same order, each pixel's logits computed on its receptive field only;
        * ``wavefront``: receptive fields of every pixel of a wavefront (independent pixels) at once;
        * ``cached`` (default): wavefront by wavefront, but every layer's output is computed once per position,
          as soon as its inputs are drawn, and kept (one network pass per sample instead of one receptive field
          per pixel; 15-30x faster on a CPU). Its sums run in another order, so logits agree with the others to
          float rounding (about 1e-6) rather than bit for bit, and a draw whose uniform falls that close to a
          CDF step can differ.
        """
        if options:
            raise TypeError(f"PixelCNN.sample takes only 'order', got {sorted(options)}")
        if order not in ("cached", "wavefront", "raster", "full"):
            raise ValueError(f"order={order!r}; expected 'cached', 'wavefront', 'raster' or 'full'")
        g = private_generator(generator)
        s, reach = self.image_size, self.net.reach
        u = torch.rand((s, s, n), generator=g, device=g.device).to(self.device)
        if order in ("cached", "wavefront"):
            groups = wavefronts(s, reach)
        else:
            groups = [(torch.tensor([r]), torch.tensor([c])) for r in range(s) for c in range(s)]
        with eval_mode(self):
            canvas = torch.zeros(n, 1, s, s, device=self.device)
            engine = _Incremental(self.net, n, groups, s) if order == "cached" else None
            if engine is not None:
                engine.advance(-1)
            for t, (rows, cols) in enumerate(groups):
                pos = (rows * s + cols).to(self.device)
                if engine is not None:
                    logits = engine.logits(pos)
                elif order == "full":
                    logits = self(canvas)[:, :, rows[0], cols[0]]
                else:
                    windows = receptive_windows(self.net.with_coords(canvas), reach, rows, cols)
                    logits = self.net.cone_logits(*windows)  # (P*n, 256)
                k = draw_levels(logits, u[rows, cols].reshape(-1))  # pixel-major, like the windows
                values = k.view(len(rows), n).t().float() / (LEVELS - 1)
                canvas[:, 0, rows, cols] = values
                if engine is not None:
                    engine.draw(pos, values)
                    engine.advance(t)
        return canvas


def build(cfg: RunConfig) -> PixelCNN:
    check_image_size("pixelcnn", cfg.data.image_size, SIZES)
    with seeded_init(cfg.seed):
        return PixelCNN(cfg.model, cfg.data.image_size)


PRESETS: dict[str, dict[str, Any]] = {
    "baseline": {},  # thesis: residual 10 x 400, kernel 7, 64x64, lr 1e-4, 25 epochs
    "lr5e-4": {"train.lr": 5e-4},
    "lr1e-5": {"train.lr": 1e-5},
    "size32": {"data.image_size": 32},
    "size128": {"data.image_size": 128},
    # spec §3.3: the code ran Model() defaults, plain 8 x 64, for 50 epochs
    "asrun": {"model.arch": "plain", "model.hidden": 64, "model.layers": 8, "train.epochs": 50},
    "lr5e-4-asrun": {
        "model.arch": "plain",
        "model.hidden": 64,
        "model.layers": 8,
        "train.epochs": 50,
        "train.lr": 5e-4,
    },
    # Discvsauto builds the 1e-5 model with 10 plain layers of 64 channels
    "lr1e-5-asrun": {
        "model.arch": "plain",
        "model.hidden": 64,
        "model.layers": 10,
        "train.epochs": 50,
        "train.lr": 1e-5,
    },
    "size128-asrun": {
        "model.arch": "plain",
        "model.hidden": 64,
        "model.layers": 8,
        "train.epochs": 50,
        "data.image_size": 128,
    },
    "tiny": {"data.image_size": 16, "model.hidden": 4, "model.layers": 3, "model.kernel": 3},
}

FAMILY = Family(
    name="pixelcnn",
    config_cls=PixelCNNConfig,
    build=build,
    presets=PRESETS,
    defaults={
        "data.image_size": 64,
        "data.hflip": True,
        "train.lr": 1e-4,
        "train.epochs": 25,
        "train.batch_size": 128,
        # bf16 autocast on GPUs (CUDA only; the original ran fp32): bench/precision.py finds its loss curve within
        # the seeds' spread of fp32's (docs/DISCREPANCIES.md); it halves the thesis profile's largest cost
        "train.precision": "bf16",
    },
    description="PixelCNN with masked convolutions and a 256-way softmax; [0, 1] images",
)
