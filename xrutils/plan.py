"""What a profile costs before its first step: per run the predicted peak GPU memory, the FLOPs of its training, of
its sample grids and of its evaluation, the hours on a chosen GPU, and the disk its checkpoints take
(``python -m xrutils plan --profile thesis --gpu h200 [--json]``; ``make figures`` prints the total first).

Nothing here trains, samples or reads data. How each number is made:

* **FLOPs** come from :class:`torch.utils.flop_counter.FlopCounterMode` over one training step of the run's model
  (forward, backward and the optimiser: ``training_step`` itself) at its batch size, and over one forward pass of
  its sampling network, both on *meta* tensors (shapes without data: a thesis-sized step is counted in seconds on a
  CPU). A step's ``.item()`` calls read 1.0 there. Sampling passes per image: GAN and VAE one forward of the
  generator / decoder; PixelCNN one forward (the cached sampler computes each layer once per position); DDPM one
  UNet forward per sampler step (1,000 for DDPM, K for DDIM-K).
* **Peak memory** is a model from the same meta step, not a measurement: fp32 weights, gradients and Adam's two
  moments (16 bytes a parameter), plus the most bytes autograd holds for backward passes at one time (the tensors
  :func:`torch.autograd.graph.saved_tensors_hooks` sees, each storage once, from its forward until its backward
  has run: the GAN's three forward/backward phases do not add up), scaled by :data:`HALF_ACTIVATIONS` for fp16/bf16
  autocast runs, plus the largest of them again (the transient a backward pass holds next to them) and
  :data:`CUDA_OVERHEAD_GB` for the CUDA context and cuDNN's workspace.
* **Hours** are ``FLOPs / (the GPU's dense peak x UTILISATION) + kernels x LAUNCH_S`` per training step and per
  sampling pass (the second term is what small networks and the PixelCNN's wavefronts cost), on one GPU, one run
  after the other. Peaks are the vendors' dense tensor-core figures (:data:`GPUS`); UTILISATION and LAUNCH_S are
  assumptions until a lent GPU measures them (docs/PERFORMANCE.md).
* **Fitting**: a run whose prediction exceeds the GPU's memory trains with activation checkpointing where its
  family has it (the PixelCNN: each masked stage recomputed in the backward pass, BatchNorm's running statistics
  updated once; the same losses, weights and statistics, about a third more FLOPs), which the plan then prices
  (:func:`choose_measures`); the training loop asks the same function on its GPU before the first step, and a run
  that fits in no way is refused, naming it (:func:`check_fits`).
* **Disk**: the checkpoints as the loop keeps them (fp32 weights of every checkpointed epoch with
  ``train.keep_weights="all"``, of the newest only with "sampled" or "last"; the newest also its Adam state), and the
  cached evaluation samples (uint8).
* The data: a run on NIH data trains on the official ``train_val`` list (:data:`NIH_TRAIN_VAL` images, or
  ``data.max_images``); on the phantom, on its training split.

Evaluation follows the studies (:mod:`xrutils.studies`): every checkpoint of every scored run is sampled once
(``eval.n_fake``; the last epoch ``max(n_fake, n_metric)``), shared by every study that scores it, plus the compare
study's original protocol for Figure S1 (its train-mode GAN and seeded full-chain DDPM draw samples of their own).
The judges, classifiers and encoders are left out: they see each sample once, in small networks.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from xrutils.config import ConfigError, RunConfig

NIH_TRAIN_VAL = 86_524  # images in NIH ChestX-ray14's train_val_list.txt (spec §1.1)
# the downstream study's classes among those training images (counted from Data_Entry_2017_v2020.csv and
# train_val_list.txt): NIH's task "Any Finding" / "No Finding"; the phantom's share of its train_val images per class
# (the demo's 2,000-image phantom: 1,044 and 150 of 1,600)
CLASS_IMAGES = {"nih": {"No Finding": 50_500, "Any Finding": 36_024, "Cardiomegaly": 1_707}}
PHANTOM_CLASS_SHARE = {"No Finding": 1044 / 1600, "Cardiomegaly": 150 / 1600}
CUDA_OVERHEAD_GB = 1.0  # CUDA context, cuDNN / cuBLAS workspaces and allocator slack (assumed)
HALF_ACTIVATIONS = (
    0.55  # saved activations of an fp16/bf16 autocast step relative to fp32 (norms stay fp32; assumed)
)
UTILISATION = 0.30  # share of the dense peak a convolutional training step reaches (assumed, to be measured)
LAUNCH_S = 8e-6  # seconds per kernel launch a step cannot hide (assumed, to be measured)


@dataclass(frozen=True)
class GPU:
    """One GPU kind: usable memory and the dense tensor-core peaks (TF32 for fp32 runs, bf16/fp16 for mixed)."""

    name: str
    memory_gb: float
    tflops_fp32: float
    tflops_half: float


GPUS: dict[str, GPU] = {
    "h200": GPU("NVIDIA H200 (141 GB)", 141.0, 494.0, 989.0),
    "h100": GPU("NVIDIA H100 SXM (80 GB)", 80.0, 494.0, 989.0),
    "a100-80": GPU("NVIDIA A100 (80 GB)", 80.0, 156.0, 312.0),
    "l40s": GPU("NVIDIA L40S (48 GB)", 48.0, 183.0, 362.0),
    "rtx4090": GPU("NVIDIA RTX 4090 (24 GB)", 24.0, 82.6, 165.0),
}


def gpu_of(name: str) -> str | None:
    """The :data:`GPUS` key of a device name as ``nvidia-smi`` prints it ("NVIDIA H200", ...), or None."""
    name = name.upper()
    for key, needle in (("h200", "H200"), ("h100", "H100"), ("a100-80", "A100"), ("l40s", "L40S")):
        if needle in name:
            return key
    return "rtx4090" if "4090" in name else None


# ----------------------------------------------------------------------------------------------------------------
# counting one step on meta tensors


class _Ops(TorchDispatchMode):
    """Counts the kernels a piece of code launches (view and metadata ops launch none), and answers every
    ``.item()`` with 1.0: meta tensors hold no values (a step's loss is read for its history row only)."""

    FREE = frozenset(
        "view _unsafe_view as_strided expand t transpose permute unsqueeze squeeze slice select detach alias "
        "reshape _reshape_alias empty split chunk unbind".split()
    )

    def __init__(self):
        super().__init__()
        self.kernels = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            return 1.0
        name = func.__name__.split(".")[0]
        if name not in self.FREE and not name.startswith("empty"):
            self.kernels += 1
        return func(*args, **(kwargs or {}))


@dataclass
class Count:
    """One counted piece of work: FLOPs, kernel launches, and for a training step the bytes it keeps."""

    flops: float = 0.0
    kernels: int = 0
    saved_bytes: float = 0.0  # the most bytes held for backward passes at one time
    largest_bytes: float = 0.0  # the largest single tensor saved (a backward's transient holds as much again)


class _Saved:
    """What autograd holds for the backward pass over time: each saved tensor's storage counted once, while any
    tensor saved on it is still held (a graph's saved tensors are dropped when its backward has run)."""

    class _Held:
        __slots__ = ("t", "__weakref__")

        def __init__(self, t: torch.Tensor):
            self.t = t

    def __init__(self):
        self.live = self.peak = self.largest = 0.0
        self._holders: dict[int, int] = {}
        self._keep: list[torch.Tensor] = []  # storages stay alive (meta: no memory), so no address is reused

    def pack(self, t: torch.Tensor) -> _Saved._Held:
        storage = t.untyped_storage()
        key, nbytes = storage._cdata, storage.nbytes()
        if self._holders.get(key, 0) == 0:
            self.live += nbytes
            self.peak = max(self.peak, self.live)
            self.largest = max(self.largest, nbytes)
        self._holders[key] = self._holders.get(key, 0) + 1
        self._keep.append(t)
        held = self._Held(t)
        weakref.finalize(held, self._release, key, nbytes)
        return held

    def _release(self, key: int, nbytes: int) -> None:
        self._holders[key] -= 1
        if self._holders[key] == 0:
            self.live -= nbytes

    @staticmethod
    def unpack(held: _Saved._Held) -> torch.Tensor:
        return held.t


class _FusedAttention(TorchFunctionMode):
    """Attention as a GPU runs it: ``scaled_dot_product_attention`` on meta tensors would take the math path,
    which keeps the whole attention matrix for the backward pass; a GPU's fused kernel keeps q, k, v, the output
    and one log-sum-exp per query. So on meta it goes through the fused ("efficient") kernel's own op."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention and args and args[0].device.type == "meta":
            q, k, v = args[:3]
            mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
            grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
            return torch.ops.aten._scaled_dot_product_efficient_attention(
                q,
                k,
                v,
                mask,
                grad,
                kwargs.get("dropout_p", 0.0),
                kwargs.get("is_causal", False),
                scale=kwargs.get("scale"),
            )[0]
        return func(*args, **kwargs)


def _count(fn: Callable[[], Any], *, track_saved: bool = False) -> Count:
    flops, ops, saved = FlopCounterMode(display=False), _Ops(), _Saved()
    hooks = (
        torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack)
        if track_saved
        else contextlib.nullcontext()
    )
    with flops, ops, hooks, _FusedAttention():
        fn()
    return Count(float(flops.get_total_flops()), ops.kernels, saved.peak, saved.largest)


def _meta_model(cfg: RunConfig):
    from xrutils import registry

    with torch.device("meta"):
        return registry.get(cfg.family).build(cfg)


def count_training_step(
    cfg: RunConfig, batch_size: int | None = None, *, checkpointing: bool = False
) -> tuple[Count, int]:
    """One training step of ``cfg``'s model at ``batch_size`` (default: the config's) on meta tensors, and the
    model's parameter count. ``checkpointing``: with activation checkpointing (families that support it); the
    stage recomputed in the backward pass then adds its own activations (the largest stage's) to the peak."""
    from xrutils.models.base import StepContext

    model = _meta_model(cfg)
    if checkpointing and not model.set_checkpointing(True):
        raise ConfigError(f"plan: the {cfg.family} family has no activation checkpointing")
    optimizers = model.configure_optimizers(cfg.train)
    ctx = StepContext(device=torch.device("meta"), generator=torch.Generator().manual_seed(0))
    s, b = cfg.data.image_size, batch_size or cfg.train.batch_size
    batch = torch.empty(b, 1, s, s, device="meta")
    count = _count(lambda: model.training_step(batch, optimizers, ctx), track_saved=True)
    if checkpointing:
        count.saved_bytes += _largest_stage_bytes(model, b)
    return count, sum(p.numel() for p in model.parameters())


def _largest_stage_bytes(model: Any, batch: int) -> float:
    """What the largest checkpointed stage saves for its backward pass (it is recomputed there, one at a time)."""
    net = model.net
    s = model.image_size
    x = net.with_coords(torch.empty(batch, 1, s, s, device="meta"))
    worst = 0.0
    for stage in net.stages:
        saved = _Saved()
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
            x = stage(x.detach().requires_grad_())
        worst = max(worst, saved.peak)
    return worst


def sampling_passes(cfg: RunConfig, sampler: str | None = None, steps: int | None = None) -> int:
    """Forward passes of the sampling network per sample: the DDPM's sampler steps, else 1."""
    if cfg.family != "ddpm":
        return 1
    sampler = sampler or cfg.model.sampler
    if sampler == "ddpm":
        return steps or cfg.model.timesteps
    return steps or cfg.model.sampler_steps


def count_sampling_pass(cfg: RunConfig, n: int = 1) -> Count:
    """One forward pass of the family's sampling network for ``n`` images, on meta tensors."""
    model = _meta_model(cfg)
    s = cfg.data.image_size
    meta = {"device": "meta"}
    passes: dict[str, Callable[[], Any]] = {
        "gan": lambda: model.generator(torch.empty(n, model.cfg.nz, 1, 1, **meta)),
        "vae": lambda: model.sample_from_noise(torch.empty(n, model.cfg.latent, **meta)),
        "pixelcnn": lambda: model(torch.empty(n, 1, s, s, **meta)),
        "ddpm": lambda: model.unet(
            torch.empty(n, 1, s, s, **meta), torch.zeros((), dtype=torch.long, **meta)
        ),
    }
    if cfg.family not in passes:
        raise ConfigError(f"plan: no sampling network known for family {cfg.family!r}")
    with torch.no_grad():
        return _count(passes[cfg.family])


def pixelcnn_wavefronts(cfg: RunConfig) -> int:
    """Sequential groups of the PixelCNN's cached sampler ((S - 1)(R + 1) + S): each costs its own launches."""
    from xrutils.models.pixelcnn import wavefronts

    model = _meta_model(cfg)
    return len(wavefronts(cfg.data.image_size, model.net.reach))


# ----------------------------------------------------------------------------------------------------------------
# one run


@dataclass
class RunPlan:
    run: str
    family: str
    image_size: int
    batch_size: int
    precision: str
    params: int
    steps: int
    peak_memory_gb: float
    train_flops: float
    grid_flops: float
    eval_flops: float
    train_hours: float
    grid_hours: float
    eval_hours: float
    checkpoint_gb: float
    samples_gb: float
    fits: bool
    measures: list[str] = field(default_factory=list)  # what makes it fit (activation checkpointing)

    @property
    def hours(self) -> float:
        return self.train_hours + self.grid_hours + self.eval_hours

    @property
    def disk_gb(self) -> float:
        return self.checkpoint_gb + self.samples_gb

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hours": self.hours, "disk_gb": self.disk_gb}


def gpu_seconds(count: Count, repeats: float, gpu: GPU, half: bool) -> float:
    """Predicted seconds of ``repeats`` times the work ``count`` on ``gpu``: FLOPs at :data:`UTILISATION` of its
    dense peak (the half-precision peak when ``half``) plus :data:`LAUNCH_S` a kernel."""
    peak = (gpu.tflops_half if half else gpu.tflops_fp32) * 1e12
    return repeats * (count.flops / (peak * UTILISATION) + count.kernels * LAUNCH_S)


def sampling_price(
    cfg: RunConfig,
    gpu: GPU,
    n_images: int,
    passes: int,
    *,
    half: bool = False,
    one: Count | None = None,
    wave: int | None = None,
) -> tuple[float, float]:
    """FLOPs and predicted seconds of drawing ``n_images`` with ``passes`` network passes each, in batches of
    ``eval.sampling_batch``: FLOPs per image drawn (a last, smaller batch costs its share), kernel launches per
    batch (the PixelCNN's per wavefront). ``one`` (a pass over one batch) and ``wave`` (the PixelCNN's wavefronts)
    are counted when not given."""
    batch = cfg.eval.sampling_batch
    one = one if one is not None else count_sampling_pass(cfg, batch)
    if wave is None:
        wave = pixelcnn_wavefronts(cfg) if cfg.family == "pixelcnn" else 1
    flops = passes * n_images * one.flops / batch
    kernels = passes * math.ceil(n_images / batch) * one.kernels * wave
    return flops, gpu_seconds(Count(flops, kernels), 1, gpu, half=half)


def peak_memory_gb(step: Count, params: int, precision: str) -> float:
    """The model of :mod:`xrutils.plan`'s docstring: 16 bytes a parameter, saved activations (x
    :data:`HALF_ACTIVATIONS` under fp16/bf16), the largest transient, and the CUDA overhead."""
    act = step.saved_bytes * (HALF_ACTIVATIONS if precision in ("fp16", "bf16") else 1.0)
    return (16 * params + act + step.largest_bytes) / 1e9 + CUDA_OVERHEAD_GB


def training_images(cfg: RunConfig, train_images: int | None = None) -> int:
    """Images one epoch trains on: ``train_images`` when given, else NIH's train_val (data.source nih) or about
    80 % of the phantom's images (its train_val list), capped by ``data.max_images``."""
    if train_images is None:
        if cfg.data.source == "phantom":  # its patient-disjoint train_val list holds about 80 % of the images
            train_images = int(0.8 * cfg.data.phantom_n)
        else:
            train_images = NIH_TRAIN_VAL
    return min(train_images, cfg.data.max_images) if cfg.data.max_images else train_images


def plan_run(
    run: str,
    cfg: RunConfig,
    gpu: GPU,
    *,
    scored: bool,
    extra_samples: dict[str, int] | None = None,
    train_images: int | None = None,
    final_samples: int = 0,
) -> RunPlan:
    """The cost of one run: its training, its grids and, when ``scored``, the samples its evaluation draws.
    ``extra_samples``: sampler ("ddpm" for a seeded full chain, "train_mode" for the GAN) -> samples the original
    protocol draws on top (Figure S1). ``final_samples``: images drawn from the last checkpoint with the evaluation
    sampler (the downstream study's synthetic training set)."""
    from xrutils.train import count_steps

    measures = choose_measures(cfg, gpu.memory_gb)
    step, params = measures.step, measures.params
    steps_epoch = count_steps(training_images(cfg, train_images), cfg.train)
    steps = steps_epoch * cfg.train.epochs
    half = cfg.train.precision in ("fp16", "bf16")
    one = count_sampling_pass(cfg, cfg.eval.sampling_batch)
    epochs = list(range(1, cfg.train.epochs + 1))
    grid_epochs = [e for e in epochs if e in (1, cfg.train.epochs) or e % cfg.train.sample_every == 0]
    ckpt_epochs = [e for e in epochs if e in (1, cfg.train.epochs) or e % cfg.train.checkpoint_every == 0]
    wave = pixelcnn_wavefronts(cfg) if cfg.family == "pixelcnn" else 1

    def sampling(n_images: int, passes: int, half: bool = False) -> tuple[float, float]:
        return sampling_price(cfg, gpu, n_images, passes, half=half, one=one, wave=wave)

    # the evaluation's own samples (bf16 where eval.precision says so; the original protocol's stay fp32)
    eval_half = cfg.eval.precision == "bf16"
    eval_passes = sampling_passes(
        cfg, cfg.eval.sampler, cfg.eval.sampler_steps if cfg.eval.sampler == "ddim" else None
    )

    grid_flops, grid_s = sampling(cfg.train.n_grid * len(grid_epochs), sampling_passes(cfg))
    eval_flops = eval_s = 0.0
    samples = 0
    if scored:
        per_ckpt = [cfg.eval.n_fake] * len(ckpt_epochs)
        # the last epoch also feeds the metrics, and at most n_real more samples the classifier
        per_ckpt[-1] = max(cfg.eval.n_fake, cfg.eval.n_metric) + cfg.eval.n_real
        samples = sum(per_ckpt)
        eval_flops, eval_s = sampling(samples, eval_passes, eval_half)
        for what, n in (extra_samples or {}).items():
            p = sampling_passes(cfg, "ddpm") if what == "ddpm" else 1
            f, t = sampling(n * len(ckpt_epochs), p)
            eval_flops, eval_s, samples = eval_flops + f, eval_s + t, samples + n * len(ckpt_epochs)
    if final_samples:
        f, t = sampling(final_samples, eval_passes, eval_half)
        eval_flops, eval_s, samples = eval_flops + f, eval_s + t, samples + final_samples
    weights = 4 * params
    # Adam's moments in the newest only; older checkpoints keep their weights only under train.keep_weights="all"
    kept = len(ckpt_epochs) if cfg.train.keep_weights == "all" else 1
    checkpoint_gb = (weights * kept + 2 * weights) / 1e9
    peak = measures.peak_memory_gb
    return RunPlan(
        run=run,
        family=cfg.family,
        image_size=cfg.data.image_size,
        batch_size=cfg.train.batch_size,
        precision=cfg.train.precision,
        params=params,
        steps=steps,
        peak_memory_gb=peak,
        train_flops=step.flops * steps,
        grid_flops=grid_flops,
        eval_flops=eval_flops,
        train_hours=gpu_seconds(step, steps, gpu, half) / 3600,
        grid_hours=grid_s / 3600,
        eval_hours=eval_s / 3600,
        checkpoint_gb=checkpoint_gb,
        samples_gb=samples * cfg.data.image_size**2 / 1e9,
        fits=peak <= gpu.memory_gb,
        measures=measures.names,
    )


# ----------------------------------------------------------------------------------------------------------------
# a whole profile


def plan_profile(
    profile: str,
    gpu: str = "h200",
    *,
    nih: bool = True,
    train_images: int | None = None,
    runs: list[str] | None = None,
    nih_root: str = "",
    downstream: bool = True,
    gpus: int = 1,
) -> dict[str, Any]:
    """Every run of ``profile`` (studies.all_runs; ``runs``: only these), each with its cost, and the totals;
    with ``downstream`` (and ``runs`` not given) also the downstream study's class generators (``make downstream``).
    ``nih``: price the runs on NIH data (the thesis's), else on the profile's own data source (``nih_root``: the
    build's NIH root, whose data then is the source). ``gpus``: also predict the wall-clock hours of the runs on that
    many GPUs of the kind, one run per GPU (:func:`wall_hours`)."""
    from xrutils import studies

    if gpu not in GPUS:
        raise ConfigError(f"plan: unknown GPU {gpu!r}; expected one of {', '.join(GPUS)}")
    kind = GPUS[gpu]
    scored = studies.scored_anywhere(profile)
    s1 = set(studies.SUPPLEMENTARY["S1"].runs) if profile != "smoke" else set()
    skip = studies.study_params("compare", profile).get("original_skip") or {}
    planned: dict[str, RunPlan] = {}
    for run in runs if runs is not None else studies.all_runs(profile):
        p = studies.read_params(studies.params_dir(profile) / f"{run}.yaml")
        overrides = {**(p.get("overrides") or {}), **({"data.source": "nih"} if nih else {})}
        cfg = studies.run_config(
            p["family"], p["preset"], profile, overrides, p.get("seed", 0), "" if nih else nih_root
        )
        extra: dict[str, int] = {}
        if run in s1:
            if cfg.family == "gan":
                extra["train_mode"] = cfg.eval.batch_size
            if cfg.family == "ddpm" and "seeded_ddpm" not in skip:
                extra["ddpm"] = cfg.eval.batch_size
        planned[run] = plan_run(
            run, cfg, kind, scored=run in scored, extra_samples=extra, train_images=train_images
        )
    if downstream and runs is None:
        planned.update(plan_downstream(profile, kind, nih=nih, train_images=train_images, nih_root=nih_root))
    total = {
        k: sum(getattr(r, k) for r in planned.values())
        for k in ("train_flops", "grid_flops", "eval_flops", "train_hours", "grid_hours", "eval_hours")
    }
    return {
        "profile": profile,
        "gpu": gpu,
        "gpu_name": kind.name,
        "data": "NIH ChestX-ray14 train_val" if nih else "the profile's data source",
        "assumptions": {
            "utilisation": UTILISATION,
            "launch_s": LAUNCH_S,
            "cuda_overhead_gb": CUDA_OVERHEAD_GB,
            "half_activations": HALF_ACTIVATIONS,
            "memory": "modelled from meta tensors (weights, gradients, Adam, saved activations), not measured",
            "flops": "torch.utils.flop_counter on one training step and one sampling pass, on meta tensors",
        },
        "runs": {r: p.to_dict() for r, p in planned.items()},
        "total_hours": sum(p.hours for p in planned.values()),
        "total_disk_gb": sum(p.disk_gb for p in planned.values()),
        "total_checkpoint_gb": sum(p.checkpoint_gb for p in planned.values()),
        "max_peak_memory_gb": max((p.peak_memory_gb for p in planned.values()), default=0.0),
        "gpus": gpus,
        "wall_hours": wall_hours([p.hours for p in planned.values()], gpus),
        "longest_run_hours": max((p.hours for p in planned.values()), default=0.0),
        "not_fitting": [r for r, p in planned.items() if not p.fits],
        **{f"total_{k}": v for k, v in total.items()},
    }


def wall_hours(hours: list[float], gpus: int) -> float:
    """Predicted wall-clock hours of jobs taking ``hours`` each on ``gpus`` GPUs, one job per GPU at a time, the
    longest first, each to the GPU that frees first (what the workflow engine's GPU slots do with the runs of a
    build; within 4/3 of the best possible order). At least ``max(sum / gpus, longest)``."""
    if gpus < 1:
        raise ConfigError(f"plan: {gpus} GPUs; expected at least 1")
    loads = [0.0] * gpus
    for h in sorted(hours, reverse=True):
        i = loads.index(min(loads))
        loads[i] += h
    return max(loads)


def plan_downstream(
    profile: str, gpu: GPU, *, nih: bool, train_images: int | None = None, nih_root: str = ""
) -> dict[str, RunPlan]:
    """The downstream study's class generators (:mod:`xrutils.studies.downstream`): per family and class the
    family's common-size run with its number of steps, on the class's images, and the synthetic training set its
    last checkpoint draws (as many images as the real training set has of the class). The classifiers are left out,
    as the judges are."""
    from xrutils.studies import common_size_runs
    from xrutils.studies import downstream as ds

    source = "nih" if nih or nih_root else "phantom"
    task = ds.task_for(profile, "nih" if source == "nih" else "")
    out: dict[str, RunPlan] = {}
    nih_data = {"data.source": "nih"} if nih else {}
    for run in common_size_runs(profile):
        base = ds.base_config(run, profile, "").override(nih_data)
        n_base = training_images(base, train_images)  # what the family's run trains on
        n_all = training_images(base.override(ds.study_data(profile)), train_images)  # the study's data
        for cls in task.classes:
            counted = CLASS_IMAGES["nih"] if source == "nih" else PHANTOM_CLASS_SHARE
            if cls not in counted:
                raise ConfigError(
                    f"plan: no count of {cls!r} images on {source} data (xrutils.plan.CLASS_IMAGES / "
                    f"PHANTOM_CLASS_SHARE); add it to price the downstream task of profile {profile}"
                )
            share = counted[cls] / NIH_TRAIN_VAL if source == "nih" else counted[cls]
            n = round(share * n_all)
            cfg = ds.generator_config(run, cls, profile, "", max(n, 1), n_base).override(nih_data)
            name = f"downstream/{ds.generator_name(run, cls)}"
            out[name] = plan_run(name, cfg, gpu, scored=False, train_images=max(n, 1), final_samples=n)
    return out


@dataclass
class Measures:
    """How a run fits a GPU: activation checkpointing, micro-batches (0 = the whole batch), the predicted peak, and
    the step as it then runs (FLOPs and kernels of the whole batch)."""

    checkpointing: bool
    peak_memory_gb: float
    step: Count
    params: int
    micro_batch: int = 0

    @property
    def names(self) -> list[str]:
        return (["activation checkpointing"] if self.checkpointing else []) + (
            [f"micro-batches of {self.micro_batch}"] if self.micro_batch else []
        )


def choose_measures(cfg: RunConfig, memory_gb: float) -> Measures:
    """The cheapest way to fit ``memory_gb``, in this order: nothing; activation checkpointing where the family has
    it (exact: the same losses, gradients and BatchNorm statistics, for about a third more FLOPs); then the largest
    micro-batch that fits (a divisor of the batch; exact for families without BatchNorm, see docs/DISCREPANCIES.md),
    with checkpointing where the family has it. ``train.micro_batch`` when set is taken as given. When nothing
    fits, the smallest prediction is returned (its peak above ``memory_gb``)."""
    b = cfg.train.batch_size
    step, params = count_training_step(cfg)
    fixed = cfg.train.micro_batch if 0 < cfg.train.micro_batch < b else 0

    def at(micro: int, checkpointing: bool) -> Measures:
        s = step
        if micro or checkpointing:
            s, _ = count_training_step(cfg, micro or None, checkpointing=checkpointing)
        peak = peak_memory_gb(s, params, cfg.train.precision)
        if micro:  # memory of one pass; FLOPs and kernels of the batch's b / micro passes
            s = Count(s.flops * b / micro, s.kernels * b // micro, s.saved_bytes, s.largest_bytes)
        return Measures(checkpointing, peak, s, params, micro)

    best = at(fixed, False)
    if best.peak_memory_gb <= memory_gb:
        return best
    try:
        best = at(fixed, True)
        checkpointing = True
    except ConfigError:  # the family has no checkpointing
        checkpointing = False
    if best.peak_memory_gb <= memory_gb or fixed:
        return best
    if not _meta_model(cfg).supports_micro_batches():
        return best
    for micro in sorted((d for d in range(1, b) if b % d == 0), reverse=True):
        m = at(micro, checkpointing)
        if m.peak_memory_gb <= memory_gb:
            return m
        best = m if m.peak_memory_gb < best.peak_memory_gb else best
    return best


def check_fits(run: str, cfg: RunConfig, memory_gb: float, gpu_name: str = "this GPU") -> Measures:
    """The measures that make ``run`` fit ``memory_gb`` (:func:`choose_measures`); raises :class:`ConfigError`
    before the run starts when none does, naming the run and what to change."""
    m = choose_measures(cfg, memory_gb)
    if m.peak_memory_gb > memory_gb:
        tried = f" even with {' and '.join(m.names)}" if m.names else ""
        raise ConfigError(
            f"run {run}: predicted peak memory {m.peak_memory_gb:.1f} GB{tried} exceeds {gpu_name}'s "
            f"{memory_gb:.1f} GB (batch {cfg.train.batch_size} at {cfg.data.image_size}², {cfg.train.precision}); "
            f"lower train.batch_size, use train.precision=bf16, or run it on a GPU with more memory "
            f"(python -m xrutils plan --profile {cfg.profile} lists every run's prediction)"
        )
    return m


def report(plan: dict[str, Any]) -> str:
    """The plan as a table: one line per run, then the totals."""
    head = (
        f"{'run':34s} {'size':>4s} {'prec':>4s} {'params':>8s} {'steps':>7s} {'peak GB':>8s} "
        f"{'train PF':>9s} {'grids PF':>9s} {'eval PF':>9s} {'hours':>7s} {'disk GB':>8s}"
    )
    lines = [
        f"plan of the {plan['profile']} profile on {plan['gpu_name']} ({plan['data']}); one GPU, one run after "
        "the other",
        head,
    ]
    for name, r in plan["runs"].items():
        flag = ("" if r["fits"] else "  DOES NOT FIT") + "".join(f"  ({m})" for m in r["measures"])
        lines.append(
            f"{name:34s} {r['image_size']:4d} {r['precision']:>4s} {r['params'] / 1e6:7.1f}M {r['steps']:7d} "
            f"{r['peak_memory_gb']:8.1f} {r['train_flops'] / 1e15:9.1f} {r['grid_flops'] / 1e15:9.2f} "
            f"{r['eval_flops'] / 1e15:9.1f} {r['hours']:7.2f} {r['disk_gb']:8.2f}{flag}"
        )
    lines += [
        f"total: {plan['total_hours']:.1f} GPU-hours (training {plan['total_train_hours']:.1f}, grids "
        f"{plan['total_grid_hours']:.1f}, evaluation sampling {plan['total_eval_hours']:.1f}), "
        f"{plan['total_disk_gb']:.0f} GB of disk ({plan['total_checkpoint_gb']:.0f} GB checkpoints), largest peak "
        f"{plan['max_peak_memory_gb']:.1f} GB",
        "memory is modelled from meta tensors and hours assume "
        f"{UTILISATION:.0%} of the dense peak plus {LAUNCH_S * 1e6:.0f} us a kernel launch: predictions, not "
        "measurements",
    ]
    if plan.get("gpus", 1) > 1:
        lines.append(
            f"on {plan['gpus']} such GPUs, one run per GPU, longest first: {plan['wall_hours']:.1f} hours of wall "
            f"time (the longest run alone takes {plan['longest_run_hours']:.1f})"
        )
    if plan["not_fitting"]:
        lines.append(f"predicted not to fit on {plan['gpu_name']}: {', '.join(plan['not_fitting'])}")
    return "\n".join(lines)
