"""A study notebook's context: the judges of each image size (the one judge resolver), :class:`StudyContext`
(:func:`open_study`) and the summaries it writes next to the thesis's claims."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xrutils.config import PROFILE_NAMES, ConfigError, RunConfig, apply_overrides
from xrutils.runs import RunDir
from xrutils.studies.params import (
    common_size_runs,
    image_size_of,
    resolve_judges,
    resolve_path,
    scored_runs,
    study_run_names,
)
from xrutils.studies.results import RANKING_CRITERIA
from xrutils.studies.table import COMMON_SIZE, STUDIES, Study, label, run_seed

# ----------------------------------------------------------------------------------------------------------------
# a study notebook's context


@dataclass
class StudyContext:
    """What one executed study notebook knows: parameters, run folders, figure folder, results."""

    study: Study
    profile: str
    run_root: Path
    fig_dir: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] | None = None  # merged evaluation (see :meth:`evaluate`)
    source: str | None = None  # data source, when the notebook knows it better than the run configs (dataset)
    verdicts: dict[int, dict[str, Any]] = field(default_factory=dict)  # failure figures: what the run did

    @property
    def notebook(self) -> str:
        return self.study.notebook

    def run_dir(self, run: str) -> Path:
        return self.run_root / run

    def check_runs(self, runs: Iterable[str] | None = None) -> list[Path]:
        """The run folders of the study (and its judges), complete; raises naming what is missing and how to make it."""
        names = list(runs if runs is not None else study_run_names(self.study, self.profile))
        if self.study.curve_runs:
            names += [j.name for j in self.judges().values() if j.name not in names]
        missing = [n for n in names if not RunDir(self.run_dir(n)).is_complete()]
        if missing:
            raise FileNotFoundError(
                f"study {self.study.name}: run folder(s) missing or unfinished under {self.run_root}: {missing}; "
                f"`make figures PROFILE={self.profile}` trains them (or run notebooks/<family>.ipynb)"
            )
        return [self.run_dir(n) for n in names]

    def judges(self) -> dict[int, Path]:
        """Image size -> judge run folder, for every size among the curve runs."""
        sizes = sorted(
            {
                image_size_of(self.run_dir(r))
                for r in self.study.curve_runs
                if (self.run_dir(r) / "config.json").exists()
            }
            | set(self.study.extra_judges)
            | ({COMMON_SIZE} if self.study.common_size else set())
        )
        found = resolve_judges(sizes, self._run_image_size, f"under {self.run_root}")
        return {s: self.run_dir(r) for s, r in found.items()}

    def scored_runs(self) -> list[str]:
        """The runs :meth:`evaluate` scores by default (:func:`~xrutils.studies.params.scored_runs`)."""
        return scored_runs(self.study, self.profile)

    def _run_image_size(self, run: str) -> int | None:
        path = self.run_dir(run) / "config.json"
        return image_size_of(path.parent) if path.exists() else None

    def data_source(self) -> str:
        """A one-line description of the images the study's runs trained on."""
        if self.source:
            return self.source
        sources = set()
        for run in study_run_names(self.study, self.profile):
            path = self.run_dir(run) / "config.json"
            if path.exists():
                sources.add(describe_data(RunConfig.load(path)))
        return "; ".join(sorted(sources)) or "none"

    def eval_config(self, run: str):
        cfg = RunConfig.load(self.run_dir(run) / "config.json")
        overrides = self.parameters.get("eval_overrides") or {}
        return apply_overrides(cfg, {f"eval.{k}": v for k, v in overrides.items()}).eval

    def evaluate(
        self,
        protocol: Any = None,
        *,
        classifier: bool | None = None,
        metrics: bool | None = None,
        runs: Iterable[str] | None = None,
        fd_curve: bool = True,
    ) -> dict[str, Any]:
        """Score the study's runs (:meth:`scored_runs`: the curve runs, the common-size runs and their seed
        replicates; each image size by its own GAN judge) in one evaluator pass; the result, with ``judge_size`` per
        run and the judge folders, is written to ``<fig_dir>/results/<study>_<protocol>.json``. ``protocol`` is
        "corrected", "original" or a :class:`~xrutils.evaluators.Quirks` (file name: its ``name``)."""
        from xrutils.atomic import atomic_write_text
        from xrutils.evaluators import evaluate

        protocol = protocol or self.parameters.get("protocol", "corrected")
        classifier = self.parameters.get("classifier", False) if classifier is None else classifier
        metrics = self.parameters.get("metrics", False) if metrics is None else metrics
        names = list(runs if runs is not None else self.scored_runs())
        sizes = sorted({image_size_of(self.run_dir(r)) for r in names})
        judges = {
            s: self.run_dir(r)
            for s, r in resolve_judges(sizes, self._run_image_size, f"under {self.run_root}").items()
        }
        eval_cfg = self.eval_config(names[0]) if self.parameters.get("eval_overrides") else None
        res = evaluate(
            [self.run_dir(r) for r in names],
            [judges[s] for s in sizes],
            protocol=protocol,
            eval_cfg=eval_cfg,
            classifier=classifier,
            metrics=metrics,
            fd_curve=fd_curve,
        )
        res["study"] = self.study.name
        res["judges"] = {str(s): {"run_dir": str(p)} for s, p in judges.items()}
        for r in res.get("runs", {}).values():
            r["judge_size"] = r.get("image_size")
        if self.study.common_size:
            common = [r for r in common_size_runs(self.profile) if r in res.get("runs", {})]
            if common:  # the runs of Supplementary Figure S3 and of RESULTS.md's family ranking
                res["common_size"] = {"size": COMMON_SIZE, "runs": common}
        atomic_write_text(
            self.fig_dir / "results" / f"{self.study.name}_{res['protocol']}.json",
            json.dumps(res, indent=2, sort_keys=True, default=str) + "\n",
        )
        if protocol == self.parameters.get("protocol", "corrected"):
            self.results = res
        return res

    def evaluate_protocols(
        self, runs: Iterable[str], skip: Iterable[str] = ()
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The runs judged under the original protocol (``skip``: quirks left off) and under each of its
        score-changing quirks alone on top of the corrected one (Supplementary Figure S1). Judge only: no
        classifier, metrics or FD curve. Returns ``(original, {quirk: result})``."""
        from xrutils.config import Quirks

        runs, skip = list(runs), list(skip)
        original = self.evaluate(
            Quirks.original(skip), classifier=False, metrics=False, runs=runs, fd_curve=False
        )
        alone = {
            q: self.evaluate(Quirks.only([q]), classifier=False, metrics=False, runs=runs, fd_curve=False)
            for q in Quirks.__dataclass_fields__
            if q not in skip and Quirks.only([q]).changes_scores
        }
        return original, alone

    def summary(self, results: dict[str, Any] | None = None) -> str:
        """Markdown: which variant scored best at the final epoch (with 95% intervals), next to the thesis claim."""
        results = results or self.results or {}
        lines = [
            f"### {self.study.name}: what this run found ({self.profile} profile, {self.data_source()})",
            "",
        ]
        runs = pooled_runs(results)
        if runs:
            lines += judge_summary(runs)
            if any(r.get("classifier") for r in runs.values()):
                lines += [""] + classifier_summary(runs)
            if any(r.get("metrics") for r in runs.values()):
                lines += [""] + metrics_summary(runs)
            lines += ranking_summary(results.get("ranking") or {})
        for verdict in self.verdicts.values():
            lines += ["", f"**{verdict['text']}**"]
        lines += ["", f"**The thesis ({self.study.section}) claimed:** {self.study.claim}"]
        text = "\n".join(lines) + "\n"
        from xrutils.atomic import atomic_write_text

        atomic_write_text(self.fig_dir / "summaries" / f"{self.study.name}.md", text)
        return text


def _final(curve: dict[str, Any]) -> tuple[float, float, float, int] | None:
    scores = curve.get("score") or []
    if not scores:
        return None
    lo = (curve.get("lo") or scores)[-1]
    hi = (curve.get("hi") or scores)[-1]
    return float(scores[-1]), float(lo), float(hi), int((curve.get("epochs") or [len(scores)])[-1])


def pooled_runs(results: dict[str, Any]) -> dict[str, Any]:
    """The evaluated runs for the summaries, each configuration once: a run trained with several seeds shows the
    mean over its seeds with their 95% Student t interval (``n_seeds`` set), and its replicates are not listed on
    their own."""
    groups = results.get("groups") or {}
    out = {}
    for name, r in (results.get("runs") or {}).items():
        if run_seed(name):
            continue
        g = next((g for g in groups.values() if name in g.get("runs", [])), None)
        if g and g.get("n_seeds", 1) > 1:
            r = dict(r, n_seeds=g["n_seeds"])
            for key in ("judge", "classifier"):
                if g.get(key) and r.get(key):
                    r[key] = {**r[key], "epochs": g[key]["epochs"], "score": g[key]["mean"]}
                    r[key].update(lo=g[key]["lo"], hi=g[key]["hi"])
        out[name] = r
    return out


def _seeds(r: dict[str, Any]) -> str:
    n = r.get("n_seeds", 1)
    return f", mean of {n} training seeds" if n > 1 else ""


def judge_summary(runs: dict[str, Any]) -> list[str]:
    """Lines naming the best final-epoch judge score (higher = the judge is fooled more) and whether it is clear."""
    finals = {name: _final(r.get("judge") or {}) for name, r in runs.items()}
    finals = {k: v for k, v in finals.items() if v is not None}
    if not finals:
        return ["No judge scores were computed."]
    ranked = sorted(finals.items(), key=lambda kv: kv[1][0], reverse=True)
    lines = [
        "Discriminator judge at the final epoch (BCE real + BCE fake; higher = the judge is fooled more; "
        "95% interval: Student t over the training seeds where a run has several, else a bootstrap over the "
        "evaluation samples):",
        "",
    ]
    for name, (score, lo, hi, epoch) in ranked:
        size = runs[name].get("judge_size", runs[name].get("image_size", "?"))
        j = runs[name].get("judge") or {}
        valid = f"; the judge's real-vs-fake AUC {j['auc'][-1]:.2f}" if j.get("auc") else ""
        lines.append(
            f"- {label(name)}: **{score:.3f}** [{lo:.3f}, {hi:.3f}] (epoch {epoch}, {size}² judge{valid}"
            f"{_seeds(runs[name])})"
        )
    best, b = ranked[0]
    best_size = runs[best].get("judge_size", runs[best].get("image_size"))
    same = [
        (n, v) for n, v in ranked[1:] if runs[n].get("judge_size", runs[n].get("image_size")) == best_size
    ]
    if same:  # compared only with a run the same judge scored
        second, s = same[0]
        overlap = b[1] <= s[2]
        lines += [
            "",
            f"Best: **{label(best)}**"
            + (
                f"; its interval overlaps {label(second)}'s, so the gap is not clear at this sample size."
                if overlap
                else f"; its interval lies above {label(second)}'s. "
                + (
                    "Both intervals cover the training seeds."
                    if runs[best].get("n_seeds", 1) > 1 and runs[second].get("n_seeds", 1) > 1
                    else "The intervals cover evaluation samples only (one training seed): another seed may "
                    "reorder them."
                )
            ),
        ]
        sizes = {runs[n].get("judge_size") for n in finals}
        if len(sizes) > 1:
            lines.append(
                "Runs of different image sizes are scored by different judges, so their values are not "
                "on one scale."
            )
    return lines


def classifier_summary(runs: dict[str, Any]) -> list[str]:
    lines = [
        "Classifier judge at the final epoch (mean P(real) of fresh samples; 0.5 = chance, ~0 = detected):",
        "",
    ]
    for name, r in runs.items():
        c = r.get("classifier") or {}
        f = _final(c)
        if f is None:
            continue
        acc, auc = c.get("test_accuracy"), c.get("roc_auc")
        extra = (
            f" (classifier test accuracy {acc:.2f}, ROC AUC {auc:.2f})"
            if acc is not None and auc is not None
            else ""
        )
        lines.append(f"- {label(name)}: **{f[0]:.3f}** [{f[1]:.3f}, {f[2]:.3f}]{extra}{_seeds(r)}")
    return lines


def ranking_summary(ranking: dict[str, Any]) -> list[str]:
    """The evaluator's ranking per image size and criterion, with the test of each adjacent gap (every pair is tested,
    :func:`xrutils.evaluators.ranking.rank`).

    Sizes are never mixed (each has its own judge, classifier and encoder). A gap is called significant only when
    the test includes the training seeds' variance (several seeds per run) and survives Holm's correction; with one
    seed a gap says how large it is against evaluation noise, and no more."""
    lines: list[str] = []
    for size, per in sorted((ranking.get("by_size") or {}).items(), key=lambda kv: int(kv[0])):
        for criterion, title in RANKING_CRITERIA.items():
            r = per.get(criterion)
            if not isinstance(r, dict) or not r.get("order"):
                continue
            gaps = []
            for g in r.get("gaps", []):
                if g.get("variance", "").startswith("training seeds"):
                    verdict = "significant" if g.get("significant") else "not significant"
                    verdict += f", seeds and samples, Holm p = {g.get('p_holm', g['p_value']):.3g}"
                else:
                    verdict = "one training seed: evaluation noise only, no significance claim"
                gaps.append(
                    f"{label(g['better'])} > {label(g['worse'])}: gap {g['gap']:.3g} "
                    f"[{g['lo']:.3g}, {g['hi']:.3g}], p = {g['p_value']:.3g} ({verdict})"
                )
            lines += [
                "",
                f"Ranking at {size}x{size} by {title} ({'higher' if r.get('higher_is_better') else 'lower'} is "
                "better; every pair tested, Welch's t over the seeds where both runs have several, else a paired "
                "bootstrap; Holm over all pairs): " + " > ".join(label(n) for n in r["order"]),
            ]
            lines += [f"- {g}" for g in gaps]
    return lines


def metrics_summary(runs: dict[str, Any]) -> list[str]:
    """A table of the feature-space metrics of the last epoch (lower FD/KID is better), with sample counts."""
    lines = [
        "Feature-space metrics at the last epoch (lower FD and KID are better; n = samples used):",
        "",
        "| run | FD | KID | precision | recall | bits/dim | n fake / real |",
        "|---|---|---|---|---|---|---|",
    ]

    def fmt(v, spec=".3g"):
        return "–" if v is None else format(v, spec) if isinstance(v, (int, float)) else str(v)

    for name, r in runs.items():
        m = r.get("metrics") or {}
        if not m:
            continue
        kid = fmt(m.get("kid")) + (f" ± {fmt(m.get('kid_std'))}" if m.get("kid_std") is not None else "")
        lines.append(
            f"| {label(name)} | {fmt(m.get('fd'))} | {kid} | {fmt(m.get('precision'), '.2f')} | "
            f"{fmt(m.get('recall'), '.2f')} | {fmt(m.get('bpd'))} | {m.get('n_fake', '?')} / "
            f"{m.get('n_real', '?')} |"
        )
    return lines


def label_source(nih_root: str | Path | None, image_set: Any) -> str:
    """Where Figure 1's counts come from, in words (the figure and the index say it)."""
    if nih_root:
        return f"the full NIH ChestX-ray14 metadata (Data_Entry CSV and split lists in {nih_root})"
    return f"the phantom's labels ({image_set.root}; built-in synthetic X-rays, because no NIH root is set)"


