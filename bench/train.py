"""Training and sampling speed-ups over the original code, measured in one run on one machine (issue 3 §4).

(a) One GAN training step with our vectorised diversity loss (``torch.pdist``, the model's own ``training_step``)
    against an original-style step: the same architecture, the same two updates, but the diversity loss as the
    original's Python double loop of ``torch.norm`` calls (8,128 autograd nodes at batch 128; spec §2.1).
    Defaults: batch 128, 64x64, hidden 64, on CPU. Target: >= 2x.
(b) Sampling the same UNet with DDIM-50 against the thesis's 1000-step DDPM. Target: >= 15x.
(c) Sampling the demo PixelCNN (its 32x32 baseline, random weights) with the cached sampler, each layer computed
    once per position, against the wavefront sampler, one receptive field per pixel; both draw the same images.

    .venv/bin/python bench/train.py [--steps 3] [--threads 2] [--quick]

The last line is one JSON object with the measured times and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F

from xrutils import registry
from xrutils.data.ranges import to_range
from xrutils.models.dcgan import diversity_loss
from xrutils.registry import build_config
from xrutils.train import make_step_context


def loop_diversity(fake: torch.Tensor) -> torch.Tensor:
    """The original's formula, written as it ran: one ``torch.norm`` per unordered pair, summed in Python."""
    flat = fake.view(fake.shape[0], -1)
    total, pairs = 0.0, 0
    for i in range(flat.shape[0]):
        for j in range(i + 1, flat.shape[0]):
            total = total + torch.norm(flat[i] - flat[j])
            pairs += 1
    return -total / pairs


def original_style_step(model, batch: torch.Tensor, opt_g, opt_d, g: torch.Generator) -> float:
    """gan_rework.py's iteration (spec §2.1) on the same networks; only the diversity loss differs."""
    b = batch.shape[0]
    real, fake_label = torch.ones(b), torch.zeros(b)
    opt_d.zero_grad()
    F.binary_cross_entropy(model.discriminator(batch), real).backward()
    fake = model.generator(torch.randn(b, model.cfg.nz, 1, 1, generator=g))
    F.binary_cross_entropy(model.discriminator(fake.detach()), fake_label).backward()
    opt_d.step()
    opt_g.zero_grad()
    err_g = F.binary_cross_entropy(model.discriminator(fake), real) + 0.5 * loop_diversity(fake)
    err_g.backward()
    opt_g.step()
    return err_g.item()


def time_it(fn, steps: int) -> float:
    """Mean seconds per call over ``steps`` calls, after one warm-up call."""
    fn()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def bench_gan(batch: int, size: int, hidden: int, steps: int) -> dict:
    cfg = build_config(
        "gan",
        "baseline",
        "thesis",
        {"train.batch_size": batch, "data.image_size": size, "model.hidden": hidden, "train.device": "cpu"},
    )
    model = registry.get("gan").build(cfg)
    g = torch.Generator().manual_seed(0)
    x = to_range(
        torch.randint(0, 256, (batch, 1, size, size), generator=g, dtype=torch.uint8), model.value_range
    )

    # the two formulas agree (same value; the test suite checks gradients too)
    fake = torch.rand(batch, 1, size, size, generator=g) * 2 - 1
    assert torch.allclose(loop_diversity(fake), diversity_loss(fake), rtol=1e-4), "diversity formulas differ"

    opts = model.configure_optimizers(cfg.train)
    ctx = make_step_context(cfg, torch.device("cpu"))
    ours = time_it(lambda: model.training_step(x, opts, ctx), steps)
    opt_g, opt_d = model.configure_optimizers(cfg.train).values()
    original = time_it(lambda: original_style_step(model, x, opt_g, opt_d, g), steps)

    # the diversity term alone, forward + backward, to show where the difference comes from
    leaf = fake.clone().requires_grad_(True)
    div_ours = time_it(lambda: diversity_loss(leaf).backward(), steps)
    div_loop = time_it(lambda: loop_diversity(leaf).backward(), steps)
    return {
        "gan_batch": batch,
        "gan_size": size,
        "gan_hidden": hidden,
        "gan_step_ms": 1e3 * ours,
        "gan_step_original_ms": 1e3 * original,
        "gan_step_ratio": original / ours,
        "diversity_ms": 1e3 * div_ours,
        "diversity_loop_ms": 1e3 * div_loop,
        "diversity_ratio": div_loop / div_ours,
    }


