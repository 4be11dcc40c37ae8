#!/usr/bin/env bash
# Issue 11 §5 in one call on a lent GPU machine (docs/PERFORMANCE.md, "Measuring on a GPU"). Here, first:
#     make gpu-wheels        # the wheels the GPU image lacks (diffusers and its two needs) into .whl/
# then one device call:  command "bash bench/gpu_check.sh", carry [".whl"], timeout_s 480. The script ends within
# about BUDGET_S + 150 s; a rerun of what failed ("BUDGET_S=120 GPU_BASELINES_ARGS='--runs ...' bash ...") still
# fits a lease's 15 device minutes.
#   1. installs .whl/*.whl (when present) into /tmp/site;
#   2. bench/gpu_baselines.py: each family's thesis baseline 200 steps and the 128² PixelCNN 30 steps against the
#      plan, each evaluation sampler, and the utilisation and launch cost they imply (within BUDGET_S seconds);
#   3. one run of the training loop under torchrun on every visible GPU (DDP with SyncBatchNorm from 2 GPUs on):
#      the thesis PixelCNN on the phantom for 2 epochs, its images/s from the run's history;
#   4. bench/throughput.py (ours against a plain reference, demo networks) with the time that is left.
# Everything lands in $OUT (bench/out when unset): env.txt, gpu_baselines.{log,json,md}, ddp.{log,json},
# throughput.log. The whole takes at most about BUDGET_S + 150 seconds after the wheels are installed.
# Anywhere, at smoke size: PROFILE=smoke GPU_BASELINES_ARGS="--steps 2 --long-steps 1 --warmup 1" bash bench/gpu_check.sh
set -uo pipefail
OUT=${OUT:-bench/out}
PY=${PYTHON:-python3}
PROFILE=${PROFILE:-thesis}
BUDGET_S=${BUDGET_S:-240}
mkdir -p "$OUT"
start=$SECONDS
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_check: installing .whl/*.whl failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
{ nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"; \
  "$PY" -c 'import torch, diffusers; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "diffusers", diffusers.__version__)'; \
} 2>&1 | tee "$OUT/env.txt" || exit 1

# shellcheck disable=SC2086  # GPU_BASELINES_ARGS is a list of flags
"$PY" bench/gpu_baselines.py --profile "$PROFILE" --budget-s "$BUDGET_S" --out "$OUT" ${GPU_BASELINES_ARGS:-} 2>&1 \
  | tee "$OUT/gpu_baselines.log"
status=$?

nproc=${NPROC:-$("$PY" -c 'import torch; print(max(torch.cuda.device_count(), 1))')}
left=$(( BUDGET_S + 90 - (SECONDS - start) ))
run_dir=$(mktemp -d)/ddp
timeout "$(( left > 60 ? left : 60 ))" "$PY" -m torch.distributed.run --standalone --nproc_per_node="$nproc" \
  -m xrutils train --family pixelcnn --preset baseline --profile "$PROFILE" --run-dir "$run_dir" --no-progress \
  --set data.source=phantom --set train.epochs=2 --set train.keep_weights=all 2>&1 | tee "$OUT/ddp.log"
ddp=$?
"$PY" - "$run_dir" "$nproc" "$ddp" >"$OUT/ddp.json" <<'PY'
import json, sys
from xrutils.runs import RunDir
run_dir, nproc, rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = RunDir(run_dir).read_history() if rc == 0 else []
print(json.dumps({"processes": nproc, "exit_status": rc, "ddp": nproc > 1, "history": rows}, default=str))
PY
cat "$OUT/ddp.json"

# 4. bench/throughput.py's ratios on this device (issue 11 §6), on the demo networks, with what time is left
left=$(( BUDGET_S + 150 - (SECONDS - start) ))
if [[ ${THROUGHPUT:-1} == 0 ]]; then
  echo "gpu_check: bench/throughput.py not asked for (THROUGHPUT=0)" | tee "$OUT/throughput.log"
elif (( left >= 30 )); then
  timeout "$left" "$PY" bench/throughput.py --profile "${THROUGHPUT_PROFILE:-demo}" --steps 20 --samples 32 2>&1 \
    | tee "$OUT/throughput.log"
else
  echo "gpu_check: no time left for bench/throughput.py" | tee "$OUT/throughput.log"
fi
echo "gpu_check: gpu_baselines exit $status, DDP run exit $ddp, $(( SECONDS - start )) s"
exit $(( status || ddp ))
