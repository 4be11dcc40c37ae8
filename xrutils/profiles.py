"""The profile table, in one place: what ``smoke``, ``demo`` and ``thesis`` change, for every family.

A profile scales a thesis-sized run to a machine. :func:`xrutils.registry.build_config` applies, after the
family's defaults and the preset, first the profile's generic part (:data:`PROFILES`: data, batch, grid and
evaluation sizes), then the family's own part (:data:`FAMILY_PROFILES`: widths, image sizes, steps, learning
rates), computed from the config so far, so a study keeps its ratios (every demo lr x 10, every demo VAE and
PixelCNN image size halved). ``thesis`` changes nothing. The measurements behind each demo choice are in the
comments below and in docs/DISCREPANCIES.md (section Profiles); nothing below the config reads the profile name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xrutils.config import RunConfig

# The generic part of each profile (dotted overrides); :data:`FAMILY_PROFILES` adds each family's own.
PROFILES: dict[str, dict[str, Any]] = {
    "thesis": {},
    "demo": {
        "data.phantom_n": 600,
        "data.max_images": 512,
        "train.epochs": 6,
        "train.batch_size": 32,
        "train.n_grid": 64,  # an 8 x 8 grid: a layout no other tile size fits, so grid readers never misread it
        "eval.n_fake": 128,
        "eval.n_real": 128,
        "eval.batch_size": 64,
        "eval.sample_batch": 0,  # samples in batches of eval.batch_size (a CPU gains nothing from larger ones)
        "eval.n_boot": 200,
        "eval.sampler": "ddim",  # the thesis profile judges with 1000-step DDPM; a CPU cannot
        "eval.sampler_steps": 10,  # DDIM steps of the demo DDPMs (_ddpm below: 10 beat 20 and 50 there)
        "eval.classifier_epochs": 3,
        "eval.n_metric": 128,
    },
    "smoke": {
        "data.phantom_n": 48,
        "data.max_images": 32,
        "train.epochs": 2,
        "train.batch_size": 8,
        "train.steps_per_epoch": 2,
        "train.n_grid": 4,
        "eval.n_fake": 8,
        "eval.n_real": 8,
        "eval.batch_size": 8,
        "eval.sample_batch": 0,
        "eval.n_boot": 20,
        "eval.sampler": "ddim",
        "eval.sampler_steps": 2,
        "eval.classifier_epochs": 1,
        "eval.n_metric": 8,
    },
}


# Training seeds per configuration of the runs a conclusion rests on: (seeds, scope). Seed 0 is the plain run, seeds
# 1.. are trained as <run>@seed<k> (studies.table.run_name). Scope "claims": every run a thesis claim compares
# (studies.results.CLAIMS) and the compare study's runs; "compare": the compare study's runs only (its figures' runs
# and the four families at the common size). A verdict needs >= 2 seeds per run (studies.results).
# The demo's cost: each further seed of the compare study's six configurations takes about 5 minutes of notebook
# time (PixelCNN 32² 140 s, DDPM 32² 90 s, GAN 64² 32 s, GAN 32² 13 s, the two VAEs 12 s each; fresh clone of
# 01fe499), and the fresh-clone demo build went from 20.3 to 26.0 minutes with the two extra seeds.
SEEDS: dict[str, tuple[int, str]] = {
    "thesis": (3, "claims"),
    "demo": (3, "compare"),
    "smoke": (2, "compare"),  # the seed path end to end at smoke cost
}


# Which checkpoints keep their weights (train.keep_weights), per profile and kind of run, written into each run's
# params file (studies.params.run_params). "scored": runs a study judges at every checkpoint draw each checkpoint's
# evaluation samples in the training loop and keep the newest weights only ("sampled"); "unscored": runs no study
# scores (their figures read grids and losses) keep the newest only ("last"); "S1": the runs of Supplementary Figure
# S1 keep every checkpoint ("all"), since the original protocol samples each checkpoint two more ways (the GAN's
# generator in train mode, the seeded 1000-step DDPM). The thesis profile's checkpoints take 307 GB with every
# weight kept and about 27 GB this way (`python -m xrutils plan`); the demo and smoke profiles keep every weight
# (a few hundred MB; the explorer and the `sample` command can draw from any epoch).
KEEP_WEIGHTS: dict[str, dict[str, str]] = {
    "thesis": {"scored": "sampled", "unscored": "last", "S1": "all"},
}

# Quirks of the original judge protocol that a profile's Supplementary Figure S1 leaves off, and why (the compare
# study's parameter original_skip; `python -m xrutils evaluate --protocol original` runs every quirk).
ORIGINAL_PROTOCOL_SKIP: dict[str, dict[str, str]] = {
    "demo": {
        "seeded_ddpm": "1000-step DDPM sampling of the demo's 32² UNet costs 7 minutes of one core per 128 samples "
        "(0.22 s a step at batch 64), 22 minutes for its 3 judged checkpoints; the demo judges its DDPMs with "
        "DDIM-10"
    },
    # the smoke build runs on every CI: its 32² UNet takes 17 ms a step at batch 8 on one core, so 1,000 steps at 2
    # checkpoints cost it about 35 s (tests/test_evaluators.py draws the seeded chain of a 6-step DDPM instead)
    "smoke": {
        "seeded_ddpm": "1000-step DDPM sampling costs the smoke build about 35 s (17 ms a step); a unit test "
        "covers it"
    },
}


# The downstream study (issue 13, notebooks/downstream.ipynb, `make downstream`): a finding task per data source,
# learnable at the common size of 32² (positive class, negative class), the data the generators and classifiers
# see, the classifier's epochs, its seeds, the shares of the real training set the augmentation protocol uses, and
# the bootstrap resamples behind every interval and paired test.
# Phantom: cardiomegaly (a larger heart in 12 % of its patients) against no finding, on a phantom of 2,000 images
# (the demo's 600 leave about 15 cardiomegaly images in the test split). NIH: any finding against no finding (about
# half of NIH's images either way; cardiomegaly is 2.5 % of them, 25 images of nih_small64's 1,000).
DOWNSTREAM: dict[str, dict[str, Any]] = {
    "thesis": {
        "tasks": {"phantom": ("Cardiomegaly", "No Finding"), "nih": ("Any Finding", "No Finding")},
        "data": {"data.max_images": 0},
        "classifier_epochs": 10,
        "seeds": 3,
        "fractions": (0.1, 0.25, 1.0),
        "n_boot": 2000,
    },
    "demo": {
        "tasks": {"phantom": ("Cardiomegaly", "No Finding"), "nih": ("Any Finding", "No Finding")},
        "data": {"data.max_images": 0, "data.phantom_n": 2000},
        "classifier_epochs": 10,
        "seeds": 3,
        "fractions": (0.1, 0.25, 1.0),
        "n_boot": 2000,  # p-values down to 1/2000: six family pairs survive Holm (200 could not: 6 x 1/200 > 0.05)
    },
    "smoke": {
        "tasks": {"phantom": ("Cardiomegaly", "No Finding"), "nih": ("Any Finding", "No Finding")},
        "data": {"data.max_images": 0, "data.phantom_n": 200},  # 48 images hold about one cardiomegaly
        "classifier_epochs": 1,
        "seeds": 2,
        "fractions": (0.5, 1.0),
        "n_boot": 100,
    },
}


def scaled(hidden: int, divisor: int, minimum: int) -> int:
    """``hidden // divisor`` but at least ``minimum``: profile width scaling that keeps a study's ratios."""
    return max(minimum, hidden // divisor)


DEMO_LR_FACTOR = (
    10  # the demo trains 1/100 to 1/50 of the thesis's steps, so every family's lr is 10x its own
)


def scaled_lr(lr: float, factor: float = DEMO_LR_FACTOR) -> float:
    """``lr * factor`` rounded to 3 significant digits (1e-4 * 10 -> 0.001, not 0.0010000000000000002), so a
    study's learning rates keep their ratios and print as the thesis's do."""
    return float(f"{lr * factor:.3g}")


def _gan(profile: str, cfg: RunConfig) -> dict[str, Any]:
    # demo (measured on the phantom, 2 CPU cores; docs/DISCREPANCIES.md "Profiles"):
    # * widths / 4 (baseline 16, h 128 -> 32), at least 12: at h 8 the discriminator wins within 300 steps and G
    #   never learns (seeds 0 and 1); h 12 learns, more slowly than h 16;
    # * no diversity loss: at this width the unbounded term (pairwise distances of tens) dominates G's loss and the
    #   samples turn into high-frequency noise; the preset "faithful" keeps the thesis's 0.5 to show it (Fig. S2);
    # * every learning rate x 10, as for the other families (the lr study keeps its ratios): at the thesis's 1e-4
    #   the baseline needs 40 epochs before its FD8 falls below 1.0 (3.1 at epoch 30), at 1e-3 it is at 0.35 by
    #   epoch 25 (h 16 and h 32);
    # * 25 epochs of 15 batches (375 steps), a grid every 5 epochs and a judged checkpoint every 10 (and the first
    #   and last); the 128x128 run trains 10 epochs (each of its steps costs 4x).
    if profile == "demo":
        out: dict[str, Any] = {
            "model.hidden": scaled(cfg.model.hidden, 4, 12),
            "train.lr": scaled_lr(cfg.train.lr),
            "train.epochs": 10 if cfg.data.image_size >= 128 else 25,
            "train.sample_every": 5,
            "train.checkpoint_every": 10,
        }
        if cfg.preset != "faithful":
            out["model.diversity_weight"] = 0.0
        return out
    if profile == "smoke":
        return {"model.hidden": 2}
    return {}


def _vae(profile: str, cfg: RunConfig) -> dict[str, Any]:
    # demo (measured on the phantom, 2 CPU cores; docs/DISCREPANCIES.md "Profiles"):
    # * every image size halved (128 -> 64, 64 -> 32, 32 -> 16), the thesis widths kept: at 128² a width-100 VAE
    #   stalls at FD8 1.6 after 3,000 steps and h 400 costs 100 s a run, while at 64² h 400 reaches FD8 0.6;
    # * every learning rate x 10 (the lr study keeps its ratios): the demo trains 750 steps, 1/45 of the thesis's
    #   33,800; at the thesis's 1e-6 a 750-step VAE does not move (FD8 3.72 -> 3.63), at 1e-5 it does (3.2 -> 1.2);
    # * 25 epochs of 15 batches (375 steps; the baseline's FD8 is 0.8 after one epoch and 0.7-0.8 from then on), a
    #   grid every 5 epochs, a judged checkpoint every 10 (and the first and last).
    if profile == "demo":
        return {
            "data.image_size": max(16, cfg.data.image_size // 2),
            "train.lr": scaled_lr(cfg.train.lr),
            "train.epochs": 25,
            "train.checkpoint_every": 10,
            "train.sample_every": 5,
        }
    if profile == "smoke":
        return {"model.hidden": 8, "model.latent": 4}
    return {}


def _pixelcnn(profile: str, cfg: RunConfig) -> dict[str, Any]:
    # demo (measured on the phantom, 2 CPU cores; docs/DISCREPANCIES.md "Profiles"): every image size halved
    # (64 -> 32, 32 -> 16, 128 -> 64), 6 residual masked layers of 32 channels with kernel 5 (a reach of 12 pixels:
    # the 3-layer kernel-3 net could not see past 3 pixels, so no anatomy), the position channels (model.coords:
    # without them the 32x32 samples lose the chest's layout; after 600 steps FD8 2.78 without and 1.00 with them
    # under the cosine decay, 2.36 and 1.81 at a constant 1e-3), every lr x 10 with a cosine decay to 0 (at a
    # constant 1e-3 the grids swing from grid to grid and drift to white, FD8 2.5 after 1,200 steps; with the
    # decay 1.17 after 450 steps and 1.00 after 600; in the build of 06f9415, 600 steps gave FD8 1.22 but the
    # build took 35 min), 30 epochs (450 steps, what the 30-minute limit leaves; the 64x64 run 1 epoch: each of its
    # steps costs 4x, and 30 steps learned nothing, FD8 3.36 -> 3.16), a grid every 15 epochs, judged checkpoints
    # at the first and last epoch (the cached sampler draws 128 images in 1.5 s at 32x32 and 5 s at 64x64).
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


def _ddpm(profile: str, cfg: RunConfig) -> dict[str, Any]:
    # demo (measured on the phantom, 2 CPU cores; docs/DISCREPANCIES.md "Profiles"): base width 8 (width 4 is no
    # faster on a CPU: the small ops dominate; width 16 is 6x slower), one resnet per block, GroupNorm 8, every lr
    # x 10 (at 1e-3 the 32x32 UNet reaches FD8 0.7 and the 64x64 one 1.2 in 600 steps), 12 epochs (180 steps
    # instead of 33,800: a 64x64 step costs 0.8 s on one core, the build's largest item), warm-up 30 steps,
    # DDIM with 10 steps for the grids and the evaluation (on 300-step checkpoints FD8 1.53 / 0.97 / 0.90 with 10
    # steps, 2.07 / 0.94 / 1.24 with 20; 50 steps were worse still), a grid and a judged checkpoint every 6 epochs
    # (and the first). Image sizes and level layouts are kept. A larger lr factor diverges: on one core, 180
    # steps at 64x64, FD8 1.96 at 1e-3 (x 10), 1.15 at 3e-3, 0.99 at 5e-3, and the loss stuck at 1.0 (FD8 3.6) at
    # 1.5e-2 and 2.5e-2, which the lr5e-4 run would train at with a factor of 30 or 50; batch 16 for 360 steps
    # gives 1.38 at 1e-3 and 0.84 at 5e-3 but costs 30 % more time.
    if profile == "demo":
        return {
            "model.hidden": 8,
            "model.norm_groups": 8,
            "model.layers_per_block": 1,
            "model.sampler": "ddim",
            "model.sampler_steps": 10,
            "train.warmup_steps": 30,
            "train.lr": scaled_lr(cfg.train.lr),
            "train.epochs": 12,
            "train.sample_every": 6,
            "train.checkpoint_every": 6,
        }
    if profile == "smoke":
        return {
            "model.hidden": 2,
            "model.norm_groups": 4,
            "model.layers_per_block": 1,
            "model.attention_head_dim": 4,
            "model.sampler": "ddim",
            "model.sampler_steps": 2,
            "train.warmup_steps": 1,
        }
    return {}


# family -> its scaling: (profile, config after the generic part) -> dotted overrides
FAMILY_PROFILES: dict[str, Callable[[str, RunConfig], dict[str, Any]]] = {
    "gan": _gan,
    "vae": _vae,
    "pixelcnn": _pixelcnn,
    "ddpm": _ddpm,
}


def generic(profile: str) -> dict[str, Any]:
    """The generic part of ``profile``."""
    return PROFILES[profile]


def family_part(profile: str, cfg: RunConfig) -> dict[str, Any]:
    """The family's part of ``profile`` for ``cfg`` (its family, preset and settings so far); {} for a family
    the table does not know (a family added outside the package scales nothing)."""
    scale = FAMILY_PROFILES.get(cfg.family)
    return scale(profile, cfg) if scale else {}
