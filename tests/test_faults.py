"""Bad input and faults (issue 12): one regression test per defect of the sweep at commit 28eb387 (D1-D16), each
through the interface the sweep used, plus extending a finished run. Tiny smoke runs only."""

from __future__ import annotations

import errno
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from xrutils import atomic, build_config, studies
from xrutils.atomic import atomic_path, remove_stale_tmp
from xrutils.cli import main
from xrutils.config import ConfigError
from xrutils.data import cached_images, ensure_phantom, make_phantom
from xrutils.data.cache import cache_root
from xrutils.data.nih import decode_image, find_images, index_split, read_metadata, read_split
from xrutils.errors import DataError, DiskFullError, InputError, RunBusyError
from xrutils.runs import RunDir

SMOKE = ["--preset", "tiny", "--profile", "smoke", "--no-progress"]


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def train_args(family: str, run: Path, *sets: str) -> list[str]:
    return ["train", "--family", family, *SMOKE, "--run-dir", run, *[a for s in sets for a in ("--set", s)]]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """A finished tiny GAN at 32 and at 16 px and a tiny VAE (judges and judged of the evaluate cases)."""
    root = tmp_path_factory.mktemp("runs")
    runs = {"gan32": root / "gan32", "gan16": root / "gan16", "vae32": root / "vae32"}
    assert main([str(a) for a in train_args("gan", runs["gan32"], "train.epochs=1")]) == 0
    assert (
        main([str(a) for a in train_args("gan", runs["gan16"], "train.epochs=1", "data.image_size=16")]) == 0
    )
    assert main([str(a) for a in train_args("vae", runs["vae32"], "train.epochs=1")]) == 0
    return runs


@pytest.fixture()
def nih_like(tmp_path) -> Path:
    """A small dataset in NIH layout (a phantom, without its phantom.json: what an NIH download looks like)."""
    root = make_phantom(tmp_path / "nih", n=24, seed=0, size=64)
    (root / "phantom.json").unlink()
    return root


# ---- D1: train / sample / evaluate turn bad input into one line and exit 2 ----------------------------------


def test_d1_truncated_image_in_training_data(capsys, nih_like, tmp_path):
    victim = nih_like / "images" / sorted(read_split(nih_like, "train_val"))[0]
    victim.write_bytes(victim.read_bytes()[:300])
    code, _, err = cli(capsys, *train_args("gan", tmp_path / "r", "data.source=nih", f"data.root={nih_like}"))
    assert code == 2 and victim.name in one_error_line(err) and "data.skip_bad" in err


def test_d1_bad_chestmnist_file(capsys, tmp_path):
    bad = tmp_path / "chestmnist_32.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    code, _, err = cli(
        capsys, *train_args("gan", tmp_path / "r", "data.source=chestmnist", f"data.chestmnist_path={bad}")
    )
    assert code == 2 and str(bad) in one_error_line(err)


def test_d1_evaluate_wrong_size_judge_non_gan_judge_and_out_folder(capsys, tiny_runs, tmp_path):
    base = [
        "evaluate",
        "--runs",
        tiny_runs["vae32"],
        "--no-classifier",
        "--no-metrics",
        "--no-store",
        "--quiet",
    ]
    code, _, err = cli(capsys, *base, "--judge", tiny_runs["gan16"], "--out", tmp_path / "a.json")
    assert code == 2 and "give a GAN judge trained at 32" in one_error_line(err)
    code, _, err = cli(capsys, *base, "--judge", tiny_runs["vae32"], "--out", tmp_path / "b.json")
    assert code == 2 and "the judge must be a 'gan' run" in one_error_line(err)
    code, _, err = cli(capsys, *base, "--out", tmp_path)
    assert code == 2 and "is a folder" in one_error_line(err)
    code, _, err = cli(capsys, "sample", "--run-dir", tiny_runs["gan32"], "--n", 4, "--out", tmp_path)
    assert code == 2 and "is a folder" in one_error_line(err)


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(
            [
                "sample",
                "--run-dir",
                str(tmp_path / "missing"),
                "--n",
                "4",
                "--out",
                str(tmp_path / "x.png"),
                "--debug",
            ]
        )


def test_an_unexpected_error_is_one_line_too(capsys, monkeypatch, tmp_path):
    import xrutils.cli.train as cli_train

    def boom(cfg):
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(cli_train, "param_counts", boom)
    code, _, err = cli(capsys, "describe", "--family", "gan")
    assert code == 1 and "RuntimeError: something broke" in one_error_line(err) and "--debug" in err


# ---- D6 / D7: data.root and the phantom settings ---------------------------------------------------------------


