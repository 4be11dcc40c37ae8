"""Atomic writes, the ground floor every layer that saves a file stands on (standard library only; torch is
imported only by :func:`atomic_torch_save`, when it is called).

A file is written to a temporary name in its own folder and then moved over the target with ``os.replace``, so a
killed process never leaves a half-written file that looks valid, and readers see the old file or the new one.
The temporary file gets the permissions an ordinary ``open()`` would give (``0o666`` less the umask), so a lab
that shares its run folders can read what was written; ``tempfile.mkstemp`` alone would make it private.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()  # what mkdir gives; for folders made private by tempfile.mkdtemp


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically, on error it vanishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
