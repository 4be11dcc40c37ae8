"""The build's support: run fingerprints, the state of each run folder (:func:`run_status`, :func:`prepare_run`,
which never deletes a finished run), the meaning stamps the workflow's rules depend on, and the command line that
``make figures`` and the workflow's jobs call (``python -m xrutils.studies ...``; the workflow itself is
:mod:`xrutils.studies.workflow`)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrutils import fingerprint
from xrutils.config import PROFILE_NAMES, ConfigError, RunConfig
from xrutils.errors import InputError
from xrutils.log import get as _get_log
from xrutils.runs import RunDir
from xrutils.studies.params import _repo, all_runs, read_params, run_config, write_params
from xrutils.studies.table import MODEL_NOTEBOOKS, STUDIES

# ----------------------------------------------------------------------------------------------------------------
# build support: staleness of run folders, and the stamps the rules depend on


FAMILY_MODULE = {"gan": "dcgan", "vae": "vae", "pixelcnn": "pixelcnn", "ddpm": "ddpm"}


def training_sources(family: str, root: Path | None = None) -> list[str]:
    """Package files whose change makes a run of ``family`` stale (relative to the repo root).

    The config code is left out on purpose: its effect is captured by the resolved config in the fingerprint, and
    a docstring edit there should not retrain every model.
    """
    root = root or _repo()
    other = {f"{m}.py" for f, m in FAMILY_MODULE.items() if f != family}
    files = [p for p in (root / "xrutils" / "models").glob("*.py") if p.name not in other]
    files += list((root / "xrutils" / "data").glob("*.py"))
    loop = ("train.py", "runs.py", "checkpoints.py", "atomic.py", "seeding.py", "distributed.py")
    files += [root / "xrutils" / n for n in loop]
    return sorted(str(p.relative_to(root)) for p in files if p.exists())


def _legacy_fingerprint(cfg: RunConfig, family: str, root: Path) -> str:
    """The stamp format before code fingerprints (config JSON plus the raw bytes of the training sources); read
    only to adopt runs stamped that way without retraining them."""
    h = hashlib.sha256(cfg.to_json().encode())
    for rel in training_sources(family, root):
        h.update(rel.encode())
        h.update((root / rel).read_bytes())
    return h.hexdigest()


def run_fingerprint(cfg: RunConfig, family: str, root: Path | None = None) -> dict[str, Any]:
    """What a run depends on: the sha256 of its resolved config, and the meaning of each training source
    (``xrutils.fingerprint``: docstrings, comments and layout do not count). ``["fingerprint"]`` combines both."""
    root = root or _repo()
    code = fingerprint.files_fingerprint(root, training_sources(family, root))
    config = hashlib.sha256(cfg.to_json().encode()).hexdigest()
    return {"fingerprint": fingerprint.combine({"config": config, **code}), "config": config, "code": code}


STAMP = ".fingerprint"  # in each run folder: run_fingerprint() of the config and code it was trained with


@dataclass(frozen=True)
class RunStatus:
    """Where a run folder stands against its params file: ``state`` is "new" (nothing trained), "complete"
    (finished, current), "resume" (current, half-trained) or "stale" (trained with another config or training
    code); ``reasons`` say what changed."""

    run: str
    state: str
    reasons: tuple[str, ...] = ()

    def line(self) -> str:
        what = {"new": "train", "resume": "resume", "stale": "retrain", "complete": "keep"}[self.state]
        return f"{what:8s}{self.run}" + (f": {'; '.join(self.reasons)}" if self.reasons else "")


def _run_config_of(params_path: str | Path, nih_root: str) -> tuple[dict[str, Any], RunConfig]:
    p = read_params(params_path)
    return p, run_config(
        p["family"],
        p["preset"],
        p.get("profile", "thesis"),
        p.get("overrides") or {},
        p.get("seed", 0),
        nih_root,
    )


def run_status(
    params_path: str | Path, run_dir: str | Path, nih_root: str = "", root: Path | None = None
) -> tuple[RunStatus, dict[str, Any]]:
    """The run's :class:`RunStatus` and its current fingerprint; reads only, changes nothing."""
    root = root or _repo()
    p, cfg = _run_config_of(params_path, nih_root)
    fp = run_fingerprint(cfg, p["family"], root)
    run_dir = Path(run_dir)
    if not RunDir(run_dir).has_content():
        return RunStatus(run_dir.name, "new"), fp
    done = "complete" if (run_dir / ".complete").exists() else "resume"
    stamp = run_dir / STAMP
    old = stamp.read_text().strip() if stamp.exists() else ""
    reasons: list[str] = []
    only_eval: list[str] = []  # evaluation settings that changed: the run stays, its config.json takes them
    saved_cfg = run_dir / "config.json"
    if saved_cfg.exists():
        from xrutils.train import training_differences

        try:
            saved = json.loads(saved_cfg.read_text())
        except ValueError as e:
            raise ConfigError(
                f"{saved_cfg}: not valid JSON ({e}); move the run folder away or repair it"
            ) from e
        diffs, only_eval = training_differences(cfg, saved)
        reasons += [f"config {d}" for d in diffs]
    kept = tuple(f"evaluation setting {d} (kept: the run is evaluated with the new value)" for d in only_eval)
    if old.startswith("{"):
        try:
            old_fp = json.loads(old)
        except ValueError:
            old_fp = {}
        if old_fp.get("fingerprint") == fp["fingerprint"]:
            return RunStatus(run_dir.name, done), fp
        old_code = old_fp.get("code", {})
        reasons += [
            f"training code {rel} changed"
            for rel in sorted(set(old_code) | set(fp["code"]))
            if old_code.get(rel) != fp["code"].get(rel)
        ]
        if not reasons and only_eval:
            return RunStatus(run_dir.name, done, kept), fp
        if not reasons:
            reasons.append("config changed")
    elif old:  # a stamp of the byte-hash format: current when the files are byte-identical to then
        if old == _legacy_fingerprint(cfg, p["family"], root):
            return RunStatus(run_dir.name, done), fp
        reasons = reasons or ["config or training code changed (stamp of the older format names no files)"]
    elif saved_cfg.exists():  # trained outside make: adopt it when it is the same config
        if not reasons:
            return RunStatus(run_dir.name, done, kept), fp
    else:
        reasons.append(f"no {STAMP} and no config.json: cannot tell what it was trained with")
    return RunStatus(run_dir.name, "stale", tuple(reasons)), fp


