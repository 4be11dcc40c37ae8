"""Resized uint8 image cache: decode and resize every image once, then memory-map it in every run.

Decoding a 1024² NIH PNG costs ~25 ms; the original code did it for every image of every epoch (~30 h of decoding
for 50 epochs on 86,524 images). Here each (image list, size, resize method) is decoded once, in parallel on all
CPU cores, into ``<data_home>/cache/<size>px_<method>_<hash>/``:

```
images.npy      uint8 (N, S, S), row i = i-th kept image of the list (memory-mapped by readers)
manifest.json   {"version", "inputs_hash", "size", "method", "count", "created", "missing", "skipped", ...}
```

The key hashes every input file's name, byte size and modification time, so a changed, added or removed image
makes a new cache. Writes are atomic: the array is filled in a temporary file and renamed, and the manifest is
written last (itself via a temporary file), so a build killed at any moment leaves no cache that validates.

Resizing is exactly torchvision's ``Resize((S, S))`` of the PIL image (bilinear with antialiasing, its default),
i.e. what the thesis code applied on the fly.

Test hook: ``XRUTILS_CACHE_DELAY_S`` (seconds, float) makes every image decode sleep that long, so tests can kill
a build mid-way deterministically. Leave it unset otherwise.
"""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm  # text bars: a saved notebook shows their last state (widget bars need live widgets)

from xrutils.atomic import atomic_write_text, exclusive_lock, remove_stale_tmp, tmp_prefix
from xrutils.data.nih import BadImageError, decode_image
from xrutils.errors import DataError, DiskFullError, ensure_free_space, is_disk_full
from xrutils.paths import data_home

CACHE_VERSION = 1
RESIZE_METHODS = ("bilinear-antialias",)
DELAY_ENV = "XRUTILS_CACHE_DELAY_S"


def resize_gray(img: Image.Image, size: int, method: str = "bilinear-antialias") -> np.ndarray:
    """A mode-"L" PIL image -> uint8 (size, size), as torchvision ``Resize((size, size))`` does it."""
    if method not in RESIZE_METHODS:
        raise DataError(f"resize method {method!r} is not supported; expected one of {list(RESIZE_METHODS)}")
    # imported here: torchvision pulls in torch._dynamo (1.5 s), which every notebook would pay for at import
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    out = TF.resize(img, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)
    return np.asarray(out, dtype=np.uint8)


def resize_array(images: np.ndarray, size: int, method: str = "bilinear-antialias") -> np.ndarray:
    """uint8 (N, H, W) -> uint8 (N, size, size) through the same PIL path as :func:`resize_gray`."""
    if images.shape[1:] == (size, size):
        return images
    return np.stack([resize_gray(Image.fromarray(im, mode="L"), size, method) for im in images])


def cache_root() -> Path:
    return data_home() / "cache"


