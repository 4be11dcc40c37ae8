"""``evaluate()``: every judge and metric of the study over a set of run folders, in one pass that reuses what it can.

Order of work (each expensive thing happens once):

1. read every run's config and checkpoint list; load each judge (the final-epoch discriminator of a GAN run per
   image size) once;
2. per image size: load the held-out real images once (``test`` split, ``eval.n_real`` images of a seeded sample of
   whole patients, :func:`held_out_sample`; every bootstrap over them resamples patients); the per-image real
   terms of each judge are computed once (unless the original protocol's single random batch per epoch is on);
3. per run and checkpoint: generated samples from the sample cache (:mod:`.samples`; a model is loaded only on a
   cache miss, and the last epoch's model is kept for the likelihood);
4. per image size: the classifier judge is trained once on the held-out reals against the compared runs'
   final-epoch samples, then scores every checkpoint's samples; the feature encoder is trained (or read from its
   cache) once, and the real splits' features come from its cache; the Fréchet distance in its feature space is
   computed for every scored checkpoint (``fd_curve``: the learning curve the build's learning summary reads) and
   FD8 (8 x 8 pooled pixels, no trained features) next to it;
5. seeds of one configuration are pooled into a group (mean and interval over seeds), and the groups are ranked
   per criterion with a paired bootstrap test of each adjacent gap.

The result (shape agreed in the team brief; extra fields added) is returned, written to ``out`` as JSON, and each
run's part is merged into its ``metrics.json`` under ``evaluation.<protocol>``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xrutils.atomic import atomic_write_text
from xrutils.config import DataConfig, EvalConfig, RunConfig
from xrutils.data.ranges import Range
from xrutils.errors import InputError
from xrutils.evaluators import classifier as clf
from xrutils.evaluators import features as feat
from xrutils.evaluators import likelihood, memorisation, stats
from xrutils.evaluators import metrics as met
from xrutils.evaluators.judge import Judge, Quirks, score_curve
from xrutils.evaluators.samples import SampleCache
from xrutils.log import get as _get_log
from xrutils.runs import RunDir

EVAL_PURPOSE = (
    "eval"  # the per-checkpoint sample set shared by the judge, the classifier score and the metrics
)
CLASSIFIER_PURPOSE = "classifier"  # the final-epoch samples the classifier is trained on (never scored)


@dataclass
class _Run:
    name: str
    rd: RunDir
    cfg: RunConfig
    epochs: list[int]  # checkpoints to score
    cache: SampleCache
    samples: dict[int, torch.Tensor] = field(default_factory=dict)  # epoch -> uint8 (n, 1, S, S)
    classifier_train: torch.Tensor | None = None
    result: dict[str, Any] = field(default_factory=dict)
    last_real_terms: np.ndarray | None = None
    real_key: str = ""  # name of the judge's real set in the paired bootstrap
    real_clusters: stats.Clusters | None = None  # the patients of the judge's real set (cluster bootstrap)
    last_fake_terms: np.ndarray | None = None
    last_p_real: np.ndarray | None = None
    fake_features: np.ndarray | None = None
    model_cache: tuple[int, Any] | None = None

    @property
    def size(self) -> int:
        return self.cfg.data.image_size

    @property
    def family(self) -> str:
        return self.cfg.family


_logger = _get_log("evaluate")


def _log(progress: bool, msg: str) -> None:
    if progress:
        _logger.info(msg)


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _run_names(dirs: Sequence[Path]) -> list[str]:
    names = [d.name for d in dirs]
    if len(set(names)) == len(names):
        return names
    return [f"{d.parent.name}/{d.name}" for d in dirs]


def _load_runs(run_dirs: Sequence[str | Path], eval_cfg: EvalConfig, device: torch.device) -> list[_Run]:
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise InputError("evaluate: no run folders given")
    if len({d.resolve() for d in dirs}) != len(dirs):
        raise InputError(f"evaluate: a run folder is given twice: {[str(d) for d in dirs]}")
    runs = []
    for name, d in zip(_run_names(dirs), dirs, strict=True):
        rd = RunDir(d)
        cfg = rd.read_config()
        epochs = rd.checkpoint_epochs()
        if not epochs:
            raise FileNotFoundError(f"{d}: no checkpoints in {rd.checkpoint_dir}; train the run first")
        chosen = epochs if eval_cfg.epochs == "all" else epochs[-1:]
        run = _Run(name, rd, cfg, chosen, None)  # type: ignore[arg-type]
        run.cache = SampleCache.for_run(d, eval_cfg, device=device, load_model=_model_loader(run, device))
        runs.append(run)
    return runs


def _model_loader(run: _Run, device: torch.device):
    """Load a checkpoint's model, keeping the newest one (the last epoch is needed again for the likelihood)."""

    def load(epoch: int) -> Any:
        if run.model_cache is not None and run.model_cache[0] == epoch:
            return run.model_cache[1]
        from xrutils.checkpoints import load_model

        model = load_model(run.rd.path, epoch, device=device)[1]
        run.model_cache = (epoch, model)
        return model

    return load


