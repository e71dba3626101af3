"""How fast are class activation maps? The package's CAM against a plain forward pass and the rest.

Measured side by side in one run, on one model (ResNet18B, eval mode, random weights: speed does
not depend on training), at each batch size, as the median of ``--repeats`` timed runs after
``--warmup`` untimed ones, interleaved (in a rotating order) so that a change in machine load hits
every method alike:

* ``forward``: ``model(images)`` under ``torch.no_grad``: the floor.
* ``cam (package)``: :func:`cam_tutorial.cam.compute_cams`, end to end: logits, top-1 maps from
  the same pass, upsampled to the input size (bilinear) and min-max normalised per image.
* ``slides loop``: the slide deck's recipe, per image: the prediction from ``model(image)``, the
  features from a separate ``nn.Sequential`` of the backbone (so the backbone runs twice), a numpy
  matmul of the class's weight row with the ``K x hw`` matrix, min-max, ``uint8``, ``cv2.resize``.
  Weights are read from the same model (the loop's cost, not its bug).
* ``slides loop, 1 pass``: the same loop with the logits computed from the features, so the gap to
  the package shows what batching alone is worth.
* ``torchcam CAM`` and ``grad-cam GradCAM`` (pytorch-grad-cam), when installed: their maps for the
  predicted class at the input size (torchcam's maps upsampled the same way as the package's).
  GradCAM needs a backward pass; that is its price.

Ratios are of medians; the ``min ms`` column and the bracketed CAM/forward ratio use the fastest
run, which a loaded machine disturbs less. Targets: CAM/forward <= 1.10 (CAM should cost about one
forward pass), loop/CAM >= 2, GradCAM/CAM >= 3. Before timing, the package's raw maps are checked
against the loop's float maps (before its uint8 step), so the methods compute the same thing.

How to run (from the repository root)::

    .venv/bin/python benchmarks/cam_speed.py                       # 224 px, device at hand
    .venv/bin/python benchmarks/cam_speed.py --batches 1 16 64 --repeats 10
    .venv/bin/python benchmarks/cam_speed.py --image-size 96 --width 24 --batches 16

torchcam and grad-cam are optional. grad-cam pulls in scikit-learn (and older releases
opencv-python, which would replace the headless OpenCV), so install them in a separate venv that
sees ``.venv``'s packages through a ``.pth`` file, and run the script with it. Use the Python
that made ``.venv`` (``home`` in ``.venv/pyvenv.cfg``; 3.11 here)::

    python3.11 -m venv .venv-bench
    echo "import site; site.addsitedir('$PWD/.venv/lib/python3.11/site-packages')" \\
        > .venv-bench/lib/python3.11/site-packages/zz_cam_tutorial_venv.pth
    .venv-bench/bin/python -m pip install --no-deps torchcam grad-cam ttach
    .venv/bin/python -m pip freeze | grep -v '^-e' > /tmp/venv-pins.txt  # keep .venv's numpy etc.
    .venv-bench/bin/python -m pip install -c /tmp/venv-pins.txt scikit-learn
    .venv-bench/bin/python benchmarks/cam_speed.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cam_tutorial.cam import class_activation_maps, compute_cams, normalize_maps, upsample_maps
from cam_tutorial.models import ResNet18B


def slides_loop(model: nn.Module, images: torch.Tensor, two_passes: bool = True) -> list[np.ndarray]:
    """The slides' per-image CAM, written out faithfully (weights from the same model).

    Returns one ``uint8`` map of the input size per image, as the slides' code does.
    """
    resnet_front = nn.Sequential(*model.features.children())  # the separate Sequential
    weight = model.classifier.weight.detach().cpu().numpy()
    size_upsample = (images.shape[-1], images.shape[-2])  # cv2 wants (width, height)
    maps = []
    with torch.no_grad():
        for image in images.split(1):
            if two_passes:
                logit = model(image)
                feature_map = resnet_front(image)
            else:
                feature_map = resnet_front(image)
                logit = model.classifier(model.pool(feature_map))
            idx = int(logit.argmax())
            bz, nc, h, w = feature_map.shape
            image_matrix_2d = feature_map.reshape((nc, h * w)).cpu().numpy()
            cam = np.matmul(weight[idx], image_matrix_2d).reshape(h, w)
            cam = cam - cam.min()
            cam = cam / cam.max()
            cam = np.uint8(255 * cam)
            maps.append(cv2.resize(cam, size_upsample))
    return maps


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Method:
    """One timed thing: ``setup`` and ``teardown`` run untimed around each timed ``run``."""

    def __init__(self, name: str, run: Callable[[], object], setup: Callable[[], None] | None = None,
                 teardown: Callable[[], None] | None = None, inner: int = 1) -> None:
        self.name, self.run, self.setup, self.teardown = name, run, setup, teardown
        self.inner = inner  # runs per timing, for steps too short to time once

    def once(self, device: torch.device) -> float:
        if self.setup:
            self.setup()
        _sync(device)
        start = time.perf_counter()
        for _ in range(self.inner):
            self.run()
        _sync(device)
        elapsed = (time.perf_counter() - start) / self.inner
        if self.teardown:
            self.teardown()
        return elapsed


def optional_methods(model: nn.Module, images: torch.Tensor) -> tuple[list[Method], list[str]]:
    """torchcam's CAM and pytorch-grad-cam's GradCAM, when they can be imported."""
    methods, missing = [], []
    size = tuple(images.shape[-2:])
    try:
        from torchcam.methods import CAM as TorchCAM

        state: dict[str, object] = {}

        def tc_setup() -> None:
            state["cam"] = TorchCAM(model, target_layer="features", fc_layer="classifier",
                                    input_shape=tuple(images.shape[1:]))

        def tc_run() -> torch.Tensor:
            with torch.no_grad():
                logits = model(images)
                maps = state["cam"](class_idx=logits.argmax(dim=1).tolist(), scores=logits)[0]
                return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)

        def tc_teardown() -> None:
            state.pop("cam").remove_hooks()

        methods.append(Method("torchcam CAM", tc_run, tc_setup, tc_teardown))
    except ImportError:
        missing.append("torchcam")
    try:
        from pytorch_grad_cam import GradCAM

        gc_state: dict[str, object] = {}

        def gc_setup() -> None:
            gc_state["cam"] = GradCAM(model=model, target_layers=[model.features])

        def gc_run() -> np.ndarray:
            return gc_state["cam"](input_tensor=images, targets=None)

        def gc_teardown() -> None:
            gc_state.pop("cam").activations_and_grads.release()

        methods.append(Method("grad-cam GradCAM", gc_run, gc_setup, gc_teardown))
    except ImportError:
        missing.append("grad-cam (pytorch_grad_cam)")
    return methods, missing


def check_agreement(model: nn.Module, images: torch.Tensor) -> float:
    """Largest difference between the package's raw maps and the loop's float maps (same class)."""
    out = compute_cams(model, images[:2], upsample=False, normalize=False)
    with torch.no_grad():
        features = nn.Sequential(*model.features.children())(images[:2])
    weight = model.classifier.weight.detach().cpu().numpy()
    worst = 0.0
    for i in range(out.maps.shape[0]):
        k, h, w = features.shape[1:]
        loop_map = np.matmul(weight[int(out.classes[i])], features[i].reshape(k, h * w).cpu().numpy())
        worst = max(worst, float(np.abs(loop_map.reshape(h, w) - out.maps[i].cpu().numpy()).max()))
    scale = float(out.maps.abs().max())
    if worst > 1e-3 * max(scale, 1.0):
        raise AssertionError(f"package and loop maps differ by {worst:.3g} (scale {scale:.3g})")
    return worst


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batches", type=int, nargs="+", default=None,
                        help="batch sizes (default: 1 16 on CPU, 1 16 64 on CUDA)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs (default: 20 on CUDA; on CPU 10 for batches <= 2, else 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs first (default: 1 CPU, 3 CUDA)")
    parser.add_argument("--width", type=int, default=64, help="ResNet18B width (64 = full)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--skip-loop", action="store_true", help="leave out the slow per-image loops")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    on_cuda = device.type == "cuda"
    batches = args.batches or ([1, 16, 64] if on_cuda else [1, 16])
    def repeats_for(batch: int) -> int:  # small batches are cheap and noisy: time them more often
        return args.repeats or (20 if on_cuda else (10 if batch <= 2 else 3))

    warmup = args.warmup if args.warmup is not None else (3 if on_cuda else 1)

    torch.manual_seed(0)
    model = ResNet18B(num_classes=args.num_classes, width=args.width).to(device).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.05)  # distinct logits, as a trained model has
    name = torch.cuda.get_device_name(device) if on_cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"ResNet18B width {args.width}, {args.image_size} px, {args.num_classes} classes, on {name}; "
          f"median of {args.repeats or ('20' if on_cuda else '10 (batch <= 2) or 3')} runs after {warmup} warm-up; "
          f"torch {torch.__version__}")

    results: dict[int, dict[str, float]] = {}
    fastest: dict[int, dict[str, float]] = {}  # min over repeats: less sensitive to a loaded machine
    missing: list[str] = []
    for batch in batches:
        images = torch.rand(batch, 3, args.image_size, args.image_size, device=device)
        diff = check_agreement(model, images)

        def forward() -> torch.Tensor:
            with torch.no_grad():
                return model(images)

        stored = compute_cams(model, images, upsample=False, normalize=False)  # features and logits, computed once

        def post_run() -> torch.Tensor:  # only what CAM adds after the forward pass
            maps = class_activation_maps(stored.features, model.classifier.weight, stored.logits.argmax(dim=1))
            return normalize_maps(upsample_maps(maps, tuple(images.shape[-2:])), inplace=True)

        methods = [
            Method("forward", forward),
            Method("cam (package)", lambda: compute_cams(model, images)),
            Method("  of which after forward", post_run, inner=10),
        ]
        if not args.skip_loop:
            methods += [Method("slides loop", lambda: slides_loop(model, images)),
                        Method("slides loop, 1 pass", lambda: slides_loop(model, images, two_passes=False))]
        extra, missing = optional_methods(model, images)
        methods += extra
        for method in methods:
            for _ in range(warmup):
                method.once(device)
        times: dict[str, list[float]] = {m.name: [] for m in methods}
        for r in range(repeats_for(batch)):
            # Rotate the order each round so that no method always runs first (or after GradCAM).
            for method in methods[r % len(methods):] + methods[:r % len(methods)]:
                times[method.name].append(method.once(device))
        results[batch] = {n: statistics.median(t) for n, t in times.items()}
        fastest[batch] = {n: min(t) for n, t in times.items()}
        print(f"batch {batch}: package vs loop raw maps agree (max diff {diff:.2g})")

    print()
    print(f"{'batch':>5}  {'method':<26}{'ms/batch':>10}{'images/s':>10}{'x forward':>11}{'min ms':>10}")
    for batch, row in results.items():
        for method, seconds in row.items():
            print(f"{batch:>5}  {method:<26}{1e3 * seconds:>10.1f}{batch / seconds:>10.1f}"
                  f"{seconds / row['forward']:>11.2f}{1e3 * fastest[batch][method]:>10.1f}")
    print()
    for batch, row in results.items():
        c = row["cam (package)"]
        best = fastest[batch]
        parts = [f"CAM/forward {c / row['forward']:.2f} [by min {best['cam (package)'] / best['forward']:.2f}] "
                 "(target <= 1.10)"]
        if "slides loop" in row:
            parts.append(f"loop/CAM {row['slides loop'] / c:.1f} (target >= 2)")
            parts.append(f"loop 1 pass/CAM {row['slides loop, 1 pass'] / c:.1f}")
        if "grad-cam GradCAM" in row:
            parts.append(f"GradCAM/CAM {row['grad-cam GradCAM'] / c:.1f} (target >= 3)")
        if "torchcam CAM" in row:
            parts.append(f"torchcam/CAM {row['torchcam CAM'] / c:.2f}")
        print(f"batch {batch}: " + "; ".join(parts))
    for package in missing:
        print(f"{package}: not installed (see the docstring to add it)")


if __name__ == "__main__":
    main()
