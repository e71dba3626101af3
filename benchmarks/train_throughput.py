"""Training throughput of ResNet18B: float32 eager against the fast path, side by side.

Usage:
    python -m benchmarks.train_throughput [--image-size 64] [--width 16] [--batch-size 64]
                                          [--steps 10] [--repeats 3] [--device cpu|cuda] [--compile]

Each row trains a fresh copy of the same ResNet18B with :func:`cam_tutorial.train.train` for
two passes of ``--steps`` batches of random images (the first pass warms up; the second is
timed), so every figure includes the optimiser, the schedule and the loader, as in a real run.
The rows run in ``--repeats`` interleaved rounds and each keeps its best round.
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
from pathlib import Path

import torch

from cam_tutorial.config import default_device
from cam_tutorial.models import ResNet18B
from cam_tutorial.evaluation import resolve_precision
from cam_tutorial.train import TrainConfig, measure_throughput


def _cpu_bf16_units() -> list[str]:
    """The CPU's native bfloat16 instruction sets, read from /proc/cpuinfo (Linux; else none)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return []
    return sorted({f for f in flags if f in ("avx512_bf16", "amx_bf16")})


def rows(device: torch.device, compile_too: bool) -> list[tuple[str, dict]]:
    """The settings to time: float32 eager and channels-last, then each mixed precision the device
    runs natively (on CUDA: fp16 everywhere, bf16 from compute capability 8.0; on a CPU: bf16, to
    measure it honestly), and the package's automatic choice compiled."""
    out = [
        ("fp32, eager", dict(amp="off", channels_last=False)),
        ("fp32, channels-last", dict(amp="off", channels_last=True)),
    ]
    if device.type == "cuda":
        amps = ["fp16"] + (["bf16"] if torch.cuda.get_device_capability(device) >= (8, 0) else [])
    else:
        amps = ["bf16"]
    out += [(f"{amp} autocast, channels-last", dict(amp=amp, channels_last=True)) for amp in amps]
    if compile_too:
        auto = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(resolve_precision("auto", device), "bf16")
        out.append((f"{auto} autocast, channels-last, compiled", dict(amp=auto, channels_last=True, compile=True)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed batches per row")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; each row keeps its best")
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
    settings = rows(device, compile_too)
    # Rounds interleave the rows, and each row keeps its best round: on a shared machine, other
    # work only ever slows a measurement down, so the best is the least disturbed.
    best: dict[str, float] = {}
    for round_ in range(args.repeats):
        for label, changes in settings:
            ips = measure_throughput(model, base.replace(**changes), args.image_size, steps=args.steps)
            best[label] = max(best.get(label, 0.0), ips)
        print(f"round {round_ + 1}/{args.repeats} done", flush=True)
    results = list(best.items())
    for label, ips in results:
        print(f"  {label:<44} {ips:8.1f} img/s   x{ips / results[0][1]:.2f}")
    best_label, best_ips = max(results[1:], key=lambda r: r[1])
    print(f"fastest vs fp32 eager: {best_ips / results[0][1]:.2f}x ({best_label}); best of {args.repeats} rounds")
    if device.type == "cpu":
        units = _cpu_bf16_units()
        print("note: on a CPU, mixed precision is not expected to help unless the CPU computes bf16 natively "
              f"(AVX512-BF16 or AMX); this one {'has ' + ', '.join(units) if units else 'has neither'}. "
              "GPU figures come from running this script on a GPU.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
