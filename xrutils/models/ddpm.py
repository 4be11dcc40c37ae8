"""Denoising diffusion probabilistic model with a diffusers UNet (thesis §2.4, §3.5; spec original-code.md §2.4, §3.4).

Ho, Jain & Abbeel 2020, "Denoising diffusion probabilistic models", built as the original did from the Hugging Face
"train an unconditional diffusion model" tutorial: ``UNet2DModel`` + ``DDPMScheduler(1000, linear betas)``, the
loss ``MSE(eps_theta(x_t, t), eps)``, Adam, 500 warm-up steps then a cosine decay, gradient clipping at 1.0, fp16.
The schedule, clipping and precision are training-loop settings; this family sets them as its ``defaults``.

Networks (``model.levels``):

* 6 (the 64x64 baseline): block_out_channels (2h, 2h, 4h, 4h, 8h, 8h) = (128, 128, 256, 256, 512, 512) for h = 64;
  DownBlock2D x4, AttnDownBlock2D, DownBlock2D / UpBlock2D, AttnUpBlock2D, UpBlock2D x4 (attention at 4x4).
* 3 (the simplified 32x32 network): (2h, 4h, 8h) = (64, 128, 256) for h = 32; Down, AttnDown, Down / Up, AttnUp, Up.

Deliberate deviations (docs/DISCREPANCIES.md): all noise (training eps and t, sampling) comes from private
``torch.Generator`` s (the original reseeded the global RNG every epoch, so its training noise repeated, spec §6 #6);
DDIM (same trained model, same noise schedule) is offered as a fast sampler next to the thesis's 1000-step DDPM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from xrutils.config import ConfigError, ModelConfig, RunConfig
from xrutils.data.ranges import GAN_RANGE
from xrutils.models.base import GenerativeModel, StepContext, eval_mode, logged, weighted
from xrutils.models.family import Family
from xrutils.models.layers import (
    check_image_size,
    check_positive,
    private_generator,
    randint,
    randn,
    seeded_init,
)

SIZES = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class DDPMConfig(ModelConfig):
    hidden: int = 64  # h: the original's "s"; block widths are (2h, 2h, 4h, 4h, 8h, 8h) or (2h, 4h, 8h)
    levels: Literal[3, 6] = 6  # 6 = the 64x64 baseline UNet, 3 = the simplified 32x32 UNet
    layers_per_block: int = 2  # resnet layers per UNet block (diffusers default, as the original)
    norm_groups: int = 32  # GroupNorm groups (diffusers default); must divide every block width
    attention_head_dim: int = 8  # diffusers default
    timesteps: int = 1000  # T of the forward process
    beta_start: float = 1e-4  # linear beta schedule (DDPMScheduler defaults)
    beta_end: float = 0.02
    sampler: Literal["ddpm", "ddim"] = "ddpm"  # default sampler of sample(): the thesis's ancestral DDPM
    sampler_steps: int = 1000  # sampling steps of the default sampler (ddpm: T; ddim: typically 50)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("layers_per_block", "norm_groups", "attention_head_dim", "timesteps", "sampler_steps"):
            check_positive(name, getattr(self, name))
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ConfigError(
                f"model.beta_start={self.beta_start!r}, model.beta_end={self.beta_end!r} are "
                "invalid; expected 0 < beta_start < beta_end < 1"
            )
        if self.sampler_steps > self.timesteps:
            raise ConfigError(
                f"model.sampler_steps={self.sampler_steps} exceeds model.timesteps={self.timesteps}"
            )
        bad = [c for c in self.block_out_channels if c % self.norm_groups]
        if bad:
            raise ConfigError(
                f"model.norm_groups={self.norm_groups} does not divide block widths {bad} "
                f"(from model.hidden={self.hidden}); choose hidden or norm_groups so it does"
            )

    @property
    def block_out_channels(self) -> tuple[int, ...]:
        h = self.hidden
        return (2 * h, 2 * h, 4 * h, 4 * h, 8 * h, 8 * h) if self.levels == 6 else (2 * h, 4 * h, 8 * h)


def block_types(levels: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Down and up block types of the original's two UNets (attention at the second-deepest level)."""
    if levels == 6:
        return (
            ("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
            ("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
        )
    return ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"), ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D")


def _shared_scheduler_args(cfg: DDPMConfig) -> dict[str, Any]:
    return {
        "num_train_timesteps": cfg.timesteps,
        "beta_schedule": "linear",
        "beta_start": cfg.beta_start,
        "beta_end": cfg.beta_end,
        "trained_betas": None,
        "prediction_type": "epsilon",
        "clip_sample": True,
        "clip_sample_range": 1.0,  # x_0 estimates clipped to the data range [-1, 1]
        "thresholding": False,
        "dynamic_thresholding_ratio": 0.995,
        "sample_max_value": 1.0,
        "timestep_spacing": "leading",
        "steps_offset": 0,
        "rescale_betas_zero_snr": False,
    }


def ddpm_scheduler_args(cfg: DDPMConfig) -> dict[str, Any]:
    """Every ``DDPMScheduler`` argument, spelled out so that a change of a diffusers default cannot change the
    model. The values are diffusers 0.27-0.42's defaults, which the original ran: 1000 linear betas from
    ``beta_start`` to ``beta_end``, epsilon prediction, the "fixed_small" posterior variance (Ho et al.'s
    sigma_t^2 = beta-tilde_t), clipped x_0 estimates and "leading" timestep spacing."""
    return {**_shared_scheduler_args(cfg), "variance_type": "fixed_small"}


def ddim_scheduler_args(cfg: DDPMConfig) -> dict[str, Any]:
    """Every ``DDIMScheduler`` argument: the training schedule of :func:`ddpm_scheduler_args`, and alpha_bar of
    the final step set to 1 (``set_alpha_to_one``), the diffusers default."""
    return {**_shared_scheduler_args(cfg), "set_alpha_to_one": True}


class DDPM(GenerativeModel):
    value_range = GAN_RANGE

    def __init__(self, cfg: DDPMConfig, image_size: int):
        super().__init__()
        from diffusers import DDPMScheduler, UNet2DModel  # imported here: diffusers takes seconds to import

        self.cfg = cfg
        self.image_size = image_size
        down, up = block_types(cfg.levels)
        self.unet = UNet2DModel(
            sample_size=image_size,
            in_channels=1,
            out_channels=1,
            layers_per_block=cfg.layers_per_block,
            block_out_channels=cfg.block_out_channels,
            down_block_types=down,
            up_block_types=up,
            norm_num_groups=cfg.norm_groups,
            attention_head_dim=cfg.attention_head_dim,
        )
        self.scheduler = DDPMScheduler(**ddpm_scheduler_args(cfg))

    def networks(self) -> dict[str, nn.Module]:
        return {"unet": self.unet}

    def configure_optimizers(self, train_cfg: Any) -> dict[str, torch.optim.Optimizer]:
        return {
            "unet": torch.optim.Adam(self.unet.parameters(), lr=train_cfg.lr)
        }  # Adam, not the tutorial's AdamW

    def training_step(
        self, batch: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], ctx: StepContext
    ) -> dict[str, torch.Tensor]:
        opt = optimizers["unet"]
        opt.zero_grad(set_to_none=True)
        b = batch.shape[0]
        # 1. eps ~ N(0, I) and t ~ U{0..T-1} from the training generator, for the whole batch (so micro-batches
        #    draw the same noise as one pass)
        eps = randn(tuple(batch.shape), ctx.generator, batch.device)
        t = randint(self.cfg.timesteps, (b,), ctx.generator, batch.device)
        total = batch.new_zeros((), dtype=torch.float64)
        for share, (x0, e, tt) in ctx.micro_batches(batch, eps, t):
            # 2. x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps  (Ho et al. eq. (4))
            x_t = self.scheduler.add_noise(x0, e, tt)
            # 3. predict eps; simple loss L_simple (eq. (14)); GroupNorm is per image, so micro-batches are exact
            with ctx.autocast():
                eps_pred = self.unet(x_t, tt).sample
            loss = F.mse_loss(eps_pred.float(), e)
            ctx.backward(weighted(loss, share))
            total = total + weighted(loss.detach().double(), share)
        ctx.step(opt)
        return logged(loss=total)

    def supports_micro_batches(self) -> bool:
        return True

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float = 0.0,
        **options: Any,
    ) -> torch.Tensor:
        """Ancestral DDPM (``sampler="ddpm"``, 1000 steps) or DDIM (``"ddim"``, ``steps`` steps, ``eta``).

        Defaults come from ``model.sampler`` / ``model.sampler_steps``. Returns (n, 1, S, S) clamped to [-1, 1].
        """
        from diffusers import DDIMScheduler, DDPMScheduler

        if options:
            raise TypeError(f"DDPM.sample takes sampler, steps, eta; got {sorted(options)}")
        sampler = sampler or self.cfg.sampler
        if sampler not in ("ddpm", "ddim"):
            raise ValueError(f"sampler={sampler!r}; expected 'ddpm' or 'ddim'")
        steps = steps or (
            self.cfg.sampler_steps
            if sampler == self.cfg.sampler
            else (self.cfg.timesteps if sampler == "ddpm" else 50)
        )
        if not 0 < steps <= self.cfg.timesteps:
            raise ValueError(f"steps={steps}; expected 1..{self.cfg.timesteps}")
        g = private_generator(generator)
        # a fresh scheduler: sampling never mutates training state
        scheduler = (
            DDPMScheduler(**ddpm_scheduler_args(self.cfg))
            if sampler == "ddpm"
            else DDIMScheduler(**ddim_scheduler_args(self.cfg))
        )
        scheduler.set_timesteps(steps, device=self.device)
        extra = {"eta": eta} if sampler == "ddim" else {}
        with eval_mode(self.unet):
            x = randn((n, 1, self.image_size, self.image_size), g, self.device)  # x_T ~ N(0, I)
            for t in scheduler.timesteps:
                eps = self.unet(x, t).sample
                # diffusers draws the step's noise with randn_tensor(generator=g), never the global RNG
                x = scheduler.step(eps, t, x, generator=g, **extra).prev_sample
        return x.float().clamp(-1.0, 1.0)


