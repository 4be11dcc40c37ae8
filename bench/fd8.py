"""FD8 of runs' sample grids: did the models learn? (issue 8)

FD8 is the Fréchet distance between images average-pooled to 8 x 8 (64 numbers in [0, 1]); see
``xrutils.evaluators.metrics.pooled_fd``. For each run folder it compares the first and the last fixed-noise grid
with the run's own training images (real vs real is about 0.1 on the phantom, 0.2 on NIH; noise 3-6).

    .venv/bin/python bench/fd8.py [RUN_DIR ...]        (default: runs/demo/*__baseline)

One line per run, then one JSON object {run: {"first": fd8, "last": fd8, "epochs": [first, last]}}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from xrutils.data import load_images
from xrutils.evaluators.metrics import pooled_fd
from xrutils.runs import RunDir, read_grid


def run_fd8(run_dir: str | Path) -> dict:
    rd = RunDir(run_dir)
    cfg = rd.read_config()
    epochs = rd.grid_epochs()
    if not epochs:
        raise SystemExit(f"{run_dir}: no sample grids in {rd.samples_dir}")
    real = load_images(cfg.data, progress=False).images
    fd = {
        e: pooled_fd(real, read_grid(rd.sample_path(e), cfg.data.image_size, cfg.train.n_grid))
        for e in (epochs[0], epochs[-1])
    }
    return {
        "first": round(fd[epochs[0]], 3),
        "last": round(fd[epochs[-1]], 3),
        "epochs": [epochs[0], epochs[-1]],
        "n_real": int(real.shape[0]),
    }


if __name__ == "__main__":
    dirs = sys.argv[1:] or sorted(str(p) for p in Path("runs/demo").glob("*__baseline"))
    out = {}
    for d in dirs:
        out[Path(d).name] = r = run_fd8(d)
        print(
            f"{Path(d).name:28s} FD8 {r['first']:.3f} (epoch {r['epochs'][0]}) -> {r['last']:.3f} "
            f"(epoch {r['epochs'][1]})"
        )
    print(json.dumps(out))
