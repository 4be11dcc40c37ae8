"""The study table, figure provenance and index, plotting from run folders, the explorer's logic, make support.

Fast: no training. Run folders are built by hand (config.json, history.csv, sample grids) the way the training loop
writes them. The notebooks themselves run end to end in tests/test_notebooks.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from xrutils import build_config, explorer, figures, plotting, registry, studies  # noqa: E402
from xrutils.config import ConfigError  # noqa: E402
from xrutils.runs import RunDir  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------------------------
# the study table


def test_every_thesis_figure_belongs_to_exactly_one_study():
    assert sorted(studies.FIGURES) == list(range(1, 38))
    owners: dict[int, str] = {}
    for name, study in studies.STUDIES.items():
        for n in study.figures:
            assert n not in owners, f"Figure {n} claimed by {owners.get(n)} and {name}"
            owners[n] = name
            assert studies.FIGURES[n].study == name
    assert sorted(owners) == list(range(1, 38))


def test_every_figure_has_a_plotting_function_and_a_caption():
    assert plotting.figure_numbers() == list(range(1, 38))
    for spec in studies.FIGURES.values():
        assert len(spec.caption) > 20
        assert re.fullmatch(r"[a-z0-9_\-]+", spec.slug)
    assert len({s.stem for s in studies.FIGURES.values()}) == 37


def test_runs_of_the_table_exist_as_presets():
    runs = studies.all_runs()
    assert len(runs) == len(set(runs))
    configs = [r for r in runs if not studies.run_seed(r)]
    # the thesis's 25, the demo's faithful GAN and its 16² judge, and the common-size runs the thesis has none of
    # (the thesis's pixelcnn__size32 is one of its 25; the demo's 32² VAE is the original code's 64² baseline)
    assert len(configs) == 28 and "vae__asrun" in configs
    assert set(studies.all_runs("thesis")) == set(runs) - {"gan__faithful", "gan__size16", "vae__asrun"} - {
        studies.seed_replicate("vae__asrun", k) for k in (1, 2)
    }
    for run in runs:
        family, preset = studies.split_run_name(run)
        assert preset in registry.get(family).presets, run
        assert studies.seed_replicate(run, 0) in studies.LABELS
    for spec in studies.FIGURES.values():
        for run in spec.runs:
            assert run in runs, (spec.number, run)


def test_failure_and_comparison_runs_are_the_ones_the_brief_names():
    # the failure run first, then the working run its verdict is measured against
    assert studies.FIGURES[8].runs == ("gan__lr1e-3-asrun", "gan__lr1e-3")
    assert studies.FIGURES[32].runs == ("ddpm__size32-deep", "ddpm__size32")
    assert set(studies.STUDIES["compare"].runs) == {
        "gan__baseline",
        "vae__size32",
        "pixelcnn__baseline",
        "ddpm__size32",
    }
    assert "gan__baseline" in studies.FIGURES[35].runs  # the GAN is added to Figure 35 (noted)
    assert "GAN" in studies.FIGURES[35].note


def _size(run: str, profile: str) -> int:
    p = studies.read_params(REPO / "params" / profile / f"{run}.yaml")
    return build_config(p["family"], p["preset"], profile, p.get("overrides") or {}).data.image_size


@pytest.mark.parametrize("profile", ["smoke", "demo", "thesis"])
def test_judges_are_the_gan_runs_of_the_same_image_size(profile):
    for study in studies.STUDIES.values():
        judges = studies.judge_runs_for(study, profile)
        assert sorted(_size(j, profile) for j in judges) == sorted(
            {_size(r, profile) for r in study.curve_runs}
        )
        assert all(j in ("gan__size16", "gan__baseline", "gan__size32", "gan__size128") for j in judges)
    assert "gan__size32" in studies.judge_runs_for(studies.STUDIES["compare"], profile)
    # the demo halves the VAE and PixelCNN sizes: its compare study's 32² VAE is 16² and needs the 16² judge
    assert ("gan__size16" in studies.judge_runs_for(studies.STUDIES["compare"], profile)) == (
        profile == "demo"
    )


def test_bad_run_names_and_params_fail_clearly(tmp_path):
    with pytest.raises(ConfigError, match="<family>__<preset>"):
        studies.split_run_name("gan_baseline")
    bad = tmp_path / "x.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        studies.read_params(bad)
    with pytest.raises(ConfigError, match="neither a run"):
        studies.params_notebook(tmp_path / "nonsense.yaml")
    with pytest.raises(FileNotFoundError, match="nih_root"):
        studies.data_overrides(tmp_path / "missing")
    assert studies.data_overrides("") == {}
    with pytest.raises(ConfigError, match="unknown study"):
        studies.open_study("gan_nothing", profile="smoke", fig_dir=tmp_path)


def test_params_files_exist_for_every_run_and_study_in_every_profile():
    for profile in ("smoke", "demo", "thesis"):
        folder = REPO / "params" / profile
        names = {p.stem for p in folder.glob("*.yaml")}
        assert set(studies.all_runs(profile)) <= names, sorted(set(studies.all_runs(profile)) - names)
        assert set(studies.STUDIES) <= names
        # no leftovers: a params file the build does not read (a dropped seed replicate) would mislead
        assert names == set(studies.all_runs(profile)) | set(studies.STUDIES), profile
        for path in folder.glob("*.yaml"):
            p = studies.read_params(path)
            assert p.get("profile") == profile, path
            if "__" in path.stem:
                family, preset = studies.split_run_name(path.stem)
                assert (p["family"], p["preset"]) == (family, preset), path
                assert p["seed"] == studies.run_seed(path.stem), path
                build_config(p["family"], p["preset"], profile, p.get("overrides") or {})  # valid config


def test_run_params_files_show_every_value_their_preset_and_profile_set():
    """A run's settings are read and edited in its params file: the file lists them (overrides), resolves to the
    same config as its preset and profile, and is what `python -m xrutils.studies params` writes (not stale)."""
    for profile in ("smoke", "demo", "thesis"):
        for run in studies.all_runs(profile):
            path = REPO / "params" / profile / f"{run}.yaml"
            p = studies.read_params(path)
            assert p == studies.run_params(run, profile), (
                f"{path} is stale: python -m xrutils.studies params --force"
            )
            # the preset under the profile, and what the profile keeps of the run's checkpoints
            keep = {"train.keep_weights": studies.keep_weights(run, profile)}
            assert build_config(p["family"], p["preset"], profile, p["overrides"]) == build_config(
                p["family"], p["preset"], profile, keep
            ), path
            assert {"train.lr", "train.epochs", "train.batch_size", "data.image_size"} <= set(
                p["overrides"]
            ), path
            assert not {"data.source", "data.root"} & set(
                p["overrides"]
            )  # the NIH root decides those at run time
    demo = studies.read_params(REPO / "params" / "demo" / "gan__lr1e-5.yaml")["overrides"]
    assert (
        demo["train.lr"] == 1e-4 and demo["train.epochs"] == 25
    )  # the demo's x10 lr, visible where it is set
    thesis = studies.read_params(REPO / "params" / "thesis" / "gan__lr1e-5.yaml")["overrides"]
    assert thesis["train.lr"] == 1e-5


def test_write_params_keeps_edited_files(tmp_path):
    written = studies.write_params(["smoke"], root=tmp_path)
    assert len(written) == len(studies.all_runs("smoke")) + len(studies.STUDIES)
    edited = tmp_path / "params" / "smoke" / "gan_lr.yaml"
    edited.write_text(edited.read_text().replace("corrected", "original"))
    assert studies.write_params(["smoke"], root=tmp_path) == []
    assert "original" in edited.read_text()
    studies.write_params(["smoke"], root=tmp_path, force=True)
    assert "original" not in edited.read_text()


# ----------------------------------------------------------------------------------------------------------------
# summaries


def _curve(scores, width=0.1):
    return {
        "epochs": list(range(1, len(scores) + 1)),
        "score": scores,
        "lo": [s - width for s in scores],
        "hi": [s + width for s in scores],
    }


def test_summary_names_the_best_run_and_whether_the_gap_is_clear():
    runs = {
        "gan__baseline": {"judge": _curve([1.0, 2.0]), "judge_size": 64},
        "gan__lr1e-5": {"judge": _curve([1.0, 1.5]), "judge_size": 64},
    }
    text = "\n".join(studies.judge_summary(runs))
    assert "Best: **GAN baseline" in text and "lies above" in text and "one training seed" in text
    assert "clearly" not in text and "significant" not in text  # one seed: no such claim (issue 10)
    runs["gan__lr1e-5"]["judge"] = _curve([1.0, 1.95])
    assert "overlaps" in "\n".join(studies.judge_summary(runs))
    runs["gan__size32"] = {"judge": _curve([1.0, 1.0]), "judge_size": 32}  # another judge: never compared
    runs["gan__lr1e-5"]["judge_size"] = 32
    assert "Best:" not in "\n".join(
        studies.judge_summary({k: runs[k] for k in ("gan__baseline", "gan__size32")})
    )
    assert studies.judge_summary({}) == ["No judge scores were computed."]


# ----------------------------------------------------------------------------------------------------------------
# hand-made run folders (what train() writes), and plotting from them


def _fake_run(root: Path, run: str, profile: str = "smoke", epochs: int = 3) -> Path:
    family, preset = studies.split_run_name(run)
    cfg = build_config(family, preset, profile)
    rd = RunDir(root / run).create()
    rd.write_config(cfg)
    rows = []
    s = cfg.data.image_size
    for e in range(1, epochs + 1):
        grid = (np.random.default_rng(e).random((2 * s + 6, 2 * s + 6)) * 255).astype(np.uint8)
        Image.fromarray(grid).save(rd.sample_path(e))
        torch.save({"epoch": e}, rd.checkpoint_path(e))
        rows.append({"epoch": e, "step": e * 2, "loss": 1.0 / e, "loss_d": 0.5 / e, "lr": 1e-4})
    rd.write_history(rows)
    return rd.path


@pytest.fixture()
def study_ctx(tmp_path):
    runs = tmp_path / "runs"
    for run in ("gan__baseline", "gan__lr1e-5", "gan__lr1e-3"):
        _fake_run(runs, run)
    ctx = studies.open_study(
        "gan_lr", profile="smoke", run_root=runs, fig_dir=tmp_path / "figs", protocol="corrected"
    )
    ctx.results = {
        "protocol": "corrected",
        "judges": {"64": {"run_dir": str(runs / "gan__baseline")}},
        "runs": {
            r: {"judge": _curve([1.0, 1.4, 1.2 + i]), "judge_size": 64, "image_size": 64}
            for i, r in enumerate(("gan__baseline", "gan__lr1e-5", "gan__lr1e-3"))
        },
    }
    return ctx


def test_curve_figure_saves_png_pdf_index_and_provenance(study_ctx):
    fig = plotting.fig_09(study_ctx)
    plt.close(fig)
    png = study_ctx.fig_dir / "fig_09_gan_lr_curves.png"
    assert png.exists() and (study_ctx.fig_dir / "fig_09_gan_lr_curves.pdf").exists()
    entry = json.loads((study_ctx.fig_dir / "index" / "fig_09_gan_lr_curves.json").read_text())
    prov = figures.read_provenance(png)
    assert prov == json.loads(json.dumps(entry, sort_keys=True, default=str))
    assert entry["number"] == 9 and entry["caption"].startswith("Discriminator loss after")
    assert entry["notebook"] == "notebooks/gan_lr.ipynb"
    assert entry["parameters"]["protocol"] == "corrected"
    assert entry["data_source"].startswith("phantom")
    roles = {r["role"] for r in entry["runs"]}
    assert "scored" in roles and any(r.startswith("judge") for r in roles)
    assert entry["commit"]
    with Image.open(png) as im:
        assert im.text["Title"] == "Thesis Figure 9"
    assert b"Keywords" in (study_ctx.fig_dir / "fig_09_gan_lr_curves.pdf").read_bytes()


def test_smoke_and_demo_figures_say_so_on_their_face(study_ctx):
    fig = plotting.fig_06(study_ctx)
    texts = [t.get_text() for t in fig.texts]
    plt.close(fig)
    assert any("smoke profile, phantom data" in t for t in texts)
    assert figures.footer_text("demo", "phantom").startswith("demo profile, phantom data")
    assert figures.footer_text("thesis", "NIH ChestX-ray14") is None


def test_curve_figure_refuses_missing_results(study_ctx):
    study_ctx.results = None
    with pytest.raises(ValueError, match="evaluate"):
        plotting.fig_09(study_ctx)


def test_sample_figure_reads_the_final_grid_and_real_images(study_ctx):
    fig = plotting.fig_07(study_ctx)
    titles = [ax.get_title() for ax in fig.axes]
    plt.close(fig)
    assert titles[0].startswith("Dataset") and "epoch 3" in titles[1] and "lr 1e-5" in titles[1]
    entry = json.loads((study_ctx.fig_dir / "index" / "fig_07_gan_lr_samples.json").read_text())
    assert [r["epoch"] for r in entry["runs"]] == [3, 3]


def drawn_runs(entry: dict) -> list[str]:
    """The run folders a figure's index entry says it drew (its judges left out), in order."""
    return [Path(r["run_dir"]).name for r in entry["runs"] if not r["role"].startswith("judge")]


