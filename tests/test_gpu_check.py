"""The prepared GPU check of issue 11 §5 (bench/gpu_baselines.py, bench/gpu_check.sh) runs anywhere at smoke size,
so it is not dead code on machines without a GPU, and its fit recovers the utilisation and launch cost it is given."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xrutils import plan, registry

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("gpu_baselines", ROOT / "bench" / "gpu_baselines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_baselines_runs_at_smoke_size_on_cpu(tmp_path, capsys):
    bench = _bench()
    args = ["--profile", "smoke", "--steps", "2", "--long-steps", "1", "--warmup", "1", "--device", "cpu"]
    assert bench.main([*args, "--out", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"part"')]
    training = [r for r in rows if r["part"] == "training"]
    sampling = [r for r in rows if r["part"] == "sampling"]
    assert [r["run"] for r in training] == [name for name, *_ in bench.RUNS]
    assert [r["family"] for r in sampling] == registry.families()
    for r in training:
        assert r["images_per_s"] > 0 and r["peak_memory_gb"] > 0 and r["precision"] == "fp32"
        assert r["predicted_images_per_s"] > 0 and r["predicted_peak_memory_gb"] > plan.CUDA_OVERHEAD_GB
        assert (
            r["images_per_s_error"] is None and r["implied_utilisation"] is None
        )  # a CPU is not the GPU priced
        assert r["steps"] == (1 if r["run"] == "pixelcnn/size128" else 2)
    assert next(r for r in training if r["run"] == "pixelcnn/size128")["image_size"] == 128
    for r in sampling:
        assert r["seconds_per_batch"] > 0 and r["predicted_seconds_per_batch"] > 0
    ddpm = next(r for r in sampling if r["family"] == "ddpm")
    assert ddpm["passes_timed"] == ddpm["passes_full"] == 2  # the smoke profile's DDIM-2
    saved = json.loads((tmp_path / "gpu_baselines.json").read_text())
    assert saved["device"] == "cpu" and len(saved["rows"]) == len(rows) and saved["fit"] is None
    table = (tmp_path / "gpu_baselines.md").read_text()
    assert "| pixelcnn/size128 | 128² |" in table and "| ddpm/baseline ddim2" in table


def test_gpu_baselines_skips_what_the_budget_does_not_leave(capsys):
    bench = _bench()
    args = ["--profile", "smoke", "--device", "cpu", "--runs", "gan/baseline", "--no-sampling"]
    assert bench.main([*args, "--budget-s", "0"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"part"')]
    assert len(rows) == 1 and rows[0]["skipped"].startswith("budget")
    with pytest.raises(SystemExit):
        bench.main(["--runs", "gan/nonsense"])


def test_the_fit_recovers_the_utilisation_and_launch_cost_it_is_given():
    bench = _bench()
    u, launch = 0.42, 6e-6

    def row(flops: float, kernels: int, peak_tflops: float) -> dict:
        seconds = flops / (peak_tflops * 1e12 * u) + kernels * launch
        work = {"seconds": seconds, "flops": flops, "kernels": kernels, "peak_tflops": peak_tflops}
        return {"implied_utilisation": 0.0, "work": work}

    rows = [row(4e13, 2_000, 989), row(2e12, 30_000, 989), row(9e11, 500, 494), row(3e14, 120_000, 989)]
    fitted = bench.fit(rows + [{"part": "training", "skipped": "budget"}])
    assert fitted["rows"] == 4
    assert fitted["utilisation"] == pytest.approx(u, rel=1e-6)
    assert fitted["launch_s"] == pytest.approx(launch, rel=1e-6)
    assert fitted["max_relative_error"] < 1e-9
    assert bench.fit(rows[:1]) is None


@pytest.mark.slow
def test_gpu_check_script_runs_end_to_end_at_smoke_size(tmp_path):
    """The one device call, on the CPU: the bench, then the training loop under torchrun with 2 processes (gloo)."""
    env = {
        **os.environ,
        "OUT": str(tmp_path),
        "PYTHON": sys.executable,
        "PROFILE": "smoke",
        "NPROC": "2",
        "THROUGHPUT": "0",  # bench/throughput.py takes minutes on this CPU
        "GPU_BASELINES_ARGS": "--runs gan/baseline --steps 1 --warmup 1 --no-sampling",  # the fast test covers it
    }
    done = subprocess.run(
        ["bash", "bench/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert {"env.txt", "gpu_baselines.json", "gpu_baselines.md", "ddp.json"} <= {
        p.name for p in tmp_path.iterdir()
    }
    ddp = json.loads((tmp_path / "ddp.json").read_text())
    assert ddp["processes"] == 2 and ddp["ddp"] and ddp["exit_status"] == 0
    assert [r["epoch"] for r in ddp["history"]] == [1, 2]
