"""Resized cache (torchvision-exact resize, reuse, invalidation, corruption, bad files), load_images, batches and
ChestMNIST. The interrupted-build test lives in test_data_cli.py (it kills a real ``python -m xrutils`` process)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from xrutils.config import DataConfig
from xrutils.data import LABELS, batches, cached_images, index_split, load_images, make_phantom
from xrutils.data.nih import BadImageError
from xrutils.data.ranges import GAN_RANGE, UNIT_RANGE


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(tmp_path_factory.mktemp("cache") / "ph", n=32, seed=1, size=128, workers=1)


def _torchvision_reference(path, size):
    """The thesis pipeline: Resize(size) -> Grayscale(1) -> ToTensor, back to 0..255."""
    tf = T.Compose([T.Resize(size), T.Grayscale(1), T.ToTensor()])
    with Image.open(path) as img:
        return (tf(img) * 255).round().to(torch.uint8)[0].numpy()


def test_cache_equals_torchvision_resize(phantom, tmp_path):
    idx = index_split(phantom, "all")
    res = cached_images(idx.names, idx.paths, 32, workers=1, progress=False, root=tmp_path)
    assert res.images.dtype == np.uint8 and res.images.shape == (32, 32, 32)
    for i in (0, 7, 31):
        np.testing.assert_array_equal(res.images[i], _torchvision_reference(idx.paths[i], 32))
    # an RGBA file (as in the NIH release) goes through the same path
    g = np.asarray(Image.open(idx.paths[0]))
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([g, g, g, np.full_like(g, 255)]), mode="RGBA").save(rgba)
    one = cached_images(["rgba.png"], [rgba], 32, workers=1, progress=False, root=tmp_path)
    np.testing.assert_array_equal(one.images[0], _torchvision_reference(rgba, 32))


def test_reuse_manifest_and_invalidation(phantom, tmp_path):
    idx = index_split(phantom, "train_val")
    kw = dict(workers=2, progress=False, root=tmp_path)
    first = cached_images(idx.names, idx.paths, 16, missing=3, **kw)
    assert not first.reused
    man = json.loads((first.path / "manifest.json").read_text())
    assert {"inputs_hash", "size", "method", "count", "created", "missing"} <= set(man)
    assert (man["size"], man["method"], man["count"], man["missing"]) == (
        16,
        "bilinear-antialias",
        len(idx),
        3,
    )
    second = cached_images(idx.names, idx.paths, 16, **kw)
    assert second.reused and second.path == first.path
    np.testing.assert_array_equal(np.asarray(first.images), np.asarray(second.images))
    serial = cached_images(idx.names, idx.paths, 16, workers=1, progress=False, root=tmp_path / "serial")
    np.testing.assert_array_equal(np.asarray(serial.images), np.asarray(first.images))  # pool == one process

    assert cached_images(idx.names, idx.paths, 32, **kw).path != first.path  # other size, other cache
    assert cached_images(idx.names[:-1], idx.paths[:-1], 16, **kw).path != first.path  # other list
    st = os.stat(idx.paths[0])
    os.utime(idx.paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file changed
    try:
        changed = cached_images(idx.names, idx.paths, 16, **kw)
        assert not changed.reused and changed.path != first.path
    finally:
        os.utime(idx.paths[0], ns=(st.st_atime_ns, st.st_mtime_ns))


def test_concurrent_builders_build_once(phantom, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    idx = index_split(phantom, "train_val")
    with ThreadPoolExecutor(2) as ex:
        futs = [
            ex.submit(cached_images, idx.names, idx.paths, 16, workers=1, progress=False, root=tmp_path)
            for _ in range(2)
        ]
        results = [f.result() for f in futs]
    assert sorted(r.reused for r in results) == [False, True]  # the second waited for the lock, then reused
    np.testing.assert_array_equal(np.asarray(results[0].images), np.asarray(results[1].images))


@pytest.mark.parametrize("damage", ["manifest_garbage", "manifest_missing", "array_truncated", "count_wrong"])
def test_damaged_cache_is_rebuilt(phantom, tmp_path, damage):
    idx = index_split(phantom, "test")
    kw = dict(workers=1, progress=False, root=tmp_path)
    good = cached_images(idx.names, idx.paths, 16, **kw)
    ref = np.array(good.images)
    del good.images
    man, arr = good.path / "manifest.json", good.path / "images.npy"
    if damage == "manifest_garbage":
        man.write_text("{not json")
    elif damage == "manifest_missing":
        man.unlink()
    elif damage == "array_truncated":
        arr.write_bytes(arr.read_bytes()[:200])
    else:
        m = json.loads(man.read_text())
        m["count"] += 1
        man.write_text(json.dumps(m))
    again = cached_images(idx.names, idx.paths, 16, **kw)
    assert not again.reused
    np.testing.assert_array_equal(np.asarray(again.images), ref)


def test_bad_image_raises_or_is_skipped(phantom, tmp_path):
    idx = index_split(phantom, "test")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    names, paths = [*idx.names, "bad.png"], [*idx.paths, bad]
    with pytest.raises(BadImageError, match="bad.png"):
        cached_images(names, paths, 16, workers=2, progress=False, root=tmp_path)
    assert not list(tmp_path.glob("16px_*/manifest.json"))  # a failed build leaves nothing valid
    res = cached_images(names, paths, 16, skip_bad=True, workers=2, progress=False, root=tmp_path)
    assert (
        res.skipped == ["bad.png"] and res.images.shape[0] == len(idx) and res.kept == list(range(len(idx)))
    )
    with pytest.raises(BadImageError, match="bad.png"):  # reusing that cache without skip_bad is not silent
        cached_images(names, paths, 16, workers=1, progress=False, root=tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# load_images


def test_load_images_phantom_default_source():
    cfg = DataConfig(source="phantom", image_size=32, phantom_n=40, phantom_seed=5)
    train = load_images(cfg, progress=False)
    test = load_images(cfg, "test", progress=False)
    both = load_images(cfg, "all", progress=False)
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (1, 32, 32)
    assert train.labels.shape == (len(train), 15) and train.labels.dtype == torch.uint8
    assert train.patient_ids.dtype == torch.int64 and train.source == "phantom"
    assert len(train) + len(test) == len(both) == 40
    assert not set(train.patient_ids.tolist()) & set(test.patient_ids.tolist())
    assert (train.labels.sum(1) >= 1).all() and train.label_names == LABELS
    assert train.names == sorted(train.names) and "phantom_v1_n40_s5" in train.root
    small = load_images(DataConfig(image_size=32, phantom_n=40, phantom_seed=5, max_images=5), progress=False)
    assert small.names == train.names[:5]
    torch.testing.assert_close(small.images, train.images[:5])


def test_load_images_nih_source_needs_a_root(monkeypatch):
    monkeypatch.delenv("XRUTILS_NIH_ROOT", raising=False)
    with pytest.raises(FileNotFoundError, match="XRUTILS_NIH_ROOT"):
        load_images(DataConfig(source="nih"))


def test_load_images_skip_bad(phantom, tmp_path, capsys):
    root = tmp_path / "copy"
    (root / "images").mkdir(parents=True)
    for f in ("Data_Entry_2017.csv", "train_val_list.txt", "test_list.txt"):
        (root / f).write_bytes((phantom / f).read_bytes())
    names = (phantom / "test_list.txt").read_text().split()
    for n in names:
        (root / "images" / n).write_bytes((phantom / "images" / n).read_bytes())
    (root / "images" / names[0]).write_bytes(b"broken")
    cfg = DataConfig(source="nih", root=str(root), image_size=16, split="test")
    with pytest.raises(BadImageError, match=names[0]):
        load_images(cfg, progress=False)
    got = load_images(
        DataConfig(source="nih", root=str(root), image_size=16, split="test", skip_bad=True), progress=False
    )
    assert got.names == names[1:] and got.skipped == [names[0]] and len(got.labels) == len(names) - 1
    assert "skipped 1 undecodable" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# batches


def _images(n=10, s=4):
    return torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, s, s).contiguous() * 25


def test_batches_one_epoch_in_range():
    x = _images(10)
    g = torch.Generator().manual_seed(0)
    out = list(batches(x, 4, value_range=GAN_RANGE, generator=g))
    assert [b.shape[0] for b in out] == [4, 4, 2] and all(b.dtype == torch.float32 for b in out)
    seen = torch.cat(out)[:, 0, 0, 0]
    assert sorted(((seen + 1) / 2 * 255 / 25).round().long().tolist()) == list(range(10))  # each image once
    assert torch.cat(out).min() >= -1 and torch.cat(out).max() <= 1
    full = batches(
        torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1), 2, value_range=UNIT_RANGE, generator=g
    )
    assert sorted(next(full).flatten().tolist()) == [0.0, 1.0]
    assert [b.shape[0] for b in batches(x, 4, value_range=UNIT_RANGE, generator=g, drop_last=True)] == [4, 4]


def test_batches_deterministic_per_generator():
    x = _images(50)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.cat(list(batches(x, 8, value_range=UNIT_RANGE, generator=g, hflip=True)))

    torch.testing.assert_close(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_batches_hflip_flips_about_half():
    x = torch.zeros(200, 1, 2, 2, dtype=torch.uint8)
    x[:, :, :, 0] = 255  # left column white
    out = torch.cat(
        list(batches(x, 64, value_range=UNIT_RANGE, generator=torch.Generator().manual_seed(0), hflip=True))
    )
    flipped = out[:, 0, 0, 1] == 1.0
    assert 60 < flipped.sum() < 140
    assert (out[flipped][..., 0] == 0).all() and (out[~flipped][..., 1] == 0).all()  # whole rows mirrored
    same = torch.cat(list(batches(x, 64, value_range=UNIT_RANGE, generator=torch.Generator().manual_seed(0))))
    assert (same[:, 0, 0, 0] == 1.0).all()


def test_batches_shard_for_ddp():
    x = _images(10)
    shards = []
    for rank in range(3):
        g = torch.Generator().manual_seed(7)  # every rank: the same seed
        shards.append(
            torch.cat(list(batches(x, 2, value_range=UNIT_RANGE, generator=g, rank=rank, world_size=3)))
        )
    assert {len(s) for s in shards} == {4}  # 10 padded to 12: equal steps on every rank
    ids = torch.cat(shards)[:, 0, 0, 0].mul(255 / 25).round().long().tolist()
    assert set(ids) == set(range(10)) and len(ids) == 12


def test_batches_rejects_bad_input():
    g = torch.Generator()
    with pytest.raises(TypeError, match="uint8"):
        next(batches(torch.zeros(2, 1, 4, 4), 1, value_range=UNIT_RANGE, generator=g))
    with pytest.raises(TypeError, match="Generator"):
        next(batches(_images(), 1, value_range=UNIT_RANGE, generator=None))
    with pytest.raises(ValueError, match="rank"):
        next(batches(_images(), 1, value_range=UNIT_RANGE, generator=g, rank=2, world_size=2))


# ----------------------------------------------------------------------------------------------------------------
# ChestMNIST


@pytest.fixture
def chestmnist(tmp_path):
    rng = np.random.default_rng(0)
    parts = {"train": 6, "val": 2, "test": 3}
    arrays = {}
    for part, n in parts.items():
        arrays[f"{part}_images"] = rng.integers(0, 256, (n, 64, 64), dtype=np.uint8)
        lab = np.zeros((n, 14), dtype=np.uint8)
        lab[0, 1] = 1  # first image of each part: Cardiomegaly
        arrays[f"{part}_labels"] = lab
    path = tmp_path / "chestmnist_64.npz"
    np.savez(path, **arrays)
    return path, arrays


def test_chestmnist_splits_labels_resize(chestmnist):
    path, arrays = chestmnist
    cfg = DataConfig(source="chestmnist", chestmnist_path=str(path), image_size=64)
    tv = load_images(cfg)
    assert len(tv) == 8 and tv.source == "chestmnist" and (tv.patient_ids == -1).all()
    np.testing.assert_array_equal(tv.images[:6, 0].numpy(), arrays["train_images"])
    assert (
        tv.labels.shape == (8, 15)
        and tv.labels[0, 1] == 1
        and tv.labels[0, 14] == 0
        and tv.labels[1, 14] == 1
    )
    assert len(load_images(cfg, "test")) == 3 and len(load_images(cfg, "all")) == 11
    small = load_images(DataConfig(source="chestmnist", chestmnist_path=str(path), image_size=32), "test")
    assert small.images.shape == (3, 1, 32, 32)
    ref = T.Resize(32)(Image.fromarray(arrays["test_images"][0]))
    np.testing.assert_array_equal(small.images[0, 0].numpy(), np.asarray(ref))


def test_chestmnist_errors(chestmnist, tmp_path):
    with pytest.raises(FileNotFoundError, match="chestmnist_path is empty"):
        load_images(DataConfig(source="chestmnist"))
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_images(DataConfig(source="chestmnist", chestmnist_path=str(tmp_path / "nope.npz")))
    partial = tmp_path / "partial.npz"
    np.savez(partial, train_images=np.zeros((1, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="train_labels"):
        load_images(DataConfig(source="chestmnist", chestmnist_path=str(partial)))
