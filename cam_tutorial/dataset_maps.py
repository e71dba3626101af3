"""Maps for a whole dataset, in batches: scores, maps and ground truth collected on the CPU.

:func:`cams_for_dataset` gives the class activation maps of every item; :func:`maps_for_dataset`
runs any map method the same way (Grad-CAM, saliency: :mod:`cam_tutorial.methods.compare`). The
result, a :class:`DatasetMaps`, is what the box metrics (:mod:`cam_tutorial.localize`) score.

Example:
    >>> import torch
    >>> found = DatasetMaps(logits=torch.eye(3), maps=torch.zeros(3, 4, 4),
    ...                     classes=torch.arange(3), labels=torch.tensor([0, 1, 1]))
    >>> len(found), found.predictions.tolist()
    (3, [0, 1, 2])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch
from torch import nn
from torch.utils.data import DataLoader

from cam_tutorial.cam import compute_cams
from cam_tutorial.evaluation import model_device

__all__ = ["DatasetMaps", "cams_for_dataset", "maps_for_dataset"]


@dataclass
class DatasetMaps:
    """One map per item of a dataset, with the scores and the ground truth, in order, on the CPU
    (chapters 5 to 8).
    Used in no chapter directly.

    Attributes:
        logits: ``(N, C)`` float32, the model's scores.
        maps: ``(N, H, W)`` float32, one map per image, of the class in ``classes``.
        classes: ``(N,)`` int64, the class each map is of.
        labels: ``(N,)`` int64, the true classes.
        boxes: ``(N, 4)`` float32 ground-truth boxes ``(x0, y0, x1, y1)``, or ``None`` when the
            dataset's items carry no box (items ``(image, label)``).
        masks: ``(N, H, W)`` bool object masks, or ``None`` when the items carry none.
    """

    logits: torch.Tensor
    maps: torch.Tensor
    classes: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor | None = None
    masks: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def predictions(self) -> torch.Tensor:
        """``(N,)`` predicted classes, ``logits.argmax(1)``."""
        return self.logits.argmax(dim=1)

    def subset(self, keep: torch.Tensor | Sequence[int]) -> "DatasetMaps":
        """The items selected by ``keep``: a boolean mask ``(N,)`` or a sequence of indices.

        Example:
            >>> found = DatasetMaps(logits=torch.eye(3), maps=torch.zeros(3, 4, 4),
            ...                     classes=torch.arange(3), labels=torch.tensor([0, 1, 1]))
            >>> found.subset(found.labels == 1).classes.tolist()
            [1, 2]
        """
        index = torch.as_tensor(keep)
        if index.dtype == torch.bool and index.shape != (len(self),):
            raise ValueError(f"a boolean keep must have shape ({len(self)},), got {tuple(index.shape)}")
        pick = (lambda t: None if t is None else t[index])
        return DatasetMaps(logits=self.logits[index], maps=self.maps[index], classes=self.classes[index],
                           labels=self.labels[index], boxes=pick(self.boxes), masks=pick(self.masks))


#: ``compute(images, classes)`` -> ``(logits (B, C), maps (B, H, W))``; ``classes`` is ``None``
#: for "each image's predicted class".
MapFunction = Callable[[torch.Tensor, Union[torch.Tensor, None]], "tuple[torch.Tensor, torch.Tensor]"]


def maps_for_dataset(
    compute: MapFunction,
    dataset: torch.utils.data.Dataset,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    *,
    classes: str = "label",
    progress: bool = True,
    desc: str = "maps",
) -> DatasetMaps:
    """Run any map method over a whole dataset in batches (with a progress bar); collect on the CPU
    (chapters 7 and 8, through :mod:`cam_tutorial.methods.compare`).
    Used in no chapter directly.

    The dataset's items are ``(image, label)``, ``(image, label, box)`` or
    ``(image, label, box, mask)`` (the book's lab and real-data loaders give all four); boxes
    and masks are collected when present. Items are read in order, never shuffled.

    Args:
        compute: ``compute(images, classes) -> (logits, maps)`` for one batch on ``device``;
            ``classes`` is a ``(B,)`` tensor of the classes to map, or ``None`` for the
            predicted ones (:func:`cams_for_dataset` passes :func:`~cam_tutorial.cam.compute_cams`).
        dataset: a map-style dataset of such items.
        batch_size: images per batch.
        device: where the batches go.
        classes: ``"label"`` (maps of the true class, what ground-truth-known localisation
            needs; where the prediction is right it is also the predicted class's map) or
            ``"predicted"``.
        progress: show a ``tqdm`` bar.
        desc: the bar's label.

    Returns:
        A :class:`DatasetMaps`.

    Raises:
        ValueError: an unknown ``classes``, an empty dataset, a bad ``batch_size``, or a
            ``compute`` that returns the wrong shapes.
    """
    from tqdm.auto import tqdm

    if classes not in ("label", "predicted"):
        raise ValueError(f"classes must be 'label' (the true class) or 'predicted', got {classes!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("the dataset is empty: nothing to map")
    device = torch.device(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, pin_memory=device.type == "cuda")
    # iter(loader): tqdm.auto's asyncio class calls iter() on what it wraps, once more than needed.
    batches = [_batch_maps(batch, compute, device, classes)
               for batch in tqdm(iter(loader), total=len(loader), desc=desc, leave=False, disable=not progress)]
    # zip(*batches): one column per field of DatasetMaps, in its order; a field no item has is None.
    return DatasetMaps(*(None if column[0] is None else torch.cat(column) for column in zip(*batches)))


def _batch_maps(batch: object, compute: MapFunction, device: torch.device,
                classes: str) -> tuple[torch.Tensor | None, ...]:
    """One batch of :func:`maps_for_dataset`, on the CPU: the fields of a :class:`DatasetMaps`, in order."""
    if not isinstance(batch, (list, tuple)) or len(batch) < 2:
        raise ValueError("dataset items must be (image, label[, box[, mask]]) tuples")
    images = batch[0].to(device, non_blocking=True)
    labels = torch.as_tensor(batch[1]).long()
    logits, maps = compute(images, labels.to(device) if classes == "label" else None)
    if logits.ndim != 2 or logits.shape[0] != len(images) or maps.ndim != 3 or maps.shape[0] != len(images):
        raise ValueError(f"compute must return logits (B, C) and maps (B, H, W) for a batch of {len(images)}, "
                         f"got {tuple(logits.shape)} and {tuple(maps.shape)}")
    logits = logits.detach().float().cpu()
    boxes = torch.as_tensor(batch[2]).float() if len(batch) > 2 else None
    masks = torch.as_tensor(batch[3]).bool() if len(batch) > 3 else None
    return (logits, maps.detach().float().cpu(), labels if classes == "label" else logits.argmax(dim=1), labels,
            boxes, masks)


def cams_for_dataset(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    batch_size: int = 128,
    device: str | torch.device | None = None,
    *,
    classes: str = "label",
    progress: bool = True,
    upsample: bool = True,
) -> DatasetMaps:
    """Class activation maps (upsampled, normalised) and logits for every item of a dataset.
    Used in chapters 6, 7 and 8, and the appendix.

    One :func:`~cam_tutorial.cam.compute_cams` per batch, for a ``features -> pool -> classifier``
    network (every model the book builds). See :func:`maps_for_dataset` for the items, ``classes``
    and what is returned. For another network, give :func:`maps_for_dataset` a
    :class:`~cam_tutorial.anymodel.extractor.CAMExtractor`::

        def compute(images, classes):
            result = extract(images, classes=classes)
            return result.logits, result.maps

        with CAMExtractor(net) as extract:
            found = maps_for_dataset(compute, data)

    Args:
        model: a CAM classifier in eval mode.
        dataset: items ``(image, label[, box[, mask]])``.
        batch_size: images per batch.
        device: where the batches go; default: the model's parameters' device.
        classes: ``"label"`` (true class) or ``"predicted"``.
        progress: show a ``tqdm`` bar.
        upsample: resize the maps to the images' size (bilinear); ``False`` keeps them at the
            feature maps' resolution (normalised), e.g. for a protocol that upsamples its own way
            (:func:`~cam_tutorial.metrics.max_box_acc` with ``size=``).

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> from cam_tutorial.models import ResNet18B
        >>> model = ResNet18B(num_classes=3, width=4).eval()
        >>> data = TensorDataset(torch.rand(5, 3, 64, 64), torch.tensor([0, 1, 2, 0, 1]))
        >>> out = cams_for_dataset(model, data, batch_size=2, progress=False)
        >>> out.maps.shape, out.logits.shape, out.classes.tolist(), out.boxes
        (torch.Size([5, 64, 64]), torch.Size([5, 3]), [0, 1, 2, 0, 1], None)
    """
    device = model_device(model) if device is None else device

    def compute(images: torch.Tensor, wanted: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        result = compute_cams(model, images, wanted, upsample=upsample)
        return result.logits, result.maps

    return maps_for_dataset(compute, dataset, batch_size, device, classes=classes, progress=progress,
                            desc="class activation maps")
