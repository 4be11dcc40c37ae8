"""The learning check behind issue 8: FD8, reading sample grids back, and the learning summary's verdicts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xrutils import learning
from xrutils.evaluators.metrics import pooled_fd, pooled_features
from xrutils.runs import GRID_PADDING, read_grid
from xrutils.train import save_grid


def _chests(n: int, size: int, seed: int) -> torch.Tensor:
    """Bright bodies with two dark lung fields and black borders, plus per-image jitter: a tiny phantom."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, size, size)
    q = size // 8
    x[:, :, q:-q, q:-q] = 0.8
    x[:, :, 2 * q : 6 * q, q + 1 : 3 * q] = 0.3
    x[:, :, 2 * q : 6 * q, 5 * q : 7 * q - 1] = 0.3
    x = x * (0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)) + 0.05 * torch.rand(x.shape, generator=g)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def test_pooled_features_shape_and_range():
    f = pooled_features(_chests(5, 32, 0))
    assert f.shape == (5, 64) and f.min() >= 0 and f.max() <= 1


def test_fd8_separates_real_from_noise_and_ignores_image_size():
    real = _chests(200, 64, 0)
    same = pooled_fd(real, _chests(200, 64, 1))
    half = pooled_fd(real, _chests(200, 32, 1))  # a 32 px model against 64 px reals: same pooled grid
    noise = pooled_fd(real, torch.randint(0, 256, (200, 1, 64, 64), dtype=torch.uint8))
    assert same < 0.05 and half < 0.1
    assert noise > 20 * same


def test_pooled_features_rejects_bad_input():
    with pytest.raises(ValueError, match="multiple of 8"):
        pooled_features(torch.zeros(2, 1, 20, 20, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        pooled_features(torch.zeros(2, 1, 16, 16))


@pytest.mark.parametrize("n, size", [(64, 64), (36, 32), (4, 16), (10, 32)])
def test_read_grid_inverts_save_grid(tmp_path, n, size):
    images = _chests(n, size, 2)
    path = save_grid(images.float() / 255, (0.0, 1.0), tmp_path / "g.png")
    back = read_grid(path, size, n)
    assert back.shape == images.shape
    assert torch.equal(back, images)


def test_read_grid_names_a_wrong_tile_size(tmp_path):
    path = save_grid(_chests(4, 16, 0).float() / 255, (0.0, 1.0), tmp_path / "g.png")
    with pytest.raises(ValueError, match="not a grid of 32x32 tiles"):
        read_grid(path, 32)
    assert GRID_PADDING == 2


def _record(preset="baseline", first=4.0, last=0.8, fd=(40.0, 5.0), failure=None, data="phantom"):
    return {
        "preset": preset,
        "data": data,
        "expected_failure": failure,
        "fd8": {"first": first, "last": last},
        "fd": {"first": fd[0], "last": fd[1], "fall": fd[0] / fd[1]} if fd else None,
    }


def test_verdicts_follow_the_targets():
    assert learning._verdict(_record())[0] is True
    assert learning._verdict(_record(last=1.2))[0] is False  # baseline FD8 above 1.0 on the phantom
    assert learning._verdict(_record(last=1.2, data="nih"))[0] is True  # NIH target is 1.5
    assert learning._verdict(_record(fd=(10.0, 5.0)))[0] is False  # feature FD fell only 2x
    assert learning._verdict(_record(preset="lr1e-5", first=3.6, last=3.4, fd=None))[0] is False
    assert learning._verdict(_record(preset="lr1e-5", first=3.6, last=2.6, fd=None))[0] is True  # fell 28%
    assert learning._verdict(_record(preset="lr1e-5", first=1.4, last=1.4, fd=None))[0] is True  # <= 1.5
    assert learning._verdict(_record(failure="Figure 8"))[0] is None
    assert np.isclose(learning.OTHER_FD8_FALL, 0.25)


def test_summary_of_a_trained_run_folder(tmp_path):
    """learning.json, overview.png and learning.png from a real (smoke) run folder: the FD8 of every grid, against
    the training-loop seconds spent so far."""
    from xrutils.registry import build_config
    from xrutils.train import train

    cfg = build_config("vae", "baseline", "smoke", {"train.epochs": 3, "train.sample_every": 1})
    train(cfg, tmp_path / "runs" / "vae__baseline", progress=False)
    summary = learning.write_summary(tmp_path / "figs", tmp_path / "runs", "smoke")
    r = summary["runs"]["vae__baseline"]
    curve = r["fd8_curve"]
    assert curve["epochs"] == [1, 2, 3]
    assert len(curve["fd8"]) == 3 and all(v >= 0 for v in curve["fd8"])
    assert curve["train_seconds"] == sorted(curve["train_seconds"]) and curve["train_seconds"][0] > 0
    assert (r["fd8"]["first"], r["fd8"]["last"]) == (curve["fd8"][0], curve["fd8"][-1])
    assert (
        r["steps"] > 0 and r["learned"] is False
    )  # no evaluation yet: the baseline's feature-FD fall is unknown
    on_disk = json.loads((tmp_path / "figs" / "learning.json").read_text())
    assert on_disk["runs"]["vae__baseline"]["fd8_curve"] == curve
    assert (tmp_path / "figs" / "overview.png").stat().st_size > 0
    assert (tmp_path / "figs" / "learning.png").stat().st_size > 0


def test_figure_labels_say_what_a_scaled_run_really_trained_with():
    """A legend names the thesis's run ("GAN baseline (h 64, lr 1e-4)"); the label next to it must say the demo
    trained it at h 16 and lr 1e-3, and say nothing extra for a thesis-profile run."""
    from xrutils.plotting import trained_label
    from xrutils.registry import build_config

    assert trained_label(build_config("gan", "baseline", "demo")) == "64², demo lr 0.001, h 16"
    assert trained_label(build_config("vae", "size32", "demo")) == "16², demo lr 0.001"  # widths kept
    assert trained_label(build_config("gan", "baseline", "thesis")) == "64²"
    assert (
        trained_label(build_config("pixelcnn", "baseline", "demo"))
        == "32², demo lr 0.001, h 32, cosine lr, position channels"
    )
