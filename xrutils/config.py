"""Typed, frozen run configuration.

A run is fully described by one :class:`RunConfig`: the family and preset it came from, the profile that scaled
it, the seed, and four sections (data, model, train, eval). Every section is a frozen dataclass validated in
``__post_init__``; the model section is the family's own dataclass (``GANConfig``, ``VAEConfig``, ...), declared
next to its network in ``xrutils/models``.

Building a config (:func:`xrutils.registry.build_config`, which knows the families) applies, in order:

1. the family's defaults (its model dataclass and its ``defaults`` overrides),
2. the preset's dotted overrides (thesis values; ``asrun`` presets reproduce the original code),
3. the profile (``thesis`` = as given, ``demo`` = CPU-sized, ``smoke`` = a few steps): the one profile table,
   :mod:`xrutils.profiles` (a generic part, then each family's own),
4. the user's dotted overrides, last, literally.

Overrides are ``{"train.lr": 1e-5, "model.hidden": 128, "seed": 3}``; unknown keys and wrong types raise
:class:`ConfigError` naming the key and what is allowed. Nothing below the config reads the profile name.

This module imports no family: the registry tells it each family's model section (:func:`register_model_section`)
when it registers the family, and ``import xrutils`` imports the registry, so the sections are known before any
config is read.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from xrutils.errors import InputError


class ConfigError(InputError):
    """A configuration value or key is invalid; the message names the key and what is allowed."""


def _check_choice(section: str, name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{section}.{name}={value!r} is not allowed; expected one of {list(allowed)}")


def _check_positive(section: str, name: str, value: float, *, zero_ok: bool = False) -> None:
    if value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ConfigError(f"{section}.{name}={value!r} is invalid; expected a number {bound}")


def validate_literals(obj: Any, section: str) -> None:
    """Check every ``Literal[...]`` field of a dataclass instance against its allowed values."""
    hints = get_type_hints(type(obj))
    for f in fields(obj):
        hint = hints[f.name]
        if get_origin(hint) is Literal:
            _check_choice(section, f.name, getattr(obj, f.name), get_args(hint))


# ----------------------------------------------------------------------------------------------------------------
# sections


@dataclass(frozen=True)
class DataConfig:
    """Where the training images come from and how they are prepared."""

    source: Literal["phantom", "nih", "chestmnist"] = "phantom"  # phantom: built-in synthetic X-rays
    root: str = ""  # NIH root folder; "" means $XRUTILS_NIH_ROOT (source=nih) or data_home()/phantom_v<V>_n<N>_s<seed>
    image_size: int = 64  # square side in pixels; the thesis uses 32, 64 and 128
    split: Literal["train_val", "test", "all"] = "train_val"  # the thesis trains on train_val_list.txt only
    max_images: int = 0  # 0 = every image of the split; >0 keeps the first N (sorted by name) for small runs
    hflip: bool = False  # random horizontal flip (the original used it for PixelCNN and DDPM)
    resize: Literal["bilinear-antialias"] = "bilinear-antialias"  # torchvision Resize default, as the thesis
    skip_bad: bool = False  # count and skip undecodable images instead of raising
    phantom_n: int = 2000  # images in the generated phantom dataset (source=phantom)
    phantom_seed: int = 0  # seed of the phantom generator
    chestmnist_path: str = ""  # a local MedMNIST+ chestmnist_<size>.npz (source=chestmnist)
    # keep only the images of one class (a generator per class for the downstream study): a finding in the NIH
    # vocabulary ("Cardiomegaly", ...), "No Finding", or "Any Finding" (at least one finding); "" = every image
    finding: str = ""

    def __post_init__(self) -> None:
        validate_literals(self, "data")
        _check_choice("data", "image_size", self.image_size, (16, 28, 32, 64, 128, 224, 256))
        _check_positive("data", "max_images", self.max_images, zero_ok=True)
        _check_positive("data", "phantom_n", self.phantom_n)


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation loop, shared by every family."""

    epochs: int = 50  # the thesis trains 50 epochs (PixelCNN: 25 in the text)
    batch_size: int = 128
    lr: float = 1e-4
    steps_per_epoch: int = 0  # 0 = a full pass over the data; >0 caps each epoch (smoke profile)
    sample_every: int = (
        1  # epochs between fixed-noise sample grids (the first and last epochs always get one)
    )
    checkpoint_every: int = (
        1  # epochs between checkpoints, plus the first and last (the evaluators score each)
    )
    n_grid: int = 64  # images in each fixed-noise sample grid
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = CUDA when present, else CPU
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"  # fp16/bf16 autocast applies on CUDA only
    grad_clip: float = 0.0  # global grad-norm clipping; 0 = off (the DDPM uses 1.0)
    warmup_steps: int = 0  # linear LR warm-up steps (the DDPM uses 500 with a cosine decay)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    log_every: int = 50  # steps between progress-bar updates of the loss
    # Which checkpoints keep the optimiser, scheduler, scaler and RNG states. "last": only the newest (enough to
    # resume; older epochs keep the weights the evaluators score, ~3x smaller for Adam); "all": every checkpoint.
    keep_training_state: Literal["last", "all"] = "last"
    # Which checkpoints keep their weights once a newer one is on disk (the newest always keeps everything).
    # "all": every checkpointed epoch (any sampler can draw from any epoch later). "sampled": each checkpoint's
    # evaluation samples (cfg.eval: eval.n_fake images with the evaluation sampler, xrutils.evaluators.samples) are
    # drawn by the loop as it writes it, and its weights are dropped once a newer checkpoint is on disk, leaving a
    # record (checkpoints/epoch_NNN.dropped.json) under which the evaluators find those samples; about 1/E of the
    # disk of "all" for E checkpoints. "last": older weights are dropped with nothing drawn (runs nobody scores
    # per epoch). The thesis profile's setting per run is in xrutils.profiles.KEEP_WEIGHTS.
    keep_weights: Literal["all", "sampled", "last"] = "all"
    # Images per forward/backward pass; the gradients of a batch's micro-batches are summed before the one optimiser
    # step, so the step is the batch's (exact where no BatchNorm is involved: VAE, DDPM; the PixelCNN's BatchNorm
    # sees each micro-batch's statistics, docs/DISCREPANCIES.md). 0 = the whole batch, or on a GPU what the plan
    # chooses to fit its memory (xrutils.plan.choose_measures).
    micro_batch: int = 0
    # Throughput on a GPU (ignored on a CPU): TF32 tensor cores for fp32 matmuls and convolutions (a precision
    # change, docs/DISCREPANCIES.md), cuDNN's autotuner (off when deterministic), channels_last activations. On any
    # device: torch.compile of each network (off by default: compiling takes tens of seconds to minutes a run).
    tf32: bool = True
    deterministic: bool = False
    channels_last: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        validate_literals(self, "train")
        _check_positive("train", "micro_batch", self.micro_batch, zero_ok=True)
        if self.micro_batch and self.batch_size % self.micro_batch:
            raise ConfigError(
                f"train.micro_batch={self.micro_batch} must divide train.batch_size={self.batch_size} "
                f"(each optimiser step sums the gradients of batch_size / micro_batch equal passes)"
            )
        _check_positive("train", "epochs", self.epochs)
        _check_positive("train", "batch_size", self.batch_size)
        _check_positive("train", "lr", self.lr)
        _check_positive("train", "steps_per_epoch", self.steps_per_epoch, zero_ok=True)
        _check_positive("train", "sample_every", self.sample_every)
        _check_positive("train", "checkpoint_every", self.checkpoint_every)
        _check_positive("train", "n_grid", self.n_grid)
        _check_positive("train", "grad_clip", self.grad_clip, zero_ok=True)
        _check_positive("train", "warmup_steps", self.warmup_steps, zero_ok=True)


