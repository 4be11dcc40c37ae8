"""The build behind ``make figures``: a Snakemake workflow (``make/Snakefile``) of one job per run, one per study and
the index, and the commands its jobs run.

* :func:`build` is what ``make figures`` calls (``python -m xrutils.studies figures``): it takes the build's lock,
  writes the fingerprint stamps the rules depend on, says what it will train, resume or retrain and why, and starts
  Snakemake with the cores and GPUs of this machine (or a cluster profile, ``make/<executor>/config.yaml``).
* :class:`Workflow`: what the Snakefile reads: every job's inputs, output, command, threads and GPU count.
* :func:`execute`: one job (``python -m xrutils.studies exec ...``): a model or study notebook through papermill,
  on a GPU of its own when the build has several.

Scheduling. Locally Snakemake gets ``--cores <nproc>`` and ``--resources gpu=<visible GPUs>``. Training runs and
the studies that sample or judge models declare ``gpu=1`` when the build has GPUs, so at most one job per GPU; each
takes a free device slot (an OS lock per device, released if the job dies) and sees only that device
(``CUDA_VISIBLE_DEVICES``). CPU jobs (the dataset and architecture figures, and every job on a machine without a
GPU) take one core each and run alongside. Under a cluster executor the scheduler places the GPU jobs, and its own
``CUDA_VISIBLE_DEVICES`` is left alone.

What reruns is decided by file times on stamps, never on sources: a run's ``.complete`` against the stamp of its
resolved config (:func:`~xrutils.studies.build.write_config_stamps`) and the meaning stamps of :func:`~xrutils.studies.build.write_code_stamps` (``--rerun-triggers mtime``; Snakemake also skips an input whose content it recorded unchanged). A killed build
resumes (``--rerun-incomplete``: an interrupted run continues from its checkpoint, see
:func:`~xrutils.studies.build.prepare_run`). Snakemake's own metadata lives in the stamp folder, not in the
repository.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xrutils.errors import InputError
from xrutils.studies.build import (
    plan_runs,
    prepare_run,
    write_code_stamps,
    write_config_stamps,
    write_if_changed,
)
from xrutils.studies.params import _repo, all_runs, judge_runs_for, study_run_names
from xrutils.studies.table import STUDIES, split_run_name

SNAKEFILE = "make/Snakefile"
# EXECUTOR=local runs the jobs on this machine; any other value names a Snakemake profile: a folder make/<name>/ or
# a path, holding config.yaml (make/slurm/: snakemake-executor-plugin-slurm; tests use cluster-generic)
CPU_STUDIES = ("dataset", "architectures")  # draw no samples and judge nothing: never wait for a GPU
GPU_THREADS = (
    4  # CPU threads of a job that holds a GPU (data loading, the host side); more cores go to CPU jobs
)


def visible_gpus(environ: dict[str, str] | None = None) -> list[str]:
    """The CUDA devices this build may use, as ``CUDA_VISIBLE_DEVICES`` entries: that variable when it is set,
    else one per line of ``nvidia-smi -L``, else none (a CPU machine). No torch import: it takes seconds."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [
            d.strip() for d in environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip() and d.strip() != "-1"
        ]
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def gpus_setting(value: str) -> list[str] | None:
    """``GPUS=`` of ``make figures``: "auto" (None: every visible GPU) or a count N (the first N visible devices;
    devices 0..N-1 where none can be listed)."""
    value = str(value).strip()
    if value in ("", "auto"):
        return None
    if not value.isdigit():
        raise InputError(f"GPUS={value!r}: expected a number of GPUs or 'auto'")
    n = int(value)
    visible = visible_gpus()
    return (visible if len(visible) >= n else [str(i) for i in range(n)])[:n]


