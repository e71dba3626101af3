"""Training throughput of ResNet18B: float32 eager against the fast path, side by side.

Usage:
    python benchmarks/train_throughput.py [--image-size 64] [--width 16] [--batch-size 64]
                                          [--steps 10] [--device cpu|cuda] [--compile]

Each row trains a fresh copy of the same ResNet18B with :func:`cam_tutorial.train.train` for
two passes of ``--steps`` batches of random images (the first pass warms up; the second is
timed), so every figure includes the optimiser, the schedule and the loader, as in a real run.
Rows: float32 eager; channels-last; mixed precision (bf16 where supported, else fp16 with a
gradient scaler) with channels-last; and the same under ``torch.compile`` (on CUDA by default,
on the CPU with ``--compile``, where compiling costs minutes). The last line prints the ratio
of the fastest row to float32 eager.

On a CPU, mixed precision is not expected to help: autocast to bfloat16 runs fast only on CPUs
with AMX or AVX-512-BF16 units, and elsewhere adds conversions. The script measures and prints
whatever happens on the machine at hand.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cam_tutorial.config import default_device  # noqa: E402
from cam_tutorial.models import ResNet18B  # noqa: E402
from cam_tutorial.train import TrainConfig, measure_throughput, resolve_precision  # noqa: E402


def rows(device: torch.device, compile_too: bool) -> list[tuple[str, dict]]:
    mixed = resolve_precision("auto", device) or torch.bfloat16  # CPU: try bf16 honestly
    amp = {torch.bfloat16: "bf16", torch.float16: "fp16"}[mixed]
    out = [
        ("fp32, eager", dict(amp="off", channels_last=False)),
        ("fp32, channels-last", dict(amp="off", channels_last=True)),
        (f"{amp} autocast, channels-last", dict(amp=amp, channels_last=True)),
    ]
    if compile_too:
        out.append((f"{amp} autocast, channels-last, compiled", dict(amp=amp, channels_last=True, compile=True)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed batches per row")
    parser.add_argument("--device", default=None, help="default: CUDA, then MPS, then the CPU")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile row (default on CUDA)")
    args = parser.parse_args()
    device = torch.device(args.device) if args.device else default_device()
    compile_too = args.compile or device.type == "cuda"

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    print(f"ResNet18B width {args.width}, {args.image_size} px, batch {args.batch_size}, {args.steps} timed "
          f"steps on {device} ({name}, {torch.get_num_threads()} threads), torch {torch.__version__}")
    torch.manual_seed(0)
    model = ResNet18B(num_classes=10, width=args.width)
    base = TrainConfig(batch_size=args.batch_size, device=str(device), num_workers=0, progress=False)
    results = []
    for label, changes in rows(device, compile_too):
        ips = measure_throughput(model, base.replace(**changes), args.image_size, steps=args.steps)
        results.append((label, ips))
        print(f"  {label:<44} {ips:8.1f} img/s   x{ips / results[0][1]:.2f}", flush=True)
    best_label, best = max(results[1:], key=lambda r: r[1])
    print(f"fastest vs fp32 eager: {best / results[0][1]:.2f}x ({best_label})")
    if device.type == "cpu":
        print("note: on a CPU, mixed precision is not expected to help (bf16 is fast only with AMX/AVX512-BF16);"
              " the GPU figures come from running this script on a GPU.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
