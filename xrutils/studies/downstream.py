"""The downstream study (issue 13): are the generated X-rays useful as training data for a finding classifier?

``make downstream`` (``notebooks/downstream.ipynb``, run by papermill) does, for a profile:

1. **Generators that know the label**: each family's run at the common image size (the one Supplementary Figure S3
   compares, :func:`~xrutils.studies.params.common_size_runs`) is trained once per class of the profile's finding
   task (:data:`xrutils.profiles.DOWNSTREAM`), on that class's training images only (``data.finding``), with the
   architecture, learning rate and number of optimisation steps of the family's run unchanged (the epochs are
   rescaled to the class's image count). Run folders ``runs/<profile>/downstream/<run>+<class>``; a killed build
   resumes them, a finished one is reused.
2. **Synthetic training sets**: each family's class generators draw as many images as the real training set has of
   that class (so TSTR trains on the same class counts as TRTR), with the family's evaluation sampler; cached next to
   the generator's checkpoints.
3. **The protocols** (:func:`xrutils.evaluators.downstream.run_protocols`): TRTR, TSTR, TRTS and augmentation at the
   profile's real-data fractions, each over the profile's classifier seeds, on the patient-disjoint real test split.
4. ``<fig_dir>/results/downstream.json`` with every score, interval and test, which RESULTS.md reads.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xrutils.config import ConfigError, RunConfig
from xrutils.studies.params import common_size_runs, params_dir, read_params, run_config, run_params
from xrutils.studies.table import COMMON_SIZE, split_run_name

NOTEBOOK = "notebooks/downstream.ipynb"
RESULTS_NAME = "downstream.json"
SAMPLES_SEED = (
    "downstream"  # purpose of the generator behind a synthetic training set (seeding.make_generator)
)


@dataclass(frozen=True)
class Task:
    positive: str  # a finding ("Cardiomegaly"), or "Any Finding"
    negative: str  # "No Finding"
    source: str  # "phantom" or "nih"

    @property
    def classes(self) -> tuple[str, str]:
        return (self.negative, self.positive)  # label 0, label 1

    @property
    def text(self) -> str:
        return f"{self.positive.lower()} against {self.negative.lower()}"


def settings(profile: str) -> dict[str, Any]:
    from xrutils.profiles import DOWNSTREAM

    if profile not in DOWNSTREAM:
        raise ConfigError(
            f"downstream: no task for profile {profile!r}; expected one of {sorted(DOWNSTREAM)}"
        )
    return DOWNSTREAM[profile]


def task_for(profile: str, nih_root: str | Path | None = "") -> Task:
    """The profile table's task for the data the build uses (NIH when ``nih_root`` is set, else the phantom)."""
    source = "nih" if nih_root else "phantom"
    positive, negative = settings(profile)["tasks"][source]
    return Task(positive, negative, source)


def class_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def generator_name(run: str, cls: str) -> str:
    """``gan__size32`` + ``Cardiomegaly`` -> ``gan__size32+cardiomegaly``."""
    return f"{run}+{class_slug(cls)}"


def base_config(run: str, profile: str, nih_root: str | Path | None) -> RunConfig:
    """The config of ``run`` (a family's common-size run) as the build trains it: its params file's settings."""
    path = params_dir(profile) / f"{run}.yaml"
    p = read_params(path) if path.exists() else run_params(run, profile)
    family, preset = split_run_name(run)
    return run_config(family, preset, profile, p.get("overrides") or {}, p.get("seed", 0), nih_root)


def study_data(profile: str) -> dict[str, Any]:
    """The data settings the profile's downstream study uses (the class generators and the classifiers)."""
    return dict(settings(profile)["data"])


