"""ChestMNIST (MedMNIST v2 / MedMNIST+; Yang et al., Scientific Data 2023) from a local ``.npz`` file.

ChestMNIST is derived from the same NIH ChestX-ray14 images, resized to 28² (``chestmnist.npz``) or, in MedMNIST+,
to 64², 128² or 224² (``chestmnist_64.npz`` ...). It is a real-data source for users without the 42 GB download.
Nothing here downloads: point ``data.chestmnist_path`` at a file you fetched yourself.

The file holds ``{train,val,test}_images`` uint8 (N, S, S) and ``{train,val,test}_labels`` uint8 (N, 14), the 14
findings in NIH order; "No Finding" (our 15th label) is set where no finding is. It carries no patient ids or
names (we return -1 and synthetic names). Split mapping: train_val = train + val, test = test, all = all three.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from xrutils.errors import DataError

SPLIT_PARTS = {"train_val": ("train", "val"), "test": ("test",), "all": ("train", "val", "test")}


def read_chestmnist(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images uint8 (N, S, S), labels uint8 (N, 15) and names of ``split`` from a MedMNIST chestmnist ``.npz``."""
    if split not in SPLIT_PARTS:
        raise DataError(f"split={split!r} is not allowed; expected one of {list(SPLIT_PARTS)}")
    if not str(path):
        raise FileNotFoundError(
            "data.chestmnist_path is empty; set it to a local chestmnist_<size>.npz "
            "(MedMNIST+, e.g. chestmnist_64.npz)"
        )
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: ChestMNIST file not found (expected a MedMNIST chestmnist_<size>.npz)"
        )
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from e
    with npz:
        need = [f"{p}_{k}" for p in SPLIT_PARTS[split] for k in ("images", "labels")]
        absent = [k for k in need if k not in npz.files]
        if absent:
            raise DataError(
                f"{path}: missing key(s) {absent}; found {sorted(npz.files)} "
                f"(a MedMNIST file has train/val/test _images and _labels)"
            )
        images, labels, names = [], [], []
        for part in SPLIT_PARTS[split]:
            try:
                x, y = npz[f"{part}_images"], npz[f"{part}_labels"]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # a damaged member
                raise DataError(f"{path}: cannot read {part}_images/_labels ({type(e).__name__}: {e})") from e
            if x.ndim == 4 and x.shape[-1] in (1, 3):  # (N, S, S, C): keep one channel (grey files have C=1)
                x = x[..., 0]
            if x.ndim != 3 or x.shape[1] != x.shape[2] or x.dtype != np.uint8:
                raise DataError(
                    f"{path}: {part}_images has shape {x.shape} dtype {x.dtype}; expected uint8 (N, S, S)"
                )
            if y.ndim != 2 or y.shape != (len(x), 14):
                raise DataError(f"{path}: {part}_labels has shape {y.shape}; expected ({len(x)}, 14)")
            images.append(x)
            labels.append(y.astype(np.uint8))
            names += [f"chestmnist_{part}_{i:06d}" for i in range(len(x))]
    images_np = np.concatenate(images)
    findings = np.concatenate(labels)
    no_finding = (findings.sum(axis=1) == 0).astype(np.uint8)[:, None]
    return images_np, np.concatenate([findings, no_finding], axis=1), names
