"""The one training loop: run-folder outputs, bit-identical resume for every family, config checks on resume,
non-finite losses, load_model, the LR schedule, unnormalised grids and a 2-process DDP run (gloo)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

from xrutils import registry
from xrutils.checkpoints import load_model
from xrutils.config import ConfigError, RunConfig
from xrutils.data import batches, load_images
from xrutils.registry import build_config
from xrutils.runs import RunDir
from xrutils.train import (
    _restore,
    config_differences,
    count_steps,
    lr_factor,
    make_step_context,
    resolve_device,
    save_grid,
    train,
)

FAMILIES = registry.families()
TIMING = {"images_per_s", "seconds", "sample_seconds"}


def tiny(family: str, **overrides) -> RunConfig:
    """The tiny preset under the smoke profile: 3 epochs of 2 steps, 4-image grids."""
    return build_config(family, "tiny", "smoke", {"train.epochs": 3, **overrides})


def final_state(run_dir) -> dict:
    ckpt = RunDir(run_dir).load_checkpoint()
    return {
        "networks": ckpt["networks"],
        "optimizers": ckpt["optimizers"],
        "schedulers": ckpt["schedulers"],
        "rng": ckpt["rng"],
    }


def assert_identical(a, b, path: str = "") -> None:
    """Recursive torch.equal / == over nested checkpoint structures."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"{path} differs"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            assert_identical(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def losses(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


class Interrupt(Exception):
    """Stands in for a kill right after a checkpoint was written."""


def interrupt_after(monkeypatch, epoch: int) -> None:
    real = RunDir.save_checkpoint

    def save(self, e, state):
        path = real(self, e, state)
        if e == epoch:
            raise Interrupt
        return path

    monkeypatch.setattr(RunDir, "save_checkpoint", save)


def patch_build(monkeypatch, wrap) -> None:
    """Make registry.get(...).build return ``wrap(model)`` (the loop only knows families through the registry)."""
    real_get = registry.get

    def get(name):
        fam = real_get(name)
        return dataclasses.replace(fam, build=lambda cfg: wrap(fam.build(cfg)))

    monkeypatch.setattr(registry, "get", get)


# ----------------------------------------------------------------------------------------------------------------
# building blocks


def test_lr_factor_matches_diffusers_schedules():
    from diffusers.optimization import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    for make, schedule in (
        (get_cosine_schedule_with_warmup, "cosine"),
        (get_constant_schedule_with_warmup, "constant"),
    ):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        args = (opt, 5, 40) if schedule == "cosine" else (opt, 5)
        ref = make(*args)
        for step in range(45):
            assert lr_factor(step, schedule, 5, 40) == pytest.approx(ref.get_last_lr()[0], abs=1e-12), step
            opt.step()
            ref.step()
    assert lr_factor(0, "cosine", 0, 10) == 1.0 and lr_factor(10, "cosine", 0, 10) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "n,batch,world,cap", [(10, 4, 1, 0), (12, 4, 1, 0), (11, 4, 2, 0), (9, 2, 2, 0), (50, 4, 1, 3)]
)
def test_count_steps_matches_the_batches_iterator(n, batch, world, cap):
    cfg = build_config("gan", "tiny", "smoke", {"train.batch_size": batch, "train.steps_per_epoch": cap})
    images = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    for rank in range(world):
        got = sum(
            1
            for _ in batches(
                images,
                batch // world,
                value_range=(0.0, 1.0),
                rank=rank,
                world_size=world,
                generator=torch.Generator().manual_seed(0),
            )
        )
        assert count_steps(n, cfg.train, world) == (min(got, cap) if cap else got)


def test_save_grid_maps_the_value_range_without_min_max_scaling(tmp_path):
    # a uniformly mid-grey batch must stay mid-grey (min-max normalisation would turn it black or white)
    save_grid(torch.zeros(4, 1, 8, 8), (-1.0, 1.0), tmp_path / "gan.png")
    save_grid(torch.full((4, 1, 8, 8), 0.25), (0.0, 1.0), tmp_path / "vae.png")
    gan = np.asarray(Image.open(tmp_path / "gan.png").convert("L"))
    vae = np.asarray(Image.open(tmp_path / "vae.png").convert("L"))
    assert gan.shape == (2 * 8 + 3 * 2, 2 * 8 + 3 * 2)  # 2x2 grid, padding 2
    assert gan[2:10, 2:10].min() == gan[2:10, 2:10].max() == 128
    assert vae[2:10, 2:10].min() == vae[2:10, 2:10].max() == 64
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temporary left behind


