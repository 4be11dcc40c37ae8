"""The command line: ``python -m xrutils <command>``. Thin: each command calls the same functions the notebooks do.

Each room adds its own subcommands: ``data`` (xrutils.cli.data), ``train`` / ``sample`` / ``describe``
(xrutils.cli.train), ``evaluate`` (xrutils.cli.evaluate), ``plan`` (xrutils.cli.plan).

One error path for every command (:func:`main`): bad input (a setting, a file, a folder, a busy run folder) prints
one ``error: ...`` line naming it and exits 2; a full disk or a non-finite run exits 1 with one line; anything else
exits 1 with one line too. ``--debug`` (anywhere on the line) shows the traceback instead. ``--log-level`` sets
how much the library reports on stderr (:mod:`xrutils.log`; WARNING keeps only warnings).
"""

from __future__ import annotations

import argparse
import sys

from xrutils import log
from xrutils.errors import InputError, is_disk_full
from xrutils.log import LOG_LEVELS

# OSErrors that mean "you named the wrong path", which the messages of the library and the OS both name
_PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m xrutils", description=__doc__.splitlines()[0])
    _common_args(parser, None)
    sub = parser.add_subparsers(dest="command", required=True)
    from xrutils.cli import data, evaluate, plan, train  # each room adds its subcommands

    for room in (data, train, evaluate, plan):
        room.add_commands(sub)
    for p in _all_subparsers(parser):  # the common flags are accepted after the command too
        _common_args(p, argparse.SUPPRESS)
    return parser


def _common_args(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument(
        "--debug", action="store_true", default=False if default is None else default, help="show tracebacks"
    )
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=None if default is None else default,
        help="how much the library reports on stderr (default $XRUTILS_LOG_LEVEL, else INFO)",
    )


def _all_subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for p in action.choices.values():
                found += [p, *_all_subparsers(p)]
    return found


def error_exit(e: BaseException) -> tuple[int, str]:
    """(exit status, the one-line message) for an exception that reached the command line."""
    if isinstance(e, (InputError, *_PATH_ERRORS)):
        return 2, str(e)
    if is_disk_full(e):
        where = getattr(e, "filename", None)
        return 1, str(e) if "no space left" in str(e) else f"no space left on device writing {where or '?'}"
    if isinstance(e, FloatingPointError):
        return 1, str(e)
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return 1, f"{type(e).__name__}: {first} (an unexpected error; rerun with --debug for the traceback)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log.configure(args.log_level)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(
            "interrupted (a training run keeps its finished epochs: rerun it with --resume)", file=sys.stderr
        )
        return 130
    except Exception as e:  # noqa: BLE001 -- the one place that turns any error into a message and a status
        if args.debug:
            raise
        code, message = error_exit(e)
        print(f"error: {message}", file=sys.stderr)
        return code
