"""Notebooks: structure and parameter cells (fast), and every notebook end to end in the smoke profile.

The smoke build runs the real pipeline once per session: ``make -f make/figures.mk figures-all PROFILE=smoke CORES=2``
(the Snakemake workflow) into a temporary folder (every model notebook and every study notebook through papermill), then the explorer
notebook. The tests check what the notebooks wrote (run folders, figures, results, index entries, provenance), that
a second ``make`` does nothing, that changing one study's params reruns only that study, and that a run whose last
checkpoint is lost resumes from the one before.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import papermill
import pytest

from xrutils import figures, studies
from xrutils.runs import RunDir

pytestmark = pytest.mark.slow  # every notebook end to end, and the smoke build: `make test-slow`

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
EXPECTED = sorted(
    [*studies.MODEL_NOTEBOOKS, *studies.STUDIES, *studies.TOOL_NOTEBOOKS, *studies.EXTRA_STUDY_NOTEBOOKS]
)


def parameter_names(path: Path) -> list[str]:
    """Names assigned in the cell tagged ``parameters``; raises when there is none (or more than one)."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{path}: {len(cells)} cells tagged 'parameters'; expected exactly one")
    names = []
    for node in ast.parse(cells[0].source).body:
        target = (
            node.target
            if isinstance(node, ast.AnnAssign)
            else node.targets[0]
            if isinstance(node, ast.Assign)
            else None
        )
        if not isinstance(target, ast.Name):
            raise ValueError(
                f"{path}: the parameters cell may hold only `name = value` lines, found {ast.dump(node)[:60]}"
            )
        names.append(target.id)
    return names


def unknown_parameters(params: dict, notebook: Path) -> list[str]:
    """Keys of a params file that the notebook's parameters cell does not define (papermill only warns)."""
    return sorted(set(params) - set(parameter_names(notebook)))


# ----------------------------------------------------------------------------------------------------------------
# structure (fast)


def test_the_expected_notebooks_exist():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_thin_parameterised_and_committed_without_outputs(name):
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    if name in studies.STUDIES:
        for n in studies.STUDIES[name].figures:
            assert f"Figure {n}" in first.source, f"{name}: the opening cell does not name Figure {n}"
        assert "question" in first.source.lower()
    names = parameter_names(path)
    assert names and len(names) == len(set(names))
    # papermill must parse every parameter (a comment it cannot parse silently drops the parameter)
    assert list(papermill.inspect_notebook(str(path))) == names
    # papermill only warns about an unknown -p name: the first cell after the parameters refuses it (issue 12, D8)
    code = [c for c in nb.cells if c.cell_type == "code"]
    after = code[[i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])][0] + 1]
    assert "studies.check_parameters(globals())" in after.source, f"{name}: parameters are not checked"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert cell.get("outputs", []) == [] and cell.get("execution_count") is None, (
            f"{name}: outputs committed"
        )
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)), (
                f"{name}: define functions and classes in xrutils, not in notebooks"
            )
    assert nb.metadata.kernelspec.name == "python3"


def test_model_and_study_notebooks_take_the_agreed_parameters():
    for family in studies.MODEL_NOTEBOOKS:
        assert parameter_names(NOTEBOOKS / f"{family}.ipynb") == [
            "family",
            "preset",
            "overrides",
            "profile",
            "run_dir",
            "seed",
            "nih_root",
        ]
    for name in studies.STUDY_NOTEBOOKS:
        names = parameter_names(NOTEBOOKS / f"{name}.ipynb")
        assert names[:4] == ["study", "profile", "run_root", "fig_dir"], name
    assert "nih_root" in parameter_names(NOTEBOOKS / "dataset.ipynb")


@pytest.mark.parametrize("profile", ["smoke", "demo", "thesis"])
def test_params_files_name_only_parameters_their_notebook_has(profile):
    files = sorted((REPO / "params" / profile).glob("*.yaml"))
    assert files
    for path in files:
        notebook = REPO / studies.params_notebook(path)
        params = studies.read_params(path)
        assert unknown_parameters(params, notebook) == [], f"{path} names parameters {notebook.name} lacks"
        if "study" in params:
            assert params["study"] == path.stem