def build(cfg: RunConfig) -> DDPM:
    check_image_size("ddpm", cfg.data.image_size, SIZES)
    if cfg.data.image_size % 2 ** (cfg.model.levels - 1):
        raise ConfigError(
            f"data.image_size={cfg.data.image_size} is not divisible by 2^(levels-1) = "
            f"{2 ** (cfg.model.levels - 1)} (model.levels={cfg.model.levels})"
        )
    with seeded_init(cfg.seed):
        return DDPM(cfg.model, cfg.data.image_size)


PRESETS: dict[str, dict[str, Any]] = {
    "baseline": {},  # 64x64, six levels (128, 128, 256, 256, 512, 512), lr 1e-4, 50 epochs
    "lr5e-4": {"train.lr": 5e-4},
    "lr1e-5": {"train.lr": 1e-5},
    "size32": {"data.image_size": 32, "model.levels": 3, "model.hidden": 32},  # (64, 128, 256), as evaluated
    "size32-deep": {"data.image_size": 32},  # the six-level network at 32x32 (thesis Fig. 32: black images)
    # [backup]: the baseline was resumed to 75 epochs (the restart's fresh warm-up is not reproduced)
    "asrun": {"train.epochs": 75},
    # HEAD's committed "32" variant: three levels with s = 64 -> (128, 256, 512) on 64x64 images; also the
    # thesis text's "UNet channels 128, 256, 512"
    "asrun-head32": {"model.levels": 3},
    "tiny": {
        "data.image_size": 32,
        "model.levels": 3,
        "model.hidden": 2,
        "model.norm_groups": 4,
        "model.layers_per_block": 1,
        "model.attention_head_dim": 4,
        "model.sampler": "ddim",
        "model.sampler_steps": 2,
    },
}

FAMILY = Family(
    name="ddpm",
    config_cls=DDPMConfig,
    build=build,
    presets=PRESETS,
    defaults={
        "data.image_size": 64,
        "data.hflip": True,
        "train.lr": 1e-4,
        "train.epochs": 50,
        "train.batch_size": 128,
        "train.warmup_steps": 500,
        "train.lr_schedule": "cosine",
        "train.grad_clip": 1.0,
        "train.precision": "fp16",
        # bf16 autocast for evaluation sampling on GPUs: its samples agree with fp32's far below the noise between
        # two seeds (docs/DISCREPANCIES.md), and it halves the thesis profile's largest evaluation cost
        "eval.precision": "bf16",
        # 512 samples a batch: a checkpoint's evaluation samples in two passes of the chain instead of eight (a 64²
        # run's predicted evaluation sampling 1.98 -> 1.63 H200-hours; about 25 MB of fp32 activations an image, so
        # 13 GB at most: it fits a 24 GB card; docs/PERFORMANCE.md)
        "eval.sample_batch": 512,
    },
    description="DDPM: diffusers UNet2DModel + DDPMScheduler (1000 linear steps); DDIM as a fast sampler; [-1, 1]",
)