@dataclass
class Workflow:
    """The jobs of one profile's build, as the Snakefile declares them (``Workflow.from_config(config)``).

    Paths are absolute for Snakemake (it runs in the stamp folder) and passed to the jobs as the user gave them
    (the jobs run in the repository, so the notebooks and FIGURES.md name them the same as before)."""

    profile: str
    run_dir: str
    fig_dir: str
    stamp_dir: str
    nih_root: str = ""
    executor: str = "local"
    gpus: list[str] = field(default_factory=list)  # device slots of a local build; [] under a cluster
    gpu_jobs: bool = False  # whether runs and sampling studies declare gpu=1
    python: str = sys.executable
    root: Path = field(default_factory=_repo)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Workflow:
        known = {k: config[k] for k in cls.__dataclass_fields__ if k in config and k != "root"}
        unknown = sorted(set(config) - set(cls.__dataclass_fields__))
        if unknown:
            raise InputError(
                f"workflow config: unknown keys {unknown}; expected {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**known, root=Path(config.get("root") or _repo()))

    def to_config(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["root"] = str(self.root)
        return out

    def _abs(self, path: str) -> str:
        p = Path(path)
        return str(p if p.is_absolute() else self.root / p)

    # --- what the Snakefile declares ------------------------------------------------------------------------
    @property
    def runs(self) -> list[str]:
        return all_runs(self.profile)

    @property
    def studies(self) -> list[str]:
        return list(STUDIES)

    def pattern(self, names: list[str]) -> str:
        return "|".join(re.escape(n) for n in names)

    def run_output(self, run: str = "{run}") -> str:
        return f"{self._abs(self.run_dir)}/{run}/.complete"

    def study_output(self, study: str = "{study}") -> str:
        return f"{self._abs(self.fig_dir)}/.stamps/{study}.done"

    @property
    def index(self) -> str:
        return f"{self._abs(self.fig_dir)}/FIGURES.md"

    def _params(self, name: str) -> str:
        return str(self.root / "params" / self.profile / f"{name}.yaml")

    def _code(self, stamp: str) -> str:
        return f"{self._abs(self.stamp_dir)}/code/{stamp}"

    @property
    def _nih_stamp(self) -> str:
        return f"{self._abs(self.stamp_dir)}/nih_root"

    def run_inputs(self, run: str) -> list[str]:
        family, _ = split_run_name(run)
        config = (
            f"{self._abs(self.stamp_dir)}/config/{run}"  # its resolved config, not the params file's text
        )
        return [config, self._code(f"nb_{family}"), self._code(f"train_{family}")]

    def study_runs(self, study: str) -> list[str]:
        s = STUDIES[study]
        runs = study_run_names(s, self.profile)
        if s.curve_runs:
            runs += [j for j in judge_runs_for(s, self.profile, self.root) if j not in runs]
        return runs

    def study_inputs(self, study: str) -> list[str]:
        extra = {
            "dataset": [self._code("data"), self._nih_stamp],
            "architectures": [self._code("train_gan"), self._code("train_ddpm")],
        }.get(study, [])
        runs = [self.run_output(r) for r in self.study_runs(study)]
        return [self._params(study), self._code(f"nb_{study}"), self._code("figures"), *extra, *runs]

    def gpu(self, kind: str, name: str) -> int:
        """GPUs a job declares: one for a training run or a study that samples, when the build has GPUs."""
        return int(self.gpu_jobs and not (kind == "study" and name in CPU_STUDIES))

    def threads(self, kind: str, name: str) -> int:
        return GPU_THREADS if self.gpu(kind, name) else 1

    def command(self, kind: str, name: str) -> str:
        """The shell line of one job (``python -m xrutils.studies exec ...``)."""
        args = [self.python, "-m", "xrutils.studies", "exec", kind, name, "--profile", self.profile]
        args += ["--run-dir", self.run_dir, "--fig-dir", self.fig_dir, "--nih-root", self.nih_root]
        args += ["--root", str(self.root)]
        if self.gpus and self.gpu(kind, name):
            args += ["--gpu-slots", ",".join(self.gpus), "--slot-dir", f"{self._abs(self.stamp_dir)}/gpu"]
        return shlex.join(args)

    def index_command(self) -> str:
        args = [self.python, "-m", "xrutils.figures", "index", "--fig-dir", self.fig_dir, "--run-dir"]
        args += [self.run_dir, "--profile", self.profile, "--require-all"]
        return f"cd {shlex.quote(str(self.root))} && {shlex.join(args)}"


# ----------------------------------------------------------------------------------------------------------------
# one job


class _GpuSlot:
    """Hold the first free device of ``slots`` (an exclusive lock on ``<slot_dir>/gpu<device>.lock`` that the OS
    drops when the process dies). Snakemake's gpu resource admits at most one job per device, so one is free."""

    def __init__(self, slots: list[str], slot_dir: Path):
        self.slots, self.slot_dir, self.file, self.device = slots, slot_dir, None, None

    def __enter__(self) -> str | None:
        if not self.slots:
            return None
        import fcntl

        self.slot_dir.mkdir(parents=True, exist_ok=True)
        for device in self.slots:
            f = open(self.slot_dir / f"gpu{device}.lock", "a+")  # noqa: SIM115 (held until __exit__)
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            self.file, self.device = f, device
            return device
        raise RuntimeError(
            f"every GPU slot in {self.slot_dir} is held ({','.join(self.slots)}); is a second build "
            "running on this machine with the same stamp folder?"
        )

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()


def execute(
    kind: str,
    name: str,
    *,
    profile: str,
    run_dir: str,
    fig_dir: str,
    nih_root: str = "",
    root: Path | str | None = None,
    gpu_slots: list[str] | None = None,
    slot_dir: Path | None = None,
) -> int:
    """Run one job of the workflow: ``kind`` "run" prepares the run folder (:func:`~xrutils.studies.build.prepare_run`)
    and executes the family's notebook into it, "study" the study's notebook into ``<fig_dir>/notebooks/``.
    Relative paths are the repository's, where the notebooks run. Quiet on success; on failure the end of the
    notebook's log. Writes the job's output stamp (``.complete`` / ``.stamps/<study>.done``) last."""
    root = Path(root or _repo())

    def at_root(path: str | Path) -> Path:
        return Path(path) if Path(path).is_absolute() else root / path

    params = f"params/{profile}/{name}.yaml"
    if kind == "run":
        family, _ = split_run_name(name)
        notebook, out_dir = f"notebooks/{family}.ipynb", Path(run_dir) / name
        out, log, done = out_dir / "notebook.ipynb", out_dir / "notebook.log", out_dir / ".complete"
        args = ["-p", "run_dir", str(out_dir), "-p", "nih_root", nih_root]
        print(f"[train] {name} ({profile})", flush=True)
        prepare_run(at_root(params), at_root(out_dir), nih_root)
    elif kind == "study":
        if name not in STUDIES:
            raise InputError(f"no study {name!r}; the studies are {', '.join(STUDIES)}")
        notebook, out_dir = f"notebooks/{name}.ipynb", Path(fig_dir) / "notebooks"
        out, log = out_dir / f"{name}.ipynb", out_dir / f"{name}.log"
        done = Path(fig_dir) / ".stamps" / f"{name}.done"
        args = {
            "dataset": ["-p", "fig_dir", fig_dir, "-p", "nih_root", nih_root],
            "architectures": ["-p", "fig_dir", fig_dir],
        }.get(name, ["-p", "run_root", run_dir, "-p", "fig_dir", fig_dir])
        print(f"[study] {name} ({profile})", flush=True)
        at_root(out_dir).mkdir(parents=True, exist_ok=True)
        at_root(done).parent.mkdir(parents=True, exist_ok=True)
    else:
        raise InputError(f"job kind {kind!r}: expected 'run' or 'study'")
    # the inline backend keeps the executed notebooks' plots even where MPLBACKEND=Agg is exported
    env = dict(os.environ, MPLBACKEND="module://matplotlib_inline.backend_inline")
    cmd = [sys.executable, "-m", "papermill", "--kernel", "python3", "--no-progress-bar", notebook, str(out)]
    cmd += ["-f", params, *args]
    with _GpuSlot(gpu_slots or [], Path(slot_dir or root / ".make" / "gpu")) as device:
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        with open(at_root(log), "w") as f:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=root).returncode
    if rc != 0:
        tail = at_root(log).read_text(errors="replace").splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        print(f"failed: {notebook} -> {out} (log: {log})", file=sys.stderr)
        return 1
    at_root(done).touch()
    return 0


# ----------------------------------------------------------------------------------------------------------------
# the build


def profile_dir(executor: str, root: Path | None = None) -> Path | None:
    """The Snakemake profile folder of ``EXECUTOR`` (None for "local"): ``make/<executor>/`` or a path."""
    if executor == "local":
        return None
    root = root or _repo()
    for candidate in (root / "make" / executor, Path(executor)):
        if (candidate / "config.yaml").is_file():
            return candidate.resolve()
    known = sorted(p.parent.name for p in (root / "make").glob("*/config.yaml"))
    raise InputError(
        f"EXECUTOR={executor!r}: no Snakemake profile make/{executor}/config.yaml (nor a folder of that path with a "
        f"config.yaml); expected 'local' or one of {', '.join(known) or 'none'}"
    )


def snakemake_command(wf: Workflow, config_file: Path, *, cores: int, extra: list[str] = ()) -> list[str]:
    """The Snakemake command line of a build, every scheduling choice explicit."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(wf.root / SNAKEFILE)]
    cmd += ["--directory", str(Path(wf.stamp_dir).resolve()), "--configfile", str(config_file)]
    # file times of stamps decide (the stamps hold fingerprints of meaning); a killed build's jobs rerun and resume
    cmd += ["--rerun-triggers", "mtime", "--rerun-incomplete", "--keep-going"]
    # the build's own lock (build()) replaces Snakemake's, which a killed build would leave behind
    cmd += ["--nolock"]
    # quiet: the jobs print one line each ([train] run / [study] name); a dry run lists every job and its reason
    dry = any(a in ("-n", "--dry-run", "--dryrun") for a in extra)
    cmd += ["--quiet", "host", *(() if dry else ("rules", "progress"))]
    cmd += ["--cores", str(cores)]
    if wf.executor == "local":  # at most one job per GPU; a cluster's scheduler does that itself
        cmd += ["--resources", f"gpu={len(wf.gpus)}"]
    else:
        cmd += ["--workflow-profile", str(profile_dir(wf.executor, wf.root))]
    return [*cmd, *extra]


def build(
    profile: str,
    run_dir: str,
    fig_dir: str,
    stamp_dir: str,
    nih_root: str = "",
    *,
    executor: str = "local",
    cores: int | None = None,
    gpus: list[str] | None = None,
    extra: list[str] = (),
) -> int:
    """``make figures``: lock the build, write the stamps, print what will train and why, run Snakemake."""
    from xrutils.atomic import exclusive_lock

    root = _repo()
    profile_dir(executor, root)  # fails early, naming the profiles there are
    stamps = Path(stamp_dir)
    stamps.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(stamps / "build.lock", wait=False, what=f"the {profile} build ({stamps})"):
        write_if_changed(stamps / "nih_root", nih_root + "\n")
        write_code_stamps(stamps, root)
        write_config_stamps(stamps, profile, run_dir, nih_root, root)
        states = print_plan(profile, run_dir, nih_root)
        print_cost(profile, [r.run for r in states if r.state != "complete"], nih_root)
        local_gpus = visible_gpus() if gpus is None else gpus
        wf = Workflow(
            profile=profile,
            run_dir=run_dir,
            fig_dir=fig_dir,
            stamp_dir=str(stamps),
            nih_root=nih_root,
            executor=executor,
            gpus=local_gpus if executor == "local" else [],
            gpu_jobs=bool(local_gpus) if executor == "local" else gpus != [],
            root=root,
        )
        config_file = stamps / "workflow.json"
        write_if_changed(config_file, json.dumps(wf.to_config(), indent=1, sort_keys=True) + "\n")
        cmd = snakemake_command(
            wf, config_file.resolve(), cores=cores or os.cpu_count() or 1, extra=list(extra)
        )
        return subprocess.run(cmd, cwd=root).returncode


def local_gpu(device: str | None = None) -> tuple[str, float] | None:
    """(name, memory in GB) of a visible CUDA device (``device``: its index; default the first), from
    ``nvidia-smi`` (no torch import); None on a machine without one."""
    devices = visible_gpus()
    if not devices:
        return None
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    query = [
        smi,
        "--query-gpu=name,memory.total",
        "--format=csv,noheader,nounits",
        "-i",
        device or devices[0],
    ]
    try:
        line = (
            subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        )
        name, mib = (part.strip() for part in line.rsplit(",", 1))
        return name, float(mib) * 2**20 / 1e9
    except (OSError, subprocess.TimeoutExpired, IndexError, ValueError):
        return None


def print_cost(profile: str, runs: list[str], nih_root: str) -> dict[str, Any] | None:
    """The predicted cost of the runs the build will train (:mod:`xrutils.plan`), priced on this machine's GPU
    (an H200 where it has none), in one line; a run predicted not to fit on this GPU is named."""
    if not runs:
        return None
    from xrutils import plan

    gpu = local_gpu()
    key = plan.gpu_of(gpu[0]) if gpu else None
    p = plan.plan_profile(profile, key or "h200", nih=False, runs=runs, nih_root=nih_root)
    where = p["gpu_name"] if key else f"an {plan.GPUS['h200'].name} ({gpu[0] if gpu else 'no GPU here'})"
    flops = p["total_train_flops"] + p["total_grid_flops"] + p["total_eval_flops"]
    print(
        f"plan of the {len(runs)} run(s) to train: {flops / 1e15:.3g} PFLOP, {p['total_hours']:.3g} GPU-hours "
        f"predicted on {where} ({p['total_eval_hours']:.3g} of them evaluation sampling), largest peak memory "
        f"{p['max_peak_memory_gb']:.3g} GB, {p['total_disk_gb']:.3g} GB of disk "
        f"(`python -m xrutils plan --profile {profile} --own-data` lists each run)",
        flush=True,
    )
    if gpu:
        too_big = [r for r, x in p["runs"].items() if x["peak_memory_gb"] > gpu[1]]
        if too_big:
            print(
                f"predicted not to fit on this {gpu[0]} ({gpu[1]:.0f} GB): {', '.join(too_big)}", flush=True
            )
    return p


def print_plan(profile: str, run_dir: str, nih_root: str, *, everything: bool = False) -> list:
    """What the build will train, resume or retrain, and why (``everything``: the finished runs too)."""
    plan = plan_runs(profile, run_dir, nih_root)
    for r in plan:
        if everything or r.state != "complete":
            print(r.line())
    counts = {k: sum(r.state == k for r in plan) for k in ("new", "resume", "stale", "complete")}
    print(
        f"{profile}: {counts['new']} to train, {counts['resume']} to resume, {counts['stale']} to retrain (the old "
        f"folders are kept in {Path(run_dir) / '.stale'}), {counts['complete']} finished and current",
        flush=True,
    )
    return plan
