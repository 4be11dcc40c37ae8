"""Integration tests on 1,000 real NIH images at 64 px (issue 8): the demo's real-data path, honestly labelled."""

from __future__ import annotations

import pytest

from xrutils import build_config
from xrutils.data import load_images, native_resolution
from xrutils.evaluators.metrics import pooled_fd
from xrutils.plotting import size_label

pytestmark = pytest.mark.nih


def _cfg(root, family="gan", preset="baseline", size=None):
    over = {"data.source": "nih", "data.root": str(root)}
    if size:
        over["data.image_size"] = size
    return build_config(family, preset, "demo", over)


def test_splits_load_and_missing_images_are_counted(nih_small64_root):
    cfg = _cfg(nih_small64_root, size=32)
    train = load_images(cfg.data, progress=False)
    test = load_images(cfg.data, split="test", progress=False)
    assert len(train) == 512  # demo keeps the first 512 of the 690 train_val images
    assert len(test) == 310 and test.missing == 25_596 - 310
    assert train.images.shape[-1] == 32 and not train.images.dtype.is_floating_point
    assert set(train.patient_ids.tolist()).isdisjoint(
        test.patient_ids.tolist()
    )  # the NIH lists split by patient


def test_the_source_is_64_px_and_128_px_runs_say_they_are_upsampled(nih_small64_root):
    cfg64, cfg128 = _cfg(nih_small64_root), _cfg(nih_small64_root, "gan", "size128")
    assert native_resolution(cfg64.data) == 64
    assert size_label(cfg64) == "64²"
    assert size_label(cfg128) == "128² (upsampled from a 64 px source)"


def test_fd8_real_vs_real_is_small_on_nih(nih_small64_root):
    cfg = _cfg(nih_small64_root)
    train = load_images(cfg.data, progress=False).images
    test = load_images(cfg.data, split="test", progress=False).images
    assert pooled_fd(train, test) < 0.6  # the issue measured about 0.23 for 36 images; noise is about 3.3