def stale_destination(run_dir: Path) -> Path:
    """Where a stale run folder is kept: ``<runs>/.stale/<run>@<its fingerprint>``, numbered when that is taken.
    Nothing there is ever deleted."""
    stamp = run_dir / STAMP
    old = stamp.read_text().strip() if stamp.exists() else ""
    try:
        tag = json.loads(old)["fingerprint"][:12] if old.startswith("{") else (old[:12] or "unstamped")
    except (ValueError, KeyError, TypeError):
        tag = "unstamped"
    base = run_dir.parent / ".stale" / f"{run_dir.name}@{tag}"
    dest, n = base, 1
    while dest.exists():
        n += 1
        dest = base.with_name(f"{base.name}-{n}")
    return dest


def prepare_run(params_path: str | Path, run_dir: str | Path, nih_root: str = "") -> str:
    """Before make (re)runs a model notebook: keep a half-finished run that is still current (it resumes), move a
    stale one (other config or training code) to :func:`stale_destination`, never deleting it. Returns "new",
    "resume" or "stale"."""
    from xrutils.atomic import atomic_write_text

    run_dir = Path(run_dir)
    status, fp = run_status(params_path, run_dir, nih_root)
    if status.state == "stale":
        backup = stale_destination(run_dir)
        backup.parent.mkdir(parents=True, exist_ok=True)
        run_dir.rename(backup)
        _get_log("runs").warning("%s: %s; kept in %s, retraining", run_dir, "; ".join(status.reasons), backup)
    elif status.reasons:  # evaluation settings only (run_status): the run stays, its config.json takes them
        RunDir(run_dir).write_config(_run_config_of(params_path, nih_root)[1])
        _get_log("runs").info("%s: %s", run_dir, "; ".join(status.reasons))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ".complete").unlink(missing_ok=True)
    atomic_write_text(run_dir / STAMP, json.dumps(fp, sort_keys=True) + "\n")
    return "resume" if status.state in ("resume", "complete") else status.state


