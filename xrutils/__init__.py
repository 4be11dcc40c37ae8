"""xrutils: data, models, training, evaluation and figures for the chest X-ray generative-models study.

Rooms (one folder or module each): ``data`` (NIH ChestX-ray14, phantom X-rays, ChestMNIST, resized cache),
``models`` (one file per family), ``train`` (one loop), ``evaluators`` (judges and metrics), ``runs`` (run folder
layout), ``plotting`` (one function per thesis figure), ``cli`` (the command line).
"""

import logging as _logging

from xrutils import log as _log
from xrutils.config import ConfigError, RunConfig
from xrutils.registry import build_config, families

if not _logging.getLogger(
    "xrutils"
).handlers:  # an application that set up the logger itself keeps its set-up
    _log.configure()

__all__ = ["ConfigError", "RunConfig", "build_config", "families"]
__version__ = "0.1.0"
