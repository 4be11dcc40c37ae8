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
draw from a private generator; and sampling computes each pixel's logits on its receptive field only, for a whole
wavefront of mutually independent pixels at once. That is exact: eval-mode BN and 1x1 convs are pointwise, masked
rows below the centre are zero, and zeroing the window outside the image before each masked conv reproduces the
full network's zero padding (tests compare it with the original full-canvas way).
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
from xrutils.models.base import GenerativeModel, StepContext, eval_mode
from xrutils.models.family import Family
from xrutils.models.layers import check_image_size, check_positive, private_generator, scaled_lr, seeded_init

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
        return F.conv2d(x, self.weight * self.mask, None, padding=self.padding)

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
        return self.head(self.stages(self.with_coords(x)))

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, S, S) in [0, 1] -> logits (B, 256, S, S)."""
        return self.net(x)

    def configure_optimizers(self, train_cfg: Any) -> dict[str, torch.optim.Optimizer]:
        return {"net": torch.optim.Adam(self.net.parameters(), lr=train_cfg.lr)}

    def training_step(
        self, batch: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], ctx: StepContext
    ) -> dict[str, float]:
        opt = optimizers["net"]
        opt.zero_grad(set_to_none=True)
        target = (batch[:, 0] * (LEVELS - 1)).round().long()  # (B, H, W) in 0..255
        with ctx.autocast():
            logits = self(batch)
        loss = F.cross_entropy(logits.float(), target)  # mean over B x H x W, nats
        ctx.backward(loss)
        ctx.step(opt)
        return {"loss": float(loss.item()), "bits_per_dim": float(loss.item() / math.log(2))}

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
        order: Literal["wavefront", "raster", "full"] = "wavefront",
        **options: Any,
    ) -> torch.Tensor:
        """Pixel by pixel; pixel (r, c) draws its level from the softmax by inverse CDF with its own uniform
        ``u[r, c]``, all drawn from ``generator`` up front, so the three ``order`` s give the same images:

        * ``full``: the whole network on the whole canvas for every pixel, in raster order (the original's way);
        * ``raster``: the same order, each pixel's logits computed on its receptive field only;
        * ``wavefront`` (default): receptive fields of every pixel of a wavefront (independent pixels) at once.
        """
        if options:
            raise TypeError(f"PixelCNN.sample takes only 'order', got {sorted(options)}")
        if order not in ("wavefront", "raster", "full"):
            raise ValueError(f"order={order!r}; expected 'wavefront', 'raster' or 'full'")
        g = private_generator(generator)
        s, reach = self.image_size, self.net.reach
        u = torch.rand((s, s, n), generator=g, device=g.device).to(self.device)
        if order == "wavefront":
            groups = wavefronts(s, reach)
        else:
            groups = [(torch.tensor([r]), torch.tensor([c])) for r in range(s) for c in range(s)]
        with eval_mode(self):
            canvas = torch.zeros(n, 1, s, s, device=self.device)
            for rows, cols in groups:
                if order == "full":
                    logits = self(canvas)[:, :, rows[0], cols[0]]
                else:
                    windows = receptive_windows(self.net.with_coords(canvas), reach, rows, cols)
                    logits = self.net.cone_logits(*windows)  # (P*n, 256)
                k = draw_levels(logits, u[rows, cols].reshape(-1))  # pixel-major, like the windows
                canvas[:, 0, rows, cols] = k.view(len(rows), n).t().float() / (LEVELS - 1)
        return canvas


def build(cfg: RunConfig) -> PixelCNN:
    check_image_size("pixelcnn", cfg.data.image_size, SIZES)
    with seeded_init(cfg.seed):
        return PixelCNN(cfg.model, cfg.data.image_size)


def profile_overrides(profile: str, cfg: RunConfig) -> dict[str, Any]:
    # demo (measured on the phantom, 2 CPU cores; docs/DISCREPANCIES.md "Profiles"): every image size halved
    # (64 -> 32, 32 -> 16, 128 -> 64), 6 residual masked layers of 32 channels with kernel 5 (a reach of 12 pixels:
    # the 3-layer kernel-3 net could not see past 3 pixels, so no anatomy), the position channels (model.coords:
    # without them the 32x32 samples lose the chest's layout; after 600 steps FD8 2.78 without and 1.00 with them
    # under the cosine decay, 2.36 and 1.81 at a constant 1e-3), every lr x 10 with a cosine decay to 0 (at a
    # constant 1e-3 the grids swing from grid to grid and drift to white, FD8 2.5 after 1,200 steps; with the
    # decay 1.17 after 450 steps and 1.00 after 600; in the build of 06f9415, 600 steps gave FD8 1.22 but the
    # build took 35 min), 30 epochs (450 steps, what the 30-minute limit leaves; the 64x64 run 1 epoch: each of its
    # steps costs 4x and sampling it 4x more, and 30 steps learned nothing, FD8 3.36 -> 3.16), a grid every 15
    # epochs, judged checkpoints at the first and last epoch (sampling 128 images for each costs 20-30 s at 32x32).
    if profile == "demo":
        size = max(16, cfg.data.image_size // 2)  # 16 px is the smallest size every evaluator takes
        return {
            "data.image_size": size,
            "model.layers": 6,
            "model.hidden": 32,
            "model.bottleneck": 0,
            "model.kernel": 5,
            "model.coords": True,
            "train.lr": scaled_lr(cfg.train.lr),
            "train.lr_schedule": "cosine",
            "train.epochs": 1 if size >= 64 else 30,
            "train.sample_every": 15,
            "train.checkpoint_every": 30,
        }
    if profile == "smoke":
        return {"model.layers": 2, "model.hidden": 4, "model.bottleneck": 0, "model.kernel": 3}
    return {}


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
    },
    profile_overrides=profile_overrides,
    description="PixelCNN with masked convolutions and a 256-way softmax; [0, 1] images",
)
