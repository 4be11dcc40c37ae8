"""Notebook parameters and run configs: the params files under ``params/<profile>/``, the check every notebook
runs on its parameters, and the RunConfig of one run."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from xrutils.config import PROFILE_NAMES, ConfigError, RunConfig, apply_overrides
from xrutils.paths import repo_root
from xrutils.registry import build_config
from xrutils.studies.table import (
    COMMON_SIZE,
    COMMON_SIZE_PRESETS,
    GAN_JUDGE_PRESETS,
    STUDIES,
    Study,
    run_name,
    run_seed,
    seed_replicate,
    split_run_name,
    study_runs,
)

# ----------------------------------------------------------------------------------------------------------------
# configs and params


# names IPython itself puts into a kernel's namespace (besides the _-prefixed ones)
_KERNEL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})


def check_parameters(namespace: dict[str, Any]) -> None:
    """Refuse unknown and mistyped notebook parameters; each notebook calls it right after its parameters cell.

    The parameters cell declares every parameter with a type (``seed: int = 0``); papermill's injected cell
    assigns plain names. So a name in the namespace that the cell did not declare was passed by mistake (papermill
    itself only warns: ``-p bogus 1`` would run with the defaults), and a declared one must hold its type
    (``-p seed abc`` would otherwise fail far from the cause). Raises :class:`ConfigError` naming them.
    """
    declared = namespace.get("__annotations__")
    if declared is None and callable(namespace.get("__annotate__")):  # Python >= 3.14 evaluates them lazily
        declared = namespace["__annotate__"](1)
    declared = dict(declared or {})
    unknown = sorted(
        k
        for k, v in namespace.items()
        if k not in declared
        and not k.startswith("_")
        and k not in _KERNEL_NAMES
        and not (callable(v) or isinstance(v, types.ModuleType))
    )
    if unknown:
        raise ConfigError(f"unknown notebook parameter(s) {unknown}; this notebook takes {sorted(declared)}")
    for name, kind in declared.items():
        if isinstance(kind, str):  # `from __future__ import annotations` in the cell: names only
            kind = {"str": str, "int": int, "float": float, "bool": bool, "dict": dict, "list": list}.get(
                kind
            )
        if not isinstance(kind, type) or name not in namespace:
            continue
        value = namespace[name]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True  # -p lr 1 is a float parameter given as an integer
        if not ok:
            raise ConfigError(
                f"notebook parameter {name}={value!r} is a {type(value).__name__}; expected {kind.__name__}"
            )


def resolve_path(path: str | Path) -> Path:
    """A relative path is relative to the repository root, wherever the kernel was started (JupyterLab starts
    kernels in notebooks/, papermill under make in the root); absolute paths are kept."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    root = repo_root()
    return (root if root is not None else Path.cwd()) / path


def data_overrides(nih_root: str | Path | None) -> dict[str, Any]:
    """Dotted overrides that point a run at an NIH root; empty (the built-in phantom) when ``nih_root`` is falsy."""
    if not nih_root:
        return {}
    root = resolve_path(nih_root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"nih_root={str(nih_root)!r} is not a folder; expected an NIH ChestX-ray14 root "
            "(the folder with Data_Entry_2017.csv)"
        )
    return {"data.source": "nih", "data.root": str(root.resolve())}


def run_config(
    family: str,
    preset: str,
    profile: str,
    overrides: dict | None = None,
    seed: int = 0,
    nih_root: str | Path | None = "",
) -> RunConfig:
    """The config a model notebook trains: build_config with the NIH root (if any) before the user's overrides."""
    return build_config(family, preset, profile, {**data_overrides(nih_root), **(overrides or {})}, seed)


def params_dir(profile: str, root: Path | None = None) -> Path:
    return (root or _repo()) / "params" / profile


# set by data_overrides() from the NIH root at run time, so never written into a params file
_RUNTIME_KEYS = ("data.source", "data.root")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def run_settings(family: str, preset: str, profile: str) -> dict[str, Any]:
    """Every setting the preset and the profile give a run, as dotted keys: the values that differ from the
    family's defaults. The params file lists them under ``overrides`` so that a run's values can be read and edited
    in one place (params -> RunConfig -> the layer that uses it); the presets (``models/<family>.PRESETS``) and
    the profile table (:mod:`xrutils.profiles`) are where ``python -m xrutils.studies params`` takes them from."""
    from xrutils import profiles, registry

    fam = registry.get(family)
    base = apply_overrides(
        RunConfig(family=family, preset=preset, profile=profile, model=fam.config_cls()), fam.defaults
    )
    have, default = _flat(build_config(family, preset, profile).to_dict()), _flat(base.to_dict())
    # the family's own defaults (lr, epochs, batch size, image size: what the studies vary) and the keys the preset
    # and the profile set, even where they land on a default (the demo's lr1e-5 GAN trains at 1e-4), and every
    # other value that differs
    before_profile = apply_overrides(apply_overrides(base, fam.presets[preset]), profiles.generic(profile))
    touched = {*fam.defaults, *fam.presets[preset], *profiles.generic(profile)}
    touched |= set(profiles.family_part(profile, before_profile))
    skip = {"family", "preset", "profile", "seed", *_RUNTIME_KEYS}
    return {k: v for k, v in have.items() if k not in skip and (k in touched or default.get(k) != v)}


