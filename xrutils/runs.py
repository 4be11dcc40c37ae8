"""The layout of a run folder, in one place.

```
runs/<profile>/<run>/
  config.json            the RunConfig (JSON round trip)
  history.csv            one row per epoch: losses, images/s, seconds, learning rate
  metrics.json           evaluator results for this run (merged by key)
  checkpoints/epoch_NNN.pt   model, optimisers, schedulers, scaler, RNG states, epoch and step
  samples/epoch_NNN.png  fixed-noise sample grid of each epoch
  eval/                  evaluator caches (generated samples per checkpoint, scores)
  notebook.ipynb         the executed notebook, when a notebook trained the run
  .lock                  held by the process that trains into the folder (RunDir.writing)
```
Epochs are 1-based in file names: ``epoch_001`` is the state after the first epoch. Every write is atomic
(:mod:`xrutils.atomic`), so a killed process never leaves a half-written file that looks valid, and only one
process trains into a folder at a time.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from xrutils.atomic import atomic_path, atomic_torch_save, atomic_write_text, exclusive_lock, remove_stale_tmp
from xrutils.errors import InputError

_EPOCH_RE = re.compile(r"epoch_(\d{3,})\.pt$")
_DROPPED_RE = re.compile(r"epoch_(\d{3,})\.dropped\.json$")
_GRID_RE = re.compile(r"epoch_(\d{3,})\.png$")
LOCK_NAME = ".lock"
GRID_PADDING = 2  # pixels between the tiles of a sample grid (torchvision make_grid's default, black)


class CheckpointError(InputError):
    """A checkpoint file cannot be read, or does not belong to the run it is in; the message names the file."""


class RunDir:
    """Paths and small readers/writers of one run folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- paths -----------------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.csv"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    def checkpoint_path(self, epoch: int) -> Path:
        return self.checkpoint_dir / f"epoch_{epoch:03d}.pt"

    def dropped_path(self, epoch: int) -> Path:
        """The record left where a checkpoint's weights were dropped (``train.keep_weights``)."""
        return self.checkpoint_dir / f"epoch_{epoch:03d}.dropped.json"

    def sample_path(self, epoch: int) -> Path:
        return self.samples_dir / f"epoch_{epoch:03d}.png"

    def grid_epochs(self) -> list[int]:
        """Epochs (1-based) with a fixed-noise sample grid on disk, ascending."""
        if not self.samples_dir.is_dir():
            return []
        found = (_GRID_RE.search(p.name) for p in self.samples_dir.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def create(self) -> RunDir:
        for d in (self.path, self.checkpoint_dir, self.samples_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    @contextlib.contextmanager
    def writing(self) -> Iterator[RunDir]:
        """Hold the run folder's lock (``.lock``) while training writes into it; a second writer gets
        :class:`xrutils.errors.RunBusyError` at once instead of mixing its checkpoints into this run's. Leftover
        temporary files of killed writers are removed first."""
        existed = self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            with exclusive_lock(self.lock_path, wait=False, what=f"run folder {self.path}"):
                remove_stale_tmp(
                    self.path
                )  # metrics.json is written by evaluators too: only dead writers' files
                for d in (
                    self.checkpoint_dir,
                    self.samples_dir,
                ):  # only training writes here, and we hold the lock
                    remove_stale_tmp(d, owned=True)
                yield self
        finally:
            if not existed and [p.name for p in self.path.iterdir()] == [LOCK_NAME]:  # failed before writing
                self.lock_path.unlink(missing_ok=True)
                self.path.rmdir()

    def has_content(self) -> bool:
        """True when the folder exists and holds anything besides its lock file."""
        return self.path.is_dir() and any(p.name != LOCK_NAME for p in self.path.iterdir())

    # -- config ----------------------------------------------------------------------------------------------------
    def write_config(self, cfg: Any) -> None:
        atomic_write_text(self.config_path, cfg.to_json() + "\n")

    def read_config(self) -> Any:
        from xrutils.config import RunConfig

        if not self.config_path.exists():
            raise FileNotFoundError(f"{self.config_path}: no config.json; is {self.path} a run folder?")
        return RunConfig.load(self.config_path)

    # -- checkpoints -----------------------------------------------------------------------------------------------
    def _epochs(self, pattern: re.Pattern) -> list[int]:
        if not self.checkpoint_dir.is_dir():
            return []
        found = (pattern.search(p.name) for p in self.checkpoint_dir.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def checkpoint_epochs(self) -> list[int]:
        """Checkpointed epochs (1-based), ascending: those with weights on disk and those whose weights were
        dropped after their evaluation samples were drawn (:meth:`dropped_epochs`)."""
        return sorted(set(self.weight_epochs()) | set(self.dropped_epochs()))

    def weight_epochs(self) -> list[int]:
        """Epochs whose checkpoint file (with weights) is on disk, ascending."""
        return self._epochs(_EPOCH_RE)

    def dropped_epochs(self) -> list[int]:
        """Epochs whose weights were dropped (``train.keep_weights``), leaving a record, ascending."""
        return [e for e in self._epochs(_DROPPED_RE) if not self.checkpoint_path(e).exists()]

    def dropped_record(self, epoch: int) -> dict[str, Any] | None:
        """The record of a checkpoint whose weights were dropped: ``epoch``, ``step``, ``fingerprint`` (the identity
        its evaluation samples are filed under), ``samples`` (their file names), ``policy``; None when the
        checkpoint's weights are on disk or the epoch was never checkpointed."""
        if self.checkpoint_path(epoch).exists() or not self.dropped_path(epoch).exists():
            return None
        return json.loads(self.dropped_path(epoch).read_text())

    def checkpoint_fingerprint(self, epoch: int) -> str:
        """The identity of a checkpoint that names the samples drawn from it: size and modification time of its
        file (a retrained run never reuses stale samples), or, once its weights are dropped, the identity recorded
        then (so copying the run folder keeps it)."""
        path = self.checkpoint_path(epoch)
        if path.exists():
            st = path.stat()
            return hashlib.sha1(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:8]
        record = self.dropped_record(epoch)
        if record is None:
            raise FileNotFoundError(
                f"{self.path}: no checkpoint for epoch {epoch}; epochs on disk: {self.checkpoint_epochs()}"
            )
        return str(record["fingerprint"])

    def latest_checkpoint(self) -> Path | None:
        """The newest checkpoint file with weights (the newest checkpoint always keeps them)."""
        epochs = self.weight_epochs()
        return self.checkpoint_path(epochs[-1]) if epochs else None

    def load_checkpoint(self, epoch: int | None = None, map_location: str | torch.device = "cpu") -> dict:
        path = self.checkpoint_path(epoch) if epoch is not None else self.latest_checkpoint()
        if epoch is not None and (record := self.dropped_record(epoch)) is not None:
            raise CheckpointError(
                f"{self.path}: epoch {epoch} keeps no weights: train.keep_weights={record.get('policy')!r} "
                f"dropped them once a newer checkpoint was on disk ({self.dropped_path(epoch).name}), after drawing "
                f"its evaluation samples {record.get('samples') or '(none)'} into {self.path / 'eval' / 'samples'}. "
                f"Epochs with weights: {self.weight_epochs()}. To sample any epoch in other ways, train with "
                f"train.keep_weights=all"
            )
        if path is None or not path.exists():
            have = self.checkpoint_epochs()
            raise FileNotFoundError(f"{self.path}: no checkpoint for epoch {epoch}; epochs on disk: {have}")
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"{path}: not a readable checkpoint ({first}); it may be truncated or damaged. Move it "
                f"aside to fall back to the previous epoch's checkpoint, or retrain the run"
            ) from e

    def save_checkpoint(self, epoch: int, state: dict) -> Path:
        path = self.checkpoint_path(epoch)
        atomic_torch_save(state, path)
        return path

    def drop_weights(self, epoch: int, record: dict[str, Any]) -> None:
        """Replace a checkpoint by ``record`` (see :meth:`dropped_record`, ``fingerprint`` filled in here): the
        record is written atomically first, then the weights are deleted; a crash in between leaves both, and the
        checkpoint file counts until the next drop removes it."""
        record = {**record, "epoch": epoch, "fingerprint": self.checkpoint_fingerprint(epoch)}
        atomic_write_text(self.dropped_path(epoch), json.dumps(record, indent=2, sort_keys=True) + "\n")
        self.checkpoint_path(epoch).unlink()

    # -- history ---------------------------------------------------------------------------------------------------
    def read_history(self) -> list[dict[str, Any]]:
        if not self.history_path.exists():
            return []
        with self.history_path.open(newline="") as f:
            return [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def write_history(self, rows: list[dict[str, Any]]) -> None:
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        with atomic_path(self.history_path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    # -- metrics ---------------------------------------------------------------------------------------------------
    def read_metrics(self) -> dict[str, Any]:
        if not self.metrics_path.exists():
            return {}
        return json.loads(self.metrics_path.read_text())

    def update_metrics(self, new: dict[str, Any]) -> dict[str, Any]:
        """Merge ``new`` into metrics.json (top-level keys replaced) and write it atomically."""
        merged = {**self.read_metrics(), **new}
        atomic_write_text(
            self.metrics_path, json.dumps(merged, indent=2, sort_keys=True, default=_jsonable) + "\n"
        )
        return merged

    def is_complete(self) -> bool:
        """True when config.json exists and the last epoch of its config has a checkpoint."""
        if not self.config_path.exists():
            return False
        cfg = self.read_config()
        return cfg.train.epochs in self.checkpoint_epochs()


def read_grid(path: str | Path, image_size: int, n: int | None = None) -> torch.Tensor:
    """The tiles of a sample grid PNG as uint8 ``(n, 1, S, S)``, in row-major order (the inverse of the grid writer,
    ``xrutils.train.save_grid``: tiles of ``image_size`` separated by :data:`GRID_PADDING` pixels). ``n`` drops the
    empty filler tiles of an incomplete last row."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        a = np.asarray(im.convert("L"))
    p, s = GRID_PADDING, image_size
    rows, cols = (a.shape[0] - p) // (s + p), (a.shape[1] - p) // (s + p)
    if rows < 1 or cols < 1 or a.shape != (rows * (s + p) + p, cols * (s + p) + p):
        raise ValueError(
            f"{path}: a {a.shape[1]}x{a.shape[0]} image is not a grid of {s}x{s} tiles with {p}-pixel padding"
        )
    tiles = [
        a[p + r * (s + p) : p + r * (s + p) + s, p + c * (s + p) : p + c * (s + p) + s]
        for r in range(rows)
        for c in range(cols)
    ]
    if n is not None:
        if n > len(tiles):
            raise ValueError(f"{path}: holds {len(tiles)} tiles, {n} requested")
        tiles = tiles[:n]
    return torch.from_numpy(np.stack(tiles)[:, None].copy())


def _num(v: str) -> Any:
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def _jsonable(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
