"""Localisation benchmarks: how fast MaxBoxAcc is, and (later) how the map methods compare.

**Part 1, metric throughput (the default).** ``N`` random smooth maps (sums of one to four
Gaussian bumps, ``--size`` px) with one or two random boxes each, scored with 100 thresholds
(0.00 .. 0.99) by :func:`cam_tutorial.localize.max_box_acc` and by the straightforward loop
:func:`cam_tutorial.localize.max_box_acc_reference`, side by side in one run, for MaxBoxAccV2
(all contours) and MaxBoxAcc (largest contour). Before any timing the two are checked to give
the same numbers (every per-image, per-threshold IoU, bit for bit); the script stops with exit
status 1 if they do not. The runs are interleaved (reference, fast, fast with threads, then
again) so that a change in machine load hits every method alike, and each time is the best of
``--repeats`` (the least disturbed run). Printed: seconds, maps per second, and the speed-up
over the loop (target: at least 2x; ``--check-target`` makes a miss exit with status 1).

**Part 2, the model comparison table (``--models``): PENDING.** It will print, for the lab's
test split and the cached trained models, CAM from the GAP model, CAM from the GMP model,
backprop saliency (on the GAP model) and the centre baseline: top-1 classification, top-1 and
ground-truth-known localisation (the paper's box rule at 20%), MaxBoxAcc, MaxBoxAccV2, the
pointing game and the share of the object covered. It needs ``cam_tutorial.zoo``
(``trained_model``), ``cam_tutorial.data.SyntheticShapes``, ``cam_tutorial.cam.CAMExtractor``
and ``cam_tutorial.saliency.gradient_saliency``; while any is missing it says so and exits
with status 2. No number in that table is typed in: every one is measured when it runs.

How to run (from the repository root)::

    .venv/bin/python benchmarks/localization.py                   # 200 maps of 224 px
    .venv/bin/python benchmarks/localization.py --n 50 --repeats 5
    .venv/bin/python benchmarks/localization.py --models --preset cpu
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from cam_tutorial.localize import (
    DEFAULT_CAM_THRESHOLDS,
    MaxBoxAccResult,
    boxes_from_cams,
    cam_area_fraction,
    centre_gaussian_maps,
    localization_accuracy,
    max_box_acc,
    max_box_acc_reference,
    pointing_game,
)

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


def metric_throughput(n: int, size: int, repeats: int, seed: int, workers: int) -> float:
    """Time fast vs reference MaxBoxAcc(V2); return the worst fast/reference speed-up."""
    maps, boxes = random_smooth_maps(n, size, seed)
    taus = DEFAULT_CAM_THRESHOLDS
    print(f"metric throughput: {n} smooth maps of {size} px, {len(taus)} thresholds, "
          f"best of {repeats} interleaved runs, {os.cpu_count()} CPUs visible")
    worst = float("inf")
    for multi_contour, label in ((True, "MaxBoxAccV2 (all contours)"),
                                 (False, "MaxBoxAcc (largest contour)")):
        methods = [
            Timed("reference loop", lambda mc=multi_contour: max_box_acc_reference(
                maps, boxes, cam_thresholds=taus, multi_contour=mc)),
            Timed("max_box_acc", lambda mc=multi_contour: max_box_acc(
                maps, boxes, cam_thresholds=taus, multi_contour=mc)),
        ]
        if workers > 1:
            methods.append(Timed(f"max_box_acc, {workers} threads",
                                 lambda mc=multi_contour: max_box_acc(
                                     maps, boxes, cam_thresholds=taus, multi_contour=mc,
                                     workers=workers)))
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


# ------------------------------------------------------------------------------------------
# Part 2: the model comparison table (PENDING until the trained models exist)
# ------------------------------------------------------------------------------------------

#: What the table compares: (row name, zoo model name, map kind).
MODEL_ROWS = (
    ("CAM, GAP model", "resnet18b_gap", "cam"),
    ("CAM, GMP model", "resnet18b_gmp", "cam"),
    ("backprop saliency, GAP model", "resnet18b_gap", "saliency"),
    ("centre baseline (Gaussian)", "resnet18b_gap", "centre"),
)


def _import_model_stack() -> dict[str, Any] | None:
    """The package parts the table needs, or None after saying which one is missing."""
    try:
        import torch
        from cam_tutorial.cam import CAMExtractor
        from cam_tutorial.config import default_device, get_preset
        from cam_tutorial.data import SyntheticShapes
        from cam_tutorial.saliency import gradient_saliency
        from cam_tutorial.zoo import trained_model
    except ImportError as err:
        print(f"--models needs the trained-model stack, which is not there yet: {err}.\n"
              "It uses cam_tutorial.zoo.trained_model, cam_tutorial.data.SyntheticShapes, "
              "cam_tutorial.cam.CAMExtractor and cam_tutorial.saliency.gradient_saliency. "
              "No table is printed rather than a made-up one.")
        return None
    return dict(torch=torch, CAMExtractor=CAMExtractor, default_device=default_device,
                get_preset=get_preset, SyntheticShapes=SyntheticShapes,
                gradient_saliency=gradient_saliency, trained_model=trained_model)


def _maps_for(kind: str, model: Any, images: Any, labels: Any, stack: dict[str, Any]) -> Any:
    """Maps of the true class for one batch, at the images' size, as numpy."""
    torch = stack["torch"]
    if kind == "cam":
        with stack["CAMExtractor"](model) as extractor:
            maps = extractor(images, classes=labels).maps
    elif kind == "saliency":
        maps = stack["gradient_saliency"](model, images, classes=labels)
    else:
        raise ValueError(f"unknown map kind {kind!r}")
    return torch.as_tensor(maps).detach().float().cpu().numpy()


