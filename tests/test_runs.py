"""Run folders: layout, atomic writes, checkpoints, history and metrics."""

from __future__ import annotations

import os

import pytest
import torch

from xrutils.atomic import atomic_path, atomic_write_text
from xrutils.registry import build_config
from xrutils.runs import RunDir


def test_layout_and_config_round_trip(tmp_path) -> None:
    run = RunDir(tmp_path / "gan__baseline").create()
    cfg = build_config("gan", "baseline", "smoke")
    run.write_config(cfg)
    assert run.read_config() == cfg
    assert run.checkpoint_path(3).name == "epoch_003.pt"
    assert run.sample_path(12).parent == run.samples_dir


def test_checkpoints_are_listed_loaded_and_complete(tmp_path) -> None:
    run = RunDir(tmp_path / "r").create()
    cfg = build_config("gan", "baseline", "smoke", overrides={"train.epochs": 2})
    run.write_config(cfg)
    assert run.latest_checkpoint() is None and not run.is_complete()
    run.save_checkpoint(1, {"x": torch.ones(2)})
    (run.checkpoint_dir / "notes.txt").write_text("ignored")
    assert run.checkpoint_epochs() == [1] and not run.is_complete()
    run.save_checkpoint(2, {"x": torch.full((2,), 2.0)})
    assert run.checkpoint_epochs() == [1, 2] and run.is_complete()
    assert torch.equal(run.load_checkpoint()["x"], torch.full((2,), 2.0))
    with pytest.raises(FileNotFoundError, match=r"epoch 7.*\[1, 2\]"):
        run.load_checkpoint(7)


def test_atomic_write_leaves_nothing_on_error(tmp_path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_history_and_metrics(tmp_path) -> None:
    run = RunDir(tmp_path / "r").create()
    rows = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25, "lr": 1e-4}]
    run.write_history(rows)
    assert run.read_history() == [{"epoch": 1, "loss": 0.5, "lr": ""}, {"epoch": 2, "loss": 0.25, "lr": 1e-4}]
    run.update_metrics({"judge": {"score": [1.0]}})
    merged = run.update_metrics({"fd": torch.tensor(2.5)})
    assert merged == {"judge": {"score": [1.0]}, "fd": 2.5} == run.read_metrics()


def test_missing_config_names_the_folder(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no config.json"):
        RunDir(tmp_path / "nothing").read_config()


def test_atomic_writes_get_the_permissions_of_an_ordinary_open_under_the_umask(tmp_path):
    # mkstemp alone makes files private (0600): a lab sharing run folders could not read them (issue 12, D16)
    import stat

    from xrutils import atomic

    atomic_write_text(tmp_path / "config.json", "{}\n")
    with open(tmp_path / "plain.txt", "w") as f:
        f.write("x")
    mode = stat.S_IMODE((tmp_path / "config.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o666 & ~atomic._umask()
