"""Judges, sample cache, features, likelihood, memorisation and the evaluate command (xrutils.evaluators)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from xrutils.config import ConfigError, DataConfig, EvalConfig
from xrutils.data import load_images
from xrutils.data.ranges import GAN_RANGE, UNIT_RANGE, convert, to_range, to_uint8
from xrutils.evaluators import classifier as clf
from xrutils.evaluators import features as feat
from xrutils.evaluators import likelihood, memorisation, stats
from xrutils.evaluators import metrics as met
from xrutils.evaluators.judge import Judge, Quirks, score_curve
from xrutils.evaluators.samples import SampleCache, sampler_spec
from xrutils.models.dcgan import Discriminator
from xrutils.registry import build_config
from xrutils.runs import RunDir

SIZE = 32


@pytest.fixture(scope="module")
def reals() -> dict[str, torch.Tensor]:
    data = DataConfig(image_size=SIZE, phantom_n=200)
    return {
        "train": load_images(data, split="train_val", progress=False).images,
        "test": load_images(data, split="test", progress=False).images,
    }


def noise_like(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, images.shape, generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def trained_d(reals) -> Discriminator:
    """A small DCGAN discriminator taught real phantom X-rays (1) against uniform noise (0)."""
    torch.manual_seed(0)
    d = Discriminator(SIZE, 8)
    opt = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.999))
    real = to_range(reals["train"], GAN_RANGE)
    fake = to_range(noise_like(reals["train"], 1), GAN_RANGE)
    for step in range(40):
        i = torch.randint(0, real.shape[0], (32,), generator=torch.Generator().manual_seed(step))
        loss = nn.functional.binary_cross_entropy(
            d(real[i]), torch.ones(32)
        ) + nn.functional.binary_cross_entropy(d(fake[i]), torch.zeros(32))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return d.eval()


# ----------------------------------------------------------------------------------------------------------------
# classifier judge


@pytest.mark.parametrize("size, count", [(64, 2_116_225), (32, 543_361)])
def test_simplecnn_parameter_counts_match_spec(size, count):
    net = clf.SimpleCNN(size)
    assert sum(p.numel() for p in net.parameters()) == count
    out = net(torch.zeros(3, 1, size, size))
    assert out.shape == (3,) and ((out > 0) & (out < 1)).all()


def test_simplecnn_rejects_bad_size():
    with pytest.raises(ValueError, match="divisible by 4"):
        clf.SimpleCNN(30)


def test_classifier_separates_noise_from_real_images(reals):
    real = reals["train"]
    report = clf.train_classifier(real, noise_like(real), epochs=3, seed=0)
    assert report.test_accuracy > 0.95 and report.roc_auc > 0.95
    assert report.n_test == 2 * round(0.2 * real.shape[0])  # both classes contribute their 20 %
    assert clf.classifier_score(report.model, noise_like(reals["test"], 5), n_boot=50)["value"] < 0.2
    held_out = clf.classifier_score(report.model, reals["test"], n_boot=50)
    assert held_out["value"] > 0.8 and held_out["lo"] <= held_out["value"] <= held_out["hi"]


def test_classifier_refuses_unbalanced_data(reals):
    with pytest.raises(ValueError, match="unbalanced"):
        clf.train_classifier(reals["train"][:20], noise_like(reals["train"][:10]), epochs=1)


# ----------------------------------------------------------------------------------------------------------------
# discriminator judge


def test_judge_score_shows_noise(reals, trained_d):
    judge = Judge(trained_d, SIZE)
    q = Quirks()
    kw = {"reals_uint8": reals["test"], "batch_size": 16, "n_boot": 200}
    on_noise = score_curve(judge, [1], {1: noise_like(reals["test"], 3)}, GAN_RANGE, q, **kw)
    on_real = score_curve(judge, [1], {1: reals["train"][:64]}, GAN_RANGE, q, **kw)
    # D recognises noise as fake (low BCE(D(fake), 0)) and real images as real (high): the score separates them
    assert on_noise["hi"][0] < on_real["lo"][0]
    assert on_noise["lo"][0] <= on_noise["score"][0] <= on_noise["hi"][0]
    assert on_noise["score"][0] == pytest.approx(on_noise["real_term"][0] + on_noise["fake_term"][0])
    assert on_noise["n_real"] == reals["test"].shape[0]


def test_range_artefact_original_protocol_only(reals, trained_d):
    judge = Judge(trained_d, SIZE)
    x = to_range(reals["test"], GAN_RANGE)  # the same fakes ...
    x01 = convert(x.clone(), GAN_RANGE, UNIT_RANGE)  # ... in the [0, 1] of a VAE / PixelCNN / DDPM
    corrected = Quirks()
    a = judge.fake_terms(x, GAN_RANGE, corrected, batch_size=16)
    b = judge.fake_terms(x01, UNIT_RANGE, corrected, batch_size=16)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for quirks in (Quirks.from_protocol("original"), Quirks(unmatched_range=True)):
        a = judge.fake_terms(x, GAN_RANGE, quirks, batch_size=16).mean()
        b = judge.fake_terms(x01, UNIT_RANGE, quirks, batch_size=16).mean()
        assert abs(a - b) > 0.1, quirks


def test_train_mode_quirk_changes_scores_but_not_the_judge(reals, trained_d):
    judge = Judge(trained_d, SIZE)
    before = {k: v.clone() for k, v in trained_d.state_dict().items()}
    fakes = noise_like(reals["test"], 4)
    eval_mode = judge.fake_terms(fakes, GAN_RANGE, Quirks(), batch_size=16)
    train_mode = judge.fake_terms(fakes, GAN_RANGE, Quirks(train_mode_bn=True), batch_size=16)
    assert not np.allclose(eval_mode, train_mode)
    assert not trained_d.training
    for k, v in trained_d.state_dict().items():
        assert torch.equal(v, before[k]), k  # BatchNorm running statistics restored


def test_single_batch_quirk_uses_one_batch(reals, trained_d):
    judge = Judge(trained_d, SIZE)
    curve = score_curve(
        judge,
        [1, 2],
        {1: reals["train"][:40], 2: reals["train"][40:80]},
        GAN_RANGE,
        Quirks(single_batch=True),
        reals_uint8=reals["train"],
        batch_size=16,
        n_boot=20,
    )
    assert curve["n_fake"] == 16 and curve["n_real"] == 16
    assert (
        curve["real_term"][0] != curve["real_term"][1]
    )  # a fresh random real batch per epoch, as the original


def test_protocols_and_size_check():
    assert Quirks.from_protocol("original") == Quirks(True, True, True, True, True, True, True)
    assert Quirks.from_protocol("original").name == "original"
    assert Quirks.from_protocol("corrected").name == "corrected"
    left_off = Quirks.original(["seeded_ddpm"])  # a profile that cannot afford 1000-step sampling
    assert not left_off.seeded_ddpm and left_off.generator_train_mode and left_off.minmax_grids
    assert left_off.name == "original-except-seeded_ddpm" and left_off.changes_scores
    assert not Quirks.only(["minmax_grids"]).changes_scores  # pictures only
    with pytest.raises(ValueError, match="unknown quirk 'bogus'"):
        Quirks.original(["bogus"])
    with pytest.raises(ValueError, match="protocol='thesis'"):
        Quirks.from_protocol("thesis")
    assert Quirks.only(["unmatched_range"]) == Quirks(unmatched_range=True)
    assert Quirks.only(["single_batch", "train_mode_bn"]).name == "train_mode_bn+single_batch"
    with pytest.raises(ValueError, match="unknown quirk 'bogus'"):
        Quirks.only(["bogus"])
    with pytest.raises(ValueError, match="image size 64.*32x32"):
        Judge(Discriminator(SIZE, 2), SIZE, run_dir="runs/gan").check_size(64, "run vae__size64")


# ----------------------------------------------------------------------------------------------------------------
# samples, features, likelihood, memorisation


class StubModel(nn.Module):
    value_range = UNIT_RANGE
    image_size = 8

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    @property
    def device(self):
        return self.w.device

    def sample(self, n, generator=None, **options):
        assert not options
        return torch.rand(n, 1, 8, 8, generator=generator)


def _stub_cache(run_dir: Path, loads: list) -> SampleCache:
    def load(epoch):
        loads.append(epoch)
        return StubModel()

    return SampleCache(
        run_dir, family="vae", seed=3, image_size=8, eval_cfg=EvalConfig(batch_size=3), load_model=load
    )


def test_sample_cache_generates_once_and_reuses(tmp_path):
    RunDir(tmp_path).save_checkpoint(1, {"epoch": 1})
    loads: list = []
    first = _stub_cache(tmp_path, loads).get(1, {"eval": 7, "classifier": 2})
    assert first["eval"].dtype == torch.uint8 and first["eval"].shape == (7, 1, 8, 8)
    assert loads == [1]  # one model load for both sets
    again = _stub_cache(tmp_path, loads).get(1, {"eval": 7})
    assert loads == [1] and torch.equal(again["eval"], first["eval"])
    files = sorted(p.name for p in (tmp_path / "eval" / "samples").iterdir() if p.suffix != ".lock")
    assert len(files) == 4 and not any(
        f.endswith(".tmp") for f in files
    )  # 2 arrays + 2 sidecars, no leftovers
    assert any("e001_n7_prior_seed3_eval" in f for f in files)
    # deterministic: regenerated from scratch, the same images
    for f in (tmp_path / "eval" / "samples").glob("*.npy"):
        f.unlink()
    assert torch.equal(_stub_cache(tmp_path, loads).get(1, {"eval": 7})["eval"], first["eval"])
    # a retrained checkpoint (new file) is never served stale samples
    ckpt = RunDir(tmp_path).checkpoint_path(1)
    os.utime(ckpt, ns=(ckpt.stat().st_atime_ns, ckpt.stat().st_mtime_ns + 10**9))
    _stub_cache(tmp_path, loads).get(1, {"eval": 7})
    assert loads == [1, 1, 1]


def test_sample_cache_draws_in_batches_of_eval_sample_batch(tmp_path):
    RunDir(tmp_path).save_checkpoint(1, {"epoch": 1})
    sizes: list = []

    class Recording(StubModel):
        def sample(self, n, generator=None, **options):
            sizes.append(n)
            return super().sample(n, generator, **options)

    for ecfg in (EvalConfig(batch_size=3), EvalConfig(batch_size=3, sample_batch=5)):
        cache = SampleCache(
            tmp_path, family="vae", seed=3, image_size=8, eval_cfg=ecfg, load_model=lambda e: Recording()
        )
        cache.get(1, {f"p{ecfg.sample_batch}": 12})
    assert sizes == [3, 3, 3, 3, 5, 5, 2]  # 0 = eval.batch_size
    assert (
        EvalConfig(batch_size=3, sample_batch=5).sampling_batch == 5
        and EvalConfig(batch_size=3).sampling_batch == 3
    )
    with pytest.raises(ConfigError, match="sample_batch"):
        EvalConfig(sample_batch=-1)


def test_sample_cache_samples_a_checkpoint_once_when_two_processes_ask_at_once(tmp_path):
    # flock locks belong to open files, so two threads with their own caches contend like two processes
    import threading
    import time

    RunDir(tmp_path).save_checkpoint(1, {"epoch": 1})
    loads: list = []

    def slow_load(epoch):
        loads.append(epoch)
        time.sleep(0.3)  # both threads find the files missing before either has written them
        return StubModel()

    caches = [
        SampleCache(
            tmp_path,
            family="vae",
            seed=3,
            image_size=8,
            eval_cfg=EvalConfig(batch_size=3),
            load_model=slow_load,
        )
        for _ in range(2)
    ]
    got: list = [None, None]
    threads = [
        threading.Thread(target=lambda i=i: got.__setitem__(i, caches[i].get(1, {"eval": 7})))
        for i in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [1] and sorted(c.generated for c in caches) == [0, 7]
    assert torch.equal(got[0]["eval"], got[1]["eval"])
    assert (tmp_path / "eval" / "samples" / "e001.lock").exists()


def test_sample_cache_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint for epoch 2"):
        _stub_cache(tmp_path, []).get(2, {"eval": 4})
    RunDir(tmp_path).save_checkpoint(1, {})
    with pytest.raises(ValueError, match="asks for 0 images"):
        _stub_cache(tmp_path, []).get(1, {"eval": 0})


def test_sampler_spec_records_ddpm_sampler_and_steps():
    ddim = sampler_spec("ddpm", EvalConfig(sampler="ddim", sampler_steps=7))
    assert (ddim.name, ddim.steps, ddim.options) == ("ddim", 7, {"sampler": "ddim", "steps": 7})
    ddpm = sampler_spec("ddpm", EvalConfig(sampler="ddpm"), timesteps=1000)
    assert (ddpm.name, ddpm.steps, ddpm.options) == ("ddpm", 1000, {"sampler": "ddpm", "steps": 1000})
    gan = sampler_spec("gan", EvalConfig())
    assert (gan.name, gan.steps, gan.options) == ("generator", None, {})
    # the original protocol's sampling quirks have their own sampler (and cache files)
    original = Quirks.from_protocol("original")
    seeded = sampler_spec("ddpm", EvalConfig(sampler="ddim", sampler_steps=7), 1000, original)
    assert (seeded.name, seeded.steps, seeded.fixed_seed) == ("ddpm", 1000, 0)
    assert seeded.options == {"sampler": "ddpm", "steps": 1000} and seeded.tag == "ddpm1000-fixedseed0"
    trained = sampler_spec("gan", EvalConfig(), None, original)
    assert trained.train_mode and trained.tag == "generator-trainmode"
    assert sampler_spec("vae", EvalConfig(), None, original) == sampler_spec("vae", EvalConfig())


def _model(family: str, overrides: dict | None = None):
    from xrutils import registry

    cfg = build_config(family, "tiny", "smoke", overrides or {})
    return cfg, registry.get(family).build(cfg)


def test_gan_samples_in_train_mode_use_batch_statistics_and_leave_the_generator_as_it_was():
    from xrutils.evaluators.samples import generate_uint8

    _, model = _model("gan")
    model.generator.eval()
    state = {k: v.clone() for k, v in model.generator.state_dict().items()}

    def draw(train_mode):
        g = torch.Generator().manual_seed(5)
        return generate_uint8(model, 8, generator=g, batch_size=8, options={}, train_mode=train_mode)

    evaluated, trained = draw(False), draw(True)
    assert not torch.equal(evaluated, trained)  # BatchNorm's batch statistics, not its running ones
    assert torch.equal(draw(True), trained)  # still seeded
    after = model.generator.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)  # running statistics restored
    assert not model.generator.training  # its mode restored


def test_seeded_ddpm_quirk_draws_the_same_noise_for_every_run_and_epoch(tmp_path):
    cfg, model = _model("ddpm", {"model.timesteps": 6})
    got = {}
    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        RunDir(run).save_checkpoint(1, {"epoch": 1})
        cache = SampleCache(
            run,
            family="ddpm",
            seed=seed,
            image_size=cfg.data.image_size,
            eval_cfg=EvalConfig(batch_size=3, sampler="ddim", sampler_steps=2),
            timesteps=6,
            load_model=lambda e: model,
            quirks=Quirks.only(["seeded_ddpm"]),
        )
        got[seed] = cache.get(1, {"eval": 3})["eval"]
        name = next((run / "eval" / "samples").glob("*.npy")).name
        assert "ddpm6-fixedseed0_seed-_eval" in name  # the full chain, seed 0 whatever the run's seed
    assert torch.equal(got[0], got[1])  # torch.manual_seed(0) at every call, as DDPMPipeline was called
    # exactly the full chain from a CPU generator seeded with 0
    direct = model.sample(3, generator=torch.Generator().manual_seed(0), sampler="ddpm", steps=6)
    assert torch.equal(got[0], to_uint8(direct, model.value_range))


def test_seeded_ddpm_quirk_keeps_the_single_real_batch_of_every_epoch(reals, trained_d):
    judge = Judge(trained_d, SIZE)
    fakes = {e: reals["test"][:16].float() / 127.5 - 1 for e in (1, 2, 3)}
    quirks = Quirks.only(["single_batch", "seeded_ddpm"])
    kw = {"reals_uint8": reals["train"], "batch_size": 16, "n_boot": 10}
    same = score_curve(judge, [1, 2, 3], fakes, GAN_RANGE, quirks, same_real_batch=True, **kw)
    fresh = score_curve(judge, [1, 2, 3], fakes, GAN_RANGE, quirks, **kw)
    assert len(set(same["real_term"])) == 1  # the global reseed made the real batch constant
    assert len(set(fresh["real_term"])) == 3


def test_feature_extractor_is_cached_and_separates_noise(reals, tmp_path, monkeypatch):
    ex = feat.feature_extractor(reals["train"], epochs=2, cache_root=tmp_path)
    test_f = ex.split_features(reals["test"])
    assert test_f.shape == (reals["test"].shape[0], feat.FEATURE_DIM)
    assert len(list(ex.cache_dir.glob("feats_*.npy"))) == 1

    def no_training(*a, **k):
        raise AssertionError("the cached encoder should have been reused")

    monkeypatch.setattr(feat, "train_encoder", no_training)
    again = feat.feature_extractor(reals["train"], epochs=2, cache_root=tmp_path)
    np.testing.assert_allclose(again.features(reals["test"]), test_f, rtol=1e-6)
    train_f = again.split_features(reals["train"])
    noise_f = again.features(noise_like(reals["test"], 7))
    assert met.frechet_distance(train_f, noise_f) > 5 * met.frechet_distance(train_f, test_f)


def tiny_inception(path: Path) -> Path:
    """A stand-in for local Inception weights: (B, 3, 299, 299) -> (B, 4), saved as a torch.export program."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    program = torch.export.export(
        net, (torch.zeros(2, 3, 299, 299),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    torch.export.save(program, str(path))
    return path


def test_inception_features_from_a_local_file(tmp_path, reals):
    f = feat.InceptionFeatures(tiny_inception(tmp_path / "inception.pt2")).features(reals["test"][:5])
    assert f.shape == (5, 4) and np.isfinite(f).all()
    with pytest.warns(FutureWarning):  # TorchScript, the format of the published FID weights, is deprecated
        scripted = torch.jit.script(
            nn.Sequential(nn.Conv2d(3, 2, 3, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        )
    scripted.save(str(tmp_path / "inception.pt"))
    assert feat.InceptionFeatures(tmp_path / "inception.pt").features(reals["test"][:3]).shape == (3, 2)
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        feat.InceptionFeatures(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="neither a TorchScript module"):
        feat.InceptionFeatures(tmp_path / "junk.pt")


def test_bits_per_dim_only_for_models_with_a_likelihood(reals):
    class WithLikelihood(StubModel):
        def bits_per_dim(self, x):
            return x.flatten(1).mean(1) * 0 + 3.0

    out = likelihood.bits_per_dim(
        WithLikelihood(), reals["test"][:10], batch_size=4, n_boot=20, family="pixelcnn"
    )
    assert out["value"] == pytest.approx(3.0) and out["n"] == 10 and out["kind"] == "exact"
    assert likelihood.bits_per_dim(StubModel(), reals["test"], batch_size=4, n_boot=20) is None


def test_memorisation_finds_copies(reals, tmp_path):
    train = reals["train"][:50]
    fakes = torch.cat([train[[3, 7]], noise_like(train[:4], 2)])
    rep = memorisation.memorisation_report(
        fakes, train, test_uint8=reals["test"][:20], grid_path=tmp_path / "pairs.png"
    )
    assert rep["pixel"]["min"] == pytest.approx(0.0, abs=1e-6)
    dist, idx = memorisation.pixel_nearest(fakes, train)
    assert list(idx[:2]) == [3, 7] and dist[2:].min() > 0.1
    with Image.open(rep["grid"]) as im:
        assert im.size[0] > 6 * SIZE


def test_memorisation_baseline_is_by_patient_and_leaves_out_patients_seen_in_training(reals):
    train, test = reals["train"][:40], reals["test"][:24]
    fakes = noise_like(train[:16], 3)
    train_patients = np.arange(40) // 2  # 20 patients
    test_patients = np.r_[np.full(4, 7), 100 + np.arange(20) // 4]  # patient 7 is also in training
    rep = memorisation.memorisation_report(
        fakes, train, test_uint8=test, test_patients=test_patients, train_patients=train_patients
    )
    assert rep["test_patients_in_train"] == 1 and rep["n_test"] == 20 and rep["n_test_patients"] == 5
    px = rep["pixel"]
    assert px["ratio_lo"] <= px["ratio"] <= px["ratio_hi"] and "by patient" in rep["interval"]
    plain = memorisation.memorisation_report(fakes, train, test_uint8=test[4:])
    assert plain["pixel"]["ratio"] == pytest.approx(px["ratio"])  # the same baseline images, by image
    assert "n_test_patients" not in plain


# ----------------------------------------------------------------------------------------------------------------
# the evaluate command on tiny phantom runs


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    from xrutils.train import train

    root = tmp_path_factory.mktemp("runs")
    specs = {
        "gan": ("gan", 0, {}),
        "gan_seed1": ("gan", 1, {}),
        "vae": ("vae", 0, {}),
        "vae16": ("vae", 0, {"data.image_size": 16}),
    }
    out = {}
    for name, (family, seed, overrides) in specs.items():
        train(build_config(family, "tiny", "smoke", overrides, seed=seed), root / name, progress=False)
        out[name] = root / name
    return out


def _all_finite(o) -> bool:
    if isinstance(o, dict):
        return all(_all_finite(v) for v in o.values())
    if isinstance(o, list):
        return all(_all_finite(v) for v in o)
    if isinstance(o, float):
        return math.isfinite(o)
    return True


def test_evaluate_command_writes_complete_finite_json(tiny_runs, tmp_path):
    from xrutils.cli import main

    out = tmp_path / "eval.json"
    inception = tiny_inception(tmp_path / "inception.pt2")
    runs = [str(tiny_runs[k]) for k in ("gan", "gan_seed1", "vae")]
    rc = main(
        [
            "evaluate",
            "--runs",
            *runs,
            "--judge",
            str(tiny_runs["gan"]),
            "--out",
            str(out),
            "--set",
            "eval.n_boot=30",
            "--set",
            f"eval.inception_weights={inception}",
            "--quiet",
        ]
    )
    assert rc == 0
    res = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-finite value {c} in JSON"))
    assert _all_finite(res) and res["protocol"] == "corrected"
    for name in ("gan", "gan_seed1", "vae"):
        r = res["runs"][name]
        assert {
            "run_dir",
            "family",
            "preset",
            "image_size",
            "sampler",
            "judge",
            "classifier",
            "metrics",
        } <= set(r)
        assert r["judge"]["epochs"] == [1, 2] and len(r["judge"]["score"]) == len(r["judge"]["lo"]) == 2
        assert all(
            lo <= s <= hi
            for s, lo, hi in zip(r["judge"]["score"], r["judge"]["lo"], r["judge"]["hi"], strict=True)
        )
        assert r["judge"]["n_fake"] == 8 and r["judge"]["n_real"] > 0
        c = r["classifier"]
        assert {"epochs", "score", "lo", "hi", "n", "test_accuracy", "roc_auc"} <= set(c)
        per_epoch = r[
            "classifier_per_epoch"
        ]  # a fresh classifier per epoch: a learning curve of separability
        assert per_epoch["epochs"] == c["epochs"] and len(per_epoch["score"]) == len(c["epochs"])
        assert all(
            0 <= lo <= s <= hi <= 1
            for s, lo, hi in zip(*(per_epoch[k] for k in ("score", "lo", "hi")), strict=True)
        )
        assert "Hanley-McNeil" in per_epoch["interval"]
        m = r["metrics"]
        assert {
            "fd",
            "kid",
            "kid_std",
            "precision",
            "recall",
            "n_fake",
            "n_real",
            "bpd",
            "memorisation",
        } <= set(m)
        assert m["inception_fd"] >= 0 and Path(m["memorisation"]["grid"]).exists()
        stored = json.loads((tiny_runs[name] / "metrics.json").read_text())["evaluation"]["corrected"]
        assert stored["judge"]["score"] == r["judge"]["score"]
    assert res["runs"]["vae"]["metrics"]["bpd"] > 0 and res["runs"]["gan"]["metrics"]["bpd"] is None
    assert res["runs"]["vae"]["judge"]["fake_range"] == [0.0, 1.0]
    assert res["groups"]["gan__tiny"]["n_seeds"] == 2 and "judge" in res["groups"]["gan__tiny"]
    assert "seed variance" in res["groups"]["gan__tiny"]["interval"]  # each interval says what it covers
    assert "reals by patient" in res["runs"]["gan"]["judge"]["interval"]
    assert list(res["ranking"]["by_size"]) == ["32"]  # one ranking per image size, never across sizes
    for criterion in ("judge", "classifier", "fd"):
        rank = res["ranking"]["by_size"]["32"][criterion]
        assert sorted(rank["order"]) == ["gan__tiny", "vae__tiny"]
        gap = rank["gaps"][0]
        assert 0 < gap["p_value"] <= gap["p_holm"] <= 1
        assert (
            gap["variance"] == "evaluation samples only" and gap["significant"] is False
        )  # vae has one seed


def test_evaluate_original_protocol_reuses_samples(tiny_runs, tmp_path):
    from xrutils.evaluators import evaluate

    runs = [tiny_runs["gan"], tiny_runs["vae"]]
    ecfg = build_config("gan", "tiny", "smoke").eval
    evaluate(
        runs, tiny_runs["gan"], eval_cfg=ecfg, metrics=False, classifier=False, progress=False, store=False
    )
    before = {p: p.stat().st_mtime_ns for r in runs for p in (r / "eval" / "samples").glob("*.npy")}
    res = evaluate(
        runs,
        tiny_runs["gan"],
        protocol="original",
        eval_cfg=ecfg,
        metrics=False,
        classifier=False,
        progress=False,
        out=tmp_path / "o.json",
    )
    after = {p: p.stat().st_mtime_ns for r in runs for p in (r / "eval" / "samples").glob("*.npy")}
    assert {p: after[p] for p in before} == before  # nothing regenerated
    # the only new samples: the GAN's generator in train mode (the original never called eval() on it)
    assert {p.name.split("_")[2] for p in set(after) - set(before)} == {"generator-trainmode"}
    assert res["protocol"] == "original" and res["runs"]["vae"]["judge"]["quirks"]["unmatched_range"]
    assert json.loads((tiny_runs["vae"] / "metrics.json").read_text())["evaluation"]["original"]


def test_evaluate_command_single_quirk(tiny_runs, tmp_path):
    from xrutils.cli import main

    rc = main(
        [
            "evaluate",
            "--runs",
            str(tiny_runs["vae"]),
            "--judge",
            str(tiny_runs["gan"]),
            "--out",
            str(tmp_path / "q.json"),
            "--quirk",
            "unmatched_range",
            "--no-classifier",
            "--no-metrics",
            "--quiet",
        ]
    )
    assert rc == 0
    res = json.loads((tmp_path / "q.json").read_text())
    assert res["protocol"] == "unmatched_range" and res["classifier"] is None and res["features"] is None
    assert res["runs"]["vae"]["judge"]["quirks"] == {
        "train_mode_bn": False,
        "single_batch": False,
        "unmatched_range": True,
        "train_split_reals": False,
        "generator_train_mode": False,
        "seeded_ddpm": False,
        "minmax_grids": False,
    }
    assert "unmatched_range" in json.loads((tiny_runs["vae"] / "metrics.json").read_text())["evaluation"]


def test_evaluate_rejects_judge_of_another_size(tiny_runs):
    from xrutils.evaluators import evaluate

    with pytest.raises(ValueError, match=r"image size 16 .*image size\(s\) \[32\]"):
        evaluate([tiny_runs["vae16"]], tiny_runs["gan"], progress=False)
    with pytest.raises(ValueError, match="must be a 'gan' run"):
        evaluate([tiny_runs["vae"]], tiny_runs["vae"], progress=False)


def test_evaluate_command_rejects_training_overrides(tiny_runs, tmp_path):
    from xrutils.cli import main

    rc = main(
        [
            "evaluate",
            "--runs",
            str(tiny_runs["vae"]),
            "--out",
            str(tmp_path / "x.json"),
            "--set",
            "train.lr=1.0",
            "--quiet",
        ]
    )
    assert rc == 2


# ---- held out by patient (issue 10) ---------------------------------------------------------------------------


def test_held_out_sample_takes_whole_patients_in_a_seeded_order():
    from xrutils.evaluators.reference import held_out_sample

    patients = np.repeat(np.arange(50), 4)  # 50 patients, 4 images each, sorted like the name order
    pick = held_out_sample(patients, 40)
    assert pick.size == 40 and np.unique(patients[pick]).size == 10  # ten whole patients
    assert not np.array_equal(np.unique(patients[pick]), np.arange(10))  # not the first names' patients
    np.testing.assert_array_equal(pick, held_out_sample(patients, 40))  # seeded
    assert held_out_sample(patients, 0).size == 200 and held_out_sample(patients, 999).size == 200
    cut = held_out_sample(patients, 42)  # the last patient's images cut at n
    assert cut.size == 42 and np.unique(patients[cut]).size == 11


def test_classifier_split_is_patient_disjoint(reals):
    real = reals["train"][:60]
    assert real.shape[0] == 60
    patients = np.repeat(np.arange(15), 4)
    report = clf.train_classifier(real, noise_like(real), epochs=1, seed=0, real_groups=patients)
    assert report.n_train + report.n_val + report.n_test == 120
    train, val, test = clf._split_by_group(patients, torch.Generator().manual_seed(0))
    sides = [set(patients[i.numpy()]) for i in (train, val, test)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert sorted(torch.cat([train, val, test]).tolist()) == list(range(60))
    assert len(test) >= 12 and len(val) >= 12  # 20 % each, rounded up to whole patients
    with pytest.raises(ValueError, match="needs at least 3"):
        clf._split_by_group(np.array([1, 1, 2, 2]), torch.Generator())


def test_judge_validity_recovers_the_discriminators_accuracy_and_auc():
    from xrutils.evaluators.judge import judge_validity

    d_real = np.array([0.9, 0.8, 0.6, 0.4])  # D's outputs: three of four reals called real
    d_fake = np.array([0.1, 0.3, 0.7, 0.2])  # three of four fakes called fake
    v = judge_validity(-np.log(d_real), -np.log(1 - d_fake))  # the per-image BCE terms the judge stores
    assert v["accuracy"] == pytest.approx(0.75)
    assert v["auc"] == pytest.approx(14 / 16)  # 14 of the 16 (real, fake) pairs ordered correctly
    chance = judge_validity(-np.log(np.full(8, 0.5)), -np.log(np.full(8, 0.5)))
    assert chance["auc"] == pytest.approx(0.5)


def test_a_source_without_patients_counts_each_image_as_one(monkeypatch):
    """ChestMNIST has no patient ids (-1): the held-out sample, the cluster bootstrap and the classifier split
    then treat every image as its own patient instead of one patient holding them all."""
    from types import SimpleNamespace

    from xrutils.config import DataConfig
    from xrutils.evaluators.reference import Reals

    images = torch.zeros(10, 1, 16, 16, dtype=torch.uint8)
    fake = SimpleNamespace(images=images, patient_ids=torch.full((10,), -1, dtype=torch.int64))
    monkeypatch.setattr("xrutils.data.load_images", lambda cfg, split, progress: fake)
    reals = Reals(progress=False)
    ids = reals.patients(DataConfig(), "test", 6)
    assert ids.size == 6 and np.unique(ids).size == 6
    assert reals.counts(DataConfig(), "test", 6) == {"n_real": 6, "n_real_patients": 6}


def test_auc_interval_matches_hanley_mcneil_and_narrows_with_more_test_images():
    # the formula's standard error against the spread of AUCs over simulated test sets of 50 + 50 images
    from scipy.stats import norm, rankdata

    rng = np.random.default_rng(0)
    shift = math.sqrt(2) * norm.ppf(0.8)  # binormal scores with AUC 0.8
    pos, neg = rng.normal(shift, 1, (4000, 50)), rng.normal(0, 1, (4000, 50))
    ranks = rankdata(np.concatenate([pos, neg], axis=1), axis=1)[:, :50]
    aucs = (ranks.sum(axis=1) - 50 * 51 / 2) / (50 * 50)
    ci = stats.auc_interval(0.8, 50, 50)
    assert ci["se"] == pytest.approx(0.0445, abs=0.0005)  # pinned: Hanley-McNeil at A = 0.8, 50 + 50
    assert ci["se"] == pytest.approx(aucs.std(), rel=0.15)
    assert ci["lo"] < 0.8 < ci["hi"] and stats.auc_interval(0.8, 500, 500)["se"] < ci["se"] / 3
    assert stats.auc_interval(1.0, 10, 10)["hi"] == 1.0
    with pytest.raises(ValueError, match="n_pos=0"):
        stats.auc_interval(0.7, 0, 5)


def test_the_ddpm_samples_for_evaluation_in_bf16_on_gpus_only():
    from xrutils import registry
    from xrutils.evaluators.samples import generate_uint8

    cfg = registry.build_config("ddpm", "tiny", "smoke")
    assert cfg.eval.precision == "bf16"  # the family default: bf16 autocast on CUDA
    spec = sampler_spec("ddpm", cfg.eval, cfg.model.timesteps)
    assert spec.precision == "bf16" and spec.tag.endswith("-bf16")  # cached apart from fp32 samples
    assert sampler_spec("gan", EvalConfig()).tag == "generator"  # fp32 tags are unchanged
    model = registry.get("ddpm").build(cfg)
    draw = {
        p: generate_uint8(
            model,
            3,
            generator=torch.Generator().manual_seed(0),
            batch_size=2,
            options=spec.options,
            precision=p,
        )
        for p in ("fp32", "bf16")
    }
    assert torch.equal(draw["fp32"], draw["bf16"])  # a CPU samples in fp32 whatever eval.precision says