def test_mixed_precision_and_device_settings():
    cfg = tiny("ddpm", **{"train.precision": "fp16", "train.grad_clip": 1.0})
    ctx = make_step_context(cfg, torch.device("cpu"))
    assert ctx.autocast_dtype is None and ctx.scaler is None  # fp16 autocast applies on CUDA only
    assert ctx.grad_clip == 1.0 and ctx.generator.device.type == "cpu"
    other = make_step_context(cfg, torch.device("cpu"), rank=1)  # DDP ranks draw different noise
    assert not torch.equal(ctx.generator.get_state(), other.generator.get_state())
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ConfigError, match="train.device='cuda'"):
            resolve_device("cuda")


# ----------------------------------------------------------------------------------------------------------------
# the loop


def test_train_writes_the_run_folder(tmp_path):
    cfg = tiny("gan", **{"train.epochs": 2})
    history = train(cfg, tmp_path / "run", progress=False)
    rd = RunDir(tmp_path / "run")
    assert rd.read_config() == cfg
    assert rd.checkpoint_epochs() == [1, 2] and [r["epoch"] for r in history] == [1, 2]
    assert [r["step"] for r in history] == [2, 4]  # smoke: 2 steps per epoch
    assert {"loss", "loss_d", "loss_g", "images_per_s", "seconds", "lr"} <= set(history[0])
    assert all(np.isfinite(r["loss"]) and r["images_per_s"] > 0 for r in history)
    assert losses(rd.read_history()) == losses(history)  # CSV keeps every float exactly (repr)
    png = Image.open(rd.sample_path(2))
    assert png.size == (2 * 32 + 3 * 2,) * 2  # 4 fixed-noise images of 32x32 in a 2x2 grid
    ckpt = torch.load(rd.checkpoint_path(2), weights_only=True)
    assert (
        ckpt["epoch"] == 2 and ckpt["step"] == 4 and set(ckpt["networks"]) == {"generator", "discriminator"}
    )
    assert RunConfig.from_json(ckpt["config"]) == cfg and len(ckpt["history"]) == 2
    # every file as readable as an ordinary open() makes it under the umask: run folders can be shared (D16)
    from xrutils.atomic import DIR_MODE

    modes = {p.relative_to(rd.path).as_posix(): p.stat().st_mode & 0o777 for p in rd.path.rglob("*")}
    assert modes and all(
        m == (DIR_MODE if (rd.path / k).is_dir() else DIR_MODE & 0o666) for k, m in modes.items()
    ), modes


def test_sample_and_checkpoint_cadence(tmp_path):
    cfg = tiny("vae", **{"train.epochs": 3, "train.sample_every": 2, "train.checkpoint_every": 2})
    train(cfg, tmp_path, progress=False)
    rd = RunDir(tmp_path)
    assert rd.checkpoint_epochs() == [1, 2, 3]  # the first and the last epoch always get both
    assert sorted(p.name for p in rd.samples_dir.glob("*.png")) == [
        "epoch_001.png",
        "epoch_002.png",
        "epoch_003.png",
    ]
    assert len(rd.read_history()) == 3


@pytest.mark.parametrize("family", FAMILIES)
def test_interrupted_and_resumed_run_is_bit_identical(family, tmp_path, monkeypatch):
    cfg = tiny(family)
    straight = train(cfg, tmp_path / "straight", progress=False)

    with monkeypatch.context() as m:
        interrupt_after(m, epoch=2)
        with pytest.raises(Interrupt):
            train(cfg, tmp_path / "resumed", progress=False)
    assert RunDir(tmp_path / "resumed").checkpoint_epochs() == [1, 2]
    torch.manual_seed(12345)  # a different global RNG state: the checkpoint must restore it
    resumed = train(cfg, tmp_path / "resumed", resume=True, progress=False)

    assert losses(resumed) == losses(straight)
    assert_identical(final_state(tmp_path / "straight"), final_state(tmp_path / "resumed"))
    for epoch in (1, 2, 3):  # the fixed-noise grids too
        assert (
            RunDir(tmp_path / "straight").sample_path(epoch).read_bytes()
            == RunDir(tmp_path / "resumed").sample_path(epoch).read_bytes()
        )


