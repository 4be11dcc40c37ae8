"""Built-in phantom chest X-rays: a procedural PA/AP radiograph generator that writes the NIH layout.

The default data source when no NIH download is configured, so a fresh clone can train and test every family.
Each image is rendered as a projected density map, then through a film-like response:

1. body: a soft-tissue cylinder (neck, shoulders, arms), breast shadows, abdomen below the diaphragm;
2. lungs: two air-filled fields (rounded apices, sharp costophrenic angles, domed diaphragm, the right dome
   higher), vessel markings radiating from the hila (a polar noise bank), a gastric air bubble;
3. mediastinum and heart (left-sided cardiac silhouette, right atrial border, aortic knob), trachea;
4. bones: spine with vertebral bodies, posterior rib arches and fainter anterior ribs with cortical rims,
   clavicles, humeral heads;
5. exposure: density -> 1 - exp(-k D), window, gamma, heel-effect gradient, blur, quantum noise, side markers,
   collimation borders.

Patients differ in thorax size, lung height, heart size and position, diaphragm level, rib spacing, soft tissue,
sex and age; their follow-up images differ in pose, inspiration, view (PA/AP) and exposure. Findings (labels in
the NIH vocabulary): Cardiomegaly (larger heart), Effusion (blunted costophrenic angle with a meniscus), Nodule
(a round opacity), Pneumothorax (a lung edge with no markings lateral to it).

Native resolution 256x256 (``size``): enough detail for the 32/64/128 px studies and fast to generate (the
anatomy is drawn at half resolution, exposure and noise at full; a few ms per image and core, so 600 images take
seconds); :func:`make_phantom` takes any size (``bench/data.py`` uses 1024² to mimic NIH decode cost).
Everything is drawn from ``numpy.random.SeedSequence([seed, patient, follow_up])``, so the bytes depend only on
(n, seed, size), not on the number of worker processes.
"""

from __future__ import annotations

import collections
import json
import multiprocessing as mp
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from xrutils.atomic import DIR_MODE, remove_stale_tmp, tmp_prefix
from xrutils.errors import DataError
from xrutils.paths import data_home

PHANTOM_VERSION = 1
PHANTOM_INFO = "phantom.json"  # written into every phantom dataset: its version, n, seed, size, patients
FINDINGS = ("Cardiomegaly", "Effusion", "Nodule", "Pneumothorax")
CSV_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
_BANK = 8  # polar vessel textures per dataset
_BANK_SHAPE = (360, 96)  # (angle bins, radius bins)


def _sm(d: np.ndarray, w: float) -> np.ndarray:
    """Smooth step from 0 (d <= -w/2) to 1 (d >= w/2): an anti-aliased inside test on a signed distance."""
    t = d * (1.0 / w)
    t += 0.5
    np.clip(t, 0.0, 1.0, out=t)
    out = t * t
    t *= -2.0
    t += 3.0
    out *= t
    return out


def _band(d: np.ndarray, half: float, rim: float = 0.35) -> np.ndarray:
    """Cross-section of a bone seen edge-on: 0 outside |d| < half, brighter cortex at the edges than the centre."""
    q = np.clip(np.abs(d) * (1.0 / half), 0.0, 1.0)
    return (1.0 - q**6) * (1.0 - rim + rim * q * q)