HELD_OUT_SEED = 20_260  # the seed of the held-out patient sample (one sample for every run, judge and metric)


def held_out_sample(patient_ids: np.ndarray, n: int, seed: int = HELD_OUT_SEED) -> np.ndarray:
    """Indices of ``n`` held-out images drawn by patient: patients in a seeded random order, each with all of its
    images, until ``n`` images are reached (the last patient's images cut at ``n``); 0 or more than there are =
    every image. A slice of the first names would come from a handful of patients (the first 1,024 NIH test
    images are 64 of its 2,797 test patients)."""
    ids = np.asarray(patient_ids)
    if n <= 0 or n >= ids.size:
        return np.arange(ids.size)
    patients, codes = np.unique(ids, return_inverse=True)
    rank_of = np.empty(patients.size, dtype=np.int64)
    rank_of[np.random.default_rng(seed).permutation(patients.size)] = np.arange(patients.size)
    return np.argsort(rank_of[codes], kind="stable")[
        :n
    ]  # by patient rank, each patient's images in name order


class _Reals:
    """Real images (and their patients) per (DataConfig, split), loaded once. The held-out ``test`` images are a
    seeded sample of whole patients (:func:`held_out_sample`); every bootstrap over them resamples patients."""

    def __init__(self, progress: bool):
        self._memo: dict[tuple[DataConfig, str, int], tuple[torch.Tensor, np.ndarray]] = {}
        self.progress = progress

    def _load(self, data_cfg: DataConfig, split: str, n: int) -> tuple[torch.Tensor, np.ndarray]:
        from xrutils.data import load_images

        cfg = replace(data_cfg, hflip=False)
        if split == "test":
            cfg = replace(cfg, max_images=0)  # the whole split, then a sample of patients
        key = (cfg, split, n if split == "test" else 0)
        if key not in self._memo:
            found = load_images(cfg, split=split, progress=self.progress)
            images, patients = found.images, found.patient_ids.numpy()
            if images.dtype != torch.uint8 or images.ndim != 4:
                raise ValueError(
                    f"load_images returned {images.dtype} {tuple(images.shape)}; expected uint8 (N, 1, S, S)"
                )
            if images.shape[0] == 0:
                raise InputError(f"no real images in split {split!r} of data source {cfg.source!r}")
            if (patients < 0).any():  # a source without patients (ChestMNIST): each image its own patient
                patients = np.where(patients < 0, -1 - np.arange(patients.size), patients)
            if split == "test":
                keep = held_out_sample(patients, n)
                images, patients = images[torch.from_numpy(keep)], patients[keep]
            self._memo[key] = (images, patients)
        return self._memo[key]

    def get(self, data_cfg: DataConfig, split: str, n: int = 0) -> torch.Tensor:
        return self._load(data_cfg, split, n)[0]

    def patients(self, data_cfg: DataConfig, split: str, n: int = 0) -> np.ndarray:
        """The patient of each image :meth:`get` returns (the clusters of a cluster bootstrap)."""
        return self._load(data_cfg, split, n)[1]

    def counts(self, data_cfg: DataConfig, split: str, n: int = 0) -> dict[str, int]:
        ids = self.patients(data_cfg, split, n)
        return {"n_real": int(ids.size), "n_real_patients": int(np.unique(ids).size)}