def test_parameter_checks_catch_missing_cells_and_unknown_names(tmp_path):
    nb = nbformat.read(NOTEBOOKS / "gan.ipynb", as_version=4)
    assert unknown_parameters({"family": "gan", "learning_rate": 1e-3}, NOTEBOOKS / "gan.ipynb") == [
        "learning_rate"
    ]
    for cell in nb.cells:
        cell.metadata.pop("tags", None)
    bare = tmp_path / "bare.ipynb"
    nbformat.write(nb, bare)
    with pytest.raises(ValueError, match="tagged 'parameters'"):
        parameter_names(bare)


# ----------------------------------------------------------------------------------------------------------------
# the smoke build: every notebook end to end


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("XRUTILS_NIH_ROOT", None)  # the smoke build runs on the phantom (the NIH path has its own test)
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)
    return env


def _make_cmd(build: dict, *args: str, target: str = "figures-all") -> list[str]:
    return [
        "make",
        "--no-print-directory",
        "-f",
        "make/figures.mk",
        target,
        "PROFILE=smoke",
        f"PY={sys.executable}",
        f"RUNDIR={build['runs']}",
        f"FIGDIR={build['figs']}",
        f"FIGURES_STAMPDIR={build['stamps']}",
        *args,
    ]


def _make(build: dict, *args: str, target: str = "figures-all") -> subprocess.CompletedProcess:
    cmd = _make_cmd(build, *args, target=target)
    return subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=1500)


# One run per family goes through its model notebook (papermill, via make); the other smoke runs are trained here
# in-process with the same params and the same calls the notebook makes, so the build does not pay a kernel start
# (about 10 s of imports) for each of the 25 runs. make then sees them complete and runs the rest.
NOTEBOOK_RUNS = ("gan__lr1e-5", "vae__lr1e-5", "pixelcnn__lr1e-5", "ddpm__lr1e-5")


def _pretrain(runs: Path) -> None:
    from xrutils.train import train

    for run in studies.all_runs("smoke"):
        if run in NOTEBOOK_RUNS:
            continue
        params_path = REPO / "params" / "smoke" / f"{run}.yaml"
        p = studies.read_params(params_path)
        studies.prepare_run(params_path, runs / run)
        cfg = studies.run_config(
            p["family"], p["preset"], p["profile"], p.get("overrides") or {}, p.get("seed", 0)
        )
        train(cfg, runs / run, resume=True, progress=False)
        (runs / run / ".complete").touch()


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory, _data_home):
    root = tmp_path_factory.mktemp("smoke_build")
    build = {"root": root, "runs": root / "runs", "figs": root / "figures", "stamps": root / ".make"}
    rules = _make(build, target="figures-stamps")  # writes the NIH-root stamp the runs depend on, before them
    assert rules.returncode == 0, rules.stderr
    _pretrain(build["runs"])
    first = _make(build, "CORES=2")
    build["first"] = first
    if first.returncode != 0:
        pytest.fail(f"make figures-all (smoke) failed:\n{first.stdout[-6000:]}\n{first.stderr[-6000:]}")
    return build


def _executed_ok(path: Path) -> nbformat.NotebookNode:
    assert path.exists(), f"{path} was not written"
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.papermill.get("exception") in (None, False), f"{path} raised"
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"{path}: {out.get('ename')}: {out.get('evalue')}"
    return nb


