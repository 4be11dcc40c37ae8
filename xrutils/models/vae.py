"""Fully-connected variational autoencoder (thesis §2.2, §3.3; spec original-code.md §2.2, §3.2).

Kingma & Welling 2014, "Auto-encoding variational Bayes", as the thesis built it: the flattened image goes through
4 hidden Linear+LeakyReLU(0.2) layers (3 at 32x32) to the heads mu and logvar of a 200-d Gaussian posterior; the
decoder mirrors it and ends in a sigmoid. Loss: BCE summed over pixels and batch plus the analytic KL to N(0, I).
Samples are decoder means of z ~ N(0, I) (the prior, not reconstructions).

Deliberate deviations (docs/DISCREPANCIES.md):

* The BCE is computed from the decoder's logits (``binary_cross_entropy_with_logits``): the same function as sigmoid +
  BCE, without the log clamp at -100, and allowed under fp16 autocast.
* ``bits_per_dim`` needs a likelihood over the 256 intensity levels, which BCE on continuous targets is not. We
  normalise the BCE model over the levels: with decoder logit eta and level x_k = k/255,
  ``p(k | z) = exp(x_k * eta) / sum_j exp(x_j * eta)`` (the discrete form of BCE's ``p^x (1-p)^(1-x)``, whose
  unnormalised log is exactly ``-BCE``). The reported value is the negative ELBO of that model in bits per pixel,
  an upper bound on the model's true bits/dim. The training loss is unchanged (summed BCE + KL, as the thesis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xrutils.config import ModelConfig, RunConfig
from xrutils.data.ranges import UNIT_RANGE
from xrutils.models.base import GenerativeModel, StepContext, eval_mode, logged
from xrutils.models.family import Family
from xrutils.models.layers import (
    check_image_size,
    check_positive,
    private_generator,
    randn,
    seeded_init,
)

SIZES = (16, 28, 32, 64, 128, 256)


@dataclass(frozen=True)
class VAEConfig(ModelConfig):
    hidden: int = 400  # width of every hidden layer (thesis "hidden dimensions": 400; 300 / 500 in the study)
    latent: int = 200  # dimension of z (not in the thesis; the code's value)
    layers: int = 0  # hidden layers per encoder / decoder; 0 = the original's rule: 4, or 3 at 32x32
    slope: float = 0.2  # LeakyReLU negative slope

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("latent", self.latent)
        check_positive("layers", self.layers, zero_ok=True)
        check_positive("slope", self.slope, zero_ok=True)


def n_layers(cfg: VAEConfig, image_size: int) -> int:
    """The original removes one hidden layer at 32x32 ("one hidden layer removed for 32")."""
    return cfg.layers or (3 if image_size == 32 else 4)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample (B,): -1/2 sum(1 + logvar - mu^2 - exp(logvar))."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)


def log_normaliser(eta: torch.Tensor) -> torch.Tensor:
    """log sum_{k=0}^{255} exp(k * eta / 255), stably, in closed form (geometric series; log 256 at eta = 0)."""
    a = eta.double() / 255.0
    b = a.abs().clamp_min(1e-12)
    # sum_k e^{k a} = e^{255 max(a,0)} (1 - e^{-256 |a|}) / (1 - e^{-|a|})
    out = 255.0 * a.clamp_min(0) + torch.log(-torch.expm1(-256.0 * b)) - torch.log(-torch.expm1(-b))
    return out.to(eta.dtype)


class Encoder(nn.Module):
    """x (B, 1, S, S) -> mu, logvar (B, latent): ``depth`` Linear + LeakyReLU layers, then two linear heads."""

    def __init__(self, x_dim: int, hidden: int, latent: int, depth: int, slope: float):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(x_dim if i == 0 else hidden, hidden), nn.LeakyReLU(slope)]
        self.body = nn.Sequential(*layers)
        self.fc_mu = nn.Linear(hidden, latent)
        self.fc_logvar = nn.Linear(hidden, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x.flatten(1))
        return self.fc_mu(h), self.fc_logvar(h)


class Decoder(nn.Module):
    """z (B, latent) -> logits (B, 1, S, S): ``depth`` Linear + LeakyReLU layers, then Linear to S*S."""

    def __init__(self, image_size: int, hidden: int, latent: int, depth: int, slope: float):
        super().__init__()
        self.image_size = image_size
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(latent if i == 0 else hidden, hidden), nn.LeakyReLU(slope)]
        layers.append(nn.Linear(hidden, image_size * image_size))  # logits; sigmoid applied by VAE.decode
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z).view(-1, 1, self.image_size, self.image_size)


class VAE(GenerativeModel):
    value_range = UNIT_RANGE

    def __init__(self, cfg: VAEConfig, image_size: int):
        super().__init__()
        self.cfg = cfg
        self.image_size = image_size
        depth = n_layers(cfg, image_size)
        self.encoder = Encoder(image_size * image_size, cfg.hidden, cfg.latent, depth, cfg.slope)
        self.decoder = Decoder(image_size, cfg.hidden, cfg.latent, depth, cfg.slope)

    def networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def param_counts(self) -> dict[str, int]:
        counts = super().param_counts()
        return {**counts, "total": counts["encoder"] + counts["decoder"]}

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)  # mu, logvar: (B, latent) each

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, 1, S, S)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def reparameterise(
        self,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z = mu + sigma * eps, with ``eps`` given or drawn from ``generator``."""
        if eps is None:
            eps = randn(tuple(mu.shape), private_generator(generator), mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    def configure_optimizers(self, train_cfg: Any) -> dict[str, torch.optim.Optimizer]:
        return {"vae": torch.optim.Adam(self.parameters(), lr=train_cfg.lr)}

    def training_step(
        self, batch: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], ctx: StepContext
    ) -> dict[str, torch.Tensor]:
        opt = optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        recon_sum = kl_sum = batch.new_zeros((), dtype=torch.float64)
        # the posterior noise of the whole batch, drawn once (micro-batches then draw what one pass draws)
        noise = randn((batch.shape[0], self.cfg.latent), ctx.generator, batch.device)
        for _, (x, eps) in ctx.micro_batches(batch, noise):
            with ctx.autocast():
                mu, logvar = self.encode(x)
                z = self.reparameterise(mu, logvar, eps=eps)
                logits = self.decode_logits(z)
            # summed over pixels and batch, as the original (the gradient scale grows with B * S^2); a sum over
            # the micro-batches' sums is the batch's
            recon = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="sum")
            kl = kl_divergence(mu.float(), logvar.float()).sum()
            ctx.backward(recon + kl)
            recon_sum, kl_sum = recon_sum + recon.detach().double(), kl_sum + kl.detach().double()
        ctx.step(opt)
        b = batch.shape[0]
        loss = (recon_sum + kl_sum) if ctx.micro_batch else (recon + kl).double()
        return logged(loss=loss, bce_per_image=recon_sum / b, kl_per_image=kl_sum / b)

    def supports_micro_batches(self) -> bool:
        return True

    def fixed_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Prior draws z ~ N(0, I) behind a fixed-noise grid: (n, latent)."""
        return randn((n, self.cfg.latent), generator, torch.device("cpu"))

    def sample_from_noise(self, noise: torch.Tensor) -> torch.Tensor:
        with eval_mode(self):
            return self.decode(noise.to(self.device)).float()

    def sample(self, n: int, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        if options:
            raise TypeError(f"VAE.sample takes no options, got {sorted(options)}")
        g = private_generator(generator)
        with eval_mode(self):
            return self.decode(randn((n, self.cfg.latent), g, self.device)).float()

    def bits_per_dim(
        self, x: torch.Tensor, generator: torch.Generator | None = None, n_samples: int = 1
    ) -> torch.Tensor:
        """Negative ELBO in bits per pixel of the normalised BCE model (module docstring); (B,), x in [0, 1].

        ``n_samples`` posterior draws (from ``generator``, default a fixed seed so the value is reproducible)
        average the reconstruction term; the KL is analytic.
        """
        if generator is None:
            generator = torch.Generator(device="cpu").manual_seed(0)
        k = (x.float() * 255).round().clamp(0, 255).flatten(1)  # (B, D) levels 0..255
        with eval_mode(self):
            mu, logvar = self.encode(x.float())
            nll = torch.zeros(x.shape[0], device=x.device, dtype=torch.float64)
            for _ in range(n_samples):
                eta = self.decode_logits(self.reparameterise(mu, logvar, generator)).flatten(1).float()
                log_p = k * eta / 255.0 - log_normaliser(eta)  # log p(k | z), (B, D)
                nll -= log_p.double().sum(dim=1)
            nelbo = nll / n_samples + kl_divergence(mu, logvar).double()
        return (nelbo / (k.shape[1] * math.log(2))).float()


def build(cfg: RunConfig) -> VAE:
    check_image_size("vae", cfg.data.image_size, SIZES)
    with seeded_init(cfg.seed):
        return VAE(cfg.model, cfg.data.image_size)


PRESETS: dict[str, dict[str, Any]] = {
    "baseline": {},  # thesis: 128x128, h 400, lr 1e-4
    "lr1e-5": {"train.lr": 1e-5},
    "lr1e-6": {"train.lr": 1e-6},
    "size64": {"data.image_size": 64, "train.lr": 1e-6},  # thesis: 64 "stabilised with lr 1e-6"
    "size32": {"data.image_size": 32},  # thesis text and HEAD code: h 400 (3 hidden layers)
    "size32-h200": {
        "data.image_size": 32,
        "model.hidden": 200,
    },  # [backup] and the comparison scripts' 32-VAE
    "hidden300": {"model.hidden": 300},
    "hidden500": {"model.hidden": 500},
    "asrun": {"data.image_size": 64},  # spec §3.2 #1: HEAD's baseline ran at 64x64
    "tiny": {"data.image_size": 32, "model.hidden": 8, "model.latent": 4},
}

FAMILY = Family(
    name="vae",
    config_cls=VAEConfig,
    build=build,
    presets=PRESETS,
    defaults={"data.image_size": 128, "train.lr": 1e-4, "train.epochs": 50, "train.batch_size": 128},
    description="fully-connected VAE, latent 200, summed BCE + KL; [0, 1] images",
)
