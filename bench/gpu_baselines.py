"""Training throughput of each family's baseline at thesis size with mixed precision (issue 3 §4, GPU script).

For every family it builds the ``baseline`` preset under a profile (default ``thesis``: batch 128, 64x64 or the
family's thesis size, the thesis widths), sets ``train.precision`` (default fp16, as the thesis's accelerate run),
and runs ``--steps`` optimisation steps through the same pieces as :func:`xrutils.train.train`
(``make_step_context``: autocast + GradScaler + clipping; ``make_schedulers``; the model's ``training_step``).
Batches are synthetic uint8 images already on the device, so the numbers measure the model, not the data
pipeline (``bench/data.py`` measures that). Prints images/s and peak memory per family and one JSON line each.

    python bench/gpu_baselines.py                                  # on a CUDA machine: 300 steps per baseline
    python bench/gpu_baselines.py --profile smoke --steps 2        # anywhere: a quick check that it runs (CPU)

On CPU mixed precision is off (the config applies it on CUDA only) and peak memory is the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time

import torch

from xrutils import registry
from xrutils.data.ranges import to_range
from xrutils.registry import build_config
from xrutils.train import make_schedulers, make_step_context, resolve_device


def bench_family(family: str, args: argparse.Namespace) -> dict:
    cfg = build_config(
        family, "baseline", args.profile, {"train.precision": args.precision, "train.device": args.device}
    )
    device = resolve_device(cfg.train.device)
    model = registry.get(family).build(cfg).to(device)
    optimizers = model.configure_optimizers(cfg.train)
    warmup = min(args.warmup, args.steps)
    schedulers = make_schedulers(optimizers, cfg.train, total_steps=warmup + args.steps)
    ctx = make_step_context(cfg, device)
    g = torch.Generator().manual_seed(0)
    size, batch = cfg.data.image_size, cfg.train.batch_size
    pool = [
        to_range(
            torch.randint(0, 256, (batch, 1, size, size), generator=g, dtype=torch.uint8), model.value_range
        ).to(device)
        for _ in range(4)
    ]

    def step(i: int) -> dict[str, float]:
        ctx.step_index = i + 1
        losses = model.training_step(pool[i % len(pool)], optimizers, ctx)
        if ctx.scaler is not None:
            ctx.scaler.update()
        for s in schedulers.values():
            s.step()
        return losses

    model.train()
    for i in range(warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + args.steps):
        losses = step(i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    if not all(math.isfinite(v) for v in losses.values()):
        raise FloatingPointError(f"{family}: non-finite loss after {warmup + args.steps} steps: {losses}")
    if device.type == "cuda":
        peak_gib, peak_kind = torch.cuda.max_memory_allocated(device) / 2**30, "cuda_max_allocated"
    else:  # ru_maxrss is KiB on Linux
        peak_gib, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "process_peak_rss"
    return {
        "family": family,
        "preset": "baseline",
        "profile": args.profile,
        "device": str(device),
        "precision": cfg.train.precision if device.type == "cuda" else "fp32",
        "params": sum(v for k, v in model.param_counts().items() if k != "total"),
        "image_size": size,
        "batch_size": batch,
        "steps": args.steps,
        "ms_per_step": 1e3 * seconds / args.steps,
        "images_per_s": batch * args.steps / seconds,
        "peak_memory_gib": peak_gib,
        "peak_memory_kind": peak_kind,
        "last_loss": float(losses["loss"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="thesis", choices=("smoke", "demo", "thesis"))
    parser.add_argument("--steps", type=int, default=300, help="timed steps per family")
    parser.add_argument(
        "--warmup", type=int, default=20, help="untimed steps first (cuDNN autotune, allocator)"
    )
    parser.add_argument("--precision", default="fp16", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--families", default=",".join(registry.families()), help="comma-separated families (default: all)"
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # throughput, not bitwise reproducibility, is measured here

    rows = []
    for family in args.families.split(","):
        row = bench_family(family.strip(), args)
        rows.append(row)
        if row["device"].startswith("cuda"):
            torch.cuda.empty_cache()
        print(
            f"{row['family']:9s} {row['image_size']:4d}px batch {row['batch_size']:4d} {row['precision']:5s} "
            f"{row['params']:>11,d} params  {row['ms_per_step']:9.1f} ms/step  {row['images_per_s']:9.1f} img/s  "
            f"peak {row['peak_memory_gib']:.2f} GiB ({row['peak_memory_kind']})",
            flush=True,
        )
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
