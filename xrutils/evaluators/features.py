"""Feature spaces for the distribution metrics: an X-ray encoder trained here, and an optional local Inception.

FID's ImageNet Inception network has never seen a chest X-ray, and its weights would have to be downloaded. The
default feature space is therefore :class:`XrayEncoder`, a small convolutional auto-encoder trained on the *real
training split* (the images every generative model was trained on; never on generated images), whose 64-d
bottleneck is the feature vector. It is trained once per (training images, image size, settings) and cached with
the features of every real split it has embedded, under ``<data home>/cache/eval_features/`` (git-ignored with the
other caches); a cache is keyed by a hash
of the images themselves, so a different dataset or subset can never reuse it.

An ImageNet-Inception FID is computed only when ``eval.inception_weights`` names a local TorchScript file (nothing
is ever downloaded). Contract of that file: a TorchScript module (or a ``torch.export`` program saved as ``.pt2``,
with a dynamic batch dimension) taking float32 ``(B, 3, 299, 299)`` images in [0, 1] and returning ``(B, D)``
features (or a tuple whose first element is). Gray images are repeated over the 3 channels
and resized bilinearly to 299.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xrutils.atomic import atomic_path, atomic_torch_save
from xrutils.data.ranges import GAN_RANGE, UNIT_RANGE, to_range
from xrutils.models.base import eval_mode
from xrutils.paths import data_home

FEATURE_DIM = 64
ENCODER_VERSION = 1  # bump when the architecture or training changes, so old caches are not reused
ENCODER_BATCH = 64
ENCODER_LR = 1e-3
ENCODER_MAX_STEPS = 4000  # caps training on very large splits (a few passes over NIH at most)


def images_hash(images_uint8: torch.Tensor) -> str:
    """A short content hash of a uint8 image tensor (shape included)."""
    h = hashlib.sha256(str(tuple(images_uint8.shape)).encode())
    h.update(np.ascontiguousarray(images_uint8.numpy()).tobytes())
    return h.hexdigest()[:16]


class XrayEncoder(nn.Module):
    """Auto-encoder for (B, 1, S, S) images in [-1, 1]; ``encode`` gives the (B, 64) feature vector."""

    def __init__(self, image_size: int, dim: int = FEATURE_DIM):
        super().__init__()
        self.image_size = image_size
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1),
            nn.LeakyReLU(0.2),  # (B, 32, S/2, S/2)
            nn.Conv2d(32, 64, 4, 2, 1),
            nn.LeakyReLU(0.2),  # (B, 64, S/4, S/4)
            nn.Conv2d(64, 128, 4, 2, 1),
            nn.LeakyReLU(0.2),  # (B, 128, S/8, S/8)
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),  # (B, 2048): keeps the coarse layout (lungs, heart, borders)
            nn.Linear(128 * 16, dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(dim, 128 * 16),
            nn.Unflatten(1, (128, 4, 4)),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(128, 64, 4, 2, 1),
            nn.LeakyReLU(0.2),  # (B, 64, 8, 8)
            nn.ConvTranspose2d(64, 32, 4, 2, 1),
            nn.LeakyReLU(0.2),  # (B, 32, 16, 16)
        )
        self.head = nn.Conv2d(32, 1, 3, 1, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.decoder(self.encode(x))
        h = F.interpolate(h, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return torch.tanh(self.head(h))


def train_encoder(
    train_uint8: torch.Tensor, *, epochs: int, seed: int = 0, device: str | torch.device = "cpu"
) -> XrayEncoder:
    """Fit the auto-encoder (MSE reconstruction, Adam) on real training images; returns it in eval mode."""
    if train_uint8.ndim != 4 or train_uint8.shape[1] != 1 or train_uint8.dtype != torch.uint8:
        raise ValueError(
            f"train_encoder expects uint8 images (N, 1, S, S), got {train_uint8.dtype} "
            f"{tuple(train_uint8.shape)}"
        )
    if train_uint8.shape[0] < 2:
        raise ValueError(f"train_encoder needs at least 2 real training images, got {train_uint8.shape[0]}")
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = XrayEncoder(train_uint8.shape[-1]).to(device)
    opt = torch.optim.Adam(enc.parameters(), lr=ENCODER_LR)
    n = train_uint8.shape[0]
    steps = 0
    enc.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, ENCODER_BATCH):
            x = to_range(train_uint8[perm[i : i + ENCODER_BATCH]], GAN_RANGE).to(device)
            loss = F.mse_loss(enc(x), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            if steps >= ENCODER_MAX_STEPS:
                break
        if steps >= ENCODER_MAX_STEPS:
            break
    return enc.eval()


class FeatureExtractor:
    """An encoder plus a per-split feature cache. ``features(uint8)`` -> float64 ``(N, 64)`` numpy array."""

    name = f"xray-ae-v{ENCODER_VERSION}-{FEATURE_DIM}d"

    def __init__(
        self,
        encoder: XrayEncoder,
        cache_dir: Path | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 256,
    ):
        self.encoder = encoder.to(device).eval()
        self.cache_dir = cache_dir
        self.device = torch.device(device)
        self.batch_size = batch_size

    @property
    def image_size(self) -> int:
        return self.encoder.image_size

    def features(self, images_uint8: torch.Tensor) -> np.ndarray:
        if images_uint8.dtype != torch.uint8 or images_uint8.shape[-1] != self.image_size:
            raise ValueError(
                f"feature extractor for {self.image_size}x{self.image_size} got {images_uint8.dtype} "
                f"images of shape {tuple(images_uint8.shape)}"
            )
        out = []
        with eval_mode(self.encoder):
            for i in range(0, images_uint8.shape[0], self.batch_size):
                x = to_range(images_uint8[i : i + self.batch_size], GAN_RANGE).to(self.device)
                out.append(self.encoder.encode(x).double().cpu())
        return torch.cat(out).numpy()

    def split_features(self, images_uint8: torch.Tensor) -> np.ndarray:
        """Features of a real split, read from / written to the cache when the extractor has one."""
        if self.cache_dir is None:
            return self.features(images_uint8)
        path = self.cache_dir / f"feats_{images_hash(images_uint8)}.npy"
        if path.exists():
            feats = np.load(path)
            if feats.shape == (images_uint8.shape[0], FEATURE_DIM):
                return feats
            raise ValueError(
                f"{path}: cached features have shape {feats.shape}; expected "
                f"{(images_uint8.shape[0], FEATURE_DIM)}. Delete the file to recompute them."
            )
        feats = self.features(images_uint8)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, feats)
        return feats


def feature_extractor(
    train_uint8: torch.Tensor,
    *,
    epochs: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    cache_root: Path | None = None,
) -> FeatureExtractor:
    """The X-ray encoder for these real training images: loaded from the cache, or trained once and cached."""
    root = Path(cache_root) if cache_root is not None else data_home() / "cache" / "eval_features"
    key = f"{FeatureExtractor.name}_s{train_uint8.shape[-1]}_e{epochs}_seed{seed}_{images_hash(train_uint8)}"
    folder = root / key
    path = folder / "encoder.pt"
    enc = XrayEncoder(train_uint8.shape[-1])
    if path.exists():
        enc.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        enc = train_encoder(train_uint8, epochs=epochs, seed=seed, device=device).cpu()
        atomic_torch_save(enc.state_dict(), path)
    return FeatureExtractor(enc, folder, device=device)


# ----------------------------------------------------------------------------------------------------------------
# optional ImageNet Inception features (local file only)


class InceptionFeatures:
    """A local TorchScript Inception feature network (see the module docstring for the file's contract)."""

    input_size = 299

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", batch_size: int = 64):
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"eval.inception_weights={str(path)!r}: no such file (weights are never "
                "downloaded; point the setting at a local TorchScript file or leave it empty)"
            )
        try:
            if path.suffix == ".pt2":
                self.net = torch.export.load(str(path)).module().to(device)
            else:
                with warnings.catch_warnings():
                    # torch >= 2.10 marks TorchScript deprecated; the published FID weights are TorchScript files
                    warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.load.*")
                    self.net = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError) as e:
            raise ValueError(
                f"eval.inception_weights={str(path)!r} is neither a TorchScript module nor a "
                f"torch.export program (.pt2): {e}"
            ) from e
        self.path = str(path)
        self.device = torch.device(device)
        self.batch_size = batch_size

    def features(self, images_uint8: torch.Tensor) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, images_uint8.shape[0], self.batch_size):
                x = to_range(images_uint8[i : i + self.batch_size], UNIT_RANGE).to(self.device)
                x = F.interpolate(
                    x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
                )
                f = self.net(x.repeat(1, 3, 1, 1))
                f = f[0] if isinstance(f, (tuple, list)) else f
                out.append(f.reshape(f.shape[0], -1).double().cpu())
        return torch.cat(out).numpy()
