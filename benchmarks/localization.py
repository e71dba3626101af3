"""Localisation benchmarks: how fast MaxBoxAcc is, and how the map methods compare.

**Part 1, metric throughput (the default).** ``N`` random smooth maps (sums of one to four
Gaussian bumps, ``--size`` px) with one or two random boxes each, scored with 100 thresholds
(0.00 .. 0.99; ``--grid fine``: the 1000 of wsolevaluation's training runs, 0.000 .. 0.999) under
``--protocol`` (``clean``, or ``wsolevaluation`` for their code's numbers) by
:func:`cam_tutorial.metrics.max_box_acc` and by the straightforward loop
:func:`tests.reference.localization.max_box_acc_reference`, side by side in one run, for MaxBoxAccV2
(all contours) and MaxBoxAcc (largest contour). Before any timing the two are checked to give
the same numbers (every per-image, per-threshold IoU, bit for bit); the script stops with exit
status 1 if they do not. The runs are interleaved (reference, fast, then
again) so that a change in machine load hits every method alike, and each time is the best of
``--repeats`` (the least disturbed run). Printed: seconds, maps per second, and the speed-up
over the loop (target: at least 2x; ``--check-target`` makes a miss exit with status 1).

**Part 2, the model comparison table (``--models``).** On the lab's test split, with the zoo's
trained models (``resnet18b_gap``, ``resnet18b_gmp``; trained on first use, then cached) at the
preset's sizes (``--preset`` or ``CAM_TUTORIAL_PRESET``): CAM from the GAP model, CAM from the GMP
model, backprop saliency of the GAP model and the centre baseline (a Gaussian that looks at no
image), each scored by :func:`cam_tutorial.methods.compare.localization_report`: top-1 classification,
top-1 and ground-truth-known localisation (the paper's box rule at 20%), MaxBoxAcc, MaxBoxAccV2
(and each delta), the pointing game, the share of the object covered and the kept area relative
to the object. The same function builds notebook 07's table, so the two cannot disagree. Also
printed: how fast each method's maps are computed and scored. No number is typed in: every one
is measured when it runs.

**Part 3, the released code's boxes (``--released``).**
:func:`cam_tutorial.released_code.box_from_cam_released_code` against the statement-by-statement
loop it replaced, :func:`tests.reference.localization.box_from_cam_released_code_reference`
(``LIMIT`` on every box in Python, then a sort), on the map of issue 12 (uniform noise,
``--size`` px: thousands of contours) and on ``--n`` smooth maps. Every box is checked equal first (exit status 1 if not);
then each is timed once and the ratio printed.

How to run (from the repository root, as a module: the reference loops live in ``tests/``)::

    .venv/bin/python -m benchmarks.localization                   # 200 maps of 224 px
    .venv/bin/python -m benchmarks.localization --n 50 --repeats 5
    .venv/bin/python -m benchmarks.localization --protocol wsolevaluation --grid fine --n 50
    .venv/bin/python -m benchmarks.localization --models --preset cpu
    .venv/bin/python -m benchmarks.localization --released --n 20
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from cam_tutorial.metrics import (
    DEFAULT_CAM_THRESHOLDS,
    FINE_CAM_THRESHOLDS,
    MAX_BOX_ACC_PROTOCOLS,
    MaxBoxAccResult,
    max_box_acc,
    max_box_acc_both,
)
from cam_tutorial.released_code import box_from_cam_released_code
from tests.reference.localization import box_from_cam_released_code_reference, max_box_acc_reference

# ------------------------------------------------------------------------------------------
# Part 1: metric throughput
# ------------------------------------------------------------------------------------------


def random_smooth_maps(n: int, size: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """``n`` maps (sums of 1-4 Gaussian bumps) and one or two random boxes per map."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    maps = np.zeros((n, size, size))
    boxes = []
    for i in range(n):
        for _ in range(rng.integers(1, 5)):
            cx, cy = rng.uniform(0, size, 2)
            sigma = rng.uniform(0.04, 0.25) * size
            maps[i] += rng.uniform(0.3, 1.0) * np.exp(
                -((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))
        k = rng.integers(1, 3)
        x0, y0 = rng.uniform(0, 0.6 * size, (2, k))
        w, h = rng.uniform(0.15, 0.4, (2, k)) * size
        boxes.append(np.stack([x0, y0, np.minimum(x0 + w, size), np.minimum(y0 + h, size)], 1))
    return maps, boxes


@dataclass
class Timed:
    name: str
    run: Callable[[], MaxBoxAccResult]
    best_s: float = float("inf")


#: ``--grid``: the threshold grids to time on.
GRIDS = {"default": DEFAULT_CAM_THRESHOLDS, "fine": FINE_CAM_THRESHOLDS}


def metric_throughput(n: int, size: int, repeats: int, seed: int,
                      taus: np.ndarray = DEFAULT_CAM_THRESHOLDS, protocol: str = "clean") -> float:
    """Time fast vs reference MaxBoxAcc(V2); return the worst fast/reference speed-up."""
    maps, boxes = random_smooth_maps(n, size, seed)
    print(f"metric throughput: {n} smooth maps of {size} px, {len(taus)} thresholds, protocol "
          f"{protocol!r}, best of {repeats} interleaved runs, {os.cpu_count()} CPUs visible")
    worst = float("inf")
    for multi_contour, label in ((True, "MaxBoxAccV2 (all contours)"),
                                 (False, "MaxBoxAcc (largest contour)")):
        methods = [
            Timed("reference loop", lambda mc=multi_contour: max_box_acc_reference(
                maps, boxes, cam_thresholds=taus, multi_contour=mc, protocol=protocol)),
            Timed("max_box_acc", lambda mc=multi_contour: max_box_acc(
                maps, boxes, cam_thresholds=taus, multi_contour=mc, protocol=protocol)),
        ]
        results = [m.run() for m in methods]  # untimed: check first, and warm up
        for method, result in zip(methods[1:], results[1:]):
            if not (np.array_equal(result.best_iou, results[0].best_iou)
                    and np.array_equal(result.box_acc, results[0].box_acc)):
                print(f"FAIL: {method.name} and the reference loop disagree ({label})")
                sys.exit(1)
        for _ in range(repeats):
            for method in methods:
                start = time.perf_counter()
                method.run()
                method.best_s = min(method.best_s, time.perf_counter() - start)
        reference_s = methods[0].best_s
        print(f"\n{label}: {results[0]}")
        print(f"  {'method':<26} {'time (s)':>9} {'maps/s':>9} {'speed-up':>9}")
        for method in methods:
            print(f"  {method.name:<26} {method.best_s:9.3f} {n / method.best_s:9.0f} "
                  f"{reference_s / method.best_s:8.2f}x")
        worst = min(worst, reference_s / methods[1].best_s)
        print("  numbers: identical to the reference loop (every IoU, every threshold)")
    return worst


def both_at_once(n: int, size: int, repeats: int, seed: int,
                 taus: np.ndarray = DEFAULT_CAM_THRESHOLDS, protocol: str = "clean") -> float:
    """Time max_box_acc_both against its two max_box_acc calls; return the speed-up."""
    maps, boxes = random_smooth_maps(n, size, seed)
    same = dict(cam_thresholds=taus, protocol=protocol)
    two = Timed("two max_box_acc calls", lambda: (
        max_box_acc(maps, boxes, **same),
        max_box_acc(maps, boxes, iou_thresholds=(0.5,), multi_contour=False, **same)))
    one = Timed("max_box_acc_both", lambda: max_box_acc_both(maps, boxes, **same))
    separate, together = two.run(), one.run()  # untimed: check first, and warm up
    if not all(np.array_equal(a.best_iou, b.best_iou) for a, b in zip(separate, together)):
        print("FAIL: max_box_acc_both and the two calls disagree")
        sys.exit(1)
    for _ in range(repeats):
        for method in (two, one):
            start = time.perf_counter()
            method.run()
            method.best_s = min(method.best_s, time.perf_counter() - start)
    print(f"\nMaxBoxAccV2 and MaxBoxAcc together ({n} maps of {size} px, best of {repeats}):")
    for method in (two, one):
        print(f"  {method.name:<26} {method.best_s:9.3f} s")
    print(f"  speed-up {two.best_s / one.best_s:.2f}x; numbers identical (every IoU, every threshold)")
    return two.best_s / one.best_s


# ------------------------------------------------------------------------------------------
# Part 2: the model comparison table
# ------------------------------------------------------------------------------------------

#: The table's columns (keys of cam_tutorial.methods.compare.ROW_HEADERS), in print order.
TABLE_COLUMNS = ("method", "top1_cls", "top1_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2",
                 "v2_03", "v2_05", "v2_07", "pointing", "object_covered", "area_ratio")


def model_comparison(preset_name: str | None, limit: int | None) -> list[dict[str, Any]]:
    """Measure every method of :func:`cam_tutorial.methods.compare.method_maps` on the lab's test split.

    The models come from the zoo (trained on first use, then cached); the preset from
    ``--preset`` or ``CAM_TUTORIAL_PRESET``. Prints what it measures and how fast; returns the
    rows (keys of :data:`cam_tutorial.methods.compare.ROW_HEADERS`).
    """
    import torch

    from cam_tutorial.methods.compare import comparison_rows, localization_report, method_maps
    from cam_tutorial.config import default_device, get_preset
    from cam_tutorial.zoo import model_dataset, trained_model

    preset = get_preset(preset_name)
    device = default_device()
    dataset = model_dataset("resnet18b_gap", "test", preset)
    if limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    n = len(dataset)
    print(f"model comparison: preset {preset.name!r}, {n} test images of {preset.image_size} px, "
          f"device {device}, {os.cpu_count()} CPUs visible")
    gap = trained_model("resnet18b_gap", preset, device=device, progress=False)
    gmp = trained_model("resnet18b_gmp", preset, device=device, progress=False)
    timings: dict[str, float] = {}
    maps = method_maps(gap, dataset, gmp, preset.eval_batch_size, device, progress=False, timings=timings)
    reports = {name: localization_report(found, name) for name, found in maps.items()}
    print(f"\n  {'method':<32} {'maps (s)':>9} {'images/s':>9} {'scoring (s)':>12} {'maps/s':>8}")
    for name, report in reports.items():
        print(f"  {name:<32} {timings[name]:9.2f} {n / max(timings[name], 1e-9):9.0f} "
              f"{report.seconds:12.2f} {n / report.seconds:8.0f}")
    print("  (scoring = the paper's boxes, top-1 / GT-known loc, MaxBoxAcc and MaxBoxAccV2 with 100 "
          "thresholds each, pointing game, coverage)")
    return comparison_rows(reports)


def print_table(rows: list[dict[str, Any]]) -> None:
    """The rows as a fixed-width text table, percentages with one decimal."""
    from cam_tutorial.methods.compare import ROW_HEADERS

    print()
    print("  ".join(f"{ROW_HEADERS[c]:>13}" if i else f"{ROW_HEADERS[c]:<32}"
                    for i, c in enumerate(TABLE_COLUMNS)))
    for row in rows:
        cells = [f"{row['method']:<32}"]
        for c in TABLE_COLUMNS[1:]:
            value = row[c]
            cells.append(f"{value:>13.2f}" if c == "area_ratio" else f"{value:>13.1%}")
        print("  ".join(cells))
    print("  area / object is a ratio (1 = the kept region has the object's size); the rest are fractions.")


# ------------------------------------------------------------------------------------------
# Part 3: the released code's boxes
# ------------------------------------------------------------------------------------------


def _timed(run: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def released_code_speed(n: int, size: int, seed: int) -> None:
    """Time box_from_cam_released_code against the loop it replaced, after checking equality."""
    noise = np.random.default_rng(seed).random((size, size))
    smooth, _ = random_smooth_maps(n, size, seed)
    cases = [(f"uniform noise, {size} px (issue 12)", [noise]),
             (f"{n} smooth maps, {size} px", list(smooth))]
    print(f"released code's boxes: box_from_cam_released_code against the reference loop, "
          f"one timed run each, {os.cpu_count()} CPUs visible")
    print(f"  {'maps':<30} {'loop (s)':>9} {'fast (s)':>10} {'ratio':>8}")
    for label, maps in cases:
        loop_s = fast_s = 0.0
        for cam in maps:
            expected, seconds = _timed(lambda: box_from_cam_released_code_reference(cam))
            loop_s += seconds
            box, seconds = _timed(lambda: box_from_cam_released_code(cam))
            fast_s += seconds
            if box.tolist() != expected.tolist():
                print(f"FAIL: box_from_cam_released_code and the loop disagree ({label})")
                sys.exit(1)
        print(f"  {label:<30} {loop_s:9.2f} {fast_s:10.3f} {loop_s / fast_s:7.0f}x")
    print("  boxes: identical to the loop's")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="maps to score (default 200)")
    parser.add_argument("--size", type=int, default=224, help="map side in pixels (224)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocol", choices=MAX_BOX_ACC_PROTOCOLS, default="clean",
                        help="part 1's scoring protocol (clean; wsolevaluation: their code's numbers)")
    parser.add_argument("--grid", choices=tuple(GRIDS), default="default",
                        help="part 1's thresholds: default (0.00 .. 0.99) or fine (0.000 .. 0.999)")
    parser.add_argument("--check-target", action="store_true",
                        help="exit with status 1 if the speed-up is below 2x")
    parser.add_argument("--models", action="store_true",
                        help="print the model comparison table instead (trains the zoo models on first use)")
    parser.add_argument("--released", action="store_true",
                        help="time the released code's box rule against its reference loop instead")
    parser.add_argument("--preset", default=None, help="preset for --models (ci, cpu, gpu)")
    parser.add_argument("--limit", type=int, default=None,
                        help="--models: score only the first LIMIT test images")
    args = parser.parse_args(argv)
    if min(args.n, args.size, args.repeats) < 1:
        parser.error("--n, --size and --repeats must be >= 1")

    if args.models:
        print_table(model_comparison(args.preset, args.limit))
        return
    if args.released:
        released_code_speed(args.n, args.size, args.seed)
        return
    speedup = metric_throughput(args.n, args.size, args.repeats, args.seed, GRIDS[args.grid],
                                args.protocol)
    both_at_once(args.n, args.size, args.repeats, args.seed, GRIDS[args.grid], args.protocol)
    verdict = "met" if speedup >= 2 else "NOT met"
    print(f"\nspeed-up of max_box_acc over the loop: {speedup:.2f}x at worst "
          f"(target >= 2x: {verdict})")
    if args.check_target and speedup < 2:
        sys.exit(1)


if __name__ == "__main__":
    main()
