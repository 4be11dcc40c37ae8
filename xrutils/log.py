"""The library's messages go through :mod:`logging`, under the ``xrutils`` logger (``xrutils.data``,
``xrutils.evaluate``, ``xrutils.runs``...), so a user chooses how much to see:

    import logging; logging.getLogger("xrutils").setLevel(logging.WARNING)     # in a notebook
    python -m xrutils --log-level WARNING train ...                             # on the command line
    XRUTILS_LOG_LEVEL=WARNING make figures                                      # everywhere

Unless the application has configured the ``xrutils`` logger itself, importing xrutils gives it one stderr handler
that prints ``[xrutils.<room>] message`` at INFO (or ``$XRUTILS_LOG_LEVEL``): the progress a notebook shows.
"""

from __future__ import annotations

import logging
import os
import sys

LOG_LEVEL_ENV = "XRUTILS_LOG_LEVEL"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at each message (a notebook's, or a test's capture), not the one
    present at import."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


def configure(level: str | None = None) -> logging.Logger:
    """Give the ``xrutils`` logger its stderr handler (once) and set its level (default ``$XRUTILS_LOG_LEVEL``,
    else INFO)."""
    logger = logging.getLogger("xrutils")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    level = (level or os.environ.get(LOG_LEVEL_ENV) or "INFO").upper()
    if level not in LOG_LEVELS:
        raise ValueError(
            f"log level {level!r} (${LOG_LEVEL_ENV} or --log-level); expected one of {list(LOG_LEVELS)}"
        )
    logger.setLevel(level)
    return logger


def get(room: str) -> logging.Logger:
    """The logger of one room, e.g. ``get("data")`` -> ``xrutils.data``."""
    return logging.getLogger(f"xrutils.{room}")
