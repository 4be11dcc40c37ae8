"""The steps of :func:`~xrutils.evaluators.pipeline.evaluate`, in order: samples from the cache, the discriminator
judge, the classifier judge, the feature-space FD curve and the last epoch's metrics. Each writes its part into the
runs' ``result``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from xrutils.config import DataConfig, EvalConfig
from xrutils.data.ranges import Range
from xrutils.errors import InputError
from xrutils.evaluators import classifier as clf
from xrutils.evaluators import features as feat
from xrutils.evaluators import likelihood, memorisation, stats
from xrutils.evaluators import metrics as met
from xrutils.evaluators.judge import Judge, Quirks, score_curve
from xrutils.evaluators.reference import Reals
from xrutils.evaluators.samples import CLASSIFIER_PURPOSE, EVAL_PURPOSE, epoch_requests
from xrutils.evaluators.scored import ScoredRun, log_progress


def collect_samples(
    runs: list[ScoredRun],
    ecfg: EvalConfig,
    *,
    need_all_epochs: bool,
    metrics: bool,
    classifier: bool,
    n_classifier: dict[int, int],
    progress: bool,
) -> None:
    for run in runs:
        epochs = run.epochs if need_all_epochs else run.epochs[-1:]
        last = run.epochs[-1]
        for e in epochs:
            req = epoch_requests(ecfg, last=e == last and metrics)
            if e == last and classifier and n_classifier.get(run.size):
                req[CLASSIFIER_PURPOSE] = n_classifier[run.size]
            got = run.cache.get(e, req)
            run.samples[e] = got[EVAL_PURPOSE]
            if CLASSIFIER_PURPOSE in got:
                run.classifier_train = got[CLASSIFIER_PURPOSE]
        if not metrics or (run.model_cache is not None and run.model_cache[0] != last):
            run.model_cache = None  # only the last epoch's model is needed again (likelihood)
        spec = run.cache.spec
        log_progress(
            progress,
            f"{run.name}: samples for epochs {epochs[0]}..{epochs[-1]} "
            f"({run.cache.generated} generated, sampler {spec.tag})",
        )


def judge_step(
    runs: list[ScoredRun],
    judges: dict[int, Judge],
    quirks: Quirks,
    ecfg: EvalConfig,
    reals: Reals,
    ref: dict[int, DataConfig],
) -> dict[str, Any]:
    info: dict[str, Any] = {}
    fixed: dict[int, np.ndarray] = {}
    for size, j in sorted(judges.items()):
        split = "train_val" if quirks.train_split_reals else "test"
        info[str(size)] = {"run_dir": j.run_dir, "epoch": j.epoch, "image_size": size, "real_split": split}
    for run in runs:
        j = judges[run.size]
        data = ref[run.size]
        real_set = (
            (data, data.split if data.split != "test" else "train_val", 0)
            if quirks.train_split_reals
            else (data, "test", ecfg.n_real)
        )
        real_imgs, real_patients = reals.get(*real_set), reals.patients(*real_set)
        if not quirks.single_batch and run.size not in fixed:
            fixed[run.size] = j.real_terms(real_imgs, quirks, batch_size=ecfg.batch_size)
            info[str(run.size)].update(**reals.counts(*real_set), real_term=float(fixed[run.size].mean()))
        family_range: Range = run.cache.value_range  # type: ignore[assignment]
        fakes = {e: run.samples[e][: ecfg.n_fake] for e in run.epochs}
        terms: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        curve = score_curve(
            j,
            run.epochs,
            fakes,
            family_range,
            quirks,
            reals_uint8=real_imgs,
            batch_size=ecfg.batch_size,
            n_boot=ecfg.n_boot,
            seed=run.cfg.seed,
            fixed_real=fixed.get(run.size),
            real_groups=None if quirks.single_batch else real_patients,
            terms_out=terms,
            same_real_batch=quirks.seeded_ddpm and run.family == "ddpm",
        )
        run.result["judge"] = {
            **curve,
            "interval": "95% bootstrap over evaluation samples (fakes by image, reals by patient); one training "
            "seed, so no training-seed variance"
            if not quirks.single_batch
            else "95% bootstrap over one batch of each (original protocol); one training seed",
            "judge_run": j.run_dir,
            "judge_epoch": j.epoch,
            "protocol": quirks.name,
            "quirks": quirks.to_dict(),
            "fake_range": list(family_range),
        }
        # for the ranking's paired test: runs judged on the very same real images share (pair) that index set
        run.last_real_terms, run.last_fake_terms = terms[run.epochs[-1]]
        run.real_clusters = None if quirks.single_batch else stats.Clusters(real_patients)
        run.real_key = (
            f"real:{run.size}:seed{run.cfg.seed}:e{run.epochs[-1]}"
            if quirks.single_batch
            else f"real:{run.size}"
        )
    return info


def classifier_step(
    runs: list[ScoredRun],
    ecfg: EvalConfig,
    reals: Reals,
    ref: dict[int, DataConfig],
    device: torch.device,
    progress: bool,
) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for size in sorted({r.size for r in runs}):
        group = [r for r in runs if r.size == size]
        real_imgs = reals.get(ref[size], "test", ecfg.n_real)
        shares = _shares(real_imgs.shape[0], len(group))
        fakes = torch.cat([r.classifier_train[:k] for r, k in zip(group, shares, strict=True)])
        report = clf.train_classifier(
            real_imgs,
            fakes,
            epochs=ecfg.classifier_epochs,
            lr=ecfg.classifier_lr,
            seed=0,
            device=device,
            real_groups=reals.patients(ref[size], "test", ecfg.n_real),
        )
        info[str(size)] = {
            **report.to_dict(),
            **reals.counts(ref[size], "test", ecfg.n_real),
            "runs": [r.name for r in group],
            "fakes_per_run": dict(zip([r.name for r in group], shares, strict=True)),
        }
        log_progress(
            progress,
            f"classifier {size}x{size}: test accuracy {report.test_accuracy:.3f}, "
            f"ROC AUC {report.roc_auc:.3f} (n_test={report.n_test})",
        )
        for run in group:
            out: dict[str, list] = {"epochs": [], "score": [], "lo": [], "hi": []}
            n = 0
            for e in run.epochs:
                fakes_e = run.samples[e][: ecfg.n_fake]
                p = clf.predict_proba(report.model, clf.as_classifier_input(fakes_e))
                ci = stats.bootstrap_mean(p, n_boot=ecfg.n_boot, seed=run.cfg.seed + e)
                out["epochs"].append(e)
                out["score"].append(ci["value"])
                out["lo"].append(ci["lo"])
                out["hi"].append(ci["hi"])
                n = ci["n"]
                if e == run.epochs[-1]:
                    run.last_p_real = p
            run.result["classifier_per_epoch"] = _per_epoch_classifier(
                run, real_imgs, reals.patients(ref[size], "test", ecfg.n_real), ecfg, device
            )
            run.result["classifier"] = {
                **out,
                "interval": "95% bootstrap over the scored samples; one training seed, one classifier seed",
                "what": "mean P(real) of each epoch's samples under one classifier trained on the final-epoch "
                "samples of every compared run: earlier epochs lie outside its training data",
                "n": n,
                "test_accuracy": report.test_accuracy,
                "roc_auc": report.roc_auc,
                "image_size": size,
                "n_train": report.n_train,
                "n_val": report.n_val,
                "n_test": report.n_test,
            }
    return info


def _per_epoch_classifier(
    run: ScoredRun, real_imgs: torch.Tensor, real_patients: np.ndarray, ecfg: EvalConfig, device: torch.device
) -> dict[str, Any]:
    """A learning curve of separability: per scored epoch a fresh SimpleCNN (seed 0) trained on held-out reals
    against that epoch's samples, and its ROC AUC on unseen images (patient-disjoint splits). 0.5: the classifier
    cannot tell the epoch's samples from real images; 1: it always can."""
    out: dict[str, Any] = {"epochs": [], "score": [], "lo": [], "hi": [], "test_accuracy": []}
    for e in run.epochs:
        fakes = run.samples[e][: ecfg.n_fake]
        n = min(fakes.shape[0], real_imgs.shape[0])  # balanced; the first n reals are whole patients
        report = clf.train_classifier(
            real_imgs[:n],
            fakes[:n],
            epochs=ecfg.classifier_epochs,
            lr=ecfg.classifier_lr,
            seed=0,
            device=device,
            real_groups=real_patients[:n],
        )
        ci = stats.auc_interval(report.roc_auc, max(report.n_test // 2, 1), max(report.n_test // 2, 1))
        for k, v in (("epochs", e), ("score", ci["value"]), ("lo", ci["lo"]), ("hi", ci["hi"])):
            out[k].append(v)
        out["test_accuracy"].append(report.test_accuracy)
        out["n_test"] = report.n_test
    out["interval"] = (
        "95% Hanley-McNeil interval of each AUC over its test images (test-sample noise only; one training seed, "
        "one classifier seed)"
    )
    out["what"] = "held-out ROC AUC of a classifier trained on real images against this epoch's samples"
    return out


def _shares(n: int, k: int) -> list[int]:
    """Split n images as evenly as possible over k runs."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def classifier_sizes(
    runs: list[ScoredRun], ecfg: EvalConfig, reals: Reals, ref: dict[int, DataConfig]
) -> dict[int, int]:
    out = {}
    for size in {r.size for r in runs}:
        n_real = reals.get(ref[size], "test", ecfg.n_real).shape[0]
        k = sum(r.size == size for r in runs)
        if n_real < 3:
            raise InputError(
                f"only {n_real} held-out real images at {size}x{size}: too few for the classifier "
                "judge (need >= 3 for train / validation / test); raise eval.n_real or pass "
                "classifier=False"
            )
        out[size] = math.ceil(n_real / k)
    return out


class Extractors:
    """The X-ray feature encoder per image size (trained on that size's real training split, or read from its
    cache), made once per evaluation and shared by the FD curve and the last-epoch metrics."""

    def __init__(
        self,
        ecfg: EvalConfig,
        reals: Reals,
        ref: dict[int, DataConfig],
        device: torch.device,
        progress: bool,
    ):
        self.ecfg, self.reals, self.ref, self.device, self.progress = ecfg, reals, ref, device, progress
        self._memo: dict[int, feat.FeatureExtractor] = {}
        self.info: dict[str, Any] = {}

    def get(self, size: int) -> feat.FeatureExtractor:
        if size not in self._memo:
            data = self.ref[size]
            train_ref = self.reals.get(data, data.split if data.split != "test" else "train_val")
            self._memo[size] = feat.feature_extractor(
                train_ref, epochs=self.ecfg.feature_epochs, seed=0, device=self.device
            )
            self.info[str(size)] = {
                "feature_extractor": feat.FeatureExtractor.name,
                "trained_on": f"{data.source} {data.split} split ({train_ref.shape[0]} images)",
                "cache": str(self._memo[size].cache_dir),
            }
            log_progress(
                self.progress, f"feature encoder {size}x{size} ready ({train_ref.shape[0]} training images)"
            )
        return self._memo[size]


def fd_curve_step(
    runs: list[ScoredRun], ecfg: EvalConfig, reals: Reals, ref: dict[int, DataConfig], extractors: Extractors
) -> None:
    """Per run and scored checkpoint: the Fréchet distance to the held-out reals in the X-ray encoder's feature
    space, and FD8 (both images average-pooled to 8 x 8), on the same samples the judge scored."""
    for run in runs:
        data = ref[run.size]
        test = reals.get(data, "test", ecfg.n_real)
        ex = extractors.get(run.size)
        real_f = met.FrechetReference(ex.split_features(test))
        real_8 = met.FrechetReference(met.pooled_features(test))
        fd, fd8 = [], []
        for e in run.epochs:
            fakes = run.samples[e][: ecfg.n_fake]
            fd.append(real_f.distance(ex.features(fakes)))
            fd8.append(real_8.distance(met.pooled_features(fakes)))
        run.result["fd_curve"] = {
            "epochs": list(run.epochs),
            "fd": fd,
            "fd8": fd8,
            "n_fake": int(min(ecfg.n_fake, run.samples[run.epochs[-1]].shape[0])),
            **reals.counts(data, "test", ecfg.n_real),
            "feature_extractor": ex.name,
            "real": f"{data.source} test split, a seeded sample of whole patients",
        }


def metrics_step(
    runs: list[ScoredRun],
    ecfg: EvalConfig,
    reals: Reals,
    ref: dict[int, DataConfig],
    extractors: Extractors,
    real_features: dict[int, np.ndarray],
) -> dict[str, Any]:
    inception = (
        feat.InceptionFeatures(ecfg.inception_weights, extractors.device) if ecfg.inception_weights else None
    )
    inception_real: dict[int, np.ndarray] = {}
    for run in runs:
        size, data = run.size, ref[run.size]
        ex = extractors.get(size)
        test = reals.get(data, "test", ecfg.n_real)
        real_f = real_features[size] = ex.split_features(test)
        last = run.epochs[-1]
        fakes = run.samples[last][: ecfg.n_metric]
        run.fake_features = ex.features(fakes)
        m = met.feature_metrics(real_f, run.fake_features, n_boot=ecfg.n_boot, seed=run.cfg.seed)
        m.update(epoch=last, feature_extractor=ex.name)
        if inception is not None:
            if size not in inception_real:
                inception_real[size] = inception.features(test)
            m["inception_fd"] = met.frechet_distance(inception_real[size], inception.features(fakes))
            m["inception_weights"] = inception.path
        # likelihood on held-out reals (VAE: ELBO bound; PixelCNN: exact)
        model = run.cache.load_model(last)
        bpd = likelihood.bits_per_dim(
            model,
            test,
            batch_size=ecfg.batch_size,
            n_boot=ecfg.n_boot,
            seed=run.cfg.seed,
            family=run.family,
            groups=reals.patients(data, "test", ecfg.n_real),
        )
        m["bpd"] = bpd["value"] if bpd else None
        m["bpd_detail"] = bpd
        run.model_cache = None  # the model is no longer needed
        # memorisation against the run's own training images
        train_imgs = reals.get(run.cfg.data, run.cfg.data.split)
        m["memorisation"] = memorisation.memorisation_report(
            fakes,
            train_imgs,
            test_uint8=test,
            fake_features=run.fake_features,
            train_features=ex.split_features(train_imgs),
            test_features=real_f,
            grid_path=run.rd.eval_dir / f"memorisation_e{last:03d}.png",
            test_patients=reals.patients(data, "test", ecfg.n_real),
            train_patients=reals.patients(run.cfg.data, run.cfg.data.split),
        )
        run.result["metrics"] = m
    return extractors.info
