"""The family registry: every family registered by name, with the required presets; the mechanism itself."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from xrutils import registry
from xrutils.config import ConfigError, ModelConfig
from xrutils.models.family import Family


def test_the_four_families_are_registered_in_thesis_order() -> None:
    assert registry.families() == ["gan", "vae", "pixelcnn", "ddpm"]


@pytest.mark.parametrize("family", ["gan", "vae", "pixelcnn", "ddpm"])
def test_each_family_has_baseline_tiny_and_asrun(family: str) -> None:
    fam = registry.get(family)
    assert {"baseline", "tiny", "asrun"} <= set(fam.presets)
    assert issubclass(fam.config_cls, ModelConfig)


def test_unknown_family_error_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown family 'gann'.*'gan'"):
        registry.get("gann")


@dataclass(frozen=True)
class _ToyConfig(ModelConfig):
    hidden: int = 3


def test_register_requires_baseline_and_tiny_and_rejects_duplicates() -> None:
    registry.families()  # load the real ones first
    with pytest.raises(ValueError, match="no 'tiny' preset"):
        registry.register(Family("toy", _ToyConfig, build=lambda cfg: None, presets={"baseline": {}}))
    toy = Family("toy", _ToyConfig, build=lambda cfg: None, presets={"baseline": {}, "tiny": {}})
    try:
        registry.register(toy)
        assert registry.get("toy") is toy
        with pytest.raises(ValueError, match="already registered"):
            registry.register(
                Family("toy", _ToyConfig, build=lambda cfg: None, presets={"baseline": {}, "tiny": {}})
            )
    finally:
        registry._FAMILIES.pop("toy", None)
