"""pyproject.toml holds the one dependency list: environment.yml is generated from it, requirements.lock pins it."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

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
    assert have.keys() == wanted.keys(), (
        sorted(have.keys() - wanted.keys()),
        sorted(wanted.keys() - have.keys()),
    )
    for name, req in wanted.items():
        assert have[name] == req.replace(" ", ""), (
            f"{name}: environment.yml {have[name]!r} vs pyproject {req!r}"
        )
    assert "-e ." in pip_section


def test_top_level_shape() -> None:
    for name in (
        "environment.yml",
        "README.md",
        "notebooks",
        "xrutils",
        "data",
        "figures",
        "tests",
        "Makefile",
        "pyproject.toml",
        "params",
        ".ci/run",
    ):
        assert (REPO / name).exists(), name


def _generator():
    spec = importlib.util.spec_from_file_location("environment", REPO / "make" / "environment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_environment_yml_is_the_generated_one() -> None:
    assert (REPO / "environment.yml").read_text() == _generator().environment_yml(), (
        "run `make environment.yml`"
    )


def test_the_lock_pins_every_dependency_within_pyprojects_ranges() -> None:
    from packaging.requirements import Requirement

    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not an exact pin (name==version)"
            pins[_name(name)] = version
    for req in map(Requirement, _generator().requirements()):
        assert _name(req.name) in pins, f"requirements.lock lacks {req.name}; run `make lock`"
        assert req.specifier.contains(pins[_name(req.name)]), (
            f"requirements.lock pins {req.name}=={pins[_name(req.name)]}, outside pyproject's {req}; run `make lock`"
        )


def test_uv_installs_from_the_sources_pip_is_configured_with() -> None:
    config = "\n".join(
        [
            ":env:.find-links='/opt/wheels'",
            ":env:.default-timeout='180'",
            "global.constraint='/etc/pip/constraints.txt'",
            "global.extra-index-url='file:///a/simple file:///b/simple'",
            "global.find-links='/opt/wheels'",
            "global.cert='/etc/ssl/certs/ca.crt'",
        ]
    )
    assert _generator().uv_args(config) == [
        "--index-strategy",
        "unsafe-best-match",  # pip's choice of the best version across all sources
        "--find-links",
        "/opt/wheels",  # once, although both the variable and the file set it
        "--constraint",
        "/etc/pip/constraints.txt",
        "--extra-index-url",
        "file:///a/simple",
        "--extra-index-url",
        "file:///b/simple",
    ]
    assert _generator().uv_args("") == ["--index-strategy", "unsafe-best-match"]  # plain PyPI
