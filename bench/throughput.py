"""Training and sampling images/s of each family against a plain reference of the same network, in one run (issue 11 §6).

* **Training, ours**: the training loop's path: ``training_step`` (losses stay on the device; read once at the end,
  as the loop reads them every ``log_every`` steps), and on a GPU the loop's settings (TF32, cuDNN autotuner,
  channels_last) and the config's precision.
* **Training, plain**: the same networks, losses and optimisers written out as a textbook loop: eager, fp32, the
  losses read with ``.item()`` after every step (a host sync per step), no TF32, no autotuner, and the PixelCNN's
  masked convs with their full k x k kernel (ours skip the rows below the centre, which the mask zeroes).
* **Sampling, ours**: ``model.sample`` as the evaluators call it (PixelCNN: the cached sampler, each layer computed
  once per position; DDPM: the evaluation sampler of the profile).
* **Sampling, plain**: GAN and VAE the generator / decoder forward with a sync per batch; PixelCNN the whole network
  on the whole canvas once per pixel (``order="full"``, the original's way; the same images); DDPM the same
  sampler written as a plain loop over diffusers' scheduler with a sync per step.

Both sides use the same weights, batch and device; the ratio ours / plain is what the tricks buy on this device. On a
CPU the GPU settings do nothing, so training ratios near 1 are expected here; the PixelCNN's sampler is the CPU win.

    .venv/bin/python bench/throughput.py [--profile demo] [--steps 5] [--samples 8] [--families ...]

The last line is one JSON object with every measurement and ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from xrutils import registry
from xrutils.data.ranges import to_range
from xrutils.models.dcgan import diversity_loss
from xrutils.models.vae import kl_divergence
from xrutils.registry import build_config
from xrutils.train import gpu_settings, make_step_context, resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_step(model, batch: torch.Tensor, opts: dict, g: torch.Generator) -> float:
    """One training step of the family written out plainly; returns the loss read on the host."""
    dev = batch.device
    if "generator" in opts:  # GAN: D on real and on fake, then G with the diversity term
        b = batch.shape[0]
        ones, zeros = torch.ones(b, device=dev), torch.zeros(b, device=dev)
        opts["discriminator"].zero_grad()
        err_real = F.binary_cross_entropy(model.discriminator(batch), ones)
        err_real.backward()
        fake = model.generator(torch.randn(b, model.cfg.nz, 1, 1, generator=g).to(dev))
        err_fake = F.binary_cross_entropy(model.discriminator(fake.detach()), zeros)
        err_fake.backward()
        opts["discriminator"].step()
        opts["generator"].zero_grad()
        err_g = F.binary_cross_entropy(model.discriminator(fake), ones) + model.cfg.diversity_weight * (
            diversity_loss(fake)
        )
        err_g.backward()
        opts["generator"].step()
        return err_real.item() + err_fake.item() + err_g.item()
    opt = next(iter(opts.values()))
    opt.zero_grad()
    if "vae" in opts:
        mu, logvar = model.encode(batch)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g).to(dev)
        loss = F.binary_cross_entropy_with_logits(model.decode_logits(z), batch, reduction="sum")
        loss = loss + kl_divergence(mu, logvar).sum()
    elif "net" in opts:  # PixelCNN
        loss = F.cross_entropy(model(batch), (batch[:, 0] * 255).round().long())
    else:  # DDPM
        eps = torch.randn(batch.shape, generator=g).to(dev)
        t = torch.randint(0, model.cfg.timesteps, (batch.shape[0],), generator=g).to(dev)
        loss = F.mse_loss(model.unet(model.scheduler.add_noise(batch, eps, t), t).sample, eps)
    loss.backward()
    if "unet" in opts:  # the DDPM's family defaults clip at 1.0
        torch.nn.utils.clip_grad_norm_(model.unet.parameters(), 1.0)
    opt.step()
    return loss.item()


@contextlib.contextmanager
def textbook_masked_convs():
    """The PixelCNN's masked convs as the textbook writes them (the full k x k kernel times its mask) while the
    plain side runs: ours computes only the kernel rows down to the centre (the same outputs, 4/7 of the work)."""
    from xrutils.models.pixelcnn import MaskedConv2d

    ours = MaskedConv2d.forward
    MaskedConv2d.forward = lambda self, x: F.conv2d(x, self.weight * self.mask, None, padding=self.padding)
    try:
        yield
    finally:
        MaskedConv2d.forward = ours


def plain_sample(model, n: int, g: torch.Generator, cfg) -> torch.Tensor:
    dev = model.device
    with torch.no_grad():
        if hasattr(model, "discriminator"):
            return model.generator(torch.randn(n, model.cfg.nz, 1, 1, generator=g).to(dev))
        if hasattr(model, "encode"):
            return model.decode(torch.randn(n, model.cfg.latent, generator=g).to(dev))
        if hasattr(model, "net"):
            return model.sample(n, g, order="full")
        from diffusers import DDIMScheduler, DDPMScheduler

        sampler = cfg.eval.sampler
        sched = (DDIMScheduler if sampler == "ddim" else DDPMScheduler).from_config(model.scheduler.config)
        sched.set_timesteps(cfg.eval.sampler_steps if sampler == "ddim" else model.cfg.timesteps)
        x = torch.randn(n, 1, model.image_size, model.image_size, generator=g).to(dev)
        for t in sched.timesteps:
            x = sched.step(model.unet(x, t).sample, t, x, generator=g).prev_sample
            _sync(dev)
        return x.clamp(-1, 1)


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    fn()  # warm-up (allocator, cuDNN autotuner)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / repeats


def bench_family(family: str, args: argparse.Namespace) -> dict:
    cfg = build_config(family, "baseline", args.profile, {"train.device": args.device})
    device = resolve_device(cfg.train.device)
    g = torch.Generator().manual_seed(0)
    model = registry.get(family).build(cfg).to(device)
    size, b = cfg.data.image_size, cfg.train.batch_size
    u8 = torch.randint(0, 256, (b, 1, size, size), generator=g, dtype=torch.uint8)
    batch = to_range(u8, model.value_range).to(device)
    model.train()

    # plain first (so ours gets no head start from the autotuner it enables), then ours on its own settings
    opts = model.configure_optimizers(cfg.train)
    with textbook_masked_convs():
        plain_train = timed(lambda: plain_step(model, batch, opts, g), args.steps, device)
    if device.type == "cuda":
        gpu_settings(model, cfg)
    ctx, opts = make_step_context(cfg, device), model.configure_optimizers(cfg.train)
    out: list = []
    ours_train = timed(lambda: out.append(model.training_step(batch, opts, ctx)), args.steps, device)
    float(out[-1]["loss"])  # the loop's one read

    model.eval()
    n = args.samples
    with textbook_masked_convs():
        plain_s = timed(lambda: plain_sample(model, n, g, cfg), 1, device)
    options = {"sampler": cfg.eval.sampler, "steps": cfg.eval.sampler_steps} if family == "ddpm" else {}
    ours_s = timed(lambda: model.sample(n, g, **options), 1, device)
    return {
        "family": family,
        "device": str(device),
        "image_size": size,
        "batch_size": b,
        "train_images_per_s": {"ours": b / ours_train, "plain": b / plain_train},
        "train_ratio": plain_train / ours_train,
        "sample_images_per_s": {"ours": n / ours_s, "plain": n / plain_s},
        "sample_ratio": plain_s / ours_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", choices=("smoke", "demo", "thesis"))
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per side")
    parser.add_argument("--samples", type=int, default=8, help="images sampled per side")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--families", default=",".join(registry.families()))
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for family in args.families.split(","):
        r = bench_family(family.strip(), args)
        rows.append(r)
        print(
            f"{r['family']:9s} {r['image_size']:4d}px on {r['device']}: training "
            f"{r['train_images_per_s']['ours']:8.1f} vs plain {r['train_images_per_s']['plain']:8.1f} img/s "
            f"(x{r['train_ratio']:.2f}); sampling {r['sample_images_per_s']['ours']:8.2f} vs plain "
            f"{r['sample_images_per_s']['plain']:8.2f} img/s (x{r['sample_ratio']:.2f})",
            flush=True,
        )
    print(json.dumps({"profile": args.profile, "families": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
