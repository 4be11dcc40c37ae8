"""The four model families: the generic contract (tiny presets), spec parameter counts, and known answers."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from xrutils import build_config, profiles, registry
from xrutils.config import ConfigError, RunConfig
from xrutils.models import dcgan, pixelcnn, vae
from xrutils.models.base import GenerativeModel, StepContext

FAMILIES = ["gan", "vae", "pixelcnn", "ddpm"]


def _build(
    family: str, preset: str = "tiny", profile: str = "thesis", **overrides
) -> tuple[RunConfig, GenerativeModel]:
    cfg = build_config(family, preset, profile, overrides)
    return cfg, registry.get(family).build(cfg)


def _batch(model: GenerativeModel, b: int = 4, seed: int = 0) -> torch.Tensor:
    """A batch on the 256-level grid, in the model's value range."""
    g = torch.Generator().manual_seed(seed)
    u8 = torch.randint(0, 256, (b, 1, model.image_size, model.image_size), generator=g, dtype=torch.uint8)
    lo, hi = model.value_range
    return u8.float() / 255 * (hi - lo) + lo


def _ctx(seed: int = 0, grad_clip: float = 0.0) -> StepContext:
    return StepContext(
        device=torch.device("cpu"), generator=torch.Generator().manual_seed(seed), grad_clip=grad_clip
    )


def _step(cfg: RunConfig, model: GenerativeModel, b: int = 4) -> dict[str, torch.Tensor]:
    opts = model.configure_optimizers(cfg.train)
    return model.training_step(_batch(model, b), opts, _ctx(grad_clip=cfg.train.grad_clip))


def _floats(logs: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v) for k, v in logs.items()}


# ---------------------------------------------------------------------------------------------------------------
# the generic contract, over the registry


def test_registry_holds_the_four_families() -> None:
    assert registry.families() == FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_training_step_is_finite_and_reaches_every_parameter(family: str) -> None:
    cfg, model = _build(family)
    logs = _step(cfg, model)
    assert "loss" in logs, logs
    for (
        k,
        v,
    ) in logs.items():  # read on the host only when the loop logs: detached float64 scalars on the device
        assert isinstance(v, torch.Tensor) and v.shape == () and v.dtype == torch.float64, (k, v)
        assert not v.requires_grad and v.device == model.device and math.isfinite(v), (k, v)
    # optimiser.step() leaves the gradients in place: every parameter must have received a nonzero one
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"{family}: no gradient for {missing}"


@pytest.mark.parametrize("family", FAMILIES)
def test_training_step_under_autocast_and_grad_scaler(family: str) -> None:
    # CPU stand-in for the CUDA fp16 path: autocast + GradScaler through the StepContext
    cfg, model = _build(family)
    scaler = torch.amp.GradScaler("cpu")
    ctx = StepContext(
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        autocast_dtype=torch.bfloat16,
        scaler=scaler,
        grad_clip=1.0,
    )
    logs = model.training_step(_batch(model), model.configure_optimizers(cfg.train), ctx)
    scaler.update()
    assert all(math.isfinite(v) for v in logs.values()), logs


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_shape_range_and_mode_restored(family: str) -> None:
    _, model = _build(family)
    model.train()
    x = model.sample(3, torch.Generator().manual_seed(0))
    s = model.image_size
    assert x.shape == (3, 1, s, s) and x.dtype == torch.float32
    lo, hi = model.value_range
    assert x.min() >= lo and x.max() <= hi and torch.isfinite(x).all()
    assert model.training and not x.requires_grad  # train mode restored, sampled under no_grad


