"""NIH ChestX-ray14 reader: both layouts, both CSV formats, splits, labels, odd pixel formats, missing and bad files.

The synthetic tests build tiny NIH-layout folders; the integration tests (fixture ``nih_root``) read the real
40-image sample with its full 112,120-row metadata and skip when XRUTILS_NIH_ROOT is not set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from xrutils.data import LABELS, index_split, label_counts, read_metadata, read_split
from xrutils.data.nih import BadImageError, decode_image, find_images, metadata_path, multi_hot

HEADER_2017 = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
HEADER_2020 = HEADER_2017.rstrip(",")
ROWS = [  # name, labels, follow-up, patient, age
    ("00000001_000.png", "Cardiomegaly", 0, 1, 58),
    ("00000001_001.png", "Cardiomegaly|Emphysema", 1, 1, 58),
    ("00000002_000.png", "No Finding", 0, 2, 81),
    ("00000003_000.png", "Hernia|Pleural_Thickening|Effusion", 0, 3, 7),
    ("00000004_000.png", "No Finding", 0, 4, 40),
]
TRAIN = ["00000001_000.png", "00000001_001.png", "00000002_000.png"]
TEST = ["00000003_000.png", "00000004_000.png"]


def _write_csvs(root, fmt=("2017", "2020")):
    if "2017" in fmt:
        lines = [HEADER_2017] + [
            f"{n},{lab},{fu:03d},{pid:08d},{age:03d}Y,M,PA,1024,1024,0.143,0.143"
            for n, lab, fu, pid, age in ROWS
        ]
        (root / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n")
    if "2020" in fmt:
        lines = [HEADER_2020] + [
            f"{n},{lab},{fu},{pid},{age},M,PA,1024,1024,0.14300000000000002,0.143"
            for n, lab, fu, pid, age in ROWS
        ]
        (root / "Data_Entry_2017_v2020.csv").write_text("\n".join(lines) + "\n")
    (root / "train_val_list.txt").write_text("\n".join(TRAIN) + "\n")
    (root / "test_list.txt").write_text("\n".join(TEST) + "\n")


def _gradient(size=48):
    return (np.add.outer(np.arange(size), np.arange(size)) * (255 / (2 * size - 2))).astype(np.uint8)


@pytest.fixture
def nih_flat(tmp_path):
    root = tmp_path / "flat"
    (root / "images").mkdir(parents=True)
    _write_csvs(root)
    for i, (name, *_rest) in enumerate(ROWS):
        Image.fromarray(np.roll(_gradient(), i * 7, axis=1)).save(root / "images" / name)
    return root


@pytest.fixture
def nih_official(tmp_path):
    """The official archive layout, with the 2017 CSV only and one listed image missing."""
    root = tmp_path / "official"
    root.mkdir()
    _write_csvs(root, fmt=("2017",))
    for i, (name, *_rest) in enumerate(ROWS[:-1]):  # 00000004_000.png is listed but absent
        d = root / f"images_{1 + i % 2:03d}" / "images"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_gradient()).save(d / name)
    return root


def test_both_csv_formats_read_the_same(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    _write_csvs(a, fmt=("2017",))
    _write_csvs(b, fmt=("2020",))
    ma, mb = read_metadata(a), read_metadata(b)
    assert (
        metadata_path(a).name == "Data_Entry_2017.csv"
        and metadata_path(b).name == "Data_Entry_2017_v2020.csv"
    )
    pd.testing.assert_frame_equal(ma, mb)
    assert ma.loc["00000001_001.png", "age"] == 58 and ma.loc["00000001_001.png", "follow_up"] == 1
    assert ma["patient_id"].tolist() == [1, 1, 2, 3, 4] and ma["patient_id"].dtype == np.int64


def test_2017_file_is_preferred_and_choosable(nih_flat):
    (nih_flat / "Data_Entry_2017_v2020.csv").write_text(
        (nih_flat / "Data_Entry_2017_v2020.csv").read_text().replace("No Finding", "Mass")
    )
    assert read_metadata(nih_flat).loc["00000002_000.png", "labels"] == "No Finding"
    assert read_metadata(nih_flat, "Data_Entry_2017_v2020.csv").loc["00000002_000.png", "labels"] == "Mass"


def test_multi_hot_order_and_unknown_label():
    hot = multi_hot(["Cardiomegaly|Emphysema", "No Finding", "Hernia|Atelectasis"])
    assert hot.dtype == np.uint8 and hot.shape == (3, 15)
    assert LABELS[:2] == ("Atelectasis", "Cardiomegaly") and LABELS[-1] == "No Finding" and len(LABELS) == 15
    np.testing.assert_array_equal(np.nonzero(hot[0])[0], [1, 10])
    np.testing.assert_array_equal(np.nonzero(hot[1])[0], [14])
    np.testing.assert_array_equal(np.nonzero(hot[2])[0], [0, 13])
    with pytest.raises(ValueError, match="Pneumonitis"):
        multi_hot(["Pneumonitis"], source="x.csv")


def test_splits_labels_and_patients_flat_layout(nih_flat):
    assert read_split(nih_flat, "all") == TRAIN + TEST
    idx = index_split(nih_flat, "train_val")
    assert idx.names == sorted(TRAIN) and idx.missing == 0
    assert idx.patient_ids.tolist() == [1, 1, 2]
    np.testing.assert_array_equal(
        idx.labels, multi_hot(["Cardiomegaly", "Cardiomegaly|Emphysema", "No Finding"])
    )
    test = index_split(nih_flat, "test")
    assert test.names == TEST and test.labels[0, LABELS.index("Hernia")] == 1
    assert len(index_split(nih_flat, "all")) == 5
    assert index_split(nih_flat, "all", max_images=2).names == sorted(TRAIN + TEST)[:2]
    with pytest.raises(ValueError, match="split='val'"):
        index_split(nih_flat, "val")


def test_official_layout_and_missing_images(nih_official, capsys):
    found = find_images(nih_official)
    assert len(found) == 4 and found["00000001_001.png"].parent.parent.name == "images_002"
    idx = index_split(nih_official, "test")
    assert idx.names == ["00000003_000.png"] and idx.missing == 1
    assert idx.missing_examples == ["00000004_000.png"]
    err = capsys.readouterr().err
    assert "1 of 2 images" in err and "00000004_000.png" in err


def test_nothing_left_is_a_clear_error(nih_flat):
    for p in (nih_flat / "images").iterdir():
        p.unlink()
    with pytest.raises(FileNotFoundError, match="none of the 3 images"):
        index_split(nih_flat, "train_val")


def test_list_name_without_metadata_row_is_an_error(nih_flat):
    (nih_flat / "test_list.txt").write_text("99999999_000.png\n")
    with pytest.raises(ValueError, match="99999999_000.png"):
        index_split(nih_flat, "test")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="Data_Entry_2017.csv"):
        read_metadata(tmp_path)
    _write_csvs(tmp_path)
    (tmp_path / "test_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test_list.txt"):
        read_split(tmp_path, "all")
    (tmp_path / "Data_Entry_2017.csv").write_text("Image Index,Labels\nx.png,Mass\n")
    with pytest.raises(ValueError, match="Finding Labels"):
        read_metadata(tmp_path)


def test_rgba_16bit_rgb_become_single_channel(tmp_path):
    g = _gradient()
    Image.fromarray(np.dstack([g, g, g, np.full_like(g, 255)]), mode="RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.dstack([g, g, g]), mode="RGB").save(tmp_path / "rgb.png")
    g16 = g.astype(np.uint16) * 257
    Image.fromarray(g16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")  # really stored as 16-bit
    for name in ("rgba.png", "rgb.png", "g16.png"):
        img = decode_image(tmp_path / name)
        assert img.mode == "L", name
        np.testing.assert_array_equal(np.asarray(img), g, err_msg=name)


def test_undecodable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(good)
    bad.write_bytes(good.read_bytes()[:2000])  # truncated PNG (of ~4 kB)
    with pytest.raises(BadImageError, match="broken.png"):
        decode_image(bad)
    (tmp_path / "noise.png").write_bytes(b"not a png at all")
    with pytest.raises(BadImageError, match="noise.png"):
        decode_image(tmp_path / "noise.png")


# ----------------------------------------------------------------------------------------------------------------
# integration: the real NIH sample (40 images + full metadata), through XRUTILS_NIH_ROOT


@pytest.mark.nih
def test_real_csv_formats_agree(nih_root):
    a = read_metadata(nih_root, "Data_Entry_2017.csv")
    b = read_metadata(nih_root, "Data_Entry_2017_v2020.csv")
    assert len(a) == len(b) == 112_120
    assert a.index.sort_values().equals(b.index.sort_values())  # same images (rows ordered differently)
    b = b.loc[a.index]
    np.testing.assert_array_equal(a["patient_id"].to_numpy(), b["patient_id"].to_numpy())
    # v2020 renumbers follow-ups and recomputes ages; the image -> patient map is the same
    assert a["patient_id"].nunique() == 30_805
    assert a.loc["00000001_000.png", "age"] == 58 and a["age"].dtype == np.int64


@pytest.mark.nih
def test_real_splits_and_figure1_counts(nih_root):
    train, test = read_split(nih_root, "train_val"), read_split(nih_root, "test")
    assert (len(train), len(test)) == (86_524, 25_596)
    counts = label_counts(nih_root)
    total = counts.groupby("label")["count"].sum()
    assert total["Hernia"] == 227 and total.idxmax() == "No Finding"
    assert counts.loc[counts.split == "test", "count"].sum() >= 25_596  # multi-label: >= one label per image
    v2020 = label_counts(nih_root, "Data_Entry_2017_v2020.csv").groupby("label")["count"].sum()
    assert v2020["No Finding"] == 60_361 and v2020["Infiltration"] == 19_894


@pytest.mark.nih
def test_real_missing_images_reported(nih_root, capsys):
    idx = index_split(nih_root, "train_val")
    assert len(idx) == 40 and idx.missing == 86_524 - 40
    assert "86484 of 86524" in capsys.readouterr().err
    assert idx.labels.shape == (40, 15) and (idx.labels.sum(axis=1) >= 1).all()
    with pytest.raises(FileNotFoundError, match="none of the 25596"):
        index_split(nih_root, "test")  # all 40 sample images are train_val


@pytest.mark.nih
@pytest.mark.parametrize("name", ["00000100_000.png", "00004934_000.png"])
def test_real_rgba_files_become_one_channel(nih_root, name):
    path = find_images(nih_root)[name]
    with Image.open(path) as raw:
        assert raw.mode == "RGBA"
        rgba = np.asarray(raw)
    img = decode_image(path)
    assert img.mode == "L" and img.size == (1024, 1024)
    np.testing.assert_array_equal(np.asarray(img), rgba[..., 0])  # R=G=B: grey is exactly the R channel


@pytest.mark.nih
def test_real_cache_build_matches_torchvision(nih_root):
    from torchvision import transforms as T

    from xrutils.config import DataConfig
    from xrutils.data import load_images

    imgs = load_images(DataConfig(source="nih", root=str(nih_root), image_size=64), progress=False)
    assert imgs.images.shape == (40, 1, 64, 64) and imgs.missing == 86_484 and imgs.source == "nih"
    assert imgs.patient_ids.tolist() == [int(n[:8]) for n in imgs.names]
    tf = T.Compose([T.Resize(64), T.Grayscale(1), T.ToTensor()])  # the thesis transform chain
    for name in ("00000100_000.png", "00004934_000.png", imgs.names[0]):  # the two RGBA files and an L one
        with Image.open(find_images(nih_root)[name]) as raw:
            ref = (tf(raw) * 255).round().byte()
        np.testing.assert_array_equal(imgs.images[imgs.names.index(name)].numpy(), ref.numpy())
