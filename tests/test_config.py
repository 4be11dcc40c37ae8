"""Configuration: JSON round trip, dotted overrides and their errors, presets, profiles."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from xrutils import registry
from xrutils.config import (
    PROFILE_NAMES,
    ConfigError,
    DataConfig,
    RunConfig,
    TrainConfig,
    parse_sets,
)
from xrutils.registry import build_config

COMMON_KEYS = {
    "data.image_size": 32,
    "model.hidden": 24,
    "train.lr": 3e-4,
    "train.epochs": 3,
    "train.batch_size": 16,
    "seed": 7,
}


@pytest.mark.parametrize("family", registry.families())
@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_every_preset_builds_and_round_trips(family: str, profile: str) -> None:
    for preset in registry.get(family).presets:
        cfg = build_config(family, preset, profile)
        again = RunConfig.from_json(cfg.to_json())
        assert again == cfg, (family, preset, profile)
        assert json.loads(again.to_json()) == json.loads(cfg.to_json())


@pytest.mark.parametrize("family", registry.families())
def test_common_override_keys_work_in_every_family(family: str) -> None:
    cfg = build_config(family, "baseline", "smoke", overrides=COMMON_KEYS)
    assert cfg.data.image_size == 32 and cfg.model.hidden == 24 and cfg.train.lr == 3e-4
    assert cfg.train.epochs == 3 and cfg.train.batch_size == 16 and cfg.seed == 7


@pytest.mark.parametrize("family", registry.families())
def test_json_round_trip_rebuilds_an_identical_model(family: str) -> None:
    cfg = build_config(family, "tiny", "smoke")
    fam = registry.get(family)
    torch.manual_seed(0)
    a = fam.build(cfg)
    torch.manual_seed(0)
    b = fam.build(RunConfig.from_json(cfg.to_json()))
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_unknown_override_key_names_the_key_and_the_allowed_ones() -> None:
    cfg = build_config("gan", "baseline", "smoke")
    with pytest.raises(ConfigError, match=r"train\.lrr.*'lr'"):
        cfg.override({"train.lrr": 1e-3})
    with pytest.raises(ConfigError, match="unknown override key 'trian.lr'"):
        cfg.override({"trian.lr": 1e-3})
    with pytest.raises(ConfigError, match="names a section"):
        cfg.override({"train": 1})


def test_wrong_types_are_rejected_with_the_key() -> None:
    cfg = build_config("gan", "baseline", "smoke")
    with pytest.raises(ConfigError, match=r"train\.epochs='ten'.*integer"):
        cfg.override({"train.epochs": "ten"})
    with pytest.raises(ConfigError, match=r"train\.epochs=2\.5.*integer"):
        cfg.override({"train.epochs": 2.5})
    with pytest.raises(ConfigError, match=r"data\.hflip.*true or false"):
        cfg.override({"data.hflip": 1})
    with pytest.raises(ConfigError, match=r"train\.precision='fp8'.*\['fp32', 'fp16', 'bf16'\]"):
        cfg.override({"train.precision": "fp8"})
    # an int where a float is expected is lossless and accepted
    assert cfg.override({"train.lr": 1}).train.lr == 1.0


def test_invalid_values_are_rejected_in_post_init() -> None:
    with pytest.raises(ConfigError, match=r"data\.image_size=48"):
        DataConfig(image_size=48)
    with pytest.raises(ConfigError, match=r"train\.lr=-1"):
        TrainConfig(lr=-1)
    with pytest.raises(ConfigError, match=r"train\.batch_size=0"):
        build_config("vae", "baseline", "smoke", overrides={"train.batch_size": 0})


def test_unknown_family_preset_and_profile() -> None:
    with pytest.raises(ConfigError, match="unknown family 'gam'"):
        build_config("gam")
    with pytest.raises(ConfigError, match="unknown preset 'nope' for family 'gan'.*baseline"):
        build_config("gan", "nope")
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        build_config("gan", "baseline", "fast")


def test_from_dict_rejects_unknown_and_mismatched_sections(tmp_path) -> None:
    d = build_config("gan", "baseline", "smoke").to_dict()
    d["train"]["bogus"] = 1
    with pytest.raises(ConfigError, match=r"train\.bogus"):
        RunConfig.from_dict(d)
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=str(bad)):
        RunConfig.load(bad)
    vae_model = build_config("vae", "baseline", "smoke").model
    with pytest.raises(ConfigError, match="needs"):
        dataclasses.replace(build_config("gan", "baseline", "smoke"), model=vae_model)


def test_parse_sets() -> None:
    assert parse_sets(["train.lr=1e-5", "model.hidden=32", "data.source=nih", "data.hflip=true"]) == {
        "train.lr": 1e-5,
        "model.hidden": 32,
        "data.source": "nih",
        "data.hflip": True,
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_sets(["train.lr"])


def test_profiles_scale_but_presets_keep_their_contrast() -> None:
    thesis = build_config("gan", "baseline", "thesis")
    assert thesis.train.epochs == 50 and thesis.train.batch_size == 128 and thesis.data.max_images == 0
    demo = build_config("gan", "baseline", "demo")
    # far fewer optimisation steps: at most 512 images in batches of 32 instead of 86,524 in batches of 128
    assert demo.train.epochs * 512 // demo.train.batch_size < thesis.train.epochs * 86_524 // 128
    assert demo.data.max_images > 0
    for family, study in [
        ("gan", ("hidden32", "baseline", "hidden128")),
        ("vae", ("hidden300", "baseline", "hidden500")),
    ]:
        for profile in ("thesis", "demo"):
            widths = [build_config(family, p, profile).model.hidden for p in study]
            assert widths[0] < widths[1] < widths[2], (family, profile, widths)
    for profile in PROFILE_NAMES:
        lrs = {p: build_config("gan", p, profile).train.lr for p in ("baseline", "lr1e-5", "lr1e-3")}
        k = (
            10 if profile == "demo" else 1
        )  # the demo's every lr x 10 (profiles.DEMO_LR_FACTOR) keeps the ratios
        assert lrs == pytest.approx({"baseline": k * 1e-4, "lr1e-5": k * 1e-5, "lr1e-3": k * 1e-3}), profile
        sizes = [build_config("gan", p, profile).data.image_size for p in ("size32", "baseline", "size128")]
        assert sizes == [32, 64, 128]


def test_build_config_seed_argument() -> None:
    assert build_config("gan", "baseline", "smoke", seed=5).seed == 5


def test_config_imports_no_higher_room():
    """config sits below the registry and the families (issue 9): it imports neither, not even late."""
    import ast
    import inspect

    import xrutils.config as config_module

    imported = set()
    for node in ast.walk(ast.parse(inspect.getsource(config_module))):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert not {
        m for m in imported if m.startswith(("xrutils.registry", "xrutils.models", "xrutils.studies"))
    }
    assert set(config_module.MODEL_SECTIONS) == {"gan", "vae", "pixelcnn", "ddpm"}


def test_the_profile_table_covers_every_profile_and_family():
    from xrutils import profiles

    assert set(profiles.PROFILES) == set(PROFILE_NAMES) and profiles.PROFILES["thesis"] == {}
    assert set(profiles.FAMILY_PROFILES) == set(registry.families())
    for family in registry.families():  # the thesis profile is the thesis: no family scales it
        cfg = build_config(family, "baseline", "thesis")
        assert profiles.family_part("thesis", cfg) == {}
