"""Evaluation, and the device, precision and batch handling that training shares with it.

:func:`evaluate` (loss and accuracy), :func:`predict` (labels) and :func:`confusion_matrix` score
a model on a dataset; :func:`resolve_precision` and :func:`inference_channels_last` say how a
device computes. Batches of uint8 images ``(B, H, W, 3)`` are a quarter of float32's bytes to
load; the dataset that yields them says how to normalise them, with a ``normalize_uint8(batch)``
method (the lab's :meth:`~cam_tutorial.lab.SyntheticShapes.training_view` has one, giving exactly
the lab's float values): a dataset of another normalisation brings its own.

Example:
    >>> from torch.utils.data import TensorDataset
    >>> data = TensorDataset(torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 0, 1]))
    >>> predicted, targets = predict(nn.Linear(4, 2), data)
    >>> int(confusion_matrix(targets, predicted, 2).sum())
    6
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler
from tqdm.auto import tqdm

from cam_tutorial.checks import broken_weights


__all__ = ["evaluate", "predict", "confusion_matrix", "resolve_precision", "inference_channels_last", "model_device"]

#: The values of ``amp`` (:class:`~cam_tutorial.train.TrainConfig`, :func:`evaluate`).
AMP_CHOICES = ("auto", "off", "bf16", "fp16")


def resolve_precision(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for an ``amp`` setting on ``device``; ``None`` means float32.
    Used in the appendix.

    ``"auto"`` is bfloat16 on GPUs with bfloat16 tensor cores (compute capability 8.0 and up:
    Ampere and newer), float16 on older GPUs such as the T4 (7.5; float16 then needs a gradient
    scaler), and off elsewhere: on the CPU autocast rarely speeds training up (see
    ``benchmarks/train_throughput.py``). The capability decides, not
    :func:`torch.cuda.is_bf16_supported`, which also counts (slow) emulated bfloat16.

    Example:
        >>> resolve_precision("auto", torch.device("cpu")) is None
        True
    """
    if amp not in AMP_CHOICES:
        raise ValueError(f"unknown amp {amp!r}: use one of {', '.join(map(repr, AMP_CHOICES))}")
    if amp == "auto" and device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16
    return {"auto": None, "off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def inference_channels_last(channels_last: bool | str, device: torch.device) -> bool:
    """Whether :func:`evaluate` and :func:`predict` feed ``device`` NHWC (channels-last) batches.
    Used in no chapter directly.

    ``"auto"`` is on for CUDA and for the CPU. On the CPU a forward pass in channels-last gave the
    same test accuracy for all eight shipped models, the same loss on every repeat (to the last
    bit; within 1e-6 of the contiguous layout's), and ran faster: 1.4-1.5x for the ``cpu`` preset's
    VGG16s, 1.2-1.4x for its ResNet18Bs (one thread, on an AMD EPYC core;
    ``benchmarks/inference_layout.py`` measures it).
    Training keeps ``"auto"`` off on the CPU (:class:`TrainConfig`): there, channels-last training
    of a small ResNet18B was not repeatable, and crashed, under torch 2.14 on the same machine.

    Example:
        >>> inference_channels_last("auto", torch.device("cpu")), inference_channels_last(False, torch.device("cpu"))
        (True, False)
    """
    if channels_last not in (True, False, "auto"):
        raise ValueError(f"channels_last must be True, False or 'auto', got {channels_last!r}")
    return device.type in ("cuda", "cpu") if channels_last == "auto" else bool(channels_last)


def batch_to_device(images: torch.Tensor, device: torch.device, channels_last: bool, dataset: Dataset) -> torch.Tensor:
    """A batch of ``dataset``'s images on ``device``, NHWC where ``channels_last``; uint8 images
    ``(B, H, W, 3)`` normalised there by the dataset's own ``normalize_uint8``.

    Raises:
        ValueError: for uint8 images from a dataset that says not how to normalise them.
    """
    images = images.to(device, non_blocking=True)
    if images.dtype == torch.uint8:
        normalize = getattr(dataset, "normalize_uint8", None)
        if normalize is None:
            raise ValueError(f"{type(dataset).__name__} yields uint8 images but has no normalize_uint8(batch) "
                             "method to turn them into the model's float input: give it one (the lab's "
                             "training_view() has one), or yield normalised float images")
        images = normalize(images)  # the lab's is a channels-last view: made planar below unless NHWC is wanted
    nhwc = channels_last and images.dim() == 4
    return images.contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)


def make_loader(dataset: Dataset, batch_size: int, device: torch.device, num_workers: int,
                sampler: RandomSampler | None = None, drop_last: bool = False, seed: int = 0) -> DataLoader:
    """The loader of ``dataset``: pinned memory on CUDA, no shuffling but ``sampler``'s."""
    # A generator of its own, so that building a loader (which draws the workers' base seed)
    # never consumes the global random stream that dropout and the caller use.
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False,
                      num_workers=num_workers, pin_memory=device.type == "cuda",
                      drop_last=drop_last, generator=generator)


