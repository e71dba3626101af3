"""The lab as a dataset: :class:`SyntheticShapes`, its training views and its normalisation.

Item ``i`` of a split is drawn by :mod:`cam_tutorial.lab.render` from ``(seed, split, i)``, so it
is the same on every call, in every DataLoader worker and on every machine. This module checks
the lab's options where they enter, balances the labels, and serves the items: as normalised
float tensors with their box and mask (:class:`SyntheticShapes`), or as the uint8 images that
training reads (:class:`LabTrainingImages`, :class:`FreshEachEpoch`), normalised on the device by
:func:`normalize_uint8` to the same numbers.
"""

from __future__ import annotations

import functools
import operator

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from cam_tutorial.lab.geometry import CLASS_NAMES, CLASS_PARTS, PART_NAMES
from cam_tutorial.lab.render import render_creature, render_shape

#: The lab generator's version: any change to what an item renders bumps it, and it enters every
#: zoo cache key and resume fingerprint, so old models are never reused for new pixels.
LAB_VERSION = 1

#: ImageNet's channel means and standard deviations (what pretrained models expect).
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Split names and the ids mixed into each item's seed (so the splits are disjoint).
SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
#: Where the whole object may lie: the image's halves, as fractions ``(x0, y0, x1, y1)`` of it.
REGIONS: dict[str, tuple[float, float, float, float]] = {
    "left": (0.0, 0.0, 0.5, 1.0),
    "right": (0.5, 0.0, 1.0, 1.0),
    "top": (0.0, 0.0, 1.0, 0.5),
    "bottom": (0.0, 0.5, 1.0, 1.0),
}
#: The smallest image side the lab renders (ResNet18B needs 32 px).
MIN_IMAGE_SIZE = 32
#: The largest image side the lab renders: an item's memory grows with the side's square (one
#: item at 6000 px takes about 0.7 GB), and the largest preset renders 224 px.
MAX_IMAGE_SIZE = 1024

#: The two kinds of lab, with their default ``scale``: ``"shapes"`` (one polygon per image, the
#: book's lab) and ``"creatures"`` (a body with four class parts).
OBJECTS: dict[str, tuple[float, float]] = {"shapes": (0.45, 0.9), "creatures": (0.45, 0.85)}


@functools.lru_cache(maxsize=1)
def normalization_table() -> np.ndarray:
    """uint8 RGB value -> normalised float32, per channel, as a (1, 256, 3) OpenCV table."""
    values = np.arange(256, dtype=np.float64) / 255.0
    table = np.stack([(values - m) / s for m, s in zip(MEAN, STD)], axis=1)
    return table.astype(np.float32).reshape(1, 256, 3)


@functools.lru_cache(maxsize=4096)
def _block_labels(seed: int, split_id: int, block: int) -> tuple[int, ...]:
    """The labels of items ``10 * block ... 10 * block + 9``: each class once, in seeded order."""
    rng = np.random.default_rng([seed, split_id, block, 0x1ABE1])
    return tuple(int(c) for c in rng.permutation(len(CLASS_NAMES)))


