"""``train``, ``sample`` and ``describe``: thin wrappers over :func:`xrutils.train.train` and the registry.

    python -m xrutils train --family gan --preset baseline --profile demo [--run-dir DIR] [--set train.lr=1e-5] [--resume]
    torchrun --nproc_per_node=2 -m xrutils train ...          (the same loop with DistributedDataParallel)
    python -m xrutils sample --run-dir DIR [--epoch E] --n 64 --out grid.png [--sampler ddim --steps 50] [--seed S]
    python -m xrutils describe --family gan --preset baseline [--profile thesis] [--set model.hidden=32]

Bad input (unknown family, preset or override key, a config that differs from the run being resumed, a busy run
folder) exits with status 2 and a message naming it; a non-finite loss or weights exit with status 1
(:func:`xrutils.cli.main`).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from xrutils import registry
from xrutils.config import PROFILE_NAMES, ConfigError, RunConfig, parse_sets
from xrutils.registry import build_config
from xrutils.seeding import make_generator


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one run (family + preset + profile) into a run folder",
        description="Train one run; resumes from the newest checkpoint with --resume.",
    )
    _config_args(p, profile_default=None)
    p.add_argument(
        "--run-dir", type=Path, default=None, help="run folder (default runs/<profile>/<family>__<preset>)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint (the config must equal the saved one)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "sample",
        help="sample a grid from a run's checkpoint",
        description="Sample N images from a checkpoint and save them as one PNG grid.",
    )
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (1-based; default: the newest)")
    p.add_argument("--n", type=int, default=64, help="number of images")
    p.add_argument("--out", type=Path, required=True, help="output PNG")
    p.add_argument("--sampler", choices=("ddpm", "ddim"), default=None, help="DDPM family only")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (DDPM family only)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default: the run's seed)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "describe",
        help="print the parameter count of each network as one JSON object",
        description="Build a family's networks for a preset and print their parameter counts.",
    )
    _config_args(p, profile_default="thesis")
    p.set_defaults(func=cmd_describe)


def _config_args(p: argparse.ArgumentParser, profile_default: str | None) -> None:
    p.add_argument("--family", required=True, help="gan, vae, pixelcnn or ddpm")
    p.add_argument("--preset", default="baseline")
    p.add_argument(
        "--profile",
        default=profile_default,
        required=profile_default is None,
        help=f"one of {list(PROFILE_NAMES)}" + (f" (default {profile_default})" if profile_default else ""),
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override, e.g. train.lr=1e-5 (repeatable)",
    )
    p.add_argument("--seed", type=int, default=None)


def _config(args: argparse.Namespace) -> RunConfig:
    return build_config(args.family, args.preset, args.profile, parse_sets(args.sets), seed=args.seed)


def cmd_train(args: argparse.Namespace) -> int:
    from xrutils.train import train

    cfg = _config(args)
    run_dir = args.run_dir or Path("runs") / cfg.profile / f"{cfg.family}__{cfg.preset}"
    history = train(cfg, run_dir, resume=args.resume, progress=not args.no_progress)
    if history and int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one summary line
        print(json.dumps({"run_dir": str(run_dir), **history[-1]}))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from xrutils.checkpoints import load_model
    from xrutils.runs import RunDir
    from xrutils.train import resolve_device, save_grid

    if args.n < 1:
        raise ConfigError(f"--n {args.n} is invalid; expected a positive number of images")
    if args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a folder; expected the path of the PNG file to write")
    device = resolve_device(args.device)
    epoch = args.epoch if args.epoch is not None else (RunDir(args.run_dir).checkpoint_epochs() or [None])[-1]
    cfg, model = load_model(args.run_dir, epoch, device=device)
    options = {k: v for k, v in (("sampler", args.sampler), ("steps", args.steps)) if v is not None}
    seed = cfg.seed if args.seed is None else args.seed
    t0 = time.perf_counter()
    try:
        images = model.sample(args.n, generator=make_generator(seed, "sample", device), **options)
    except TypeError as e:
        if options:
            raise ConfigError(f"--sampler/--steps do not apply to family {cfg.family!r}: {e}") from e
        raise
    save_grid(images, model.value_range, args.out)
    print(
        json.dumps(
            {
                "out": str(args.out),
                "n": args.n,
                "epoch": epoch,
                "family": cfg.family,
                **options,
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
    )
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    print(json.dumps(param_counts(_config(args))))
    return 0


def param_counts(cfg: RunConfig) -> dict[str, int]:
    """Parameters per network, built on the meta device (no memory, no initialisation) where the family allows."""
    family = registry.get(cfg.family)
    try:
        with torch.device("meta"):
            model = family.build(cfg)
    except (NotImplementedError, RuntimeError):  # a family that computes with real tensors while building
        with torch.random.fork_rng(devices=[]):
            model = family.build(cfg)
    return model.param_counts()
