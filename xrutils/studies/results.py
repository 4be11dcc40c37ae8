"""RESULTS.md: each thesis question next to this build's answer, from the studies' saved evaluation results.

For every study the thesis's claim (``Study.claim``) is quoted, and each comparison the claim makes is checked
against the numbers the study notebook wrote (``<fig_dir>/results/<study>_corrected.json``): the final-epoch score of
the two runs under the criterion the thesis used (the discriminator judge, or the classifier for Figure 37), with
intervals. The verdict:

* **agrees** / **disagrees**: the runs' seed intervals (>= 2 training seeds each, Student t over the seeds) do not
  overlap, and the order is the claimed one / the other one; for a claim of "about the same", agrees when they
  overlap and both runs have seeds, disagrees when they do not;
* **inconclusive at this scale**: everything else, saying why: one training seed (evaluation noise only, however
  far apart the numbers), or intervals that overlap.

Runs of different image sizes meet different judges, so a claim across sizes gets no verdict ("not comparable").
Claims about single curves or pictures (the epochs studies, the dataset and architecture figures) are quoted with
the numbers behind them and no verdict. Nothing here is hand-written per build: the text is made from the numbers.

The closing question, the ranking of the four families, is answered at one image size (the compare study's
common-size runs, Supplementary Figure S3) by the evaluator's pairwise tests (:func:`xrutils.evaluators.ranking.rank`):
each pair of families the thesis ordered (DDPM > GAN > VAE > PixelCNN) **agrees** or **disagrees** only when its
test includes the training seeds (Welch's t over the seeds) and survives Holm's correction over all pairs; else it is
inconclusive at this scale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class Claim:
    """One comparison a thesis conclusion makes: ``better`` scores higher than ``worse`` (``relation`` ">"), or the
    two score about the same ("~"), under ``criterion`` at the final epoch."""

    better: str
    worse: str
    relation: Literal[">", "~"] = ">"
    criterion: Literal["judge", "classifier"] = "judge"


# the comparisons each study's conclusion makes (the claim's text is in studies.table.STUDIES[study].claim)
CLAIMS: dict[str, tuple[Claim, ...]] = {
    "gan_lr": (Claim("gan__baseline", "gan__lr1e-5"), Claim("gan__baseline", "gan__lr1e-3")),
    "gan_size": (Claim("gan__baseline", "gan__size32"),),
    "gan_hidden": (Claim("gan__hidden32", "gan__baseline", "~"),),
    "vae_lr": (Claim("vae__baseline", "vae__lr1e-5", "~"), Claim("vae__baseline", "vae__lr1e-6", "~")),
    "vae_size": (Claim("vae__size32", "vae__size64"),),
    "vae_hidden": (Claim("vae__hidden500", "vae__baseline"),),
    "pixelcnn_lr": (Claim("pixelcnn__baseline", "pixelcnn__lr5e-4"),),
    "pixelcnn_size": (Claim("pixelcnn__size128", "pixelcnn__baseline"),),
    "ddpm_lr": (Claim("ddpm__lr5e-4", "ddpm__baseline", "~"),),
    "ddpm_size": (Claim("ddpm__size32", "ddpm__baseline"),),
    "compare": (
        Claim("ddpm__size32", "gan__baseline"),
        Claim("ddpm__size32", "pixelcnn__baseline"),
        Claim("vae__size32", "ddpm__size32", criterion="classifier"),
        Claim("gan__baseline", "ddpm__size32", criterion="classifier"),
    ),
}

# the thesis's closing ranking, by eye (§3.7): DDPM > GAN > VAE > PixelCNN
FAMILY_ORDER = ("ddpm", "gan", "vae", "pixelcnn")
RANKING_CRITERIA = {
    "judge": "discriminator judge",
    "classifier": "classifier score",
    "fd": "Fréchet distance (X-ray encoder)",
}

CRITERION_TEXT = {
    "judge": "discriminator judge's score (BCE of real + fake terms; higher = fooled more)",
    "classifier": "classifier score (mean P(real) of the samples)",
}


def _final(run: dict[str, Any], group: dict[str, Any] | None, criterion: str) -> dict[str, Any] | None:
    curve = run.get(criterion) or {}
    if not curve.get("score"):
        return None
    out = {
        "score": curve["score"][-1],
        "lo": (curve.get("lo") or curve["score"])[-1],
        "hi": (curve.get("hi") or curve["score"])[-1],
        "epoch": curve["epochs"][-1],
        "size": run.get("image_size"),
        "n_seeds": (group or {}).get("n_seeds", 1),
        "n_fake": curve.get("n_fake", curve.get("n")),
        "n_real": curve.get("n_real"),
        "judge_auc": (curve.get("auc") or [None])[-1],  # the judge's own real-vs-fake AUC on these samples
    }
    seeds = (group or {}).get(criterion)
    if out["n_seeds"] > 1 and seeds and seeds.get("mean"):
        out.update(seed_mean=seeds["mean"][-1], seed_lo=seeds["lo"][-1], seed_hi=seeds["hi"][-1])
    return out


def _group_of(results: dict[str, Any], run: str) -> dict[str, Any] | None:
    for g in (results.get("groups") or {}).values():
        if run in g.get("runs", []):
            return g
    return None


def check(claim: Claim, results: dict[str, Any]) -> dict[str, Any]:
    """The build's answer to one claim: both runs' final scores, and the verdict (module docstring)."""
    runs = results.get("runs") or {}
    a, b = (
        _final(runs.get(r) or {}, _group_of(results, r), claim.criterion) if r in runs else None
        for r in (claim.better, claim.worse)
    )
    base = {"claim": claim, "a": a, "b": b}
    if a is None or b is None:
        missing = claim.better if a is None else claim.worse
        return {
            **base,
            "verdict": "not measured",
            "why": f"{missing} has no {claim.criterion} score in this build",
        }
    if a["size"] != b["size"]:
        return {
            **base,
            "verdict": "not comparable",
            "why": f"{a['size']}² against {b['size']}²: different judges, no comparison across image sizes",
        }
    same_way = a["score"] > b["score"] if claim.relation == ">" else None
    if "seed_mean" not in a or "seed_mean" not in b:
        seeds = min(a["n_seeds"], b["n_seeds"])
        if same_way is None:
            overlap = a["lo"] <= b["hi"] and b["lo"] <= a["hi"]
            way = f" (evaluation intervals {'overlap' if overlap else 'apart'})"
        else:
            way = " (points the claimed way)" if same_way else " (points the other way)"
        return {
            **base,
            "verdict": "inconclusive at this scale",
            "why": f"{seeds} training seed{'s' if seeds != 1 else ''}: evaluation noise only{way}"
            + _saturated(claim.criterion, a, b),
        }
    apart = a["seed_lo"] > b["seed_hi"] or b["seed_lo"] > a["seed_hi"]
    if claim.relation == "~":
        verdict = "disagrees" if apart else "agrees"
        why = "seed intervals " + ("apart" if apart else "overlap")
    elif not apart:
        verdict, why = "inconclusive at this scale", "seed intervals overlap"
    else:
        verdict = "agrees" if a["seed_mean"] > b["seed_mean"] else "disagrees"
        why = "seed intervals apart"
    return {**base, "verdict": verdict, "why": why + _saturated(claim.criterion, a, b)}


SATURATED_AUC = 0.99  # a judge this sure of both runs' samples ranks them by how confidently it rejects them


def _saturated(criterion: str, *finals: dict[str, Any] | None) -> str:
    """A caveat when the discriminator judge tells every compared run's samples from real images almost always."""
    aucs = [(f or {}).get("judge_auc") for f in finals]
    if criterion != "judge" or any(a is None or a < SATURATED_AUC for a in aucs):
        return ""
    return (
        f"; the judge tells both from real images almost always (its AUC >= {SATURATED_AUC}), so the gap is in "
        "how confidently it rejects them"
    )


