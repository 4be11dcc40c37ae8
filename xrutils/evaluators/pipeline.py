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

The pieces live next door: :mod:`.scored` (the runs and judges loaded), :mod:`.reference` (the held-out reals),
:mod:`.steps` (steps 3-4) and :mod:`.ranking` (step 5); this module orders them and assembles the result.

The result (shape agreed in the team brief; extra fields added) is returned, written to ``out`` as JSON, and each
run's part is merged into its ``metrics.json`` under ``evaluation.<protocol>``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xrutils.atomic import atomic_write_text
from xrutils.config import EvalConfig
from xrutils.errors import InputError
from xrutils.evaluators import ranking, stats, steps
from xrutils.evaluators.judge import Quirks
from xrutils.evaluators.reference import Reals, reference_data
from xrutils.evaluators.scored import load_judges, load_runs, log_progress, resolve_device
from xrutils.runs import RunDir


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
    dev = resolve_device(device)
    quirks = Quirks.from_protocol(protocol)
    first_cfg = RunDir(run_dirs[0]).read_config() if run_dirs else None
    ecfg = eval_cfg or (first_cfg.eval if first_cfg else EvalConfig())
    ecfg = replace(ecfg, protocol="original" if quirks.name.startswith("original") else "corrected")
    runs = load_runs(run_dirs, ecfg, dev, quirks)
    judges = load_judges(judge, dev)
    for run in runs:
        if judges and run.size not in judges:
            have = {s: j.run_dir for s, j in judges.items()}
            raise InputError(
                f"run {run.rd.path} has image size {run.size} but the judge(s) {have} have image "
                f"size(s) {sorted(have)}; give a GAN judge trained at {run.size}"
            )
    reals = Reals(progress)
    ref = reference_data(runs, judges)
    log_progress(
        progress,
        f"{len(runs)} run(s), protocol {quirks.name}, judges at {sorted(judges) or 'none'}, device {dev}",
    )

    n_cls = steps.classifier_sizes(runs, ecfg, reals, ref) if classifier else {}
    steps.collect_samples(
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
    result["judge"] = steps.judge_step(runs, judges, quirks, ecfg, reals, ref) if judges else None
    result["classifier"] = (
        steps.classifier_step(runs, ecfg, reals, ref, dev, progress) if classifier else None
    )
    real_features: dict[int, np.ndarray] = {}
    extractors = steps.Extractors(ecfg, reals, ref, dev, progress)
    if fd_curve:
        steps.fd_curve_step(runs, ecfg, reals, ref, extractors)
    result["features"] = (
        steps.metrics_step(runs, ecfg, reals, ref, extractors, real_features) if metrics else None
    )
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
    groups = ranking.groups_of(runs)
    result["groups"] = {g: ranking.seed_summary(members) for g, members in groups.items()}
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
            ranked = ranking.rank(same, criterion, ecfg.n_boot, real_features, real_clusters)
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
