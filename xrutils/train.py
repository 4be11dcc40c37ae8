"""One training loop for every family (thesis §2-3; issue 3 §2), after nanoGPT's and minGPT's single trainer.

:func:`train` knows the families only through :class:`~xrutils.models.base.GenerativeModel`: it builds the model
from the registry, feeds it shuffled batches in the model's value range, and lets ``model.training_step`` do the
forward, backward and optimizer steps through a :class:`~xrutils.models.base.StepContext` (which carries the
training RNG, mixed precision and gradient clipping). Per epoch (cadence in ``cfg.train``) it writes into the run
folder (:class:`~xrutils.runs.RunDir`): a fixed-noise sample grid, a checkpoint and a ``history.csv`` row.

Differences from the original scripts (spec original-code.md §6), on purpose:

* Randomness comes from private generators derived from the run seed (``train``: noise and timesteps, ``data``:
  shuffling and flips, ``fixed_noise``: the grids); sampling never reseeds the global RNG (§6 #5, #6).
* Grids map the model's value range to [0, 1] without per-grid min-max scaling, so brightness is comparable
  across epochs and models (§6 #36).
* Losses stay on the device and are read on the host every ``train.log_every`` steps and at the end of each epoch
  (the original read each with ``.item()`` after every step); a non-finite loss is caught at those reads.
* A run resumes from its newest checkpoint bit-identically on CPU in one process (every RNG state is saved);
  the original resumed by hand with fresh optimisers and a fresh warm-up. (Under DDP, ranks > 0 reseed their
  training RNG from (seed, rank, step) on resume; only rank 0's state is in the checkpoint.)

Checkpoint ``checkpoints/epoch_NNN.pt`` (plain tensors and Python values, read with ``torch.load(weights_only=True)``)::

    {"format": 1, "epoch": completed epochs (1-based), "step": optimisation steps so far,
     "config": RunConfig as JSON, "networks": {name: state_dict} (one per model.networks(), never DDP-wrapped),
     "model_extra": model state outside the networks (usually empty),
     "optimizers": {name: state_dict}, "schedulers": {name: state_dict}, "scaler": state_dict or None,
     "rng": {"global": seeding.rng_state(), "train": ByteTensor, "train_device": "cpu"|"cuda", "data": ByteTensor},
     "history": [history rows up to this epoch]}

With ``train.keep_training_state="last"`` (default) only the newest checkpoint keeps optimizers, schedulers, scaler
and RNG states; older ones are rewritten with weights only and ``"resumable": False`` once a newer one is on disk.
With ``train.keep_weights="sampled"`` the loop draws each checkpoint's evaluation samples (``eval.n_fake`` images,
the evaluation sampler, into ``eval/samples/``, as the evaluators would) from the live model as it writes it, and
replaces every older checkpoint by ``epoch_NNN.dropped.json`` (its epoch, step, sample files and the fingerprint
they are filed under); ``"last"`` drops older weights with nothing drawn.

``history.csv`` columns: ``epoch``, ``step``, each loss key of the family averaged over the epoch (and over
processes), ``images_per_s`` and ``seconds`` (the optimisation steps of the epoch), ``sample_seconds`` (the grid),
``lr`` (first optimizer's learning rate at the end of the epoch).

Distributed: under ``torchrun`` the same loop wraps each network in DDP (:mod:`xrutils.distributed`);
``train.batch_size`` stays the global batch (each of N processes takes batch_size / N), and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm  # text bars: a saved notebook shows their last state (widget bars need live widgets)

from xrutils import distributed, registry
from xrutils.atomic import atomic_path
from xrutils.checkpoints import load_networks, network_state
from xrutils.config import SAMPLING_FIELDS, ConfigError, DataConfig, EvalConfig, RunConfig, TrainConfig
from xrutils.data import batches, load_images
from xrutils.data.ranges import UNIT_RANGE, Range, convert
from xrutils.models.base import GenerativeModel, StepContext, eval_mode
from xrutils.runs import GRID_PADDING, RunDir
from xrutils.seeding import derive_seed, make_generator, rng_state, seed_everything, set_rng_state

CHECKPOINT_FORMAT = 1


def train(cfg: RunConfig, run_dir: str | Path, *, resume: bool = True, progress: bool = True) -> list[dict]:
    """Train ``cfg`` into ``run_dir``; return the history rows. Resumes from the newest checkpoint when ``resume``."""
    device = resolve_device(cfg.train.device)
    with _process_group(device) as (info, device), contextlib.ExitStack() as held:
        rd, main = RunDir(run_dir), info.is_main
        if main:  # one writer per run folder: a second process is refused before it reads or writes anything
            held.enter_context(rd.writing())
        done = _epochs_done(rd, cfg, resume)  # 0 for a fresh run; raises on a config mismatch
        if done >= cfg.train.epochs:
            return rd.read_history()

        # -- model, data, optimisers, schedules ------------------------------------------------------------------
        seed_everything(cfg.seed)
        model = registry.get(cfg.family).build(cfg).to(device)
        micro_batch = _micro_batch(model, cfg)
        if device.type == "cuda":  # what makes it fit this GPU, or a clear error before the first step
            micro_batch = _fit_to_gpu(model, cfg, rd, device)
            gpu_settings(model, cfg)
        networks = model.networks()
        images = load_images(cfg.data, progress=progress and main).images
        _check_images(images, model, cfg)
        images = _stage_images(images, device)
        per_rank_batch = _per_rank_batch(cfg.train.batch_size, info.world_size)
        steps_per_epoch = count_steps(len(images), cfg.train, info.world_size)
        if steps_per_epoch == 0:
            raise ConfigError(
                f"no training images: data.source={cfg.data.source!r}, split {cfg.data.split!r}"
            )
        optimizers = model.configure_optimizers(cfg.train)
        schedulers = make_schedulers(optimizers, cfg.train, cfg.train.epochs * steps_per_epoch)
        ctx = make_step_context(cfg, device, rank=info.rank)
        ctx.micro_batch = micro_batch
        data_rng = make_generator(cfg.seed, "data")  # CPU: permutation and flips, identical on every rank
        fixed = (
            model.fixed_noise(cfg.train.n_grid, make_generator(cfg.seed, "fixed_noise"))
            if hasattr(model, "fixed_noise")
            else None
        )

        # -- resume, or start the run folder -----------------------------------------------------------------------
        history: list[dict] = []
        step = 0
        stripped_once = False
        if done:
            ckpt = rd.load_checkpoint(done, map_location="cpu")
            step, history = _restore(
                ckpt, cfg, rd.checkpoint_path(done), info.rank, model, optimizers, schedulers, ctx, data_rng
            )
        elif main:
            rd.create()
            rd.write_config(cfg)
        distributed.barrier(info)
        if info.enabled:  # BatchNorm statistics over the whole global batch (SyncBatchNorm) on GPUs
            networks = distributed.wrap_networks(model, networks, device)
        if cfg.train.compile:
            for name in networks:  # checkpoints and sampling keep using the plain networks
                setattr(model, name, torch.compile(getattr(model, name)))

        for epoch in range(done + 1, cfg.train.epochs + 1):
            model.train()
            sums: dict[str, Any] = {}
            n_steps = n_images = 0
            epoch_batches = batches(
                images,
                per_rank_batch,
                value_range=model.value_range,
                generator=data_rng,
                hflip=cfg.data.hflip,
                rank=info.rank,
                world_size=info.world_size,
                device=device,
            )
            bar = tqdm(
                itertools.islice(epoch_batches, steps_per_epoch),
                total=steps_per_epoch,
                leave=False,
                desc=f"{cfg.family}/{cfg.preset} epoch {epoch}/{cfg.train.epochs}",
                disable=not (progress and main),
            )
            t0 = time.perf_counter()
            # losses are read on the host (a GPU sync) every log_every steps and at the epoch's end
            checked = step
            for batch in bar:
                # -- forward / backward / update (inside the family's training_step) ------------------------------
                step += 1
                ctx.step_index = step
                losses = model.training_step(batch, optimizers, ctx)
                if ctx.scaler is not None:
                    ctx.scaler.update()
                for scheduler in schedulers.values():
                    scheduler.step()
                for k, v in losses.items():  # float64 sums on the device: no host sync
                    sums[k] = sums[k] + v if k in sums else v
                n_steps += 1
                n_images += batch.shape[0]
                if n_steps % cfg.train.log_every == 0:
                    # -- termination: a non-finite loss stops every rank; earlier checkpoints stay on disk ---------
                    _check_finite_losses(sums, info, rd, epoch, checked, step)
                    checked = step
                    bar.set_postfix(loss=f"{float(losses['loss']):.4g}")
            if checked != step:
                _check_finite_losses(sums, info, rd, epoch, checked, step)
            sums = {k: float(v) for k, v in sums.items()}
            seconds = time.perf_counter() - t0

            # -- end of epoch: history row, sample grid, checkpoint (rank 0 writes) -------------------------------
            means = distributed.mean_over_ranks({k: v / n_steps for k, v in sums.items()}, info)
            total_images = n_images * info.world_size
            row = {
                "epoch": epoch,
                "step": step,
                **means,
                "images_per_s": total_images / max(seconds, 1e-9),
                "seconds": seconds,
                "sample_seconds": 0.0,
                "lr": next(iter(optimizers.values())).param_groups[0]["lr"],
            }
            history.append(row)
            last = epoch == cfg.train.epochs
            checkpoint_now = last or epoch == 1 or epoch % cfg.train.checkpoint_every == 0
            if checkpoint_now:  # every rank checks (the weights are the same on each), so all stop together
                _check_finite_weights(networks, rd, epoch, step)
            if main:
                with distributed.unwrapped(model, networks):  # one rank samples: no DDP collectives
                    # the first and the last epoch always get a grid and a checkpoint: every curve starts from the
                    # barely trained model and ends at the final one
                    if last or epoch == 1 or epoch % cfg.train.sample_every == 0:
                        t1 = time.perf_counter()
                        save_grid(
                            fixed_noise_grid(model, cfg, fixed), model.value_range, rd.sample_path(epoch)
                        )
                        row["sample_seconds"] = time.perf_counter() - t1
                    if checkpoint_now:
                        rd.save_checkpoint(
                            epoch,
                            _checkpoint_state(
                                cfg,
                                epoch,
                                step,
                                model,
                                networks,
                                optimizers,
                                schedulers,
                                ctx,
                                data_rng,
                                history,
                            ),
                        )
                        if cfg.train.keep_weights != "all":
                            # this epoch's evaluation samples from the live model, older weights dropped
                            _keep_weights(rd, cfg, model, epoch, last, history)
                        elif cfg.train.keep_training_state == "last":
                            # the first time every older checkpoint (a killed run may have left two full ones),
                            # from then on only the previous newest: the others are weights-only already
                            _strip_older_training_state(rd, epoch, only_previous=stripped_once)
                            stripped_once = True
                rd.write_history(history)
                if progress:
                    tqdm.write(
                        f"{cfg.family}/{cfg.preset} epoch {epoch}/{cfg.train.epochs}: loss "
                        f"{row['loss']:.4g}, {row['images_per_s']:.0f} img/s, lr {row['lr']:.3g}"
                    )
            distributed.barrier(info)
        return history


# ----------------------------------------------------------------------------------------------------------------
# building blocks of the loop (also used by bench/gpu_baselines.py)


def resolve_device(setting: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a ConfigError."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device='cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(setting)


def make_step_context(cfg: RunConfig, device: torch.device, rank: int = 0) -> StepContext:
    """Training RNG on ``device``; fp16/bf16 autocast on CUDA only (a GradScaler for fp16); gradient clipping.

    Each DDP rank gets its own training RNG (rank 0's equals the single-process one), so ranks draw different
    noise and timesteps for their different images.
    """
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.train.precision)
    if device.type != "cuda":
        dtype = None  # config contract: mixed precision applies on CUDA only
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    purpose = "train" if rank == 0 else f"train/rank{rank}"
    return StepContext(
        device=device,
        generator=make_generator(cfg.seed, purpose, device),
        autocast_dtype=dtype,
        scaler=scaler,
        grad_clip=cfg.train.grad_clip,
    )


def lr_factor(step: int, schedule: str, warmup_steps: int, total_steps: int) -> float:
    """The LR multiplier after ``step`` steps: linear warm-up, then constant or a half cosine to 0 at total_steps.

    Same formula as diffusers' ``get_constant_schedule_with_warmup`` / ``get_cosine_schedule_with_warmup``
    (the original DDPM used the latter with 500 warm-up steps over 50 epochs).
    """
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def make_schedulers(
    optimizers: dict[str, torch.optim.Optimizer], train_cfg: TrainConfig, total_steps: int
) -> dict[str, torch.optim.lr_scheduler.LambdaLR]:
    """One LambdaLR per optimizer, stepped once per optimisation step."""

    def factor(step: int) -> float:
        return lr_factor(step, train_cfg.lr_schedule, train_cfg.warmup_steps, total_steps)

    return {name: torch.optim.lr_scheduler.LambdaLR(opt, factor) for name, opt in optimizers.items()}


def count_steps(n_images: int, train_cfg: TrainConfig, world_size: int = 1) -> int:
    """Optimisation steps per epoch: batches of one rank's shard (last partial batch kept), capped.

    Mirrors :func:`xrutils.data.batches`, which pads the permutation to a multiple of ``world_size``.
    """
    per_rank = math.ceil(n_images / world_size)
    steps = math.ceil(per_rank / _per_rank_batch(train_cfg.batch_size, world_size))
    return min(steps, train_cfg.steps_per_epoch) if train_cfg.steps_per_epoch else steps


def fixed_noise_grid(model: GenerativeModel, cfg: RunConfig, fixed: torch.Tensor | None) -> torch.Tensor:
    """The epoch's grid: the model's fixed noise rendered, or ``sample`` with a freshly seeded fixed generator."""
    with eval_mode(model):
        if fixed is not None:
            return model.sample_from_noise(fixed)
        return model.sample(cfg.train.n_grid, generator=make_generator(cfg.seed, "fixed_noise", model.device))


def save_grid(images: torch.Tensor, value_range: Range, path: str | Path, nrow: int | None = None) -> Path:
    """Save a square-ish PNG grid, mapping ``value_range`` to [0, 1] (no min-max scaling: spec §6 #36); atomic."""
    # imported here: torchvision takes seconds to import and checkpoints.load_model() users need none of it
    from torchvision.utils import save_image

    x = convert(images.detach().float().cpu(), tuple(value_range), UNIT_RANGE)
    nrow = nrow or math.ceil(math.sqrt(x.shape[0]))
    with atomic_path(path) as tmp:
        save_image(x, tmp, nrow=nrow, padding=GRID_PADDING, format="PNG")
    return Path(path)


def config_differences(cfg: RunConfig, saved: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between ``cfg`` and a saved config dict, as 'key: saved -> new'."""
    new, old = _flatten(json.loads(cfg.to_json())), _flatten(saved)
    # a data, train or eval setting added after the run was written reads as its default (how the run was made)
    defaults = {
        f"{section}.{k}": v
        for section, cls in (("data", DataConfig), ("train", TrainConfig), ("eval", EvalConfig))
        for k, v in dataclasses.asdict(cls()).items()
    }
    old.update({k: defaults[k] for k in set(new) - set(old) if k in defaults})
    return [
        f"{k}: {old.get(k, '<missing>')!r} -> {new.get(k, '<missing>')!r}"
        for k in sorted(set(new) | set(old))
        if new.get(k, ...) != old.get(k, ...)
    ]


# the eval settings the training loop itself draws with: under train.keep_weights="sampled" each checkpoint's
# evaluation samples come from the live model with these (evaluators.samples.checkpoint_samples: how they are drawn,
# how many, and eval.batch_size, the sampling batch when eval.sample_batch is 0), so for such a run they are as fixed
# as its training settings; every other eval setting (and these, for a run that draws nothing) only says how the run
# is evaluated
LOOP_EVAL_KEYS = frozenset(f"eval.{f}" for f in (*SAMPLING_FIELDS, "n_fake", "batch_size"))


def evaluation_only(key: str, cfg: RunConfig) -> bool:
    """Whether a config difference at dotted ``key`` leaves everything the run ``cfg`` has computed valid: an
    evaluation setting the loop does not draw with (:data:`LOOP_EVAL_KEYS`). Such a difference neither blocks a
    resume nor makes the run stale; the run's config.json takes the new value."""
    if not key.startswith("eval."):
        return False
    return not (cfg.train.keep_weights == "sampled" and key in LOOP_EVAL_KEYS)


def training_differences(cfg: RunConfig, saved: dict[str, Any]) -> tuple[list[str], list[str]]:
    """:func:`config_differences` split into (the ones that change what the run computes, the evaluation-only
    ones: :func:`evaluation_only`)."""
    diffs = config_differences(cfg, saved)
    only_eval = [d for d in diffs if evaluation_only(d.split(":")[0], cfg)]
    return [d for d in diffs if d not in only_eval], only_eval


# ----------------------------------------------------------------------------------------------------------------
# private helpers


@contextlib.contextmanager
def _process_group(device: torch.device):
    info = distributed.setup(device.type)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    try:
        yield info, device
    finally:
        distributed.cleanup(info)


def _epochs_done(rd: RunDir, cfg: RunConfig, resume: bool) -> int:
    """Completed epochs to resume from (0 = fresh). Refuses to overwrite checkpoints or to mix configs."""
    epochs = rd.checkpoint_epochs()
    if not epochs:
        return 0
    if not resume:
        raise ConfigError(
            f"{rd.path} already holds checkpoints (epochs {epochs}); resume it (--resume, "
            f"resume=True) or choose another run folder"
        )
    if not rd.config_path.exists():
        raise ConfigError(f"{rd.path} holds checkpoints but no config.json; cannot check it is the same run")
    saved = json.loads(rd.config_path.read_text())
    diffs, only_eval = training_differences(cfg, saved)
    if diffs and [d.split(":")[0] for d in diffs] == ["train.epochs"]:
        _check_extension(rd, cfg, int(saved["train"]["epochs"]), epochs[-1])
        rd.write_config(cfg)  # the run is now the longer one
        return epochs[-1]
    if diffs:
        fixed = [d for d in diffs if d.split(":")[0] in LOOP_EVAL_KEYS]
        why = (
            " (with train.keep_weights='sampled' the loop draws each checkpoint's evaluation samples with "
            f"{', '.join(sorted(LOOP_EVAL_KEYS))}, so they are fixed for the run)"
            if fixed
            else ""
        )
        raise ConfigError(
            f"cannot resume {rd.path}: its config.json differs from the requested config at "
            f"{'; '.join(diffs)}{why}. Use the same settings, or another run folder."
        )
    if only_eval:  # how the run is evaluated, not what it trained: the run folder takes the new settings
        rd.write_config(cfg)
    return epochs[-1]


def _check_extension(rd: RunDir, cfg: RunConfig, saved_epochs: int, newest: int) -> None:
    """Allow ``--resume --set train.epochs=N`` where continuing is exactly the longer run: with a constant learning
    rate (after its step-counted warm-up) nothing computed so far depends on the run's length."""
    new = cfg.train.epochs
    if new < newest:
        raise ConfigError(
            f"cannot shorten {rd.path} to train.epochs={new}: epochs up to {newest} are trained already"
        )
    if cfg.train.lr_schedule != "constant":
        raise ConfigError(
            f"cannot extend {rd.path} from train.epochs={saved_epochs} to {new}: with "
            f"train.lr_schedule={cfg.train.lr_schedule!r} the learning rate decays to 0 at the last step, so a "
            f"{new}-epoch run differs from the first step on; train it into a new run folder (or extend runs "
            f"with train.lr_schedule='constant')"
        )


def _per_rank_batch(batch_size: int, world_size: int) -> int:
    if batch_size % world_size:
        raise ConfigError(
            f"train.batch_size={batch_size} is the global batch and must divide evenly over "
            f"{world_size} processes"
        )
    return batch_size // world_size


def _micro_batch(model: GenerativeModel, cfg: RunConfig) -> int:
    """``train.micro_batch`` when set (refused for a family whose step cannot split its batch), else 0."""
    m = cfg.train.micro_batch
    if m and m < cfg.train.batch_size and not model.supports_micro_batches():
        raise ConfigError(
            f"train.micro_batch={m}: the {cfg.family} family's training step does not split its batch "
            f"(its two updates need the whole batch); use train.micro_batch=0"
        )
    return m


def _fit_to_gpu(model: GenerativeModel, cfg: RunConfig, rd: RunDir, device: torch.device) -> int:
    """Switch on what :func:`xrutils.plan.choose_measures` says the run needs to fit this GPU's memory (activation
    checkpointing: exact, about a third more FLOPs; then micro-batches), or raise naming the run when nothing does.
    Returns the micro-batch size (0 = the whole batch)."""
    from xrutils.plan import check_fits

    props = torch.cuda.get_device_properties(device)
    measures = check_fits(rd.name, cfg, props.total_memory / 1e9, props.name)
    model.set_checkpointing(measures.checkpointing)
    if measures.names:
        tqdm.write(
            f"{rd.name}: predicted peak {measures.peak_memory_gb:.1f} GB on {props.name} with "
            f"{', '.join(measures.names)}"
        )
    return measures.micro_batch


def gpu_settings(model: GenerativeModel, cfg: RunConfig) -> None:
    """TF32 tensor cores (``train.tf32``), cuDNN's autotuner unless ``train.deterministic``, channels_last."""
    torch.backends.cuda.matmul.allow_tf32 = cfg.train.tf32
    torch.backends.cudnn.allow_tf32 = cfg.train.tf32
    torch.backends.cudnn.benchmark = not cfg.train.deterministic
    torch.backends.cudnn.deterministic = cfg.train.deterministic
    if cfg.train.channels_last:
        model.to(memory_format=torch.channels_last)


# the training images move to the GPU when they take at most this share of its free memory
GPU_DATA_SHARE = 0.05


def _stage_images(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """On a GPU, the uint8 training images where batches are cut from them: on the GPU itself when they fit in
    :data:`GPU_DATA_SHARE` of its free memory (all of NIH at 64² is 459 MB), else in pinned host memory, from which
    each batch is copied without a staging copy. Values are unchanged either way."""
    if device.type != "cuda":
        return images
    free, _ = torch.cuda.mem_get_info(device)
    if images.numel() * images.element_size() <= GPU_DATA_SHARE * free:
        return images.to(device)
    return images.pin_memory()


def _check_finite_losses(
    sums: dict[str, torch.Tensor], info: Any, rd: RunDir, epoch: int, since: int, step: int
) -> None:
    """Stop every rank when a loss was not finite at some step in (since, step]: the epoch's running sums are
    then not finite either, and reading them is the loop's one host sync between log_every steps."""
    bad = {k: v for k, v in ((k, float(t)) for k, t in sums.items()) if not math.isfinite(v)}
    if distributed.any_rank(bool(bad), info):
        where = f"step {step}" if step == since + 1 else f"steps {since + 1} to {step}"
        raise FloatingPointError(
            f"non-finite loss at epoch {epoch}, {where} (losses are checked every train.log_every steps): "
            f"{sorted(bad) or 'on another process'}; run stopped, checkpoints kept in {rd.checkpoint_dir}: "
            f"epochs {rd.checkpoint_epochs()}"
        )


def _check_images(images: torch.Tensor, model: GenerativeModel, cfg: RunConfig) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(
            f"load_images returned {images.dtype} {tuple(images.shape)}; expected uint8 (N, 1, S, S)"
        )
    if images.shape[-1] != model.image_size or images.shape[-2] != model.image_size:
        raise ConfigError(
            f"data.image_size={cfg.data.image_size} gives {tuple(images.shape[-2:])} images but the "
            f"{cfg.family} model was built for {model.image_size}x{model.image_size}"
        )


def _check_finite_weights(networks: dict[str, nn.Module], rd: RunDir, epoch: int, step: int) -> None:
    """Refuse to checkpoint non-finite weights. A loss can stay finite while the weights are not (a clamped BCE
    reads 100 with inf weights), so the loss guard alone would let a broken state become the newest checkpoint."""
    bad = {
        f"{net}.{name}": int((~torch.isfinite(t)).sum())
        for net, module in networks.items()
        for name, t in itertools.chain(module.named_parameters(), module.named_buffers())
        if t.is_floating_point() and not bool(torch.isfinite(t).all())
    }
    if bad:
        worst = ", ".join(f"{k} ({v})" for k, v in sorted(bad.items(), key=lambda kv: -kv[1])[:3])
        raise FloatingPointError(
            f"non-finite weights at epoch {epoch}, step {step}: {sum(bad.values())} value(s) in {len(bad)} "
            f"tensor(s), e.g. {worst}; no checkpoint written for this epoch, checkpoints kept in "
            f"{rd.checkpoint_dir}: epochs {rd.checkpoint_epochs()} (a lower train.lr may help)"
        )


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _checkpoint_state(
    cfg: RunConfig,
    epoch: int,
    step: int,
    model: nn.Module,
    networks: dict[str, nn.Module],
    optimizers: dict,
    schedulers: dict,
    ctx: StepContext,
    data_rng: torch.Generator,
    history: list[dict],
) -> dict:
    nets, extra = network_state(model, networks)
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        "step": step,
        "config": cfg.to_json(),
        "networks": nets,
        "model_extra": extra,
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "schedulers": {name: s.state_dict() for name, s in schedulers.items()},
        "scaler": ctx.scaler.state_dict() if ctx.scaler is not None else None,
        "rng": {
            "global": rng_state(),
            "train": ctx.generator.get_state(),
            "train_device": ctx.device.type,
            "data": data_rng.get_state(),
        },
        "history": [dict(row) for row in history],
    }


TRAINING_STATE = ("optimizers", "schedulers", "scaler", "rng")


def _strip_older_training_state(rd: RunDir, newest: int, *, only_previous: bool = False) -> None:
    """Rewrite older checkpoints with weights only (atomically), once the newest full one is safely on disk.
    ``only_previous``: look at the newest older checkpoint only (reading every one at every epoch costs a thesis
    DDPM run about half a terabyte of reads)."""
    older = [e for e in rd.checkpoint_epochs() if e < newest]
    for epoch in older[-1:] if only_previous else older:
        ckpt = rd.load_checkpoint(epoch)
        if ckpt.get("resumable", True):
            rd.save_checkpoint(
                epoch, {**{k: v for k, v in ckpt.items() if k not in TRAINING_STATE}, "resumable": False}
            )


def _keep_weights(
    rd: RunDir, cfg: RunConfig, model: GenerativeModel, newest: int, last: bool, history: list[dict]
) -> None:
    """``train.keep_weights`` "sampled" / "last" once checkpoint ``newest`` is safely on disk: with "sampled" draw
    its evaluation samples from the live model (not for the last epoch, which keeps its weights and whose
    samples the evaluation sizes itself), then replace every older checkpoint that still has weights by a record
    (:meth:`RunDir.drop_weights`), after drawing its samples from disk if a killed run left them undrawn."""
    from xrutils.evaluators.samples import checkpoint_samples

    sampled = cfg.train.keep_weights == "sampled"
    if sampled and not last:
        checkpoint_samples(rd.path, newest, model=model)
    for epoch in [e for e in rd.weight_epochs() if e < newest]:
        names = checkpoint_samples(rd.path, epoch, device=model.device) if sampled else []
        ckpt_step = next((r["step"] for r in history if r["epoch"] == epoch), None)
        rd.drop_weights(epoch, {"policy": cfg.train.keep_weights, "samples": names, "step": ckpt_step})


def _restore(
    ckpt: dict,
    cfg: RunConfig,
    path: Path,
    rank: int,
    model: nn.Module,
    optimizers: dict,
    schedulers: dict,
    ctx: StepContext,
    data_rng: torch.Generator,
) -> tuple[int, list[dict]]:
    """Load a checkpoint into the live objects; return (step, history)."""
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint format {ckpt.get('format')!r} is not {CHECKPOINT_FORMAT}")
    if not ckpt.get("resumable", True):
        raise ValueError(
            f"checkpoint of epoch {ckpt['epoch']} holds weights only (train.keep_training_state="
            f"'last' keeps the training state in the newest checkpoint); resume from the newest one"
        )
    load_networks(model, ckpt, path, cfg.family)
    for kind, live in (("optimizers", optimizers), ("schedulers", schedulers)):
        if set(ckpt[kind]) != set(live):
            raise ValueError(f"checkpoint has {kind} {sorted(ckpt[kind])}, the model has {sorted(live)}")
        for name, obj in live.items():
            obj.load_state_dict(ckpt[kind][name])
    if ctx.scaler is not None and ckpt["scaler"] is not None:
        ctx.scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"]["global"])
    data_rng.set_state(ckpt["rng"]["data"])
    if rank == 0 and ckpt["rng"]["train_device"] == ctx.device.type:
        ctx.generator.set_state(ckpt["rng"]["train"])
    else:  # only rank 0's state is saved, and a CUDA state cannot seed a CPU generator: derive a fresh seed
        ctx.generator.manual_seed(derive_seed(cfg.seed, f"train/rank{rank}/resumed-at-step-{ckpt['step']}"))
    return int(ckpt["step"]), [dict(row) for row in ckpt["history"]]