def generator_config(
    run: str, cls: str, profile: str, nih_root: str | Path | None, n_class: int, n_base: int
) -> RunConfig:
    """The class generator of ``run``: the run's config on the class's training images (``n_class`` of them), with
    the base run's number of optimisation steps (it trained on ``n_base`` images): ``train.epochs`` rescaled, a
    grid and a checkpoint at the first and the last epoch only (where the base run drops older weights, so does
    it, with nothing drawn: only its last checkpoint is sampled)."""
    from xrutils.train import count_steps

    base = base_config(run, profile, nih_root)
    steps = base.train.epochs * count_steps(n_base, base.train)
    per_epoch = count_steps(n_class, base.train)
    if per_epoch == 0:
        raise ConfigError(f"downstream: no {cls} training images for {run}")
    epochs = max(1, math.ceil(steps / per_epoch))
    return base.override(
        {
            **study_data(profile),
            "data.finding": cls,
            "train.epochs": epochs,
            "train.sample_every": epochs,
            "train.checkpoint_every": epochs,
            "train.keep_weights": "all" if base.train.keep_weights == "all" else "last",
        }
    )


# ----------------------------------------------------------------------------------------------------------------
# the real images of the task


def real_sets(task: Task, data_cfg: Any) -> tuple[Any, Any]:
    """(training, test) :class:`~xrutils.evaluators.downstream.LabelledSet` of the task's two classes from the
    official patient-disjoint split (``train_val`` / ``test``); images of neither class are left out."""
    import dataclasses

    from xrutils.data import load_images
    from xrutils.data.loader import finding_rows
    from xrutils.evaluators.downstream import LabelledSet

    out = []
    for split in ("train_val", "test"):
        s = load_images(dataclasses.replace(data_cfg, finding=""), split, progress=False)
        labels = s.labels.numpy()
        neg, pos = finding_rows(labels, task.negative), finding_rows(labels, task.positive)
        rows = np.concatenate([neg, pos])
        y = np.concatenate([np.zeros(neg.size, np.int64), np.ones(pos.size, np.int64)])
        order = np.argsort(rows, kind="stable")
        rows, y = rows[order], y[order]
        out.append(LabelledSet(s.images[torch.from_numpy(rows)], y, s.patient_ids.numpy()[rows]))
    return out[0], out[1]


# ----------------------------------------------------------------------------------------------------------------
# generators and their synthetic training sets


