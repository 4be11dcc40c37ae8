"""``python -m xrutils data phantom|cache|info`` and an interrupted cache build (a killed process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xrutils.cli import main
from xrutils.data.cache import DELAY_ENV, cached_images
from xrutils.data.nih import index_split

REPO = Path(__file__).resolve().parent.parent
CACHE_KEYS = {"split", "size", "images", "missing", "seconds", "images_per_s", "path", "reused"}


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "ph"
    assert main(["data", "phantom", "--out", str(out), "--n", "40", "--seed", "2", "--size", "64"]) == 0
    return out


def test_phantom_command(phantom_dir, capsys):
    assert len(list((phantom_dir / "images").glob("*.png"))) == 40
    assert (phantom_dir / "Data_Entry_2017.csv").exists() and (phantom_dir / "test_list.txt").exists()
    assert main(["data", "phantom", "--out", str(phantom_dir), "--n", "4"]) == 2  # refuses to overwrite
    assert "already holds a dataset" in capsys.readouterr().err


def test_cache_command_builds_then_reuses(phantom_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XRUTILS_DATA_HOME", str(tmp_path))
    args = ["data", "cache", "--root", str(phantom_dir), "--size", "32", "--split", "all", "--no-progress"]
    assert main(args) == 0
    first = _last_json(capsys.readouterr().out)
    assert CACHE_KEYS <= set(first)
    assert (
        first["images"] == 40 and first["missing"] == 0 and first["reused"] is False and first["size"] == 32
    )
    assert Path(first["path"]).is_relative_to(tmp_path / "cache")
    assert main(args) == 0
    second = _last_json(capsys.readouterr().out)
    assert second["reused"] is True and second["path"] == first["path"]
    assert main(args[:-3] + ["--split", "test", "--no-progress"]) == 0
    assert _last_json(capsys.readouterr().out)["images"] < 40


def test_cache_command_without_root_is_an_error(monkeypatch, capsys):
    monkeypatch.delenv("XRUTILS_NIH_ROOT", raising=False)
    assert main(["data", "cache", "--size", "32"]) == 2
    assert "XRUTILS_NIH_ROOT" in capsys.readouterr().err


def test_info_command(phantom_dir, capsys):
    assert main(["data", "info", "--root", str(phantom_dir)]) == 0
    out = capsys.readouterr().out
    assert "No Finding" in out and "train_val" in out and "Hernia" in out
    assert main(["data", "info", "--root", str(phantom_dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sum(r["count"] for r in rows if r["label"] == "No Finding") <= 40 and len(rows) == 30


def test_killed_cache_build_leaves_no_valid_cache(phantom_dir, tmp_path, monkeypatch):
    """Kill ``python -m xrutils data cache`` mid-build (slowed by the documented test hook); nothing validates."""
    env = {**os.environ, "XRUTILS_DATA_HOME": str(tmp_path), DELAY_ENV: "0.15", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "xrutils",
        "data",
        "cache",
        "--root",
        str(phantom_dir),
        "--size",
        "16",
        "--split",
        "all",
        "--workers",
        "2",
        "--no-progress",
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("cache/*/.images.npy.*.tmp")):  # the build has started writing
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "cache build never started"
            time.sleep(0.05)
        time.sleep(0.5)  # some images decoded, far from all 40 (40 x 0.15 s / 2 workers = 3 s)
        assert proc.poll() is None, "build finished before it could be killed; raise the delay"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the process and its pool workers (its own session)
        proc.wait()
    assert not list(tmp_path.glob("cache/*/manifest.json"))
    assert not list(tmp_path.glob("cache/*/images.npy"))

    monkeypatch.setenv("XRUTILS_DATA_HOME", str(tmp_path))
    idx = index_split(phantom_dir, "all")
    res = cached_images(idx.names, idx.paths, 16, workers=1, progress=False)
    assert not res.reused and res.images.shape == (40, 16, 16)  # rebuilt, and the stale temp file is gone
    assert not list(tmp_path.glob("cache/*/.images.*.tmp"))
    assert cached_images(idx.names, idx.paths, 16, workers=1, progress=False).reused