def test_resume_restores_the_global_rngs(tmp_path, monkeypatch):
    # The families draw only from private generators; a model that used Python's, NumPy's or torch's global RNG
    # must resume identically too.
    import random

    def global_draws(model):
        real_step = model.training_step

        def step(batch, optimizers, ctx):
            out = real_step(batch, optimizers, ctx)
            return {
                **out,
                "py": random.random(),
                "np": float(np.random.rand()),
                "torch": torch.rand(()).item(),
            }

        model.training_step = step
        return model

    patch_build(monkeypatch, global_draws)
    cfg = tiny("gan")
    straight = train(cfg, tmp_path / "straight", progress=False)
    with monkeypatch.context() as m:
        interrupt_after(m, epoch=1)
        with pytest.raises(Interrupt):
            train(cfg, tmp_path / "resumed", progress=False)
    resumed = train(cfg, tmp_path / "resumed", progress=False)
    assert len({row["torch"] for row in straight}) == 3  # the draws do change from epoch to epoch
    assert losses(resumed) == losses(straight)


def test_a_complete_run_is_left_alone(tmp_path):
    cfg = tiny("gan", **{"train.epochs": 1})
    first = train(cfg, tmp_path, progress=False)
    ckpt = RunDir(tmp_path).checkpoint_path(1)
    before = ckpt.stat().st_mtime_ns
    again = train(cfg, tmp_path, progress=False)
    assert ckpt.stat().st_mtime_ns == before
    assert losses(again) == losses(first)


def test_resume_refuses_a_different_config_naming_the_keys(tmp_path):
    train(tiny("gan", **{"train.epochs": 1}), tmp_path, progress=False)
    other = tiny("gan", **{"train.epochs": 1, "train.lr": 5e-4, "model.hidden": 4})
    with pytest.raises(ConfigError, match=r"model\.hidden.*train\.lr"):
        train(other, tmp_path, progress=False)


def test_evaluation_settings_change_without_blocking_a_resume(tmp_path):
    """How a run is evaluated is not what it trained: a resume takes new eval settings into config.json, except,
    in a run that draws each checkpoint's evaluation samples as it trains, the settings it draws them with."""
    cfg = tiny("gan", **{"train.epochs": 1})
    train(cfg, tmp_path / "all", progress=False)
    new = cfg.override({"train.epochs": 2, "eval.n_fake": 4, "eval.n_boot": 7, "eval.precision": "bf16"})
    assert len(train(new, tmp_path / "all", progress=False)) == 2
    saved = RunDir(tmp_path / "all").read_config()
    assert (saved.eval.n_fake, saved.eval.n_boot, saved.eval.precision) == (4, 7, "bf16")

    sampled = cfg.override({"train.keep_weights": "sampled"})
    train(sampled, tmp_path / "sampled", progress=False)
    history = RunDir(tmp_path / "sampled").read_history()
    assert train(sampled.override({"eval.n_boot": 7}), tmp_path / "sampled", progress=False) == history
    assert RunDir(tmp_path / "sampled").read_config().eval.n_boot == 7
    with pytest.raises(ConfigError, match=r"eval\.n_fake: 8 -> 4 .*fixed for the run"):
        train(sampled.override({"eval.n_fake": 4}), tmp_path / "sampled", progress=False)
    assert RunDir(tmp_path / "sampled").read_config().eval.n_fake == 8  # nothing was written


