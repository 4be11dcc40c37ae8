"""``python -m xrutils train | sample | describe``: outputs, parameter counts from the spec, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from xrutils import registry
from xrutils.cli import main
from xrutils.runs import RunDir

REPO = Path(__file__).resolve().parent.parent


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------------------------
# describe


@pytest.mark.parametrize(
    "preset,sets,expected",
    [
        ("baseline", [], {"generator": 3_574_656, "discriminator": 2_763_520}),  # spec §2.1: 64, h 64
        ("hidden32", [], {"generator": 1_099_200, "discriminator": 693_632}),
        ("hidden128", [], {"generator": 12_654_336, "discriminator": 11_032_064}),
        ("size32", [], {"generator": 1_066_880, "discriminator": 661_248}),
        (
            "baseline",
            ["data.image_size=32", "model.hidden=128"],
            {"generator": 3_444_480, "discriminator": 2_633_216},
        ),
        ("size128", [], {"generator": 12_784_512, "discriminator": 11_162_368}),
    ],
)
def test_describe_gan_matches_the_spec_table(capsys, preset, sets, expected):
    argv = ["describe", "--family", "gan", "--preset", preset]
    for s in sets:
        argv += ["--set", s]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    assert json.loads(out) == expected


def test_describe_vae_totals_match_the_spec(capsys):
    # spec §2.2 totals: s128/h400 (thesis baseline) and s128/h500
    for preset, total in (("baseline", 14_327_184), ("hidden500", 18_204_784)):
        code, out, _ = run_cli(capsys, "describe", "--family", "vae", "--preset", preset)
        counts = json.loads(out)
        assert code == 0 and counts.get("total", sum(counts.values())) == total


@pytest.mark.parametrize("family", registry.families())
def test_describe_names_every_network_of_each_family(capsys, family):
    code, out, _ = run_cli(capsys, "describe", "--family", family, "--preset", "tiny", "--profile", "smoke")
    counts = json.loads(out)
    assert code == 0 and counts and all(isinstance(v, int) and v > 0 for v in counts.values())
    from xrutils.registry import build_config

    model = registry.get(family).build(build_config(family, "tiny", "smoke"))
    assert counts == model.param_counts()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["describe", "--family", "nope"], "unknown family 'nope'"),
        (["describe", "--family", "gan", "--preset", "huge"], "unknown preset 'huge'"),
        (["describe", "--family", "gan", "--set", "model.widht=3"], "model.widht"),
        (["describe", "--family", "gan", "--set", "train.lr=fast"], "train.lr"),
        (["describe", "--family", "gan", "--profile", "weekend"], "unknown profile 'weekend'"),
        (
            ["train", "--family", "gan", "--preset", "tiny", "--profile", "smoke", "--set", "bogus"],
            "key=value",
        ),
    ],
)
def test_bad_input_exits_2_naming_it(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err


def test_python_m_xrutils_describe_prints_one_json_object():
    proc = subprocess.run(
        [sys.executable, "-m", "xrutils", "describe", "--family", "gan", "--preset", "baseline"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"generator": 3_574_656, "discriminator": 2_763_520}


# ----------------------------------------------------------------------------------------------------------------
# train and sample


def test_train_resume_and_sample_from_the_command_line(capsys, tmp_path):
    run = tmp_path / "gan"
    base = [
        "train",
        "--family",
        "gan",
        "--preset",
        "tiny",
        "--profile",
        "smoke",
        "--run-dir",
        run,
        "--set",
        "train.epochs=1",
        "--no-progress",
    ]
    code, out, _ = run_cli(capsys, *base)
    assert code == 0 and last_json(out)["epoch"] == 1
    assert RunDir(run).checkpoint_epochs() == [1]

    code, _, err = run_cli(capsys, *base)  # no --resume: never overwrite a run
    assert code == 2 and "already holds checkpoints" in err
    code, out, _ = run_cli(capsys, *base, "--resume")  # complete: nothing to do
    assert code == 0 and last_json(out)["epoch"] == 1
    code, _, err = run_cli(capsys, *base, "--resume", "--set", "train.lr=0.5")
    assert code == 2 and "train.lr" in err

    out_png = tmp_path / "grid.png"
    code, out, _ = run_cli(capsys, "sample", "--run-dir", run, "--n", 9, "--out", out_png, "--seed", 3)
    assert code == 0 and last_json(out)["epoch"] == 1
    assert Image.open(out_png).size == (3 * 32 + 4 * 2,) * 2  # 9 images of 32x32, 3 per row
    again = tmp_path / "again.png"
    run_cli(capsys, "sample", "--run-dir", run, "--epoch", 1, "--n", 9, "--out", again, "--seed", 3)
    assert again.read_bytes() == out_png.read_bytes()  # seeded

    code, _, err = run_cli(
        capsys, "sample", "--run-dir", run, "--n", 4, "--out", out_png, "--sampler", "ddim"
    )
    assert code == 2 and "do not apply to family 'gan'" in err
    code, _, err = run_cli(capsys, "sample", "--run-dir", run, "--epoch", 9, "--n", 4, "--out", out_png)
    assert code == 2 and "epoch 9" in err
    code, _, err = run_cli(capsys, "sample", "--run-dir", tmp_path / "missing", "--n", 4, "--out", out_png)
    assert code == 2 and "config.json" in err
    ckpt = RunDir(run).checkpoint_path(1)  # a damaged checkpoint: one line naming it, exit 2 (issue 12, D10)
    ckpt.write_bytes(ckpt.read_bytes()[:500])
    code, _, err = run_cli(capsys, "sample", "--run-dir", run, "--n", 4, "--out", out_png)
    assert code == 2 and "epoch_001.pt: not a readable checkpoint" in err and "Traceback" not in err


def test_sample_ddpm_with_ddim_steps(capsys, tmp_path):
    run = tmp_path / "ddpm"
    code, _, _ = run_cli(
        capsys,
        "train",
        "--family",
        "ddpm",
        "--preset",
        "tiny",
        "--profile",
        "smoke",
        "--run-dir",
        run,
        "--set",
        "train.epochs=1",
        "--no-progress",
    )
    assert code == 0
    out_png = tmp_path / "ddim.png"
    code, out, _ = run_cli(
        capsys, "sample", "--run-dir", run, "--n", 4, "--out", out_png, "--sampler", "ddim", "--steps", 3
    )
    assert code == 0
    assert last_json(out)["sampler"] == "ddim" and last_json(out)["steps"] == 3
    assert Image.open(out_png).size == (2 * 32 + 3 * 2,) * 2
