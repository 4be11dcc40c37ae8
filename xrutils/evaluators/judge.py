"""The discriminator judge: the thesis's "discriminator loss per epoch" (spec §4.1), corrected by default.

The judge is the final-epoch discriminator D of a GAN run at the same image size. For each checkpoint of a run
the score is ``BCE(D(real), 1) + BCE(D(fake), 0)``, read as in the thesis: higher means D finds the fakes harder
to tell from real images. PyTorch's BCE clamps ``log`` at -100, so each term is at most 100 (saturation, §4.1).

Corrected protocol (default):

* D in eval mode (BatchNorm running statistics), under ``no_grad``;
* every family's fakes mapped into D's input range [-1, 1] with :func:`xrutils.data.ranges.convert`;
* the real term over a fixed held-out real set (the ``test`` split, ``eval.n_real`` images of a seeded sample of
  whole patients), averaged over all its batches; it is the same for every run and epoch judged by this D, so it
  is computed once;
* the fake term over ``eval.n_fake`` samples;
* a 95% bootstrap interval per point (the two sets resampled independently, the real images by patient).

``protocol="original"`` reproduces the quirks of the original scripts (spec §4.1, §6 #6, #13, #14, #27, #36),
each switchable alone through :class:`Quirks`:

* ``train_mode_bn``: D in train mode (batch statistics; the BN buffers are restored afterwards, since the original
  re-loaded D from disk each time);
* ``single_batch``: one batch of ``eval.batch_size`` (128) images per point, with a fresh random real batch each
  epoch;
* ``unmatched_range``: fakes fed in the family's own output range (VAE, PixelCNN and DDPM in [0, 1] against [-1, 1]
  reals);
* ``train_split_reals``: reals from the training split;
* ``generator_train_mode``: the GAN generator sampled in train mode (BatchNorm statistics of each sampled batch;
  no script ever called ``eval()`` on it);
* ``seeded_ddpm``: the DDPM sampled with its full ancestral chain (1000 steps) from a generator seeded with 0 at every
  epoch, as ``DDPMPipeline(generator=torch.manual_seed(0))`` did; that call also reseeded the global RNG, so the one
  real batch was the same at every epoch;
* ``minmax_grids``: sample grids shown min-max scaled over the whole grid (``save_image(normalize=True)``, the GAN's
  training grids), so brightness is not comparable across epochs or models; it changes pictures, not scores.

The inverted fake label of ``Discvsauto.py`` (§6 #15) and the swapped discriminators of ``discvsall.py`` (§6 #23) are
bugs of single scripts and are not reproduced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xrutils.config import Quirks
from xrutils.data.ranges import GAN_RANGE, Range, convert, to_range
from xrutils.errors import InputError
from xrutils.evaluators.stats import bootstrap_sum_of_means, mean_replicates
from xrutils.runs import RunDir


@contextlib.contextmanager
def judging_mode(d: nn.Module, train_mode_bn: bool) -> Iterator[None]:
    """D in eval mode, or in train mode with its BatchNorm buffers restored on exit; no_grad; mode restored."""
    was_training = d.training
    saved = {k: v.clone() for k, v in d.state_dict().items() if "running" in k or "num_batches" in k}
    try:
        d.train(train_mode_bn)
        with torch.no_grad():
            yield
    finally:
        if saved:
            d.load_state_dict(saved, strict=False)
        d.train(was_training)


def bce_terms(
    d: nn.Module,
    x: torch.Tensor,
    target: float,
    *,
    batch_size: int,
    train_mode_bn: bool = False,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Per-image ``BCE(D(x), target)`` (log clamped at -100, as PyTorch's BCELoss), in batches of ``batch_size``.

    In train mode each batch is normalised by its own statistics, so the terms depend on the batching, as in the
    original.
    """
    device = device or next(d.parameters()).device
    out = []
    with judging_mode(d, train_mode_bn):
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size].to(device)
            p = d(xb).reshape(-1).float()
            if p.shape[0] != xb.shape[0]:
                raise ValueError(f"discriminator returned {p.shape[0]} outputs for a batch of {xb.shape[0]}")
            out.append(F.binary_cross_entropy(p, torch.full_like(p, target), reduction="none").cpu())
    return torch.cat(out).double().numpy()