def _reference_data(runs: list[_Run], judges: dict[int, Judge]) -> dict[int, DataConfig]:
    """Per image size, the data whose real images define 'real': the judge's, else the first run's."""
    ref: dict[int, DataConfig] = {}
    for run in runs:
        if run.size in judges and judges[run.size].data_cfg is not None:
            ref.setdefault(run.size, judges[run.size].data_cfg)
        ref.setdefault(run.size, run.cfg.data)
    for run in runs:
        r, d = ref[run.size], run.cfg.data
        if (r.source, r.root, r.phantom_n, r.phantom_seed, r.chestmnist_path) != (
            d.source,
            d.root,
            d.phantom_n,
            d.phantom_seed,
            d.chestmnist_path,
        ):
            raise InputError(
                f"run {run.name} was trained on data source={d.source!r} root={d.root!r} "
                f"phantom_n={d.phantom_n}, but the reference real images at {run.size}x{run.size} "
                f"come from source={r.source!r} root={r.root!r} phantom_n={r.phantom_n}; "
                "compare runs trained on the same data"
            )
    return ref


def _load_judges(judge: str | Path | Sequence[str | Path] | None, device: torch.device) -> dict[int, Judge]:
    if judge is None:
        return {}
    paths = [judge] if isinstance(judge, (str, Path)) else list(judge)
    judges: dict[int, Judge] = {}
    for p in paths:
        j = Judge.from_run(p, device=device)
        if j.image_size in judges:
            raise InputError(
                f"two judges at image size {j.image_size}: {judges[j.image_size].run_dir} and {p}"
            )
        judges[j.image_size] = j
    return judges


