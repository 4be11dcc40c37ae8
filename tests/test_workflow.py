"""The build's workflow (make/Snakefile, xrutils.studies.workflow): what each job depends on, how jobs share CPUs
and GPUs, the Snakemake command line, the jobs themselves, and (slow) the workflow under a cluster executor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xrutils import studies
from xrutils.errors import InputError
from xrutils.studies import workflow

REPO = Path(__file__).resolve().parent.parent


def _wf(tmp_path: Path, **kw) -> workflow.Workflow:
    return workflow.Workflow(
        profile=kw.pop("profile", "demo"),
        run_dir=str(tmp_path / "runs"),
        fig_dir=str(tmp_path / "figs"),
        stamp_dir=str(tmp_path / ".make"),
        **kw,
    )


def test_jobs_depend_on_params_meaning_stamps_and_the_runs_they_draw(tmp_path):
    wf = _wf(tmp_path)
    code = f"{tmp_path}/.make/code"
    for run in studies.all_runs("demo"):
        family, _ = studies.split_run_name(run)
        assert wf.run_inputs(run) == [
            f"{tmp_path}/.make/config/{run}",  # the resolved config's stamp, not the params file's text
            f"{code}/nb_{family}",
            f"{code}/train_{family}",
        ]
    compare = wf.study_inputs("compare")
    assert wf.run_output("gan__size32") in compare and wf.run_output("vae__baseline") not in compare
    assert f"{code}/nb_compare" in compare and f"{code}/figures" in compare
    # a study of curves also waits for the GAN runs that judge them
    vae_lr = wf.study_inputs("vae_lr")
    assert any(p.endswith("/gan__baseline/.complete") for p in vae_lr)
    assert wf.studies == list(studies.STUDIES) and wf.runs == studies.all_runs("demo")
    # code counts through the stamps, never through the sources or notebooks themselves
    assert not [p for r in wf.runs for p in wf.run_inputs(r) if "/notebooks/" in p or p.endswith(".py")]


def test_config_stamps_change_with_the_resolved_config_only_and_date_current_runs_before_them(tmp_path):
    from xrutils.runs import RunDir

    runs, stamps = tmp_path / "runs", tmp_path / ".make"
    # a finished run, current against its params file
    cfg = studies.run_config("gan", "baseline", "smoke")
    done = runs / "gan__baseline"
    RunDir(done).write_config(cfg)
    (done / studies.STAMP).write_text(__import__("json").dumps(studies.run_fingerprint(cfg, "gan")))
    (done / ".complete").touch()
    assert set(studies.write_config_stamps(stamps, "smoke", runs)) == set(studies.all_runs("smoke"))
    current, new = stamps / "config" / "gan__baseline", stamps / "config" / "vae__baseline"
    assert current.stat().st_mtime < (done / ".complete").stat().st_mtime  # up to date: nothing to rerun
    assert (
        new.read_text().strip()
        == studies.run_fingerprint(studies.run_config("vae", "baseline", "smoke"), "vae")["config"]
    )
    assert studies.write_config_stamps(stamps, "smoke", runs) == []  # unchanged: not rewritten
    # another NIH root is another config
    nih = tmp_path / "nih"
    nih.mkdir()
    assert set(studies.write_config_stamps(stamps, "smoke", runs, str(nih))) == set(studies.all_runs("smoke"))


def test_gpu_jobs_take_one_gpu_and_a_few_threads_cpu_jobs_one_core(tmp_path):
    cpu = _wf(tmp_path)
    assert {cpu.gpu("run", r) for r in cpu.runs} == {0} and cpu.threads("run", "gan__baseline") == 1
    gpu = _wf(tmp_path, gpus=["0", "1"], gpu_jobs=True)
    assert {gpu.gpu("run", r) for r in gpu.runs} == {1}
    assert gpu.threads("run", "gan__baseline") == workflow.GPU_THREADS
    assert gpu.gpu("study", "gan_lr") == 1 and gpu.gpu("study", "dataset") == 0
    assert gpu.threads("study", "architectures") == 1
    assert "--gpu-slots 0,1" in gpu.command("run", "gan__baseline")
    assert "--gpu-slots" not in gpu.command("study", "dataset")
    assert "--gpu-slots" not in cpu.command("run", "gan__baseline")
    # under a cluster the scheduler places GPU jobs: they declare a GPU but take no local slot
    cluster = _wf(tmp_path, executor="slurm", gpu_jobs=True)
    assert cluster.gpu("run", "gan__baseline") == 1 and "--gpu-slots" not in cluster.command(
        "run", "gan__baseline"
    )


def test_the_config_round_trips_and_unknown_keys_are_named(tmp_path):
    wf = _wf(tmp_path, nih_root="/data/nih", gpus=["3"], gpu_jobs=True)
    assert workflow.Workflow.from_config(wf.to_config()) == wf
    with pytest.raises(InputError, match=r"unknown keys \['gpu_count'\]"):
        workflow.Workflow.from_config({**wf.to_config(), "gpu_count": 2})


def test_snakemake_command_sets_every_scheduling_choice(tmp_path):
    wf = _wf(tmp_path, gpus=["0", "1"], gpu_jobs=True)
    cmd = workflow.snakemake_command(wf, tmp_path / "wf.json", cores=16)
    text = " ".join(cmd)
    assert "--cores 16" in text and "--resources gpu=2" in text
    for flag in ("--rerun-triggers mtime", "--rerun-incomplete", "--keep-going", "--nolock"):
        assert flag in text
    assert f"--snakefile {REPO / 'make' / 'Snakefile'}" in text
    assert (
        f"--directory {(tmp_path / '.make').resolve()}" in text
    )  # Snakemake's metadata stays out of the repo
    slurm = " ".join(
        workflow.snakemake_command(_wf(tmp_path, executor="slurm"), tmp_path / "wf.json", cores=4)
    )
    assert f"--workflow-profile {REPO / 'make' / 'slurm'}" in slurm and "--resources" not in slurm
    assert "--quiet host rules progress" in text
    dry = " ".join(workflow.snakemake_command(wf, tmp_path / "wf.json", cores=2, extra=["-n"]))
    assert "--quiet host -" in dry and dry.endswith(" -n")  # a dry run lists every job and why


def test_executor_names_a_profile_or_gets_a_clear_error(tmp_path):
    assert workflow.profile_dir("local") is None
    assert workflow.profile_dir("slurm") == REPO / "make" / "slurm"
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "config.yaml").write_text("executor: cluster-generic\n")
    assert workflow.profile_dir(str(tmp_path / "site")) == tmp_path / "site"
    with pytest.raises(InputError, match=r"EXECUTOR='pbs'.*make/pbs/config.yaml.*slurm"):
        workflow.profile_dir("pbs")


def test_visible_gpus_and_the_gpus_setting(monkeypatch):
    assert workflow.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert workflow.visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert workflow.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    assert workflow.gpus_setting("auto") is None
    assert workflow.gpus_setting("2") == ["4", "5"] and workflow.gpus_setting("0") == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert workflow.gpus_setting("2") == ["0", "1"]  # none listed: devices 0..N-1
    with pytest.raises(InputError, match="GPUS='two'"):
        workflow.gpus_setting("two")


def test_each_gpu_job_holds_its_own_device_until_it_ends(tmp_path):
    with workflow._GpuSlot(["0", "1"], tmp_path) as first:
        with workflow._GpuSlot(["0", "1"], tmp_path) as second:
            assert (first, second) == ("0", "1")
            with pytest.raises(RuntimeError, match="every GPU slot"):
                workflow._GpuSlot(["0", "1"], tmp_path).__enter__()
        with workflow._GpuSlot(["0", "1"], tmp_path) as again:
            assert again == "1"  # released when the job ended
    with workflow._GpuSlot([], tmp_path) as none:
        assert none is None


def _fake_papermill(monkeypatch, rc: int) -> list[dict]:
    calls = []
    real_run = subprocess.run

    def run(cmd, **kw):
        if "papermill" not in cmd:
            return real_run(cmd, **kw)
        calls.append({"cmd": cmd, "env": kw["env"], "cwd": kw["cwd"]})
        kw["stdout"].write("cell 3 raised ValueError: boom\n")
        return subprocess.CompletedProcess(cmd, rc)

    monkeypatch.setattr(workflow.subprocess, "run", run)
    return calls


def test_a_job_runs_its_notebook_on_its_gpu_and_writes_its_stamp_last(tmp_path, monkeypatch, capsys):
    calls = _fake_papermill(monkeypatch, 0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    rc = workflow.execute(
        "study",
        "gan_lr",
        profile="smoke",
        run_dir="runs/smoke",
        fig_dir=str(tmp_path / "figs"),
        gpu_slots=["7"],
        slot_dir=tmp_path / "gpu",
    )
    assert rc == 0 and (tmp_path / "figs" / ".stamps" / "gan_lr.done").exists()
    (call,) = calls
    assert call["env"]["CUDA_VISIBLE_DEVICES"] == "7" and call["cwd"] == REPO
    assert call["cmd"][-6:] == ["-p", "run_root", "runs/smoke", "-p", "fig_dir", str(tmp_path / "figs")]
    assert "[study] gan_lr (smoke)" in capsys.readouterr().out


def test_a_failed_job_shows_its_log_and_writes_no_stamp(tmp_path, monkeypatch, capsys):
    _fake_papermill(monkeypatch, 1)
    rc = workflow.execute(
        "study", "gan_lr", profile="smoke", run_dir="runs/smoke", fig_dir=str(tmp_path / "figs")
    )
    err = capsys.readouterr().err
    assert rc == 1 and "boom" in err and "failed: notebooks/gan_lr.ipynb" in err
    assert not (tmp_path / "figs" / ".stamps" / "gan_lr.done").exists()
    with pytest.raises(InputError, match="no study 'gan_typo'"):
        workflow.execute("study", "gan_typo", profile="smoke", run_dir="r", fig_dir="f")


def _figures(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "xrutils.studies", "figures", "--run-dir", str(tmp_path / "runs")]
    cmd += ["--fig-dir", str(tmp_path / "figs"), "--stamp-dir", str(tmp_path / ".make"), *args]
    environ = {k: v for k, v in os.environ.items() if k != "XRUTILS_NIH_ROOT"}
    return subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env={**environ, **(env or {})}
    )


def test_a_dry_run_of_the_thesis_build_on_two_gpus_schedules_every_job(tmp_path):
    """The Snakefile parses and plans the whole thesis build: every run and study, GPU jobs declaring one GPU."""
    out = _figures(tmp_path, "--profile", "thesis", "--gpus", "2", "--cores", "16", "--", "-n")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout + out.stderr
    n_runs, n_studies = len(studies.all_runs("thesis")), len(studies.STUDIES)
    assert f"thesis: {n_runs} to train" in text
    assert text.count("rule run:") == n_runs and text.count("rule study:") == n_studies
    assert text.count("gpu=1") == n_runs + n_studies - len(workflow.CPU_STUDIES)
    assert "This was a dry-run" in text
    assert not list(tmp_path.glob("runs/*/.complete"))  # a dry run trains nothing


def test_a_second_build_in_the_same_stamp_folder_is_refused(tmp_path):
    from xrutils.atomic import exclusive_lock

    (tmp_path / ".make").mkdir()
    with exclusive_lock(tmp_path / ".make" / "build.lock"):
        out = _figures(tmp_path, "--profile", "smoke", "--", "-n")
    assert out.returncode != 0 and "another process" in out.stderr, out.stderr[-2000:]


@pytest.mark.slow
def test_the_workflow_runs_under_a_cluster_executor(tmp_path, _data_home):
    """The cluster path (EXECUTOR=<profile>): every job goes through a submit command, here Snakemake's
    cluster-generic executor with a submit script that starts the job script in the background, as a batch system
    would. One training run and the dataset figure, end to end."""
    submit = tmp_path / "submit.sh"
    submit.write_text('#!/bin/sh\nnohup sh "$1" > "$1.out" 2>&1 &\necho $!\n')
    submit.chmod(0o755)
    profile = tmp_path / "cluster"
    profile.mkdir()
    (profile / "config.yaml").write_text(
        f"executor: cluster-generic\ncluster-generic-submit-cmd: {submit}\njobs: 2\nlatency-wait: 5\n"
    )
    run = tmp_path / "runs" / "gan__lr1e-5" / ".complete"
    stamp = tmp_path / "figs" / ".stamps" / "dataset.done"
    out = _figures(
        tmp_path, "--profile", "smoke", "--executor", str(profile), "--gpus", "0", "--", str(run), str(stamp)
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert run.exists() and stamp.exists()
    assert (run.parent / "checkpoints").is_dir() and list((tmp_path / "figs").glob("fig_01_*.png"))
    assert not (tmp_path / "figs" / "FIGURES.md").exists()  # only the targets asked for
