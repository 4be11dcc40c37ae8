"""The interface every family implements, so the training loop, the evaluators and the notebooks stay generic.

A family's model is an ``nn.Module`` holding its networks as attributes (``self.generator``, ``self.unet``, ...)
named by :meth:`GenerativeModel.networks`. It knows its own value range and loss; it knows nothing of files or runs.

Contract (the training loop in ``xrutils.train`` relies on exactly this):

* ``value_range``: ``(-1.0, 1.0)`` (GAN, DDPM) or ``(0.0, 1.0)`` (VAE, PixelCNN). Training batches arrive in it
  (``xrutils.data.ranges.to_range``) and :meth:`sample` returns images in it.
* :meth:`configure_optimizers` -> ``{"name": optimizer}`` (the GAN has ``"generator"`` and ``"discriminator"``).
* :meth:`training_step` (batch ``(B, 1, H, W)`` float in ``value_range``, a :class:`StepContext`) runs forward,
  backward and optimizer steps through ``ctx`` (so mixed precision, clipping and micro-batches are handled in one
  place) and returns ``{"loss": value, ...}``: detached 0-dim float64 tensors on the model's device (:func:`logged`;
  every key becomes a ``history.csv`` column). The loop reads them on the host only every ``train.log_every``
  steps, so a GPU never waits for the host in between.
* :meth:`sample` ``(n, generator=None, **options)`` -> ``(n, 1, H, W)`` tensor in ``value_range``, on the model's
  device, under ``no_grad`` and in eval mode (the caller's train/eval state is restored). All randomness is drawn
  from ``generator``; nothing touches the global RNG.
* :meth:`networks` -> ``{"generator": G, "discriminator": D}``: the attribute names of the trainable networks
  (parameter counts, DDP wrapping, checkpoints).
* Optional :meth:`fixed_noise` -> the inputs behind each epoch's fixed-noise sample grid, and
  :meth:`sample_from_noise` to render them (families without a natural fixed noise sample with a fixed
  generator instead).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class StepContext:
    """What a training step needs from the loop: device, RNG, mixed precision, clipping.

    ``backward(loss)`` scales the loss when a GradScaler is active; ``step(optimizer)`` unscales, clips the
    gradients of that optimizer's parameters to ``grad_clip`` (when > 0) and steps. The loop calls
    ``scaler.update()`` once per iteration after :meth:`GenerativeModel.training_step` returns.
    """

    device: torch.device
    generator: torch.Generator  # the training RNG (noise, timesteps), on ``device``; part of every checkpoint
    autocast_dtype: torch.dtype | None = None  # fp16/bf16 on CUDA, None = fp32
    scaler: torch.amp.GradScaler | None = None  # fp16 only
    grad_clip: float = 0.0
    step_index: int = 0  # global optimisation step (for schedules)
    micro_batch: int = 0  # images per forward/backward pass (0 = the whole batch)
    extras: dict[str, Any] = field(default_factory=dict)

    def micro_batches(self, *tensors: torch.Tensor) -> Iterator[tuple[float, tuple[torch.Tensor, ...]]]:
        """Split per-image tensors (the batch, and noise drawn for the whole batch) into micro-batches of
        :attr:`micro_batch` images; yields ``(share, chunks)`` with ``share`` the micro-batch's share of the batch,
        the weight of its mean loss in the batch's mean. Gradients of the passes add up in ``.grad``, so one
        optimiser step after them is the whole batch's step. One pass (share 1.0) when micro_batch is 0."""
        b = tensors[0].shape[0]
        m = self.micro_batch if 0 < self.micro_batch < b else b
        for start in range(0, b, m):
            chunk = tuple(t[start : start + m] for t in tensors)
            yield chunk[0].shape[0] / b, chunk

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def backward(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        if self.grad_clip > 0:
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()


def logged(**values: torch.Tensor) -> dict[str, torch.Tensor]:
    """A training step's history values: detached float64 scalars on their device (no host sync; the float64 sum
    of an epoch's values is the same as the loop's earlier sum of Python floats)."""
    return {k: v.detach().to(torch.float64) for k, v in values.items()}


def weighted(loss: torch.Tensor, share: float) -> torch.Tensor:
    """A micro-batch's mean loss weighted by its share of the batch (unchanged for the whole batch)."""
    return loss if share == 1.0 else loss * share


@contextlib.contextmanager
def frozen_batchnorm_stats(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers of ``module`` still normalise by the batch's statistics but leave their running statistics
    and counters as they were: for a checkpointed stage's recomputation, which must not update them twice."""
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [
        (m, m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
        for m in layers
    ]
    try:
        for m in layers:
            m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
        yield
    finally:
        for m, momentum, tracked in saved:
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def checkpointed(stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``stage(x)`` with activation checkpointing (non-reentrant, so parameters get gradients whatever ``x`` needs):
    its activations are recomputed in the backward pass, with BatchNorm's running statistics updated once."""
    from torch.utils.checkpoint import checkpoint

    return checkpoint(
        stage,
        x,
        use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(), frozen_batchnorm_stats(stage)),
    )


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode under no_grad, then restore each one's previous mode."""
    states = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        with torch.no_grad():
            yield
    finally:
        for m, s in zip(modules, states, strict=True):
            m.train(s)


class GenerativeModel(nn.Module):
    value_range: tuple[float, float] = (-1.0, 1.0)
    image_size: int = 64

    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def configure_optimizers(self, train_cfg: Any) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def training_step(
        self, batch: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], ctx: StepContext
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        raise NotImplementedError

    def set_checkpointing(self, on: bool) -> bool:
        """Activation checkpointing in training: recompute each stage's activations in the backward pass instead of
        keeping them, which changes memory, not results. Returns whether the family supports it (default: no)."""
        return False

    def supports_micro_batches(self) -> bool:
        """Whether :meth:`training_step` honours ``ctx.micro_batch`` (default: no)."""
        return False

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def param_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in net.parameters()) for name, net in self.networks().items()}
