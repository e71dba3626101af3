"""The package's data module of release 0.1, kept so that its imports keep working.

The lab now lives in :mod:`cam_tutorial.lab` and the real datasets in
:mod:`cam_tutorial.datasets`; ``from cam_tutorial.data import SyntheticShapes`` gives the same
objects as ``from cam_tutorial.lab import SyntheticShapes``. New code imports from those two.

Example:
    >>> from cam_tutorial import data, lab
    >>> data.SyntheticShapes is lab.SyntheticShapes
    True
"""

from __future__ import annotations

from .datasets import RealDataset, default_data_root, load_dataset, photo_to_tensor
from .lab import (CLASS_NAMES, MEAN, MIN_IMAGE_SIZE, REGIONS, SPLITS, STD, LabTrainingImages,
                  SyntheticShapes, denormalize, normalise_uint8)

__all__ = [
    "photo_to_tensor", "CLASS_NAMES", "MEAN", "STD", "SPLITS", "REGIONS", "MIN_IMAGE_SIZE",
    "SyntheticShapes", "LabTrainingImages", "normalise_uint8", "RealDataset", "denormalize",
    "load_dataset", "default_data_root",
]
