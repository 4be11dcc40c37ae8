"""The command line: ``python -m xrutils <command>``. Thin: each command calls the same functions the notebooks do.

Each room adds its own subcommands: ``data`` (xrutils.cli.data), ``train`` / ``sample`` / ``describe``
(xrutils.cli.train), ``evaluate`` (xrutils.cli.evaluate).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from xrutils.config import ConfigError
from xrutils.runs import CheckpointError

COMMAND_MODULES = ("xrutils.cli.data", "xrutils.cli.train", "xrutils.cli.evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m xrutils", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