def test_every_thesis_figure_draws_exactly_the_runs_of_the_figure_table(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for run in studies.all_runs("smoke"):
        _fake_run(runs, run)

    def fresh(run_dir, n=64, seed=0):
        cfg = RunDir(run_dir).read_config()
        s = cfg.data.image_size
        return cfg, torch.rand(n, 1, s, s, generator=torch.Generator().manual_seed(seed))

    monkeypatch.setattr(plotting.failures, "fresh_samples", fresh)  # where fig_08 and fig_32 look it up
    checked = []
    for name, study in studies.STUDIES.items():
        if not study.runs:
            continue
        ctx = studies.open_study(
            name, profile="smoke", run_root=runs, fig_dir=tmp_path / "figs", protocol="corrected"
        )
        ctx.results = {
            "protocol": "corrected",
            "judges": {},
            "runs": {
                r: {"judge": _curve([1.0, 1.2]), "classifier": _curve([0.2, 0.4])} for r in study.curve_runs
            },
        }
        for n in study.figures:
            plt.close(getattr(plotting, f"fig_{n:02d}")(ctx))
            entry = json.loads((ctx.fig_dir / "index" / f"{figures.stem(n)}.json").read_text())
            assert drawn_runs(entry) == list(studies.FIGURES[n].runs), n
            checked.append(n)
    assert checked == list(range(5, 38))


def test_studies_read_exactly_the_runs_their_figures_draw():
    for name, study in studies.STUDIES.items():
        specs = [studies.FIGURES[n] for n in study.figures]
        specs += [f for f in studies.SUPPLEMENTARY.values() if f.study == name]
        assert set(study.runs) == {r for f in specs for r in f.runs}, name
        assert set(study.curve_runs) == {r for f in specs if f.scores for r in f.runs}, name
        assert study.classifier == any(f.scores == "classifier" for f in specs), name
    assert studies.STUDIES["gan_lr"].runs[-1] == "gan__lr1e-3-asrun"  # drawn (Figure 8), never judged
    assert "gan__lr1e-3-asrun" not in studies.STUDIES["gan_lr"].curve_runs
    assert studies.STUDIES["compare"].classifier and not studies.STUDIES["gan_lr"].classifier


def test_index_lists_all_37_and_marks_missing(study_ctx):
    plt.close(plotting.fig_09(study_ctx))
    out = figures.build_index(study_ctx.fig_dir, "smoke")
    text = out.read_text()
    assert "Figures present: 1 of 37" in text
    assert len(re.findall(r"^## Figure \d+ — missing", text, flags=re.M)) == 36
    assert "fig_09_gan_lr_curves.png" in text
    with pytest.raises(FileNotFoundError, match="missing"):
        figures.build_index(study_ctx.fig_dir, "smoke", require_all=True)
    assert (
        figures.main(["index", "--fig-dir", str(study_ctx.fig_dir), "--profile", "smoke", "--require-all"])
        == 2
    )


def test_summary_is_written_next_to_the_claim(study_ctx):
    text = study_ctx.summary()
    assert "GAN lr 1e-3" in text and "The thesis (§3.2.4) claimed" in text
    assert (study_ctx.fig_dir / "summaries" / "gan_lr.md").read_text() == text


def test_architecture_traces_come_from_real_forward_passes():
    gan = registry.get("gan").build(build_config("gan", "baseline", "thesis"))
    recs = plotting.trace_layers(gan.generator, torch.zeros(2, gan.cfg.nz, 1, 1))
    assert [r["shape"] for r in recs][-1] == (1, 64, 64)
    assert recs[0]["in"] == (gan.cfg.nz, 1, 1) and recs[0]["shape"] == (512, 4, 4)
    ddpm = registry.get("ddpm").build(build_config("ddpm", "tiny", "smoke"))
    found = plotting.unet_shapes(plotting.find_unet(ddpm), ddpm.image_size)
    assert found[0]["stage"] == "in" and found[-1]["shape"] == (1, ddpm.image_size, ddpm.image_size)
    assert any(f["stage"] == "mid" for f in found)


def test_collapse_stats_tell_collapse_from_diversity():
    reals = torch.rand(16, 1, 8, 8)
    same = torch.full((16, 1, 8, 8), 0.5)
    assert plotting.collapse_stats(same, reals)["diversity_ratio"] == pytest.approx(0.0)
    assert plotting.collapse_stats(torch.rand(16, 1, 8, 8), reals)["diversity_ratio"] > 0.8
    black = torch.zeros(4, 1, 8, 8)
    assert plotting.collapse_stats(black, reals)["mean_intensity"] == 0.0


# ----------------------------------------------------------------------------------------------------------------
# explorer logic


def test_explorer_lists_runs_and_scrubs_epochs(tmp_path):
    a = _fake_run(tmp_path, "gan__baseline", epochs=3)
    _fake_run(tmp_path, "vae__size32", epochs=2)
    (tmp_path / ".stale").mkdir()
    assert [p.name for p in explorer.list_runs(tmp_path)] == ["gan__baseline", "vae__size32"]
    png, shown = explorer.grid_png(a, 2)
    assert shown == 2 and png.startswith(b"\x89PNG")
    assert explorer.grid_png(a, 99)[1] == 3
    assert explorer.history_columns([a]) == ["step", "loss", "loss_d", "lr"]
    fig = explorer.plot_history([a], "loss")
    assert len(fig.axes[0].lines) == 1
    plt.close(fig)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        explorer.list_runs(tmp_path / "nope")
    ex = explorer.Explorer(tmp_path)
    assert ex.picker.value == ("gan__baseline",)  # opens on the baselines
    assert "profile smoke" in ex.note.value and "phantom" in ex.note.value
    ex.picker.value = ("gan__baseline", "vae__size32")
    assert ex.epoch.options == (1, 2, 3) and ex.epoch.value == 3 and len(ex.grids.children) == 2
    ex.family.value = "vae"
    assert ex.picker.value == ("vae__size32",) and ex.epoch.options == (1, 2)


def test_explorer_never_shows_a_later_grid_than_the_chosen_epoch(tmp_path):
    sparse = _fake_run(tmp_path, "gan__baseline", epochs=6)
    for e in (1, 2, 3, 4):
        RunDir(sparse).sample_path(e).unlink()  # grids at epochs 5 and 6 only (runs of older builds)
    assert explorer.grid_png(sparse, 1) is None
    assert explorer.grid_png(sparse, 5)[1] == 5
    _fake_run(tmp_path, "vae__baseline", epochs=2)
    ex = explorer.Explorer(tmp_path)
    ex.epoch.value = 1
    labels = [c.value if hasattr(c, "value") else c.children[0].value for c in ex.grids.children]
    assert any("gan__baseline: no grid at or before epoch 1 (first grid at epoch 5)" in t for t in labels)
    assert not any("epoch 5" in t and "gan__baseline," in t for t in labels)


def test_explorer_keeps_the_chosen_curve_and_clears_when_nothing_is_picked(tmp_path):
    a = _fake_run(tmp_path, "gan__baseline", epochs=3)
    b = _fake_run(tmp_path, "vae__baseline", epochs=3)
    RunDir(b).write_history([{"epoch": e, "step": e, "loss": 2.0 / e, "kl": 0.1} for e in (1, 2, 3)])
    RunDir(a).update_metrics(
        {
            "evaluation": {
                "corrected": {
                    "judge": {"epochs": [1, 3], "score": [0.4, 1.1], "lo": [0.3, 1.0], "hi": [0.5, 1.2]},
                    "fd_curve": {"epochs": [1, 3], "fd": [300.0, 40.0], "fd8": [3.0, 0.5]},
                    "metrics": {"fd": 40.0, "kid": 0.02, "precision": 0.8, "recall": 0.4, "epoch": 3},
                }
            }
        }
    )
    ex = explorer.Explorer(tmp_path)
    assert "eval: judge score" in ex.curve.options and "eval: FD8" in ex.curve.options
    ex.curve.value = "history: loss_d"
    ex.picker.value = ("gan__baseline", "vae__baseline")  # different columns: the choice stays
    assert ex.curve.value == "history: loss_d"
    assert explorer.curve_points(a, "eval: FD (X-ray encoder)")[:2] == ([1, 3], [300.0, 40.0])
    assert explorer.curve_points(a, "eval: judge score")[2] == [(0.3, 0.5), (1.0, 1.2)]
    fig = explorer.plot_curves([a, b], "eval: judge score")
    assert len(fig.axes[0].lines) == 1  # only the evaluated run
    plt.close(fig)
    table = explorer.last_epoch_table([a, b])
    assert table.loc["gan__baseline", "judge"] == "1.100 [1.000, 1.200]"
    assert table.loc["gan__baseline", "FD"] == 40.0 and table.loc["gan__baseline", "FD8"] == 0.5
    ex.picker.value = ()
    assert [o["text"] for o in ex.plot.outputs] == ["pick one or more runs\n"]  # the old plot is gone
    assert ex.grids.children[0].value == "pick one or more runs"


# ----------------------------------------------------------------------------------------------------------------
# make support


def test_prepare_run_resumes_current_runs_and_keeps_stale_ones(tmp_path):
    params = tmp_path / "gan__tiny.yaml"
    params.write_text("family: gan\npreset: tiny\noverrides: {}\nprofile: smoke\nseed: 0\n")
    run = tmp_path / "runs" / "gan__tiny"
    assert studies.prepare_run(params, run) == "new"
    cfg = studies.run_config("gan", "tiny", "smoke")
    RunDir(run).write_config(cfg)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "epoch_001.pt").write_bytes(b"x")
    (run / ".complete").touch()
    assert studies.run_status(params, run)[0].state == "complete"
    assert studies.prepare_run(params, run) == "resume"  # a killed run keeps its checkpoints
    assert (run / "checkpoints" / "epoch_001.pt").exists() and not (run / ".complete").exists()
    first_fp = json.loads((run / studies.STAMP).read_text())["fingerprint"]
    params.write_text("family: gan\npreset: tiny\noverrides: {train.lr: 0.001}\nprofile: smoke\nseed: 0\n")
    status = studies.run_status(params, run)[0]
    assert status.state == "stale" and status.reasons == ("config train.lr: 0.0001 -> 0.001",), status
    assert "retrain gan__tiny: config train.lr" in status.line()
    assert studies.prepare_run(params, run) == "stale"
    assert not (run / "checkpoints").exists()
    kept = tmp_path / "runs" / ".stale" / f"gan__tiny@{first_fp[:12]}"
    assert (kept / "checkpoints" / "epoch_001.pt").exists()
    # the same stale fingerprint again: a second folder, the first one untouched
    RunDir(run).write_config(cfg)
    (run / studies.STAMP).write_text(json.dumps({"fingerprint": first_fp}))
    assert studies.prepare_run(params, run) == "stale"
    assert (kept / "checkpoints" / "epoch_001.pt").exists() and kept.with_name(kept.name + "-2").is_dir()