def model_comparison_table(preset_name: str | None, limit: int | None) -> list[dict[str, Any]]:
    """Measure every row of :data:`MODEL_ROWS` on the lab's test split; return the rows.

    Every map is of the image's true class (what ground-truth-known localisation needs; where
    the class is right it is the predicted class's map, so top-1 localisation is unchanged).
    Classification for the centre baseline, which has no classifier, is the GAP model's.
    """
    stack = _import_model_stack()
    if stack is None:
        sys.exit(2)
    torch = stack["torch"]
    preset = stack["get_preset"](preset_name)
    device = stack["default_device"]()
    length = preset.test_size if limit is None else min(limit, preset.test_size)
    dataset = stack["SyntheticShapes"]("test", length=length, image_size=preset.image_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=preset.eval_batch_size)
    print(f"model comparison: preset {preset.name!r}, {length} test images of "
          f"{preset.image_size} px, device {device}")

    models: dict[str, Any] = {}
    rows = []
    for row_name, model_name, kind in MODEL_ROWS:
        if model_name not in models:
            model = stack["trained_model"](model_name, preset)
            if not isinstance(model, torch.nn.Module):
                raise TypeError(f"trained_model({model_name!r}) returned "
                                f"{type(model).__name__}, expected an nn.Module")
            models[model_name] = model.to(device).eval()
        model = models[model_name]
        all_maps, all_pred, all_true, all_boxes, all_masks = [], [], [], [], []
        for images, labels, boxes, masks in loader:
            images, labels = images.to(device), labels.to(device)
            with torch.no_grad():
                all_pred.append(model(images).argmax(1).cpu().numpy())
            if kind == "centre":
                all_maps.append(centre_gaussian_maps(len(images), *images.shape[-2:]))
            else:
                all_maps.append(_maps_for(kind, model, images, labels, stack))
            all_true.append(labels.cpu().numpy())
            all_boxes.append(boxes.numpy())
            all_masks.append(masks.numpy())
        maps = np.concatenate(all_maps)
        pred, true = np.concatenate(all_pred), np.concatenate(all_true)
        gt_boxes, gt_masks = np.concatenate(all_boxes), np.concatenate(all_masks)
        loc = localization_accuracy(pred, true, boxes_from_cams(maps, 0.2), gt_boxes)
        v2 = max_box_acc(maps, gt_boxes)
        original = max_box_acc(maps, gt_boxes, iou_thresholds=(0.5,), multi_contour=False)
        rows.append({
            "method": row_name,
            "top-1 cls": loc.top1_cls,
            "top-1 loc": loc.top1_loc,
            "GT-known loc": loc.gt_known_loc,
            "MaxBoxAcc": float(original.max_box_acc[0]),
            "MaxBoxAccV2": v2.mean,
            "pointing": pointing_game(maps, gt_masks, kind="mask"),
            "object covered": cam_area_fraction(maps, gt_masks, 0.2).means()["object_covered"],
        })
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    print("  ".join(f"{c:>14}" if i else f"{c:<30}" for i, c in enumerate(columns)))
    for row in rows:
        print("  ".join(f"{row[c]:>13.1%} " if i else f"{row[c]:<30}"
                        for i, c in enumerate(columns)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="maps to score (default 200)")
    parser.add_argument("--size", type=int, default=224, help="map side in pixels (224)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2,
                        help="also time max_box_acc with this many threads (2; 1 = skip)")
    parser.add_argument("--check-target", action="store_true",
                        help="exit with status 1 if the speed-up is below 2x")
    parser.add_argument("--models", action="store_true",
                        help="print the model comparison table instead (needs trained models)")
    parser.add_argument("--preset", default=None, help="preset for --models (ci, cpu, gpu)")
    parser.add_argument("--limit", type=int, default=None,
                        help="--models: score only the first LIMIT test images")
    args = parser.parse_args(argv)
    if min(args.n, args.size, args.repeats, args.workers) < 1:
        parser.error("--n, --size, --repeats and --workers must be >= 1")

    if args.models:
        print_table(model_comparison_table(args.preset, args.limit))
        return
    speedup = metric_throughput(args.n, args.size, args.repeats, args.seed, args.workers)
    verdict = "met" if speedup >= 2 else "NOT met"
    print(f"\nspeed-up of max_box_acc over the loop: {speedup:.2f}x at worst "
          f"(target >= 2x: {verdict})")
    if args.check_target and speedup < 2:
        sys.exit(1)


if __name__ == "__main__":
    main()
