"""Where things live on disk, and the environment variables that move them.

* ``XRUTILS_NIH_ROOT``: the user's NIH ChestX-ray14 download (the folder with ``Data_Entry_2017.csv``). Tests use
  the same setting to find real images and skip, with a reason, when it is unset or absent.
* ``XRUTILS_DATA_HOME``: generated data (phantom datasets) and resized caches. Default: ``<repo>/data`` when the
  package runs from a checkout, else ``~/.cache/xrutils``.
"""

from __future__ import annotations

import os
from pathlib import Path

NIH_ROOT_ENV = "XRUTILS_NIH_ROOT"
DATA_HOME_ENV = "XRUTILS_DATA_HOME"


def repo_root() -> Path | None:
    """The checkout this package runs from (the folder with pyproject.toml), or None when installed elsewhere."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() and (here / "xrutils").is_dir() else None


def data_home() -> Path:
    env = os.environ.get(DATA_HOME_ENV)
    if env:
        return Path(env).expanduser()
    root = repo_root()
    return root / "data" if root is not None else Path.home() / ".cache" / "xrutils"


def nih_root_from_env() -> Path | None:
    """``$XRUTILS_NIH_ROOT`` as a Path, or None when it is unset or empty."""
    env = os.environ.get(NIH_ROOT_ENV, "").strip()
    return Path(env).expanduser() if env else None
