"""``python -m xrutils plan``: what a profile costs before its first step (:mod:`xrutils.plan`).

    python -m xrutils plan --profile thesis [--gpu h200|h100|a100-80|l40s|rtx4090] [--gpus N] [--json]

Per run: predicted peak GPU memory, FLOPs of training, grids and evaluation, hours and disk; then the totals (with
``--gpus N`` also the wall-clock hours on N GPUs, one run per GPU). A run predicted not to fit on the GPU is flagged
(and ``--strict`` exits with status 2 naming it).
"""

from __future__ import annotations

import argparse
import json

from xrutils.config import PROFILE_NAMES, ConfigError


def add_commands(sub: argparse._SubParsersAction) -> None:
    from xrutils.plan import GPUS

    p = sub.add_parser(
        "plan",
        help="predicted memory, FLOPs, GPU-hours and disk of every run of a profile",
        description="The cost of a profile before its first step: per run and in total (nothing is trained).",
    )
    p.add_argument("--profile", choices=PROFILE_NAMES, default="thesis")
    p.add_argument("--gpu", choices=list(GPUS), default="h200", help="the GPU kind to price the hours on")
    p.add_argument(
        "--own-data",
        action="store_true",
        help="price the runs on the profile's own data source (default: NIH's train_val, as the thesis)",
    )
    p.add_argument(
        "--train-images", type=int, default=None, help="images per training epoch (default: NIH's)"
    )
    p.add_argument(
        "--gpus",
        type=int,
        default=1,
        help="also predict the wall-clock hours on this many GPUs, one run per GPU (the workflow's GPU slots)",
    )
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument(
        "--strict", action="store_true", help="exit with status 2 when a run is predicted not to fit"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xrutils import plan

    if args.train_images is not None and args.train_images < 1:
        raise ConfigError(f"--train-images {args.train_images}: expected a positive number of images")
    if args.gpus < 1:
        raise ConfigError(f"--gpus {args.gpus}: expected at least 1 GPU")
    result = plan.plan_profile(
        args.profile, args.gpu, nih=not args.own_data, train_images=args.train_images, gpus=args.gpus
    )
    print(json.dumps(result, indent=1) if args.json else plan.report(result))
    if args.strict and result["not_fitting"]:
        raise ConfigError(
            f"predicted not to fit on {result['gpu_name']}: {', '.join(result['not_fitting'])}; lower their "
            "train.batch_size or use train.precision=bf16 (the peak GB column)"
        )
    return 0