def _check_options(split: str, length: int, image_size: int, seed: int, region: str | None,
                   scale: tuple[float, float], clutter: float) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(map(repr, SPLITS))}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length <= 0:
        raise ValueError(f"length must be a positive int, got {length!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise TypeError(f"image_size must be an int, got {type(image_size).__name__}")
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"image_size={image_size} is too small: the lab renders at least "
            f"{MIN_IMAGE_SIZE} px (the models need 32 px); use image_size >= {MIN_IMAGE_SIZE}"
        )
    if image_size > MAX_IMAGE_SIZE:
        raise ValueError(
            f"image_size={image_size} is too large: the lab renders at most {MAX_IMAGE_SIZE} px a side "
            f"(an item's memory grows with the side's square); use image_size <= {MAX_IMAGE_SIZE} "
            "(the gpu preset's is 224)"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not (region is None or isinstance(region, str) and region in REGIONS):
        raise ValueError(f"unknown region {region!r}: use None (anywhere) or one of {', '.join(map(repr, REGIONS))}")
    lo, hi = (float(s) for s in scale)
    if not 0.05 <= lo <= hi <= 1.0:
        raise ValueError(f"scale must satisfy 0.05 <= min <= max <= 1, got {scale!r}")
    if not 0.0 <= float(clutter) <= 1.0:
        raise ValueError(f"clutter must be in [0, 1], got {clutter!r}")


class SyntheticShapes(Dataset):
    """The lab: ten classes of shapes (or creatures) on cluttered backgrounds, with a mask, a box
    and a part map per image.

    Each item is ``(image, label, box, mask)``:

    * ``image``: float32 tensor ``(3, H, W)``, normalised with :data:`MEAN` and :data:`STD`
      (``(x / 255 - mean) / std`` per channel);
    * ``label``: int in ``[0, 10)``, an index into :data:`CLASS_NAMES`;
    * ``box``: float32 tensor ``(4,)`` = ``(x0, y0, x1, y1)`` in pixels, tight around the mask,
      ``x1``/``y1`` exclusive (``x1 = last column with mask + 1``);
    * ``mask``: bool tensor ``(H, W)``, the object's pixels (for creatures: body and parts).

    :meth:`part_map` gives which part each pixel belongs to (:attr:`part_names`); :attr:`class_parts`
    says which of them carry the class (their indices in :attr:`part_names`).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``; the splits are disjoint.
        length: number of items (item ``i`` does not depend on ``length``).
        image_size: side of the square images in pixels, from 32 to 1024 (:data:`MIN_IMAGE_SIZE`,
            :data:`MAX_IMAGE_SIZE`); rendered at that size directly.
        seed: the dataset's seed (a non-negative int).
        region: where the whole object lies: ``None`` (anywhere), or one of :data:`REGIONS`:
            ``"left"``, ``"right"``, ``"top"``, ``"bottom"`` (the image's halves).
        objects: ``"shapes"`` (one polygon, the default) or ``"creatures"`` (a body and four class
            parts); see :mod:`cam_tutorial.lab`.
        scale: range of the object's size as fractions of the image side: a shape's
            circumscribed diameter, a creature's length (head to tail); default per kind
            (:data:`OBJECTS`). In a region, the range shrinks to fit: at most the region's short
            side, from at most 60% of that.
        clutter: from 0 (smooth background, no texture, no distractors) to 1 (the default).

    The object is rotated by up to :data:`~cam_tutorial.lab.geometry.MAX_ROTATION` degrees either
    way; a shape is also stretched (:data:`~cam_tutorial.lab.geometry.MAX_STRETCH`).

    Example:
        >>> ds = SyntheticShapes("val", length=10, image_size=64, region="left")
        >>> all(float(ds[i][2][2]) <= 32 for i in range(len(ds)))
        True
    """

    def __init__(self, split: str = "train", length: int = 10_000, image_size: int = 64, seed: int = 0,
                 region: str | None = None, *, objects: str = "shapes", scale: tuple[float, float] | None = None,
                 clutter: float = 1.0) -> None:
        if objects not in OBJECTS:
            raise ValueError(f"unknown objects {objects!r}: use one of {', '.join(map(repr, OBJECTS))}")
        scale = OBJECTS[objects] if scale is None else scale
        _check_options(split, length, image_size, seed, region, scale, clutter)
        fractions = (0.0, 0.0, 1.0, 1.0) if region is None else REGIONS[region]
        self.split, self.length, self.image_size, self.seed = split, int(length), int(image_size), int(seed)
        self.region, self.objects = region, objects
        # Pixel bounds of the region: the object's mask stays inside [x0, x1) x [y0, y1).
        self.region_pixels = tuple(round(f * self.image_size) for f in fractions)
        self.scale = (float(scale[0]), float(scale[1]))
        # In a region, sizes are drawn from a range that fits it, so objects still move around:
        # the largest is the region's short side, the smallest at most 60% of that.
        short = min(fractions[2] - fractions[0], fractions[3] - fractions[1])
        hi_eff = min(self.scale[1], short)
        self.size_range = (min(self.scale[0], 0.6 * hi_eff), hi_eff)  # what the sizes are drawn from
        self.clutter = float(clutter)
        self.version = LAB_VERSION
        self.part_names: tuple[str, ...] = PART_NAMES if objects == "creatures" else ("object",)
        # The parts that tell the class, as indices into part_names: the creatures' four (not the
        # shared body); a shape's one part, the whole object.
        self.class_parts: tuple[int, ...] = (tuple(PART_NAMES.index(name) for name in CLASS_PARTS)
                                             if objects == "creatures" else (0,))
        self.class_names: tuple[str, ...] = CLASS_NAMES
        self.num_classes = len(CLASS_NAMES)

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        kind = "" if self.objects == "shapes" else f", objects={self.objects!r}"
        return (f"SyntheticShapes(split={self.split!r}, length={self.length}, image_size={self.image_size}, "
                f"seed={self.seed}, region={self.region!r}{kind})")

    def label(self, index: int) -> int:
        """The label of item ``index``, without rendering it."""
        index = self._check_index(index)
        return _block_labels(self.seed, SPLITS[self.split], index // 10)[index % 10]

    def labels(self) -> np.ndarray:
        """All labels, in item order (cheap: no rendering)."""
        return np.array([self.label(i) for i in range(self.length)], dtype=np.int64)

    def _check_index(self, index: int) -> int:
        index = integral_index(index)
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} items")
        return index

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]:
        rgb, label, box, mask = self.render(index)
        # Normalise through a lookup table per channel, straight into planar (3, H, W) memory:
        # exact for every uint8 value and faster than float arithmetic plus a transpose.
        image = np.empty((3, self.image_size, self.image_size), dtype=np.float32)
        tables = np.ascontiguousarray(normalization_table()[0].T)  # (3, 256): one row a channel
        for plane, table, out in zip(cv2.split(rgb), tables, image):
            cv2.LUT(plane, table, dst=out)
        return torch.from_numpy(image), label, torch.tensor(box, dtype=torch.float32), torch.from_numpy(mask)

    def render(self, index: int) -> tuple[np.ndarray, int, tuple[int, int, int, int], np.ndarray]:
        """Item ``index`` before normalisation: ``(rgb uint8 (H, W, 3), label, box, mask)``."""
        canvas, label, parts = self._render(index, with_parts=True)
        mask = parts > 0
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
        return canvas, label, (x, y, x + w, y + h), mask

    def part_map(self, index: int) -> np.ndarray:
        """Which part each pixel of item ``index`` shows: uint8 ``(H, W)``, 0 for the background
        and ``k + 1`` for part ``part_names[k]`` (the creatures' :data:`PART_NAMES`; the
        shapes lab has one part, the object); ``part_map(i) > 0`` is the mask.

        Example:
            >>> ds = SyntheticShapes("test", length=4, image_size=96, objects="creatures")
            >>> sorted(set(ds.part_map(0).ravel().tolist())) == list(range(len(PART_NAMES) + 1))
            True
        """
        return self._render(index, with_parts=True)[2]

    def part_maps(self) -> np.ndarray:
        """The part maps of every item, in order, ``(N, H, W)`` uint8."""
        return np.stack([self.part_map(i) for i in range(self.length)])

    def training_view(self) -> LabTrainingImages:
        """This dataset as training reads it: uint8 ``(H, W, 3)`` images and labels, normalised on
        the device by :func:`normalize_uint8` (see :class:`LabTrainingImages`)."""
        return LabTrainingImages(self)

    def item_rng(self, index: int) -> np.random.Generator:
        """A fresh copy of the random stream item ``index`` is drawn from: whoever replays the
        lab's draws (the decoys of :mod:`cam_tutorial.real.concepts`) starts from the same one."""
        return np.random.default_rng([self.seed, SPLITS[self.split], index])

    def _render(self, index: int, with_parts: bool) -> tuple[np.ndarray, int, np.ndarray | None]:
        """Item ``index``'s pixels, label and (with ``with_parts``) part map, drawn from its seed."""
        index = self._check_index(index)
        label = self.label(index)
        draw = render_shape if self.objects == "shapes" else render_creature
        canvas, parts = draw(self, label, self.item_rng(index), with_parts)
        return canvas, label, parts


