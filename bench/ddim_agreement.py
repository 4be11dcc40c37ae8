"""Does the fast DDIM-K sampler judge a DDPM checkpoint as the full 1000-step ancestral chain does? (issue 10)

For one DDPM run's checkpoint it draws the same number of samples with DDIM at several K and with the DDPM chain of
the model's training schedule (T steps), from the same seed, and prints for each: the wall time, FD8 against the
run's held-out real images (the test split, whole patients), and FD8 against the DDPM-T samples themselves (how far
DDIM-K is from what the thesis sampled). Real vs real is about 0.1 on the phantom; noise 3-6.

    .venv/bin/python bench/ddim_agreement.py RUN_DIR [--epoch E] [--n 256] [--steps 10 50]

Ends with one JSON object {sampler: {"seconds", "fd8_real", "fd8_to_ddpm"}}.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch

from xrutils.checkpoints import load_model
from xrutils.data import load_images
from xrutils.evaluators.metrics import pooled_fd
from xrutils.evaluators.samples import generate_uint8


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--epoch", type=int, default=None, help="default: the newest checkpoint")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--steps", type=int, nargs="+", default=[10, 50])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    cfg, model = load_model(args.run_dir, args.epoch)
    if cfg.family != "ddpm":
        raise SystemExit(f"{args.run_dir}: a {cfg.family} run; expected a DDPM run")
    real = load_images(replace(cfg.data, max_images=0, hflip=False), split="test", progress=False).images
    samples, out = {}, {}
    for name, options in [
        *((f"ddim{k}", {"sampler": "ddim", "steps": k}) for k in args.steps),
        (f"ddpm{model.cfg.timesteps}", {"sampler": "ddpm"}),
    ]:
        start = time.perf_counter()
        with torch.no_grad():
            samples[name] = generate_uint8(
                model,
                args.n,
                generator=torch.Generator().manual_seed(args.seed),
                batch_size=64,
                options=options,
            )
        out[name] = {
            "seconds": round(time.perf_counter() - start, 1),
            "fd8_real": round(pooled_fd(real, samples[name]), 3),
        }
        print(f"{name}: {out[name]['seconds']} s, FD8 vs held-out reals {out[name]['fd8_real']}", flush=True)
    full = samples[f"ddpm{model.cfg.timesteps}"]
    for name in out:
        out[name]["fd8_to_ddpm"] = round(pooled_fd(full, samples[name]), 3)
        print(
            f"{name:10s} {out[name]['seconds']:7.1f} s   FD8 vs held-out reals {out[name]['fd8_real']:.3f}   "
            f"FD8 vs DDPM-{model.cfg.timesteps} samples {out[name]['fd8_to_ddpm']:.3f}"
        )
    print(f"({args.run_dir}, {cfg.data.image_size}², {args.n} samples, {real.shape[0]} held-out reals)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
