"""RESULTS.md (xrutils.studies.results): the verdict of each thesis comparison follows from the numbers, needs
training seeds, and is never given across image sizes."""

from __future__ import annotations

import json

from xrutils.studies import results as R


def _run(score: float, half: float = 0.02, size: int = 64) -> dict:
    return {
        "image_size": size,
        "profile": "demo",
        "judge": {
            "epochs": [1, 5],
            "score": [0.1, score],
            "lo": [0.0, score - half],
            "hi": [0.2, score + half],
            "n_fake": 128,
            "n_real": 120,
        },
    }


def _results(a: dict, b: dict, seeds: dict | None = None) -> dict:
    groups = {}
    for name in ("a", "b"):
        s = (seeds or {}).get(name)
        groups[name] = {"runs": [name], "n_seeds": 1}
        if s is not None:
            groups[name] = {
                "runs": [name],
                "n_seeds": 3,
                "judge": {"epochs": [5], "mean": [s[0]], "lo": [s[1]], "hi": [s[2]]},
            }
    return {"runs": {"a": a, "b": b}, "groups": groups}


def test_verdicts_need_seeds_and_follow_the_seed_intervals():
    better = R.Claim("a", "b")
    one_seed = R.check(better, _results(_run(0.9), _run(0.1)))
    assert one_seed["verdict"] == "inconclusive at this scale"  # however far apart: evaluation noise only
    assert "1 training seed" in one_seed["why"] and "claimed way" in one_seed["why"]
    other_way = R.check(better, _results(_run(0.1), _run(0.9)))
    assert "other way" in other_way["why"]
    apart = {"a": (0.8, 0.7, 0.9), "b": (0.3, 0.2, 0.4)}
    assert R.check(better, _results(_run(0.8), _run(0.3), apart))["verdict"] == "agrees"
    assert R.check(R.Claim("b", "a"), _results(_run(0.8), _run(0.3), apart))["verdict"] == "disagrees"
    overlap = {"a": (0.5, 0.3, 0.7), "b": (0.45, 0.25, 0.65)}
    assert (
        R.check(better, _results(_run(0.5), _run(0.45), overlap))["verdict"] == "inconclusive at this scale"
    )
    same = R.Claim("a", "b", "~")
    assert R.check(same, _results(_run(0.5), _run(0.45), overlap))["verdict"] == "agrees"
    assert R.check(same, _results(_run(0.8), _run(0.3), apart))["verdict"] == "disagrees"


def test_no_verdict_across_image_sizes_or_without_scores():
    across = R.check(R.Claim("a", "b"), _results(_run(0.9, size=32), _run(0.1, size=64)))
    assert across["verdict"] == "not comparable" and "32² against 64²" in across["why"]
    missing = R.check(R.Claim("a", "c"), _results(_run(0.9), _run(0.1)))
    assert missing["verdict"] == "not measured"


def test_results_md_quotes_the_thesis_and_gives_the_numbers(tmp_path):
    res = _results(_run(0.63), _run(0.24))
    res["runs"] = {
        "gan__baseline": res["runs"]["a"],
        "gan__lr1e-5": res["runs"]["b"],
        "gan__lr1e-3": _run(0.2),
    }
    res["groups"] = {}
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "gan_lr_corrected.json").write_text(json.dumps(res))
    text = R.results_text(tmp_path, "demo")
    assert "## gan_lr" in text and "The baseline (lr 1e-4) outperforms both" in text
    assert "gan__baseline 0.63 [0.61, 0.65]; gan__lr1e-5 0.24 [0.22, 0.26]" in text
    assert "Verdicts: inconclusive at this scale 2." in text
    assert "## compare" in text and "no evaluation results" in text
    assert set(R.CLAIMS) <= set(__import__("xrutils.studies", fromlist=["STUDIES"]).STUDIES)
    # every claimed run is a run of its study
    from xrutils.studies import STUDIES

    for study, claims in R.CLAIMS.items():
        for c in claims:
            assert {c.better, c.worse} <= set(STUDIES[study].curve_runs), (study, c)


def test_a_saturated_judge_is_named_next_to_its_verdict():
    a, b = _run(0.217), _run(0.212)
    a["judge"]["auc"], b["judge"]["auc"] = [0.9, 1.0], [0.95, 0.995]
    seeds = {"a": (0.217, 0.216, 0.218), "b": (0.212, 0.2119, 0.2121)}
    checked = R.check(R.Claim("a", "b"), _results(a, b, seeds))
    assert checked["verdict"] == "agrees" and "how confidently it rejects them" in checked["why"]
    b["judge"]["auc"] = [0.9, 0.8]  # a judge that can still be fooled: no caveat
    assert "confidently" not in R.check(R.Claim("a", "b"), _results(a, b, seeds))["why"]