def integral_index(index: object) -> int:
    """``index`` as an int: Python and numpy integers pass, ``1.7`` or ``"3"`` is a ``TypeError``.

    ``int(1.7)`` would quietly give item 1, so non-integral indices are refused, not truncated.
    """
    if isinstance(index, bool):
        raise TypeError(f"dataset indices must be integers, got the bool {index!r}; use int(index)")
    try:
        return operator.index(index)
    except TypeError:
        raise TypeError(
            f"dataset indices must be integers, got {type(index).__name__} {index!r}; use an int "
            "(int(i) once you know i is whole; numpy integers work too)"
        ) from None


@functools.lru_cache(maxsize=8)
def _device_table(device: str) -> torch.Tensor:
    """The normalisation table as a (256, 3) tensor on ``device``."""
    return torch.from_numpy(normalization_table()[0].copy()).to(device)


def normalize_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 images ``(B, H, W, 3)`` -> float32 ``(B, 3, H, W)`` normalised with :data:`MEAN` and
    :data:`STD`, on the images' device, through the same per-channel table as the lab's
    ``__getitem__`` (so the values are identical, bit for bit, not merely close). The result is
    a channels-last view (what a GPU convolution wants); ``.contiguous()`` makes it planar.

    Example:
        >>> x = torch.tensor([[[[0, 255, 128]]]], dtype=torch.uint8)
        >>> y = normalize_uint8(x)
        >>> tuple(y.shape), [round(v, 3) for v in y.flatten().tolist()]
        ((1, 3, 1, 1), [-2.118, 2.429, 0.426])
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"normalize_uint8 takes uint8 images (B, H, W, 3), got {images.dtype} "
                         f"{tuple(images.shape)}: pass a batch of LabTrainingImages items")
    channels = torch.arange(3, device=images.device)
    return _device_table(str(images.device))[images.long(), channels].permute(0, 3, 1, 2)


