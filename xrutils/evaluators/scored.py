"""The runs an evaluation scores: each run folder's config, the checkpoints to score, its sample cache, and what
the steps of :mod:`.pipeline` attach to it; loading runs and judges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xrutils.config import SAMPLING_FIELDS, EvalConfig, RunConfig
from xrutils.errors import InputError
from xrutils.evaluators import stats
from xrutils.evaluators.judge import Judge
from xrutils.evaluators.samples import SampleCache
from xrutils.log import get as _get_log
from xrutils.runs import RunDir


@dataclass
class ScoredRun:
    name: str
    rd: RunDir
    cfg: RunConfig
    epochs: list[int]  # checkpoints to score
    cache: SampleCache
    samples: dict[int, torch.Tensor] = field(default_factory=dict)  # epoch -> uint8 (n, 1, S, S)
    classifier_train: torch.Tensor | None = None
    result: dict[str, Any] = field(default_factory=dict)
    last_real_terms: np.ndarray | None = None
    real_key: str = ""  # name of the judge's real set in the paired bootstrap
    real_clusters: stats.Clusters | None = None  # the patients of the judge's real set (cluster bootstrap)
    last_fake_terms: np.ndarray | None = None
    last_p_real: np.ndarray | None = None
    fake_features: np.ndarray | None = None
    model_cache: tuple[int, Any] | None = None

    @property
    def size(self) -> int:
        return self.cfg.data.image_size

    @property
    def family(self) -> str:
        return self.cfg.family


_logger = _get_log("evaluate")


def log_progress(progress: bool, msg: str) -> None:
    if progress:
        _logger.info(msg)


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _run_names(dirs: Sequence[Path]) -> list[str]:
    names = [d.name for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [f"{d.parent.name}/{d.name}" for d in dirs]


def sampling_config(eval_cfg: EvalConfig, first: EvalConfig, own: EvalConfig) -> EvalConfig:
    """The evaluation settings one run is sampled with: ``eval_cfg`` (the evaluation's, made from the first run's
    config ``first`` and any overrides), except that the sampler, its steps, its precision and its sampling batch
    stay the run's own (``own``: a DDPM's 1000-step bf16 sampler next to a GAN's fp32 generator, the samples its
    training loop drew under ``train.keep_weights="sampled"``) wherever the evaluation did not override the first
    run's value."""
    keep = {f: getattr(own, f) for f in SAMPLING_FIELDS if getattr(eval_cfg, f) == getattr(first, f)}
    return replace(eval_cfg, **keep)


def load_runs(
    run_dirs: Sequence[str | Path], eval_cfg: EvalConfig, device: torch.device, quirks: Any = None
) -> list[ScoredRun]:
    """The runs to score, each with its sample cache (``quirks``: the original protocol's sampling quirks; each run
    sampled as its own config says, :func:`sampling_config`)."""
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise InputError("evaluate: no run folders given")
    if len({d.resolve() for d in dirs}) != len(dirs):
        raise InputError(f"evaluate: a run folder is given twice: {[str(d) for d in dirs]}")
    runs = []
    first = RunDir(dirs[0]).read_config().eval
    for name, d in zip(_run_names(dirs), dirs, strict=True):
        rd = RunDir(d)
        cfg = rd.read_config()
        epochs = rd.checkpoint_epochs()
        if not epochs:
            raise FileNotFoundError(f"{d}: no checkpoints in {rd.checkpoint_dir}; train the run first")
        chosen = epochs if eval_cfg.epochs == "all" else epochs[-1:]
        run = ScoredRun(name, rd, cfg, chosen, None)  # type: ignore[arg-type]
        run.cache = SampleCache.for_run(
            d,
            sampling_config(eval_cfg, first, cfg.eval),
            device=device,
            load_model=_model_loader(run, device),
            quirks=quirks,
        )
        runs.append(run)
    return runs


def _model_loader(run: ScoredRun, device: torch.device):
    """Load a checkpoint's model, keeping the newest one (the last epoch is needed again for the likelihood)."""

    def load(epoch: int) -> Any:
        if run.model_cache is not None and run.model_cache[0] == epoch:
            return run.model_cache[1]
        from xrutils.checkpoints import load_model

        model = load_model(run.rd.path, epoch, device=device)[1]
        run.model_cache = (epoch, model)
        return model

    return load


def load_judges(judge: str | Path | Sequence[str | Path] | None, device: torch.device) -> dict[int, Judge]:
    if judge is None:
        return {}
    paths = [judge] if isinstance(judge, (str, Path)) else list(judge)
    judges: dict[int, Judge] = {}
    for p in paths:
        j = Judge.from_run(p, device=device)
        if j.image_size in judges:
            raise InputError(
                f"two judges at image size {j.image_size}: {judges[j.image_size].run_dir} and {p}"
            )
        judges[j.image_size] = j
    return judges
