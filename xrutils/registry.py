"""Registry of model families: name -> :class:`~xrutils.models.family.Family` (config class, ``build()``, presets,
profile scaling).

The four family modules of ``xrutils/models`` are imported here explicitly, in the thesis's order of chapters, so
registration never depends on what a caller happened to import. Tests, the command line and the Makefile iterate
over :func:`families`. A new family: its module with a ``FAMILY``, and one more name in the import and in
:data:`_BUILT_IN` below.
"""

from __future__ import annotations

from xrutils.models import dcgan, ddpm, pixelcnn, vae
from xrutils.models.family import Family

__all__ = ["Family", "families", "get", "register"]

_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in _FAMILIES and _FAMILIES[family.name] is not family:
        raise ValueError(f"family {family.name!r} is already registered")
    for required in ("baseline", "tiny"):
        if required not in family.presets:
            raise ValueError(f"family {family.name!r} has no {required!r} preset")
    _FAMILIES[family.name] = family
    return family


_BUILT_IN = (dcgan, vae, pixelcnn, ddpm)  # the thesis's order of chapters
for _module in _BUILT_IN:
    register(_module.FAMILY)


def families() -> list[str]:
    return list(_FAMILIES)


def get(name: str) -> Family:
    if name not in _FAMILIES:
        from xrutils.config import ConfigError

        raise ConfigError(f"unknown family {name!r}; expected one of {list(_FAMILIES)}")
    return _FAMILIES[name]