class LabTrainingImages(Dataset):
    """A lab dataset as training reads it: ``(image uint8 (H, W, 3), label)`` items.

    The pixels are :meth:`SyntheticShapes.render`'s, as rendered (channels last), without the
    mask, box and float conversion that training never reads: a batch is a quarter of the float
    batch's bytes to collate and copy. :func:`~cam_tutorial.train.train` (and ``evaluate``)
    normalise uint8 batches on the device with the dataset's :func:`normalize_uint8`, exactly the
    float32 values of the lab's ``__getitem__`` (in channels-last memory), so a model trains on
    the same numbers either way.

    Example:
        >>> lab = SyntheticShapes("val", length=4, image_size=32)
        >>> image, label = lab.training_view()[1]
        >>> image.dtype, tuple(image.shape), bool((normalize_uint8(image[None])[0] == lab[1][0]).all())
        (torch.uint8, (32, 32, 3), True)
    """

    #: A batch of these images as the model's input (training asks the dataset).
    normalize_uint8 = staticmethod(normalize_uint8)

    def __init__(self, lab: SyntheticShapes) -> None:
        if not isinstance(lab, SyntheticShapes):
            raise TypeError(f"{type(self).__name__} draws from a SyntheticShapes, got {type(lab).__name__}: use "
                            "SyntheticShapes(...).training_view() or FreshEachEpoch(SyntheticShapes(...), epoch_size)")
        self.lab = lab

    def __len__(self) -> int:
        return len(self.lab)

    def __repr__(self) -> str:
        return f"LabTrainingImages({self.lab!r})"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        rgb, label, _ = self.lab._render(index, with_parts=False)  # the masks and box, never read, undrawn
        return torch.from_numpy(rgb), label


