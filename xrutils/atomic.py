"""Atomic writes, locks and leftovers: the ground floor every layer that saves a file stands on (standard library
only; torch is imported only by :func:`atomic_torch_save`, when it is called).

A file is written to a temporary name in its own folder and then moved over the target with ``os.replace``, so a
killed process never leaves a half-written file that looks valid, and readers see the old file or the new one.
The temporary file gets the permissions an ordinary ``open()`` would give (``0o666`` less the umask), so a lab
that shares its run folders can read what was written; ``tempfile.mkstemp`` alone would make it private.

Temporary names carry the writer's process id (``.<name>.<pid>.<random>.tmp``), so whoever comes next can tell
the leftovers of a killed process from a live write: :func:`remove_stale_tmp`. A write that finds the disk full
raises :class:`xrutils.errors.DiskFullError` naming the target, not the temporary file.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xrutils.errors import DiskFullError, RunBusyError, ensure_free_space, is_disk_full


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()  # what mkdir gives; for folders made private by tempfile.mkdtemp
_TMP_RE = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")  # .<name>.<pid>.<random>.tmp (files and folders)


def tmp_prefix(name: str) -> str:
    """The prefix of this process's temporary names for ``name`` (for mkstemp / mkdtemp, with suffix ".tmp")."""
    return f".{name}.{os.getpid()}."


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically, on error it vanishes."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path.name), suffix=".tmp", dir=path.parent)
    except OSError as e:
        if is_disk_full(e):
            raise DiskFullError(path) from e
        raise
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except OSError as e:
        if is_disk_full(e) and not isinstance(e, DiskFullError):
            raise DiskFullError(path) from e
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` atomically. The object is serialised in memory first: a full disk then fails as an ordinary
    write that names ``path`` (torch's own writer reports it as ``basic_ios::clear``), checked before writing."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getbuffer()
    ensure_free_space(path, data.nbytes, margin=0)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_tmp(folder: str | Path, *, owned: bool = False, max_age_s: float = 86_400) -> list[Path]:
    """Delete the temporary files and folders in ``folder`` (not below) whose writer's process is gone.

    ``owned``: the caller holds the folder's lock, so every temporary entry there is a leftover. Entries without a
    process id in their name (written before names carried one) go when older than ``max_age_s``.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        m = _TMP_RE.match(entry.name)
        if not owned:
            if m and pid_alive(int(m.group(1))):
                continue
            if not m and now - entry.stat(follow_symlinks=False).st_mtime < max_age_s:
                continue
        p = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


@contextlib.contextmanager
def exclusive_lock(lock_file: str | Path, *, wait: bool = True, what: str | None = None) -> Iterator[None]:
    """An exclusive advisory lock on ``lock_file`` for the ``with`` block; the OS releases it if the process dies.

    ``wait=False``: when another process holds it, raise :class:`xrutils.errors.RunBusyError` naming ``what``
    (default: the lock's folder) and the holder's process id. No-op where ``fcntl`` is missing (Windows).
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    lock_file = Path(lock_file)
    with open(lock_file, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise RunBusyError(
                f"{what or lock_file.parent}: another process (pid {holder}) is writing it; wait for it to "
                f"finish, or use another folder"
            ) from None
        try:
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