def _finite(o: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, non-finite floats to None (the JSON stays strictly valid)."""
    if isinstance(o, Mapping):
        return {str(k): _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    if isinstance(o, (np.floating, float)):
        return float(o) if math.isfinite(float(o)) else None
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, Path):
        return str(o)
    return o


# ----------------------------------------------------------------------------------------------------------------
# the steps


def _collect_samples(
    runs: list[_Run],
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
            n = ecfg.n_fake if e != last or not metrics else max(ecfg.n_fake, ecfg.n_metric)
            req = {EVAL_PURPOSE: n}
            if e == last and classifier and n_classifier.get(run.size):
                req[CLASSIFIER_PURPOSE] = n_classifier[run.size]
            got = run.cache.get(e, req)
            run.samples[e] = got[EVAL_PURPOSE]
            if CLASSIFIER_PURPOSE in got:
                run.classifier_train = got[CLASSIFIER_PURPOSE]
        if not metrics or (run.model_cache is not None and run.model_cache[0] != last):
            run.model_cache = None  # only the last epoch's model is needed again (likelihood)
        spec = run.cache.spec
        _log(
            progress,
            f"{run.name}: samples for epochs {epochs[0]}..{epochs[-1]} "
            f"({run.cache.generated} generated, sampler {spec.tag})",
        )


def _judge_step(
    runs: list[_Run],
    judges: dict[int, Judge],
    quirks: Quirks,
    ecfg: EvalConfig,
    reals: _Reals,
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


def _classifier_step(
    runs: list[_Run],
    ecfg: EvalConfig,
    reals: _Reals,
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
        _log(
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
            run.result["classifier"] = {
                **out,
                "interval": "95% bootstrap over the scored samples; one training seed, one classifier seed",
                "n": n,
                "test_accuracy": report.test_accuracy,
                "roc_auc": report.roc_auc,
                "image_size": size,
                "n_train": report.n_train,
                "n_val": report.n_val,
                "n_test": report.n_test,
            }
    return info


def _shares(n: int, k: int) -> list[int]:
    """Split n images as evenly as possible over k runs."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _classifier_sizes(
    runs: list[_Run], ecfg: EvalConfig, reals: _Reals, ref: dict[int, DataConfig]
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


class _Extractors:
    """The X-ray feature encoder per image size (trained on that size's real training split, or read from its
    cache), made once per evaluation and shared by the FD curve and the last-epoch metrics."""

    def __init__(
        self,
        ecfg: EvalConfig,
        reals: _Reals,
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
            _log(self.progress, f"feature encoder {size}x{size} ready ({train_ref.shape[0]} training images)")
        return self._memo[size]


def _fd_curve_step(
    runs: list[_Run], ecfg: EvalConfig, reals: _Reals, ref: dict[int, DataConfig], extractors: _Extractors
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


def _metrics_step(
    runs: list[_Run],
    ecfg: EvalConfig,
    reals: _Reals,
    ref: dict[int, DataConfig],
    extractors: _Extractors,
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
        )
        run.result["metrics"] = m
    return extractors.info


# ----------------------------------------------------------------------------------------------------------------
# seeds and ranking


def _group_key(cfg: RunConfig) -> str:
    d = cfg.to_dict()
    d.pop("seed", None)
    d.pop("eval", None)
    return json.dumps(d, sort_keys=True)


def _groups(runs: list[_Run]) -> dict[str, list[_Run]]:
    by_key: dict[str, list[_Run]] = {}
    for r in runs:
        by_key.setdefault(_group_key(r.cfg), []).append(r)
    names: dict[str, list[_Run]] = {}
    plain = [f"{g[0].family}__{g[0].cfg.preset}" for g in by_key.values()]
    for g, name in zip(by_key.values(), plain, strict=True):
        names[name if plain.count(name) == 1 else g[0].name] = g
    return names


def _seed_summary(group: list[_Run]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "runs": [r.name for r in group],
        "seeds": [r.cfg.seed for r in group],
        "n_seeds": len(group),
        "interval": "95% Student t over the training seeds' values (seed variance; each value's own evaluation "
        "noise included once)"
        if len(group) > 1
        else "one training seed: no seed interval",
    }
    for judge_key in ("judge", "classifier"):
        if all(judge_key in r.result for r in group):
            common = sorted(set.intersection(*(set(r.result[judge_key]["epochs"]) for r in group)))
            per_epoch = [
                stats.seed_interval(
                    [r.result[judge_key]["score"][r.result[judge_key]["epochs"].index(e)] for r in group]
                )
                for e in common
            ]
            out[judge_key] = {
                "epochs": common,
                "mean": [p["mean"] for p in per_epoch],
                "lo": [p["lo"] for p in per_epoch],
                "hi": [p["hi"] for p in per_epoch],
            }
    if all("metrics" in r.result for r in group):
        for k in ("fd", "kid", "precision", "recall", "bpd"):
            vals = [r.result["metrics"].get(k) for r in group]
            if all(v is not None for v in vals):
                out[k] = stats.seed_interval(vals)
    return out


def _rank(
    groups: dict[str, list[_Run]],
    criterion: str,
    n_boot: int,
    real_features: dict[int, np.ndarray],
    real_clusters: dict[int, stats.Clusters] | None = None,
) -> dict[str, Any] | None:
    """Order the groups by one criterion and test each adjacent gap with a paired bootstrap."""
    higher = criterion != "fd"
    real_clusters = real_clusters or {}
    sizes: dict[str, int | stats.Clusters] = {}
    stat_of = {}
    for gname, group in groups.items():
        for r in group:
            if criterion == "judge" and r.last_fake_terms is None:
                return None
            if criterion == "classifier" and r.last_p_real is None:
                return None
            if criterion == "fd" and r.fake_features is None:
                return None
        if len(group) > 1:
            sizes[f"seeds:{gname}"] = len(group)
        for r in group:
            if criterion == "judge":
                sizes[f"fake:{r.name}"] = r.last_fake_terms.size
                sizes[r.real_key] = r.real_clusters or r.last_real_terms.size  # by patient
            elif criterion == "classifier":
                sizes[f"fake:{r.name}"] = r.last_p_real.size
            else:
                sizes[f"fake:{r.name}"] = r.fake_features.shape[0]
                sizes[f"feat:{r.size}"] = real_clusters.get(r.size) or real_features[r.size].shape[0]
        stat_of[gname] = _make_stat(gname, group, criterion, real_features)
    ident = stats.identity_indices(sizes)
    values = {g: float(stat_of[g](ident)) for g in groups}
    order = sorted(values, key=lambda g: -values[g] if higher else values[g])
    gaps = []
    for i, (a, b) in enumerate(zip(order, order[1:], strict=False)):
        test = stats.paired_bootstrap(stat_of[a], stat_of[b], sizes, n_boot=n_boot, seed=i)
        if not higher:  # report the gap as "better minus worse" in the criterion's own direction
            test = {**test, "gap": -test["gap"], "lo": -test["hi"], "hi": -test["lo"]}
        with_seeds = len(groups[a]) > 1 and len(groups[b]) > 1
        gaps.append(
            {
                "better": a,
                "worse": b,
                **test,
                "variance": "training seeds and evaluation samples"
                if with_seeds
                else "evaluation samples only",
            }
        )
    # "significant" needs a test that includes the training seeds' variance, Holm-corrected over the gaps
    for g, p_holm in zip(gaps, stats.holm([g["p_value"] for g in gaps]), strict=True):
        g["p_holm"] = p_holm
        g["significant"] = bool(g["variance"].startswith("training seeds") and p_holm < stats.ALPHA)
    return {"higher_is_better": higher, "order": order, "values": values, "gaps": gaps}


def _make_stat(gname: str, group: list[_Run], criterion: str, real_features: dict[int, np.ndarray]):
    seeds_key = f"seeds:{gname}"

    def stat(idx: Mapping[str, np.ndarray]) -> float:
        chosen = [group[i] for i in idx[seeds_key]] if seeds_key in idx else group
        vals = []
        for r in chosen:
            f = idx[f"fake:{r.name}"]
            if criterion == "judge":
                vals.append(r.last_real_terms[idx[r.real_key]].mean() + r.last_fake_terms[f].mean())
            elif criterion == "classifier":
                vals.append(r.last_p_real[f].mean())
            else:
                ref = met.FrechetReference(real_features[r.size][idx[f"feat:{r.size}"]])
                vals.append(ref.distance(r.fake_features[f]))
        return float(np.mean(vals))

    return stat


# ----------------------------------------------------------------------------------------------------------------


def evaluate(
    run_dirs: Sequence[str | Path],
    judge: str | Path | Sequence[str | Path] | None,
    *,
    out: str | Path | None = None,
    protocol: str | Quirks = "corrected",
    eval_cfg: EvalConfig | None = None,
    classifier: bool = True,
    metrics: bool = True,
    fd_curve: bool = True,
    device: str | torch.device = "auto",
    store: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Judge, score and measure ``run_dirs``; see the module docstring. ``judge`` is a GAN run folder (or one per
    image size); None skips the discriminator judge. ``protocol`` is "corrected", "original" or a :class:`Quirks`.
    ``fd_curve`` adds the feature-space FD and FD8 of every scored checkpoint; ``metrics`` the last epoch's full
    metrics. ``store`` merges each run's result into its ``metrics.json``."""
    if out is not None and Path(out).is_dir():  # found now, not after the whole evaluation has run
        raise InputError(f"out={str(out)!r} is a folder; expected the path of the JSON file to write")
    dev = _resolve_device(device)
    quirks = Quirks.from_protocol(protocol)
    first_cfg = RunDir(run_dirs[0]).read_config() if run_dirs else None
    ecfg = eval_cfg or (first_cfg.eval if first_cfg else EvalConfig())
    ecfg = replace(ecfg, protocol="original" if quirks.name == "original" else "corrected")
    runs = _load_runs(run_dirs, ecfg, dev)
    judges = _load_judges(judge, dev)
    for run in runs:
        if judges and run.size not in judges:
            have = {s: j.run_dir for s, j in judges.items()}
            raise InputError(
                f"run {run.rd.path} has image size {run.size} but the judge(s) {have} have image "
                f"size(s) {sorted(have)}; give a GAN judge trained at {run.size}"
            )
    reals = _Reals(progress)
    ref = _reference_data(runs, judges)
    _log(
        progress,
        f"{len(runs)} run(s), protocol {quirks.name}, judges at {sorted(judges) or 'none'}, device {dev}",
    )

    n_cls = _classifier_sizes(runs, ecfg, reals, ref) if classifier else {}
    _collect_samples(
        runs,
        ecfg,
        need_all_epochs=bool(judges) or classifier or fd_curve,
        metrics=metrics,
        classifier=classifier,
        n_classifier=n_cls,
        progress=progress,
    )

    result: dict[str, Any] = {
        "protocol": quirks.name,
        "quirks": quirks.to_dict(),
        "eval": asdict(ecfg),
        "device": str(dev),
    }
    result["judge"] = _judge_step(runs, judges, quirks, ecfg, reals, ref) if judges else None
    result["classifier"] = _classifier_step(runs, ecfg, reals, ref, dev, progress) if classifier else None
    real_features: dict[int, np.ndarray] = {}
    extractors = _Extractors(ecfg, reals, ref, dev, progress)
    if fd_curve:
        _fd_curve_step(runs, ecfg, reals, ref, extractors)
    result["features"] = _metrics_step(runs, ecfg, reals, ref, extractors, real_features) if metrics else None
    result["runs"] = {}
    for run in runs:
        spec = run.cache.spec
        result["runs"][run.name] = {
            "run_dir": str(run.rd.path),
            "family": run.family,
            "preset": run.cfg.preset,
            "profile": run.cfg.profile,
            "seed": run.cfg.seed,
            "image_size": run.size,
            "sampler": spec.name,
            "sampler_steps": spec.steps,
            "epochs": run.epochs,
            **run.result,
        }
    groups = _groups(runs)
    result["groups"] = {g: _seed_summary(members) for g, members in groups.items()}
    # one ranking per image size: runs of different sizes meet different judges, classifiers and encoders, so
    # no score, gap or p-value is ever computed across sizes
    result["ranking"] = {"units": {g: [r.name for r in m] for g, m in groups.items()}, "by_size": {}}
    real_clusters = {  # the FD's real set, resampled by patient
        size: stats.Clusters(reals.patients(ref[size], "test", ecfg.n_real)) for size in real_features
    }
    for size in sorted({r.size for r in runs}):
        same = {g: m for g, m in groups.items() if m[0].size == size}
        if len(same) < 2:
            continue
        ranked_here = {}
        for criterion in ("judge", "classifier", "fd"):
            ranked = _rank(same, criterion, ecfg.n_boot, real_features, real_clusters)
            if ranked is not None:
                ranked_here[criterion] = ranked
        result["ranking"]["by_size"][str(size)] = ranked_here
    result = _finite(result)

    if store:
        for run in runs:
            prev = run.rd.read_metrics().get("evaluation", {})
            run.rd.update_metrics({"evaluation": {**prev, quirks.name: result["runs"][run.name]}})
    if out is not None:
        atomic_write_text(out, json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result
