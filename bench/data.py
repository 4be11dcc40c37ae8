"""Data-pipeline throughput: the original per-item decode against the resized cache, on 1024² PNGs.

    .venv/bin/python bench/data.py [--n 120] [--size 64]

Images: the real NIH PNGs under $XRUTILS_NIH_ROOT when set (the shared sample has 40), else phantom X-rays
generated at 1024² into bench/out/ (so PNG decoding costs what it costs on NIH files).

1. original style (spec §1.2): ``DataLoader(batch_size=128, shuffle=True, num_workers=0)`` over a dataset that
   opens each PNG with PIL and applies ``Resize(size) -> Grayscale(1) -> ToTensor`` -- every epoch, one process;
2. cache build: decode + resize once (``xrutils.data.cache``), in one process and on every core, and how that
   scales: the every-core rate over (workers x the plain process of 1.), the issue-11 target being >= 0.8, and
   over (workers x the one-process build). Where the NIH root holds fewer than ``--n`` files (the shared sample
   has 40), each is decoded several times, so pool start-up does not dominate the timing;
3. cached epoch: ``xrutils.data.batches`` over the memory-mapped uint8 cache, tiled to the 86,524 images of the
   NIH train_val list so the epoch touches as much memory as a real one.

The last line is the ratio cached / original images per second (target: >= 1000).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from xrutils.data import batches, cached_images, index_split, make_phantom  # noqa: E402
from xrutils.data.cache import available_cores  # noqa: E402
from xrutils.paths import nih_root_from_env  # noqa: E402

OUT = REPO / "bench" / "out"
NIH_TRAIN_VAL = 86_524


class OriginalStyle(Dataset):
    """What ``LoadImages`` did: open the PNG, transform, return the tensor (no labels)."""

    def __init__(self, paths: list[Path], size: int):
        self.paths = paths
        self.tf = T.Compose([T.Resize(size), T.Grayscale(1), T.ToTensor()])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.tf(Image.open(self.paths[i]))


def source_images(n: int) -> tuple[str, list[str], list[Path]]:
    root = nih_root_from_env()
    if root is not None and root.is_dir():
        idx = index_split(root, "all")
        names, paths = idx.names[:n], idx.paths[:n]
        if (
            len(paths) < n
        ):  # a sample root (40 images): each file decoded several times, so n decodes are timed
            k = len(paths)
            names = [f"{names[i % k]}#{i // k}" for i in range(n)]
            paths = [paths[i % k] for i in range(n)]
            return (
                f"NIH ChestX-ray14 PNGs from {root} ({k} files, each decoded {n / k:.1f} times)",
                names,
                paths,
            )
        return f"NIH ChestX-ray14 PNGs from {root}", names, paths
    ph = OUT / f"phantom1024_n{n}"
    if not (ph / "Data_Entry_2017.csv").exists():
        shutil.rmtree(ph, ignore_errors=True)
        t0 = time.perf_counter()
        make_phantom(ph, n, seed=0, size=1024)
        print(f"generated {n} phantom PNGs at 1024² in {time.perf_counter() - t0:.1f} s", flush=True)
    idx = index_split(ph, "all")
    return f"phantom PNGs at 1024² in {ph}", idx.names, idx.paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--n",
        type=int,
        default=120,
        help="1024² PNGs to decode (a smaller NIH root's files are cycled through)",
    )
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    what, names, paths = source_images(args.n)
    with Image.open(paths[0]) as im:
        print(f"images: {len(paths)} {what} ({im.size[0]}x{im.size[1]}, mode {im.mode})")

    # 1. original style: decode + resize per item, every epoch, one process
    loader = DataLoader(OriginalStyle(paths, args.size), batch_size=128, shuffle=True, num_workers=0)
    t0 = time.perf_counter()
    seen = sum(b.shape[0] for b in loader)
    orig = seen / (time.perf_counter() - t0)
    print(f"original pipeline : {orig:12.1f} images/s  (PIL open + Resize + Grayscale + ToTensor, 1 process)")

    # 2. cache build in one process, then on every core (fresh folders, so each really decodes)
    cache_dir = OUT / "cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    one = cached_images(names, paths, args.size, root=cache_dir / "one", progress=False, workers=1)
    one_rate = len(paths) / one.seconds
    print(f"cache build       : {one_rate:12.1f} images/s  (1 process)")
    res = cached_images(names, paths, args.size, root=cache_dir / "all", progress=False)
    rate = len(paths) / res.seconds
    print(
        f"cache build       : {rate:12.1f} images/s  ({res.workers} worker processes, "
        f"{available_cores()} cores available)"
    )
    print(
        f"cache build scaling: {rate / (res.workers * orig):.2f} x workers x the plain PIL process (target >= 0.8), "
        f"{rate / (res.workers * one_rate):.2f} x workers x the 1-process build"
    )

    # 3. cached epochs over the memory-mapped cache, tiled to the size of the NIH train_val list
    tiled_path = OUT / f"tiled_{args.size}.npy"
    tiled = np.lib.format.open_memmap(
        tiled_path, mode="w+", dtype=np.uint8, shape=(NIH_TRAIN_VAL, args.size, args.size)
    )
    reps = -(-NIH_TRAIN_VAL // len(res.images))
    tiled[:] = np.tile(np.asarray(res.images), (reps, 1, 1))[:NIH_TRAIN_VAL]
    tiled.flush()
    del tiled
    images = torch.from_numpy(np.load(tiled_path, mmap_mode="c")).unsqueeze(1)
    g = torch.Generator().manual_seed(0)
    for _ in batches(images, 128, value_range=(-1.0, 1.0), generator=g):  # warm the page cache
        pass
    t0 = time.perf_counter()
    seen = sum(b.shape[0] for b in batches(images, 128, value_range=(-1.0, 1.0), generator=g))
    cached = seen / (time.perf_counter() - t0)
    print(
        f"cached pipeline   : {cached:12.1f} images/s  (batches() over a memory-mapped uint8 cache of "
        f"{NIH_TRAIN_VAL} images)"
    )
    del images
    tiled_path.unlink()
    hours, build_min = 50 * NIH_TRAIN_VAL / orig / 3600, NIH_TRAIN_VAL / rate / 60
    print(
        f"50 epochs x {NIH_TRAIN_VAL} images: original {hours:.1f} h of data loading, cached "
        f"{50 * NIH_TRAIN_VAL / cached:.1f} s (+ one cache build: {build_min:.1f} min on these cores)"
    )
    print(f"ratio cached/original: {cached / orig:.0f}x")


if __name__ == "__main__":
    main()
