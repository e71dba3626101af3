"""Presets: how big a run is, chosen in one place.

A preset is a plain dataclass of sizes. Notebooks and benchmarks read every size from it, so the
same code runs small in CI and full size on a GPU. The preset comes from the environment variable
``CAM_TUTORIAL_PRESET`` (``ci``, ``cpu`` or ``gpu``); without it, ``gpu`` when CUDA is available,
else ``cpu``.

* ``ci``: the smallest run that still shows every effect the book claims (CI sets it).
* ``cpu``: what the committed notebook outputs are produced with (minutes per notebook, 2 cores).
* ``gpu``: full size, 224 px and full width, for Colab and GPU machines.

Example:
    >>> from cam_tutorial.config import get_preset
    >>> get_preset("gpu").image_size
    224
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass

import torch

__all__ = ["Preset", "PRESETS", "ENV_VAR", "get_preset", "default_device", "map_size"]

logger = logging.getLogger(__name__)

ENV_VAR = "CAM_TUTORIAL_PRESET"


@dataclass(frozen=True)
class Preset:
    """Sizes of one kind of run.

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
        eval_batch_size: batch size for evaluation and CAM extraction.
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
    eval_batch_size: int = 128

    def replace(self, **changes: object) -> "Preset":
        """A copy with some fields changed, e.g. ``preset.replace(epochs=1)``."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, Preset] = {
    "ci": Preset("ci", image_size=64, width=16, vgg_width=8, train_size=3000, val_size=500,
                 test_size=500, epochs=6, batch_size=64, lr=4e-3),
    "cpu": Preset("cpu", image_size=96, width=16, vgg_width=8, train_size=4000, val_size=1000,
                  test_size=1000, epochs=6, batch_size=64, lr=4e-3),
    "gpu": Preset("gpu", image_size=224, width=64, vgg_width=64, train_size=20000, val_size=2000,
                  test_size=2000, epochs=12, batch_size=128, lr=4e-3, eval_batch_size=256),
}


def get_preset(name: str | None = None) -> Preset:
    """Resolve a preset by name, from ``CAM_TUTORIAL_PRESET``, or by the hardware at hand.

    Args:
        name: ``"ci"``, ``"cpu"`` or ``"gpu"``; ``None`` reads the environment variable and
            falls back to ``"gpu"`` when CUDA is available, else ``"cpu"``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name is None:
        name = os.environ.get(ENV_VAR, "").strip().lower() or None
        source = f"${ENV_VAR}" if name else "the hardware"
    else:
        source = "the caller"
    if name is None:
        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PRESETS:
        raise ValueError(
            f"unknown preset {name!r} (from {source}): use one of {', '.join(PRESETS)}, "
            f"e.g. {ENV_VAR}=ci"
        )
    logger.info("preset %r chosen by %s", name, source)
    return PRESETS[name]


def default_device() -> torch.device:
    """CUDA when available, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def map_size(image_size: int) -> int:
    """Side of ResNet18B's (and VGG16-GAP's) feature maps: the input side over the stride 16."""
    # conv 7x7/2 (pad 3), max-pool 3x3/2 (pad 1), then two stride-2 3x3 convs (pad 1).
    side = image_size
    for _ in range(4):
        side = (side + 1) // 2
    return side
