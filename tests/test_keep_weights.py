"""``train.keep_weights``: the training loop draws each checkpoint's evaluation samples and drops the older weights,
and the evaluators score such a run exactly as one that kept every checkpoint (issue 11: checkpoint disk)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from xrutils.checkpoints import load_model
from xrutils.config import EvalConfig
from xrutils.evaluators import evaluate
from xrutils.evaluators.samples import SampleCache, epoch_requests
from xrutils.evaluators.scored import sampling_config
from xrutils.registry import build_config
from xrutils.runs import CheckpointError, RunDir
from xrutils.train import train


def tiny(family: str, **overrides):
    return build_config(family, "tiny", "smoke", {"train.epochs": 3, **overrides})


def sample_arrays(run) -> dict[str, np.ndarray]:
    """Every cached evaluation sample array of a run, by file name without its checkpoint fingerprint."""
    out = {}
    for p in sorted((RunDir(run).eval_dir / "samples").glob("*.npy")):
        out[p.stem.rsplit("_", 1)[0]] = np.load(p)
    return out


@pytest.mark.parametrize("family", ["gan", "vae", "ddpm", "pixelcnn"])
def test_sampled_run_trains_the_same_and_draws_what_the_evaluator_would(family, tmp_path):
    cfg = tiny(family)
    train(cfg.override({"train.keep_weights": "sampled"}), tmp_path / "sampled", progress=False)
    train(cfg, tmp_path / "all", progress=False)
    sampled, kept = RunDir(tmp_path / "sampled"), RunDir(tmp_path / "all")

    # the newest checkpoint keeps everything; older ones are records that name their samples
    assert sampled.checkpoint_epochs() == kept.checkpoint_epochs() == [1, 2, 3]
    assert sampled.weight_epochs() == [3] and sampled.dropped_epochs() == [1, 2]
    assert not list(sampled.checkpoint_dir.glob("epoch_00[12].pt"))
    for e in (1, 2):
        record = sampled.dropped_record(e)
        assert record["epoch"] == e and record["policy"] == "sampled" and record["step"] == 2 * e
        assert [(sampled.eval_dir / "samples" / n).exists() for n in record["samples"]] == [True]
        assert record["fingerprint"] in record["samples"][0]
    # drawing samples in the loop changes nothing the training computes (no global RNG use, train mode restored)
    timing = {"images_per_s", "seconds", "sample_seconds"}
    losses = [
        [{k: v for k, v in r.items() if k not in timing} for r in rd.read_history()] for rd in (sampled, kept)
    ]
    assert losses[0] == losses[1]
    a, b = sampled.load_checkpoint()["networks"], kept.load_checkpoint()["networks"]
    assert all(torch.equal(a[n][k], b[n][k]) for n in a for k in a[n])

    # the evaluator's cache draws the same images from the kept checkpoints as the loop drew from the live model
    ecfg = kept.read_config().eval
    cache = SampleCache.for_run(kept.path, ecfg)
    for e in (1, 2):
        cache.get(e, epoch_requests(ecfg))
    drawn, reference = sample_arrays(sampled.path), sample_arrays(kept.path)
    assert sorted(drawn) == sorted(reference) and len(drawn) == 2
    assert all(np.array_equal(drawn[k], reference[k]) for k in drawn)


@pytest.fixture(scope="module")
def gan_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("keep")
    cfg = tiny("gan")
    train(cfg.override({"train.keep_weights": "sampled"}), root / "sampled", progress=False)
    train(cfg, root / "all", progress=False)
    return root


def test_evaluation_of_a_sampled_run_equals_that_of_a_kept_one(gan_pair, tmp_path):
    # copied without its modification times: the dropped epochs keep the identity their samples are filed under
    moved = tmp_path / "moved"
    shutil.copytree(gan_pair / "sampled", moved, copy_function=shutil.copy)
    kw = dict(classifier=False, metrics=False, fd_curve=False, device="cpu", store=False, progress=False)
    judge = gan_pair / "all"
    a = evaluate([moved], judge, **kw)["runs"]["moved"]["judge"]
    b = evaluate([gan_pair / "all"], judge, **kw)["runs"]["all"]["judge"]
    assert a["epochs"] == b["epochs"] == [1, 2, 3]
    assert a["score"] == b["score"] and a["lo"] == b["lo"] and a["hi"] == b["hi"]


def test_other_samples_of_a_dropped_epoch_are_refused_by_name(gan_pair):
    run = gan_pair / "sampled"
    with pytest.raises(CheckpointError, match=r"epoch 1 keeps no weights.*eval n=5.*keep_weights=all"):
        SampleCache.for_run(run, EvalConfig(n_fake=5)).get(1, {"eval": 5})
    with pytest.raises(CheckpointError, match=r"epoch 2 keeps no weights.*Epochs with weights: \[3\]"):
        load_model(run, 2)
    cfg, model = load_model(run)  # the newest one loads
    assert cfg.train.keep_weights == "sampled" and not model.training
    with pytest.raises(CheckpointError, match="epoch 1 keeps no weights"):
        evaluate(
            [run],
            gan_pair / "all",
            eval_cfg=EvalConfig(n_fake=5),
            classifier=False,
            metrics=False,
            fd_curve=False,
            device="cpu",
            store=False,
            progress=False,
        )


def test_keep_last_drops_older_weights_and_draws_nothing(tmp_path):
    train(tiny("vae", **{"train.keep_weights": "last"}), tmp_path / "run", progress=False)
    rd = RunDir(tmp_path / "run")
    assert rd.weight_epochs() == [3] and rd.dropped_epochs() == [1, 2]
    assert rd.dropped_record(1)["samples"] == [] and not (rd.eval_dir / "samples").exists()
    assert rd.is_complete()


def test_a_resumed_sampled_run_draws_what_an_uninterrupted_one_does(tmp_path):
    # trained 2 epochs (the last one is not sampled), then extended: epoch 2 is drawn from disk before its drop
    cfg = tiny("vae", **{"train.keep_weights": "sampled"})
    train(cfg, tmp_path / "once", progress=False)
    train(cfg.override({"train.epochs": 2}), tmp_path / "twice", progress=False)
    assert RunDir(tmp_path / "twice").weight_epochs() == [2]
    train(cfg, tmp_path / "twice", resume=True, progress=False)
    once, twice = RunDir(tmp_path / "once"), RunDir(tmp_path / "twice")
    assert twice.dropped_epochs() == [1, 2] and twice.weight_epochs() == [3]
    a, b = sample_arrays(once.path), sample_arrays(twice.path)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    x, y = once.load_checkpoint()["networks"], twice.load_checkpoint()["networks"]
    assert all(torch.equal(x[n][k], y[n][k]) for n in x for k in x[n])


def test_each_run_is_sampled_as_its_own_config_says_unless_the_evaluation_overrides_it():
    gan = EvalConfig(precision="fp32")
    ddpm = EvalConfig(sampler="ddpm", precision="bf16")
    # the evaluation's settings come from the first run (a GAN): the DDPM keeps its own sampler and precision
    assert sampling_config(gan, gan, ddpm).precision == "bf16"
    # an evaluation that sets the precision sets it for every run
    over = EvalConfig(precision="bf16", n_fake=7)
    assert sampling_config(over, gan, EvalConfig()).precision == "bf16"
    assert sampling_config(over, gan, EvalConfig()).n_fake == 7


def test_dropped_record_is_json_with_what_users_need(gan_pair):
    rd = RunDir(gan_pair / "sampled")
    record = json.loads(rd.dropped_path(1).read_text())
    assert set(record) == {"epoch", "fingerprint", "policy", "samples", "step"}