def test_a_fresh_start_refuses_to_overwrite_checkpoints(tmp_path):
    cfg = tiny("gan", **{"train.epochs": 1})
    train(cfg, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train(cfg, tmp_path, resume=False, progress=False)


def test_non_finite_loss_stops_naming_epoch_and_step_and_keeps_checkpoints(tmp_path, monkeypatch):
    def poison(model):
        real_step = model.training_step

        def step(batch, optimizers, ctx):
            out = real_step(batch, optimizers, ctx)
            return {**out, "loss": float("nan")} if ctx.step_index == 3 else out

        model.training_step = step
        return model

    patch_build(monkeypatch, poison)
    # losses are read on the host every log_every steps (and at the epoch's end): the error names that window
    with pytest.raises(FloatingPointError, match=r"epoch 2, steps 3 to 4 .*loss"):
        train(tiny("gan"), tmp_path, progress=False)
    rd = RunDir(tmp_path)
    assert rd.checkpoint_epochs() == [1]
    assert rd.load_checkpoint(1)["epoch"] == 1
    with pytest.raises(FloatingPointError, match=r"epoch 2, step 3 .*loss"):
        train(tiny("gan", **{"train.log_every": 1}), tmp_path / "every", progress=False)


def test_a_run_written_before_a_train_setting_existed_still_resumes(tmp_path):
    cfg = tiny("gan", **{"train.epochs": 1})
    train(cfg, tmp_path, progress=False)
    rd = RunDir(tmp_path)
    saved = json.loads(rd.config_path.read_text())
    for section, key in (
        ("train", "micro_batch"),
        ("train", "tf32"),
        ("eval", "precision"),
        ("data", "finding"),
    ):
        del saved[section][key]  # settings added later read as their defaults
    rd.config_path.write_text(json.dumps(saved))
    assert config_differences(cfg, saved) == []
    assert len(train(cfg.override({"train.epochs": 2}), tmp_path, progress=False)) == 2
    assert config_differences(cfg.override({"train.tf32": False}), saved) == ["train.tf32: True -> False"]


def test_sync_batchnorm_keeps_the_parameters_and_the_checkpoint_keys():
    from xrutils.distributed import sync_batchnorm

    model = registry.get("gan").build(tiny("gan"))
    before = model.discriminator.state_dict()
    params = list(model.discriminator.parameters())
    net = sync_batchnorm(model.discriminator)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in net.modules())
    assert not any(type(m) is torch.nn.BatchNorm2d for m in net.modules())
    assert all(a is b for a, b in zip(net.parameters(), params, strict=True))  # optimisers stay valid
    assert net.state_dict().keys() == before.keys()


def test_load_model_returns_the_checkpoint_in_eval_mode(tmp_path):
    train(tiny("gan", **{"train.epochs": 2}), tmp_path, progress=False)
    state = torch.get_rng_state()
    cfg, model = load_model(tmp_path, epoch=1)
    assert torch.equal(torch.get_rng_state(), state)  # loading never disturbs the caller's RNG
    assert cfg.family == "gan" and not model.training
    saved = torch.load(RunDir(tmp_path).checkpoint_path(1), weights_only=True)["networks"]["discriminator"]
    for k, v in model.discriminator.state_dict().items():
        assert torch.equal(v, saved[k]), k
    _, last = load_model(tmp_path)
    assert not torch.equal(last.generator.main[0].weight, model.generator.main[0].weight)
    with pytest.raises(FileNotFoundError, match="epoch 7"):
        load_model(tmp_path, epoch=7)


def test_a_damaged_or_foreign_checkpoint_is_refused_naming_the_file(tmp_path):
    # issue 12, D10: a truncated checkpoint, or a VAE checkpoint in a GAN run, named the file nowhere
    from xrutils.runs import CheckpointError

    gan, vae = tmp_path / "gan", tmp_path / "vae"
    train(tiny("gan", **{"train.epochs": 2}), gan, progress=False)
    train(tiny("vae", **{"train.epochs": 1}), vae, progress=False)
    newest = RunDir(gan).checkpoint_path(2)
    newest.write_bytes(newest.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"epoch_002\.pt: not a readable checkpoint .*previous epoch"):
        load_model(gan)
    RunDir(gan).checkpoint_path(1).write_bytes(RunDir(vae).checkpoint_path(1).read_bytes())
    with pytest.raises(
        CheckpointError, match=r"epoch_001\.pt: a checkpoint of a 'vae' run, but this run is 'gan'"
    ):
        load_model(gan, epoch=1)


def test_data_of_the_wrong_size_is_refused(tmp_path, monkeypatch):
    import xrutils.train as loop

    real = loop.load_images
    monkeypatch.setattr(
        loop, "load_images", lambda cfg, **kw: real(dataclasses.replace(cfg, image_size=64), **kw)
    )
    with pytest.raises(ConfigError, match="built for 32x32"):
        train(tiny("gan"), tmp_path, progress=False)