# the EvalConfig fields that decide how a run's samples are drawn (beside how many: n_fake, n_metric): each run is
# sampled with its own unless an evaluation overrides them (evaluators.scored.sampling_config), and a run that draws
# its evaluation samples as it trains keeps them fixed (train.LOOP_EVAL_KEYS)
SAMPLING_FIELDS = ("sampler", "sampler_steps", "precision", "sample_batch")


@dataclass(frozen=True)
class EvalConfig:
    """How the judges and metrics score a run (xrutils.evaluators)."""

    protocol: Literal["corrected", "original"] = "corrected"
    n_fake: int = 1024  # generated images per checkpoint for the judge's fake term (corrected protocol)
    n_real: int = 1024  # held-out real images (test split) for the real term; 0 = the whole split
    batch_size: int = 128
    n_boot: int = 1000  # bootstrap resamples for the 95% intervals
    # the DDPM's evaluation sampler: 1000-step DDPM, as the thesis judged it (issue 11 estimates 8-10 GPU-hours of
    # the thesis profile for it, not measured); "ddim" with sampler_steps is the fast option (demo and smoke use it)
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    sampler_steps: int = 50  # DDIM steps when sampler=ddim
    # autocast of the evaluation sampling on CUDA (ignored on a CPU); the DDPM's family default is bf16, whose samples
    # agree with fp32's far below the noise between two seeds (docs/DISCREPANCIES.md)
    precision: Literal["fp32", "bf16"] = "fp32"
    # images per sampling batch of the evaluation's samples (0 = eval.batch_size): a GPU samples a small network
    # faster in large batches (fewer kernel launches a sample); the images are as many and drawn the same way, each
    # from its own noise (another batch size gives other noise, not another distribution). The DDPM's family default
    # is 512 (docs/PERFORMANCE.md); the demo and smoke profiles keep eval.batch_size
    sample_batch: int = 0
    classifier_epochs: int = 10  # training epochs of the SimpleCNN classifier judge
    classifier_lr: float = 1e-3
    n_metric: int = 1024  # samples for Frechet distance / KID / precision-recall
    epochs: Literal["all", "last"] = "all"  # which checkpoints the per-epoch judges score
    feature_epochs: int = 5  # training epochs of the X-ray feature encoder behind FD / KID / precision-recall
    inception_weights: str = ""  # local Inception feature net (TorchScript or .pt2); "" = no ImageNet FID

    def __post_init__(self) -> None:
        validate_literals(self, "eval")
        for name in (
            "n_fake",
            "batch_size",
            "n_boot",
            "sampler_steps",
            "classifier_epochs",
            "n_metric",
            "feature_epochs",
        ):
            _check_positive("eval", name, getattr(self, name))
        _check_positive("eval", "n_real", self.n_real, zero_ok=True)
        _check_positive("eval", "sample_batch", self.sample_batch, zero_ok=True)

    @property
    def sampling_batch(self) -> int:
        """Images per batch when the evaluation samples a model: ``sample_batch``, or ``batch_size`` when 0."""
        return self.sample_batch or self.batch_size