@pytest.mark.parametrize("family", FAMILIES)
def test_state_dict_round_trip_samples_identically(family: str) -> None:
    cfg, model = _build(family)
    _step(cfg, model)  # move weights and BN statistics away from their initial values
    _, other = _build(family, seed=123)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True)
    )
    other.load_state_dict(model.state_dict())
    a = model.sample(2, torch.Generator().manual_seed(7))
    b = other.sample(2, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    c = model.sample(2, torch.Generator().manual_seed(8))
    assert not torch.equal(a, c)  # the generator really drives the samples


@pytest.mark.parametrize("family", FAMILIES)
def test_build_is_deterministic_per_seed_and_leaves_global_rng_alone(family: str) -> None:
    state = torch.get_rng_state()
    _, a = _build(family)
    _, b = _build(family)
    _, c = _build(family, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


@pytest.mark.parametrize("family", FAMILIES)
def test_sampling_does_not_touch_the_global_rng(family: str) -> None:
    _, model = _build(family)
    state = torch.get_rng_state()
    model.sample(2, torch.Generator().manual_seed(0))
    model.sample(2)  # no generator: a private one, still not the global RNG
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("family", ["gan", "vae"])
def test_fixed_noise_renders_like_sample(family: str) -> None:
    _, model = _build(family)
    z = model.fixed_noise(3, torch.Generator().manual_seed(5))
    torch.testing.assert_close(model.sample_from_noise(z), model.sample(3, torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("family", FAMILIES)
def test_unknown_sample_option_is_an_error(family: str) -> None:
    _, model = _build(family)
    with pytest.raises(TypeError, match="bogus"):
        model.sample(1, bogus=1)


# ---------------------------------------------------------------------------------------------------------------
# presets and profiles

ALL_PRESETS = [(f, p) for f in FAMILIES for p in registry.get(f).presets]


@pytest.mark.parametrize(("family", "preset"), ALL_PRESETS)
def test_every_preset_trains_at_smoke_and_demo(family: str, preset: str) -> None:
    for profile in ("smoke", "demo"):
        cfg, model = _build(family, preset, profile)
        assert model.image_size == cfg.data.image_size
        logs = _step(cfg, model, b=2)
        assert math.isfinite(logs["loss"]), (profile, logs)
    build_config(family, preset, "thesis")  # the thesis config validates too


def test_common_override_keys_work_in_every_family() -> None:
    for family in FAMILIES:
        hidden = 16 if family == "ddpm" else 24  # DDPM widths must stay divisible by its 32 GroupNorm groups
        cfg = build_config(
            family,
            "baseline",
            "thesis",
            {
                "data.image_size": 32,
                "model.hidden": hidden,
                "train.lr": 3e-4,
                "train.epochs": 3,
                "train.batch_size": 16,
                "seed": 9,
            },
        )
        assert (
            cfg.data.image_size,
            cfg.model.hidden,
            cfg.train.lr,
            cfg.train.epochs,
            cfg.train.batch_size,
            cfg.seed,
        ) == (32, hidden, 3e-4, 3, 16, 9)


def test_thesis_baselines_and_asrun_differences() -> None:
    gan = build_config("gan", "baseline")
    assert (gan.data.image_size, gan.model.hidden, gan.train.lr, gan.train.epochs) == (64, 64, 1e-4, 50)
    assert build_config("gan", "lr1e-3").model.hidden == 128
    assert build_config("gan", "lr1e-3-asrun").model.hidden == 64
    assert build_config("gan", "size32-asrun").model.hidden == 128
    v = build_config("vae", "baseline")
    assert (v.data.image_size, v.model.hidden) == (128, 400)
    assert build_config("vae", "asrun").data.image_size == 64
    assert build_config("vae", "size64").train.lr == 1e-6
    p = build_config("pixelcnn", "baseline")
    assert (p.model.arch, p.model.layers, p.model.hidden, p.train.epochs, p.data.hflip) == (
        "residual",
        10,
        400,
        25,
        True,
    )
    pa = build_config("pixelcnn", "asrun")
    assert (pa.model.arch, pa.model.layers, pa.model.hidden, pa.train.epochs) == ("plain", 8, 64, 50)
    d = build_config("ddpm", "baseline")
    assert (
        d.train.warmup_steps,
        d.train.lr_schedule,
        d.train.grad_clip,
        d.train.precision,
        d.data.hflip,
    ) == (500, "cosine", 1.0, "fp16", True)
    assert d.model.block_out_channels == (128, 128, 256, 256, 512, 512)
    assert build_config("ddpm", "size32").model.block_out_channels == (64, 128, 256)


def test_demo_profile_keeps_each_study_contrast() -> None:
    """The demo scales (docs/DISCREPANCIES.md, Profiles) but keeps each study's order and ratios."""

    def demo(family: str, preset: str) -> RunConfig:
        return build_config(family, preset, "demo")

    h = [demo("gan", p).model.hidden for p in ("hidden32", "baseline", "hidden128")]
    assert h == [12, 16, 32]  # widths / 4, at least 12 (h 8 does not learn)
    assert (
        demo("gan", "baseline").model.diversity_weight == 0.0
        and demo("gan", "faithful").model.diversity_weight == 0.5
    )
    assert build_config("gan", "faithful") == dataclasses.replace(
        build_config("gan", "baseline"), preset="faithful"
    )
    assert [demo("vae", p).model.hidden for p in ("hidden300", "baseline", "hidden500")] == [300, 400, 500]
    for family, presets, halved in [
        ("gan", ("size32", "baseline", "size128"), False),
        ("vae", ("size32", "size64", "baseline"), True),
        ("pixelcnn", ("size32", "baseline", "size128"), True),
        ("ddpm", ("size32", "baseline"), False),
    ]:
        sizes = [demo(family, p).data.image_size for p in presets]
        thesis = [build_config(family, p).data.image_size for p in presets]
        assert sizes == ([s // 2 for s in thesis] if halved else thesis), family
    for family, presets in {
        "gan": ("baseline", "lr1e-5"),
        "vae": ("baseline", "lr1e-5", "lr1e-6"),
        "pixelcnn": ("baseline", "lr5e-4", "lr1e-5"),
        "ddpm": ("baseline", "lr5e-4", "lr1e-5"),
    }.items():
        ratios = [demo(family, p).train.lr / demo(family, presets[0]).train.lr for p in presets]
        thesis = [
            build_config(family, p).train.lr / build_config(family, presets[0]).train.lr for p in presets
        ]
        assert ratios == pytest.approx(thesis), family
    # every family's demo lr is its thesis lr x 10, printed without float noise (1e-4 * 10 -> 0.001)
    for family in FAMILIES:
        for preset in registry.get(family).presets:
            assert demo(family, preset).train.lr == profiles.scaled_lr(build_config(family, preset).train.lr)
    assert [demo("gan", p).train.lr for p in ("lr1e-5", "baseline", "lr1e-3")] == [1e-4, 1e-3, 1e-2]
    assert profiles.scaled_lr(3e-5) == 3e-4 and profiles.scaled_lr(1e-6, 2) == 2e-6
    assert (
        demo("pixelcnn", "asrun").model.arch == "plain"
        and demo("pixelcnn", "baseline").model.arch == "residual"
    )
    assert demo("ddpm", "baseline").model.block_out_channels == (16, 16, 32, 32, 64, 64)
    assert demo("ddpm", "size32").model.block_out_channels == (16, 32, 64)
    assert demo("ddpm", "baseline").model.sampler == "ddim"


def test_bad_model_config_values_raise_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="model.hidden"):
        dcgan.GANConfig(hidden=0)
    with pytest.raises(ConfigError, match="model.beta1"):
        dcgan.GANConfig(beta1=1.0)
    with pytest.raises(ConfigError, match="model.kernel"):
        pixelcnn.PixelCNNConfig(kernel=4)
    with pytest.raises(ConfigError, match="model.arch"):
        pixelcnn.PixelCNNConfig(arch="gated")
    with pytest.raises(ConfigError, match="model.norm_groups"):
        build_config("ddpm", "baseline", overrides={"model.hidden": 20})
    with pytest.raises(ConfigError, match="model.levels"):
        build_config("ddpm", "baseline", overrides={"model.levels": 4})
    with pytest.raises(ConfigError, match="data.image_size=28"):
        registry.get("gan").build(build_config("gan", "tiny", overrides={"data.image_size": 28}))
    with pytest.raises(ConfigError, match="data.image_size=16"):
        registry.get("ddpm").build(
            build_config("ddpm", "baseline", "smoke", {"data.image_size": 16, "model.levels": 6})
        )


# ---------------------------------------------------------------------------------------------------------------
# parameter counts from the spec (original-code.md §2.1-2.3)


@pytest.mark.parametrize(
    ("size", "hidden", "n_g", "n_d"),
    [
        (64, 64, 3_574_656, 2_763_520),
        (64, 32, 1_099_200, 693_632),
        (64, 128, 12_654_336, 11_032_064),
        (32, 64, 1_066_880, 661_248),
        (32, 128, 3_444_480, 2_633_216),
        (128, 64, 12_784_512, 11_162_368),
    ],
)
def test_gan_param_counts_match_the_spec(size: int, hidden: int, n_g: int, n_d: int) -> None:
    model = dcgan.GAN(dcgan.GANConfig(hidden=hidden), size)
    assert model.param_counts() == {"generator": n_g, "discriminator": n_d}


def test_gan_baseline_thesis_param_counts_through_the_registry() -> None:
    _, model = _build("gan", "baseline")
    assert model.param_counts() == {"generator": 3_574_656, "discriminator": 2_763_520}


@pytest.mark.parametrize(
    ("size", "hidden", "total"),
    [
        (128, 400, 14_327_184),
        (64, 400, 4_484_496),
        (32, 400, 1_703_024),
        (32, 200, 692_224),
        (128, 300, 10_569_584),
        (128, 500, 18_204_784),
    ],
)
def test_vae_param_counts_match_the_spec(size: int, hidden: int, total: int) -> None:
    assert vae.VAE(vae.VAEConfig(hidden=hidden), size).param_counts()["total"] == total


@pytest.mark.parametrize(("layers", "total"), [(8, 1_425_728), (10, 1_827_392)])
def test_pixelcnn_plain_param_counts_match_the_spec(layers: int, total: int) -> None:
    model = pixelcnn.PixelCNN(pixelcnn.PixelCNNConfig(arch="plain", hidden=64, layers=layers), 64)
    assert model.param_counts() == {"net": total}


def test_pixelcnn_residual_thesis_network_shape() -> None:
    net = pixelcnn.PixelCNN(pixelcnn.PixelCNNConfig(), 64).net
    masked = [m for m in net.modules() if isinstance(m, pixelcnn.MaskedConv2d)]
    assert [m.mask_type for m in masked] == ["A"] + ["B"] * 9
    assert masked[0].out_channels == 400 and masked[1].in_channels == 200 and masked[1].kernel_size == (7, 7)
    assert len([m for m in net.modules() if isinstance(m, pixelcnn.ResidualBlock)]) == 9
    assert net.head.out_channels == 256


# ---------------------------------------------------------------------------------------------------------------
# DDPM UNet layout (spec §2.4)


def test_ddpm_block_layout_of_the_baseline_and_the_32_network() -> None:
    _, base = _build("ddpm", "baseline")
    unet = base.unet
    assert [type(b).__name__ for b in unet.down_blocks] == ["DownBlock2D"] * 4 + [
        "AttnDownBlock2D",
        "DownBlock2D",
    ]
    assert [type(b).__name__ for b in unet.up_blocks] == ["UpBlock2D", "AttnUpBlock2D"] + ["UpBlock2D"] * 4
    assert tuple(unet.config.block_out_channels) == (128, 128, 256, 256, 512, 512)
    assert [b.resnets[-1].out_channels for b in unet.down_blocks] == [128, 128, 256, 256, 512, 512]
    assert unet.config.sample_size == 64 and unet.config.in_channels == unet.config.out_channels == 1
    assert unet.config.layers_per_block == 2 and unet.config.norm_num_groups == 32
    assert (
        base.param_counts()["unet"] > 50_000_000
    )  # the six-level 64x64 UNet is large (computed, no spec value)
    sched = base.scheduler.config
    assert (sched.num_train_timesteps, sched.beta_schedule, sched.beta_start, sched.beta_end) == (
        1000,
        "linear",
        1e-4,
        0.02,
    )
    assert (sched.variance_type, sched.clip_sample, sched.prediction_type) == ("fixed_small", True, "epsilon")
    _, small = _build("ddpm", "size32")
    assert [type(b).__name__ for b in small.unet.down_blocks] == [
        "DownBlock2D",
        "AttnDownBlock2D",
        "DownBlock2D",
    ]
    assert [type(b).__name__ for b in small.unet.up_blocks] == ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]
    assert (
        tuple(small.unet.config.block_out_channels) == (64, 128, 256) and small.unet.config.sample_size == 32
    )


def test_ddpm_and_ddim_samplers() -> None:
    _, model = _build("ddpm", "tiny", **{"model.timesteps": 20, "model.sampler_steps": 2})
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = model.sample(2, g(), sampler="ddpm")  # all T = 20 ancestral steps
    b = model.sample(2, g(), sampler="ddim", steps=4)
    c = model.sample(2, g(), sampler="ddim", steps=4)
    for x in (a, b):
        assert x.shape == (2, 1, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(b, c) and not torch.equal(a, b)
    with pytest.raises(ValueError, match="sampler"):
        model.sample(1, g(), sampler="euler")
    with pytest.raises(ValueError, match="steps"):
        model.sample(1, g(), sampler="ddim", steps=21)


# ---------------------------------------------------------------------------------------------------------------
# GAN: diversity loss and step


def test_diversity_loss_equals_the_pairwise_double_loop() -> None:
    x = torch.randn(7, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    pairs = [torch.norm(x[i] - x[j]) for i, j in itertools.combinations(range(len(x)), 2)]
    expected = -torch.stack(pairs).mean()
    torch.testing.assert_close(dcgan.diversity_loss(x), expected)
    assert dcgan.diversity_loss(torch.zeros(3, 1, 4, 4) + 1.0).item() == 0.0


def test_gan_init_follows_the_thesis() -> None:
    _, model = _build("gan", "baseline")
    w = model.generator.main[3].weight  # a ConvTranspose2d
    bn = model.generator.main[1]
    assert abs(w.std().item() - 0.03) < 0.002 and abs(w.mean().item()) < 0.002
    assert abs(bn.weight.mean().item() - 1.0) < 0.01 and torch.all(bn.bias == 0)
    assert all(m.negative_slope == 0.2 for m in model.modules() if isinstance(m, torch.nn.LeakyReLU))


def test_gan_step_updates_d_before_g_with_the_same_fakes() -> None:
    cfg, model = _build("gan")
    d0 = [p.detach().clone() for p in model.discriminator.parameters()]
    g0 = [p.detach().clone() for p in model.generator.parameters()]
    logs = _floats(_step(cfg, model))
    assert all(not torch.equal(a, p) for a, p in zip(d0, model.discriminator.parameters(), strict=True))
    assert all(not torch.equal(a, p) for a, p in zip(g0, model.generator.parameters(), strict=True))
    assert logs["loss_g"] == pytest.approx(logs["loss_g_adv"] + 0.5 * logs["diversity"], rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# VAE: KL, likelihood


def test_kl_of_a_standard_normal_posterior_is_zero() -> None:
    z = torch.zeros(3, 200)
    assert torch.equal(vae.kl_divergence(z, z), torch.zeros(3))
    assert (vae.kl_divergence(torch.ones(1, 2), torch.zeros(1, 2)) == 1.0).all()  # 1/2 * (1 + 1)


def test_vae_level_normaliser_matches_logsumexp() -> None:
    eta = torch.tensor([-800.0, -30.0, -1.0, -1e-4, 0.0, 1e-4, 0.5, 30.0, 800.0])
    levels = torch.arange(256, dtype=torch.float64) / 255
    expected = torch.logsumexp(eta.double()[:, None] * levels[None], dim=1)
    torch.testing.assert_close(vae.log_normaliser(eta.double()), expected, rtol=1e-9, atol=1e-9)


def test_vae_bits_per_dim_is_a_valid_bound() -> None:
    _, model = _build("vae")
    x = _batch(model, 3)
    bpd = model.bits_per_dim(x)
    assert bpd.shape == (3,) and torch.isfinite(bpd).all() and (bpd > 0).all()
    torch.testing.assert_close(bpd, model.bits_per_dim(x))  # deterministic by default
    # the discrete model sums to one over the 256 levels for any logit
    eta = torch.tensor([-3.0, 0.0, 2.0])[:, None]
    k = torch.arange(256.0)[None]
    torch.testing.assert_close(torch.exp(k * eta / 255 - vae.log_normaliser(eta)).sum(1), torch.ones(3))


# ---------------------------------------------------------------------------------------------------------------
# PixelCNN: masks, exact likelihood, windowed sampling


def _raster_dependence(fn, s: int, min_seen: float = 1.0) -> None:
    """Assert that output pixel i depends on no input pixel j >= i (raster order), and (for a fraction
    ``min_seen`` of the pixels: a ReLU network can have dead paths) on its left / upper neighbour."""
    x = torch.rand(1, 1, s, s, generator=torch.Generator().manual_seed(0), requires_grad=True)
    seen_count = 0
    for i in range(s * s):
        r, c = divmod(i, s)
        (grad,) = torch.autograd.grad(fn(x)[0, :, r, c].sum(), x)
        flat = grad.flatten()
        assert torch.all(flat[i:] == 0), f"output pixel {i} depends on input pixel(s) at or after it"
        if i > 0:
            seen = i - 1 if c > 0 else i - s  # the left neighbour, or the one above at the row start
            seen_count += bool(flat[seen] != 0)
    assert seen_count >= min_seen * (s * s - 1), f"only {seen_count} pixels see their predecessor"


def test_masked_conv_type_a_sees_only_earlier_pixels() -> None:
    conv = pixelcnn.MaskedConv2d("A", 1, 3, 5)
    torch.nn.init.uniform_(conv.weight, 0.1, 1.0)  # no accidental zero weights
    _raster_dependence(conv, 6)
    b = pixelcnn.MaskedConv2d("B", 1, 1, 3)
    assert b.mask[0, 0].tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert conv.mask[0, 0, 2].tolist() == [1, 1, 0, 0, 0]


@pytest.mark.parametrize(
    ("mask_type", "kernel", "size"), [("A", 7, 9), ("B", 7, 8), ("B", 3, 5), ("A", 1, 4)]
)
def test_masked_conv_with_the_upper_kernel_rows_equals_the_full_masked_kernel(
    mask_type, kernel, size
) -> None:
    # forward computes only the kernel rows down to the centre (4/7 of the multiply-adds at k = 7); the outputs and
    # the gradients are those of the full k x k kernel with its mask, zero padding included
    torch.manual_seed(0)
    conv = pixelcnn.MaskedConv2d(mask_type, 3, 4, kernel)
    x = torch.randn(2, 3, size, size + 1, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    ours = conv(x)
    full = torch.nn.functional.conv2d(x2, conv.weight * conv.mask, padding=kernel // 2)
    assert ours.shape == full.shape == (2, 4, size, size + 1)
    torch.testing.assert_close(ours, full, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(full)
    (wa,) = torch.autograd.grad((ours * g).sum(), conv.weight)
    (xa,) = torch.autograd.grad((conv(x) * g).sum(), x)
    (wb, xb) = torch.autograd.grad((full * g).sum(), (conv.weight, x2))
    torch.testing.assert_close(wa, wb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(xa, xb, rtol=1e-5, atol=1e-6)
    assert wa[:, :, kernel // 2 + 1 :].abs().sum() == 0  # rows below the centre get no gradient, as before


@pytest.mark.parametrize(("arch", "coords"), [("residual", False), ("plain", False), ("residual", True)])
def test_pixelcnn_network_output_depends_only_on_earlier_pixels(arch: str, coords: bool) -> None:
    _, model = _build(
        "pixelcnn", **{"model.arch": arch, "model.hidden": 16, "data.image_size": 16, "model.coords": coords}
    )
    model.eval()  # eval-mode BN is per pixel; train-mode BN would mix the batch's pixels
    _raster_dependence(model, 16, min_seen=0.9)


def test_pixelcnn_position_channels_tell_pixels_apart_and_add_only_first_layer_weights() -> None:
    plain = pixelcnn.PixelCNN(pixelcnn.PixelCNNConfig(hidden=16, layers=3, kernel=3), 16)
    coords = pixelcnn.PixelCNN(pixelcnn.PixelCNNConfig(hidden=16, layers=3, kernel=3, coords=True), 16)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(coords) - n(plain) == 2 * 16 * 3 * 3  # two more input channels of the first k x k conv
    assert "coords" not in str(list(coords.state_dict()))  # rebuilt from the size, never stored
    coords.eval()
    with torch.no_grad():
        logits = coords(torch.zeros(1, 1, 16, 16))
    # on a blank canvas the plain net gives every interior pixel the same logits; positions tell them apart
    assert not torch.allclose(logits[0, :, 8, 5], logits[0, :, 8, 9])
    with pytest.raises(ValueError, match="built for 16 px images"):
        coords(torch.zeros(1, 1, 32, 32))


def test_mask_is_a_buffer_and_weights_are_never_mutated() -> None:
    cfg, model = _build("pixelcnn")
    conv = model.net.stages[0].conv
    assert "mask" not in str(list(model.state_dict()))
    before = conv.weight.detach().clone()
    model(torch.rand(1, 1, 16, 16))
    assert torch.equal(conv.weight, before) and (before * (1 - conv.mask)).abs().sum() > 0


def test_pixelcnn_bits_per_dim_is_the_exact_cross_entropy() -> None:
    _, model = _build("pixelcnn")
    x = _batch(model, 2)
    model.eval()
    logits = model(x)
    target = (x[:, 0] * 255).round().long()
    expected = torch.stack(
        [torch.nn.functional.cross_entropy(logits[i : i + 1], target[i : i + 1]) for i in range(2)]
    ) / math.log(2)
    torch.testing.assert_close(model.bits_per_dim(x), expected)


@pytest.mark.parametrize(("arch", "coords"), [("residual", False), ("plain", False), ("residual", True)])
def test_receptive_field_logits_and_sampling_orders_equal_the_full_canvas(arch: str, coords: bool) -> None:
    cfg, model = _build(
        "pixelcnn", **{"model.arch": arch, "model.kernel": 5, "data.image_size": 16, "model.coords": coords}
    )
    for m in model.modules():  # non-trivial BN statistics, so eval-mode BN is not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    model.eval()
    canvas = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(canvas)
        for r, c in [(0, 0), (0, 15), (3, 7), (9, 0), (15, 15), (15, 4), (7, 14)]:
            torch.testing.assert_close(
                model.net.logits_at(canvas, r, c), full[:, :, r, c], rtol=1e-5, atol=1e-5
            )
    a, b, c, d = (
        model.sample(2, torch.Generator().manual_seed(3), order=o)
        for o in ("wavefront", "raster", "full", "cached")
    )
    assert torch.equal(a, c) and torch.equal(b, c)
    assert torch.equal(d, c)  # the cached sampler sums in another order; at this seed no draw flips
    assert ((a * 255).round() == a * 255).all()  # intensities are k / 255
    assert a.std() > 0
    # teacher-forced: the cached sampler's logits of every pixel, fed this canvas, are the full network's
    groups = pixelcnn.wavefronts(16, model.net.reach)
    with torch.no_grad():
        engine = pixelcnn._Incremental(model.net, 2, groups, 16)
        engine.advance(-1)
        for t, (rows, cols) in enumerate(groups):
            pos = rows * 16 + cols
            got = engine.logits(pos).view(len(rows), 2, -1).permute(1, 2, 0)  # (B, 256, P)
            torch.testing.assert_close(got, full[:, :, rows, cols], rtol=1e-5, atol=1e-5)
            engine.draw(pos, canvas[:, 0, rows, cols])
            engine.advance(t)


def test_wavefronts_cover_every_pixel_once_after_its_dependencies() -> None:
    s, reach = 9, 2
    groups = pixelcnn.wavefronts(s, reach)
    when = {}
    for t, (rows, cols) in enumerate(groups):
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            when[(r, c)] = t
    assert len(when) == s * s and len(groups) == (s - 1) * (reach + 1) + s
    for (r, c), t in when.items():  # everything in the receptive field comes strictly earlier
        deps = [(r, cc) for cc in range(max(0, c - reach), c)]
        deps += [
            (rr, cc)
            for rr in range(max(0, r - reach), r)
            for cc in range(max(0, c - reach), min(s, c + reach + 1))
        ]
        assert all(when[d] < t for d in deps)


def test_draw_levels_is_the_inverse_cdf() -> None:
    logits = torch.log(torch.tensor([[0.25, 0.0, 0.5, 0.25] + [0.0] * 252] * 4) + 1e-30)
    u = torch.tensor([0.0, 0.2499, 0.26, 0.9999])
    assert pixelcnn.draw_levels(logits, u).tolist() == [0, 0, 2, 3]


def test_every_scheduler_argument_is_set_explicitly_with_the_values_the_original_ran() -> None:
    import inspect

    from diffusers import DDIMScheduler, DDPMScheduler

    from xrutils.models import ddpm

    cfg = build_config("ddpm", "baseline", "thesis").model
    for cls, args in (
        (DDPMScheduler, ddpm.ddpm_scheduler_args(cfg)),
        (DDIMScheduler, ddpm.ddim_scheduler_args(cfg)),
    ):
        params = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
        assert set(args) == set(params), f"{cls.__name__}: unset {set(params) - set(args)}"
        # pinned: the thesis's 1000 linear betas 1e-4 .. 0.02 with epsilon prediction and fixed_small variance
        assert args["num_train_timesteps"] == 1000 and args["beta_schedule"] == "linear"
        assert (args["beta_start"], args["beta_end"]) == (1e-4, 0.02) and args["prediction_type"] == "epsilon"
        scheduler = cls(**args)
        assert scheduler.config.get("_use_default_values", []) == []
    assert ddpm.ddpm_scheduler_args(cfg)["variance_type"] == "fixed_small"


def _grads_after_step(family: str, micro_batch: int, **overrides):
    """Losses and gradients of one training step of batch 8 in ``micro_batch``-image passes (lr 0: weights stay)."""
    cfg, model = _build(family, **{"train.lr": 1e-30, **overrides})
    torch.manual_seed(1)
    batch = _batch(model, 8)
    ctx = _ctx()
    ctx.micro_batch = micro_batch
    logs = model.training_step(batch, model.configure_optimizers(cfg.train), ctx)
    return logs, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("family", ["vae", "ddpm"])
def test_micro_batches_give_the_whole_batch_step(family: str) -> None:
    # no BatchNorm in the VAE (fully connected) or the UNet (GroupNorm: per image): micro-batches of 2 and 4 give
    # the batch's losses and gradients to float rounding, noise drawn once for the whole batch
    whole, g_whole = _grads_after_step(family, 0)
    for m in (2, 4):
        parts, g_parts = _grads_after_step(family, m)
        for k in whole:
            assert torch.allclose(parts[k], whole[k], rtol=1e-6, atol=1e-9), (m, k, parts[k], whole[k])
        for n in g_whole:
            assert torch.allclose(g_parts[n], g_whole[n], rtol=1e-4, atol=1e-7), (m, n)


def test_pixelcnn_micro_batches_differ_only_by_batchnorm() -> None:
    # the PixelCNN's BatchNorm normalises each micro-batch by its own statistics, so its step is not the batch's;
    # with BatchNorm's statistics fixed (eval mode: running statistics) the micro-batched step is the batch's
    cfg, model = _build("pixelcnn")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    whole, _ = _grads_after_step("pixelcnn", 0)
    parts, _ = _grads_after_step("pixelcnn", 2)
    assert not torch.allclose(parts["loss"], whole["loss"], rtol=1e-7, atol=0)
    assert torch.allclose(parts["loss"], whole["loss"], rtol=0.05)  # close: same weights, other statistics

    def eval_bn_step(m: int):
        cfg, model = _build("pixelcnn", **{"train.lr": 1e-30})
        for bn in (x for x in model.modules() if isinstance(x, torch.nn.BatchNorm2d)):
            bn.eval()
        torch.manual_seed(1)
        ctx = _ctx()
        ctx.micro_batch = m
        logs = model.training_step(_batch(model, 8), model.configure_optimizers(cfg.train), ctx)
        return logs, {n: p.grad.clone() for n, p in model.named_parameters()}

    (w, gw), (p, gp) = eval_bn_step(0), eval_bn_step(2)
    assert torch.allclose(p["loss"], w["loss"], rtol=1e-6)
    for n in gw:
        assert torch.allclose(gp[n], gw[n], rtol=1e-4, atol=1e-7), n


def test_a_gan_refuses_micro_batches(tmp_path) -> None:
    from xrutils.train import train

    cfg = build_config(
        "gan", "tiny", "smoke", {"train.micro_batch": 1, "train.batch_size": 2, "train.epochs": 1}
    )
    with pytest.raises(ConfigError, match=r"train.micro_batch=1.*gan"):
        train(cfg, tmp_path, progress=False)


def test_micro_batch_must_divide_the_batch() -> None:
    with pytest.raises(ConfigError, match=r"train.micro_batch=3 must divide train.batch_size=8"):
        build_config("vae", "tiny", "thesis", {"train.micro_batch": 3, "train.batch_size": 8})
