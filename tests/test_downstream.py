"""The downstream study (issue 13): protocols with known answers, metrics, patient-disjoint splits, the profile's
task, the class generators' configs, and the notebook end to end in the smoke profile (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import papermill
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from xrutils.config import ConfigError
from xrutils.data.loader import ANY_FINDING, finding_rows
from xrutils.data.nih import LABELS
from xrutils.errors import DataError
from xrutils.evaluators import downstream as ds
from xrutils.studies import downstream as study

REPO = Path(__file__).resolve().parent.parent


def toy_set(n_patients: int, seed: int, per_patient: int = 2, size: int = 16) -> ds.LabelledSet:
    """A learnable but not trivial finding: positives carry a faint bright blob at a random place, negatives an
    equally faint dark one (so neither class is the "unusual" one), under noise. Each patient's images share the
    label."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n_patients, generator=g) < 0.4).long().repeat_interleave(per_patient)
    n = labels.numel()
    # nuisance that dominates the images' variation, as anatomy and exposure do in X-rays: a brightness and a
    # left-right gradient per image, unrelated to the label
    ramp = torch.linspace(-1, 1, size).view(1, 1, 1, size)
    x = torch.randn(n, 1, size, size, generator=g) * 0.15 + 0.5
    x = x + 0.2 * torch.randn(n, 1, 1, 1, generator=g) + 0.2 * torch.randn(n, 1, 1, 1, generator=g) * ramp
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for i in range(n):
        cy, cx = torch.randint(4, size - 4, (2,), generator=g).tolist()
        sign = 1.0 if labels[i] else -1.0
        x[i, 0] += sign * 0.35 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 6.0)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    patients = np.repeat(np.arange(n_patients) + 1000 * seed, per_patient)
    return ds.LabelledSet(images, labels.numpy(), patients)


@pytest.fixture(scope="module")
def toy():
    return toy_set(150, seed=1), toy_set(80, seed=2)


def test_metrics_agree_with_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + 0.3 * y, 1)  # ties on purpose
    assert ds.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert ds.balanced_accuracy(y, s) == pytest.approx(balanced_accuracy_score(y, s >= 0.5))
    assert np.isnan(ds.roc_auc(np.zeros(5), s[:5]))


def test_a_paired_test_of_identical_predictions_finds_no_gap():
    rng = np.random.default_rng(1)
    y, p, patients = rng.integers(0, 2, 60), rng.random((3, 60)), np.repeat(np.arange(30), 2)
    t = ds.paired_test(y, p, p, patients, n_boot=200)
    assert t["gap"] == 0.0 and t["lo"] == 0.0 and t["hi"] == 0.0 and t["p_value"] == 1.0


def test_real_images_used_as_synthetic_give_tstr_close_to_trtr(toy):
    # the known answer: "synthetic" images that are the real training images themselves (in another order, with
    # no patients) train a classifier as good as TRTR's, within TRTR's interval
    train, test = toy
    perm = np.random.default_rng(0).permutation(len(train))
    copy = ds.LabelledSet(train.images[perm], train.labels[perm], np.full(len(train), ds.SYNTHETIC_PATIENT))
    res = ds.run_protocols(
        train, test, {"copy": copy}, seeds=(0, 1, 2), fractions=(1.0,), epochs=8, n_boot=300
    )
    trtr, tstr = res["protocols"]["TRTR"]["scores"]["auc"], res["protocols"]["TSTR/copy"]["scores"]["auc"]
    assert trtr["value"] > 0.75  # the task is learnable, so the comparison means something
    assert trtr["lo"] <= tstr["value"] <= trtr["hi"]
    assert abs(tstr["value"] - trtr["value"]) < 0.05
    (vs_trtr,) = [
        t for t in res["tests"] if t["a"] == "TSTR/copy" and t["b"] == "TRTR" and t["metric"] == "auc"
    ]
    assert vs_trtr["p_holm"] > 0.05 and vs_trtr["lo"] <= 0 <= vs_trtr["hi"]
    # TRTS on the same images: the real classifier separates its own training classes
    assert res["protocols"]["TRTS/copy"]["scores"]["auc"]["value"] > 0.9
    assert res["protocols"]["TRTR"]["scores"]["auc"]["n_seeds"] == 3


