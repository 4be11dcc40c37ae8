"""Registry of model families: name -> :class:`~xrutils.models.family.Family` (config class, ``build()``, presets,
profile scaling).

The four family modules of ``xrutils/models`` are imported here explicitly, in the thesis's order of chapters, so
registration never depends on what a caller happened to import. :func:`build_config` lives here because it needs
the families (their defaults, presets and profile scaling); :mod:`xrutils.config` below knows none of them. Tests, the command line and the Makefile iterate
over :func:`families`. A new family: its module with a ``FAMILY``, and one more name in the import and in
:data:`_BUILT_IN` below.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from xrutils import profiles
from xrutils.config import (
    PROFILE_NAMES,
    ConfigError,
    RunConfig,
    apply_overrides,
    register_model_section,
)
from xrutils.models import dcgan, ddpm, pixelcnn, vae
from xrutils.models.family import Family

__all__ = ["Family", "build_config", "families", "get", "register"]

_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in _FAMILIES and _FAMILIES[family.name] is not family:
        raise ValueError(f"family {family.name!r} is already registered")
    for required in ("baseline", "tiny"):
        if required not in family.presets:
            raise ValueError(f"family {family.name!r} has no {required!r} preset")
    _FAMILIES[family.name] = family
    register_model_section(family.name, family.config_cls)
    return family


_BUILT_IN = (dcgan, vae, pixelcnn, ddpm)  # the thesis's order of chapters
for _module in _BUILT_IN:
    register(_module.FAMILY)


def families() -> list[str]:
    return list(_FAMILIES)


def get(name: str) -> Family:
    if name not in _FAMILIES:
        raise ConfigError(f"unknown family {name!r}; expected one of {list(_FAMILIES)}")
    return _FAMILIES[name]


def build_config(
    family: str,
    preset: str = "baseline",
    profile: str = "thesis",
    overrides: dict[str, Any] | None = None,
    seed: int | None = None,
) -> RunConfig:
    """Build the config of one run: family defaults -> preset -> profile -> user overrides (the order is in
    :mod:`xrutils.config`'s docstring)."""
    if overrides is not None and not isinstance(overrides, dict):
        raise ConfigError(
            f"overrides={overrides!r} is a {type(overrides).__name__}; expected a dict of dotted keys, e.g. "
            f"{{'train.lr': 1e-5}}"
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError(f"seed={seed!r} is invalid; expected a non-negative integer")
    fam = get(family)
    if preset not in fam.presets:
        raise ConfigError(
            f"unknown preset {preset!r} for family {family!r}; expected one of {sorted(fam.presets)}"
        )
    if profile not in PROFILE_NAMES:
        raise ConfigError(f"unknown profile {profile!r}; expected one of {list(PROFILE_NAMES)}")
    cfg = RunConfig(family=family, preset=preset, profile=profile, model=fam.config_cls())
    cfg = apply_overrides(cfg, fam.defaults)
    cfg = apply_overrides(cfg, fam.presets[preset])
    cfg = apply_overrides(cfg, profiles.generic(profile))
    cfg = apply_overrides(cfg, profiles.family_part(profile, cfg))
    cfg = apply_overrides(cfg, overrides or {})
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    return cfg