def test_an_evaluation_setting_keeps_the_run_and_rewrites_its_config(tmp_path):
    params = tmp_path / "gan__tiny.yaml"
    run = tmp_path / "runs" / "gan__tiny"

    def write(overrides: str) -> None:
        params.write_text(f"family: gan\npreset: tiny\noverrides: {overrides}\nprofile: smoke\nseed: 0\n")

    write("{}")
    studies.prepare_run(params, run)
    RunDir(run).write_config(studies.run_config("gan", "tiny", "smoke"))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "epoch_001.pt").write_bytes(b"x")
    (run / ".complete").touch()
    write("{eval.n_boot: 7}")
    status = studies.run_status(params, run)[0]
    assert status.state == "complete", status
    assert status.reasons == (
        "evaluation setting eval.n_boot: 20 -> 7 (kept: the run is evaluated with the new value)",
    )
    assert studies.prepare_run(params, run) == "resume"
    assert RunDir(run).read_config().eval.n_boot == 7 and (run / "checkpoints" / "epoch_001.pt").exists()
    assert studies.run_status(params, run)[0] == studies.RunStatus("gan__tiny", "resume")
    # a run that draws its evaluation samples as it trains keeps the settings it draws them with
    run = tmp_path / "runs" / "sampled"
    write("{train.keep_weights: sampled}")
    assert studies.prepare_run(params, run) == "new"
    RunDir(run).write_config(studies.run_config("gan", "tiny", "smoke", {"train.keep_weights": "sampled"}))
    write("{train.keep_weights: sampled, eval.n_boot: 7}")
    assert studies.run_status(params, run)[0].state == "resume"
    write("{train.keep_weights: sampled, eval.n_fake: 4}")
    status = studies.run_status(params, run)[0]
    assert status.state == "stale" and status.reasons == ("config eval.n_fake: 8 -> 4",), status


