"""Draw docs/phantom_vs_nih.png: phantom X-rays next to real NIH ChestX-ray14 images, both at 64x64.

    .venv/bin/python docs/phantom_vs_nih.py [--nih-root DIR] [--out docs/phantom_vs_nih.png]

Real images come from --nih-root, else $XRUTILS_NIH_ROOT, else ../shared/nih_sample; both sides go through the
same resize as training (torchvision Resize, bilinear, antialiased), so the panel shows what the models see.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from xrutils.data.cache import resize_gray  # noqa: E402
from xrutils.data.nih import decode_image, find_images  # noqa: E402
from xrutils.data.phantom import phantom_image, plan  # noqa: E402
from xrutils.paths import nih_root_from_env  # noqa: E402


def _tile(images: list[np.ndarray], cols: int, pad: int = 2) -> np.ndarray:
    s = images[0].shape[0]
    rows = -(-len(images) // cols)
    out = np.full((rows * (s + pad) - pad, cols * (s + pad) - pad), 255, dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (s + pad) : r * (s + pad) + s, c * (s + pad) : c * (s + pad) + s] = im
    return out


def compare_grid(
    out: str | Path, nih_root: str | Path | None, *, n: int = 16, size: int = 64, seed: int = 0, cols: int = 4
) -> Path:
    """Save a two-panel figure: ``n`` phantom images (seed ``seed``, one per patient) and ``n`` NIH images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    patients = [pt for pt, fu in plan(4 * n, seed) if fu == 0][:n]  # first image of n different patients
    phantom = [
        resize_gray(Image.fromarray(phantom_image(seed, pt, 0, 256), mode="L"), size) for pt in patients
    ]
    panels = [(_tile(phantom, cols), f"phantom (built-in), {size}x{size}\nseed {seed}, native 256x256")]
    if nih_root is not None and Path(nih_root).is_dir():
        paths = sorted(find_images(nih_root).items())[:n]
        real = [resize_gray(decode_image(p), size) for _, p in paths]
        panels.append(
            (
                _tile(real, cols),
                f"NIH ChestX-ray14 (real), {size}x{size}\n{len(real)} images from {Path(nih_root).name}/",
            )
        )
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5.8), squeeze=False)
    for ax, (img, title) in zip(axes[0], panels, strict=True):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=11)
        ax.axis("off")
    fig.suptitle("Phantom chest X-rays vs. real NIH images at training resolution", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nih-root", default=None)
    ap.add_argument("--out", default=str(REPO / "docs" / "phantom_vs_nih.png"))
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root = args.nih_root or nih_root_from_env() or (REPO.parent / "shared" / "nih_sample")
    print(compare_grid(args.out, root, n=args.n, seed=args.seed))


if __name__ == "__main__":
    main()