# ----------------------------------------------------------------------------------------------------------------
# two processes, gloo


def _ddp_worker(rank: int, world_size: int, port: int, cfg_json: str, run_dir: str, out_dir: str) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    captured = {}
    real_get = registry.get

    def get(name):
        fam = real_get(name)

        def build(cfg):
            captured["model"] = fam.build(cfg)
            return captured["model"]

        return dataclasses.replace(fam, build=build)

    registry.get = get
    train(RunConfig.from_json(cfg_json), run_dir, progress=False)
    params = {k: v.detach().clone() for k, v in captured["model"].named_parameters()}
    torch.save(params, os.path.join(out_dir, f"rank{rank}.pt"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_run_keeps_ranks_identical(tmp_path):
    cfg = tiny("gan", **{"train.epochs": 2, "train.batch_size": 8})
    load_images(cfg.data, progress=False)  # build the phantom data and its cache once, before the workers
    run_dir, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    mp.spawn(_ddp_worker, args=(2, _free_port(), cfg.to_json(), str(run_dir), str(out)), nprocs=2, join=True)

    p0, p1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert set(p0) == set(p1) and any(".module." in k for k in p0)  # trained through the DDP wrappers
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k
    rd = RunDir(run_dir)
    assert rd.checkpoint_epochs() == [1, 2] and len(rd.read_history()) == 2
    ckpt = rd.load_checkpoint(2)
    assert not any("module" in k for k in ckpt["networks"]["generator"])  # stored unwrapped
    g0 = {k.replace("generator.module.", ""): v for k, v in p0.items() if k.startswith("generator.")}
    for k, v in g0.items():
        assert torch.equal(v, ckpt["networks"]["generator"][k]), k
    init = registry.get("gan").build(cfg).generator.state_dict()
    assert not all(torch.equal(v, init[k]) for k, v in g0.items())  # the run did train
    assert json.loads(rd.config_path.read_text())["family"] == "gan"


def test_only_the_newest_checkpoint_keeps_the_training_state(tmp_path):
    rd = RunDir(tmp_path / "run")
    train(tiny("gan"), rd.path, progress=False)
    *older, newest = [rd.load_checkpoint(e) for e in rd.checkpoint_epochs()]
    assert older, "tiny runs should have several epochs"
    assert newest.get("resumable", True) and "optimizers" in newest and "rng" in newest
    for ckpt in older:  # weights stay for the evaluators; optimiser moments and RNG states are dropped
        assert ckpt["resumable"] is False and "optimizers" not in ckpt and ckpt["networks"]
    with pytest.raises(ValueError, match="weights only"):
        _restore(older[0], tiny("gan"), rd.checkpoint_path(1), 0, None, {}, {}, None, None)

    full = RunDir(tmp_path / "all")
    train(tiny("gan").override({"train.keep_training_state": "all"}), full.path, progress=False)
    assert all("optimizers" in full.load_checkpoint(e) for e in full.checkpoint_epochs())


def test_micro_batches_train_the_same_run(tmp_path):
    # train.micro_batch splits each batch into passes whose gradients add up before the one step: a DDPM (GroupNorm,
    # per image) trains the same run to float rounding, noise drawn once per batch
    whole = train(tiny("ddpm"), tmp_path / "whole", progress=False)
    parts = train(tiny("ddpm", **{"train.micro_batch": 1}), tmp_path / "parts", progress=False)
    for a, b in zip(whole, parts, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


@pytest.mark.slow
def test_a_compiled_run_trains_the_same_run(tmp_path):
    # train.compile=true compiles each network (about 30 s here); the checkpoints hold the plain networks' keys
    eager = train(tiny("vae", **{"train.epochs": 2}), tmp_path / "eager", progress=False)
    compiled = train(
        tiny("vae", **{"train.epochs": 2, "train.compile": True}), tmp_path / "compiled", progress=False
    )
    for a, b in zip(eager, compiled, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    _, model = load_model(tmp_path / "compiled")  # loads into an uncompiled model: the same keys
    assert model.param_counts()