@dataclass
class Judge:
    """A fixed discriminator and where it came from."""

    discriminator: nn.Module
    image_size: int
    value_range: Range = GAN_RANGE
    run_dir: str = ""
    epoch: int = 0
    data_cfg: Any = None  # the judge run's DataConfig (its real images define "real")

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str | torch.device = "cpu") -> Judge:
        """The final-epoch discriminator of a complete GAN run."""
        from xrutils.checkpoints import load_model

        run = RunDir(run_dir)
        cfg = run.read_config()
        if cfg.family != "gan":
            raise InputError(f"judge {run.path} is a {cfg.family!r} run; the judge must be a 'gan' run")
        epochs = run.checkpoint_epochs()
        if cfg.train.epochs not in epochs:
            raise InputError(
                f"judge {run.path} is not complete: its config trains {cfg.train.epochs} epochs but the "
                f"checkpoints on disk are {epochs}; the judge is the final-epoch discriminator"
            )
        _, model = load_model(run.path, cfg.train.epochs, device=device)
        d = model.discriminator
        d.eval()
        for p in d.parameters():
            p.requires_grad_(False)
        return cls(
            d, cfg.data.image_size, tuple(model.value_range), str(run.path), cfg.train.epochs, cfg.data
        )

    def check_size(self, image_size: int, what: str) -> None:
        if image_size != self.image_size:
            raise InputError(
                f"{what} has image size {image_size} but the judge {self.run_dir or '(given)'} judges "
                f"{self.image_size}x{self.image_size} images; give a GAN judge trained at {image_size}"
            )

    # -- the two terms ---------------------------------------------------------------------------------------------
    def prepare(self, x: torch.Tensor, src_range: Range, quirks: Quirks) -> torch.Tensor:
        """Float images in ``src_range`` -> D's input: mapped into D's range, or left as they are (original)."""
        return x if quirks.unmatched_range else convert(x, src_range, self.value_range)

    def real_terms(
        self,
        reals_uint8: torch.Tensor,
        quirks: Quirks,
        *,
        batch_size: int,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Per-image ``BCE(D(real), 1)``: over every given real image, or one random batch (single_batch)."""
        if quirks.single_batch:
            perm = torch.randperm(reals_uint8.shape[0], generator=generator)[:batch_size]
            reals_uint8 = reals_uint8[perm]
        x = to_range(reals_uint8, self.value_range)
        return bce_terms(
            self.discriminator, x, 1.0, batch_size=batch_size, train_mode_bn=quirks.train_mode_bn
        )

    def fake_terms(
        self, fakes: torch.Tensor, src_range: Range, quirks: Quirks, *, batch_size: int
    ) -> np.ndarray:
        """Per-image ``BCE(D(fake), 0)`` for float fakes in ``src_range`` (uint8 fakes are read as ``src_range``)."""
        if fakes.dtype == torch.uint8:
            fakes = to_range(fakes, src_range)
        if quirks.single_batch:
            fakes = fakes[:batch_size]
        x = self.prepare(fakes, src_range, quirks)
        return bce_terms(
            self.discriminator, x, 0.0, batch_size=batch_size, train_mode_bn=quirks.train_mode_bn
        )


def judge_point(
    real: np.ndarray, fake: np.ndarray, *, n_boot: int, seed: int, real_replicates: np.ndarray | None = None
) -> dict[str, float]:
    """One point of the curve: ``mean(real) + mean(fake)`` with its bootstrap interval and both terms."""
    ci = bootstrap_sum_of_means(real, fake, n_boot=n_boot, seed=seed, a_replicates=real_replicates)
    return {
        "score": ci["value"],
        "lo": ci["lo"],
        "hi": ci["hi"],
        "real_term": float(np.mean(real)),
        "fake_term": float(np.mean(fake)),
        "n_real": int(real.size),
        "n_fake": int(fake.size),
    }


def judge_validity(real_terms: np.ndarray, fake_terms: np.ndarray) -> dict[str, float]:
    """How well the judge tells the held-out real images from the run's samples: balanced accuracy at D = 0.5 and
    ROC AUC of its outputs, recovered from the per-image BCE terms (``D(real) = exp(-term)``,
    ``D(fake) = 1 - exp(-term)``). A judge near 0.5 on both cannot tell them apart, so its loss curve measures
    little; the thesis never reported this."""
    from sklearn.metrics import roc_auc_score

    d_real, d_fake = np.exp(-np.asarray(real_terms)), 1.0 - np.exp(-np.asarray(fake_terms))
    accuracy = 0.5 * (float((d_real > 0.5).mean()) + float((d_fake < 0.5).mean()))
    y = np.r_[np.ones(d_real.size), np.zeros(d_fake.size)]
    return {"accuracy": accuracy, "auc": float(roc_auc_score(y, np.r_[d_real, d_fake]))}


def real_batch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of the single random real batch of an epoch (original protocol): one per (seed, epoch)."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def score_curve(
    judge: Judge,
    epochs: list[int],
    fakes_by_epoch: dict[int, torch.Tensor],
    src_range: Range,
    quirks: Quirks,
    *,
    reals_uint8: torch.Tensor,
    batch_size: int,
    n_boot: int,
    seed: int = 0,
    fixed_real: np.ndarray | None = None,
    real_groups: np.ndarray | None = None,
    terms_out: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
    same_real_batch: bool = False,
) -> dict[str, Any]:
    """The judge curve of one run: per epoch score, interval, both terms, and the judge's own validity (its
    real-vs-fake accuracy and AUC on these images, :func:`judge_validity`).

    ``same_real_batch`` (with ``quirks.single_batch``) draws the one real batch of every epoch from the same
    generator state, as the original's DDPM script did after its sampler reseeded the global RNG (``seeded_ddpm``).

    ``fixed_real`` (per-image real terms computed once for this judge) is used unless ``quirks.single_batch`` asks
    for a fresh real batch per epoch. ``real_groups`` (the patient of each real image) makes the real term's
    bootstrap a cluster bootstrap over patients. ``terms_out``, when given, receives the per-image ``(real, fake)``
    terms of every epoch (for paired tests).
    """
    curve: dict[str, list] = {
        k: [] for k in ("epochs", "score", "lo", "hi", "real_term", "fake_term", "accuracy", "auc")
    }
    n_fake = n_real = 0
    real_reps = None
    if fixed_real is None and not quirks.single_batch:
        fixed_real = judge.real_terms(reals_uint8, quirks, batch_size=batch_size)
    if fixed_real is not None and not quirks.single_batch:
        real_reps = mean_replicates(fixed_real, n_boot, seed, groups=real_groups)
    for e in epochs:
        if quirks.single_batch:
            real = judge.real_terms(
                reals_uint8,
                quirks,
                batch_size=batch_size,
                generator=real_batch_generator(seed, 0 if same_real_batch else e),
            )
            reps = None
        else:
            real, reps = fixed_real, real_reps
        fake = judge.fake_terms(fakes_by_epoch[e], src_range, quirks, batch_size=batch_size)
        if terms_out is not None:
            terms_out[e] = (real, fake)
        pt = {
            **judge_point(real, fake, n_boot=n_boot, seed=seed + e, real_replicates=reps),
            **judge_validity(real, fake),
        }
        curve["epochs"].append(e)
        for k in ("score", "lo", "hi", "real_term", "fake_term", "accuracy", "auc"):
            curve[k].append(pt[k])
        n_fake, n_real = pt["n_fake"], pt["n_real"]
    return {**curve, "n_fake": n_fake, "n_real": n_real}
