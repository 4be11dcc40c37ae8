"""environment.yml (conda users) and pyproject.toml (pip users) name the same dependencies."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_pkgs = {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    assert {"python", "pip"} <= conda_pkgs
    have = {_name(r): r.replace(" ", "") for r in pip_section if not r.startswith("-e")}
    assert have.keys() == wanted.keys(), (sorted(have.keys() - wanted.keys()), sorted(wanted.keys() - have.keys()))
    for name, req in wanted.items():
        assert have[name] == req.replace(" ", ""), f"{name}: environment.yml {have[name]!r} vs pyproject {req!r}"
    assert "-e ." in pip_section


def test_top_level_shape() -> None:
    for name in ("environment.yml", "README.md", "notebooks", "xrutils", "data", "figures", "tests",
                 "Makefile", "pyproject.toml", "params", ".ci/run"):
        assert (REPO / name).exists(), name
