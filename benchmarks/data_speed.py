"""How fast the lab renders, on one core: images per second at 64 and 224 px.

The lab renders every item on the fly (nothing is stored), so its speed decides whether a
DataLoader keeps a GPU busy. The aims: 2,000 img/s at 64 px and 300 img/s at 224 px on one
core (``torch.set_num_threads(1)``, ``cv2.setNumThreads(1)``), items through ``__getitem__``
(render + normalise + tensors). Alongside, the same items without normalisation
(``render``) and through a DataLoader with 2 workers, to show where the time goes. Rates are
given by the wall clock and by the process's CPU time: on a shared, loaded machine the wall
rate drops with the load while the CPU rate still measures the cost of an item.

Then the training loader side by side (``--loader-size``, default 224 px, batches of 128 on
``--workers`` workers): the lab's full items (float32 image, box, mask: what a loader over
``SyntheticShapes`` collates) against its uint8 ``training_view()`` (what the zoo trains on when
the float set does not fit in memory; normalised on the device). The aim for the view: 2,000
img/s on 2 workers at 224 px, so that a T4 training ResNet18B (820-1,370 img/s) never waits.
Measured on a quiet machine (December 2026): view 2,540 img/s, full items 1,620 (before the
renderer's speed-up the full items gave 640-960).

The loader comparison runs for both kinds of lab (``--objects shapes creatures``).

Run: ``python -m benchmarks.data_speed [--n 2000] [--sizes 64 224] [--loader-size 224]``
"""

from __future__ import annotations

import argparse
import time

import cv2
import torch
from torch.utils.data import DataLoader

from cam_tutorial.lab import SyntheticShapes

AIMS = {64: 2000.0, 224: 300.0}


def rate(fn, n: int) -> tuple[float, float]:
    """Items per second of ``fn(i)`` for i in range(n), by wall clock and by this process's CPU
    time, best of two passes (the first warms up). On a quiet machine the two agree; on a shared,
    loaded one the CPU-time figure is the cost of an item and the wall figure is what you got."""
    best_wall = best_cpu = 0.0
    for attempt in range(2):
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            fn(i + attempt * n)
        best_wall = max(best_wall, n / (time.perf_counter() - wall))
        best_cpu = max(best_cpu, n / max(time.process_time() - cpu, 1e-9))
    return best_wall, best_cpu


def loader_rate(ds: SyntheticShapes, workers: int, batches: int, batch_size: int) -> float:
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, shuffle=False)
    it = iter(loader)
    next(it)  # workers started, textures loaded
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start)


LOADER_AIM = 2000.0


def training_loader_rates(size: int, workers: int, batches: int, batch_size: int = 128,
                          objects: str = "shapes") -> tuple[float, float]:
    """img/s of a loader over the lab's full items and over its uint8 training view."""
    lab = SyntheticShapes("train", length=(batches + 2) * batch_size, image_size=size, seed=0, objects=objects)
    return (loader_rate(lab, workers, batches, batch_size),
            loader_rate(lab.training_view(), workers, batches, batch_size))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="items per measurement at 64 px (fewer at larger sizes)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the last column (0: skip)")
    parser.add_argument("--loader-size", type=int, default=224, help="image side of the training-loader comparison (0: skip)")
    parser.add_argument("--loader-batches", type=int, default=12)
    parser.add_argument("--objects", nargs="+", default=["shapes", "creatures"],
                        help="the lab's kinds for the training-loader comparison")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    print("images/s; 'wall' and 'CPU' rate the same items by the clock and by this process's CPU time")
    print("(equal on a quiet machine); 'met' compares the CPU rate with the aim; the loader uses workers")
    print(f"{'size':>5} {'item wall':>10} {'item CPU':>9} {'render CPU':>11} {'aim':>6} {'met':>4} "
          f"{'loader x' + str(args.workers) + ' wall':>16}")
    all_met = True
    for size in args.sizes:
        n = max(100, int(args.n * (64 / size) ** 2))
        ds = SyntheticShapes("train", length=4 * n + 10_000, image_size=size, seed=0)
        ds[0]  # load the textures once, as a worker would
        full_wall, full_cpu = rate(lambda i: ds[i], n)
        _, render_cpu = rate(lambda i: ds.render(2 * n + i), n)
        aim = AIMS.get(size)
        met = "-" if aim is None else ("yes" if full_cpu >= aim else "no")
        all_met &= met != "no"
        loader = (f"{loader_rate(ds, args.workers, max(4, n // 64), 64):11.0f}" if args.workers else f"{'-':>11}")
        print(f"{size:5d} {full_wall:10.0f} {full_cpu:9.0f} {render_cpu:11.0f} {aim or float('nan'):6.0f} "
              f"{met:>4} {loader:>16}")
        share = 100 * (1 - full_cpu / render_cpu)
        print(f"      normalising and making tensors: {share:.0f}% of __getitem__'s CPU time")
    for objects in args.objects if args.loader_size and args.workers else []:
        full, lean = training_loader_rates(args.loader_size, args.workers, args.loader_batches, objects=objects)
        met = lean >= LOADER_AIM
        all_met &= met
        print(f"\ntraining loader, objects={objects!r}, at {args.loader_size} px, batches of 128, "
              f"{args.workers} workers (wall img/s):")
        print(f"  full items (float32 + box + mask): {full:7.0f}")
        print(f"  uint8 training view:               {lean:7.0f}   aim {LOADER_AIM:.0f}: {'met' if met else 'NOT met'}"
              f"   ({lean / full:.1f}x)")
        lab = SyntheticShapes("train", length=4000, image_size=args.loader_size, seed=0, objects=objects)
        view = lab.training_view()
        view[0]
        _, item_cpu = rate(lambda i: lab[i], 300)
        _, view_cpu = rate(lambda i: view[i], 300)
        print(f"  per core by CPU time (what {args.workers} workers give on a quiet machine, x{args.workers}): "
              f"full items {item_cpu:.0f}/s, view {view_cpu:.0f}/s -> {args.workers * view_cpu:.0f} img/s")
    print("all aims met" if all_met else "some aims NOT met")

if __name__ == "__main__":
    main()
