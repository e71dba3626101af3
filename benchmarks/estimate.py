"""How long each chapter takes under a preset on a Colab T4: an estimate computed, not typed.

Per chapter, the work it does under the preset (``CHAPTER_WORK``): the zoo models it needs
(trained when the cache lacks them: ``train_size x epochs`` training images at three times the
forward FLOPs, the validation split every epoch, the test split once, and rendering the lab once
into memory at the loader's rate), the trainings it always does (chapter 3's own run, its page's
throughput table), forward passes (test-set CAMs, saliency at forward + backward) and fixed costs
(installing the package, downloads). FLOPs per image come from
:func:`cam_tutorial.summary.count_flops`; minutes follow from an effective TFLOP/s (a T4 gives
15-25 on these networks in mixed precision) and the loader's rate: the rate of the lab's uint8
training view measured here per core (``benchmarks/data_speed.py``), times two workers, times
``COLAB_CPU_FACTOR`` for Colab's weaker vCPUs.

"fresh": a new session with an empty cache, this chapter alone (it trains every model it needs);
"cached": the zoo's models already in the Drive cache (chapter 3 still trains its own run);
"book": all chapters in order on one fresh session (each model trained once, where first needed).

Run: ``python benchmarks/estimate.py [--preset gpu] [--tflops 15 25] [--loader-rate 1500]``
(``--measure-loader`` measures the per-core rate here first).
"""

from __future__ import annotations

import argparse
import functools
import logging
import time
from dataclasses import dataclass, field

import torch

from cam_tutorial.config import Preset, get_preset
from cam_tutorial.real.efficientnet_lite import efficientnet_lite0
from cam_tutorial.summary import count_flops
from cam_tutorial.zoo import available_models, recipe

__all__ = ["ChapterWork", "CHAPTER_WORK", "estimate", "estimate_book", "T4_TFLOPS", "LOADER_RATE_PER_CORE",
           "COLAB_CPU_FACTOR", "COLAB_WORKERS", "CHAPTER_SETUP_MINUTES"]

logger = logging.getLogger(__name__)

#: Effective TFLOP/s of a T4 on these networks in float16 (the range the issue measured from).
T4_TFLOPS = (15.0, 25.0)
#: img/s of the lab's uint8 training view at 224 px on one core here, by CPU time
#: (``benchmarks/data_speed.py``, December 2026: 1,850 on a quiet machine, 1,030-1,240 on a loaded
#: one; the full float items 1,470). The loaded figure, to stay on the safe side.
LOADER_RATE_PER_CORE = 1200.0
#: Colab's vCPUs against these cores (assumed: Colab's are hyperthreads of older Xeons).
COLAB_CPU_FACTOR = 0.6
COLAB_WORKERS = 2
#: Installing the package from git and importing torch on a fresh Colab session.
CHAPTER_SETUP_MINUTES = 0.5


@dataclass(frozen=True)
class ChapterWork:
    """What a chapter computes under a preset (counts are images).

    Attributes:
        models: zoo models it loads (trained if the cache lacks them).
        own_trainings: zoo-shaped trainings it always runs itself (chapter 3).
        forward: ``(network, images)`` forward passes; network ``"lite0"`` is EfficientNet-Lite0.
        backward: ``(network, images)`` forward + backward passes (saliency).
        train_steps: ``(network, images)`` training images outside the zoo (throughput tables).
        fixed_minutes: downloads and other costs that are neither FLOPs nor the lab's loader.
    """

    models: tuple[str, ...] = ()
    own_trainings: tuple[str, ...] = ()
    forward: tuple[tuple[str, int], ...] = ()
    backward: tuple[tuple[str, int], ...] = ()
    train_steps: tuple[tuple[str, int], ...] = ()
    fixed_minutes: float = 0.0
    notes: tuple[str, ...] = field(default=())


