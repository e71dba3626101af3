"""Presets: how big a run is, chosen in one place.

A preset is a plain dataclass of sizes. Its fields shape the models and their data (what the zoo's
recipes read); ``preset.chapter`` holds each chapter's own sizes (:class:`ChapterSizes`: images of a
demonstration, timed steps...). Notebooks and benchmarks read every size from it, so the same code
runs small in CI and full size on a GPU, and no chapter asks which preset it runs under. The preset
comes from the environment variable ``CAM_TUTORIAL_PRESET`` (``ci``, ``cpu`` or ``gpu``); without it,
``gpu`` when CUDA is available, else ``cpu``.

* ``ci``: the smallest run that still shows every effect the book claims (CI sets it).
* ``cpu``: what the committed notebook outputs are produced with (minutes per notebook, 2 cores).
* ``gpu``: full size, 224 px and full width, for Colab and GPU machines.

Example:
    >>> from cam_tutorial.config import get_preset
    >>> get_preset("gpu").image_size, get_preset("ci").chapter.sanity_images
    (224, 8)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from dataclasses import dataclass

import torch

__all__ = ["Preset", "ChapterSizes", "get_preset", "default_device", "map_size"]

logger = logging.getLogger(__name__)

ENV_VAR = "CAM_TUTORIAL_PRESET"
# A preset's name becomes part of file and folder names (the zoo's cache key), so it is limited
# to characters that cannot climb out of a folder or name another one.
_PRESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# The lab's kinds (cam_tutorial.lab.OBJECTS; not imported: the lab imports OpenCV, the config must not).
_OBJECT_KINDS = ("shapes", "creatures")


def _check_fields(owner: str, values: object, may_be_zero: tuple[str, ...] = ()) -> None:
    """Refuse a field of ``values`` annotated ``int`` that is not a positive integer (or 0, for the
    fields ``may_be_zero``), and one annotated ``bool`` that is not ``True`` or ``False``."""
    for field in dataclasses.fields(values):  # type: ignore[arg-type]
        value, least = getattr(values, field.name), 0 if field.name in may_be_zero else 1
        if field.type in ("bool", bool) and not isinstance(value, bool):
            raise ValueError(f"{owner} {field.name} must be True or False, got {value!r}")
        if field.type in ("int", int) and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            kind = "a non-negative" if least == 0 else "a positive"
            raise ValueError(f"{owner} {field.name} must be {kind} integer, got {value!r}: e.g. {field.name}=32")


@dataclass(frozen=True)
class ChapterSizes:
    """The chapters' own knobs under one preset: how big each demonstration is.
    Used in no chapter directly.

    None of them shapes a zoo model, so none enters a recipe or a cache key; no package code reads
    them, only the chapters (``preset.chapter.sanity_images``).

    Attributes:
        throughput_steps: timed training steps per setting in the throughput table (chapter 3's
            Going deeper page on training internals).
        sanity_images: lab test images of the cascading-randomisation check (chapter 8's Going
            deeper page on other methods).
        curve_images: lab test images of the deletion/insertion curves (the same page).
        curve_steps: points on each of those curves.
        probe_image_size: input side of the frozen ImageNet network in chapter 8's
            generic-features experiments (224 is its training size, smaller is faster).
        probe_train_size: images the linear head of those experiments is fitted on, per task.
        probe_test_size: images they are scored on, per task.
        download_weights: whether chapter 8's page on other models may try to download ImageNet
            weights (``ci`` never downloads).
        compare_images: test images of each other preset's row in the preset comparisons
            (the Going deeper pages of chapters 1 and 6), at most that preset's test split: ``ci``,
            the run that CI executes, scores the shipped ``cpu`` models on a fifth of theirs.
        finetune_epochs: epochs of the ResNet18B fine-tuning on Imagenette (chapter 8's page on
            other models), run on Colab only; 0 skips it (it downloads the data set and needs a GPU).

    Example:
        >>> ChapterSizes(sanity_images=4).replace(curve_steps=8).curve_steps
        8
    """

    throughput_steps: int = 4
    sanity_images: int = 16
    curve_images: int = 48
    curve_steps: int = 32
    probe_image_size: int = 224
    probe_train_size: int = 500
    probe_test_size: int = 300
    download_weights: bool = True
    compare_images: int = 1000
    finetune_epochs: int = 0

    def __post_init__(self) -> None:
        _check_fields("chapter size", self, may_be_zero=("finetune_epochs",))

    def replace(self, **changes: object) -> "ChapterSizes":
        """A copy with some sizes changed, e.g. ``preset.chapter.replace(sanity_images=4)``."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Preset:
    """Sizes of one kind of run: what shapes the models and their data, and the chapters' sizes.
    Used in chapters 1, 2, 3, 4, 5, 6, 7 and 8, and the appendix.

    Attributes:
        name: ``"ci"``, ``"cpu"`` or ``"gpu"``.
        image_size: side of the square input images, in pixels.
        width: first-stage width of ResNet18B (64 is ResNet-18's; the last stage has 8x).
        vgg_width: first-block width of the VGG16 models (64 is VGG16's).
        train_size: images in the training split of the lab dataset.
        val_size: images in the validation split.
        test_size: images in the test split.
        epochs: training epochs.
        batch_size: training batch size.
        lr: peak learning rate of the one-cycle schedule.
        objects: the lab's kind of object (:data:`cam_tutorial.lab.OBJECTS`): ``"creatures"``,
            whose objects have parts (the book's outputs and Colab), or ``"shapes"``, single-part
            shapes that a small network learns in a few epochs (``ci``).
        pretrain_epochs: under a creatures preset, the epochs of training on the shapes lab that
            every zoo model starts from (0: from random weights; see
            :attr:`cam_tutorial.zoo_recipes.ModelRecipe.start`).
        pretrain_image_size: the image side of the ResNets' shapes-lab training (0: ``image_size``).
            Smaller than ``image_size``, so that the shapes have about the size of a creature's
            parts: at 96 px the shapes span 43-86 px, a creature's head at 160 px 50-95 px.
        eval_batch_size: batch size for evaluation and CAM extraction.
        chapter: the chapters' own sizes (:class:`ChapterSizes`).

    Neither ``eval_batch_size`` nor ``chapter`` shapes a zoo model, so they are outside its
    recipe and cache key (:func:`cam_tutorial.zoo.recipe` reads only the others).
    """

    name: str
    image_size: int
    width: int
    vgg_width: int
    train_size: int
    val_size: int
    test_size: int
    epochs: int
    batch_size: int
    lr: float
    objects: str = "shapes"
    pretrain_epochs: int = 0
    pretrain_image_size: int = 0
    eval_batch_size: int = 128
    chapter: ChapterSizes = ChapterSizes()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _PRESET_NAME.fullmatch(self.name):
            raise ValueError(
                f"preset name {self.name!r} is not allowed: it becomes part of file names, so use "
                "1-64 letters, digits, '_' or '-' starting with a letter or digit (no '/', '.', spaces or "
                "line breaks), e.g. 'ci_small'"
            )
        _check_fields("preset", self, may_be_zero=("pretrain_epochs", "pretrain_image_size"))
        if self.objects not in _OBJECT_KINDS:
            raise ValueError(f"preset objects must be one of {', '.join(map(repr, _OBJECT_KINDS))}, "
                             f"got {self.objects!r}: e.g. objects='creatures'")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not (
                math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"preset lr must be a finite positive number, got {self.lr!r}: e.g. lr=4e-3")
        if not isinstance(self.chapter, ChapterSizes):
            raise ValueError(f"preset chapter must be a ChapterSizes, got {type(self.chapter).__name__}: e.g. "
                             "chapter=preset.chapter.replace(sanity_images=4)")

    def replace(self, **changes: object) -> "Preset":
        """A copy with some fields changed, e.g. ``preset.replace(epochs=1)``."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, Preset] = {
    "ci": Preset("ci", image_size=64, width=16, vgg_width=8, train_size=3000, val_size=500,
                 test_size=500, epochs=6, batch_size=64, lr=4e-3,
                 chapter=ChapterSizes(throughput_steps=2, sanity_images=8,
                                      curve_images=12, curve_steps=12, probe_image_size=160,
                                      probe_train_size=120, probe_test_size=80, download_weights=False,
                                      compare_images=100)),
    # The book's outputs: the lab with parts at 160 px (10x10 maps). Every model is trained on the
    # shapes lab first (pretrain_epochs), then fine-tuned on the creatures; see zoo_recipes.ModelRecipe.start.
    "cpu": Preset("cpu", image_size=160, width=16, vgg_width=8, train_size=6000, val_size=1000,
                  test_size=1000, epochs=8, batch_size=64, lr=4e-3, objects="creatures", pretrain_epochs=6,
                  pretrain_image_size=96, chapter=ChapterSizes()),
    # Sized for a free Colab T4 by benchmarks/estimate.py: 224 px and full width (14x14 maps),
    # fewer images and epochs (on the shapes, then on the creatures), so that chapter 1's two
    # VGG16s train within its 15 minutes at 15 effective TFLOP/s and the book runs in under an hour
    # on a fresh session.
    "gpu": Preset("gpu", image_size=224, width=64, vgg_width=64, train_size=6000, val_size=1000,
                  test_size=1000, epochs=5, batch_size=128, lr=4e-3, objects="creatures", pretrain_epochs=3,
                  pretrain_image_size=128, eval_batch_size=256,
                  chapter=ChapterSizes(throughput_steps=20, probe_train_size=2000, probe_test_size=1000,
                                       finetune_epochs=3)),
}


def get_preset(name: str | None = None) -> Preset:
    """Resolve a preset by name, from ``CAM_TUTORIAL_PRESET``, or by the hardware at hand.
    Used in chapters 1, 2, 3, 4, 5, 6, 7 and 8, and the appendix.

    Args:
        name: ``"ci"``, ``"cpu"`` or ``"gpu"``; ``None`` reads the environment variable and
            falls back to ``"gpu"`` when CUDA is available, else ``"cpu"``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    source = "the caller"
    if name is None:
        name = os.environ.get(ENV_VAR, "").strip().lower()
        source = f"${ENV_VAR}" if name else "the hardware"
        name = name or ("gpu" if torch.cuda.is_available() else "cpu")
    if name not in PRESETS:
        raise ValueError(
            f"unknown preset {name!r} (from {source}): use one of {', '.join(PRESETS)}, "
            f"e.g. {ENV_VAR}=ci"
        )
    logger.info("preset %r chosen by %s", name, source)
    return PRESETS[name]


def default_device() -> torch.device:
    """CUDA when available, then Apple's MPS, else the CPU.
    Used in chapters 1, 2, 3, 4, 5, 6, 7 and 8, and the appendix."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def map_size(image_size: int) -> int:
    """Side of ResNet18B's (and VGG16-GAP's) feature maps: the input side over the stride 16.
    Used in chapters 1, 2, 3, 4, 5, 6, 7 and 8, and the appendix."""
    # conv 7x7/2 (pad 3), max-pool 3x3/2 (pad 1), then two stride-2 3x3 convs (pad 1): each
    # halves the side, rounding up, and four halvings rounding up are one division by 16 rounding up.
    return -(-image_size // 16)