def test_d6_phantom_source_with_a_missing_root_is_refused(capsys, tmp_path):
    target = tmp_path / "nonexistent"
    code, _, err = cli(capsys, *train_args("gan", tmp_path / "r", f"data.root={target}"))
    assert code == 2 and "holds no phantom dataset" in one_error_line(err)
    assert not target.exists() and not (tmp_path / "r").exists()  # nothing generated, no run folder left


def test_d6_phantom_source_pointed_at_an_nih_folder_is_refused(capsys, nih_like, tmp_path):
    code, _, err = cli(capsys, *train_args("gan", tmp_path / "r", f"data.root={nih_like}"))
    assert code == 2 and "set data.source=nih" in one_error_line(err)


def test_d7_phantom_settings_that_differ_from_the_folder_are_refused(capsys, tmp_path):
    root = ensure_phantom(tmp_path / "ph", n=24, seed=0, size=64)
    with pytest.raises(DataError, match="phantom_n=24, phantom_seed=0"):
        ensure_phantom(root, n=30, seed=0)
    with pytest.raises(DataError, match="phantom_seed=5"):
        ensure_phantom(root, n=24, seed=5)
    code, _, err = cli(capsys, *train_args("gan", tmp_path / "r", f"data.root={root}", "data.phantom_n=30"))
    assert code == 2 and "data.phantom_n=30" in one_error_line(err)
    code, _, _ = cli(capsys, *train_args("gan", tmp_path / "ok", f"data.root={root}", "data.phantom_n=24"))
    assert code == 0


# ---- D12 / D13: a full disk ----------------------------------------------------------------------------------


def _disk_full_below(monkeypatch, folder: Path) -> None:
    """Make shutil.disk_usage report 1 kB free for paths under ``folder`` (and the truth elsewhere)."""
    real = shutil.disk_usage

    def fake(path):
        usage = real(path)
        if str(Path(path).resolve()).startswith(str(folder.resolve())):
            return usage._replace(free=1024)
        return usage

    monkeypatch.setattr("xrutils.errors.shutil.disk_usage", fake)


def test_d12_training_on_a_full_disk_names_the_checkpoint(capsys, monkeypatch, tmp_path):
    run = tmp_path / "r"
    assert main([str(a) for a in train_args("gan", tmp_path / "warm", "train.epochs=1")]) == 0  # cache built
    _disk_full_below(monkeypatch, run)
    code, _, err = cli(capsys, *train_args("gan", run))
    line = one_error_line(err)
    assert code == 1 and "no space left on device" in line and "epoch_001.pt" in line and "free" in line
    assert not [p for p in run.rglob("*.tmp")]


def test_d12_a_write_that_hits_enospc_names_the_target(tmp_path):
    target = tmp_path / "metrics.json"
    with pytest.raises(DiskFullError, match="metrics.json"):
        with atomic_path(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_d13_cache_build_on_a_full_disk_is_a_clear_error(capsys, monkeypatch, tmp_path):
    root = make_phantom(tmp_path / "ph", n=24, seed=0, size=64)
    idx = index_split(root, "all")
    cache = tmp_path / "cache"
    _disk_full_below(monkeypatch, cache)
    with pytest.raises(DiskFullError, match="images.npy"):
        cached_images(idx.names, idx.paths, 32, workers=2, progress=False, root=cache)
    assert not list(cache.rglob("*.tmp"))
    monkeypatch.undo()

    def no_room(fd, offset, length):  # the space vanished between the check and the reservation
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_room, raising=False)
    with pytest.raises(DiskFullError):
        cached_images(idx.names, idx.paths, 32, workers=2, progress=False, root=cache)
    assert not list(cache.rglob("*.tmp"))
    monkeypatch.undo()
    _disk_full_below(monkeypatch, cache_root())  # where the command line builds its caches
    code, _, err = cli(capsys, "data", "cache", "--root", root, "--size", 16, "--split", "all")
    assert code == 1 and "no space left on device" in one_error_line(err)


# ---- D14: non-finite weights never reach a checkpoint --------------------------------------------------------


@pytest.mark.parametrize("family,lr", [("gan", "1e10"), ("vae", "1e4")])
def test_d14_non_finite_weights_stop_the_run_before_the_checkpoint(capsys, tmp_path, family, lr):
    run = tmp_path / "r"
    code, _, err = cli(capsys, *train_args(family, run, f"train.lr={lr}", "train.epochs=3"))
    assert code == 1 and "non-finite" in one_error_line(err), err
    for epoch in RunDir(run).checkpoint_epochs():  # whatever was kept is finite
        ckpt = RunDir(run).load_checkpoint(epoch)
        for sd in ckpt["networks"].values():
            assert all(torch.isfinite(t).all() for t in sd.values() if t.is_floating_point())


