"""``python -m xrutils evaluate``: judge and measure run folders (xrutils.evaluators.evaluate)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from xrutils.config import ConfigError, EvalConfig, Quirks, RunConfig, apply_overrides, parse_sets
from xrutils.runs import RunDir

QUIRK_NAMES = list(Quirks.__dataclass_fields__)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score runs with the discriminator and classifier judges and metrics",
        description="Per-epoch judge scores with intervals, classifier scores, and the feature-space "
        "metrics of the last epoch, for one or more run folders.",
    )
    p.add_argument("--runs", nargs="+", required=True, metavar="DIR", help="run folders to evaluate")
    p.add_argument(
        "--judge",
        nargs="*",
        default=None,
        metavar="GAN_RUN_DIR",
        help="GAN run(s) whose final-epoch discriminator judges runs of the same image size "
        "(one per size); omit to skip the discriminator judge",
    )
    p.add_argument("--out", required=True, metavar="FILE.json", help="where to write the results")
    p.add_argument(
        "--protocol",
        choices=["corrected", "original"],
        default=None,
        help="judge protocol (default: eval.protocol of the runs' config, i.e. corrected)",
    )
    p.add_argument(
        "--quirk",
        dest="quirks",
        action="append",
        default=[],
        choices=QUIRK_NAMES,
        help="switch on one quirk of the original protocol on top of the corrected one (repeatable; "
        "overrides --protocol)",
    )
    p.add_argument(
        "--skip-quirk",
        dest="skip_quirks",
        action="append",
        default=[],
        choices=QUIRK_NAMES,
        help="with --protocol original: leave this quirk off (repeatable), e.g. seeded_ddpm where 1000-step "
        "sampling is too slow",
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="eval.KEY=VALUE",
        help="override an eval setting, e.g. --set eval.n_fake=256 (repeatable)",
    )
    p.add_argument("--no-classifier", action="store_true", help="skip the classifier judge")
    p.add_argument(
        "--no-metrics", action="store_true", help="skip FD / KID / precision-recall / bpd / memorisation"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument(
        "--no-store", action="store_true", help="do not merge results into each run's metrics.json"
    )
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=run)


def eval_config(first_run: str, sets: list[str]) -> EvalConfig:
    """The first run's eval section with ``eval.*`` overrides applied (other sections are refused)."""
    overrides = parse_sets(sets)
    for key in overrides:
        if not key.startswith("eval."):
            raise ConfigError(
                f"evaluate --set {key}=...: only eval.* settings can be changed here; "
                "training settings belong to the run"
            )
    cfg: RunConfig = RunDir(first_run).read_config()
    return apply_overrides(cfg, overrides).eval


def run(args: argparse.Namespace) -> int:
    from xrutils.evaluators import evaluate

    ecfg = eval_config(args.runs[0], args.sets)
    if args.protocol:
        ecfg = replace(ecfg, protocol=args.protocol)
    if args.skip_quirks and (args.quirks or ecfg.protocol != "original"):
        raise ConfigError("--skip-quirk goes with --protocol original (and without --quirk)")
    if args.quirks:
        protocol = Quirks.only(args.quirks)
    elif args.skip_quirks:
        protocol = Quirks.original(args.skip_quirks)
    else:
        protocol = ecfg.protocol
    result = evaluate(
        args.runs,
        args.judge or None,
        out=args.out,
        protocol=protocol,
        eval_cfg=ecfg,
        classifier=not args.no_classifier,
        metrics=not args.no_metrics,
        device=args.device,
        store=not args.no_store,
        progress=not args.quiet,
    )
    summary = {
        name: {
            "judge_last": (r.get("judge") or {}).get("score", [None])[-1],
            "classifier_last": (r.get("classifier") or {}).get("score", [None])[-1],
            "fd": (r.get("metrics") or {}).get("fd"),
        }
        for name, r in result["runs"].items()
    }
    print(json.dumps({"out": str(args.out), "protocol": result["protocol"], "runs": summary}, indent=2))
    if not args.quiet:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