def test_runs_stamped_in_the_older_byte_hash_format_are_adopted_not_retrained(tmp_path):
    params = tmp_path / "vae__tiny.yaml"
    params.write_text("family: vae\npreset: tiny\noverrides: {}\nprofile: smoke\nseed: 0\n")
    run = tmp_path / "runs" / "vae__tiny"
    cfg = studies.run_config("vae", "tiny", "smoke")
    RunDir(run).write_config(cfg)
    (run / studies.STAMP).write_text(studies._legacy_fingerprint(cfg, "vae", REPO) + "\n")
    assert studies.run_status(params, run)[0].state == "resume"
    (run / studies.STAMP).write_text("0" * 64 + "\n")
    assert studies.run_status(params, run)[0].state == "stale"


def _copy_sources(root: Path) -> Path:
    import shutil

    for sub in ("xrutils", "notebooks"):
        shutil.copytree(
            REPO / sub, root / sub, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
        )
    return root


def test_docstrings_comments_and_notebook_metadata_retrain_nothing_but_code_does(tmp_path):
    import nbformat

    root = _copy_sources(tmp_path)
    stamps = tmp_path / ".make"
    assert set(studies.write_code_stamps(stamps, root)) == set(studies.code_stamps(root))
    phantom = root / "xrutils" / "data" / "phantom.py"
    text = phantom.read_text()
    doc = text.index('"""') + 3
    phantom.write_text(text[:doc] + "An edited docstring. " + text[doc:] + "\n# a new comment\n")
    nb_path = root / "notebooks" / "vae.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.metadata["language_info"] = {"name": "python", "version": "3.99"}  # what JupyterLab's autosave writes
    nb.cells[-1].setdefault("outputs", []).append(nbformat.v4.new_output("stream", text="hello"))
    nb.cells[-1]["execution_count"] = 7
    nbformat.write(nb, nb_path)
    assert studies.write_code_stamps(stamps, root) == []
    phantom.write_text(text + "\nEDITED = 1\n")  # a change of meaning: every family's training code
    nb.cells[-1].source += "\nx = 1"
    nbformat.write(nb, nb_path)
    assert set(studies.write_code_stamps(stamps, root)) == {
        *(f"train_{f}" for f in studies.MODEL_NOTEBOOKS),
        "data",
        "nb_vae",
    }