class FreshEachEpoch(LabTrainingImages):
    """A lab split read ``epoch_size`` new images at a time: epoch ``e`` serves items
    ``e * epoch_size ... (e + 1) * epoch_size - 1`` of ``lab`` (as :class:`LabTrainingImages`
    does, uint8 ``(H, W, 3)`` images and labels), so no image is seen twice in a run.

    The lab can draw as many images as we like, and a network that sees each one once cannot
    memorise them. :func:`~cam_tutorial.train.train` calls :meth:`set_epoch` before each epoch,
    the convention of :class:`torch.utils.data.distributed.DistributedSampler`; the loader is
    built anew for every epoch, so its worker processes see the epoch too. Every block of ten
    items holds each class once, so an ``epoch_size`` that is a multiple of ten keeps every
    epoch's labels balanced.

    Args:
        lab: the split to draw from; it needs ``epochs * epoch_size`` items for ``epochs`` epochs.
        epoch_size: images per epoch.

    Example:
        >>> lab = SyntheticShapes("train", length=30, image_size=32)
        >>> fresh = FreshEachEpoch(lab, 10)
        >>> fresh.set_epoch(2)
        >>> len(fresh), bool((fresh[0][0] == lab.training_view()[20][0]).all()), fresh.epochs
        (10, True, 3)
    """

    def __init__(self, lab: SyntheticShapes, epoch_size: int) -> None:
        super().__init__(lab)
        epoch_size = integral_index(epoch_size)
        if not 1 <= epoch_size <= len(lab):
            raise ValueError(f"epoch_size must lie in [1, {len(lab)}] (the lab's length), got {epoch_size}: "
                             "make the lab epochs * epoch_size items long")
        self.epoch_size, self.epoch = epoch_size, 0

    @property
    def epochs(self) -> int:
        """How many epochs of fresh images the lab holds."""
        return len(self.lab) // self.epoch_size

    def set_epoch(self, epoch: int) -> None:
        """Serve epoch ``epoch``'s images (counted from 0).

        Raises:
            ValueError: when the lab holds fewer than ``epoch + 1`` epochs of images.
        """
        epoch = integral_index(epoch)
        if not 0 <= epoch < self.epochs:
            raise ValueError(f"epoch {epoch} is out of range: {self.lab!r} holds {self.epochs} epochs of "
                             f"{self.epoch_size} images; make it longer (epochs * epoch_size items)")
        self.epoch = epoch

    def __len__(self) -> int:
        return self.epoch_size

    def __repr__(self) -> str:
        return f"FreshEachEpoch({self.lab!r}, epoch_size={self.epoch_size})"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = integral_index(index)
        if not 0 <= index < self.epoch_size:
            raise IndexError(f"index {index} out of range for an epoch of {self.epoch_size} items")
        return super().__getitem__(self.epoch * self.epoch_size + index)


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation for display: ``x * std + mean``, clamped to ``[0, 1]``.

    Args:
        images: a normalised image ``(3, H, W)`` or batch ``(B, 3, H, W)``, floating point.

    Returns:
        A float tensor of the same shape with values in ``[0, 1]``.

    Raises:
        TypeError: not a tensor, or an integer (hence not normalised) image.
        ValueError: not ``(3, H, W)`` or ``(B, 3, H, W)``.

    Example:
        >>> ds = SyntheticShapes("val", length=2, image_size=32)
        >>> x = denormalize(ds[0][0])
        >>> float(x.min()) >= 0 and float(x.max()) <= 1
        True
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"denormalize expects a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(
            f"denormalize expects normalised float images, got dtype {images.dtype}: integer images are "
            "not normalised, so there is nothing to undo; show them as they are, or use images.float() / 255 "
            "for values in [0, 1]"
        )
    if images.ndim not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(
            f"denormalize expects (3, H, W) or (B, 3, H, W), got shape {tuple(images.shape)}"
        )
    images = images.detach().float()
    mean = torch.tensor(MEAN, dtype=images.dtype, device=images.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=images.dtype, device=images.device).view(3, 1, 1)
    return (images * std + mean).clamp(0.0, 1.0)
