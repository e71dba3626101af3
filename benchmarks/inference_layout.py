"""Evaluation on the CPU in contiguous (NCHW) and channels-last (NHWC) layout, side by side.

For each shipped model of a preset: the test split's accuracy and loss in both layouts (they must
give the same accuracy), the loss of repeated channels-last runs (they must agree to the last
bit), and the time of each, best of ``--repeats``. This is what ``evaluate``'s
``channels_last="auto"`` rests on (see :func:`cam_tutorial.evaluation.inference_channels_last`).

Run: ``python benchmarks/inference_layout.py [--preset cpu] [--images 1000] [--threads 1]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch
from torch.utils.data import Subset

from cam_tutorial import zoo
from cam_tutorial.config import get_preset
from cam_tutorial.evaluation import evaluate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--images", type=int, default=1000, help="test images per model (1000)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per layout (2)")
    args = parser.parse_args(argv)
    if min(args.images, args.threads, args.repeats) < 1:
        parser.error("--images, --threads and --repeats must be >= 1")
    torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    print(f"preset {preset.name}, {preset.image_size} px, {args.threads} thread(s), best of {args.repeats}")
    print(f"  {'model':<16} {'NCHW (s)':>9} {'NHWC (s)':>9} {'speed-up':>9} {'accuracy':>9}")
    failed = False
    for name in zoo.available_models():
        data = zoo.model_dataset(name, "test", preset)
        data = Subset(data, range(min(args.images, len(data))))
        model = zoo.trained_model(name, preset, "cpu", tempfile.mkdtemp(), progress=False)
        best, results = {}, {}
        for _ in range(args.repeats):
            for layout in (False, True):
                start = time.perf_counter()
                results.setdefault(layout, []).append(evaluate(model, data, preset.eval_batch_size,
                                                               channels_last=layout))
                best[layout] = min(best.get(layout, float("inf")), time.perf_counter() - start)
        accuracy = {layout: runs[0][1] for layout, runs in results.items()}
        repeatable = len(set(results[True])) == 1
        if accuracy[False] != accuracy[True] or not repeatable:
            print(f"FAIL: {name}: accuracies {accuracy}, channels-last runs {results[True]}")
            failed = True
        print(f"  {name:<16} {best[False]:9.2f} {best[True]:9.2f} {best[False] / best[True]:8.2f}x "
              f"{accuracy[True]:9.1%}")
    print("  accuracy: the same in both layouts; channels-last losses identical across runs"
          if not failed else "  FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