def test_randomly_labelled_synthetic_data_gives_chance_auc(toy):
    # images whose labels are drawn at random teach nothing about the finding: over independent label draws (and
    # classifier seeds) the real-test AUC centres on 0.5, while the same images with their labels reach > 0.9. One
    # draw alone can land well away from 0.5 (sd about 0.06 here): a random function of the images may still
    # correlate with the finding, which is why the study reports intervals and paired tests
    train, test = toy
    aucs = []
    for k in range(6):
        labels = np.random.default_rng(10 + k).integers(0, 2, len(train))
        noise = ds.LabelledSet(train.images, labels, np.full(len(train), ds.SYNTHETIC_PATIENT))
        model = ds.train_finding_classifier(noise, seed=k, epochs=3)
        aucs.append(ds.roc_auc(test.labels, ds.predict(model, test.images)))
    assert abs(np.mean(aucs) - 0.5) < 0.08, aucs
    real = ds.train_finding_classifier(train, seed=0, epochs=3)
    assert ds.roc_auc(test.labels, ds.predict(real, test.images)) > 0.9


def test_protocols_refuse_a_leaking_split_and_fractions_keep_whole_patients(toy):
    train, test = toy
    leak = ds.LabelledSet.concat([test, train.subset(np.arange(4))])
    with pytest.raises(ValueError, match=r"patient \d+ is in both the training and the test set"):
        ds.run_protocols(train, leak, {}, seeds=(0,), fractions=(1.0,), epochs=1, n_boot=10)
    part = ds.patient_fraction(train, 0.25, seed=0)
    kept = set(part.patients.tolist())
    assert all((train.patients == p).sum() == (part.patients == p).sum() for p in kept)  # whole patients
    assert 0.2 <= len(part) / len(train) <= 0.35 and set(part.labels.tolist()) == {0, 1}


def test_a_labelled_set_names_what_is_wrong():
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        ds.LabelledSet(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), [0, 2], [1, 2])
    with pytest.raises(ValueError, match="2 images, 3 labels"):
        ds.LabelledSet(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), [0, 1, 1], [1, 2])
    with pytest.raises(ValueError, match="0 negative and 2 positive"):
        ds.train_finding_classifier(
            ds.LabelledSet(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), [1, 1], [1, 2]), seed=0
        )


def test_finding_rows_select_one_class():
    labels = np.zeros((4, len(LABELS)), np.uint8)
    labels[0, LABELS.index("Cardiomegaly")] = 1
    labels[1, LABELS.index("No Finding")] = 1
    labels[2, LABELS.index("Effusion")] = labels[2, LABELS.index("Cardiomegaly")] = 1
    labels[3, LABELS.index("No Finding")] = 1
    assert finding_rows(labels, "Cardiomegaly").tolist() == [0, 2]
    assert finding_rows(labels, "No Finding").tolist() == [1, 3]
    assert finding_rows(labels, ANY_FINDING).tolist() == [0, 2]
    assert finding_rows(labels, "") is None
    with pytest.raises(DataError, match="data.finding='Cardio' is not a class"):
        finding_rows(labels, "Cardio")


def test_the_real_sets_are_patient_disjoint_and_hold_both_classes(_data_home):
    d = study.Downstream("smoke", _data_home / "runs", _data_home / "figs", families=("vae",))
    assert d.task == study.Task("Cardiomegaly", "No Finding", "phantom")  # the profile table's phantom task
    ds.check_patient_disjoint(("training", d.train), ("test", d.test))
    assert not set(d.train.patients.tolist()) & set(d.test.patients.tolist())
    assert min(d.train.counts) > 0 and min(d.test.counts) > 0
    assert study.task_for("demo", "/some/nih") == study.Task("Any Finding", "No Finding", "nih")
    with pytest.raises(ConfigError, match="unknown families"):
        study.Downstream("smoke", _data_home / "runs", _data_home / "figs", families=("flow",))


def test_a_class_generator_keeps_its_runs_steps_and_architecture():
    base = study.base_config("gan__size32", "demo", "")
    cfg = study.generator_config("gan__size32", "Cardiomegaly", "demo", "", n_class=190, n_base=480)
    assert cfg.model == base.model and cfg.train.lr == base.train.lr and cfg.data.finding == "Cardiomegaly"
    from xrutils.train import count_steps

    steps = base.train.epochs * count_steps(480, base.train)
    got = cfg.train.epochs * count_steps(190, cfg.train)
    assert steps <= got < steps + count_steps(190, cfg.train)  # the same steps, to one epoch
    assert cfg.train.checkpoint_every == cfg.train.epochs and cfg.data.phantom_n == 2000
    assert study.generator_name("gan__size32", "No Finding") == "gan__size32+no-finding"


