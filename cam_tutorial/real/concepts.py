"""Concepts that span the lab's classes: where a shape appears, as a creature's part or a decoy.

The paper localizes concepts ("mirror in lake") that are not classes, from image-level labels
alone: a linear head on frozen GAP features, trained to say whether an image shows the concept,
and the CAM of that head. The creatures lab (:mod:`cam_tutorial.lab`) holds such a concept with
an exact answer: each class's shape appears as the four parts of that class's creatures *and*
as the *decoys*, lone parts drawn in the clutter of images of every other class. "Shows a star"
is then a concept that spans all ten classes, and :class:`ShapeConcept` gives, for every lab
image, whether the shape is in it and the exact mask of where.

Example:
    >>> from cam_tutorial.lab import SyntheticShapes
    >>> lab = SyntheticShapes("test", length=40, image_size=64, objects="creatures")
    >>> stars = ShapeConcept(lab, "star")
    >>> image, label, box, mask = stars[3]  # the lab's item 3, labelled by the concept
    >>> label == int(mask.any()), tuple(image.shape) == (3, 64, 64)
    (True, True)
    >>> on_creature = [i for i in range(40) if lab.label(i) == 3]  # class 3 is the star
    >>> all(stars.label(i) == 1 for i in on_creature), 0 < int(stars.labels().sum()) < 40
    (True, True)
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from cam_tutorial.lab import CLASS_NAMES, CLASS_PARTS, PART_NAMES, SyntheticShapes
from cam_tutorial.lab.pixels import Polygon, fill_polygon
from cam_tutorial.lab.render import decoy_polygons, draw_scene, place

__all__ = ["shape_map", "ShapeConcept"]


def _decoys(lab: SyntheticShapes, index: int) -> list[tuple[int, Polygon]]:
    """Item ``index``'s decoys as ``(class, polygon)``, where the lab's renderer places them."""
    scene = draw_scene(lab, lab.label(index), lab.item_rng(index))
    return decoy_polygons(scene, place(lab, scene), lab.image_size)


def shape_map(lab: SyntheticShapes, index: int) -> np.ndarray:
    """Which class's shape each visible pixel of item ``index`` shows: uint8 ``(H, W)``, 0 where
    none (background, clutter, the creature's body) and ``c + 1`` where class ``c``'s shape is:
    the creature's four class parts (its own class) and the decoys (other classes), minus what
    the creature covers, since the decoys are drawn under it. Needs the creatures lab.
    Used in no chapter directly.

    Example:
        >>> lab = SyntheticShapes("val", length=3, image_size=64, objects="creatures")
        >>> shapes = shape_map(lab, 0)
        >>> bool((shapes == lab.label(0) + 1).any()), shapes.shape
        (True, (64, 64))
    """
    if lab.objects != "creatures":
        raise ValueError(f"shape_map needs the creatures lab (objects='creatures'), got {lab!r}: the shapes "
                         "lab has one object and no decoys")
    parts = lab.part_map(index)
    out = np.zeros(parts.shape, np.uint8)
    for other, (outline, hole) in _decoys(lab, index):
        fill_polygon(out, outline, hole, other + 1, cv2.LINE_8)
    out[parts > 0] = 0  # the creature is drawn over the decoys
    class_part = np.isin(parts, [PART_NAMES.index(name) + 1 for name in CLASS_PARTS])
    out[class_part] = lab.label(index) + 1
    return out


class ShapeConcept(Dataset):
    """A creatures lab labelled by a concept instead of its classes: "the image shows ``shape``".

    Item ``i`` is the lab's item ``i`` as ``(image, label, box, mask)``: the lab's normalised
    image; ``label`` 1 where the shape is visible anywhere (the four parts of a creature of that
    class, or a decoy in an image of any other class), else 0; ``mask`` the shape's visible
    pixels (:func:`shape_map`); ``box`` tight around them (all zeros for label 0).
    Used in chapter 8.

    Args:
        lab: a :class:`~cam_tutorial.lab.SyntheticShapes` with ``objects="creatures"``.
        shape: one of :data:`~cam_tutorial.lab.CLASS_NAMES`.
    """

    class_names: tuple[str, ...]
    num_classes = 2

    def __init__(self, lab: SyntheticShapes, shape: str) -> None:
        if not isinstance(lab, SyntheticShapes) or lab.objects != "creatures":
            raise ValueError(f"ShapeConcept needs a creatures lab (SyntheticShapes(..., objects='creatures')), "
                             f"got {lab!r}")
        if shape not in CLASS_NAMES:
            raise ValueError(f"unknown shape {shape!r}: use one of {', '.join(CLASS_NAMES)}")
        self.lab, self.shape, self.value = lab, shape, CLASS_NAMES.index(shape) + 1
        self.class_names = (f"no {shape}", shape)

    def __len__(self) -> int:
        return len(self.lab)

    def __repr__(self) -> str:
        return f"ShapeConcept({self.lab!r}, {self.shape!r})"

    def label(self, index: int) -> int:
        """1 where item ``index`` shows the shape as the creature's class or as a decoy, without
        rendering its pixels (a decoy wholly hidden by the creature still counts)."""
        return int(self.lab.label(index) + 1 == self.value
                   or any(other + 1 == self.value for other, _ in _decoys(self.lab, index)))

    def labels(self) -> np.ndarray:
        """Every item's concept label, in order (no rendering)."""
        return np.array([self.label(i) for i in range(len(self))], dtype=np.int64)

    def mask(self, index: int) -> np.ndarray:
        """The shape's visible pixels in item ``index``, bool ``(H, W)``."""
        return shape_map(self.lab, index) == self.value

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]:
        image = self.lab[index][0]
        mask = self.mask(index)
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
        return (image, int(mask.any()), torch.tensor((x, y, x + w, y + h), dtype=torch.float32),
                torch.from_numpy(mask))
