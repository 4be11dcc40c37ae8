"""Loading what a run folder's checkpoints hold: the counterpart of the layout in :mod:`xrutils.runs`.

:func:`load_model` gives the model of a checkpoint in eval mode, for the evaluators, the plots, the explorer and
the ``sample`` command; the training loop uses :func:`load_networks` when it resumes. A checkpoint that cannot be
read, or that belongs to another kind of run, raises :class:`xrutils.runs.CheckpointError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from xrutils import registry
from xrutils.config import RunConfig
from xrutils.models.base import GenerativeModel
from xrutils.runs import CheckpointError, RunDir


def network_state(model: nn.Module, networks: dict[str, nn.Module]) -> tuple[dict, dict]:
    """``(networks, model_extra)`` as a checkpoint stores them: each network's state_dict by name, and the rest of
    the model's state (buffers outside the networks, such as a DDPM's EMA copy)."""
    prefixes = tuple(f"{name}." for name in networks)
    extra = {k: v for k, v in model.state_dict().items() if not k.startswith(prefixes)}
    return {name: net.state_dict() for name, net in networks.items()}, extra


def load_networks(model: nn.Module, ckpt: dict, path: str | Path = "<checkpoint>", family: str = "") -> None:
    """Load the weights of ``ckpt`` into ``model`` (strict). A checkpoint of another family, or one whose tensors do
    not fit, raises CheckpointError naming ``path`` and, where the checkpoint says it, the family it belongs to."""
    saved_family = ""
    try:
        saved_family = json.loads(ckpt.get("config", "{}")).get("family", "")
    except (TypeError, ValueError):
        pass
    if family and saved_family and saved_family != family:
        raise CheckpointError(
            f"{path}: a checkpoint of a {saved_family!r} run, but this run is {family!r}; "
            f"it does not belong in this run folder"
        )
    try:
        full = {f"{name}.{k}": v for name, sd in ckpt["networks"].items() for k, v in sd.items()}
        model.load_state_dict({**full, **ckpt.get("model_extra", {})}, strict=True)
    except (KeyError, AttributeError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0][:300]
        raise CheckpointError(
            f"{path}: its weights do not fit this run's {family or 'model'} network "
            f"(a checkpoint of another configuration?): {first}"
        ) from e


def load_model(
    run_dir: str | Path, epoch: int | None = None, device: str | torch.device = "cpu"
) -> tuple[RunConfig, GenerativeModel]:
    """The run's config and its model at ``epoch`` (default: the newest checkpoint), in eval mode on ``device``.
    On a GPU with the training loop's settings (``train.gpu_settings``: TF32, cuDNN's autotuner unless
    ``train.deterministic``, channels_last), so a reloaded checkpoint samples as the live model did in the loop."""
    from xrutils.train import gpu_settings  # the loop's module imports this one

    rd = RunDir(run_dir)
    cfg = rd.read_config()
    with torch.random.fork_rng(devices=[]):  # building draws initial weights; keep the caller's RNG untouched
        model = registry.get(cfg.family).build(cfg)
    path = rd.checkpoint_path(epoch) if epoch is not None else rd.latest_checkpoint()
    load_networks(model, rd.load_checkpoint(epoch, map_location="cpu"), path, cfg.family)
    model = model.to(device).eval()
    if torch.device(device).type == "cuda":
        gpu_settings(model, cfg)
    return cfg, model
