"""What a model family hands the rest of the package: its config class, builder and presets (how each profile
scales it is in :mod:`xrutils.profiles`).

Each family module in this folder defines ``FAMILY = Family(...)``; :mod:`xrutils.registry` imports the four
modules and registers them. This module imports nothing of the package at run time, so the family modules can
use it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xrutils.config import ModelConfig, RunConfig
    from xrutils.models.base import GenerativeModel


@dataclass(frozen=True)
class Family:
    name: str
    config_cls: type[ModelConfig]
    build: Callable[[RunConfig], GenerativeModel]  # the model, on the CPU, initialised from cfg.seed's RNG
    presets: dict[
        str, dict[str, Any]
    ]  # preset name -> dotted overrides (thesis values); must hold baseline, tiny
    defaults: dict[str, Any] = field(default_factory=dict)  # dotted overrides applied before any preset
    description: str = ""