# ---- D15: one writer per run folder ----------------------------------------------------------------------------


def test_d15_a_second_writer_is_refused(capsys, tmp_path):
    run = tmp_path / "r"
    with RunDir(run).writing():
        code, _, err = cli(capsys, *train_args("gan", run))
        assert code == 2 and "another process" in one_error_line(err) and str(run) in err
    assert RunDir(run).checkpoint_epochs() == []  # the refused run wrote nothing
    code, _, _ = cli(capsys, *train_args("gan", run))  # once the first writer is gone, it trains
    assert code == 0 and RunDir(run).checkpoint_epochs() == [1, 2]
    with RunDir(run).writing(), pytest.raises(RunBusyError):
        with RunDir(run).writing():
            pass


def test_a_failed_first_start_leaves_no_empty_run_folder(capsys, tmp_path):
    run = tmp_path / "r"
    code, _, _ = cli(capsys, *train_args("gan", run, "data.source=nih", f"data.root={tmp_path / 'none'}"))
    assert code == 2 and not run.exists()


# ---- D11: leftovers of killed writers ------------------------------------------------------------------------


def test_d11_leftover_temporary_files_are_removed_at_start(capsys, tmp_path):
    run = tmp_path / "r"
    assert cli(capsys, *train_args("gan", run, "train.epochs=1"))[0] == 0
    dead = 2**22 + 12345  # above the default pid_max of 4 million... but not guaranteed: check it below
    while atomic.pid_alive(dead):
        dead += 1
    leftovers = [
        RunDir(run).checkpoint_dir / ".epoch_002.pt.k2j3h4.tmp",  # a name of 28eb387 (no pid)
        RunDir(run).checkpoint_dir / f".epoch_002.pt.{dead}.x1y2.tmp",
        RunDir(run).samples_dir / f".epoch_002.png.{dead}.x1y2.tmp",
        run / f".metrics.json.{dead}.abcd.tmp",
    ]
    for p in leftovers:
        p.write_bytes(b"half")
    live = run / f".metrics.json.{os.getpid()}.abcd.tmp"  # a live writer's file stays
    live.write_bytes(b"being written")
    assert cli(capsys, *train_args("gan", run, "train.epochs=2") + ["--resume"])[0] == 0
    assert not any(p.exists() for p in leftovers) and live.exists()


def test_d11_half_made_phantom_of_a_killed_process_is_removed(tmp_path):
    dead = 2**22 + 4321
    while atomic.pid_alive(dead):
        dead += 1
    half = tmp_path / f".ph.{dead}.q8w7.tmp"
    (half / "images").mkdir(parents=True)
    (half / "images" / "a.png").write_bytes(b"x" * 1000)
    old = tmp_path / ".ph.oldname.tmp"  # no pid, a day old
    old.mkdir()
    os.utime(old, (time.time() - 2 * 86_400,) * 2)
    ensure_phantom(tmp_path / "ph", n=24, seed=0, size=64)
    assert not half.exists() and not old.exists()
    assert remove_stale_tmp(tmp_path) == []


# ---- D2-D5: the NIH reader -----------------------------------------------------------------------------------


def test_d2_csv_parse_errors_name_the_file(nih_like):
    csv = nih_like / "Data_Entry_2017.csv"
    text = csv.read_text().splitlines()
    csv.write_text("\n".join([*text[:3], text[3] + ",extra,fields,here,1,2,3", *text[4:]]) + "\n")
    with pytest.raises(DataError, match="Data_Entry_2017.csv: not a readable NIH metadata CSV"):
        read_metadata(nih_like)
    csv.write_bytes("\n".join(text).encode() + b"\n\xff\xfe\xfa,bad\n")
    with pytest.raises(DataError, match="Data_Entry_2017.csv"):
        read_metadata(nih_like)