def _has_image(nb) -> bool:
    return any("image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))


@pytest.mark.parametrize("run", studies.all_runs("smoke"))
def test_run_folder_is_complete_and_model_notebooks_trained_theirs(smoke_build, run):
    d = smoke_build["runs"] / run
    rd = RunDir(d)
    assert (d / ".complete").exists() and rd.is_complete()
    cfg = rd.read_config()
    assert cfg.profile == "smoke" and studies.run_name(cfg.family, cfg.preset, cfg.seed) == run
    assert cfg.data.source == "phantom"
    assert rd.checkpoint_epochs() == list(range(1, cfg.train.epochs + 1))
    assert [r["epoch"] for r in rd.read_history()] == list(range(1, cfg.train.epochs + 1))
    assert rd.sample_path(cfg.train.epochs).exists()
    if run not in NOTEBOOK_RUNS:
        return
    assert f"[train] {run} (smoke)" in smoke_build["first"].stdout
    nb = _executed_ok(d / "notebook.ipynb")
    assert nb.metadata.papermill.parameters["run_dir"] == str(d)
    assert _has_image(nb), f"{run}: the notebook showed no loss curve or sample grid"


@pytest.mark.parametrize("study", list(studies.STUDIES))
def test_study_notebook_wrote_its_figures_results_and_index(smoke_build, study):
    figs = smoke_build["figs"]
    s = studies.STUDIES[study]
    nb = _executed_ok(figs / "notebooks" / f"{study}.ipynb")
    assert (figs / ".stamps" / f"{study}.done").exists()
    assert _has_image(nb)
    for n in s.figures:
        stem = figures.stem(n)
        png, pdf = figs / f"{stem}.png", figs / f"{stem}.pdf"
        assert png.stat().st_size > 2000 and pdf.stat().st_size > 1000, stem
        entry = json.loads((figs / "index" / f"{stem}.json").read_text())
        assert entry["number"] == n and entry["notebook"] == s.notebook and entry["profile"] == "smoke"
        assert entry["caption"] == studies.FIGURES[n].caption
        assert entry["parameters"]["profile"] == "smoke" and entry["commit"]
        assert figures.read_provenance(png) == json.loads(json.dumps(entry, sort_keys=True, default=str))
        for r in entry["runs"]:
            if r.get("run_dir", "").startswith(str(smoke_build["runs"])):
                assert Path(r["run_dir"]).is_dir(), r
        if studies.FIGURES[n].runs:  # it drew exactly the runs of the figure table, in its order
            drawn = [Path(r["run_dir"]).name for r in entry["runs"] if not r["role"].startswith("judge")]
            assert drawn == list(studies.FIGURES[n].runs), stem
        if s.runs:
            assert "phantom" in entry["data_source"]
            assert entry["footer"].startswith("smoke profile, phantom data"), entry["footer"]
    if s.curve_runs:
        res = json.loads((figs / "results" / f"{study}_corrected.json").read_text())
        # its curve runs, the common-size runs (compare) and their training seeds
        assert set(res["runs"]) == set(studies.scored_runs(s, "smoke"))
        for name, r in res["runs"].items():
            epochs = r["judge"]["epochs"]
            assert (
                len(epochs)
                == len(r["judge"]["score"])
                == RunDir(smoke_build["runs"] / name).read_config().train.epochs
            )
            assert all(math.isfinite(v) for v in r["judge"]["score"] + r["judge"]["lo"] + r["judge"]["hi"])
            assert r["judge_size"] == r["image_size"]
    summary = (figs / "summaries" / f"{study}.md").read_text() if s.runs else None
    if summary is not None:
        assert "claimed" in summary and s.claim[:30] in summary


def test_results_md_answers_every_study_from_its_numbers(smoke_build):
    from xrutils.studies import results

    figs = smoke_build["figs"]
    text = (figs / "RESULTS.md").read_text()
    for name, study in studies.STUDIES.items():
        assert f"## {name}" in text and study.claim[:40] in text, name
    n_claims = sum(len(c) for c in results.CLAIMS.values())
    counts = results.verdict_counts(figs)
    compare = json.loads((figs / "results" / "compare_corrected.json").read_text())
    pairs = results.family_pairs(compare)
    # every claim checked against the build's numbers, and the thesis's family order pair by pair, per criterion
    assert sum(counts.values()) == n_claims + len(pairs) == n_claims + 3 * len(results.RANKING_CRITERIA)
    for (
        name,
        claims,
    ) in results.CLAIMS.items():  # one training seed outside the compare study: nothing decided
        res = json.loads((figs / "results" / f"{name}_corrected.json").read_text())
        verdicts = {results.check(c, res)["verdict"] for c in claims}
        seeded = name == "compare"
        assert verdicts <= {
            "inconclusive at this scale",
            "not comparable",
            *(("agrees", "disagrees") * seeded),
        }
    # the compare study's four families at 32², two seeds each in smoke: every pair tested with the seeds
    assert compare["common_size"]["runs"] == studies.common_size_runs("smoke")
    assert all(p["pair"]["variance"].startswith("training seeds") for p in pairs)
    assert "The four families at 32²" in text
    for run in studies.FIGURES[37].runs:  # Figure 37's learning curve: a fresh classifier per epoch
        per_epoch = compare["runs"][run]["classifier_per_epoch"]
        assert per_epoch["epochs"] == compare["runs"][run]["classifier"]["epochs"]


def test_figure_index_lists_37_figures_and_every_file_exists(smoke_build):
    figs = smoke_build["figs"]
    text = (figs / "FIGURES.md").read_text()
    assert "Figures present: 37 of 37." in text
    numbers = [int(n) for n in re.findall(r"^## Figure (\d+) — \[", text, flags=re.M)]
    assert numbers == list(range(1, 38))
    linked = re.findall(r"\]\(([^)]+\.(?:png|pdf))\)", text)
    assert len(linked) >= 2 * 37
    for name in linked:
        assert (figs / name).exists(), name
    assert "Supplementary Figure S1" in text  # original vs corrected protocol
    assert "Supplementary Figure S3" in text  # the four families at 32²
    assert text.count("- Commit: ") >= 37 and text.count("- Data source: ") >= 37


def test_dataset_figure_says_it_counts_phantom_labels(smoke_build):
    entry = json.loads((smoke_build["figs"] / "index" / f"{figures.stem(1)}.json").read_text())
    assert "phantom's labels" in entry["data_source"] and "no NIH root" in entry["data_source"]
    assert entry["footer"].startswith("smoke profile, phantom data")


def test_failure_figures_state_what_the_run_did(smoke_build):
    figs = smoke_build["figs"]
    e8 = json.loads((figs / "index" / f"{figures.stem(8)}.json").read_text())
    e32 = json.loads((figs / "index" / f"{figures.stem(32)}.json").read_text())
    assert isinstance(e8["verdict"]["fell_apart"], bool) and re.search("f[ae]ll apart", e8["notes"])
    assert isinstance(e32["verdict"]["black"], bool) and "black" in e32["notes"]
    assert e8["runs"][0]["run_dir"].endswith("gan__lr1e-3-asrun")
    assert e32["runs"][0]["run_dir"].endswith("ddpm__size32-deep")
    summaries = figs / "summaries"
    assert "Figure 8: this run" in (summaries / "gan_lr.md").read_text()
    assert "Figure 32: this run" in (summaries / "ddpm_size.md").read_text()


def test_compare_study_judges_each_model_at_its_own_size_and_runs_the_classifier(smoke_build):
    res = json.loads((smoke_build["figs"] / "results" / "compare_corrected.json").read_text())
    sizes = {n: r["judge_size"] for n, r in res["runs"].items()}
    assert sizes["ddpm__size32"] == 32 and sizes["gan__baseline"] == 64
    assert set(res["judges"]) == {str(s) for s in sizes.values()}
    for r in res["runs"].values():
        assert r["classifier"]["score"] and 0 <= r["classifier"]["score"][-1] <= 1
    # the original protocol without the quirk the smoke profile leaves off, and each other quirk on its own (S1)
    from xrutils.config import Quirks
    from xrutils.profiles import ORIGINAL_PROTOCOL_SKIP

    skip = list(ORIGINAL_PROTOCOL_SKIP["smoke"])
    name = Quirks.original(skip).name
    original = json.loads((smoke_build["figs"] / "results" / f"compare_{name}.json").read_text())
    assert original["protocol"] == name == "original-except-seeded_ddpm"
    s1 = json.loads((smoke_build["figs"] / "index" / "fig_S1_protocols.json").read_text())
    assert set(s1["skipped_quirks"]) == set(skip)
    assert set(s1["final_scores"]) == {
        "corrected",
        name,
        *(q for q in Quirks.__dataclass_fields__ if q not in skip and q != "minmax_grids"),
    }


def test_explorer_notebook_runs_on_the_smoke_runs(smoke_build, tmp_path):
    out = tmp_path / "explorer.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / "explorer.ipynb"),
        str(out),
        kernel_name="python3",
        parameters={"profile": "smoke", "run_root": str(smoke_build["runs"])},
        progress_bar=False,
        cwd=str(REPO),
    )
    nb = _executed_ok(out)
    views = [
        o
        for c in nb.cells
        for o in c.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert views, "the explorer displayed no widget"


def test_second_make_trains_nothing(smoke_build):
    stamps = sorted(smoke_build["figs"].glob(".stamps/*.done")) + sorted(
        smoke_build["runs"].glob("*/.complete")
    )
    before = {p: p.stat().st_mtime_ns for p in stamps}
    again = _make(smoke_build, "CORES=2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "[train]" not in again.stdout and "[study]" not in again.stdout, again.stdout
    assert {p: p.stat().st_mtime_ns for p in stamps} == before


def _dry_run_after_change(build: dict, stamp: str) -> dict[str, set[str]]:
    """The jobs a dry run of the workflow lists after the content of the code stamp ``stamp`` changed (the stamp is
    restored after): ``{"run": {...}, "study": {...}}``."""
    path = build["stamps"] / "code" / stamp
    saved, times = path.read_text(), path.stat()
    from xrutils.studies import workflow

    config = (
        build["stamps"] / "workflow.json"
    )  # the build's own Snakemake command (make would rewrite the stamp)
    cmd = workflow.snakemake_command(
        workflow.Workflow.from_config(json.loads(config.read_text())), config, cores=2, extra=["-n"]
    )
    try:
        path.write_text("an edited notebook or training code\n")
        dry = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    finally:
        path.write_text(saved)
        os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    return {
        "run": set(re.findall(r"output: \S+/([\w\-.@]+)/\.complete", dry.stdout)),
        "study": set(re.findall(r"output: \S+/\.stamps/(\w+)\.done", dry.stdout)),
    }


def test_changing_one_studys_notebook_reruns_only_that_study(smoke_build):
    assert _dry_run_after_change(smoke_build, "nb_gan_lr") == {"run": set(), "study": {"gan_lr"}}
    # a change of the VAE's training code shows as a new fingerprint in its stamp file (the workflow never reads
    # the sources' modification times: see test_docstrings_comments_and_notebook_metadata_retrain_nothing_but_code_does)
    jobs = _dry_run_after_change(smoke_build, "train_vae")
    assert jobs["run"] == {r for r in studies.all_runs("smoke") if r.startswith("vae__")}
    assert {"vae_lr", "vae_size", "compare"} <= jobs["study"] and "gan_lr" not in jobs["study"]


def test_a_params_edit_that_leaves_the_config_alone_reruns_nothing(smoke_build):
    path = REPO / "params" / "smoke" / "gan__baseline.yaml"
    saved, times = path.read_text(), path.stat()
    try:
        path.write_text(saved + "# a note of the user's; the config is the same\n")
        dry = _make(smoke_build, "SNAKEMAKE_ARGS=-n")
    finally:
        path.write_text(saved)
        os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-2000:]


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path, _data_home):
    """Kill a model notebook mid-training (as Ctrl-C on make would), then run it again the way make does."""
    params = tmp_path / "vae__baseline.yaml"
    params.write_text(
        "family: vae\npreset: baseline\nprofile: smoke\nseed: 0\noverrides: {train.epochs: 60}\n"
    )
    run = tmp_path / "runs" / "vae__baseline"
    assert studies.prepare_run(params, run) == "new"
    cmd = [
        sys.executable,
        "-m",
        "papermill",
        "--kernel",
        "python3",
        "--no-progress-bar",
        "notebooks/vae.ipynb",
        str(run / "notebook.ipynb"),
        "-f",
        str(params),
        "-p",
        "run_dir",
        str(run),
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while len(RunDir(run).checkpoint_epochs()) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = RunDir(run).checkpoint_epochs()
    assert 2 <= len(killed_at) and killed_at[-1] < 60, f"not killed mid-run: {killed_at}"
    before = RunDir(run).read_history()
    assert studies.prepare_run(params, run) == "resume"  # make keeps it: same config, same code
    again = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    after = RunDir(run).read_history()
    assert [r["epoch"] for r in after] == list(range(1, 61))
    assert after[: len(before)] == before  # the epochs done before the kill were not trained again


def test_make_killed_at_random_points_finishes_on_rerun_without_training_from_scratch(tmp_path, _data_home):
    """Kill the whole ``make`` (its process group, as Ctrl-C or a dying machine would) a few times at seeded random
    points, then let it finish: every run that had a first checkpoint keeps it (never retrained from scratch),
    nothing is moved aside as stale, and a last ``make`` has nothing left to do."""
    import random

    build = {
        "root": tmp_path,
        "runs": tmp_path / "runs",
        "figs": tmp_path / "figures",
        "stamps": tmp_path / ".make",
    }
    assert _make(build, target="figures-stamps").returncode == 0
    _pretrain(build["runs"])  # the model notebooks of NOTEBOOK_RUNS and every study are left to make
    cmd = _make_cmd(build, "CORES=2")
    rng = random.Random(12)
    first_checkpoints: dict[Path, int] = {}
    for _ in range(3):
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=_env(),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            proc.wait(timeout=rng.uniform(4, 30))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for p in build["runs"].glob("*/checkpoints/epoch_001.pt"):
            first_checkpoints.setdefault(p, p.stat().st_mtime_ns)
        if proc.returncode == 0:
            break
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    for p, mtime in first_checkpoints.items():
        assert p.stat().st_mtime_ns == mtime, f"{p.parent.parent.name} was trained again from scratch"
    assert not (build["runs"] / ".stale").exists()
    again = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "[train]" not in again.stdout and "[study]" not in again.stdout


def test_dataset_notebook_counts_the_real_nih_metadata(nih_root, tmp_path, _data_home):
    out = tmp_path / "dataset.ipynb"
    fig_dir = tmp_path / "figs"
    papermill.execute_notebook(
        str(NOTEBOOKS / "dataset.ipynb"),
        str(out),
        kernel_name="python3",
        parameters={
            "profile": "smoke",
            "fig_dir": str(fig_dir),
            "nih_root": str(nih_root),
            "image_size": 64,
            "n_images": 4,
        },
        progress_bar=False,
        cwd=str(REPO),
    )
    _executed_ok(out)
    entry = json.loads((fig_dir / "index" / f"{figures.stem(1)}.json").read_text())
    assert "full NIH ChestX-ray14 metadata" in entry["data_source"]
    from xrutils.data import label_counts

    counts = label_counts(nih_root)
    assert counts["count"].sum() > 100_000  # the whole release's labels, not just the images on disk
    assert (fig_dir / f"{figures.stem(2)}.png").exists()
    shutil.rmtree(fig_dir)


def test_make_trained_only_what_was_missing(smoke_build):
    assert set(re.findall(r"\[train\] (\S+)", smoke_build["first"].stdout)) == set(NOTEBOOK_RUNS)
    assert not (smoke_build["runs"] / ".stale").exists()