def keep_weights(run: str, profile: str) -> str:
    """The run's ``train.keep_weights`` from the profile table (:data:`xrutils.profiles.KEEP_WEIGHTS`): "all" for
    the runs of Supplementary Figure S1, the "scored" policy for runs a study scores, else the "unscored" one."""
    from xrutils.profiles import KEEP_WEIGHTS
    from xrutils.studies.table import SUPPLEMENTARY

    policy = KEEP_WEIGHTS.get(profile)
    if not policy:
        return "all"
    if run in SUPPLEMENTARY["S1"].runs:
        return policy["S1"]
    return policy["scored" if run in scored_anywhere(profile) else "unscored"]


@functools.cache
def scored_anywhere(profile: str) -> frozenset[str]:
    """Every run some study of ``profile`` scores (computed once a process: it reads the params files' image sizes,
    about 0.7 s, and params generation asks it for every run)."""
    return frozenset(r for s in STUDIES.values() for r in scored_runs(s, profile))


def run_params(run: str, profile: str) -> dict[str, Any]:
    family, preset = split_run_name(run)
    keep = keep_weights(run, profile)
    return {
        "family": family,
        "preset": preset,
        "overrides": {
            **run_settings(family, preset, profile),
            **({"train.keep_weights": keep} if keep != "all" else {}),
        },
        "profile": profile,
        "run_dir": f"runs/{profile}/{run}",
        "seed": run_seed(run),
    }


def study_params(study: str, profile: str) -> dict[str, Any]:
    if study == "dataset":
        return {
            "profile": profile,
            "fig_dir": f"figures/{profile}",
            "image_size": 256 if profile == "thesis" else 128,
            "n_images": 16,
        }
    if study == "architectures":
        # smoke draws the smoke-size networks (building the 113M-parameter thesis UNet costs a smoke build ~15 s)
        return {
            "profile": profile,
            "fig_dir": f"figures/{profile}",
            "model_profile": "smoke" if profile == "smoke" else "thesis",
        }
    s = STUDIES[study]
    params: dict[str, Any] = {
        "study": study,
        "profile": profile,
        "run_root": f"runs/{profile}",
        "fig_dir": f"figures/{profile}",
        "protocol": "corrected",
        "classifier": s.classifier,
        "metrics": study == "compare",
        "eval_overrides": {},
    }
    if study == "compare":
        from xrutils.profiles import ORIGINAL_PROTOCOL_SKIP

        params["compare_protocols"] = True
        params["original_skip"] = dict(ORIGINAL_PROTOCOL_SKIP.get(profile, {}))
    return params