def vessel_bank(seed: int) -> np.ndarray:
    """Polar textures (angle x radius) whose zero-crossings are streaks radiating from a hilum: lung markings."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7_777_777]))
    noise = rng.standard_normal((_BANK, *_BANK_SHAPE)).astype(np.float32)
    out = np.empty_like(noise)
    for i in range(_BANK):
        f = gaussian_filter(noise[i], sigma=(1.3, 5.0), mode=("wrap", "nearest"))
        f /= f.std() + 1e-6
        out[i] = np.clip(1.0 - np.abs(f) / 0.45, 0.0, 1.0) ** 2  # ridges along the zero set
    return out


# ----------------------------------------------------------------------------------------------------------------
# random anatomy (plain Python floats: NumPy scalars would promote the float32 grids to float64)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def draw_patient(rng: np.random.Generator) -> dict:
    """Anatomy that stays the same across one patient's follow-up images."""
    sex = "M" if rng.random() < 0.55 else "F"
    age = int(np.clip(rng.normal(50, 16), 12, 90))
    W = _u(rng, 0.72, 0.85)  # lateral extent of the lungs from the midline
    return {
        "sex": sex,
        "age": age,
        "W": W,
        "body": W + _u(rng, 0.14, 0.32),  # half-width of the torso (often wider than the film)
        "soft": _u(rng, 0.85, 1.2),  # soft-tissue thickness
        "air": _u(rng, 0.78, 0.95),  # how well aerated (dark) the lungs are
        "apex": _u(rng, -0.9, -0.8),
        "base": _u(rng, 0.42, 0.62),
        "dome": _u(rng, 0.13, 0.21),
        "dome_r": _u(rng, 0.03, 0.08),  # right hemidiaphragm higher
        "med": _u(rng, 0.10, 0.135),
        "apex_u": _u(rng, 0.26, 0.34),
        "heart_r": _u(rng, 0.30, 0.38),
        "heart_l": _u(rng, 0.15, 0.19),
        "heart_top": _u(rng, 0.42, 0.52),
        "knob": _u(rng, 0.13, 0.17),
        "rib_n": int(rng.integers(9, 11)),
        "rib_arc": _u(rng, 0.05, 0.09),
        "rib_drop": _u(rng, 0.28, 0.42),
        "rib_w": _u(rng, 0.34, 0.44),
        "clav_y": _u(rng, 0.1, 0.17),
        "clav_tilt": _u(rng, 0.04, 0.16),
        "bone": _u(rng, 0.85, 1.15) * (0.85 if age > 65 else 1.0),
        "bank": [int(b) for b in rng.integers(0, _BANK, size=2)],
        "bank_rot": [_u(rng, -0.3, 0.3) for _ in "lr"],
        "bubble": bool(rng.random() < 0.75),
        "bubble_r": _u(rng, 0.05, 0.10),
        "nodule": (
            _u(rng, 0.45, 0.85),
            _u(rng, 0.15, 0.65),
            float(rng.choice([-1.0, 1.0])),
            _u(rng, 0.04, 0.065),
        ),
        "findings": {"Cardiomegaly": bool(rng.random() < 0.12), "Nodule": bool(rng.random() < 0.10)},
    }


def draw_shot(rng: np.random.Generator, patient: dict) -> dict:
    """Pose, inspiration, view, exposure and transient findings of one image."""
    ap = bool(rng.random() < 0.2)
    findings = {
        **patient["findings"],
        "Effusion": bool(rng.random() < 0.14),
        "Pneumothorax": bool(rng.random() < 0.08),
    }
    return {
        "view": "AP" if ap else "PA",
        "findings": findings,
        "rot": float(rng.normal(0, 0.03)),
        "dx": float(rng.normal(0, 0.03)),
        "dy": float(rng.normal(0.0, 0.04)),
        "scale": _u(rng, 0.9, 1.07),
        "insp": float(rng.normal(0, 0.03)),
        "k": _u(rng, 1.3, 2.0),
        "lo": _u(rng, -0.05, 0.1),
        "hi": _u(rng, 0.9, 1.12),
        "gamma": _u(rng, 0.75, 1.4),
        "heel": float(rng.normal(0, 0.05)),
        "blur": _u(rng, 0.5, 1.1),
        "noise": _u(rng, 0.006, 0.025),
        "arms": bool(rng.random() < 0.5),
        "marker": bool(rng.random() < 0.45),
        "marker_side": float(rng.choice([-1.0, 1.0])),
        "collim": bool(rng.random() < 0.25),
        "collim_w": [_u(rng, 0.02, 0.10) for _ in range(4)],
        "eff_side": int(rng.choice([-1, 1, 2])),
        "eff_h": _u(rng, 0.12, 0.30),
        "ptx_side": float(rng.choice([-1.0, 1.0])),
        "ptx_w": _u(rng, 0.08, 0.18),
        "seed": int(rng.integers(0, 2**31)),
    }