def plan_runs(
    profile: str, run_root: str | Path, nih_root: str = "", root: Path | None = None
) -> list[RunStatus]:
    """The status of every run of ``profile`` (what ``make figures`` will train, resume, retrain or keep)."""
    root = root or _repo()
    return [
        run_status(root / "params" / profile / f"{run}.yaml", Path(run_root) / run, nih_root, root)[0]
        for run in all_runs(profile)
    ]


_BUILD_ONLY = ("build.py", "workflow.py", "__main__.py")  # how the build runs, not what a figure shows


def _figure_sources(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in [
            *(root / "xrutils" / "plotting").glob("*.py"),
            *(root / "xrutils").glob("figures.py"),
            *(p for p in (root / "xrutils" / "studies").glob("*.py") if p.name not in _BUILD_ONLY),
            *(root / "xrutils" / "evaluators").glob("*.py"),
        ]
    )


def code_stamps(root: Path | None = None) -> dict[str, str]:
    """``{stamp name: fingerprint}`` of the code the rules depend on, by meaning (``xrutils.fingerprint``):
    ``train_<family>`` (training sources), ``figures`` (plotting and evaluation), ``data`` and one ``nb_<name>``
    per notebook (code cells only). Make compares these stamp files, never the sources' modification times, so a
    docstring edit or a notebook re-saved by JupyterLab reruns nothing."""
    root = root or _repo()
    out = {
        f"train_{f}": fingerprint.combine(fingerprint.files_fingerprint(root, training_sources(f, root)))
        for f in MODEL_NOTEBOOKS
    }
    out["figures"] = fingerprint.combine(fingerprint.files_fingerprint(root, _figure_sources(root)))
    data = sorted(str(p.relative_to(root)) for p in (root / "xrutils" / "data").glob("*.py"))
    out["data"] = fingerprint.combine(fingerprint.files_fingerprint(root, data))
    for name in (*MODEL_NOTEBOOKS, *STUDIES):
        out[f"nb_{name}"] = fingerprint.notebook_fingerprint(root / "notebooks" / f"{name}.ipynb")
    return out


def write_code_stamps(stamp_dir: str | Path, root: Path | None = None) -> list[str]:
    """Write :func:`code_stamps` under ``stamp_dir/code/``, each file only when its fingerprint changed; returns
    the names that changed."""
    changed = []
    for name, fp in code_stamps(root).items():
        if write_if_changed(Path(stamp_dir) / "code" / name, fp + "\n"):
            changed.append(name)
    return changed


def write_config_stamps(
    stamp_dir: str | Path, profile: str, run_dir: str | Path, nih_root: str = "", root: Path | None = None
) -> list[str]:
    """One stamp per run, ``config/<run>``: the sha256 of its resolved config (params file, preset, profile and NIH
    root together), rewritten only when it changes, so an edit of a params file that leaves the config alone (a
    comment, the order of keys) reruns nothing. A rewritten stamp of a run that is finished and current (its
    fingerprint matches) is dated just before the run's ``.complete``: the run is up to date, as
    :func:`run_status` says. Returns the runs whose stamp changed."""
    root = root or _repo()
    changed = []
    for run in all_runs(profile):
        status, fp = run_status(
            root / "params" / profile / f"{run}.yaml", Path(run_dir) / run, nih_root, root
        )
        path = Path(stamp_dir) / "config" / run
        if not write_if_changed(path, fp["config"] + "\n"):
            continue
        changed.append(run)
        done = Path(run_dir) / run / ".complete"
        if status.state == "complete" and done.exists():
            t = done.stat().st_mtime - 1
            os.utime(path, (t, t))
    return changed