def family_pairs(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The thesis's ordered family pairs (DDPM > GAN, GAN > VAE, VAE > PixelCNN), each checked against the
    pairwise test of every criterion at the common image size: ``{criterion, better, worse, pair, verdict, why}``."""
    from xrutils.studies.table import split_run_name

    common = results.get("common_size") or {}
    ranking = ((results.get("ranking") or {}).get("by_size") or {}).get(str(common.get("size"))) or {}
    family = {r: split_run_name(r)[0] for r in common.get("runs", [])}
    out = []
    for crit in RANKING_CRITERIA:
        r = ranking.get(crit)
        for a, b in zip(FAMILY_ORDER, FAMILY_ORDER[1:], strict=False):
            row: dict[str, Any] = {"criterion": crit, "better": a, "worse": b, "pair": None}
            pair = next(
                (
                    p
                    for p in (r or {}).get("pairs", [])
                    if {family.get(p["better"]), family.get(p["worse"])} == {a, b}
                ),
                None,
            )
            if pair is None:
                out.append({**row, "verdict": "not measured", "why": f"no {crit} test of {a} against {b}"})
                continue
            claimed = family.get(pair["better"]) == a
            if not pair["variance"].startswith("training seeds"):
                verdict = "inconclusive at this scale"
                why = "one training seed: evaluation noise only" + (
                    " (points the claimed way)" if claimed else " (points the other way)"
                )
            elif not pair["significant"]:
                verdict, why = (
                    "inconclusive at this scale",
                    f"not significant (Holm p = {pair['p_holm']:.2g})",
                )
            else:
                verdict = "agrees" if claimed else "disagrees"
                why = f"significant with seeds (Holm p = {pair['p_holm']:.2g})"
            runs = results.get("runs") or {}
            finals = [
                {"judge_auc": ((runs.get(pair[k]) or {}).get("judge") or {}).get("auc", [None])[-1]}
                for k in ("better", "worse")
            ]
            out.append({**row, "pair": pair, "verdict": verdict, "why": why + _saturated(crit, *finals)})
    return out


def family_ranking_lines(results: dict[str, Any]) -> list[str]:
    """RESULTS.md's answer to the closing question: the families' order at the common size per criterion, and
    the thesis's ordered pairs with their tests."""
    common = results.get("common_size") or {}
    size = common.get("size")
    ranking = ((results.get("ranking") or {}).get("by_size") or {}).get(str(size)) or {}
    if not ranking:
        return ["*The four families at one size:* not scored in this build.", ""]
    groups = results.get("groups") or {}
    seeds = "/".join(str(groups.get(r, {}).get("n_seeds", 1)) for r in common.get("runs", []))
    lines = [
        f"*The four families at {size}² (one judge, one classifier, one feature encoder; "
        f"runs {', '.join(common.get('runs', []))}; training seeds {seeds}):*",
        "",
    ]
    for crit, title in RANKING_CRITERIA.items():
        r = ranking.get(crit)
        if r:
            vals = r["values"]
            order = ", ".join(f"{g} ({vals[g]:.3g})" for g in r["order"])
            lines.append(
                f"- {title} ({'higher' if r['higher_is_better'] else 'lower'} is better), best first: {order}"
            )
    lines += [
        "",
        "| thesis says | criterion | this build (gap, 95% interval, test) | verdict |",
        "|---|---|---|---|",
    ]
    for row in family_pairs(results):
        p = row["pair"]
        got = (
            f"{p['better']} better than {p['worse']} by {p['gap']:.3g} [{p['lo']:.3g}, {p['hi']:.3g}], "
            f"{p['test']}, p = {p['p_value']:.2g}"
            if p
            else "—"
        )
        lines.append(
            f"| {row['better']} > {row['worse']} | {RANKING_CRITERIA[row['criterion']]} | {got} | "
            f"**{row['verdict']}**: {row['why']} |"
        )
    return [*lines, ""]


def _fmt(x: dict[str, Any]) -> str:
    if "seed_mean" in x:
        return f"{x['seed_mean']:.3g} [{x['seed_lo']:.3g}, {x['seed_hi']:.3g}] over {x['n_seeds']} seeds"
    return f"{x['score']:.3g} [{x['lo']:.3g}, {x['hi']:.3g}]"


def _scale(results: dict[str, Any], checked: list[dict[str, Any]]) -> str:
    runs = list((results.get("runs") or {}).values())
    profile = runs[0].get("profile", "?") if runs else "?"
    seeds = sorted({g.get("n_seeds", 1) for g in (results.get("groups") or {}).values()}) or [1]
    finals = [x for c in checked for x in (c["a"], c["b"]) if x]
    n_fake = sorted({x["n_fake"] for x in finals if x.get("n_fake")})
    n_real = sorted({x["n_real"] for x in finals if x.get("n_real")})
    parts = [f"profile {profile}", f"training seeds per run: {'/'.join(map(str, seeds))}"]
    if n_fake:
        parts.append(f"{'/'.join(map(str, n_fake))} samples per score")
    if n_real:
        parts.append(f"{'/'.join(map(str, n_real))} held-out real images")
    return "; ".join(parts)


def study_section(name: str, claim_text: str, question: str, results: dict[str, Any] | None) -> list[str]:
    lines = [f"## {name}", "", f"*Question:* {question}", "", f"*The thesis:* {claim_text}", ""]
    claims = CLAIMS.get(name, ())
    if results is None:
        return [*lines, "*This build:* no evaluation results (the study draws no scored curves).", ""]
    if not claims:
        return [
            *lines,
            "*This build:* a claim about single curves or pictures, not a comparison: see the figures.",
            "",
        ]
    checked = [check(c, results) for c in claims]
    lines += ["| thesis says | this build (final epoch, 95% intervals) | verdict |", "|---|---|---|"]
    for c in checked:
        cl = c["claim"]
        said = f"{cl.better} {'>' if cl.relation == '>' else '≈'} {cl.worse} ({cl.criterion})"
        if c["a"] and c["b"]:
            got = f"{cl.better} {_fmt(c['a'])}; {cl.worse} {_fmt(c['b'])}"
        else:
            got = "—"
        lines.append(f"| {said} | {got} | **{c['verdict']}**: {c['why']} |")
    lines += ["", f"*Scale:* {_scale(results, checked)}.", ""]
    if results.get("common_size"):
        lines += family_ranking_lines(results)
    return lines


def verdict_counts(fig_dir: str | Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in CLAIMS:
        path = Path(fig_dir) / "results" / f"{name}_corrected.json"
        if path.exists():
            res = json.loads(path.read_text())
            verdicts = [check(c, res)["verdict"] for c in CLAIMS[name]]
            verdicts += [row["verdict"] for row in family_pairs(res)] if res.get("common_size") else []
            for v in verdicts:
                counts[v] = counts.get(v, 0) + 1
    downstream = Path(fig_dir) / "results" / "downstream.json"
    if downstream.exists():
        v = json.loads(downstream.read_text())["verdict"]["verdict"]
        counts[v] = counts.get(v, 0) + 1
    return counts


def results_text(fig_dir: str | Path, profile: str) -> str:
    """The whole RESULTS.md of one build."""
    from xrutils.studies.table import STUDIES

    fig_dir = Path(fig_dir)
    counts = verdict_counts(fig_dir)
    lines = [
        f"# Results: the thesis's questions and this build's answers ({profile} profile)",
        "",
        "Generated by `python -m xrutils.figures index` from the studies' evaluation results "
        "(`results/<study>_corrected.json`); see `xrutils/studies/results.py` for how a verdict is reached. "
        f"Scores: the {CRITERION_TEXT['judge']}, or the {CRITERION_TEXT['classifier']}. A verdict needs at least "
        "two training seeds per run; with one seed the intervals cover evaluation noise only and the verdict is "
        "inconclusive, whichever way the numbers point.",
        "",
        "Verdicts: " + (", ".join(f"{v} {n}" for v, n in sorted(counts.items())) or "none") + ".",
        "",
    ]
    for name, study in STUDIES.items():
        path = fig_dir / "results" / f"{name}_corrected.json"
        res = json.loads(path.read_text()) if path.exists() else None
        lines += study_section(name, study.claim, study.question, res)
    from xrutils.studies.downstream import results_lines

    lines += results_lines(fig_dir) or [
        "## Downstream: which family's images are most useful as training data?",
        "",
        "*This build:* not run (`make downstream`).",
        "",
    ]
    return "\n".join(lines)


def write_results(fig_dir: str | Path, profile: str) -> Path:
    from xrutils.atomic import atomic_write_text

    out = Path(fig_dir) / "RESULTS.md"
    atomic_write_text(out, results_text(fig_dir, profile))
    return out