# ----------------------------------------------------------------------------------------------------------------
# rendering


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1]: a row (1, size) of x and a column (size, 1) of y."""
    g = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0
    return g[None, :], g[:, None]


def _upsample2(a: np.ndarray) -> np.ndarray:
    """Bilinear 2x upsampling with pixel-centre alignment (what Resize does when enlarging), edges clamped."""
    for axis in (0, 1):
        prev = np.concatenate([a.take([0], axis), a.take(np.arange(a.shape[axis] - 1), axis)], axis)
        nxt = np.concatenate([a.take(np.arange(1, a.shape[axis]), axis), a.take([-1], axis)], axis)
        out = np.empty(a.shape[:axis] + (2 * a.shape[axis],) + a.shape[axis + 1 :], dtype=a.dtype)
        sl = [slice(None)] * 2
        sl[axis] = slice(0, None, 2)
        out[tuple(sl)] = 0.75 * a + 0.25 * prev
        sl[axis] = slice(1, None, 2)
        out[tuple(sl)] = 0.75 * a + 0.25 * nxt
        a = out
    return a


def render(patient: dict, shot: dict, size: int, bank: np.ndarray) -> np.ndarray:
    """One radiograph, uint8 (size, size): anatomy drawn at half resolution (it is smooth at that scale, and
    4x cheaper), upsampled, then exposed, blurred and noised at full resolution."""
    half = size % 2 == 0 and size >= 128
    D = density(patient, shot, size // 2 if half else size, bank)
    if half:
        D = _upsample2(D)
    s = shot
    xi, yi = _grid(size)
    aa = 2.5 / size

    # 4. exposure: film response, heel effect, window, gamma, blur, quantum noise, marker, collimation
    img = 1.0 - np.exp(-s["k"] * np.maximum(D, 0.0))
    img *= 1.0 + s["heel"] * yi
    img = np.clip((img - s["lo"]) * (1.0 / (s["hi"] - s["lo"])), 0.0, 1.0) ** s["gamma"]
    img = gaussian_filter(img, sigma=s["blur"] * size / 256.0)
    nrng = np.random.default_rng(s["seed"])
    img += s["noise"] * (0.4 + img) * nrng.standard_normal(img.shape, dtype=np.float32)
    if s["marker"]:
        mx, my = 0.8 * s["marker_side"], -0.88
        mk = np.maximum(
            _sm(0.012 - np.abs(xi - mx), aa) * _sm(0.045 - np.abs(yi - my), aa),
            _sm(0.035 - np.abs(xi - mx - 0.025), aa) * _sm(0.011 - np.abs(yi - my - 0.035), aa),
        )
        img = np.maximum(img, 0.97 * mk)
    if s["collim"]:
        le, ri_, to, bo = s["collim_w"]
        keep = (
            _sm(xi + 1 - le, aa) * _sm(1 - ri_ - xi, aa) * _sm(yi + 1 - to / 2, aa) * _sm(1 - bo / 2 - yi, aa)
        )
        img = img * keep
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def density(patient: dict, shot: dict, size: int, bank: np.ndarray) -> np.ndarray:
    """Projected density (size, size). Coordinates: x, y in [-1, 1], y down, patient's left on the image right."""
    p, s, f = patient, shot, shot["findings"]
    xi, yi = _grid(size)
    c, sn, sc = np.cos(s["rot"]), np.sin(s["rot"]), s["scale"]
    x = ((xi - s["dx"]) * (c / sc) + (yi - s["dy"]) * (sn / sc)).astype(
        np.float32
    )  # body frame (pose undone)
    y = ((yi - s["dy"]) * (c / sc) - (xi - s["dx"]) * (sn / sc)).astype(np.float32)
    right = x > 0  # image right = patient's left
    u = np.abs(x)  # distance from the midline
    ap = s["view"] == "AP"
    aa = 2.5 / size  # anti-aliasing width (~1 px)
    W, med, soft = p["W"], p["med"], p["soft"]

    # 1. body: soft-tissue cylinder, neck and shoulders (dark air only in the upper corners), arms, breasts
    bw = p["body"] * (1.0 - 0.05 * (y - 0.1) ** 2)  # slightly barrel-shaped trunk
    top = (
        -1.0 + 0.4 * (u * (1.0 / p["body"])) ** 2 - 0.25 * np.exp(-((u * (1.0 / 0.22)) ** 4))
    )  # neck, shoulders
    body = _sm(bw - u, 0.06) * _sm(y - top, 0.06)
    D = 1.3 * soft * np.sqrt(np.clip(1.0 - (x / (bw + 0.02)) ** 2, 0.0, 1.0)) * body
    D *= 0.7 + 0.3 * _sm(y + 0.7, 0.4)  # neck and shoulders are thinner than the chest
    if s["arms"]:
        D += 0.5 * soft * _sm(0.12 - np.abs(u - bw - 0.16), 0.05) * _sm(y - top - 0.15, 0.1)
    if p["sex"] == "F":
        D += 0.16 * soft * _sm(1.0 - ((u - 0.45) / 0.34) ** 2 - ((y - p["base"] + 0.05) / 0.3) ** 2, 0.8)

    # 2. lungs: rounded apices, convex lateral walls, domed diaphragm with sharp costophrenic angles
    insp = s["insp"] + (0.05 if ap else 0.0)  # AP films are usually taken in shallower inspiration
    apex, base = p["apex"] + 0.5 * insp, p["base"] - insp
    base_s = np.where(right, np.float32(base), np.float32(base - p["dome_r"]))
    t = (y - apex) * (1.0 / (base - apex))  # 0 at the apex, 1 at the costophrenic angle
    tt = np.clip(t * 1.5, 0.0, 1.0)
    u_lat = p["apex_u"] + (W - p["apex_u"]) * np.sqrt(tt * (2.0 - tt)) + 0.04 * np.clip(t - 0.5, 0.0, 1.0)
    u_med = p["apex_u"] - (p["apex_u"] - med) * np.sqrt(np.clip(t * 4.0, 0.0, 1.0))
    dome = base_s - p["dome"] * np.clip(1.0 - ((u - 0.45 * W) * (1.0 / (0.58 * W))) ** 2, 0.0, 1.0)
    thorax = _sm(u_lat - u, aa * 3) * _sm(dome - y, aa * 2) * _sm(t, 0.03)
    lung = thorax * _sm(u - u_med, aa * 3)
    # air path length: thin at the medial and lateral edges, growing towards the bases
    depth = (0.6 + 0.4 * np.sqrt(np.clip((u - u_med) * 6.0, 0.0, 1.0))) * (0.65 + 0.45 * np.clip(t, 0.0, 1.0))
    depth *= 0.55 + 0.45 * np.sqrt(np.clip((u_lat - u) * 5.0, 0.0, 1.0))

    # mediastinum and heart: one central opacity; the heart bulges left (image right) above the left dome
    hr, hl = p["heart_r"], p["heart_l"]
    if f["Cardiomegaly"]:
        hr, hl = hr * 1.38, hl * 1.25
    if ap:
        hr, hl = hr * 1.08, hl * 1.08  # AP magnifies the heart
    y_ht = apex + p["heart_top"] * (base - apex)
    y_hb = base - p["dome"] * 0.7
    th = (y - y_ht) * (1.0 / (y_hb - y_ht))
    thc = np.clip(th, 0.0, 1.0)
    edge_r = med + (hr - med) * np.sin(np.clip(thc * 1.75, 0.0, np.pi / 2)) ** 0.7
    edge_l = med + (hl - med) * np.sin(np.pi * np.clip(0.15 + thc * 0.75, 0.0, 1.0)) ** 0.8
    heart = _sm(np.where(right, edge_r - x, edge_l + x), aa * 3) * _sm(th, 0.25) * _sm(dome + 0.08 - y, 0.05)
    band = _sm(med * (0.8 + 0.2 * np.clip(t, 0.0, 1.0)) - u, aa * 3)
    knob_x, knob_y = med - 0.03 + 0.25 * p["knob"], apex + 0.33 * (base - apex)
    knob = _sm(1.0 - ((x - knob_x) * 16.0) ** 2 - ((y - knob_y) * 10.0) ** 2, 1.0)
    central = np.maximum(np.maximum(band, heart), knob)
    carina = apex + 0.45 * (base - apex)
    trachea = _sm(0.035 - np.abs(x + 0.01), aa * 2) * _sm(carina - y, 0.03)
    D -= 0.3 * trachea * body

    # lung air (none inside the central opacity), effusion, pneumothorax, vessel markings
    lung = lung * (1.0 - central)
    air = 0.3 * thorax * (1.0 - 0.5 * heart) + 0.7 * lung * depth  # some lung lies behind the mediastinum
    side = np.where(right, np.float32(1.0), np.float32(-1.0))
    if f["Effusion"]:
        on = 1.0 if s["eff_side"] == 2 else (side == s["eff_side"]).astype(np.float32)
        meniscus = base_s - s["eff_h"] * (0.25 + 0.75 * np.clip((u - med) / (W - med), 0.0, 1.0) ** 1.6)
        fluid = on * _sm(y - meniscus, 0.06) * _sm(u_lat + 0.02 - u, 0.03)
        air = air * (1.0 - 0.9 * fluid)
        D += 0.12 * fluid
    markings = np.zeros_like(x)
    for k, sd in enumerate((-1.0, 1.0)):
        dxk = sd * x - (med + 0.05)  # mirrored, so both hila share one texture orientation
        dyk = y - (apex + 0.55 * (base - apex))
        rad = np.sqrt(dxk * dxk + dyk * dyk)
        ang = np.arctan2(dyk, dxk) * (1.0 / (2 * np.pi)) + p["bank_rot"][k]
        ai = (ang * _BANK_SHAPE[0]).astype(np.intp) % _BANK_SHAPE[0]
        ri = np.minimum(rad * (_BANK_SHAPE[1] / 0.9), _BANK_SHAPE[1] - 1).astype(np.intp)
        tex = bank[p["bank"][k], ai, ri] * np.exp(-rad * 1.6) + 0.8 * np.exp(-((rad * 9.0) ** 2))
        markings += tex * (side == sd)
    if f["Pneumothorax"]:
        on = (side == s["ptx_side"]).astype(np.float32)
        edge = u_lat - s["ptx_w"] * (1.0 - 0.6 * np.clip(t, 0.0, 1.0))
        ptx = on * _sm(u - edge, aa * 2) * _sm(0.85 - t, 0.1)
        markings *= 1.0 - ptx
        air = (
            air * (1.0 - 0.2 * on * (1.0 - ptx)) + 0.2 * ptx * lung
        )  # collapsed lung denser, free air darker
        D += 0.12 * on * lung * _sm(0.01 - np.abs(u - edge), aa) * _sm(0.85 - t, 0.1)  # visceral pleural line
    D -= p["air"] * soft * air
    D += 0.3 * markings * lung
    if f["Nodule"]:
        nu, nt, nside, nr = p["nodule"]
        ny = apex + nt * (base - apex)
        nx = nside * (med + 0.05 + nu * (W - med - 0.1))
        D += 0.35 * np.sqrt(np.clip(1.0 - ((x - nx) ** 2 + (y - ny) ** 2) * (1.0 / nr**2), 0.0, 1.0))
    if p["bubble"]:
        br = p["bubble_r"]
        bub = _sm(1.0 - ((x - 0.45 * W) / (1.4 * br)) ** 2 - ((y - base + p["dome"] * 0.5) / br) ** 2, 0.5)
        D -= 0.35 * bub * _sm(y - dome - 0.03, 0.02)

    # 3. bones: spine, posterior rib arches, fainter anterior ribs, clavicles, humeral heads
    bone = _sm(0.07 - u, 0.02) * 0.12
    vert = 0.105
    ph = (y - apex) * (1.0 / vert)
    disc = np.abs(ph - np.floor(ph) - 0.5)
    bone += 0.06 * _sm(0.07 - u, 0.02) * _sm(0.4 - disc, 0.1)
    span = (base + 0.02) - (apex - 0.03)
    n_rib = p["rib_n"]
    ur = np.clip(u * (1.0 / W), 0.0, 1.2)
    v = y - (apex - 0.03) + p["rib_arc"] * np.sin(np.pi * 0.7 * np.minimum(ur, 1.0)) - p["rib_drop"] * ur * ur
    phase = n_rib * np.clip(v * (1.0 / span), 0.0, None) ** 0.85
    fr = phase - np.floor(phase) - 0.5
    cage = (
        _sm(u_lat + 0.07 - u, 0.04)
        * _sm(u - 0.07, 0.03)
        * _sm(n_rib - phase, 0.3)
        * _sm(dome + 0.1 - y, 0.15)
    )
    bone += 0.09 * _band(fr, p["rib_w"] * 0.5) * cage
    va = y - (apex + 0.1) - 0.6 * (W - u)
    pha = (n_rib - 3) * np.clip(va * (1.0 / span), 0.0, None) ** 0.9
    fra = pha - np.floor(pha) - 0.5
    front = _sm(u_lat + 0.03 - u, 0.04) * _sm(u - 0.26, 0.1) * _sm(n_rib - 3 - pha, 0.3) * _sm(pha - 0.2, 0.3)
    bone += 0.06 * _band(fra, 0.2) * front * _sm(dome - y, 0.1)
    cy = apex + p["clav_y"] - (0.05 if ap else 0.0) - p["clav_tilt"] * u  # clavicles rise laterally
    cy += 0.04 * np.sin(np.pi * np.clip(u * 1.5, 0.0, 1.0))
    bone += 0.4 * _band(y - cy, 0.04, rim=0.5) * _sm(u - 0.07, 0.03) * _sm(0.85 - u, 0.08)
    hum = (
        1.0 - ((u - p["body"] + 0.06) * 6.0) ** 2 - ((y - top - 0.14) * 6.0) ** 2
    )  # humeral heads at the corners
    bone += 0.2 * _sm(hum, 0.6)
    D += p["bone"] * bone * body

    return D