@dataclass
class Downstream:
    """One build of the downstream study: profile, folders, task, and the real data."""

    profile: str
    run_root: Path
    fig_dir: Path
    nih_root: str = ""
    families: tuple[str, ...] = ()
    device: str = "auto"
    parameters: dict[str, Any] = field(default_factory=dict)  # the notebook's, for the figures' provenance
    seconds: dict[str, float] = field(default_factory=dict)
    notebook: str = NOTEBOOK

    def __post_init__(self) -> None:
        self.run_root, self.fig_dir = Path(self.run_root), Path(self.fig_dir)
        self.task = task_for(self.profile, self.nih_root)
        runs = common_size_runs(self.profile)
        self.runs = {split_run_name(r)[0]: r for r in runs}
        if self.families:
            unknown = set(self.families) - set(self.runs)
            if unknown:
                raise ConfigError(
                    f"downstream: unknown families {sorted(unknown)}; expected some of {sorted(self.runs)}"
                )
            self.runs = {f: r for f, r in self.runs.items() if f in self.families}
        first = base_config(next(iter(self.runs.values())), self.profile, self.nih_root)
        self.base_cfg = first.override(study_data(self.profile))
        self.data_cfg = self.base_cfg.data
        if self.data_cfg.image_size != COMMON_SIZE:
            raise ConfigError(
                f"downstream: the common-size runs train at {self.data_cfg.image_size}², expected {COMMON_SIZE}²"
            )
        t0 = time.perf_counter()
        self.train, self.test = real_sets(self.task, self.data_cfg)
        self.seconds["real data"] = time.perf_counter() - t0

    def data_source(self) -> str:
        """The images in words (figures' provenance)."""
        from xrutils.studies.context import describe_data

        return describe_data(self.base_cfg)

    @property
    def folder(self) -> Path:
        """The class generators' run folders: ``<run_root>/downstream/<source>/`` (phantom or nih)."""
        return self.run_root / "downstream" / self.task.source

    def counts(self) -> dict[str, int]:
        neg, pos = self.train.counts
        return {self.task.negative: neg, self.task.positive: pos}

    def generator_dir(self, family: str, cls: str) -> Path:
        return self.folder / generator_name(self.runs[family], cls)

    def train_generators(self, progress: bool = True) -> dict[str, Path]:
        """Train (or resume, or reuse) every class generator; returns {generator name: run folder}."""
        from xrutils.data import load_images
        from xrutils.train import train

        out = {}
        for family, run in self.runs.items():
            t0 = time.perf_counter()
            base = base_config(run, self.profile, self.nih_root)
            n_base = len(load_images(base.data, progress=False).images)
            for cls, n in self.counts().items():
                cfg = generator_config(run, cls, self.profile, self.nih_root, n, n_base)
                cfg = cfg.override({"train.device": self.device}) if self.device != "auto" else cfg
                path = self.generator_dir(family, cls)
                train(cfg, path, resume=True, progress=progress)
                out[path.name] = path
            self.seconds[f"train {family}"] = time.perf_counter() - t0
        return out

    def synthetic(self, family: str) -> Any:
        """The family's synthetic training set: per class as many images as the real training set has, drawn from
        the class generator's last checkpoint with the family's evaluation sampler (cached in its run folder)."""
        from xrutils.atomic import atomic_torch_save
        from xrutils.checkpoints import load_model
        from xrutils.evaluators.downstream import SYNTHETIC_PATIENT, LabelledSet
        from xrutils.evaluators.samples import sampler_spec
        from xrutils.runs import RunDir
        from xrutils.seeding import make_generator
        from xrutils.train import resolve_device

        t0 = time.perf_counter()
        device = resolve_device(self.device)
        parts = []
        for label, (cls, n) in enumerate(self.counts().items()):
            rd = RunDir(self.generator_dir(family, cls))
            ckpt = rd.latest_checkpoint()
            if ckpt is None:
                raise FileNotFoundError(
                    f"{rd.path}: no checkpoint; train the generators first (train_generators)"
                )
            cfg = rd.read_config()
            spec = sampler_spec(cfg.family, cfg.eval, getattr(cfg.model, "timesteps", None))
            key = f"{rd.checkpoint_fingerprint(rd.weight_epochs()[-1])}_{spec.tag}_n{n}"
            cache = rd.path / "eval" / f"downstream_{key}.pt"
            if cache.exists():
                images = torch.load(cache, weights_only=True)
            else:
                _, model = load_model(rd.path, device=device)
                g = make_generator(cfg.seed, SAMPLES_SEED, model.device)
                images = spec.draw(model, n, g, cfg.eval.sampling_batch)
                cache.parent.mkdir(parents=True, exist_ok=True)
                atomic_torch_save(images, cache)
            parts.append(LabelledSet(images, np.full(n, label), np.full(n, SYNTHETIC_PATIENT)))
        self.seconds[f"sample {family}"] = time.perf_counter() - t0
        return LabelledSet.concat(parts)

    def evaluate(self, n_boot: int | None = None, progress=None) -> dict:
        """Every protocol (:func:`~xrutils.evaluators.downstream.run_protocols`); writes and returns the results."""
        from xrutils.atomic import atomic_write_text
        from xrutils.evaluators.downstream import run_protocols
        from xrutils.learning import run_learning
        from xrutils.train import resolve_device

        s = settings(self.profile)
        synthetic = {f: self.synthetic(f) for f in self.runs}
        t0 = time.perf_counter()
        base = base_config(next(iter(self.runs.values())), self.profile, self.nih_root)
        res = run_protocols(
            self.train,
            self.test,
            synthetic,
            seeds=tuple(range(s["seeds"])),
            fractions=tuple(s["fractions"]),
            epochs=s["classifier_epochs"],
            lr=base.eval.classifier_lr,
            n_boot=n_boot or s["n_boot"],
            device=resolve_device(self.device),
            progress=progress,
        )
        res.pop("_preds")
        self.seconds["classifiers"] = time.perf_counter() - t0
        res.update(
            {
                "profile": self.profile,
                "task": {
                    "positive": self.task.positive,
                    "negative": self.task.negative,
                    "source": self.task.source,
                },
                "data": self.data_source(),
                "image_size": self.data_cfg.image_size,
                "train_counts": self.counts(),
                "generators": {
                    f: {c: self.generator_dir(f, c).name for c in self.counts()} for f in self.runs
                },
                "base_runs": self.runs,
                "classifier": "SimpleCNN (logit head, class-balanced BCE, horizontal flips), "
                f"{s['classifier_epochs']} epochs, lr {base.eval.classifier_lr:g}",
                "seeds": s["seeds"],
                "generator_seeds": 1,
                "fractions": list(s["fractions"]),
                # how well each class generator learned (FD8 of its first and last grid against its class's
                # real images; real vs real about 0.1, noise 3-6): TSTR is only as good as the generator
                "generator_fd8": {
                    self.generator_dir(f, c).name: run_learning(self.generator_dir(f, c)).get("fd8")
                    for f in self.runs
                    for c in self.counts()
                },
                "seconds": dict(self.seconds),
                "verdict": verdict(res),
            }
        )
        atomic_write_text(
            self.fig_dir / "results" / RESULTS_NAME, json.dumps(res, indent=1, default=float) + "\n"
        )
        return res


