"""Each family's thesis baseline on this machine's GPU next to the plan's prediction (issue 11 §5).

Three parts, each number printed beside what :mod:`xrutils.plan` predicts for the same GPU, with the error:

* **training**: each family's thesis ``baseline`` for ``--steps`` optimisation steps (200), and the full thesis
  PixelCNN at 128² (``pixelcnn/size128``) for ``--long-steps`` (30), through the training loop's own pieces: the
  config's precision (DDPM fp16, PixelCNN bf16, GAN and VAE fp32 with TF32), what ``plan.check_fits`` switches on
  for this GPU's memory (activation checkpointing, micro-batches), ``train.gpu_settings`` (TF32, cuDNN's
  autotuner, channels_last), batches cut by ``data.loader.batches`` from uint8 images on the device (the loop's
  GPU-resident dataset; random pixels, so the numbers are the model's, not the NIH reader's: ``bench/data.py``), the
  losses summed on the device and read every ``train.log_every`` steps. Measured: images/s after ``--warmup``
  untimed steps, and the peak of ``torch.cuda.max_memory_allocated`` (tensors; the plan's peak less its
  ``CUDA_OVERHEAD_GB`` is compared with it).
* **sampling**: each family's evaluation sampler at the evaluation's sampling batch (``eval.sampling_batch``;
  DDPM bf16 autocast, 512 a batch), timed on a second batch after a first one; the DDPM's chain is timed over
  ``--ddpm-passes`` UNet passes (20) and extrapolated to its 1,000.
* **fit**: the utilisation and launch cost these measurements imply (least squares of ``seconds = FLOPs / (peak x
  u) + kernels x launch`` over every row), to set ``plan.UTILISATION`` and ``plan.LAUNCH_S`` from.

``--budget-s`` bounds the whole script: a part whose predicted time (x 3) no longer fits is skipped and says so.
``--out DIR`` writes ``gpu_baselines.json`` (every row) and ``gpu_baselines.md`` (the tables for
docs/PERFORMANCE.md). ``bash bench/gpu_check.sh`` runs this and a DDP run in one call on a lent GPU.

    python bench/gpu_baselines.py --out bench/out                  # on a CUDA machine (--budget-s bounds it; not yet timed)
    python bench/gpu_baselines.py --profile smoke --steps 2 --warmup 1 --device cpu    # anywhere: that it runs

On a CPU mixed precision is off (the config applies it on CUDA only), the plan's measures and GPU settings do not
apply, peak memory is the process's peak RSS, and the errors and the fit are left out (the predictions are a GPU's).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import resource
import sys
import time
from pathlib import Path

import torch

from xrutils import plan, registry
from xrutils.data.loader import batches
from xrutils.evaluators.samples import applied_precision, generate_uint8, sampler_spec
from xrutils.registry import build_config
from xrutils.train import gpu_settings, make_schedulers, make_step_context, resolve_device

# (name, family, preset, long): the thesis baselines, then the full PixelCNN at 128² (a short run)
RUNS = [(f"{f}/baseline", f, "baseline", False) for f in ("gan", "vae", "pixelcnn", "ddpm")] + [
    ("pixelcnn/size128", "pixelcnn", "size128", True)
]


class Clock:
    """The script's time budget: what is left, and whether a part predicted to take ``seconds`` still fits."""

    def __init__(self, budget_s: float):
        self.end = time.perf_counter() + budget_s

    def left(self) -> float:
        return self.end - time.perf_counter()

    def fits(self, seconds: float) -> bool:
        return 3 * seconds + 5 <= self.left()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _gpu(device: torch.device, fallback: str) -> tuple[str, plan.GPU]:
    """The plan's GPU kind of this device (by name; ``fallback`` on a CPU or an unknown card)."""
    key = plan.gpu_of(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    key = key or fallback
    return key, plan.GPUS[key]


def _config(family: str, preset: str, args: argparse.Namespace):
    overrides = {
        "train.device": args.device,
        **({"train.precision": args.precision} if args.precision else {}),
    }
    return build_config(family, preset, args.profile, overrides)


def _error(measured: float | None, predicted: float | None) -> float | None:
    """measured / predicted - 1 (None where either is missing)."""
    if measured is None or not predicted:
        return None
    return measured / predicted - 1


def _peak_gb(device: torch.device) -> tuple[float, float | None, str]:
    """(peak GB, reserved GB or None, what the peak is)."""
    if device.type == "cuda":
        return (
            torch.cuda.max_memory_allocated(device) / 1e9,
            torch.cuda.max_memory_reserved(device) / 1e9,
            "cuda_max_allocated",
        )
    return (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
        None,
        "process_peak_rss",
    )  # KiB on Linux


def _train_steps(
    cfg, measures: plan.Measures, device: torch.device, warmup: int, steps: int
) -> tuple[float, float]:
    """``warmup`` then ``steps`` timed training steps as the loop takes them; (timed seconds, mean loss). The peak
    memory statistics are reset after the warm-up."""
    cuda = device.type == "cuda"
    model = registry.get(cfg.family).build(cfg).to(device)
    micro = 0
    if cuda:
        model.set_checkpointing(measures.checkpointing)
        micro = measures.micro_batch
        gpu_settings(model, cfg)
    optimizers = model.configure_optimizers(cfg.train)
    schedulers = make_schedulers(optimizers, cfg.train, total_steps=warmup + steps)
    ctx = make_step_context(cfg, device)
    ctx.micro_batch = micro
    g = torch.Generator().manual_seed(0)
    size, batch = cfg.data.image_size, cfg.train.batch_size
    images = torch.randint(0, 256, (4 * batch, 1, size, size), generator=g, dtype=torch.uint8).to(device)

    def stream():
        while True:
            yield from batches(
                images, batch, value_range=model.value_range, generator=g, hflip=cfg.data.hflip, device=device
            )

    source = stream()
    sums: dict[str, torch.Tensor] = {}

    def step(i: int) -> None:
        ctx.step_index = i + 1
        losses = model.training_step(next(source), optimizers, ctx)
        if ctx.scaler is not None:
            ctx.scaler.update()
        for s in schedulers.values():
            s.step()
        for k, v in losses.items():  # summed on the device, as the loop does
            sums[k] = sums[k] + v if k in sums else v
        if (i + 1) % cfg.train.log_every == 0:
            float(sums["loss"])  # the loop's host read every log_every steps

    model.train()
    for i in range(warmup):
        step(i)
    _sync(device)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    _sync(device)
    return time.perf_counter() - t0, float(sums["loss"]) / (warmup + steps)


def train_row(
    name: str, family: str, preset: str, steps: int, args: argparse.Namespace, clock: Clock
) -> dict:
    """``steps`` timed training steps of one run, as the loop takes them, beside the plan's prediction."""
    cfg = _config(family, preset, args)
    device = resolve_device(cfg.train.device)
    cuda = device.type == "cuda"
    _, gpu = _gpu(device, args.gpu)
    memory_gb = torch.cuda.get_device_properties(device).total_memory / 1e9 if cuda else gpu.memory_gb
    measures = plan.choose_measures(cfg, memory_gb)  # what the loop switches on (plan.check_fits on CUDA)
    half = cuda and cfg.train.precision in ("fp16", "bf16")
    predicted_step_s = plan.gpu_seconds(measures.step, 1, gpu, cfg.train.precision in ("fp16", "bf16"))
    row = {
        "part": "training",
        "run": name,
        "family": family,
        "image_size": cfg.data.image_size,
        "batch_size": cfg.train.batch_size,
        "precision": cfg.train.precision if cuda else "fp32",
        "measures": measures.names if cuda else [],
        "step_flops": measures.step.flops,
        "step_kernels": measures.step.kernels,
        "peak_tflops": (gpu.tflops_half if half else gpu.tflops_fp32) if cuda else None,
        "predicted_images_per_s": cfg.train.batch_size / predicted_step_s,
        "predicted_peak_memory_gb": measures.peak_memory_gb,
        "fits": measures.peak_memory_gb <= memory_gb,
    }
    warmup = min(args.warmup, steps)
    if not clock.fits(predicted_step_s * (warmup + steps) if cuda else 0):
        return {**row, "skipped": f"budget: {clock.left():.0f} s left"}
    if cuda and not row["fits"]:
        return {**row, "skipped": f"predicted not to fit {memory_gb:.0f} GB"}

    seconds, loss = _train_steps(cfg, measures, device, warmup, steps)
    if not math.isfinite(loss):
        raise FloatingPointError(f"{name}: non-finite mean loss after {warmup + steps} steps")
    peak, reserved, peak_kind = _peak_gb(device)
    if cuda:
        torch.cuda.empty_cache()
    images_per_s = cfg.train.batch_size * steps / seconds
    tensors_gb = measures.peak_memory_gb - plan.CUDA_OVERHEAD_GB  # the plan's peak without the CUDA context
    return {
        **row,
        "steps": steps,
        "seconds": seconds,
        "images_per_s": images_per_s,
        "mean_loss": loss,
        "peak_memory_gb": peak,
        "reserved_memory_gb": reserved,
        "peak_memory_kind": peak_kind,
        "images_per_s_error": _error(images_per_s, row["predicted_images_per_s"]) if cuda else None,
        "peak_memory_error": _error(peak, tensors_gb) if cuda else None,
        "implied_utilisation": measures.step.flops * steps / seconds / (row["peak_tflops"] * 1e12)
        if cuda
        else None,
        "work": {"seconds": seconds / steps, "flops": measures.step.flops, "kernels": measures.step.kernels},
    }


def _time_sampling(
    cfg, device: torch.device, batch: int, options: dict, precision: str
) -> tuple[float, float]:
    """Seconds of a first batch (cuDNN's autotuner, the allocator) and of a second one, drawn as the evaluators draw."""
    model = registry.get(cfg.family).build(cfg).to(device).eval()
    if device.type == "cuda":  # as checkpoints.load_model prepares the evaluators' models
        gpu_settings(model, cfg)
    g = torch.Generator(device=device).manual_seed(0)

    def draw() -> float:
        t0 = time.perf_counter()
        generate_uint8(model, batch, generator=g, batch_size=batch, options=options, precision=precision)
        _sync(device)
        return time.perf_counter() - t0

    return draw(), draw()


def sampling_row(family: str, args: argparse.Namespace, clock: Clock) -> dict:
    """One batch of the family's evaluation sampler (timed after a first batch), beside the plan's prediction."""
    cfg = _config(family, "baseline", args)
    device = resolve_device(cfg.train.device)
    cuda = device.type == "cuda"
    _, gpu = _gpu(device, args.gpu)
    timesteps = getattr(cfg.model, "timesteps", None)
    spec = sampler_spec(family, cfg.eval, timesteps)
    batch = cfg.eval.sampling_batch
    full_passes = plan.sampling_passes(
        cfg, cfg.eval.sampler, cfg.eval.sampler_steps if cfg.eval.sampler == "ddim" else None
    )
    options = dict(spec.options)
    passes = full_passes
    if family == "ddpm":  # the chain timed over a few passes; each pass costs the same
        passes = min(args.ddpm_passes, full_passes)
        options["steps"] = passes
    half = applied_precision(spec.precision, device) == "bf16"
    one = plan.count_sampling_pass(cfg, batch)
    wave = plan.pixelcnn_wavefronts(cfg) if family == "pixelcnn" else 1
    flops, predicted_s = plan.sampling_price(
        cfg, gpu, batch, passes, half=spec.precision == "bf16", one=one, wave=wave
    )
    row = {
        "part": "sampling",
        "run": f"{family}/baseline",
        "family": family,
        "image_size": cfg.data.image_size,
        "batch_size": batch,
        "sampler": spec.tag,
        "precision": "bf16" if half else "fp32",
        "passes_timed": passes,
        "passes_full": full_passes,
        "predicted_seconds_per_batch": predicted_s,
    }
    if not clock.fits(2 * predicted_s if cuda else 0):
        return {**row, "skipped": f"budget: {clock.left():.0f} s left"}
    first, seconds = _time_sampling(cfg, device, batch, options, spec.precision)
    if cuda:
        torch.cuda.empty_cache()
    scale = full_passes / passes
    return {
        **row,
        "first_batch_seconds": first,
        "seconds_per_batch": seconds,
        "full_chain_seconds_per_batch": seconds * scale,
        "predicted_full_chain_seconds_per_batch": predicted_s * scale,
        "images_per_s": batch / (seconds * scale),
        "seconds_error": _error(seconds, predicted_s) if cuda else None,
        "implied_utilisation": flops / seconds / ((gpu.tflops_half if half else gpu.tflops_fp32) * 1e12)
        if cuda
        else None,
        "work": {
            "seconds": seconds,
            "flops": flops,
            "kernels": passes * one.kernels * wave,
            "peak_tflops": gpu.tflops_half if half else gpu.tflops_fp32,
        },
    }


def fit(rows: list[dict]) -> dict | None:
    """The utilisation u and launch cost L that best explain the measured seconds (least squares of
    ``seconds = FLOPs / (peak u) + kernels L`` over the measured rows, L at least 0); None under two rows."""
    pts = []
    for r in rows:
        w = r.get("work")
        if not w or r.get("implied_utilisation") is None:
            continue
        peak = (w.get("peak_tflops") or r.get("peak_tflops")) * 1e12
        pts.append((w["flops"] / peak, float(w["kernels"]), w["seconds"]))
    if len(pts) < 2:
        return None
    a = torch.tensor([[p[0], p[1]] for p in pts], dtype=torch.float64)
    t = torch.tensor([p[2] for p in pts], dtype=torch.float64)
    # relative errors: each row weighs as much as the others whatever its length
    w = 1 / t
    coef = torch.linalg.lstsq(a * w[:, None], t * w).solution
    if coef[1] < 0:  # launches cannot give time back: fit the FLOP term alone
        coef = torch.tensor([float((a[:, 0] * w * t * w).sum() / ((a[:, 0] * w) ** 2).sum()), 0.0])
    inv_u, launch = float(coef[0]), float(coef[1])
    predicted = a @ torch.tensor([inv_u, launch], dtype=torch.float64)
    return {
        "utilisation": 1 / inv_u if inv_u > 0 else None,
        "launch_s": launch,
        "rows": len(pts),
        "max_relative_error": float(((predicted - t).abs() / t).max()),
        "assumed": {"utilisation": plan.UTILISATION, "launch_s": plan.LAUNCH_S},
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.0%}"


def markdown(meta: dict, rows: list[dict], fitted: dict | None) -> str:
    """The tables for docs/PERFORMANCE.md."""
    lines = [
        f"Measured {meta['date']} on {meta['device']} (torch {meta['torch']}; plan's GPU kind {meta['gpu_kind']}).",
        "",
        "| run | size | precision | measures | images/s: measured / predicted (error) | peak GB: measured / "
        "predicted tensors (error) |",
        "|---|---|---|---|---|---|",
    ]
    for r in (r for r in rows if r["part"] == "training"):
        if "skipped" in r:
            lines.append(
                f"| {r['run']} | {r['image_size']}² | {r['precision']} | | skipped: {r['skipped']} | |"
            )
            continue
        tensors = r["predicted_peak_memory_gb"] - plan.CUDA_OVERHEAD_GB
        lines.append(
            f"| {r['run']} | {r['image_size']}² | {r['precision']} | {', '.join(r['measures']) or 'none'} | "
            f"{r['images_per_s']:,.0f} / {r['predicted_images_per_s']:,.0f} ({_pct(r['images_per_s_error'])}) | "
            f"{r['peak_memory_gb']:.1f} / {tensors:.1f} ({_pct(r['peak_memory_error'])}) |"
        )
    lines += [
        "",
        "| sampler | batch | precision | seconds a batch, full chain: measured / predicted (error) | images/s |",
        "|---|---|---|---|---|",
    ]
    for r in (r for r in rows if r["part"] == "sampling"):
        if "skipped" in r:
            lines.append(
                f"| {r['run']} {r['sampler']} | {r['batch_size']} | {r['precision']} | skipped: {r['skipped']} | |"
            )
            continue
        lines.append(
            f"| {r['run']} {r['sampler']} | {r['batch_size']} | {r['precision']} | "
            f"{r['full_chain_seconds_per_batch']:.2f} / {r['predicted_full_chain_seconds_per_batch']:.2f} "
            f"({_pct(r['seconds_error'])}) | {r['images_per_s']:,.1f} |"
        )
    if fitted:
        lines += [
            "",
            f"Fit over {fitted['rows']} rows: utilisation {fitted['utilisation']:.2f} (assumed "
            f"{plan.UTILISATION:.2f}), launch {fitted['launch_s'] * 1e6:.1f} us (assumed {plan.LAUNCH_S * 1e6:.0f}); "
            f"largest relative error of the fitted model {fitted['max_relative_error']:.0%}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="thesis", choices=("smoke", "demo", "thesis"))
    parser.add_argument("--steps", type=int, default=200, help="timed steps per baseline")
    parser.add_argument("--long-steps", type=int, default=30, help="timed steps of the 128² PixelCNN")
    parser.add_argument(
        "--warmup", type=int, default=10, help="untimed steps first (cuDNN autotune, allocator)"
    )
    parser.add_argument("--ddpm-passes", type=int, default=20, help="UNet passes timed of the DDPM's chain")
    parser.add_argument(
        "--precision", default=None, choices=("fp32", "fp16", "bf16"), help="default: the config's"
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--gpu", default="h200", choices=tuple(plan.GPUS), help="the plan's GPU kind off CUDA"
    )
    parser.add_argument("--runs", default=",".join(r[0] for r in RUNS), help="comma-separated (default: all)")
    parser.add_argument("--no-sampling", action="store_true", help="training only")
    parser.add_argument(
        "--budget-s", type=float, default=1e9, help="skip parts that no longer fit this budget"
    )
    parser.add_argument("--out", type=Path, default=None, help="write gpu_baselines.json and .md here")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps < 1 or args.long_steps < 1:
        parser.error("--steps and --long-steps must be >= 1")
    wanted = [r.strip() for r in args.runs.split(",") if r.strip()]
    known = {r[0]: r for r in RUNS}
    unknown = [r for r in wanted if r not in known]
    if unknown:
        parser.error(f"unknown runs {unknown}; expected some of {', '.join(known)}")
    clock = Clock(args.budget_s)
    device = resolve_device(args.device)
    kind, _ = _gpu(device, args.gpu)
    meta = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "gpu_kind": kind,
        "profile": args.profile,
    }
    print(json.dumps(meta), flush=True)

    rows = []
    for name in wanted:
        _, family, preset, long = known[name]
        row = train_row(name, family, preset, args.long_steps if long else args.steps, args, clock)
        rows.append(row)
        _print(row)
    if not args.no_sampling:
        for family in dict.fromkeys(known[n][1] for n in wanted):
            row = sampling_row(family, args, clock)
            rows.append(row)
            _print(row)
    fitted = fit(rows)
    if fitted:
        print(json.dumps({"fit": fitted}), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_baselines.json").write_text(
            json.dumps({**meta, "rows": rows, "fit": fitted}, indent=1) + "\n"
        )
        (args.out / "gpu_baselines.md").write_text(markdown(meta, rows, fitted))
    return 0


def _print(row: dict) -> None:
    if "skipped" in row:
        print(f"{row['part']:8s} {row['run']:18s} skipped: {row['skipped']}", flush=True)
    elif row["part"] == "training":
        print(
            f"training {row['run']:18s} {row['image_size']:4d}px {row['precision']:5s} "
            f"{row['images_per_s']:9.1f} img/s (predicted {row['predicted_images_per_s']:9.1f}, "
            f"{_pct(row['images_per_s_error'])})  peak {row['peak_memory_gb']:.2f} GB "
            f"(predicted {row['predicted_peak_memory_gb']:.2f}, {_pct(row['peak_memory_error'])})",
            flush=True,
        )
    else:
        print(
            f"sampling {row['run']:18s} {row['sampler']:10s} batch {row['batch_size']:4d} "
            f"{row['full_chain_seconds_per_batch']:8.2f} s a batch (predicted "
            f"{row['predicted_full_chain_seconds_per_batch']:.2f}, {_pct(row['seconds_error'])})",
            flush=True,
        )
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