# ----------------------------------------------------------------------------------------------------------------
# the dataset in NIH layout


def plan(n: int, seed: int) -> list[tuple[int, int]]:
    """(patient, follow_up) of each image: 1-5 images per patient, n in total."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    out: list[tuple[int, int]] = []
    patient = 0
    while len(out) < n:
        patient += 1
        k = int(rng.choice([1, 2, 3, 4, 5], p=[0.3, 0.25, 0.2, 0.15, 0.1]))
        out += [(patient, j) for j in range(min(k, n - len(out)))]
    return out


def _render_one(args: tuple[int, int, int, int]) -> tuple[np.ndarray, dict, dict]:
    seed, patient, follow, size = args
    pat = draw_patient(np.random.default_rng(np.random.SeedSequence([seed, 2, patient])))
    shot = draw_shot(np.random.default_rng(np.random.SeedSequence([seed, 3, patient, follow])), pat)
    return render(pat, shot, size, _bank_for(seed)), pat, shot


_BANK_CACHE: dict[int, np.ndarray] = {}


def _bank_for(seed: int) -> np.ndarray:
    if seed not in _BANK_CACHE:
        _BANK_CACHE.clear()
        _BANK_CACHE[seed] = vessel_bank(seed)
    return _BANK_CACHE[seed]


def phantom_image(seed: int, patient: int, follow_up: int = 0, size: int = 256) -> np.ndarray:
    """One phantom image, uint8 (size, size), exactly as :func:`make_phantom` writes it."""
    return _render_one((seed, patient, follow_up, size))[0]


def make_phantom(
    out_dir: str | Path, n: int, seed: int, size: int = 256, *, workers: int | None = None
) -> Path:
    """Write ``n`` phantom radiographs in NIH layout into ``out_dir`` (created; must not hold a dataset yet).

    ``images/<patient:08d>_<follow_up:03d>.png`` (8-bit grey, ``size``²), ``Data_Entry_2017.csv`` in the 2017
    format, and patient-disjoint ``train_val_list.txt`` / ``test_list.txt`` (about 80/20 of the patients).
    """
    if n <= 0 or size < 16:
        raise DataError(f"make_phantom needs n > 0 and size >= 16, got n={n}, size={size}")
    out = Path(out_dir)
    if (out / "Data_Entry_2017.csv").exists():
        raise FileExistsError(f"{out}: already holds a dataset (Data_Entry_2017.csv); use an empty folder")
    (out / "images").mkdir(parents=True, exist_ok=True)
    jobs = [(seed, pt, fu, size) for pt, fu in plan(n, seed)]
    procs = min(workers or os.cpu_count() or 1, max(1, n // 16))
    rows = []
    if procs > 1:
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(procs) as pool:
            results = pool.imap(_write_one, [(j, str(out)) for j in jobs], chunksize=16)
            rows = list(results)
    else:
        rows = [_write_one((j, str(out))) for j in jobs]

    # patient-disjoint split: shuffle patients, move them to the test list until ~20 % of the images are there
    patients = sorted({pt for _, pt, _, _ in jobs})
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4]))
    order = rng.permutation(patients)
    per = collections.Counter(pt for _, pt, _, _ in jobs)
    test: set[int] = set()
    n_test = 0
    for pt in order:
        if n_test >= 0.2 * n or len(test) >= len(patients) - 1:
            break
        test.add(int(pt))
        n_test += per[int(pt)]
    names = [r[0] for r in rows]
    in_test = [pt in test for _, pt, _, _ in jobs]
    (out / "train_val_list.txt").write_text(
        "".join(f"{nm}\n" for nm, t in zip(names, in_test, strict=True) if not t)
    )
    (out / "test_list.txt").write_text("".join(f"{nm}\n" for nm, t in zip(names, in_test, strict=True) if t))
    info = {"version": PHANTOM_VERSION, "n": n, "seed": seed, "size": size, "patients": len(patients)}
    (out / PHANTOM_INFO).write_text(json.dumps(info, indent=2) + "\n")
    lines = [CSV_HEADER] + [r[1] for r in rows]
    (out / "Data_Entry_2017.csv").write_text("\n".join(lines) + "\n")  # last: marks the dataset complete
    return out


def _write_one(arg: tuple[tuple[int, int, int, int], str]) -> tuple[str, str]:
    (seed, patient, follow, size), out = arg
    img, pat, shot = _render_one((seed, patient, follow, size))
    name = f"{patient:08d}_{follow:03d}.png"
    Image.fromarray(img, mode="L").save(Path(out) / "images" / name, compress_level=3)
    found = [k for k in FINDINGS if shot["findings"][k]]
    labels = "|".join(found) if found else "No Finding"
    age = min(pat["age"] + follow // 2, 99)
    row = (
        f"{name},{labels},{follow:03d},{patient:08d},{age:03d}Y,{pat['sex']},{shot['view']},"
        f"{size},{size},0.143,0.143"
    )
    return name, row


def phantom_root(n: int, seed: int) -> Path:
    """Where the default phantom dataset (n, seed) lives: ``<data_home>/phantom_v<V>_n<N>_s<seed>``.

    The generator version is part of the name, so a changed generator never reuses images drawn by an older one.
    """
    return data_home() / f"phantom_v{PHANTOM_VERSION}_n{n}_s{seed}"


def _check_phantom(root: Path, n: int, seed: int) -> None:
    """A dataset at ``root`` made with other settings than (n, seed) is refused, not used under their name."""
    try:
        info = json.loads((root / PHANTOM_INFO).read_text())
    except (OSError, json.JSONDecodeError):
        return  # not a phantom (an NIH folder given to this function directly): nothing to compare
    made = (info.get("n"), info.get("seed"))
    if made != (n, seed):
        raise DataError(
            f"{root}: holds a phantom made with phantom_n={made[0]}, phantom_seed={made[1]} ({PHANTOM_INFO}), "
            f"but data.phantom_n={n}, data.phantom_seed={seed} were asked for; leave data.root empty to get the "
            f"dataset of these settings, or set them to the folder's"
        )


def ensure_phantom(root: str | Path, n: int, seed: int, size: int = 256) -> Path:
    """``root`` if it already holds a dataset, else generate one there atomically (temp folder, then rename)."""
    root = Path(root)
    if (root / "Data_Entry_2017.csv").exists():
        _check_phantom(root, n, seed)
        return root
    remove_stale_tmp(root.parent)  # the half-made datasets of killed processes
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(
            f"{root}: exists but holds no complete phantom dataset (no Data_Entry_2017.csv); "
            f"remove it to regenerate"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(root.name), suffix=".tmp", dir=root.parent))
    os.chmod(tmp, DIR_MODE)  # mkdtemp makes it private; the dataset folder is as readable as any other
    try:
        make_phantom(tmp, n, seed, size)
        if root.exists():
            root.rmdir()  # empty (checked above)
        os.rename(tmp, root)
    except OSError:
        if (root / "Data_Entry_2017.csv").exists():  # another process finished the same dataset first
            return root
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
