"""xrutils: data, models, training, evaluation and figures for the chest X-ray generative-models study.

Rooms (one folder or module each): ``data`` (NIH ChestX-ray14, phantom X-rays, ChestMNIST, resized cache),
``models`` (one file per family), ``train`` (one loop), ``evaluators`` (judges and metrics), ``runs`` (run folder
layout), ``plotting`` (one function per thesis figure), ``cli`` (the command line).
"""

from xrutils.config import ConfigError, RunConfig, build_config
from xrutils.registry import families

__all__ = ["ConfigError", "RunConfig", "build_config", "families"]
__version__ = "0.1.0"