@dataclass(frozen=True)
class Quirks:
    """The original judge protocol's deviations, each on its own switch (all off = the corrected protocol); what
    each one does is in :mod:`xrutils.evaluators.judge`. Plain data, so the command line can list them without
    importing torch."""

    train_mode_bn: bool = (
        False  # D in train mode: BatchNorm normalises each single-source batch by its own stats
    )
    single_batch: bool = (
        False  # one batch of eval.batch_size per point, a fresh random real batch every epoch
    )
    unmatched_range: bool = False  # fakes in the family's own range ([0, 1] for VAE/PixelCNN/DDPM)
    train_split_reals: bool = False  # real images from the training split instead of the held-out test split
    generator_train_mode: bool = False  # the GAN generator sampled in train mode (BatchNorm batch statistics)
    seeded_ddpm: bool = (
        False  # DDPM: full 1000-step chain from seed 0 at every epoch, and one fixed real batch
    )
    minmax_grids: bool = False  # sample grids min-max scaled (pictures only; no score changes)

    @classmethod
    def from_protocol(cls, protocol: str | Quirks) -> Quirks:
        if isinstance(protocol, Quirks):
            return protocol
        if protocol == "corrected":
            return cls()
        if protocol == "original":
            return cls(**dict.fromkeys(cls.__dataclass_fields__, True))
        raise ConfigError(
            f"protocol={protocol!r} is not allowed; expected 'corrected', 'original' or a Quirks"
        )

    @classmethod
    def original(cls, skip: list[str] | tuple[str, ...] = ()) -> Quirks:
        """The original protocol with the named quirks left off (e.g. ``["seeded_ddpm"]`` where a profile cannot
        afford 1000-step sampling); its :attr:`name` then says which."""
        cls.only(list(skip))  # names checked
        return cls(**{n: n not in skip for n in cls.__dataclass_fields__})

    @classmethod
    def only(cls, names: list[str]) -> Quirks:
        """The corrected protocol with the named quirks switched on, e.g. ``["unmatched_range"]``."""
        allowed = list(cls.__dataclass_fields__)
        for n in names:
            if n not in allowed:
                raise ConfigError(f"unknown quirk {n!r}; expected one of {allowed}")
        return cls(**{n: True for n in names})

    @property
    def name(self) -> str:
        """'corrected', 'original', 'original-except-<quirks off>' when most are on, or the quirks that are on
        joined by '+' (e.g. 'unmatched_range')."""
        on = [k for k, v in asdict(self).items() if v]
        off = [k for k, v in asdict(self).items() if not v]
        if not on:
            return "corrected"
        if not off:
            return "original"
        if len(off) < len(on):
            return "original-except-" + "+".join(off)
        return "+".join(on)

    @property
    def changes_scores(self) -> bool:
        """Whether any quirk that changes a score is on (``minmax_grids`` changes pictures only)."""
        return any(v for k, v in asdict(self).items() if k != "minmax_grids")

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)


@dataclass(frozen=True)
class ModelConfig:
    """Base of every family's model section. Every family has ``hidden`` (the thesis's "hidden dimensions")."""

    hidden: int = 64

    def __post_init__(self) -> None:
        validate_literals(self, "model")
        _check_positive("model", "hidden", self.hidden)


MODEL_SECTIONS: dict[
    str, type
] = {}  # family name -> its model dataclass, filled by xrutils.registry.register


def register_model_section(family: str, section: type) -> None:
    MODEL_SECTIONS[family] = section