def read_params(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of notebook parameters, got {type(data).__name__}")
    return data


def params_notebook(path: str | Path) -> str:
    """The notebook a params file parameterises: runs -> the family's model notebook, else the study's."""
    stem = Path(path).stem
    if "__" in stem:
        family, _ = split_run_name(stem)
        return f"notebooks/{family}.ipynb"
    if stem not in STUDIES:
        raise ConfigError(
            f"{path}: {stem!r} is neither a run (<family>__<preset>) nor a study {sorted(STUDIES)}"
        )
    return f"notebooks/{stem}.ipynb"


def write_params(
    profiles: Iterable[str] = PROFILE_NAMES, *, force: bool = False, root: Path | None = None
) -> list[Path]:
    """Write params/<profile>/<run|study>.yaml; existing files are kept (users edit them) unless ``force``."""
    written = []
    for profile in profiles:
        folder = params_dir(profile, root)
        folder.mkdir(parents=True, exist_ok=True)
        items = [(r, run_params(r, profile)) for r in all_runs(profile)]
        items += [(s, study_params(s, profile)) for s in STUDIES]
        for name, params in items:
            path = folder / f"{name}.yaml"
            if path.exists() and not force:
                continue
            header = f"# papermill parameters of {params_notebook(path)} ({profile} profile)\n"
            if "__" in name:
                header += (
                    "# overrides: every value the preset and the profile set (the rest are the family's defaults);"
                    " edit them here\n"
                )
            path.write_text(header + yaml.safe_dump(params, sort_keys=False))
            written.append(path)
    return written


def _repo() -> Path:
    root = repo_root()
    if root is None:
        raise RuntimeError("xrutils.studies needs a source checkout (params/, notebooks/); none found")
    return root


# ----------------------------------------------------------------------------------------------------------------
# judges


def image_size_of(run_dir: str | Path) -> int:
    return RunConfig.load(Path(run_dir) / "config.json").data.image_size


def resolve_judges(sizes: Iterable[int], size_of: Callable[[str], int | None], where: str) -> dict[int, str]:
    """Image size -> the GAN run whose final discriminator judges that size: the one judge resolver.

    ``size_of(run)`` gives a candidate's image size (``None`` when it does not exist); the candidates are the
    presets of :data:`GAN_JUDGE_PRESETS`, in order. ``where`` names what was searched, for the error."""
    by_size: dict[int, str] = {}
    for preset in GAN_JUDGE_PRESETS:
        run = run_name("gan", preset)
        size = size_of(run)
        if size is not None:
            by_size.setdefault(size, run)
    wanted = sorted(set(sizes))
    missing = [s for s in wanted if s not in by_size]
    if missing:
        found = ", ".join(f"{r} {s}²" for s, r in sorted(by_size.items())) or "none"
        raise JudgeNotFoundError(
            f"no GAN judge run of image size {missing} {where} (GAN judge runs: {found}); the judges are "
            f"{', '.join(run_name('gan', p) for p in GAN_JUDGE_PRESETS)}, train the one of that size first"
        )
    return {s: by_size[s] for s in wanted}


class JudgeNotFoundError(ConfigError, FileNotFoundError):
    """No GAN judge run has the image size asked for (a missing run folder, or a profile without one)."""


def judge_runs_for(study: Study, profile: str, params_root: Path | None = None) -> list[str]:
    """The judge runs of a study in ``profile``, resolved from the params files' configs (for the build)."""
    sizes = {_param_image_size(r, profile, params_root) for r in study.curve_runs} | set(study.extra_judges)
    if study.common_size:
        sizes.add(COMMON_SIZE)
    found = resolve_judges(
        sizes,
        lambda run: _param_image_size(run, profile, params_root),
        f"in profile {profile} (study {study.name})",
    )
    return list(found.values())


def _param_image_size(run: str, profile: str, params_root: Path | None) -> int:
    path = params_dir(profile, params_root) / f"{run}.yaml"
    if not path.exists():  # what its params file will hold: the preset under the profile
        return build_config(*split_run_name(run), profile).data.image_size
    p = read_params(path)
    return build_config(
        p["family"], p["preset"], p.get("profile", profile), p.get("overrides") or {}, p.get("seed", 0)
    ).data.image_size


def common_size_runs(profile: str, params_root: Path | None = None) -> list[str]:
    """One run per family at :data:`~xrutils.studies.table.COMMON_SIZE` in ``profile``: the first preset of
    :data:`~xrutils.studies.table.COMMON_SIZE_PRESETS` whose config has that image size."""
    out = []
    for family, presets in COMMON_SIZE_PRESETS.items():
        found = [
            p for p in presets if _param_image_size(run_name(family, p), profile, params_root) == COMMON_SIZE
        ]
        if not found:
            raise ConfigError(
                f"profile {profile}: no {family} run among {[run_name(family, p) for p in presets]} trains at "
                f"{COMMON_SIZE}x{COMMON_SIZE}; add a preset of that size to COMMON_SIZE_PRESETS[{family!r}]"
            )
        out.append(run_name(family, found[0]))
    return out


def seeded_runs(profile: str) -> dict[str, int]:
    """The runs a conclusion rests on in ``profile`` and their number of training seeds (``profiles.SEEDS``)."""
    from xrutils.profiles import SEEDS
    from xrutils.studies.results import CLAIMS

    n, scope = SEEDS.get(profile, (1, "compare"))
    if n < 2:
        return {}
    compare = [s for s in STUDIES.values() if s.common_size]
    runs = [r for s in compare for r in s.curve_runs]
    runs += [r for s in compare for r in common_size_runs(profile)]
    if scope == "claims":
        runs += [r for claims in CLAIMS.values() for c in claims for r in (c.better, c.worse)]
    elif scope != "compare":
        raise ConfigError(f"profiles.SEEDS[{profile!r}]: scope {scope!r}; expected 'claims' or 'compare'")
    return dict.fromkeys(runs, n)


def replicates(runs: Iterable[str], profile: str) -> list[str]:
    """Each of ``runs`` followed by its seed replicates in ``profile`` (``<run>@seed1`` ...), deduplicated."""
    seeds = seeded_runs(profile)
    out: list[str] = []
    for run in runs:
        for name in (run, *(seed_replicate(run, k) for k in range(1, seeds.get(run, 1)))):
            if name not in out:
                out.append(name)
    return out


def scored_runs(study: Study, profile: str) -> list[str]:
    """The runs a study's evaluation scores: its curve runs, the four families at the common size (compare), and
    the seed replicates of both; ``ctx.evaluate()`` pools each run's seeds into one group."""
    runs = list(study.curve_runs)
    if study.common_size:
        runs += common_size_runs(profile)
    return replicates(runs, profile)


def study_run_names(study: Study, profile: str) -> list[str]:
    """Every run a study reads in ``profile`` (its figures' runs, then what it scores), judges not included."""
    return list(dict.fromkeys([*study_runs(study, profile), *scored_runs(study, profile)]))


def all_runs(profile: str | None = None) -> list[str]:
    """Every run the figures of ``profile`` need, judges and seed replicates included, in study order
    (deduplicated); without a profile, every run any profile needs."""
    out: list[str] = []
    for p in [profile] if profile else PROFILE_NAMES:
        for study in STUDIES.values():
            judges = judge_runs_for(study, p) if study.curve_runs else []
            for run in (*study_run_names(study, p), *judges):
                if run not in out:
                    out.append(run)
    return out