def test_the_fingerprint_names_the_training_file_that_changed(tmp_path):
    root = _copy_sources(tmp_path)
    (root / "params" / "smoke").mkdir(parents=True)
    params = root / "params" / "smoke" / "vae__tiny.yaml"
    params.write_text("family: vae\npreset: tiny\noverrides: {}\nprofile: smoke\nseed: 0\n")
    run = tmp_path / "runs" / "vae__tiny"
    run.mkdir(parents=True)
    cfg = studies.run_config("vae", "tiny", "smoke")
    RunDir(run).write_config(cfg)
    (run / studies.STAMP).write_text(json.dumps(studies.run_fingerprint(cfg, "vae", root)))
    (run / ".complete").touch()
    assert studies.run_status(params, run, root=root)[0].state == "complete"
    vae = root / "xrutils" / "models" / "vae.py"
    vae.write_text(vae.read_text() + "\nEDITED = 1\n")
    status = studies.run_status(params, run, root=root)[0]
    assert status.state == "stale" and status.reasons == ("training code xrutils/models/vae.py changed",)


def test_training_fingerprints_cover_only_their_family():
    assert "xrutils/models/dcgan.py" in studies.training_sources("gan")
    assert "xrutils/models/vae.py" not in studies.training_sources("gan")


def test_python_fingerprints_ignore_docstrings_comments_and_layout_and_name_bad_files(tmp_path):
    from xrutils import fingerprint

    a = fingerprint.python_fingerprint('"""Module."""\ndef f(x):\n    """Doc."""\n    return x + 1\n')
    b = fingerprint.python_fingerprint("def f(x):  # a comment\n\n    return (x +\n            1)\n")
    assert a == b != fingerprint.python_fingerprint("def f(x):\n    return x + 2\n")
    assert fingerprint.python_fingerprint(
        'def g():\n    """Only a docstring."""\n'
    ) == fingerprint.python_fingerprint("def g():\n    pass\n")
    with pytest.raises(ValueError, match=r"broken\.py: not valid Python \(line 1"):
        fingerprint.python_fingerprint("def (:\n", "broken.py")

    def notebook(*sources):
        path = tmp_path / "nb.ipynb"
        cells = [{"cell_type": "code", "source": s, "metadata": {}, "outputs": []} for s in sources]
        path.write_text(json.dumps({"cells": cells + [{"cell_type": "markdown", "source": "# notes"}]}))
        return fingerprint.notebook_fingerprint(path)

    # a cell reformatted by ruff or given a comment counts the same; a changed value or a magic's text does not
    base = notebook("x = f(1,2)\n", "%matplotlib inline\n")
    assert base == notebook("# the study\nx = f(1, 2)\n", ["%matplotlib inline\n"])
    assert base != notebook("x = f(1, 3)\n", "%matplotlib inline\n")
    assert base != notebook("x = f(1, 2)\n", "%matplotlib widget\n")
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.ipynb: not a readable notebook"):
        fingerprint.notebook_fingerprint(bad)


