"""Do bf16 samples agree with fp32 ones? A trained DDPM's samples drawn from the same noise in fp32 and under bf16
autocast, against fp32 samples of another seed (issue 11 §4: ``eval.precision``).

Prints the per-pixel gap between the same-noise fp32 and bf16 images (in 8-bit levels), and FD8 (the Fréchet
distance of 8x8-pooled images) between them next to FD8 between two fp32 seeds: bf16 "agrees" when its gap is far
below the seeds'. CPU autocast runs bf16 matmuls and convolutions with fp32 accumulation, as a GPU's do.

    .venv/bin/python bench/sampling_precision.py RUN_DIR [--sampler ddpm] [--steps 1000] [--n 48]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from xrutils.checkpoints import load_model
from xrutils.data.ranges import to_uint8
from xrutils.evaluators.metrics import pooled_fd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a DDPM run folder (its newest checkpoint is sampled)")
    parser.add_argument("--sampler", default="ddpm", choices=("ddpm", "ddim"))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--n", type=int, default=48)
    args = parser.parse_args(argv)
    _, model = load_model(args.run_dir)

    def draw(seed: int, bf16: bool) -> tuple[torch.Tensor, float]:
        g = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            x = model.sample(args.n, g, sampler=args.sampler, steps=args.steps)
        return to_uint8(x.float(), model.value_range), time.perf_counter() - t0

    (a, ta), (b, tb), (c, tc) = draw(0, False), draw(0, True), draw(1, False)
    gap = (a.float() - b.float()).abs()
    out = {
        "sampler": f"{args.sampler}{args.steps}",
        "n": args.n,
        "mean_level_gap": gap.mean().item(),
        "max_level_gap": gap.max().item(),
        "fd8_fp32_vs_bf16": pooled_fd(a, b),
        "fd8_seed0_vs_seed1": pooled_fd(a, c),
        "seconds": {"fp32": ta, "bf16": tb, "fp32_seed1": tc},
    }
    print(
        f"{out['sampler']}, {args.n} samples: bf16 vs fp32 from the same noise: mean gap {out['mean_level_gap']:.2f} "
        f"levels (max {out['max_level_gap']:.0f}), FD8 {out['fd8_fp32_vs_bf16']:.2g}; two fp32 seeds: FD8 "
        f"{out['fd8_seed0_vs_seed1']:.2g}"
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
