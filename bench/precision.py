"""Does bf16 autocast change what a family learns? Loss curves of bf16 against fp32 on the CPU (issue 11 §2).

For each family it trains the demo profile's baseline on its own data three times, through the training loop's own
pieces (``make_step_context``, ``make_schedulers``, ``batches``, the model's ``training_step``): fp32 with seed 0,
fp32 with seed 1, and bf16 autocast with seed 0 (the same initial weights, batches and noise as the first). The
loss curves are compared in windows of ``--window`` steps (the mean loss of each window):

* ``bf16_gap``: the largest relative gap between the bf16 and the fp32 curve of seed 0;
* ``seed_gap``: the largest relative gap between the two fp32 curves (how far a run's curve moves when only its
  seed changes): the tolerance. bf16 "does not change the result" when ``bf16_gap <= seed_gap``.

CPU autocast runs bf16 matmuls and convolutions as a GPU's would (fp32 accumulation), slower than fp32 here; the
numbers are about precision, not speed.

    .venv/bin/python bench/precision.py [--steps 150] [--window 25] [--families gan,vae,pixelcnn,ddpm]

The last line is one JSON object with every curve's windows and the gaps.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time

import torch

from xrutils import registry
from xrutils.data import batches, load_images
from xrutils.registry import build_config
from xrutils.seeding import make_generator, seed_everything
from xrutils.train import make_schedulers, make_step_context


def curve(family: str, seed: int, bf16: bool, steps: int, images: torch.Tensor) -> list[float]:
    """Per-step losses of ``steps`` steps of the demo baseline (seed ``seed``; bf16 autocast when ``bf16``)."""
    cfg = build_config(family, "baseline", "demo", {"train.device": "cpu"}, seed=seed)
    seed_everything(cfg.seed)
    model = registry.get(family).build(cfg)
    optimizers = model.configure_optimizers(cfg.train)
    schedulers = make_schedulers(optimizers, cfg.train, total_steps=steps)
    ctx = make_step_context(cfg, torch.device("cpu"))
    if bf16:
        ctx.autocast_dtype = torch.bfloat16  # the config applies autocast on CUDA only; here it is forced
    data_rng = make_generator(cfg.seed, "data")
    model.train()
    losses: list[float] = []
    while len(losses) < steps:
        epoch = batches(
            images,
            cfg.train.batch_size,
            value_range=model.value_range,
            generator=data_rng,
            hflip=cfg.data.hflip,
        )
        for batch in itertools.islice(epoch, steps - len(losses)):
            ctx.step_index = len(losses) + 1
            losses.append(float(model.training_step(batch, optimizers, ctx)["loss"]))
            for s in schedulers.values():
                s.step()
    return losses


def windows(values: list[float], width: int) -> list[float]:
    return [sum(values[i : i + width]) / len(values[i : i + width]) for i in range(0, len(values), width)]


def gap(a: list[float], b: list[float]) -> float:
    """The largest relative gap between two windowed curves."""
    return max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--families", default=",".join(registry.families()))
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {}
    for family in args.families.split(","):
        cfg = build_config(family, "baseline", "demo")
        images = load_images(cfg.data, progress=False).images
        t0 = time.perf_counter()
        runs = {
            "fp32_seed0": curve(family, 0, False, args.steps, images),
            "fp32_seed1": curve(family, 1, False, args.steps, images),
            "bf16_seed0": curve(family, 0, True, args.steps, images),
        }
        w = {k: windows(v, args.window) for k, v in runs.items()}
        row = {
            "bf16_gap": gap(w["bf16_seed0"], w["fp32_seed0"]),
            "seed_gap": gap(w["fp32_seed1"], w["fp32_seed0"]),
            "windows": w,
            "seconds": time.perf_counter() - t0,
        }
        row["bf16_within_seed_gap"] = row["bf16_gap"] <= row["seed_gap"]
        out[family] = row
        print(
            f"{family:9s} {args.steps} steps, windows of {args.window}: bf16 vs fp32 {row['bf16_gap']:.2%}, "
            f"seed 1 vs seed 0 {row['seed_gap']:.2%} -> "
            f"{'within' if row['bf16_within_seed_gap'] else 'OUTSIDE'} the seeds' spread "
            f"(final window: fp32 {w['fp32_seed0'][-1]:.5g}, bf16 {w['bf16_seed0'][-1]:.5g}, "
            f"seed 1 {w['fp32_seed1'][-1]:.5g}; {row['seconds']:.0f} s)",
            flush=True,
        )
    print(json.dumps({"steps": args.steps, "window": args.window, "families": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
