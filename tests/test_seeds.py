"""Training seeds and the common-size comparison: replicate runs (``<run>@seed<k>``) for the runs a conclusion rests
on, one run per family at one image size, the tests that include seed variance, and RESULTS.md's answer to the
closing question (xrutils.studies, xrutils.evaluators.ranking, xrutils.studies.results)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as sps

from xrutils import studies
from xrutils.config import ConfigError
from xrutils.evaluators import ranking, stats
from xrutils.profiles import SEEDS
from xrutils.studies import results as R

# ----------------------------------------------------------------------------------------------------------------
# run names and the runs each profile trains


def test_seed_replicates_are_named_run_at_seed_k_and_parse_back():
    assert studies.run_name("gan", "lr1e-5", 2) == "gan__lr1e-5@seed2"
    assert studies.run_name("gan", "lr1e-5") == "gan__lr1e-5"  # seed 0 keeps the thesis's name
    assert studies.split_run_name("ddpm__size32-deep@seed1") == ("ddpm", "size32-deep")
    assert studies.run_seed("ddpm__size32-deep@seed1") == 1 and studies.run_seed("gan__baseline") == 0
    assert studies.seed_replicate("vae__size32@seed2", 0) == "vae__size32"
    assert studies.label("gan__size32@seed2") == "GAN size 32 (training seed 2)"
    for bad in ("gan__baseline@seed", "gan__baseline@seed0", "gan__baseline@seedx"):
        with pytest.raises(ConfigError, match="@seed<k>"):
            studies.run_seed(bad)


@pytest.mark.parametrize("profile", ["thesis", "demo", "smoke"])
def test_the_common_size_runs_are_one_per_family_at_one_size(profile):
    runs = studies.common_size_runs(profile)
    assert [studies.split_run_name(r)[0] for r in runs] == ["gan", "vae", "pixelcnn", "ddpm"]
    for r in runs:
        family, preset = studies.split_run_name(r)
        cfg = studies.run_config(family, preset, profile)
        assert cfg.data.image_size == studies.COMMON_SIZE, r
    if profile == "thesis":
        assert runs == ["gan__size32", "vae__size32", "pixelcnn__size32", "ddpm__size32"]
    if profile == "demo":  # the demo halves the VAE's and PixelCNN's sizes
        assert runs == ["gan__size32", "vae__asrun", "pixelcnn__baseline", "ddpm__size32"]


@pytest.mark.parametrize("profile", ["thesis", "demo", "smoke"])
def test_the_runs_a_conclusion_rests_on_get_their_profiles_seeds(profile):
    n, scope = SEEDS[profile]
    seeded = studies.seeded_runs(profile)
    compare = studies.STUDIES["compare"]
    must = {*compare.curve_runs, *studies.common_size_runs(profile)}
    if scope == "claims":
        must |= {r for claims in R.CLAIMS.values() for c in claims for r in (c.better, c.worse)}
    assert set(seeded) == must and set(seeded.values()) == {n}
    if profile in ("thesis", "demo"):
        assert n >= 3  # the minimum for the thesis profile and the demo's compare runs
    runs = studies.all_runs(profile)
    for run in must:
        replicas = [studies.seed_replicate(run, k) for k in range(1, n)]
        assert set(replicas) <= set(runs)
        for k, rep in enumerate(replicas, start=1):
            p = studies.run_params(rep, profile)
            base = studies.run_params(run, profile)
            # the same configuration, another training seed, its own folder; only which checkpoints keep their
            # weights may differ (the runs of Supplementary Figure S1 keep all, their replicates do not)
            same = [{k: v for k, v in q["overrides"].items() if k != "train.keep_weights"} for q in (p, base)]
            assert p["seed"] == k and same[0] == same[1] and p["run_dir"].endswith(rep)
    own = {*compare.curve_runs, *studies.common_size_runs(profile)}
    assert set(studies.scored_runs(compare, profile)) == {
        studies.seed_replicate(r, k) for r in own for k in range(n)
    }
    if scope == "claims":  # every study scores its claims' seeds, so its verdicts can be given
        gan_lr = studies.scored_runs(studies.STUDIES["gan_lr"], profile)
        assert {"gan__lr1e-5@seed2", "gan__baseline@seed1"} <= set(gan_lr)


def test_the_compare_job_waits_for_every_seed_and_the_common_size_judge(tmp_path):
    from xrutils.studies.workflow import Workflow

    wf = Workflow(profile="demo", run_dir="runs/demo", fig_dir="figures/demo", stamp_dir=str(tmp_path))
    inputs = wf.study_inputs("compare")
    for run in ("pixelcnn__baseline@seed2", "vae__asrun@seed1", "gan__size32"):
        assert wf.run_output(run) in inputs
    assert "gan__size32@seed1" in wf.runs and "gan__lr1e-5@seed1" not in wf.runs  # demo: compare runs only


# ----------------------------------------------------------------------------------------------------------------
# tests that include seed variance


def test_welch_test_matches_scipy_and_needs_two_values_a_side():
    a, b = [0.61, 0.55, 0.70], [0.40, 0.47, 0.36, 0.44]
    w = stats.welch_test(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert w["p_value"] == pytest.approx(ref.pvalue) and w["gap"] == pytest.approx(np.mean(a) - np.mean(b))
    assert w["lo"] < w["gap"] < w["hi"]
    with pytest.raises(ValueError, match=">= 2"):
        stats.welch_test([0.5], b)


class _Run:
    """What rank() reads of a scored run: a name, a size and its final-epoch per-sample terms."""

    def __init__(self, name: str, level: float, rng: np.random.Generator):
        self.name, self.size = name, 32
        self.last_fake_terms = level + 0.05 * rng.standard_normal(200)
        self.last_real_terms = np.zeros(100)
        self.real_key, self.real_clusters = "real:32", None
        self.last_p_real = self.fake_features = None


def _groups(levels: dict[str, list[float]]) -> dict[str, list[_Run]]:
    rng = np.random.default_rng(0)
    return {
        g: [_Run(f"{g}@seed{k}" if k else g, v, rng) for k, v in enumerate(vals)]
        for g, vals in levels.items()
    }


def test_rank_tests_every_pair_with_seeds_and_calls_significant_only_what_survives_holm():
    # three seeds each; ddpm's seeds agree, gan's and vae's seeds overlap each other
    groups = _groups({"ddpm": [3.0, 3.1, 2.9], "gan": [1.0, 1.4, 0.7], "vae": [0.9, 1.0, 0.8]})
    r = ranking.rank(groups, "judge", n_boot=50, real_features={})
    assert r["order"] == ["ddpm", "gan", "vae"] and len(r["pairs"]) == 3  # every pair, not only neighbours
    assert [(g["better"], g["worse"]) for g in r["gaps"]] == [("ddpm", "gan"), ("gan", "vae")]
    by = {(p["better"], p["worse"]): p for p in r["pairs"]}
    assert all(
        p["test"].startswith("Welch") and p["variance"].startswith("training seeds") for p in by.values()
    )
    assert by[("ddpm", "vae")]["significant"] and not by[("gan", "vae")]["significant"]
    assert (
        all(p["p_value"] <= p["p_holm"] for p in by.values()) and "Holm over the 3 pairs" == r["correction"]
    )
    assert r["n_seeds"] == {"ddpm": 3, "gan": 3, "vae": 3} and len(r["seed_values"]["gan"]) == 3


def test_with_one_seed_a_gap_is_never_significant_however_large():
    groups = _groups({"ddpm": [5.0], "gan": [0.0, 0.1, -0.1]})
    (pair,) = ranking.rank(groups, "judge", n_boot=50, real_features={})["pairs"]
    assert pair["test"] == "paired bootstrap" and pair["variance"] == "evaluation samples only"
    assert pair["p_value"] < 0.05 and not pair["significant"]


# ----------------------------------------------------------------------------------------------------------------
# RESULTS.md: the ranking of the four families


def _compare_results(pairs: list[dict], *, seeds: int = 3) -> dict:
    runs = ["gan__size32", "vae__asrun", "pixelcnn__baseline", "ddpm__size32"]
    rank = {
        "higher_is_better": True,
        "order": ["ddpm__size32", "gan__size32", "vae__asrun", "pixelcnn__baseline"],
        "values": dict.fromkeys(runs, 0.5),
        "pairs": pairs,
    }
    return {
        "runs": {},
        "groups": {r: {"runs": [r], "n_seeds": seeds} for r in runs},
        "common_size": {"size": 32, "runs": runs},
        "ranking": {"by_size": {"32": {"judge": rank}}},
    }


def _pair(better: str, worse: str, *, significant: bool, seeds: bool = True) -> dict:
    return {
        "better": better,
        "worse": worse,
        "gap": 0.3,
        "lo": 0.1,
        "hi": 0.5,
        "p_value": 0.01,
        "p_holm": 0.03 if significant else 0.2,
        "significant": significant,
        "test": "Welch t over the training seeds' values" if seeds else "paired bootstrap",
        "variance": "training seeds and evaluation samples" if seeds else "evaluation samples only",
    }


def test_the_family_ranking_verdicts_follow_the_seeded_tests():
    res = _compare_results(
        [
            _pair("ddpm__size32", "gan__size32", significant=True),  # the thesis's order, significant
            _pair("vae__asrun", "gan__size32", significant=True),  # the other way, significant
            _pair("vae__asrun", "pixelcnn__baseline", significant=False),
        ]
    )
    rows = {(r["criterion"], r["better"], r["worse"]): r for r in R.family_pairs(res)}
    assert rows[("judge", "ddpm", "gan")]["verdict"] == "agrees"
    assert rows[("judge", "gan", "vae")]["verdict"] == "disagrees"
    assert rows[("judge", "vae", "pixelcnn")]["verdict"] == "inconclusive at this scale"
    assert rows[("fd", "ddpm", "gan")]["verdict"] == "not measured"
    one_seed = _compare_results(
        [_pair("ddpm__size32", "gan__size32", significant=False, seeds=False)], seeds=1
    )
    row = R.family_pairs(one_seed)[0]
    assert row["verdict"] == "inconclusive at this scale" and "one training seed" in row["why"]
    text = "\n".join(R.family_ranking_lines(res))
    assert "The four families at 32²" in text and "training seeds 3/3/3/3" in text
    assert "| ddpm > gan | discriminator judge |" in text and "**agrees**" in text


def test_results_md_answers_the_closing_question_with_the_common_size_ranking(tmp_path):
    import json

    res = _compare_results([_pair("ddpm__size32", "gan__size32", significant=True)])
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "compare_corrected.json").write_text(json.dumps(res))
    text = R.results_text(tmp_path, "demo")
    section = text.split("## compare")[1]
    assert "The four families at 32²" in section
    assert "ddpm__size32 better than gan__size32 by 0.3 [0.1, 0.5]" in section
    assert "agrees 1" in text.split("\n\n")[2]  # counted with the other verdicts