def test_minmax_grids_stretch_the_tiles_as_save_image_normalize_did_and_keep_the_padding_black():
    from xrutils.plotting import minmax_grid, tile

    images = torch.full((4, 1, 3, 3), 100, dtype=torch.uint8)
    images[0, 0, 0, 0], images[3, 0, 2, 2] = 50, 150  # the grid's darkest and brightest pixels
    grid = tile(images, nrow=2)  # the training grids' layout: padding 2, black
    out = minmax_grid(grid, 3)
    assert out[2 + 0, 2 + 0] == 0 and out[2 + 5 + 2, 2 + 5 + 2] == 255  # 50 -> 0, 150 -> 255
    assert out[3, 3] == 128  # 100 is half way
    pad = np.ones(grid.shape, bool)
    for r0 in (2, 7):
        for c0 in (2, 7):
            pad[r0 : r0 + 3, c0 : c0 + 3] = False
    assert (out[pad] == 0).all()
    with pytest.raises(ValueError, match="no 20x20 tiles"):
        minmax_grid(grid, 20)


def test_figure_s3_draws_the_four_families_over_their_seeds_at_one_size_only(tmp_path):
    runs = tmp_path / "runs"
    common = ["gan__size32", "vae__size32", "pixelcnn__size32", "ddpm__size32"]
    for run in [*common, "gan__baseline"]:
        _fake_run(runs, run)
        _fake_run(runs, f"{run}@seed1")
    ctx = studies.open_study("compare", profile="smoke", run_root=runs, fig_dir=tmp_path / "figs")
    curve = {"epochs": [1, 2, 3], "mean": [1.0, 1.2, 1.4], "lo": [0.9, 1.0, 1.2], "hi": [1.1, 1.4, 1.6]}
    groups = {
        r: {"runs": [r, f"{r}@seed1"], "n_seeds": 2, "judge": curve, "fd_curve": curve}
        for r in [*common, "gan__baseline"]
    }
    pair = {"better": "ddpm__size32", "worse": "gan__size32", "gap": 0.2, "lo": 0.1, "hi": 0.3}
    pair |= {"p_holm": 0.02, "significant": True, "variance": "training seeds and evaluation samples"}
    results = {
        "groups": groups,
        "ranking": {
            "by_size": {"32": {"judge": {"order": ["ddpm__size32", "gan__size32"], "pairs": [pair]}}}
        },
    }
    fig = plotting.fig_S3(ctx, results, common)
    plt.close(fig)
    entry = json.loads((tmp_path / "figs" / "index" / "fig_S3_common_size.json").read_text())
    assert entry["ranking"]["judge"]["pairs"][0]["significant"]
    assert {Path(r["run_dir"]).name for r in entry["runs"]} == {m for r in common for m in groups[r]["runs"]}
    # no figure compares across scales: a 64² run among 32² ones is refused
    with pytest.raises(ValueError, match="one image size"):
        plotting.fig_S3(ctx, results, [*common[1:], "gan__baseline"])
