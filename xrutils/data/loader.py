"""The two calls the rest of the library uses: :func:`load_images` (an :class:`ImageSet` of cached uint8 images)
and :func:`batches` (one shuffled epoch of float batches in a model's value range).

The original code decoded and resized every 1024² PNG in every epoch through a ``DataLoader`` with no workers
(spec §1.2); here images are decoded once into the resized cache (:mod:`xrutils.data.cache`) and an epoch is a
random permutation over a memory-mapped uint8 array. The value range is converted only by
:mod:`xrutils.data.ranges`; flips are drawn from the caller's generator so epochs are reproducible.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from xrutils.config import DataConfig
from xrutils.data.cache import cached_images, resize_array
from xrutils.data.chestmnist import read_chestmnist
from xrutils.data.nih import LABELS, index_split
from xrutils.data.phantom import PHANTOM_INFO, ensure_phantom, phantom_root
from xrutils.data.ranges import Range, to_range
from xrutils.errors import DataError
from xrutils.log import get as _get_log
from xrutils.paths import NIH_ROOT_ENV, nih_root_from_env

SPLITS = ("train_val", "test", "all")


@dataclass
class ImageSet:
    """Images of one split, ready for training: uint8 (N, 1, S, S), multi-hot labels, patient ids."""

    images: torch.Tensor  # uint8 (N, 1, S, S); memory-mapped from the cache for NIH / phantom sources
    names: list[str]
    labels: torch.Tensor  # uint8 (N, 15), columns in LABELS order
    patient_ids: torch.Tensor  # int64 (N,); -1 where the source has none (ChestMNIST)
    source: str
    root: str
    split: str = ""
    missing: int = 0  # listed images that were not on disk
    skipped: list[str] = field(default_factory=list)  # undecodable images left out (data.skip_bad)
    cache: str = ""  # the cache folder the images are mapped from
    label_names: tuple[str, ...] = LABELS

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])


_log = _get_log("data")


def resolve_root(cfg: DataConfig) -> Path:
    """The folder in NIH layout that ``cfg`` reads (the phantom one is generated when missing)."""
    if cfg.source == "phantom":
        if not cfg.root:
            return ensure_phantom(
                phantom_root(cfg.phantom_n, cfg.phantom_seed), cfg.phantom_n, cfg.phantom_seed
            )
        # an explicit root must already hold a phantom: a typo must not become a new synthetic dataset, and an NIH
        # folder must not be trained on under the name "phantom"
        root = Path(cfg.root).expanduser()
        if (root / PHANTOM_INFO).is_file():
            return ensure_phantom(root, cfg.phantom_n, cfg.phantom_seed)
        if (root / "Data_Entry_2017.csv").is_file() or (root / "Data_Entry_2017_v2020.csv").is_file():
            raise DataError(
                f"data.root={cfg.root!r} holds an NIH dataset but data.source='phantom'; set data.source=nih "
                f"to train on it"
            )
        raise DataError(
            f"data.root={cfg.root!r} holds no phantom dataset (no {PHANTOM_INFO}); data.root names an NIH folder "
            f"(with data.source=nih) or a phantom made by `python -m xrutils data phantom`; leave it empty for "
            f"the built-in phantom"
        )
    if cfg.source == "nih":
        if cfg.root:
            return Path(cfg.root).expanduser()
        env = nih_root_from_env()
        if env is None:
            raise FileNotFoundError(
                f"data.source='nih' needs data.root or ${NIH_ROOT_ENV} set to an NIH "
                f"ChestX-ray14 folder (with Data_Entry_2017.csv)"
            )
        return env
    raise DataError(f"data.source={cfg.source!r} has no root folder")


ANY_FINDING = "Any Finding"


def finding_rows(labels: np.ndarray, finding: str) -> np.ndarray | None:
    """Row indices of the multi-hot ``labels`` (N, 15) that have ``finding`` (a LABELS name, or "Any Finding": not
    "No Finding"); None for "" (every row)."""
    if not finding:
        return None
    if finding == ANY_FINDING:
        return np.flatnonzero(labels[:, LABELS.index("No Finding")] == 0)
    if finding not in LABELS:
        raise DataError(
            f"data.finding={finding!r} is not a class; expected one of {[*LABELS, ANY_FINDING]} or '' (every image)"
        )
    return np.flatnonzero(labels[:, LABELS.index(finding)] == 1)


def load_images(cfg: DataConfig, split: str | None = None, *, progress: bool = True) -> ImageSet:
    """Load the images of ``split`` (default ``cfg.split``) at ``cfg.image_size`` as an :class:`ImageSet`.

    NIH and phantom sources go through the resized cache (built on first use, reused after); ChestMNIST is read
    from its ``.npz``. ``cfg.max_images`` > 0 keeps the first N images sorted by name.
    """
    split = split or cfg.split
    if split not in SPLITS:
        raise DataError(f"split={split!r} is not allowed; expected one of {list(SPLITS)}")
    if cfg.source == "chestmnist":
        return _only_finding(_load_chestmnist(cfg, split), cfg.finding)

    root = resolve_root(cfg)
    index = index_split(root, split, max_images=cfg.max_images)
    res = cached_images(
        index.names,
        index.paths,
        cfg.image_size,
        cfg.resize,
        missing=index.missing,
        skip_bad=cfg.skip_bad,
        progress=progress,
    )
    if res.skipped:
        _log.warning(
            "skipped %d undecodable image(s) (data.skip_bad), e.g. %s", len(res.skipped), res.skipped[:3]
        )
    kept = np.asarray(res.kept, dtype=np.int64)
    loaded = ImageSet(
        images=torch.from_numpy(res.images).unsqueeze(1),
        names=[index.names[i] for i in res.kept],
        labels=torch.from_numpy(index.labels[kept]),
        patient_ids=torch.from_numpy(index.patient_ids[kept]),
        source=cfg.source,
        root=str(root),
        split=split,
        missing=index.missing,
        skipped=res.skipped,
        cache=str(res.path),
    )
    return _only_finding(loaded, cfg.finding)


def _only_finding(s: ImageSet, finding: str) -> ImageSet:
    """The images of ``s`` that have ``finding`` (``data.finding``; "" keeps every image)."""
    rows = finding_rows(s.labels.numpy(), finding)
    if rows is None:
        return s
    if rows.size == 0:
        raise DataError(f"data.finding={finding!r}: no {s.split} image of {s.root} has it")
    idx = torch.from_numpy(rows)
    return dataclasses.replace(
        s,
        images=s.images[idx],
        names=[s.names[i] for i in rows],
        labels=s.labels[idx],
        patient_ids=s.patient_ids[idx],
    )


def native_resolution(cfg: DataConfig, split: str | None = None) -> int:
    """The side, in pixels, of the source images of ``cfg`` before any resizing (the smaller side of the first image
    of the split; ChestMNIST: its array size). A run whose ``data.image_size`` exceeds it trains on upsampled images
    (e.g. 128 px runs on the 64 px ``nih_small64`` copies), which the figures say."""
    split = split or cfg.split
    if cfg.source == "chestmnist":
        return int(read_chestmnist(cfg.chestmnist_path, split)[0].shape[-1])
    from PIL import Image

    index = index_split(resolve_root(cfg), split, max_images=1, verbose=False)
    with Image.open(index.paths[0]) as im:  # reads the header only
        return min(im.size)


def _load_chestmnist(cfg: DataConfig, split: str) -> ImageSet:
    images, labels, names = read_chestmnist(cfg.chestmnist_path, split)
    if cfg.max_images > 0:  # names are zero-padded per part, so sorting keeps test/train/val blocks in order
        order = np.argsort(np.asarray(names), kind="stable")[: cfg.max_images]
        images, labels, names = images[order], labels[order], [names[i] for i in order]
    images = resize_array(images, cfg.image_size, cfg.resize)
    return ImageSet(
        images=torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1),
        names=names,
        labels=torch.from_numpy(labels),
        patient_ids=torch.full((len(names),), -1, dtype=torch.int64),
        source="chestmnist",
        root=str(cfg.chestmnist_path),
        split=split,
    )


def batches(
    images_uint8: torch.Tensor,
    batch_size: int,
    *,
    value_range: Range,
    generator: torch.Generator,
    hflip: bool = False,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    device: str | torch.device = "cpu",
) -> Iterator[torch.Tensor]:
    """One shuffled epoch of float batches (B, 1, S, S) in ``value_range``.

    The permutation (and, with ``hflip``, one fair coin per image) is drawn from ``generator``, a CPU
    ``torch.Generator``. For distributed training every rank passes an identically seeded generator: the
    permutation is padded (by wrapping around) to a multiple of ``world_size`` and rank r takes every
    ``world_size``-th index from r, so all ranks see the same number of batches and together one epoch.
    """
    if (
        not isinstance(images_uint8, torch.Tensor)
        or images_uint8.dtype != torch.uint8
        or images_uint8.ndim != 4
    ):
        got = (
            f"{images_uint8.dtype} {tuple(images_uint8.shape)}"
            if isinstance(images_uint8, torch.Tensor)
            else type(images_uint8).__name__
        )
        raise TypeError(f"batches expects a uint8 tensor (N, C, H, W), got {got}")
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size} must be > 0")
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise TypeError(
            "batches needs a CPU torch.Generator (e.g. xrutils.seeding.make_generator(seed, 'data'))"
        )
    if not (0 <= rank < world_size):
        raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
    n = images_uint8.shape[0]
    if n == 0:
        raise ValueError("batches got an empty image tensor")
    perm = torch.randperm(n, generator=generator)
    pad = (-n) % world_size
    if pad:
        perm = torch.cat([perm, perm[:pad]])
    flips = torch.rand(len(perm), generator=generator) < 0.5 if hflip else None
    perm = perm[rank::world_size]
    if flips is not None:
        flips = flips[rank::world_size]
    device = torch.device(device)
    # images may live on the GPU already (the training loop puts them there when they fit): cut batches there; from
    # pinned host memory, each batch is gathered into pinned memory so its copy to the GPU runs asynchronously
    home = images_uint8.device
    pinned = home.type == "cpu" and device.type == "cuda" and images_uint8.is_pinned()
    perm = perm.to(home)
    if flips is not None:
        flips = flips.to(home)
    for start in range(0, len(perm), batch_size):
        idx = perm[start : start + batch_size]
        if drop_last and len(idx) < batch_size:
            break
        out = (
            torch.empty((len(idx), *images_uint8.shape[1:]), dtype=torch.uint8, pin_memory=True)
            if pinned
            else None
        )
        # (B, C, H, W) uint8 copy (4x faster than x[idx])
        x = torch.index_select(images_uint8, 0, idx, out=out)
        if flips is not None:
            f = flips[start : start + batch_size]
            x[f] = x[f].flip(-1)
        yield to_range(x.to(device, non_blocking=True), value_range)