def progress_bar(loader: DataLoader, **bar_options: Any) -> tqdm:
    """A progress bar over one pass of ``loader`` that builds exactly one loader iterator.

    ``tqdm.auto``'s asyncio bar calls ``iter()`` on a plain iterable in its constructor, and
    iterating the bar calls it again: two iterators per pass, and with workers the unused one
    prefetches batches and so advances the shuffling generator, making the run depend on the
    worker count. Handing the bar an iterator (whose ``iter()`` is itself) avoids both.
    """
    return tqdm(iter(loader), total=len(loader), **bar_options)


def default_workers(device: torch.device) -> int:
    """Loader workers for ``num_workers=None``: none on the CPU, up to 4 on CUDA."""
    return min(4, os.cpu_count() or 1) if device.type == "cuda" else 0


@torch.no_grad()
def _forward_all(model: nn.Module, dataset: Dataset, batch_size: int, device: torch.device,
                 num_workers: int, amp: str, channels_last: bool, progress: bool,
                 desc: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    model.to(device).eval()
    dtype = resolve_precision(amp, device)
    channels_last = inference_channels_last(channels_last, device)
    loader = make_loader(dataset, batch_size, device, num_workers)
    for batch in progress_bar(loader, desc=desc, leave=False, disable=not progress):
        images = batch_to_device(batch[0], device, channels_last, dataset)
        labels = torch.as_tensor(batch[1]).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(images)
        yield logits.float(), labels


def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 128, device: str | torch.device | None = None,
             *, num_workers: int = 0, amp: str = "off", channels_last: bool | str = "auto",
             progress: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``dataset``, in eval mode.
    Used in chapter 1, and the appendix.

    The model is left in eval mode on ``device`` (default: where its parameters are). Batches go
    in as NHWC where :func:`inference_channels_last` says so (``channels_last="auto"``); the
    model's weights are not touched.

    Returns:
        ``(loss, accuracy)``; accuracy in ``[0, 1]``.

    Raises:
        ValueError: for an empty dataset, or a loss that is not finite (the message names the
            weights to blame, :func:`broken_weights`, or else the precision or the inputs).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.randn(8, 4), torch.zeros(8, dtype=torch.long))
        >>> loss, acc = evaluate(nn.Linear(4, 2), data, batch_size=4)
        >>> 0.0 <= acc <= 1.0
        True
    """
    device = model_device(model) if device is None else torch.device(device)
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    for logits, labels in _forward_all(model, dataset, batch_size, device, num_workers, amp,
                                       channels_last, progress, "evaluate"):
        total_loss += F.cross_entropy(logits, labels, reduction="sum").double()
        correct += (logits.argmax(1) == labels).sum()
        count += labels.numel()
    if count == 0:
        raise ValueError("evaluate got an empty dataset: pass a dataset with at least one item")
    loss = total_loss.item() / count
    if not math.isfinite(loss):
        broken = broken_weights(model)
        cause = (f"the model's weights are broken: {', '.join(broken[:5])}; reload or retrain them" if broken else
                 f"the weights are sound, so the forward pass overflowed in {amp}: evaluate with amp='off'"
                 if resolve_precision(amp, device) is not None else
                 "the weights are sound and the forward pass ran in float32: check the inputs for NaN, infinite "
                 "or huge values")
        raise ValueError(f"evaluate got a loss of {loss}: {cause}")
    return loss, correct.item() / count


def predict(model: nn.Module, dataset: Dataset, batch_size: int = 128, device: str | torch.device | None = None,
            *, num_workers: int = 0, amp: str = "off", channels_last: bool | str = "auto",
            progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true labels for every item of ``dataset``, in order, on the CPU.
    Used in no chapter directly.

    Returns:
        ``(predicted, targets)``, two ``int64`` tensors of length ``len(dataset)``; feed them to
        :func:`confusion_matrix`.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.randn(5, 4), torch.arange(5) % 2)
        >>> predicted, targets = predict(nn.Linear(4, 2), data)
        >>> predicted.shape, targets.tolist()
        (torch.Size([5]), [0, 1, 0, 1, 0])
    """
    device = model_device(model) if device is None else torch.device(device)
    predicted, targets = [], []
    for logits, labels in _forward_all(model, dataset, batch_size, device, num_workers, amp,
                                       channels_last, progress, "predict"):
        predicted.append(logits.argmax(1).cpu())
        targets.append(labels.cpu())
    return torch.cat(predicted), torch.cat(targets)


def confusion_matrix(targets: torch.Tensor | Sequence[int], predicted: torch.Tensor | Sequence[int],
                     num_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of items of true class ``i`` predicted as class ``j``.
    Used in no chapter directly.

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 1, 0], 2).tolist()
        [[1, 0], [1, 1]]
    """
    t = np.asarray(targets, dtype=np.int64).ravel()
    p = np.asarray(predicted, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"targets and predicted differ in length: {t.size} vs {p.size}")
    for name, values in (("targets", t), ("predicted", p)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} hold labels outside [0, {num_classes}): check num_classes")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without parameters).
    Used in no chapter directly."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))
