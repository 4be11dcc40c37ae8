"""Shared fixtures. Nothing here downloads; generated data goes to a per-session temporary data home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from xrutils.paths import DATA_HOME_ENV, nih_root_from_env

REPO = Path(__file__).resolve().parent.parent

# One thread per test process: tiny models are dominated by threading overhead, and CI has 2 cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _data_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep every generated dataset and cache of the test session out of the repository's data/ folder."""
    home = tmp_path_factory.mktemp("data_home")
    old = os.environ.get(DATA_HOME_ENV)
    os.environ[DATA_HOME_ENV] = str(home)
    yield home
    if old is None:
        os.environ.pop(DATA_HOME_ENV, None)
    else:
        os.environ[DATA_HOME_ENV] = old


@pytest.fixture(scope="session")
def nih_root() -> Path:
    """The real NIH sample, found through the same setting users use (XRUTILS_NIH_ROOT); skipped when absent."""
    root = nih_root_from_env()
    if root is None:
        pytest.skip(
            "XRUTILS_NIH_ROOT is not set: no NIH ChestX-ray14 images to test against "
            "(`make test` sets it to ../shared/nih_sample when that folder exists)"
        )
    if not (root / "Data_Entry_2017.csv").exists() and not (root / "Data_Entry_2017_v2020.csv").exists():
        pytest.skip(f"XRUTILS_NIH_ROOT={root} has no Data_Entry_2017.csv")
    return root


@pytest.fixture(scope="session")
def nih_small64_root() -> Path:
    """The 1,000 real NIH images at 64 px (``../shared/nih_small64``), found through XRUTILS_NIH_SMALL64 (``make
    test`` sets it when the folder exists); skipped when absent."""
    env = os.environ.get("XRUTILS_NIH_SMALL64", "").strip()
    if not env:
        pytest.skip(
            "XRUTILS_NIH_SMALL64 is not set: no 64 px NIH images to test against "
            "(`make test` sets it to ../shared/nih_small64 when that folder exists)"
        )
    root = Path(env).expanduser()
    if not (root / "Data_Entry_2017_v2020.csv").exists() and not (root / "Data_Entry_2017.csv").exists():
        pytest.skip(f"XRUTILS_NIH_SMALL64={root} has no Data_Entry CSV")
    return root