def model_section(family: str) -> type:
    """The model dataclass of ``family``; an unknown name raises :class:`ConfigError` listing the known ones."""
    if family not in MODEL_SECTIONS:
        raise ConfigError(f"unknown family {family!r}; expected one of {list(MODEL_SECTIONS)}")
    return MODEL_SECTIONS[family]


@dataclass(frozen=True)
class RunConfig:
    family: str
    preset: str = "baseline"
    profile: Literal["smoke", "demo", "thesis"] = "thesis"
    seed: int = 0  # the thesis says seed 0 (the original code used 1, CUDA only)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        validate_literals(self, "run")
        section = model_section(self.family)
        if not isinstance(self.model, section):
            raise ConfigError(
                f"model section is a {type(self.model).__name__}; family {self.family!r} needs {section.__name__}"
            )

    # -- serialisation -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        if "family" not in d:
            raise ConfigError("config has no 'family' key")
        sections = {
            "data": DataConfig,
            "model": model_section(d["family"]),
            "train": TrainConfig,
            "eval": EvalConfig,
        }
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key in sections:
                kwargs[key] = _dataclass_from_dict(sections[key], value, key)
            elif key in {f.name for f in fields(cls)}:
                kwargs[key] = value
            else:
                raise ConfigError(
                    f"unknown config key {key!r}; expected one of {[f.name for f in fields(cls)]}"
                )
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        try:
            return cls.from_json(path.read_text())
        except (json.JSONDecodeError, ConfigError) as e:
            raise ConfigError(f"{path}: {e}") from e

    def override(self, overrides: dict[str, Any] | None) -> RunConfig:
        return apply_overrides(self, overrides or {})


def _dataclass_from_dict(cls: type, d: dict[str, Any], section: str) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(
            f"unknown key(s) {sorted(f'{section}.{k}' for k in unknown)}; {section} has {sorted(names)}"
        )
    hints = get_type_hints(cls)
    return cls(**{k: _coerce(f"{section}.{k}", v, hints[k]) for k, v in d.items()})


# ----------------------------------------------------------------------------------------------------------------
# dotted overrides


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a field's type hint, converting only what is lossless (int -> float, list -> tuple)."""
    origin = get_origin(hint)
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not allowed; expected one of {list(allowed)}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in get_args(hint):
            if arm is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(key, value, arm)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}={value!r} matches none of {hint}: {'; '.join(errors)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r} has the wrong type; expected a list")
        args = get_args(hint)
        item = args[0] if args else Any
        return tuple(_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value))
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} has the wrong type; expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}={value!r} has the wrong type; expected an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={value!r} has the wrong type; expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}={value!r} has the wrong type; expected a string")
        return value
    if isinstance(hint, type) and is_dataclass(hint):
        if not isinstance(value, hint):
            raise ConfigError(f"{key} must be a {hint.__name__}")
        return value
    return value


def parse_value(text: str) -> Any:
    """Parse a command-line ``key=value`` value: JSON when it parses (numbers, true/false, lists), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``["train.lr=1e-5", "model.hidden=32"]`` -> ``{"train.lr": 1e-5, "model.hidden": 32}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.lr=1e-5)")
        key, _, value = item.partition("=")
        out[key.strip()] = parse_value(value.strip())
    return out


def apply_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Return a copy of ``cfg`` with dotted ``overrides`` applied; unknown keys and wrong types raise."""
    top = {f.name: f for f in fields(RunConfig)}
    hints_top = get_type_hints(RunConfig)
    per_section: dict[str, dict[str, Any]] = {}
    scalars: dict[str, Any] = {}
    for key, value in overrides.items():
        head, dot, tail = key.partition(".")
        if head not in top:
            raise ConfigError(f"unknown override key {key!r}; top-level keys are {sorted(top)}")
        section = getattr(cfg, head)
        if not dot:
            if is_dataclass(section):
                raise ConfigError(
                    f"override key {key!r} names a section; use {head}.<field>, one of "
                    f"{sorted(f.name for f in fields(section))}"
                )
            if head == "family":
                raise ConfigError("the family of a config cannot be overridden; build a new config instead")
            scalars[head] = _coerce(key, value, hints_top[head])
            continue
        if not is_dataclass(section) or "." in tail:
            raise ConfigError(f"unknown override key {key!r}")
        names = {f.name for f in fields(section)}
        if tail not in names:
            raise ConfigError(f"unknown override key {key!r}; {head} has {sorted(names)}")
        hint = get_type_hints(type(section))[tail]
        per_section.setdefault(head, {})[tail] = _coerce(key, value, hint)
    changes: dict[str, Any] = dict(scalars)
    for head, kv in per_section.items():
        changes[head] = replace(getattr(cfg, head), **kv)
    return replace(cfg, **changes) if changes else cfg


# ----------------------------------------------------------------------------------------------------------------
# profiles

PROFILE_NAMES = ("smoke", "demo", "thesis")