# ----------------------------------------------------------------------------------------------------------------
# the answer to the thesis's claim


CLAIM = "the diffusion model generated the most suitable X-ray images to be used by other machine learning algorithms"
SIGNIFICANT = 0.05
NAMES = {"gan": "GAN", "vae": "VAE", "pixelcnn": "PixelCNN", "ddpm": "DDPM"}


def _name(family: str) -> str:
    return NAMES.get(family, family)


def tstr_ranking(res: dict, metric: str = "auc") -> list[tuple[str, float]]:
    """Families by their TSTR metric (mean over classifier seeds), best first."""
    rows = [
        (p["family"], p["scores"][metric]["value"])
        for p in res["protocols"].values()
        if p["protocol"] == "TSTR"
    ]
    return sorted(rows, key=lambda r: -r[1])


def verdict(res: dict, metric: str = "auc") -> dict[str, Any]:
    """Does the DDPM make the most useful training data (TSTR AUC)? "agrees" when its TSTR beats every other
    family's in a paired test that survives Holm; "disagrees" when some family's beats it so; else "inconclusive"."""
    ranking = tstr_ranking(res, metric)
    name = "AUC" if metric == "auc" else metric.replace("_", " ")
    if not any(f == "ddpm" for f, _ in ranking):
        return {"verdict": "not comparable", "why": "no DDPM among the families", "ranking": ranking}
    trtr = res["protocols"].get("TRTR", {}).get("scores", {}).get(metric)
    if trtr and trtr["lo"] <= 0.5:
        return {
            "verdict": "inconclusive",
            "why": f"the classifier trained on the real images is itself at chance (TRTR {name} "
            f"{trtr['value']:.3f} [{trtr['lo']:.3f}, {trtr['hi']:.3f}]): the task is not learnable at this scale, so "
            "no family's images can be judged by it",
            "ranking": ranking,
        }
    tests = [
        t for t in res["tests"] if t["metric"] == metric and t["question"] == "TSTR: family against family"
    ]

    def beats(a: str, b: str) -> bool:
        for t in tests:
            if (t["a"], t["b"]) == (f"TSTR/{a}", f"TSTR/{b}"):
                return t["p_holm"] < SIGNIFICANT and t["gap"] > 0
            if (t["a"], t["b"]) == (f"TSTR/{b}", f"TSTR/{a}"):
                return t["p_holm"] < SIGNIFICANT and t["gap"] < 0
        return False

    others = [f for f, _ in ranking if f != "ddpm"]
    better = [f for f in others if beats(f, "ddpm")]
    if better:
        v = "disagrees"
        why = (
            f"the TSTR {name} of the {' and the '.join(map(_name, better))} is above the DDPM's (paired bootstrap, "
            "Holm over the pairs)"
        )
    elif all(beats("ddpm", f) for f in others):
        v, why = (
            "agrees",
            f"the DDPM's TSTR {name} is above every other family's (paired bootstrap, Holm over the pairs)",
        )
    else:
        v, why = (
            "inconclusive",
            f"no family's TSTR {name} differs from the DDPM's after Holm's correction",
        )
        if ranking[0][0] != "ddpm":
            v, why = (
                "inconclusive",
                f"the {_name(ranking[0][0])} ranks first, but not significantly above the DDPM (Holm)",
            )
    return {"verdict": v, "why": why, "ranking": ranking}