def test_d3_12_bit_png_keeps_its_brightness(tmp_path):
    rng = np.random.default_rng(0)
    g8 = rng.integers(60, 250, (64, 64)).astype(np.uint8)
    g12 = (g8.astype(np.uint32) * 4095 // 255).astype(np.uint16)  # 12-bit data in a 16-bit PNG
    Image.fromarray(g12).save(tmp_path / "g12.png")
    assert Image.open(tmp_path / "g12.png").mode.startswith("I")
    got = np.asarray(decode_image(tmp_path / "g12.png"), dtype=np.int16)
    assert abs(got.mean() - g8.mean()) < 1.0 and np.abs(got - g8).max() <= 1


def test_d4_duplicate_image_names_across_folders(tmp_path, capsys):
    for d in ("images_001/images", "images_002/images"):
        (tmp_path / d).mkdir(parents=True)
    a = np.zeros((8, 8), np.uint8)
    Image.fromarray(a).save(tmp_path / "images_001/images/x.png")
    Image.fromarray(a).save(tmp_path / "images_002/images/x.png")  # the same file twice: used, with a note
    assert find_images(tmp_path)["x.png"].parent.parent.name == "images_001"
    assert "stored twice" in capsys.readouterr().err
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32), dtype=np.uint8)).save(
        tmp_path / "images_002/images/x.png"
    )
    with pytest.raises(DataError, match="two different files are named x.png"):
        find_images(tmp_path)


def test_d5_an_empty_split_list_says_so(nih_like):
    (nih_like / "train_val_list.txt").write_text("\n")
    with pytest.raises(DataError, match="train_val_list.txt: the split list is empty"):
        read_split(nih_like, "train_val")


# ---- D8 / D9: notebook parameters ----------------------------------------------------------------------------


def _namespace(**injected) -> dict:
    """What a kernel holds after a parameters cell (annotated) and papermill's injected cell (plain names)."""
    ns: dict = {
        "__annotations__": {"family": str, "seed": int, "overrides": dict, "lr": float},
        "In": [],
        "_": 1,
    }
    ns.update(family="gan", seed=0, overrides={}, lr=1e-4, print=print, np=np)
    ns.update(injected)
    return ns


def test_d8_unknown_notebook_parameter_is_refused():
    studies.check_parameters(_namespace())
    with pytest.raises(ConfigError, match=r"unknown notebook parameter\(s\) \['bogus'\]"):
        studies.check_parameters(_namespace(bogus=1))


@pytest.mark.parametrize("name,value", [("seed", "abc"), ("seed", 1.5), ("seed", True), ("overrides", "abc")])
def test_d9_mistyped_notebook_parameters_are_refused(name, value):
    with pytest.raises(ConfigError, match=f"notebook parameter {name}="):
        studies.check_parameters(_namespace(**{name: value}))
    studies.check_parameters(_namespace(lr=1))  # an integer for a float parameter is fine


@pytest.mark.parametrize("seed", ["abc", 1.5, -1, True])
def test_d9_build_config_checks_the_seed(seed):
    with pytest.raises(ConfigError, match="seed="):
        build_config("gan", "tiny", "smoke", seed=seed)
    with pytest.raises(ConfigError, match="overrides="):
        build_config("gan", "tiny", "smoke", "abc")


# ---- extending a finished run -----------------------------------------------------------------------------------


def test_extending_a_constant_lr_run_equals_the_longer_run(capsys, tmp_path):
    short, long = tmp_path / "short", tmp_path / "long"
    assert cli(capsys, *train_args("gan", short, "train.epochs=1"))[0] == 0
    code, _, err = cli(capsys, *train_args("gan", short, "train.epochs=3"), "--resume")
    assert code == 0, err
    assert cli(capsys, *train_args("gan", long, "train.epochs=3"))[0] == 0
    assert RunDir(short).read_config().train.epochs == 3
    a, b = RunDir(short).load_checkpoint(3), RunDir(long).load_checkpoint(3)
    for net in a["networks"]:
        for k, v in a["networks"][net].items():
            torch.testing.assert_close(v, b["networks"][net][k], rtol=0, atol=0)
    code, _, err = cli(capsys, *train_args("gan", short, "train.epochs=2"), "--resume")
    assert code == 2 and "cannot shorten" in one_error_line(err)


def test_extending_a_cosine_run_is_refused_with_the_reason(capsys, tmp_path):
    run = tmp_path / "r"
    assert cli(capsys, *train_args("gan", run, "train.epochs=1", "train.lr_schedule=cosine"))[0] == 0
    code, _, err = cli(
        capsys, *train_args("gan", run, "train.epochs=2", "train.lr_schedule=cosine"), "--resume"
    )
    assert code == 2 and "decays to 0 at the last step" in one_error_line(err)


# ---- logging -------------------------------------------------------------------------------------------------


def test_log_level_hides_the_library_notes(capsys, tmp_path):
    for d in ("images_001/images", "images_002/images"):
        (tmp_path / d).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / d / "x.png")
    from xrutils import log

    try:
        log.configure("ERROR")
        find_images(tmp_path)
        assert "stored twice" not in capsys.readouterr().err
    finally:
        log.configure("INFO")
    assert isinstance(DataError("x"), InputError) and isinstance(DataError("x"), ValueError)  # old callers
