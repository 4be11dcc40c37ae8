"""The errors a user can act on, in one place (standard library only: every layer may import it).

Each message names the file, field or value at fault and what was expected. The command line
(:func:`xrutils.cli.main`) prints such an error as one ``error: ...`` line and exits with status 2 (bad input) or 1
(the machine: a full disk, a non-finite run); a traceback only with ``--debug``. Library callers catch the classes
below, or ``ValueError`` / ``OSError``, which they extend, as before.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
from pathlib import Path


class InputError(ValueError):
    """Bad input a user can fix: a setting, a file, a folder. The message says which and what was expected."""


class DataError(InputError):
    """A dataset file or folder that is not what its setting says (a malformed CSV, an empty split list, ...)."""


class RunBusyError(InputError):
    """Another process is writing the same run folder."""


class DiskFullError(OSError):
    """Not enough free space for a write; names the file, the bytes needed (when known) and the bytes free."""

    def __init__(self, path: str | Path, needed: int | None = None, free: int | None = None):
        path = Path(path)
        if free is None:
            free = free_bytes(path)
        need = f" needs {_size(needed)}," if needed else ""
        have = f" {_size(free)} free" if free is not None else ""
        super().__init__(
            errno.ENOSPC,
            f"no space left on device for {path}:{need}{have} on {_existing(path)}; free some space "
            f"(or point XRUTILS_DATA_HOME / the run folder elsewhere) and rerun: finished work is kept",
        )
        self.filename = str(path)

    def __str__(self) -> str:  # OSError's default adds "[Errno 28]" and the filename again
        return str(self.strerror)


def free_bytes(path: str | Path) -> int | None:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent); None if unknown."""
    try:
        return shutil.disk_usage(_existing(Path(path))).free
    except OSError:
        return None


def ensure_free_space(path: str | Path, needed: int, *, margin: int = 16 << 20) -> None:
    """Raise :class:`DiskFullError` before a write of ``needed`` bytes to ``path`` that cannot fit."""
    free = free_bytes(path)
    if free is not None and free < needed + margin:
        raise DiskFullError(path, needed, free)


def is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def _existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if os.path.exists(p):
            return p
    return Path(".")


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    if n < 1024:
        return f"{n} B"
    power = min(4, int(math.log(n, 1024)))
    return f"{n / 1024**power:.1f} {('KB', 'MB', 'GB', 'TB')[power - 1]}"
