"""Registry of model families: name -> :class:`Family` (config class, ``build()``, presets, profile scaling).

Each family module in ``xrutils/models`` defines a ``FAMILY = Family(...)``; this file imports every one of them
explicitly (see :func:`_load`), so registration never depends on what a caller happened to import. Tests, the
command line and the Makefile iterate over :func:`families`.
"""

from __future__ import annotations

import importlib
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
    # profile name -> dotted overrides computed from the thesis-scale config (e.g. demo widths)
    profile_overrides: Callable[[str, RunConfig], dict[str, Any]] = lambda profile, cfg: {}
    description: str = ""


_FAMILIES: dict[str, Family] = {}

# The family modules, imported explicitly. Order is the thesis's order of chapters.
FAMILY_MODULES = (
    "xrutils.models.dcgan",
    "xrutils.models.vae",
    "xrutils.models.pixelcnn",
    "xrutils.models.ddpm",
)


def register(family: Family) -> Family:
    if family.name in _FAMILIES and _FAMILIES[family.name] is not family:
        raise ValueError(f"family {family.name!r} is already registered")
    for required in ("baseline", "tiny"):
        if required not in family.presets:
            raise ValueError(f"family {family.name!r} has no {required!r} preset")
    _FAMILIES[family.name] = family
    return family


_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in FAMILY_MODULES:
        mod = importlib.import_module(module)
        register(mod.FAMILY)


def families() -> list[str]:
    _load()
    return list(_FAMILIES)


def get(name: str) -> Family:
    _load()
    if name not in _FAMILIES:
        from xrutils.config import ConfigError

        raise ConfigError(f"unknown family {name!r}; expected one of {list(_FAMILIES)}")
    return _FAMILIES[name]