def bench_ddpm(preset: str, profile: str, n: int) -> dict:
    cfg = build_config("ddpm", preset, profile, {"train.device": "cpu"})
    model = registry.get("ddpm").build(cfg)
    g = torch.Generator()

    def run(sampler: str, steps: int) -> float:
        g.manual_seed(0)
        t0 = time.perf_counter()
        x = model.sample(n, generator=g, sampler=sampler, steps=steps)
        assert x.shape == (n, 1, model.image_size, model.image_size) and torch.isfinite(x).all()
        return time.perf_counter() - t0

    run("ddim", 2)  # warm-up
    ddim = run("ddim", 50)
    ddpm = run("ddpm", 1000)
    return {
        "ddpm_preset": f"{preset}/{profile}",
        "ddpm_params": sum(model.param_counts().values()),
        "ddpm_n": n,
        "ddim50_s": ddim,
        "ddpm1000_s": ddpm,
        "sampling_ratio": ddpm / ddim,
    }


def bench_pixelcnn(preset: str, profile: str, n: int) -> dict:
    cfg = build_config("pixelcnn", preset, profile, {"train.device": "cpu"})
    model = registry.get("pixelcnn").build(cfg).eval()

    def run(order: str) -> tuple[float, torch.Tensor]:
        t0 = time.perf_counter()
        x = model.sample(n, generator=torch.Generator().manual_seed(0), order=order)
        return time.perf_counter() - t0, x

    (cached, a), (wavefront, b) = run("cached"), run("wavefront")
    return {
        "pixelcnn_preset": f"{preset}/{profile}",
        "pixelcnn_size": model.image_size,
        "pixelcnn_n": n,
        "pixelcnn_cached_s": cached,
        "pixelcnn_wavefront_s": wavefront,
        "pixelcnn_sampling_ratio": wavefront / cached,
        "pixelcnn_same_images": bool(torch.equal(a, b)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed GAN steps per variant (after a warm-up)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--ddpm-preset", default="size32")
    parser.add_argument("--ddpm-profile", default="demo", help="a small UNet is enough on CPU")
    parser.add_argument("--n", type=int, default=4, help="images per sampling call")
    parser.add_argument("--pixelcnn-preset", default="baseline")
    parser.add_argument("--pixelcnn-profile", default="demo")
    parser.add_argument("--pixelcnn-n", type=int, default=32, help="PixelCNN images per sampling call")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="batch 32, hidden 16, 1 step, the tiny UNet: a check that the script runs",
    )
    args = parser.parse_args()
    if args.quick:
        args.batch, args.hidden, args.steps = 32, 16, 1
        args.ddpm_preset, args.ddpm_profile = "tiny", "smoke"
        args.pixelcnn_preset, args.pixelcnn_profile, args.pixelcnn_n = "tiny", "smoke", 4
    torch.set_num_threads(args.threads)

    out = {"threads": args.threads, "load_avg_1min": os.getloadavg()[0]}
    gan = bench_gan(args.batch, args.size, args.hidden, args.steps)
    print(
        f"GAN step (batch {args.batch}, {args.size}x{args.size}, hidden {args.hidden}, CPU): "
        f"ours {gan['gan_step_ms']:.0f} ms, original-style {gan['gan_step_original_ms']:.0f} ms -> "
        f"{gan['gan_step_ratio']:.2f}x (target >= 2x)"
    )
    print(
        f"  diversity loss alone (fwd+bwd): pdist {gan['diversity_ms']:.2f} ms, double loop "
        f"{gan['diversity_loop_ms']:.0f} ms -> {gan['diversity_ratio']:.0f}x"
    )
    ddpm = bench_ddpm(args.ddpm_preset, args.ddpm_profile, args.n)
    print(
        f"DDPM sampling ({ddpm['ddpm_preset']}, {ddpm['ddpm_params']} params, n={args.n}): DDIM-50 "
        f"{ddpm['ddim50_s']:.2f} s, DDPM-1000 {ddpm['ddpm1000_s']:.2f} s -> {ddpm['sampling_ratio']:.1f}x "
        f"(target >= 15x)"
    )
    pcnn = bench_pixelcnn(args.pixelcnn_preset, args.pixelcnn_profile, args.pixelcnn_n)
    print(
        f"PixelCNN sampling ({pcnn['pixelcnn_preset']}, {pcnn['pixelcnn_size']}x{pcnn['pixelcnn_size']}, "
        f"n={args.pixelcnn_n}): cached {pcnn['pixelcnn_cached_s']:.2f} s, wavefront "
        f"{pcnn['pixelcnn_wavefront_s']:.2f} s -> {pcnn['pixelcnn_sampling_ratio']:.1f}x, same images: "
        f"{pcnn['pixelcnn_same_images']}"
    )
    print(json.dumps({**out, **gan, **ddpm, **pcnn}))


if __name__ == "__main__":
    main()
