"""Phantom X-rays: determinism, NIH layout, anatomy where it belongs, findings that change the image."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from xrutils.data import LABELS, index_split, label_counts, read_metadata
from xrutils.data.phantom import (
    CSV_HEADER,
    FINDINGS,
    draw_patient,
    draw_shot,
    ensure_phantom,
    make_phantom,
    phantom_image,
    plan,
    render,
    vessel_bank,
)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    return make_phantom(tmp_path_factory.mktemp("ph") / "a", n=40, seed=3, size=64, workers=1)


def _patch(img: np.ndarray, x: float, y: float, r: int = 2) -> float:
    """Mean of a (2r+1)² patch around image coordinates (x, y) in [-1, 1]."""
    s = img.shape[0]
    cx, cy = int((x + 1) / 2 * s), int((y + 1) / 2 * s)
    return float(img[cy - r : cy + r + 1, cx - r : cx + r + 1].mean())


def _region(img: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> float:
    s = img.shape[0]
    f = lambda v: int((v + 1) / 2 * s)  # noqa: E731
    return float(img[f(y0) : f(y1), f(x0) : f(x1)].mean())


def test_same_seed_same_bytes_different_seed_differs(tmp_path, small):
    again = make_phantom(tmp_path / "b", n=40, seed=3, size=64, workers=2)  # worker count must not matter
    other = make_phantom(tmp_path / "c", n=40, seed=4, size=64, workers=1)
    for name in ("Data_Entry_2017.csv", "train_val_list.txt", "test_list.txt"):
        assert (small / name).read_bytes() == (again / name).read_bytes()
    pngs = sorted(p.name for p in (small / "images").iterdir())
    assert len(pngs) == 40
    for name in pngs:
        assert (small / "images" / name).read_bytes() == (again / "images" / name).read_bytes()
    assert any(
        (small / "images" / n).read_bytes() != (other / "images" / n).read_bytes()
        for n in pngs
        if (other / "images" / n).exists()
    )
    a, b = phantom_image(0, 5, 1, size=64), phantom_image(0, 5, 1, size=64)
    assert a.dtype == np.uint8 and a.shape == (64, 64)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, phantom_image(1, 5, 1, size=64))


def test_nih_layout_2017_format(small):
    lines = (small / "Data_Entry_2017.csv").read_text().splitlines()
    assert lines[0] == CSV_HEADER and lines[0].endswith(",")  # the 2017 header's trailing comma
    assert len(lines) == 41
    for row in lines[1:]:
        f = row.split(",")
        assert len(f) == 11
        assert re.fullmatch(r"\d{8}_\d{3}\.png", f[0]) and f[0][:8] == f[3] and f[0][9:12] == f[2]
        assert re.fullmatch(r"\d{3}Y", f[4]) and f[5] in "MF" and f[6] in ("PA", "AP")
        assert all(lab in FINDINGS for lab in f[1].split("|")) or f[1] == "No Finding"
    meta = read_metadata(small)
    assert len(meta) == 40 and meta["age"].between(1, 120).all()


def test_split_is_patient_disjoint_and_complete(small):
    train = (small / "train_val_list.txt").read_text().split()
    test = (small / "test_list.txt").read_text().split()
    assert sorted(train + test) == sorted(p.name for p in (small / "images").iterdir())
    pid = lambda n: n.split("_")[0]  # noqa: E731
    assert not {pid(n) for n in train} & {pid(n) for n in test}
    assert 0.1 <= len(test) / 40 <= 0.35
    idx = index_split(small, "all")
    assert len(idx) == 40 and idx.missing == 0


def test_several_images_per_patient():
    p = plan(600, seed=0)
    per = np.bincount([pt for pt, _ in p])[1:]
    assert len(p) == 600 and per.max() >= 3 and (per >= 2).mean() > 0.4 and per.min() >= 1
    assert all(fu == i for pt in set(q for q, _ in p) for i, fu in enumerate(f for q, f in p if q == pt))


def test_every_finding_occurs_with_plausible_prevalence():
    counts = dict.fromkeys(FINDINGS, 0)
    n = 2000
    for i in range(n):
        rng = np.random.default_rng(i)
        shot = draw_shot(rng, draw_patient(rng))
        for k in FINDINGS:
            counts[k] += shot["findings"][k]
    for k, c in counts.items():
        assert 0.03 < c / n < 0.3, (k, c)
    assert set(FINDINGS) < set(LABELS)


def test_label_counts_match_csv(small):
    counts = label_counts(small)
    assert set(counts["split"]) == {"train_val", "test"} and set(counts["label"]) == set(LABELS)
    rows = (small / "Data_Entry_2017.csv").read_text().splitlines()[1:]
    n_nf = sum(r.split(",")[1] == "No Finding" for r in rows)
    assert counts.loc[counts.label == "No Finding", "count"].sum() == n_nf
    assert counts.loc[counts.label == "Hernia", "count"].sum() == 0


@pytest.fixture(scope="module")
def bank():
    return vessel_bank(0)


def _normal(i: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(i)
    p = draw_patient(rng)
    s = draw_shot(rng, p)
    s.update(rot=0.0, dx=0.0, dy=0.0, scale=1.0, eff_side=2, ptx_side=1.0)
    s["findings"] = dict.fromkeys(s["findings"], False)
    return p, s


def test_anatomy_lungs_darker_than_mediastinum_and_abdomen(bank):
    for i in range(12):
        p, s = _normal(i)
        img = render(p, s, 64, bank).astype(float)
        lungs = max(_patch(img, -0.45, -0.15), _patch(img, 0.45, -0.15))
        assert lungs + 30 < _patch(img, 0.0, -0.35), i  # mediastinum
        assert lungs + 30 < _patch(img, 0.0, 0.85), i  # abdomen below the diaphragm
        assert img.min() < 40 and img.max() > 180  # a full radiographic range, not a flat picture


def test_patients_differ(bank):
    a = render(*_normal(1), 64, bank).astype(float)
    b = render(*_normal(2), 64, bank).astype(float)
    assert np.abs(a - b).mean() > 3


@pytest.mark.parametrize("finding", FINDINGS)
def test_findings_change_the_expected_region(bank, finding):
    for i in range(6):
        p, s = _normal(i)
        base = render(p, s, 64, bank).astype(float)
        s2 = copy.deepcopy(s)
        s2["findings"][finding] = True
        img = render(p, s2, 64, bank).astype(float)
        W, b, a = p["W"], p["base"], p["apex"]
        if finding == "Cardiomegaly":  # the heart grows into the lower left lung (image right)
            box, sign = (0.25, 0.55, b - 0.4, b - 0.15), 1
        elif finding == "Effusion":  # fluid fills the costophrenic angle
            box, sign = (W - 0.2, W - 0.02, b - 0.12, b - 0.02), 1
        elif finding == "Nodule":
            nu, nt, ns, _ = p["nodule"]
            ny, nx = a + nt * (b - a), ns * (p["med"] + 0.05 + nu * (W - p["med"] - 0.1))
            box, sign = (nx - 0.03, nx + 0.03, ny - 0.03, ny + 0.03), 1
        else:  # pneumothorax: the lateral upper lung loses its markings and turns darker
            ya = a + 0.3 * (b - a)
            box, sign = (W - 0.14, W - 0.04, ya - 0.1, ya + 0.1), -1
        d = sign * (_region(img, *box) - _region(base, *box))
        assert d > 3, (finding, i, d)


def test_ensure_phantom_reuses_and_refuses_partial(tmp_path):
    root = ensure_phantom(tmp_path / "ph", n=24, seed=0, size=64)
    assert (root / "Data_Entry_2017.csv").exists() and len(list((root / "images").iterdir())) == 24
    stamp = (root / "Data_Entry_2017.csv").stat().st_mtime_ns
    assert ensure_phantom(root, n=24, seed=0, size=64) == root
    assert (root / "Data_Entry_2017.csv").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
    from xrutils.atomic import DIR_MODE

    assert root.stat().st_mode & 0o777 == DIR_MODE  # not the private 0700 of mkdtemp (issue 12, D16)
    partial = tmp_path / "partial"
    (partial / "images").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="no complete phantom dataset"):
        ensure_phantom(partial, n=24, seed=0)
    with pytest.raises(FileExistsError, match="already holds a dataset"):
        make_phantom(root, n=24, seed=0)
    with pytest.raises(ValueError, match="n > 0"):
        make_phantom(tmp_path / "z", n=0, seed=0)
