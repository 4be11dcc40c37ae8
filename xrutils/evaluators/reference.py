"""The held-out real images every judge and metric compares against: a seeded sample of whole test patients
(:func:`held_out_sample`), loaded once per data config and split (:class:`Reals`), with the patient of each image for
the cluster bootstraps; and which data defines "real" at each image size (:func:`reference_data`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from xrutils.config import DataConfig
from xrutils.errors import InputError
from xrutils.evaluators.judge import Judge
from xrutils.evaluators.scored import ScoredRun

HELD_OUT_SEED = 20_260  # the seed of the held-out patient sample (one sample for every run, judge and metric)


def held_out_sample(patient_ids: np.ndarray, n: int, seed: int = HELD_OUT_SEED) -> np.ndarray:
    """Indices of ``n`` held-out images drawn by patient: patients in a seeded random order, each with all of its
    images, until ``n`` images are reached (the last patient's images cut at ``n``); 0 or more than there are =
    every image. A slice of the first names would come from a handful of patients (the first 1,024 NIH test
    images are 64 of its 2,797 test patients)."""
    ids = np.asarray(patient_ids)
    if n <= 0 or n >= ids.size:
        return np.arange(ids.size)
    patients, codes = np.unique(ids, return_inverse=True)
    rank_of = np.empty(patients.size, dtype=np.int64)
    rank_of[np.random.default_rng(seed).permutation(patients.size)] = np.arange(patients.size)
    return np.argsort(rank_of[codes], kind="stable")[
        :n
    ]  # by patient rank, each patient's images in name order


class Reals:
    """Real images (and their patients) per (DataConfig, split), loaded once. The held-out ``test`` images are a
    seeded sample of whole patients (:func:`held_out_sample`); every bootstrap over them resamples patients."""

    def __init__(self, progress: bool):
        self._memo: dict[tuple[DataConfig, str, int], tuple[torch.Tensor, np.ndarray]] = {}
        self.progress = progress

    def _load(self, data_cfg: DataConfig, split: str, n: int) -> tuple[torch.Tensor, np.ndarray]:
        from xrutils.data import load_images

        cfg = replace(data_cfg, hflip=False)
        if split == "test":
            cfg = replace(cfg, max_images=0)  # the whole split, then a sample of patients
        key = (cfg, split, n if split == "test" else 0)
        if key not in self._memo:
            found = load_images(cfg, split=split, progress=self.progress)
            images, patients = found.images, found.patient_ids.numpy()
            if images.dtype != torch.uint8 or images.ndim != 4:
                raise ValueError(
                    f"load_images returned {images.dtype} {tuple(images.shape)}; expected uint8 (N, 1, S, S)"
                )
            if images.shape[0] == 0:
                raise InputError(f"no real images in split {split!r} of data source {cfg.source!r}")
            if (patients < 0).any():  # a source without patients (ChestMNIST): each image its own patient
                patients = np.where(patients < 0, -1 - np.arange(patients.size), patients)
            if split == "test":
                keep = held_out_sample(patients, n)
                images, patients = images[torch.from_numpy(keep)], patients[keep]
            self._memo[key] = (images, patients)
        return self._memo[key]

    def get(self, data_cfg: DataConfig, split: str, n: int = 0) -> torch.Tensor:
        return self._load(data_cfg, split, n)[0]

    def patients(self, data_cfg: DataConfig, split: str, n: int = 0) -> np.ndarray:
        """The patient of each image :meth:`get` returns (the clusters of a cluster bootstrap)."""
        return self._load(data_cfg, split, n)[1]

    def counts(self, data_cfg: DataConfig, split: str, n: int = 0) -> dict[str, int]:
        ids = self.patients(data_cfg, split, n)
        return {"n_real": int(ids.size), "n_real_patients": int(np.unique(ids).size)}


def reference_data(runs: list[ScoredRun], judges: dict[int, Judge]) -> dict[int, DataConfig]:
    """Per image size, the data whose real images define 'real': the judge's, else the first run's."""
    ref: dict[int, DataConfig] = {}
    for run in runs:
        if run.size in judges and judges[run.size].data_cfg is not None:
            ref.setdefault(run.size, judges[run.size].data_cfg)
        ref.setdefault(run.size, run.cfg.data)
    for run in runs:
        r, d = ref[run.size], run.cfg.data
        if (r.source, r.root, r.phantom_n, r.phantom_seed, r.chestmnist_path) != (
            d.source,
            d.root,
            d.phantom_n,
            d.phantom_seed,
            d.chestmnist_path,
        ):
            raise InputError(
                f"run {run.name} was trained on data source={d.source!r} root={d.root!r} "
                f"phantom_n={d.phantom_n}, but the reference real images at {run.size}x{run.size} "
                f"come from source={r.source!r} root={r.root!r} phantom_n={r.phantom_n}; "
                "compare runs trained on the same data"
            )
    return ref
