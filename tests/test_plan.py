"""The plan (xrutils.plan, ``python -m xrutils plan``): FLOPs and memory predicted from meta tensors, checked against
real steps on the CPU at small sizes; hours, disk and the fit check."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from xrutils import plan, registry
from xrutils.config import ConfigError
from xrutils.models.base import StepContext
from xrutils.registry import build_config

FAMILIES = ("gan", "vae", "pixelcnn", "ddpm")


def _real_step(cfg, *, checkpointing: bool = False):
    """One real training step on the CPU, its FLOPs counted and its peak tensor memory measured by the profiler."""
    model = registry.get(cfg.family).build(cfg)
    model.set_checkpointing(checkpointing)
    optimizers = model.configure_optimizers(cfg.train)
    ctx = StepContext(device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))
    s, b = cfg.data.image_size, cfg.train.batch_size
    batch = torch.rand(b, 1, s, s) * (model.value_range[1] - model.value_range[0]) + model.value_range[0]
    model.training_step(batch, optimizers, ctx)  # Adam's moments exist from here on, as in every later step
    flops = FlopCounterMode(display=False)
    with (
        flops,
        sdpa_kernel(SDPBackend.MATH),
    ):  # attention as matmuls, which the counter knows (the CPU's fused
        model.training_step(batch, optimizers, ctx)  # kernel has no FLOP formula)
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        model.training_step(batch, optimizers, ctx)
    live = peak = 0
    for e in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += e.self_cpu_memory_usage  # what the op itself allocated (+) and freed (-), children apart
        peak = max(peak, live)
    params = sum(p.numel() for p in model.parameters())
    return flops.get_total_flops(), peak + 16 * params, params  # peak above what was already held


@pytest.mark.parametrize("family", FAMILIES)
def test_meta_flops_equal_a_real_step_and_memory_is_within_a_fifth(family):
    # each family's demo baseline at batch 8: small, but not so small that fixed costs dominate
    cfg = build_config(family, "baseline", "demo", {"train.batch_size": 8})
    step, params = plan.count_training_step(cfg)
    flops, measured, real_params = _real_step(cfg)
    assert params == real_params
    assert step.flops == pytest.approx(flops, rel=1e-3)  # the same operations (attention: the fused formula)
    predicted = plan.peak_memory_gb(step, params, "fp32") - plan.CUDA_OVERHEAD_GB
    assert measured / 1.2 <= predicted * 1e9 <= measured * 1.2, (predicted * 1e9, measured)


def test_flops_and_memory_grow_with_batch_and_the_fit_check_names_the_run():
    cfg = build_config("gan", "tiny", "smoke")
    small, _ = plan.count_training_step(cfg, 8)
    large, _ = plan.count_training_step(cfg, 32)
    assert (
        large.flops == pytest.approx(4 * small.flops, rel=0.05) and large.saved_bytes > 3 * small.saved_bytes
    )
    assert plan.check_fits("gan__tiny", cfg, 80.0).peak_memory_gb < 80.0
    with pytest.raises(ConfigError, match="run gan__tiny: predicted peak memory .* lower train.batch_size"):
        plan.check_fits("gan__tiny", cfg, 0.5)


def test_sampling_passes_follow_the_sampler():
    cfg = build_config("ddpm", "baseline", "thesis")
    assert plan.sampling_passes(cfg, "ddpm") == 1000 and plan.sampling_passes(cfg, "ddim", 50) == 50
    assert plan.sampling_passes(build_config("gan", "baseline", "thesis")) == 1
    one = plan.count_sampling_pass(build_config("gan", "tiny", "smoke"), 4)
    assert one.flops > 0 and one.kernels > 0


def test_a_thesis_run_is_priced_from_its_steps_and_checkpoints():
    cfg = build_config("gan", "baseline", "thesis", {"data.source": "nih"})
    r = plan.plan_run("gan__baseline", cfg, plan.GPUS["h200"], scored=True)
    assert r.steps == 676 * 50  # 86,524 train_val images in batches of 128, 50 epochs (spec §1.2)
    step, params = plan.count_training_step(cfg)
    assert r.train_flops == pytest.approx(step.flops * r.steps)
    assert params == 3_574_656 + 2_763_520  # G and D at 64², h 64 (spec §2.1)
    assert r.checkpoint_gb == pytest.approx(4 * params * (50 + 2) / 1e9)  # 50 checkpoints, Adam in the newest
    assert 0 < r.train_hours and 0 < r.eval_hours and r.fits


def test_the_thesis_profile_keeps_the_weights_its_evaluators_need_and_the_plan_prices_that():
    from xrutils.studies.params import keep_weights, params_dir, read_params

    assert keep_weights("ddpm__baseline", "thesis") == "sampled"  # scored at every checkpoint
    assert keep_weights("ddpm__size32", "thesis") == "all"  # Supplementary Figure S1 samples it two more ways
    assert keep_weights("ddpm__size32-deep", "thesis") == "last"  # no study scores it
    assert keep_weights("ddpm__baseline", "demo") == "all"
    p = read_params(params_dir("thesis") / "ddpm__baseline.yaml")
    assert p["overrides"]["train.keep_weights"] == "sampled"  # the params file users edit says it
    cfg = build_config("gan", "baseline", "thesis", {"data.source": "nih", "train.keep_weights": "sampled"})
    r = plan.plan_run("gan__baseline", cfg, plan.GPUS["h200"], scored=True)
    _, params = plan.count_training_step(cfg)
    assert r.checkpoint_gb == pytest.approx(4 * params * 3 / 1e9)  # the newest with Adam's moments only


def test_wall_time_on_many_gpus_schedules_the_longest_runs_first():
    assert plan.wall_hours([1.0] * 8, 8) == 1.0
    assert (
        plan.wall_hours([4.0, 1.0, 1.0, 1.0, 1.0], 2) == 4.0
    )  # the long run on one GPU, the rest on the other
    assert plan.wall_hours([3.0, 3.0, 2.0, 2.0, 2.0], 2) == 7.0  # longest first: within 4/3 of the best (6)
    hours = [0.3, 2.5, 1.1, 0.05, 4.2, 0.9, 1.1, 3.0]
    for gpus in (1, 3, 8, 20):
        lower = max(sum(hours) / gpus, max(hours))
        assert lower - 1e-12 <= plan.wall_hours(hours, gpus) <= 4 / 3 * lower + 1e-12
    with pytest.raises(ConfigError, match="0 GPUs"):
        plan.wall_hours(hours, 0)


@pytest.mark.slow
def test_the_thesis_checkpoints_fit_in_30_gb():
    out = plan.plan_profile("thesis", "h200")
    assert out["total_checkpoint_gb"] <= 30  # 307 GB with every weight kept


def test_the_plan_of_a_profile_lists_every_run_and_the_cli_prints_json(capsys):
    from xrutils import studies
    from xrutils.cli import main

    assert main(["plan", "--profile", "smoke", "--gpu", "rtx4090", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # every run of `make figures`, and the downstream study's class generators (`make downstream`)
    from xrutils.studies import downstream

    generators = {
        f"downstream/{downstream.generator_name(r, c)}"
        for r in studies.common_size_runs("smoke")
        for c in downstream.task_for("smoke", "nih").classes
    }
    assert set(out["runs"]) == set(studies.all_runs("smoke")) | generators
    for r in out["runs"].values():
        assert r["peak_memory_gb"] > plan.CUDA_OVERHEAD_GB and r["hours"] > 0 and r["disk_gb"] > 0
    assert out["total_hours"] == pytest.approx(sum(r["hours"] for r in out["runs"].values()))
    assert out["gpu"] == "rtx4090" and "not measured" in out["assumptions"]["memory"]
    assert main(["plan", "--profile", "smoke"]) == 0
    assert "total:" in capsys.readouterr().out
    assert main(["plan", "--profile", "smoke", "--gpus", "4", "--json"]) == 0
    many = json.loads(capsys.readouterr().out)
    assert many["gpus"] == 4 and many["longest_run_hours"] <= many["wall_hours"] < many["total_hours"]
    assert main(["plan", "--profile", "smoke", "--gpus", "0"]) == 2
    with pytest.raises(SystemExit) as exit_:  # argparse's choices name the GPU kinds
        main(["plan", "--profile", "smoke", "--gpu", "tpu"])
    assert exit_.value.code == 2


def test_activation_checkpointing_changes_memory_not_results():
    import copy

    cfg = build_config("pixelcnn", "baseline", "demo", {"train.batch_size": 8})
    plain = registry.get("pixelcnn").build(cfg)
    ckpt = copy.deepcopy(plain)
    assert ckpt.set_checkpointing(True) and not registry.get("gan").build(
        build_config("gan", "tiny", "smoke")
    ).set_checkpointing(True)
    x = torch.rand(8, 1, cfg.data.image_size, cfg.data.image_size)
    losses = []
    for model in (plain, ckpt):
        opt = model.configure_optimizers(cfg.train)
        ctx = StepContext(device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))
        losses.append([model.training_step(x, opt, ctx)["loss"] for _ in range(3)])
    assert losses[0] == losses[1]  # the same losses, step by step
    a, b = plain.state_dict(), ckpt.state_dict()
    # the same weights and the same BatchNorm statistics: a recomputed stage does not update them twice
    assert all(torch.equal(a[k], b[k]) for k in a)
    # and less memory: predicted from meta tensors, and measured on the CPU
    step, params = plan.count_training_step(cfg)
    step_c, _ = plan.count_training_step(cfg, checkpointing=True)
    assert step_c.saved_bytes < 0.6 * step.saved_bytes and step_c.flops > step.flops  # the recomputation
    ckpt_cfg_real = _real_step(cfg, checkpointing=True)[1]
    predicted = plan.peak_memory_gb(step_c, params, "fp32") - plan.CUDA_OVERHEAD_GB
    assert ckpt_cfg_real / 1.25 <= predicted * 1e9 <= ckpt_cfg_real * 1.25, (predicted * 1e9, ckpt_cfg_real)


def test_the_plan_switches_on_checkpointing_where_a_run_would_not_fit():
    pixel64 = build_config("pixelcnn", "baseline", "thesis")
    assert plan.choose_measures(pixel64, 141.0).names == []  # fits an H200 as it is
    on_24 = plan.choose_measures(pixel64, 24.0)
    assert on_24.checkpointing and on_24.peak_memory_gb < 24.0  # every 64² run on a 24 GB card
    pixel128 = build_config("pixelcnn", "size128", "thesis")
    assert plan.choose_measures(pixel128, 80.0).checkpointing  # and the 128² one on 80 GB
    on_24 = plan.check_fits("pixelcnn__size128", pixel128, 24.0, "an RTX 4090")  # with micro-batches too
    assert on_24.checkpointing and on_24.micro_batch and 128 % on_24.micro_batch == 0
    assert on_24.peak_memory_gb <= 24.0 and "micro-batches of" in on_24.names[-1]
    gan = build_config(
        "gan", "size128", "thesis"
    )  # the GAN has neither (its two updates need the whole batch)
    with pytest.raises(
        ConfigError, match=r"run gan__size128: predicted peak .* exceeds a 2 GB card's 2.0 GB"
    ):
        plan.check_fits("gan__size128", gan, 2.0, "a 2 GB card")


def test_bf16_evaluation_sampling_cuts_the_ddpm_evaluation_hours():
    cfg = build_config("ddpm", "baseline", "thesis")
    assert cfg.eval.precision == "bf16"
    fp32 = cfg.override({"eval.precision": "fp32"})
    half = plan.plan_run("d", cfg, plan.GPUS["h200"], scored=True)
    full = plan.plan_run("d", fp32, plan.GPUS["h200"], scored=True)
    assert half.eval_flops == full.eval_flops  # the same work ...
    # ... at the bf16 tensor-core rate: half the FLOP time, the same kernel launches
    assert 0.5 < half.eval_hours / full.eval_hours < 0.7