def CHAPTER_WORK(p: Preset) -> dict[str, ChapterWork]:  # noqa: N802 (a table, read like a constant)
    """The work of every chapter and Going deeper page under preset ``p`` (read off their cells)."""
    test, probe = p.test_size, p.chapter.probe_train_size + p.chapter.probe_test_size
    throughput = p.chapter.throughput_steps * p.batch_size * 2 * 3  # 3 settings, 2 epochs
    finetune = p.chapter.finetune_epochs
    return {
        "00_quick_start": ChapterWork(forward=(("lite0", 2),)),  # one photo pair, 224 x 448 px
        "01_fc_vs_gap": ChapterWork(models=("vgg16_fc_left", "vgg16_gap_left"),
                                    forward=(("vgg16_fc_left", 2 * test), ("vgg16_gap_left", 2 * test))),
        "deeper_01_two_heads": ChapterWork(models=("vgg16_fc_left", "vgg16_gap_left"),
                                           forward=(("vgg16_fc_left", 2 * test), ("vgg16_gap_left", 2 * test))),
        "02_building_resnet18b": ChapterWork(),
        "deeper_02_shortcuts": ChapterWork(),  # its training run is an exercise
        "deeper_02_sizes": ChapterWork(),
        "03_training_on_a_gpu": ChapterWork(own_trainings=("resnet18b_gap",), forward=(("resnet18b_gap", test),)),
        # the throughput table, and the checkpoint demo's 4 epochs of 64 images
        "deeper_03_training_internals": ChapterWork(train_steps=(("resnet18b_gap", throughput + 4 * 64),)),
        "04_from_score_to_map": ChapterWork(models=("resnet18b_gap", "resnet18b_gmp"),
                                            forward=(("resnet18b_gap", test), ("resnet18b_gmp", test))),
        "05_computing_cams": ChapterWork(models=("resnet18b_gap",),
                                         forward=(("resnet18b_gap", test), ("lite0", 2))),
        "deeper_05_lab_maps": ChapterWork(models=("resnet18b_gap",), forward=(("resnet18b_gap", 2 * test),)),
        "deeper_05_photos": ChapterWork(forward=(("lite0", 16),)),  # eight photographs, two sizes
        "06_gap_vs_gmp": ChapterWork(models=("resnet18b_gap", "resnet18b_gmp"),
                                     forward=(("resnet18b_gap", test), ("resnet18b_gmp", test))),
        "deeper_06_fair_comparison": ChapterWork(models=("resnet18b_gap", "resnet18b_gmp"),
                                                 forward=(("resnet18b_gap", 2 * test), ("resnet18b_gmp", 2 * test))),
        "deeper_06_parts_and_tolerance": ChapterWork(models=("resnet18b_gap", "resnet18b_gmp"),
                                                     forward=(("resnet18b_gap", test), ("resnet18b_gmp", test))),
        "07_from_cams_to_boxes": ChapterWork(models=("resnet18b_gap",),
                                             forward=(("resnet18b_gap", test + p.val_size),)),
        "deeper_07_protocols": ChapterWork(models=("resnet18b_gap", "resnet18b_gmp"),
                                           forward=(("resnet18b_gap", test + p.val_size), ("resnet18b_gmp", test)),
                                           backward=(("resnet18b_gap", test),)),  # saliency
        "deeper_07_released_code": ChapterWork(models=("resnet18b_gap",), forward=(("resnet18b_gap", test),)),
        "08_beyond_the_paper": ChapterWork(models=("resnet18b_gap",),
                                           forward=(("lite0", 2 * probe), ("resnet18b_gap", 2 * test))),
        "deeper_08_other_methods": ChapterWork(models=("resnet18b_gap",), forward=(("resnet18b_gap", test),),
                                               backward=(("resnet18b_gap", test // 4),)),
        "deeper_08_other_models": ChapterWork(
            models=("resnet18b_gap",),
            # On Colab under gpu: Imagenette (9,469 JPEGs) + ImageNet weights, finetune_epochs epochs of
            # fine-tuning bound by JPEG decoding (assumed 400 img/s on 2 vCPUs).
            fixed_minutes=1.5 + finetune * 9469 / 400 / 60 if finetune else 0.0,
            notes=("includes the Imagenette fine-tuning (Colab, gpu only)",) if finetune else ()),
    }


@functools.lru_cache(maxsize=32)
def forward_gflops(network: str, preset: Preset) -> float:
    """GFLOPs of one forward pass of one image (``count_flops``).

    A zoo network is built and run on the meta device: shapes only, no weights initialised and no
    arithmetic done, the same count (the full-width VGG16 in 0.1 s instead of 2.7 s on a CPU core).
    """
    if network == "lite0":
        model, device, size = efficientnet_lite0(), "cpu", preset.chapter.probe_image_size
    else:
        with torch.device("meta"):
            model = recipe(network, preset).network()
        device, size = "meta", preset.image_size
    return count_flops(model.eval(), torch.zeros(1, 3, size, size, device=device)) / 1e9


def _minutes(gflops: float, tflops: float) -> float:
    return gflops / (tflops * 1e3) / 60


def training_minutes(name: str, preset: Preset, tflops: float, loader_rate: float) -> float:
    """One zoo training, with the shapes-lab training it starts from where its recipe has one
    (counted for each model that needs it, so shared starts make this an upper bound): the lab
    rendered once (train + val + test) at the loader's rate, then compute, at the recipe's sizes."""
    fwd = forward_gflops(name, preset)
    total, wanted = 0.0, recipe(name, preset)
    while wanted is not None:
        lab, epochs = wanted.lab, wanted.training.epochs
        compute = 3 * fwd * lab.train_size * epochs + fwd * (lab.val_size * epochs + lab.test_size)
        render = (lab.train_size + lab.val_size + lab.test_size) / loader_rate / 60
        total += _minutes(compute, tflops) + render
        wanted = wanted.start
    return total


def estimate(preset: Preset, tflops: float, loader_rate: float, trained: set[str] | None = None
             ) -> dict[str, tuple[float, float]]:
    """Minutes per chapter, ``(fresh, cached)``; ``trained``, if given, collects the models the
    chapters train when run in order (for :func:`estimate_book`)."""
    result = {}
    for chapter, work in CHAPTER_WORK(preset).items():
        base = CHAPTER_SETUP_MINUTES + work.fixed_minutes
        base += sum(_minutes(forward_gflops(n, preset) * k, tflops) for n, k in work.forward)
        base += sum(_minutes(3 * forward_gflops(n, preset) * k, tflops) for n, k in work.backward)
        base += sum(_minutes(3 * forward_gflops(n, preset) * k, tflops) for n, k in work.train_steps)
        base += sum(training_minutes(n, preset, tflops, loader_rate) for n in work.own_trainings)
        fresh = base + sum(training_minutes(n, preset, tflops, loader_rate) for n in work.models)
        result[chapter] = (fresh, base)
    return result


def estimate_book(preset: Preset, tflops: float, loader_rate: float) -> float:
    """Minutes for the whole book in order on one fresh session (each zoo model trained once;
    chapter 3's run is the zoo's ResNet18B-GAP, so later chapters load it)."""
    total, trained = 0.0, set()
    for chapter, (fresh, cached) in estimate(preset, tflops, loader_rate).items():
        work = CHAPTER_WORK(preset)[chapter]
        total += cached + sum(training_minutes(n, preset, tflops, loader_rate)
                              for n in work.models if n not in trained)
        trained |= set(work.models) | set(work.own_trainings)
    return total


def measure_loader_rate(size: int = 224, n: int = 300) -> float:
    """img/s of the lab's uint8 training view on one core here, by CPU time."""
    import cv2

    from cam_tutorial.lab import SyntheticShapes

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    view = SyntheticShapes("train", length=n + 1, image_size=size).training_view()
    view[n]
    started = time.process_time()
    for i in range(n):
        view[i]
    return n / (time.process_time() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="gpu")
    parser.add_argument("--tflops", type=float, nargs=2, default=T4_TFLOPS)
    parser.add_argument("--loader-rate", type=float, default=LOADER_RATE_PER_CORE, help="img/s per core here")
    parser.add_argument("--measure-loader", action="store_true")
    args = parser.parse_args(argv)
    preset = get_preset(args.preset)
    per_core = measure_loader_rate() if args.measure_loader else args.loader_rate
    loader = per_core * COLAB_WORKERS * COLAB_CPU_FACTOR
    low, high = sorted(args.tflops)
    print(f"preset {preset.name}: {preset.image_size} px, width {preset.width}, VGG width {preset.vgg_width}, "
          f"{preset.train_size} training images x {preset.epochs} epochs")
    print(f"T4 at {low:g}-{high:g} effective TFLOP/s; loader {loader:.0f} img/s "
          f"({per_core:.0f}/core here x {COLAB_WORKERS} workers x {COLAB_CPU_FACTOR} for Colab's vCPUs)")
    print("forward GFLOPs per image: " + ", ".join(f"{n} {forward_gflops(n, preset):.2f}" for n in available_models()))
    slow, fast = estimate(preset, low, loader), estimate(preset, high, loader)
    print(f"\n{'chapter':24s} {'fresh (min)':>13s} {'cached (min)':>13s}")
    for chapter in slow:
        print(f"{chapter:24s} {fast[chapter][0]:5.1f}-{slow[chapter][0]:<6.1f} {fast[chapter][1]:5.1f}-{slow[chapter][1]:<6.1f}")
    print(f"\nthe book on one fresh session: {estimate_book(preset, high, loader):.0f}-"
          f"{estimate_book(preset, low, loader):.0f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