def describe_data(cfg: RunConfig) -> str:
    d = cfg.data
    if d.source == "phantom":
        return f"phantom data (built-in synthetic X-rays, n={d.phantom_n}, seed={d.phantom_seed})"
    if d.source == "nih":
        return f"NIH ChestX-ray14 ({d.root or '$XRUTILS_NIH_ROOT'})"
    return f"ChestMNIST ({d.chestmnist_path})"


def short_source(cfg: RunConfig) -> str:
    return {"phantom": "phantom", "nih": "NIH ChestX-ray14", "chestmnist": "ChestMNIST"}[cfg.data.source]


def open_study(
    study: str, *, profile: str, fig_dir: str | Path, run_root: str | Path = "", **parameters: Any
) -> StudyContext:
    """The context of a study notebook; ``parameters`` are the notebook's parameters, kept for provenance."""
    if study not in STUDIES:
        raise ConfigError(f"unknown study {study!r}; expected one of {sorted(STUDIES)}")
    if profile not in PROFILE_NAMES:
        raise ConfigError(f"unknown profile {profile!r}; expected one of {list(PROFILE_NAMES)}")
    all_params = {
        "study": study,
        "profile": profile,
        **({"run_root": str(run_root)} if run_root else {}),
        "fig_dir": str(fig_dir),
        **parameters,
    }
    fig_dir = resolve_path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    return StudyContext(
        STUDIES[study], profile, resolve_path(run_root) if run_root else Path(), fig_dir, all_params
    )