def available_cores() -> int:
    """CPU cores this process may use (respects affinity masks and container CPU sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        return os.cpu_count() or 1


def inputs_hash(names: Sequence[str], paths: Sequence[str | Path], size: int, method: str) -> str:
    """sha256 over (name, byte size, mtime) of every input file, the size and the resize method."""
    h = hashlib.sha256(f"xrutils-cache v{CACHE_VERSION}|size={size}|method={method}\n".encode())
    for name, path in zip(names, paths, strict=True):
        st = os.stat(path)
        h.update(f"{name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dataclass
class CacheResult:
    """A built or reused cache. ``images`` is a copy-on-write memory map of the kept images."""

    path: Path  # the cache folder
    images: np.ndarray  # uint8 (N, S, S)
    kept: list[int]  # positions (in the input list) of the rows of ``images``
    skipped: list[str]  # names of undecodable inputs (only when skip_bad)
    manifest: dict
    reused: bool
    seconds: float
    workers: int = 1
    missing: int = 0
    info: dict = field(default_factory=dict)


def _read_valid(folder: Path, key: str, size: int, method: str, n_inputs: int) -> dict | None:
    """The manifest of ``folder`` when it describes a complete cache for exactly these inputs, else None."""
    try:
        man = json.loads((folder / "manifest.json").read_text())
        ok = (
            man.get("version") == CACHE_VERSION
            and man.get("inputs_hash") == key
            and man.get("size") == size
            and man.get("method") == method
            and man.get("count") == n_inputs - len(man.get("skipped", []))
        )
        if not ok:
            return None
        arr = np.load(folder / "images.npy", mmap_mode="r")
        if arr.dtype != np.uint8 or arr.shape != (man["count"], size, size):
            return None
        return man
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---- worker side ----------------------------------------------------------------------------------------------


def _decode_resize(task: tuple[int, str, int, str]) -> tuple[int, np.ndarray | None, str]:
    i, path, size, method = task
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    if delay > 0:
        time.sleep(delay)
    try:
        return i, resize_gray(decode_image(path), size, method), ""
    except BadImageError as e:
        return i, None, str(e)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core already; nested threads would oversubscribe


# ---- build ----------------------------------------------------------------------------------------------------


def cached_images(
    names: Sequence[str],
    paths: Sequence[str | Path],
    size: int,
    method: str = "bilinear-antialias",
    *,
    missing: int = 0,
    skip_bad: bool = False,
    workers: int | None = None,
    progress: bool = True,
    root: str | Path | None = None,
) -> CacheResult:
    """Reuse or build the cache of ``paths`` resized to ``size``; returns it memory-mapped.

    ``workers``: decoding processes (default: every available core; <= 1 decodes in this process).
    ``skip_bad``: undecodable images are counted and left out instead of raising :class:`BadImageError`.
    ``missing``: listed-but-absent images of the caller's list, recorded in the manifest for reporting.
    """
    if method not in RESIZE_METHODS:
        raise DataError(f"resize method {method!r} is not supported; expected one of {list(RESIZE_METHODS)}")
    if len(names) != len(paths) or not names:
        raise DataError(
            f"cached_images needs equally long, non-empty names and paths (got {len(names)} and {len(paths)})"
        )
    t0 = time.perf_counter()
    key = inputs_hash(names, paths, size, method)
    folder = Path(root) if root is not None else cache_root()
    folder = folder / f"{size}px_{method}_{key[:20]}"
    workers = available_cores() if workers is None else max(1, int(workers))

    man = _read_valid(folder, key, size, method, len(names)) if folder.is_dir() else None
    reused = man is not None
    if man is None:
        folder.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(
            folder / ".lock"
        ):  # DDP ranks / parallel notebooks: one builds, the others wait and reuse
            man = _read_valid(folder, key, size, method, len(names))
            reused = man is not None
            if man is None:
                man = _build(folder, key, names, paths, size, method, missing, skip_bad, workers, progress)
    skipped = list(man.get("skipped", []))
    if skipped and not skip_bad:
        raise BadImageError(
            f"{len(skipped)} image(s) cannot be decoded, e.g. {skipped[:3]} (cache {folder}); "
            f"set data.skip_bad=true to train without them"
        )
    # copy-on-write map: torch accepts it without a read-only warning, and writes never reach the file
    images = np.load(folder / "images.npy", mmap_mode="c")
    bad = set(skipped)
    kept = [i for i, n in enumerate(names) if n not in bad]
    return CacheResult(
        path=folder,
        images=images,
        kept=kept,
        skipped=skipped,
        manifest=man,
        reused=reused,
        seconds=time.perf_counter() - t0,
        workers=1 if reused else min(workers, len(names)),
        missing=missing,
    )


def _allocated_memmap(path: Path, shape: tuple[int, int, int]) -> np.memmap:
    """A uint8 ``.npy`` memmap whose blocks are reserved on disk first: writing into a sparse file on a full disk
    kills the process with SIGBUS, while a reservation that does not fit fails here as a clear error."""
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    if hasattr(os, "posix_fallocate"):
        try:
            fd = os.open(path, os.O_RDWR)
            try:
                os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
            finally:
                os.close(fd)
        except OSError as e:
            if e.errno in (
                errno.EOPNOTSUPP,
                errno.EINVAL,
            ):  # a file system without fallocate: go on unreserved
                return arr
            del arr
            if is_disk_full(e):
                raise DiskFullError(path.parent / "images.npy", int(np.prod(shape))) from e
            raise
    return arr


def _build(
    folder: Path,
    key: str,
    names: Sequence[str],
    paths: Sequence[str | Path],
    size: int,
    method: str,
    missing: int,
    skip_bad: bool,
    workers: int,
    progress: bool,
) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").unlink(missing_ok=True)  # whatever is here is not valid for these inputs
    remove_stale_tmp(folder)  # a killed build leaves its array behind
    n = len(names)
    tmp = folder / f"{tmp_prefix('images.npy')}build.tmp"
    errors: dict[int, str] = {}
    ensure_free_space(folder / "images.npy", n * size * size)
    try:
        arr = _allocated_memmap(tmp, (n, size, size))
        tasks = [(i, str(p), size, method) for i, p in enumerate(paths)]
        bar = tqdm(total=n, desc=f"cache {n} images -> {size}px", unit="img", disable=not progress)
        procs = min(workers, n)
        if procs <= 1:
            results = map(_decode_resize, tasks)
            pool = None
        else:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            pool = ctx.Pool(procs, initializer=_worker_init)
            results = pool.imap_unordered(_decode_resize, tasks, chunksize=max(1, min(32, n // (procs * 8))))
        try:
            for i, img, err in results:
                if err:
                    if not skip_bad:
                        raise BadImageError(f"{err}; set data.skip_bad=true to train without such images")
                    errors[i] = err
                else:
                    arr[i] = img
                bar.update(1)
        finally:
            bar.close()
            if pool is not None:
                pool.terminate()
                pool.join()
        arr.flush()
        if errors:  # compact: drop the rows of skipped images (rare; a plain copy is fine)
            keep = np.array([i for i in range(n) if i not in errors], dtype=np.int64)
            compact = np.ascontiguousarray(arr[keep])
            del arr
            with tmp.open("wb") as f:
                np.save(f, compact)
        else:
            del arr
        os.replace(tmp, folder / "images.npy")
    finally:
        tmp.unlink(missing_ok=True)
    man = {
        "version": CACHE_VERSION,
        "inputs_hash": key,
        "size": size,
        "method": method,
        "count": n - len(errors),
        "inputs": n,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "missing": missing,
        "skipped": [names[i] for i in sorted(errors)],
        "errors": [errors[i] for i in sorted(errors)][:20],
        "first": names[0],
        "last": names[-1],
    }
    atomic_write_text(
        folder / "manifest.json", json.dumps(man, indent=2) + "\n"
    )  # last: marks the cache valid
    return man