def results_lines(fig_dir: str | Path) -> list[str]:
    """RESULTS.md's downstream section: the thesis's claim, this build's TSTR ranking and the verdict; empty when
    `make downstream` has not run for this build."""
    path = Path(fig_dir) / "results" / RESULTS_NAME
    if not path.exists():
        return []
    res = json.loads(path.read_text())
    v = res["verdict"]
    trtr = res["protocols"]["TRTR"]["scores"]["auc"]
    lines = [
        "## Downstream: which family's images are most useful as training data? (`make downstream`)",
        "",
        f'**Thesis:** "{CLAIM}" (never tested: the thesis trains no model on generated images).',
        "",
        f"**This build** ({res['profile']} profile, {res['data']}, {res['image_size']}², task "
        f"{res['task']['positive'].lower()} against {res['task']['negative'].lower()}; a SimpleCNN over "
        f"{res['seeds']} classifier seeds, one generator seed, tested on {res['test_set']['n']} real test images of "
        f"{res['test_set']['patients']} patients; 95 % patient-level cluster-bootstrap intervals): **{v['verdict']}** "
        f"- {v['why']}.",
        "",
        "TSTR: trained on a family's images, tested on real; TRTS: trained on real, tested on the family's images; "
        "augmentation: a share of the real training patients plus the family's images. The generators were trained "
        "on all the real training images, so the shares limit only what the classifier sees of the real images "
        "directly. Verdict: the DDPM's TSTR AUC against every other family's, paired bootstrap tests over the same "
        "test patients, Holm-corrected over the family pairs.",
        "",
        "| protocol | AUC [95 % CI] | balanced accuracy [95 % CI] |",
        "|---|---|---|",
        f"| TRTR (real) | {_fmt(trtr)} | {_fmt(res['protocols']['TRTR']['scores']['balanced_accuracy'])} |",
    ]
    fd8 = res.get("generator_fd8") or {}
    if fd8:
        lines[-3:-3] = [  # before the table
            "Class generators, FD8 of the first and the last grid against their class's real images (real vs real "
            "about 0.1, noise 3-6): "
            + "; ".join(f"{g} {r['first']:.2f} -> {r['last']:.2f}" for g, r in fd8.items() if r)
            + ".",
            "",
        ]
    for family, _ in v["ranking"]:
        for name in ("TSTR", "TRTS"):
            p = res["protocols"][f"{name}/{family}"]["scores"]
            lines.append(f"| {name} {_name(family)} | {_fmt(p['auc'])} | {_fmt(p['balanced_accuracy'])} |")
    for p in res["protocols"].values():
        if p["protocol"] == "AUG":
            real = res["protocols"][f"REAL/{p['fraction']:g}"]["scores"]["auc"]
            lines.append(
                f"| real {p['fraction']:.0%} + {_name(p['family'])} synthetic | {_fmt(p['scores']['auc'])} (real alone "
                f"{real['value']:.3f}) | {_fmt(p['scores']['balanced_accuracy'])} |"
            )
    return lines + [""]


def _fmt(s: dict) -> str:
    return f"{s['value']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]"