def write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def main(argv: list[str] | None = None) -> int:
    from xrutils.studies import workflow

    parser = argparse.ArgumentParser(prog="python -m xrutils.studies", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "params", help="write params/<profile>/*.yaml (existing files are kept unless --force)"
    )
    p.add_argument("--profile", choices=PROFILE_NAMES, action="append")
    p.add_argument("--force", action="store_true")

    def build_args(q: argparse.ArgumentParser, fig_dir: bool = True) -> None:
        q.add_argument("--profile", choices=PROFILE_NAMES, required=True)
        q.add_argument("--run-dir", required=True)
        if fig_dir:
            q.add_argument("--fig-dir", required=True)
        q.add_argument("--nih-root", default="", help="the NIH root runs use; a change retrains the runs")

    f = sub.add_parser(
        "figures", help="run the build (make figures): Snakemake over runs, studies and the index"
    )
    build_args(f)
    f.add_argument(
        "--stamp-dir", default=None, help="stamps and Snakemake's metadata (default .make/<profile>)"
    )
    f.add_argument(
        "--executor", default="local", help="'local', or a Snakemake profile: make/<name>/ or a path"
    )
    f.add_argument("--cores", type=int, default=None, help="default: every core of this machine")
    f.add_argument("--gpus", default="auto", help="GPUs to use: a count, or 'auto' (every visible GPU)")
    f.add_argument("snakemake_args", nargs="*", help="passed to Snakemake after '--' (e.g. -- -n)")
    s = sub.add_parser("stamps", help="write the fingerprint stamps the build's rules depend on")
    s.add_argument("--profile", choices=PROFILE_NAMES, required=True)
    s.add_argument("--run-dir", required=True)
    s.add_argument("--stamp-dir", default=None)
    s.add_argument("--nih-root", default="")
    e = sub.add_parser(
        "exec", help="one job of the build: a run's or a study's notebook (Snakemake calls this)"
    )
    e.add_argument("kind", choices=("run", "study"))
    e.add_argument("name")
    build_args(e)
    e.add_argument("--root", default=None)
    e.add_argument("--gpu-slots", default="", help="comma-separated CUDA devices; the job takes a free one")
    e.add_argument("--slot-dir", default=None)
    r = sub.add_parser(
        "prepare-run", help="keep a resumable run, move a stale one aside (each run job does this)"
    )
    r.add_argument("--params", required=True)
    r.add_argument("--run-dir", required=True)
    r.add_argument("--nih-root", default="")
    q = sub.add_parser("plan-runs", help="say which runs make figures will train, resume or retrain, and why")
    build_args(q, fig_dir=False)
    q.add_argument("--all", action="store_true", help="list the finished, current runs too")
    sub.add_parser("table", help="print the study table")
    args = parser.parse_args(argv)
    try:
        if args.command == "params":
            for path in write_params(args.profile or PROFILE_NAMES, force=args.force):
                print(f"wrote {path}")
        elif args.command == "figures":
            return workflow.build(
                args.profile,
                args.run_dir,
                args.fig_dir,
                args.stamp_dir or f".make/{args.profile}",
                args.nih_root,
                executor=args.executor,
                cores=args.cores,
                gpus=workflow.gpus_setting(args.gpus),
                extra=args.snakemake_args,
            )
        elif args.command == "stamps":
            stamp_dir = Path(args.stamp_dir or f".make/{args.profile}")
            write_if_changed(stamp_dir / "nih_root", args.nih_root + "\n")
            write_code_stamps(stamp_dir)
            write_config_stamps(stamp_dir, args.profile, args.run_dir, args.nih_root)
        elif args.command == "exec":
            return workflow.execute(
                args.kind,
                args.name,
                profile=args.profile,
                run_dir=args.run_dir,
                fig_dir=args.fig_dir,
                nih_root=args.nih_root,
                root=args.root,
                gpu_slots=[d for d in args.gpu_slots.split(",") if d],
                slot_dir=Path(args.slot_dir) if args.slot_dir else None,
            )
        elif args.command == "prepare-run":
            prepare_run(args.params, args.run_dir, args.nih_root)
        elif args.command == "plan-runs":
            workflow.print_plan(args.profile, args.run_dir, args.nih_root, everything=args.all)
        elif args.command == "table":
            for st in STUDIES.values():
                print(f"{st.name:16s} figures {','.join(map(str, st.figures)):10s} runs {', '.join(st.runs)}")
    except (ConfigError, InputError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
