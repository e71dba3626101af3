#!/usr/bin/env bash
# The GPU check: run once on a CUDA machine (about 5 minutes; each step has its own time limit).
#   bash benchmarks/gpu_check.sh            (from the repository root; PYTHON=python3 by default)
# It prints the card, then
#   1. training throughput of full-width ResNet18B at 224 px: fp32 vs fp16 vs bf16 (where the card
#      computes it natively), channels-last, and the automatic precision under torch.compile;
#   2. one epoch of the `gpu` preset's ResNet18B on the lab (data loading included), with its img/s;
#   3. CAM speed (benchmarks/cam_speed.py) at batch 64 and 256.
# The package runs from this tree (PYTHONPATH), with the machine's own torch. Name the card beside
# every number you report.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
status=0
step() {  # step SECONDS NAME COMMAND...: run with a time limit, keep going when one fails
  local limit="$1" name="$2"; shift 2
  echo "=== $name (limit ${limit} s)"
  local start=$(date +%s)
  timeout "$limit" "$@" || { echo "!!! $name failed or timed out (exit $?)"; status=1; }
  echo "=== $name took $(( $(date +%s) - start )) s"
}
"$py" - <<'PY' || exit 1
import torch
if not torch.cuda.is_available():
    raise SystemExit("no CUDA device: this check needs a GPU")
p = torch.cuda.get_device_properties(0)
print(f"card: {p.name}, compute capability {p.major}.{p.minor}, {p.total_memory / 2**30:.0f} GiB; "
      f"torch {torch.__version__}, CUDA {torch.version.cuda}")
PY
step 240 "training throughput, 224 px, full width" "$py" -m benchmarks.train_throughput --device cuda \
  --image-size 224 --width 64 --batch-size 128 --steps 20 --repeats 2
step 180 "one gpu-preset epoch of ResNet18B" "$py" - <<'PY'
import os, time
import torch
from cam_tutorial.config import get_preset
from cam_tutorial.lab import SyntheticShapes
from cam_tutorial.models import ResNet18B
from cam_tutorial.train import TrainConfig, train
from cam_tutorial.zoo_recipes import DATA_SEED

gpu = get_preset("gpu")
workers = min(8, os.cpu_count() or 1)
train_set = SyntheticShapes("train", length=gpu.train_size, image_size=gpu.image_size, seed=DATA_SEED)
model = ResNet18B(len(train_set.class_names), width=gpu.width)
config = TrainConfig.from_preset(gpu, epochs=1, num_workers=workers, progress=False)
start = time.perf_counter()
history = train(model, train_set, None, config)
print(f"{gpu.train_size} images at {gpu.image_size} px, {workers} loader workers, {history.precision}: "
      f"{history.images_per_second[-1]:.0f} img/s, epoch {time.perf_counter() - start:.1f} s "
      f"on {torch.cuda.get_device_name()}")
PY
step 120 "CAM speed, batch 64 and 256" "$py" benchmarks/cam_speed.py --device cuda --batches 64 256 --skip-loop
exit $status
