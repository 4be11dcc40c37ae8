"""Generated samples, made once per checkpoint and cached in the run folder.

The original scripts re-built and re-loaded every network several times per batch and re-ran 1,000-step DDPM
sampling for every curve (spec §4.5, §6 #31). Here each (checkpoint, number of images, sampler, steps, seed,
purpose) is sampled once and stored as a uint8 array ``(N, 1, S, S)`` in ``<run>/eval/samples/``; every judge
and metric reads that array and maps it into the range it needs with :mod:`xrutils.data.ranges`. uint8 is what a
saved image holds anyway (the DDPM pipeline of the original returned PIL images), so nothing is lost that a
figure could show. A JSON sidecar next to each array records the family's value range and the sampler with its
number of steps.

A file name holds every part of the key plus a fingerprint of the checkpoint file (size and modification time),
so a retrained run never reuses stale samples. Files are written atomically. The model of a checkpoint is loaded
at most once per :meth:`SampleCache.get` call, and only when some requested file is missing. Processes that need
the same checkpoint's samples at once (studies run in parallel by ``make -j``) take turns through an exclusive lock
on ``<run>/eval/samples/e<epoch>.lock``: the first generates, the others then read its files instead of sampling
the same images again.

All randomness comes from a private generator derived from the run seed and the purpose
(:func:`xrutils.seeding.make_generator`); the same generator seed is used at every epoch of a run (common random
numbers: epoch-to-epoch differences then come from the weights, not from the noise).

Two quirks of the original protocol change how samples are drawn (:class:`~xrutils.evaluators.judge.Quirks`), and
have files of their own: ``generator_train_mode`` draws the GAN's samples with its generator in train mode
(BatchNorm statistics of each batch), ``seeded_ddpm`` the DDPM's with the full ancestral chain from a CPU generator
seeded with 0 at every epoch (``DDPMPipeline(generator=torch.manual_seed(0))``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xrutils.atomic import atomic_path, atomic_write_text
from xrutils.config import EvalConfig
from xrutils.data.ranges import to_uint8
from xrutils.runs import CheckpointError, RunDir
from xrutils.seeding import make_generator

EVAL_PURPOSE = (
    "eval"  # the per-checkpoint sample set shared by the judge, the classifier score and the metrics
)
CLASSIFIER_PURPOSE = "classifier"  # the final-epoch samples the classifier is trained on (never scored)

# The sampler each family uses when it is evaluated (the DDPM's is configurable: eval.sampler / eval.sampler_steps).
NATIVE_SAMPLERS = {"gan": "generator", "vae": "prior", "pixelcnn": "autoregressive"}


@dataclass(frozen=True)
class SamplerSpec:
    """How a family is sampled for evaluation; ``name`` and ``steps`` are recorded in every result."""

    name: str
    steps: int | None = None
    options: dict[str, Any] = field(default_factory=dict)  # keyword options of model.sample
    train_mode: bool = False  # the GAN generator in train mode (original protocol: generator_train_mode)
    fixed_seed: int | None = None  # every epoch from a CPU generator seeded with this (original: seeded_ddpm)
    precision: str = "fp32"  # eval.precision: bf16 autocast on CUDA (a CPU samples in fp32 whatever it says)

    @property
    def tag(self) -> str:
        tag = self.name if self.steps is None else f"{self.name}{self.steps}"
        if self.train_mode:
            tag += "-trainmode"
        if self.fixed_seed is not None:
            tag += f"-fixedseed{self.fixed_seed}"
        if self.precision != "fp32":
            tag += f"-{self.precision}"
        return tag

    def draw(self, model: Any, n: int, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        """``n`` samples of ``model`` this way, as uint8 on the CPU (:func:`generate_uint8`)."""
        return generate_uint8(
            model,
            n,
            generator=generator,
            batch_size=batch_size,
            options=self.options,
            train_mode=self.train_mode,
            precision=self.precision,
        )


def sampler_spec(
    family: str, eval_cfg: EvalConfig, timesteps: int | None = None, quirks: Any = None
) -> SamplerSpec:
    """The evaluation sampler of ``family``: DDPM follows ``eval.sampler`` (DDIM with ``eval.sampler_steps``, or the
    full ancestral chain of ``timesteps`` steps, the model's training schedule); the other families have one
    natural sampler and take no options. ``quirks`` (a :class:`~xrutils.evaluators.judge.Quirks`) may ask for the
    original protocol's GAN in train mode or its seeded full-chain DDPM."""
    if family == "gan" and quirks is not None and quirks.generator_train_mode:
        return SamplerSpec("generator", train_mode=True)
    if family == "ddpm" and quirks is not None and quirks.seeded_ddpm:
        options: dict[str, Any] = {"sampler": "ddpm", **({"steps": timesteps} if timesteps else {})}
        return SamplerSpec("ddpm", timesteps, options, fixed_seed=0)
    precision = eval_cfg.precision
    if family != "ddpm":
        return SamplerSpec(NATIVE_SAMPLERS.get(family, "native"), precision=precision)
    if eval_cfg.sampler == "ddim":
        return SamplerSpec(
            "ddim",
            eval_cfg.sampler_steps,
            {"sampler": "ddim", "steps": eval_cfg.sampler_steps},
            precision=precision,
        )
    options: dict[str, Any] = {"sampler": "ddpm"}
    if timesteps:
        options["steps"] = timesteps
    return SamplerSpec("ddpm", timesteps, options, precision=precision)


def sample_train_mode(model: Any, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` GAN samples with the generator in train mode, as every original script drew them (spec §6 #27):
    BatchNorm normalises the batch by its own statistics. The running statistics are restored afterwards (the
    original re-loaded the checkpoint at every epoch), and nothing is differentiated."""
    from xrutils.evaluators.judge import judging_mode
    from xrutils.models.layers import randn

    with judging_mode(model.generator, True):
        return model.generator(randn((n, model.cfg.nz, 1, 1), generator, model.device)).float()


def applied_precision(precision: str, device: torch.device) -> str:
    """The precision samples are really drawn in: ``eval.precision`` on CUDA, fp32 on any other device."""
    return "bf16" if precision == "bf16" and device.type == "cuda" else "fp32"


def generate_uint8(
    model: Any,
    n: int,
    *,
    generator: torch.Generator,
    batch_size: int,
    options: dict[str, Any],
    train_mode: bool = False,
    precision: str = "fp32",
) -> torch.Tensor:
    """``n`` samples of ``model`` as uint8 ``(n, 1, S, S)`` on the CPU, drawn in batches from ``generator``
    (``train_mode``: the GAN's generator in train mode, :func:`sample_train_mode`; ``precision`` "bf16": under bf16
    autocast when the model is on CUDA)."""
    out = []
    done = 0
    half = applied_precision(precision, model.device) == "bf16"
    with torch.autocast("cuda", dtype=torch.bfloat16) if half else contextlib.nullcontext():
        while done < n:
            b = min(batch_size, n - done)
            if train_mode:
                x = sample_train_mode(model, b, generator)
            else:
                x = model.sample(b, generator=generator, **options)
            if x.ndim != 4 or x.shape[0] != b or x.shape[1] != 1:
                raise ValueError(
                    f"{type(model).__name__}.sample({b}) returned shape {tuple(x.shape)}; expected ({b}, 1, S, S)"
                )
            out.append(to_uint8(x.float(), model.value_range).cpu())
            done += b
    return torch.cat(out)


class SampleCache:
    """The sample arrays of one run, keyed by epoch, n, sampler, steps, seed and purpose.

    ``load_model(epoch)`` returns the model of a checkpoint (``xrutils.train.load_model`` by default); it is called
    only on a cache miss.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        family: str,
        seed: int,
        image_size: int,
        eval_cfg: EvalConfig,
        timesteps: int | None = None,
        device: str | torch.device = "cpu",
        load_model: Callable[[int], Any] | None = None,
        quirks: Any = None,
    ):
        self.run = RunDir(run_dir)
        self.family = family
        self.seed = seed
        self.image_size = image_size
        self.eval_cfg = eval_cfg
        self.device = torch.device(device)
        self.load_model = load_model or self._default_loader
        self.spec = sampler_spec(family, eval_cfg, timesteps, quirks)
        self.value_range: tuple[float, float] | None = None  # the family's output range, known after get()
        self.generated = 0  # images generated (not read from the cache) by this object: for tests and logs

    @classmethod
    def for_run(cls, run_dir: str | Path, eval_cfg: EvalConfig | None = None, **kwargs: Any) -> SampleCache:
        """The cache of a run folder, its family, seed, size and DDPM schedule read from ``config.json``
        (``eval_cfg``: default the run's own evaluation settings)."""
        cfg = RunDir(run_dir).read_config()
        return cls(
            run_dir,
            family=cfg.family,
            seed=cfg.seed,
            image_size=cfg.data.image_size,
            eval_cfg=eval_cfg or cfg.eval,
            timesteps=getattr(cfg.model, "timesteps", None),
            **kwargs,
        )

    def _default_loader(self, epoch: int) -> Any:
        from xrutils.checkpoints import load_model

        return load_model(self.run.path, epoch, device=self.device)[1]

    @property
    def dir(self) -> Path:
        return self.run.eval_dir / "samples"

    def path(self, epoch: int, n: int, purpose: str) -> Path:
        fingerprint = self.run.checkpoint_fingerprint(epoch)  # FileNotFoundError naming the epochs on disk
        seed = self.seed if self.spec.fixed_seed is None else "-"  # a fixed seed is in the tag
        name = f"e{epoch:03d}_n{n}_{self.spec.tag}_seed{seed}_{purpose}_{fingerprint}.npy"
        return self.dir / name

    def _read(self, path: Path, n: int) -> torch.Tensor:
        meta = json.loads(path.with_suffix(".json").read_text())
        self.value_range = tuple(meta["value_range"])
        arr = np.load(path)
        want = (n, 1, self.image_size, self.image_size)
        if arr.dtype != np.uint8 or arr.shape != want:
            raise ValueError(
                f"{path}: cached samples have dtype {arr.dtype} and shape {arr.shape}; expected "
                f"uint8 {want}. Delete the file to regenerate it."
            )
        return torch.from_numpy(arr)

    @contextlib.contextmanager
    def _locked(self, epoch: int) -> Iterator[None]:
        """Hold the exclusive cross-process lock of one checkpoint's samples (released when the process dies)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / f"e{epoch:03d}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _split(self, epoch: int, requests: dict[str, int], out: dict[str, torch.Tensor]) -> list:
        """Read the cached requests into ``out``; return the missing ones as (purpose, n, path)."""
        missing = []
        for purpose, n in requests.items():
            if purpose in out:
                continue
            p = self.path(epoch, n, purpose)
            if p.exists() and p.with_suffix(".json").exists():
                out[purpose] = self._read(p, n)
            else:
                missing.append((purpose, n, p))
        return missing

    def get(self, epoch: int, requests: dict[str, int]) -> dict[str, torch.Tensor]:
        """``{purpose: n}`` -> ``{purpose: uint8 (n, 1, S, S)}``, generating (and caching) only what is missing."""
        for purpose, n in requests.items():
            if n < 1:
                raise ValueError(
                    f"sample request {purpose!r} for epoch {epoch} asks for {n} images; expected >= 1"
                )
        out: dict[str, torch.Tensor] = {}
        if not self._split(epoch, requests, out):
            return out
        with self._locked(epoch):
            missing = self._split(epoch, requests, out)  # another process may have made them meanwhile
            if missing:
                self._generate(epoch, missing, out)
        return out

    def _generate(self, epoch: int, missing: list, out: dict[str, torch.Tensor]) -> None:
        record = self.run.dropped_record(epoch)
        if record is not None:  # nothing can draw these any more: say what is there and what was asked
            asked = ", ".join(f"{purpose} n={n}" for purpose, n, _ in missing)
            raise CheckpointError(
                f"{self.run.path}: epoch {epoch} keeps no weights (train.keep_weights={record.get('policy')!r}); "
                f"its evaluation samples on disk are {record.get('samples') or '(none)'}, but this evaluation asks "
                f"for {asked} with sampler {self.spec.tag}. Evaluate "
                f"with the run's own eval settings (its config.json), or retrain with train.keep_weights=all"
            )
        model = self.load_model(epoch)
        spec = self.spec
        if model.image_size != self.image_size:
            raise ValueError(
                f"{self.run.path} epoch {epoch}: model image size {model.image_size} differs from "
                f"the config's {self.image_size}"
            )
        for purpose, n, p in missing:
            if spec.fixed_seed is not None:  # the original's torch.manual_seed(0): a CPU generator
                g = torch.Generator().manual_seed(spec.fixed_seed)
            else:
                g = make_generator(self.seed, f"eval/{purpose}", device=model.device)
            x = spec.draw(model, n, g, self.eval_cfg.sampling_batch)
            self.generated += n
            self.value_range = tuple(model.value_range)
            meta = {
                "epoch": epoch,
                "n": n,
                "purpose": purpose,
                "seed": self.seed,
                "sampler": spec.name,
                "steps": spec.steps,
                "train_mode": spec.train_mode,
                "fixed_seed": spec.fixed_seed,
                "precision": applied_precision(spec.precision, model.device),
                "value_range": list(self.value_range),
            }
            # the sidecar first: a sample file without its sidecar counts as missing
            atomic_write_text(p.with_suffix(".json"), json.dumps(meta) + "\n")
            with atomic_path(p) as tmp, open(tmp, "wb") as f:
                np.save(f, x.numpy())
            out[purpose] = x


def epoch_requests(eval_cfg: EvalConfig, *, last: bool = False) -> dict[str, int]:
    """The samples an evaluation draws from one checkpoint, ``{purpose: n}``: ``eval.n_fake`` for the judge, the
    classifier score and the FD curve; ``last`` (the final epoch of an evaluation with metrics) at least
    ``eval.n_metric``. The classifier's training samples come on top (evaluators.steps.collect_samples)."""
    return {EVAL_PURPOSE: max(eval_cfg.n_fake, eval_cfg.n_metric) if last else eval_cfg.n_fake}


def checkpoint_samples(
    run_dir: str | Path, epoch: int, *, model: Any = None, device: str | torch.device = "cpu"
) -> list[str]:
    """Draw into a run's sample cache what an evaluation with the run's own settings (``config.json``'s eval
    section) asks of a checkpoint that is not its last (:func:`epoch_requests`), unless it is there already;
    return the file names. ``model``: the live model of ``epoch`` (the training loop, which then drops the
    checkpoint's weights: ``train.keep_weights="sampled"``), sampled in eval mode, with the global RNG untouched
    and the model's train/eval mode restored; else the checkpoint is loaded on ``device`` when something is
    missing."""
    cache = SampleCache.for_run(run_dir, device=device)
    if model is not None:
        was_training = model.training

        def live(e: int) -> Any:
            if e != epoch:
                raise ValueError(f"{run_dir}: the live model is epoch {epoch}'s, not epoch {e}'s")
            return model.eval()

        cache.load_model = live
        cache.device = model.device
    requests = epoch_requests(cache.eval_cfg)
    devices = [model.device] if model is not None and model.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            cache.get(epoch, requests)
    finally:
        if model is not None:
            model.train(was_training)
    return [cache.path(epoch, n, purpose).name for purpose, n in requests.items()]