@pytest.mark.slow
def test_the_downstream_notebook_runs_in_the_smoke_profile(tmp_path, _data_home):
    figs = tmp_path / "figs"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "downstream.ipynb"),
        str(tmp_path / "downstream.ipynb"),
        parameters={
            "profile": "smoke",
            "run_root": str(tmp_path / "runs"),
            "fig_dir": str(figs),
            "families": ["gan", "vae"],
        },
        cwd=str(REPO),
    )
    res = json.loads((figs / "results" / "downstream.json").read_text())
    assert set(res["generators"]) == {"gan", "vae"} and res["seeds"] == 2
    assert len(res["generator_fd8"]) == 4 and all(r["last"] > 0 for r in res["generator_fd8"].values())
    assert {"TRTR", "TSTR/gan", "TRTS/vae", "AUG/gan/0.5", "REAL/0.5"} <= set(res["protocols"])
    for key in ("S4", "S5"):
        entry = json.loads(next((figs / "index").glob(f"fig_{key}_*.json")).read_text())
        assert (figs / entry["files"]["png"]).exists() and entry["notebook"] == "notebooks/downstream.ipynb"
    text = (figs / "RESULTS.md").read_text()
    assert "which family's images are most useful as training data" in text and "| TSTR GAN |" in text
    for gen in (tmp_path / "runs" / "downstream" / "phantom").iterdir():
        assert (gen / ".complete").exists() or any((gen / "checkpoints").glob("*.pt"))


def _verdict_res(gaps: dict[tuple[str, str], tuple[float, float]], tstr: dict[str, float]) -> dict:
    """A results dict with TSTR AUCs and family-pair tests (gap, Holm p) as run_protocols writes them."""
    protocols = {
        f"TSTR/{f}": {"protocol": "TSTR", "family": f, "scores": {"auc": {"value": v}}}
        for f, v in tstr.items()
    }
    tests = [
        {
            "a": f"TSTR/{a}",
            "b": f"TSTR/{b}",
            "metric": "auc",
            "question": "TSTR: family against family",
            "gap": gap,
            "p_holm": p,
        }
        for (a, b), (gap, p) in gaps.items()
    ]
    return {"protocols": protocols, "tests": tests}


def test_the_verdict_on_the_thesis_claim_needs_significant_paired_tests():
    tstr = {"gan": 0.7, "vae": 0.85, "ddpm": 0.72}
    vae_wins = _verdict_res({("vae", "ddpm"): (0.13, 0.01), ("gan", "ddpm"): (-0.02, 0.9)}, tstr)
    assert study.verdict(vae_wins)["verdict"] == "disagrees"
    assert "the VAE" in study.verdict(vae_wins)["why"]
    unclear = _verdict_res({("vae", "ddpm"): (0.13, 0.2), ("gan", "ddpm"): (-0.02, 0.9)}, tstr)
    assert study.verdict(unclear)["verdict"] == "inconclusive"
    ddpm_best = {"gan": 0.6, "vae": 0.65, "ddpm": 0.9}
    wins = _verdict_res({("gan", "ddpm"): (-0.3, 0.001), ("ddpm", "vae"): (0.25, 0.01)}, ddpm_best)
    assert study.verdict(wins)["verdict"] == "agrees"
    assert study.verdict(wins)["ranking"][0][0] == "ddpm"
    # a real-data reference at chance: the task is not learnt, so no family is judged
    wins["protocols"]["TRTR"] = {
        "protocol": "TRTR",
        "scores": {"auc": {"value": 0.52, "lo": 0.45, "hi": 0.6}},
    }
    assert study.verdict(wins)["verdict"] == "inconclusive" and "at chance" in study.verdict(wins)["why"]


def test_results_md_says_when_the_downstream_study_has_not_run(tmp_path):
    from xrutils.studies.results import results_text

    assert "*This build:* not run (`make downstream`)." in results_text(tmp_path, "demo")
