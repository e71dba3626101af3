"""Training that uses the GPU well and survives being interrupted.

One function, :func:`train`, runs the loop every chapter needs:

* AdamW with a one-cycle learning rate (warm up, then cosine down), which reaches a good
  model in few epochs;
* mixed precision on a GPU: bfloat16 where the GPU supports it, else float16 with a
  :class:`torch.amp.GradScaler` (e.g. Colab's T4); float32 on the CPU;
* channels-last memory layout and, optionally, :func:`torch.compile`;
* a :class:`~torch.utils.data.DataLoader` with workers and pinned memory on a GPU; batches of
  uint8 images ``(B, H, W, 3)`` (the lab's :meth:`~cam_tutorial.lab.SyntheticShapes.training_view`)
  are normalised on the device, to exactly the lab's float values, a quarter of the bytes to load;
* a checkpoint after every epoch, written atomically. Calling :func:`train` again with the
  same ``checkpoint_dir`` resumes from the last complete epoch with the model, optimiser,
  schedule, scaler, history and every random state restored, so that on the CPU an
  interrupted and resumed run ends with exactly the weights of an uninterrupted one, whatever
  the number of loader workers before and after. A checkpoint of another model (its module
  tree included, e.g. GAP vs GMP), other data, other settings or another ``identity`` (e.g.
  the zoo's recipe of the model) is refused, not resumed, naming what differs;
* a divergence guard: a non-finite or exploding loss stops training with
  :class:`TrainingDiverged`, naming the step, the loss and the learning rate.

The checkpoint holds only tensors and plain Python containers, so it loads with
``torch.load(weights_only=True)``, which cannot run code hidden in a file.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torch.utils.data import TensorDataset
    >>> from cam_tutorial.train import TrainConfig, train
    >>> images, labels = torch.randn(64, 3, 8, 8), torch.randint(0, 2, (64,))
    >>> data = TensorDataset(images, labels)
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(192, 2))
    >>> history = train(model, data, data, TrainConfig(epochs=2, batch_size=16, progress=False))
    >>> len(history.val_acc)
    2
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import errno
import hashlib
import json
import logging
import math
import numbers
import operator
import os
import pickle
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset
from tqdm.auto import tqdm

from cam_tutorial.config import Preset, default_device
from cam_tutorial.lab import normalize_uint8

__all__ = [
    "FINGERPRINT_FIELDS",
    "identity_differences",
    "atomic_save",
    "stale_temporaries",
    "TrainConfig",
    "History",
    "CheckpointError",
    "TrainingDiverged",
    "CHECKPOINT_NAME",
    "train",
    "evaluate",
    "predict",
    "inference_channels_last",
    "confusion_matrix",
    "resolve_precision",
    "load_checkpoint",
    "safe_load",
    "check_writable_folder",
    "check_format",
    "DIVERGED_LOSS",
    "measure_throughput",
    "model_device",
]

logger = logging.getLogger(__name__)

#: File name of the rolling checkpoint inside ``checkpoint_dir``.
CHECKPOINT_NAME = "last.pt"
_FORMAT = "cam_tutorial.train/1"
_AMP_CHOICES = ("auto", "off", "bf16", "fp16")
# The fields that change what training computes; a checkpoint written under other values is
# not this run's, so resuming from it would silently mix two runs.
FINGERPRINT_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "label_smoothing", "pct_start", "seed")
# What every checkpoint written by :func:`train` holds.
_CHECKPOINT_KEYS = ("format", "fingerprint", "epoch", "model", "optimizer", "scheduler", "scaler", "rng",
                    "history", "config")
#: A training loss above this (in nats; chance on 1000 classes is 6.9) means the run diverged:
#: no run comes back from logits thousands apart.
DIVERGED_LOSS = 1e4
# Items of the training set whose bytes identify the data in the resume fingerprint.
_FINGERPRINT_ITEMS = 3
# "Disk quota exceeded" is not defined everywhere (e.g. Windows).
_EDQUOT = getattr(errno, "EDQUOT", errno.ENOSPC)


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from or written: unreadable, foreign, from another
    run, or a folder that cannot take it."""


class TrainingDiverged(RuntimeError):
    """The training loss became non-finite or exploded; the message names the step, the loss and
    the learning rate."""


@dataclass
class TrainConfig:
    """How to train; every field has a default that suits the book's lab.

    Attributes:
        epochs: passes over the training set (the one-cycle schedule spans all of them).
        batch_size: images per optimisation step.
        lr: peak learning rate of the one-cycle schedule.
        weight_decay: AdamW's decoupled weight decay (not applied to norms and biases).
        label_smoothing: cross-entropy label smoothing in ``[0, 1)``.
        pct_start: fraction of the steps spent warming the learning rate up.
        num_workers: DataLoader worker processes; ``None`` picks 0 on the CPU (the lab's images
            are cheap to make and workers would compete for the cores) and up to 4 on a GPU.
        amp: mixed precision: ``"auto"`` (bf16 on GPUs that support it, fp16 on older GPUs,
            off on the CPU), ``"off"``, ``"bf16"`` or ``"fp16"``.
        channels_last: store images and weights as NHWC; ``"auto"`` turns it on for CUDA only (see
            :func:`inference_channels_last` for why not on the CPU).
        compile: wrap the model in :func:`torch.compile` (pays off on long GPU runs).
        seed: seeds the Python, NumPy and torch generators and the shuffling.
        device: ``"cpu"``, ``"cuda"``...; ``None`` picks CUDA, then MPS, then the CPU.
        eval_batch_size: batch size for validation.
        log_every: batches between progress-bar refreshes of the running loss (each refresh
            waits for the GPU).
        progress: show tqdm progress bars.
        identity: what else makes this run the run it is, as a JSON-able dict (the zoo passes its
            :class:`~cam_tutorial.zoo.ModelRecipe`'s ``identity()``: architecture, data and lab
            version); it enters the resume fingerprint, so that a checkpoint written under any other
            identity is refused with the differing entries named. ``None``: the model, data and
            settings alone identify the run. Stored as its JSON round trip (tuples become lists);
            left out of the ``repr``.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 4e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    pct_start: float = 0.25
    num_workers: int | None = None
    amp: str = "auto"
    channels_last: bool | str = "auto"
    compile: bool = False
    seed: int = 0
    device: str | None = None
    eval_batch_size: int = 128
    log_every: int = 10
    progress: bool = True
    identity: dict[str, Any] | None = field(default=None, repr=False)  # long: printing a config shows its settings

    def __post_init__(self) -> None:
        self.identity = _json_identity(self.identity)
        if self.amp not in _AMP_CHOICES:
            raise ValueError(f"unknown amp {self.amp!r}: use one of {', '.join(map(repr, _AMP_CHOICES))}")
        if self.channels_last not in (True, False, "auto"):
            raise ValueError(f"channels_last must be True, False or 'auto', got {self.channels_last!r}")
        for name in ("epochs", "batch_size", "eval_batch_size", "log_every"):
            value = _integer(name, getattr(self, name))
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}: e.g. {name}=1")
            setattr(self, name, value)
        self.seed = _integer("seed", self.seed)
        if self.num_workers is not None:
            self.num_workers = _integer("num_workers", self.num_workers)
            if self.num_workers < 0:
                raise ValueError(f"num_workers must be 0 or more (or None), got {self.num_workers!r}")
        for name in ("lr", "weight_decay", "label_smoothing", "pct_start"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            setattr(self, name, float(value))
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}: e.g. lr=4e-3")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be 0 or more, got {self.weight_decay!r}: e.g. weight_decay=5e-4")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing!r}")
        if not 0 < self.pct_start < 1:
            raise ValueError(f"pct_start must lie in (0, 1), got {self.pct_start!r}")

    @classmethod
    def from_preset(cls, preset: Preset, **changes: Any) -> "TrainConfig":
        """The training settings of a preset (epochs, batch size, learning rate), plus ``changes``.

        Example:
            >>> from cam_tutorial.config import get_preset
            >>> TrainConfig.from_preset(get_preset("ci"), seed=1).seed
            1
        """
        values: dict[str, Any] = dict(
            epochs=preset.epochs, batch_size=preset.batch_size, lr=preset.lr,
            eval_batch_size=preset.eval_batch_size,
        )
        values.update(changes)
        return cls(**values)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _json_identity(identity: Any) -> dict[str, Any] | None:
    """``identity`` as the plain dict a checkpoint stores and loads back equal (or ``None``)."""
    if identity is None:
        return None
    if not isinstance(identity, dict):
        raise ValueError(f"identity must be a dict or None, got {type(identity).__name__}")
    try:
        return json.loads(json.dumps(identity, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"identity must be JSON-able (str keys; str, number, bool, None, list, dict "
                         f"values): {exc}") from None


def _integer(name: str, value: Any) -> int:
    """``value`` as an ``int`` when it is a whole number of an integer type (``True``, ``1.5`` and
    ``"3"`` are refused: a fractional epoch count would fail deep inside the schedule)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__}): "
                         f"e.g. {name}=2") from None


@dataclass
class History:
    """What happened in each epoch; lists are aligned, one entry per completed epoch.

    Attributes:
        epoch: the epoch number, from 1.
        train_loss, train_acc: mean cross-entropy and accuracy over the epoch's training batches
            (the model changes during the epoch, so these trail the end-of-epoch model).
        val_loss, val_acc: the same on the validation set, in eval mode, after the epoch.
        lr: learning rate of the epoch's last step.
        epoch_seconds: wall time of the epoch, validation included.
        images_per_second: training throughput (training images over training time).
        starts: the completed-epoch count at which each call of :func:`train` started (``[0]``
            for one uninterrupted run; ``[0, 1]`` when a second call resumed after epoch 1).
        device, precision, channels_last, compiled: how the last call ran.
        finished: whether all ``epochs`` are done.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    images_per_second: list[float] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    device: str = ""
    precision: str = ""
    channels_last: bool = False
    compiled: bool = False
    finished: bool = False

    @property
    def epochs_done(self) -> int:
        """How many epochs are complete."""
        return len(self.epoch)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and scalars (what the checkpoint stores)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "History":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


# --------------------------------------------------------------------------- device & precision


def resolve_precision(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for an ``amp`` setting on ``device``; ``None`` means float32.

    ``"auto"`` is bfloat16 on GPUs with bfloat16 tensor cores (compute capability 8.0 and up:
    Ampere and newer), float16 on older GPUs such as the T4 (7.5; float16 then needs a gradient
    scaler), and off elsewhere: on the CPU autocast rarely speeds training up (see
    ``benchmarks/train_throughput.py``). The capability decides, not
    :func:`torch.cuda.is_bf16_supported`, which also counts (slow) emulated bfloat16.

    Example:
        >>> resolve_precision("auto", torch.device("cpu")) is None
        True
    """
    if amp not in _AMP_CHOICES:
        raise ValueError(f"unknown amp {amp!r}: use one of {', '.join(map(repr, _AMP_CHOICES))}")
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16
    return None


def inference_channels_last(channels_last: bool | str, device: torch.device) -> bool:
    """Whether :func:`evaluate` and :func:`predict` feed ``device`` NHWC (channels-last) batches.

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
    if channels_last == "auto":
        return device.type in ("cuda", "cpu")
    return bool(channels_last)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def _resolve_device(device: str | torch.device | None) -> torch.device:
    return torch.device(device) if device is not None else default_device()


def _to_device(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    if images.dtype == torch.uint8:  # the lab's training view: normalised here, on the device
        images = normalize_uint8(images)
        return images.contiguous(memory_format=torch.channels_last if channels_last and images.dim() == 4
                                 else torch.contiguous_format)
    return images.contiguous(memory_format=torch.channels_last) if channels_last and images.dim() == 4 else images


def _loader(dataset: Dataset, batch_size: int, device: torch.device, num_workers: int,
            sampler: RandomSampler | None = None, drop_last: bool = False, seed: int = 0) -> DataLoader:
    # A generator of its own, so that building a loader (which draws the workers' base seed)
    # never consumes the global random stream that dropout and the caller use.
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False,
                      num_workers=num_workers, pin_memory=device.type == "cuda",
                      drop_last=drop_last, generator=generator)


def _progress(loader: DataLoader, **bar_options: Any) -> tqdm:
    """A progress bar over one pass of ``loader`` that builds exactly one loader iterator.

    ``tqdm.auto``'s asyncio bar calls ``iter()`` on a plain iterable in its constructor, and
    iterating the bar calls it again: two iterators per pass, and with workers the unused one
    prefetches batches and so advances the shuffling generator, making the run depend on the
    worker count. Handing the bar an iterator (whose ``iter()`` is itself) avoids both.
    """
    try:
        total = len(loader)
    except TypeError:  # an iterable-style dataset without a length
        total = None
    return tqdm(iter(loader), total=total, **bar_options)


def _default_workers(device: torch.device) -> int:
    if device.type == "cuda":
        return min(4, os.cpu_count() or 1)
    return 0


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def _forward_all(model: nn.Module, dataset: Dataset, batch_size: int, device: torch.device,
                 num_workers: int, amp: str, channels_last: bool, progress: bool,
                 desc: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    dtype = resolve_precision(amp, device)
    channels_last = inference_channels_last(channels_last, device)
    loader = _loader(dataset, batch_size, device, num_workers)
    for batch in _progress(loader, desc=desc, leave=False, disable=not progress):
        images = _to_device(batch[0], device, channels_last)
        labels = torch.as_tensor(batch[1]).to(device, non_blocking=True)
        with _autocast(device, dtype):
            logits = model(images)
        yield logits.float(), labels


def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 128, device: str | torch.device | None = None,
             *, num_workers: int = 0, amp: str = "off", channels_last: bool | str = "auto",
             progress: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``dataset``, in eval mode.

    The model is left in eval mode on ``device`` (default: where its parameters are). Batches go
    in as NHWC where :func:`inference_channels_last` says so (``channels_last="auto"``); the
    model's weights are not touched.

    Returns:
        ``(loss, accuracy)``; accuracy in ``[0, 1]``.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.randn(8, 4), torch.zeros(8, dtype=torch.long))
        >>> loss, acc = evaluate(nn.Linear(4, 2), data, batch_size=4)
        >>> 0.0 <= acc <= 1.0
        True
    """
    device = model_device(model) if device is None else torch.device(device)
    model.to(device).eval()
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
    return total_loss.item() / count, correct.item() / count


def predict(model: nn.Module, dataset: Dataset, batch_size: int = 128, device: str | torch.device | None = None,
            *, num_workers: int = 0, amp: str = "off", channels_last: bool | str = "auto",
            progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true labels for every item of ``dataset``, in order, on the CPU.

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
    model.to(device).eval()
    predicted, targets = [], []
    for logits, labels in _forward_all(model, dataset, batch_size, device, num_workers, amp,
                                       channels_last, progress, "predict"):
        predicted.append(logits.argmax(1).cpu())
        targets.append(labels.cpu())
    return torch.cat(predicted), torch.cat(targets)


def confusion_matrix(targets: torch.Tensor | Sequence[int], predicted: torch.Tensor | Sequence[int],
                     num_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of items of true class ``i`` predicted as class ``j``.

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
    """The device of the model's first parameter (the CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


# --------------------------------------------------------------------------- checkpoints


def _data_identity(dataset: Dataset) -> dict[str, Any]:
    """What identifies a training set cheaply: its own ``repr`` when its class defines one
    (:class:`~cam_tutorial.lab.SyntheticShapes` shows split, size, seed and region) and a hash of
    the bytes and labels of its first, middle and last items (which also tells apart datasets
    without a telling ``repr``, such as a ``TensorDataset``)."""
    length = len(dataset)  # type: ignore[arg-type]
    describes_itself = type(dataset).__repr__ is not object.__repr__
    digest = hashlib.sha256()
    for index in sorted({0, length // 2, length - 1})[:_FINGERPRINT_ITEMS]:
        image, label, *_ = dataset[index]
        try:
            digest.update(torch.as_tensor(image).detach().cpu().contiguous().numpy().tobytes())
            digest.update(repr(torch.as_tensor(label).tolist()).encode())
        except (TypeError, ValueError, RuntimeError):  # items that are not tensors: their repr
            digest.update(repr((image, label)).encode())
    return {"repr": repr(dataset) if describes_itself else "", "items": digest.hexdigest()[:16]}


def _fingerprint(model: nn.Module, config: TrainConfig, train_set: Dataset) -> dict[str, Any]:
    """What identifies a run: the architecture (class, every tensor's name and shape, and the
    module tree's ``repr``, which shows constructor options such as ``GlobalPool(mode='max')``),
    the training data, the settings that change the computation and the config's ``identity``
    (when given). Device, precision and workers may change on resume."""
    identity = {} if config.identity is None else {"identity": config.identity}
    return {
        "model": type(model).__name__,
        "tensors": [[name, list(t.shape)] for name, t in model.state_dict().items()],
        "modules": hashlib.sha256(repr(model).encode()).hexdigest()[:16],
        "modules_text": repr(model),
        "train_size": int(len(train_set)),  # type: ignore[arg-type]
        "data": _data_identity(train_set),
        **{name: getattr(config, name) for name in FINGERPRINT_FIELDS},
        **identity,
    }


def _first_difference(stored: str, current: str) -> str:
    for old, new in zip(stored.splitlines(), current.splitlines()):
        if old != new:
            return f"{old.strip()!r} vs now {new.strip()!r}"
    return "a different number of modules"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict of dotted paths, e.g. ``{"lab": {"version": 1}}`` -> ``{"lab.version": 1}``."""
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def identity_differences(stored: Any, current: Any, stored_as: str = "checkpoint") -> list[str]:
    """The entries of two identities (:attr:`TrainConfig.identity`) that differ, each named by its
    dotted path; the stored one is called ``stored_as`` in the text.

    Example:
        >>> identity_differences({"lab": {"version": 1, "seed": 0}}, {"lab": {"version": 2, "seed": 0}})
        ['identity.lab.version: checkpoint 1 vs now 2']
    """
    if stored is None or current is None:
        return [f"identity: the {stored_as} {'has none' if stored is None else 'has one'}, this run "
                f"{'has none' if current is None else 'has one'} (TrainConfig.identity)"]
    old, new = _flatten(stored, "identity"), _flatten(current, "identity")
    return [f"{path}: {stored_as} {old.get(path, '(absent)')!r} vs now {new.get(path, '(absent)')!r}"
            for path in sorted(set(old) | set(new)) if old.get(path, ...) != new.get(path, ...)]


def _fingerprint_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    differences = []
    for key in sorted(set(stored) | set(current)):
        if key == "modules_text" or stored.get(key) == current.get(key):
            continue
        if key == "tensors":
            differences.append("model parameters (names or shapes)")
        elif key == "modules":
            text = _first_difference(str(stored.get("modules_text", "")), str(current.get("modules_text", "")))
            differences.append(f"model options (module tree): checkpoint {text}")
        elif key == "data":
            differences.append(f"training data: checkpoint {stored.get(key)!r} vs now {current.get(key)!r}")
        elif key == "identity":
            differences.extend(identity_differences(stored.get(key), current.get(key)))
        else:
            differences.append(f"{key}: checkpoint {stored.get(key)!r} vs now {current.get(key)!r}")
    return differences


def _rng_state(loader_generator: torch.Generator) -> dict[str, Any]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64),
                   "gauss_next": py_state[2]},
        "loader": loader_generator.get_state(),
    }


def _set_rng_state(state: dict[str, Any], loader_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss_next"]))
    loader_generator.set_state(state["loader"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it (and put it back)
    os.umask(mask)
    return mask


def stale_temporaries(path: Path) -> list[Path]:
    """Temporary files :func:`atomic_save` left for ``path`` (a process killed while saving).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> (folder / ".last.pt.abc.tmp").touch()
        >>> [p.name for p in stale_temporaries(folder / "last.pt")]
        ['.last.pt.abc.tmp']
    """
    return sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, _EDQUOT):
        return True
    # torch.save reports a failed write from its C++ writer as a RuntimeError without the errno.
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("unexpected pos" in text or "file write failed" in text)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename it over ``path``:
    a crash leaves either the old file or the new one, never half of one.

    The file gets the mode the umask gives new files (``0644`` under umask ``022``), like a file
    written with ``open()``: :func:`tempfile.mkstemp` alone would make it ``0600``, unreadable to
    anyone else sharing the cache.

    Raises:
        OSError: ``errno.ENOSPC`` with a message saying the disk is full and naming the folder;
            the previous file at ``path`` is kept.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "last.pt"
        >>> atomic_save({"epoch": 1}, target)
        >>> torch.load(target)["epoch"], stale_temporaries(target)
        (1, [])
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # POSIX; elsewhere files do not carry these permission bits
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if _is_disk_full(exc):
            raise OSError(errno.ENOSPC, f"disk full: cannot write {path.name} to {path.parent} "
                          f"(any earlier {path.name} there is kept); free space there or choose another "
                          "folder", str(path)) from exc
        raise


def check_writable_folder(folder: str | os.PathLike, fix: str) -> Path:
    """Create ``folder`` if needed and prove that files can be written in it, before any work
    that would be lost if they cannot.

    Args:
        folder: the folder.
        fix: what the user should do instead, e.g. ``"choose another checkpoint_dir"``.

    Returns:
        ``folder`` as a :class:`~pathlib.Path`.

    Raises:
        CheckpointError: when a file stands in the way, permission is denied, the disk is full
            or read-only; the message names the folder, the cause and ``fix``.

    Example:
        >>> import tempfile
        >>> check_writable_folder(tempfile.mkdtemp(), "choose another folder").is_dir()
        True
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".cam_tutorial-write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except (FileExistsError, NotADirectoryError) as exc:
        # The first existing part of the path that is not a folder: the file in the way.
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise CheckpointError(f"cannot use {folder} as a folder: {blocker} is a file: "
                              f"move that file away or {fix}") from exc
    except PermissionError as exc:
        raise CheckpointError(f"cannot write to {folder}: permission denied (a read-only or another user's "
                              f"folder?): make it writable or {fix}") from exc
    except OSError as exc:
        cause = {errno.ENOSPC: "the disk is full", _EDQUOT: "the disk is full or the quota used up",
                 errno.EROFS: "the file system is read-only"}.get(exc.errno or 0, exc.strerror or str(exc))
        raise CheckpointError(f"cannot write to {folder}: {cause}: {fix}") from exc
    return folder


def safe_load(path: str | os.PathLike, what: str, fix: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with a message that says what is wrong.

    ``weights_only`` loading accepts only tensors and plain containers, so a file cannot run code
    when read. Every failure becomes a :class:`CheckpointError` that names the file, the actual
    cause (missing, a folder, no permission, empty, truncated, disallowed Python objects, written
    by a newer PyTorch) and a fix that suits that cause: only damaged files are to be deleted.

    Args:
        path: the file.
        what: what the file is, for the message, e.g. ``"the checkpoint"``.
        fix: what to do about a damaged file, e.g. ``"delete it or choose another checkpoint_dir"``.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "empty.pt")
        >>> open(path, "wb").close()
        >>> try:
        ...     safe_load(path, "the checkpoint", "delete it")
        ... except CheckpointError as err:
        ...     print(str(err).split(": ", 1)[1])
        it is empty (0 bytes; an interrupted copy or write?): delete it
    """
    path = Path(path)
    with contextlib.suppress(OSError):
        if path.is_file() and path.stat().st_size == 0:
            raise CheckpointError(f"cannot read {what} {path}: it is empty (0 bytes; an interrupted copy or "
                                  f"write?): {fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"cannot read {what} {path}: there is no such file (moved or deleted "
                              "meanwhile?): check the path") from exc
    except IsADirectoryError as exc:
        raise CheckpointError(f"cannot read {what} {path}: it is a folder, not a file: move the folder "
                              "away (the file will be written again) or check the path") from exc
    except PermissionError as exc:
        raise CheckpointError(f"cannot read {what} {path}: permission denied (another user's file?): "
                              f"give this user read access (chmod a+r) or point to another folder; the file "
                              "itself may be fine") from exc
    except pickle.UnpicklingError as exc:
        first = _first_line(exc)
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"cannot read {what} {path}: it holds Python objects other than tensors and plain "
                f"containers ({first}), which safe loading refuses because reading them could run code: "
                f"if it is a file of this package, {fix}; otherwise it is not one of this package's files"
            ) from exc
        raise CheckpointError(f"cannot read {what} {path}: it is corrupt ({first}): {fix}") from exc
    except EOFError as exc:
        raise CheckpointError(f"cannot read {what} {path}: it ends early ({_first_line(exc)}; an interrupted "
                              f"copy or write?): {fix}") from exc
    except Exception as exc:  # truncated zip archives and the like
        if "maximum supported version" in str(exc) or "newer version" in str(exc):
            raise CheckpointError(f"cannot read {what} {path}: it was written by a newer PyTorch than this "
                                  f"one ({torch.__version__}): upgrade torch; the file itself may be fine") from exc
        raise CheckpointError(f"cannot read {what} {path} ({type(exc).__name__}: {_first_line(exc)}): "
                              f"it is corrupt or truncated: {fix}") from exc


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, at most 200 characters; the type when empty."""
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else f"{type(exc).__name__} without a message"


def check_format(stored: Any, path: Path, expected: str, keys: Sequence[str], what: str, fix: str) -> None:
    """Check a loaded file's ``format`` entry and that it holds ``keys``; shared by the zoo.

    Raises:
        CheckpointError: for another program's file (with ``fix``), a file of a newer version of
            this package (upgrade it), or one that lacks entries (naming them).
    """
    if not isinstance(stored, dict) or not isinstance(stored.get("format"), str):
        raise CheckpointError(f"{path} is not {what} (expected format {expected!r}; a bare state_dict or "
                              f"another program's file?): {fix}")
    family, _, version = expected.rpartition("/")
    found = stored["format"]
    if found != expected:
        if found.startswith(family + "/"):
            raise CheckpointError(f"{path} is {what} of format {found!r}, which this version of cam_tutorial "
                                  f"(format {expected!r}) cannot read: upgrade cam_tutorial, or {fix}")
        raise CheckpointError(f"{path} is not {what} (format {found!r}, expected {expected!r}): {fix}")
    missing = [key for key in keys if key not in stored]
    if missing:
        raise CheckpointError(f"{path} lacks the entries {', '.join(map(repr, missing))} of {what} "
                              f"(written by hand or by a broken program?): {fix}")


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read one of :func:`train`'s checkpoints safely (``weights_only=True``) and check its format.

    Raises:
        CheckpointError: when the file cannot be read (the message says why: missing, no
            permission, empty, truncated...) or is not a complete checkpoint written by
            :func:`train` (e.g. a bare ``state_dict``); the message names the file and the fix.
    """
    path = Path(path)
    fix = f"delete {path} or choose another checkpoint_dir"
    checkpoint = safe_load(path, "the checkpoint", fix)
    check_format(checkpoint, path, _FORMAT, _CHECKPOINT_KEYS, "a cam_tutorial training checkpoint", fix)
    return checkpoint


# --------------------------------------------------------------------------- training


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # Decay only matrices and kernels; decaying norm scales and biases only hurts.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train(model: nn.Module, train_set: Dataset, val_set: Dataset | None, config: TrainConfig | None = None,
          checkpoint_dir: str | os.PathLike | None = None, *, stop_after: int | None = None) -> History:
    """Train ``model`` in place with AdamW and a one-cycle schedule; validate after every epoch.

    Each step minimises the mean cross-entropy ``L = -(1/B) sum_i log softmax(S_i)[y_i]`` of a
    batch; the learning rate rises from ``lr/25`` to ``lr`` over the first ``pct_start`` of the
    steps, then follows a cosine down to ``lr/1e4``.

    Items of the datasets are tuples whose first two entries are the image ``(3, H, W)`` and the
    integer label (further entries, such as boxes and masks, are ignored). The function seeds
    Python's, NumPy's and torch's global generators with ``config.seed`` (a fresh run) or
    restores them (a resumed run).

    Args:
        model: the network; moved to the device (and to channels-last when enabled).
        train_set: training items.
        val_set: validation items, or ``None`` to skip validation (then ``val_*`` are NaN).
        config: the settings; default :class:`TrainConfig()`.
        checkpoint_dir: folder for ``last.pt``, written after every epoch. When it already holds
            a checkpoint of the same run, training resumes after its last complete epoch; when
            that checkpoint is finished, the stored weights are loaded and its history returned.
        stop_after: return after this many epochs *of this call* (the run stays unfinished,
            and a later call with the same ``checkpoint_dir`` goes on): an honest interruption.

    Returns:
        The :class:`History` of all epochs so far, resumed ones included.

    Raises:
        CheckpointError: when ``checkpoint_dir`` holds an unreadable checkpoint or one of
            another model, data or configuration (the file is left untouched), or when files
            cannot be written there (checked before the first epoch).
        TrainingDiverged: when the training loss becomes non-finite or exceeds
            :data:`DIVERGED_LOSS`; the last good checkpoint stays in ``checkpoint_dir``.
        OSError: ``errno.ENOSPC`` when the disk fills up while saving (the message says so).

    One ``checkpoint_dir`` serves one run at a time (the zoo's lock sees to that): temporary
    files that a killed save left there are removed when a run starts.
    """
    config = config or TrainConfig()
    _check_train_arguments(train_set, config, checkpoint_dir, stop_after)
    _set_epoch(train_set, 0)  # a set that changes with the epoch is fingerprinted at its first
    setup = _Setup.of(model, train_set, config, checkpoint_dir)
    checkpoint = _load_for_resume(setup.checkpoint_path, setup.fingerprint) if setup.checkpoint_path else None
    finished = checkpoint is not None and checkpoint["history"]["finished"]
    if setup.checkpoint_path is not None and not finished:
        _prepare_checkpoint_dir(setup.checkpoint_path)
    model.to(setup.device)
    if setup.channels_last:
        model.to(memory_format=torch.channels_last)
    if finished:
        model.load_state_dict(checkpoint["model"])
        model.eval()
        logger.info("%s holds a finished run of %d epochs: loaded it, nothing to train",
                    setup.checkpoint_path, checkpoint["epoch"])
        return History.from_dict(checkpoint["history"])
    if setup.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    forward_model = torch.compile(model) if config.compile else model
    parts = _Optimisation.of(model, train_set, config, setup)
    history, start_epoch = _seed_or_resume(model, parts, checkpoint, config, setup)
    end_epoch = config.epochs if stop_after is None else min(config.epochs, start_epoch + stop_after)
    epochs_bar = tqdm(range(start_epoch, end_epoch), desc="epochs", initial=start_epoch, total=config.epochs,
                      disable=not config.progress)
    for epoch in epochs_bar:
        try:
            _run_epoch(epoch, model, forward_model, train_set, val_set, config, setup, parts, history)
        except TrainingDiverged:
            epochs_bar.close()
            raise
        epochs_bar.set_postfix(val_acc=f"{history.val_acc[-1]:.3f}", refresh=False)
        if setup.checkpoint_path is not None:
            _save_epoch(setup, parts, model, history, config, epoch)
    epochs_bar.close()
    model.eval()
    return history


def _check_train_arguments(train_set: Dataset, config: TrainConfig, checkpoint_dir: str | os.PathLike | None,
                           stop_after: int | None) -> None:
    if checkpoint_dir is not None and not str(checkpoint_dir).strip():
        raise ValueError("checkpoint_dir is empty: pass a folder, e.g. checkpoint_dir='runs/gap' "
                         "(or None for no checkpoints)")
    if stop_after is not None and stop_after < 1:
        raise ValueError(f"stop_after must be a positive number of epochs or None, got {stop_after!r}")
    # A set that serves new items each epoch (see _set_epoch) says how many epochs it holds.
    epochs_held = getattr(train_set, "epochs", None) if callable(getattr(train_set, "set_epoch", None)) else None
    if isinstance(epochs_held, int) and epochs_held < config.epochs:
        raise ValueError(f"{train_set!r} holds {epochs_held} epochs of items, fewer than the {config.epochs} "
                         "epochs to train: make its lab longer or train fewer epochs")
    if len(train_set) < config.batch_size:  # type: ignore[arg-type]
        raise ValueError(
            f"the training set has {len(train_set)} items, fewer than one batch of {config.batch_size}: "  # type: ignore[arg-type]
            "lower batch_size or use more data"
        )


@dataclasses.dataclass
class _Setup:
    """Where and how a run trains: device, precision, layout, workers, checkpoint and fingerprint."""

    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool
    num_workers: int
    checkpoint_path: Path | None
    fingerprint: dict[str, Any]

    @classmethod
    def of(cls, model: nn.Module, train_set: Dataset, config: TrainConfig,
           checkpoint_dir: str | os.PathLike | None) -> "_Setup":
        device = _resolve_device(config.device)
        return cls(
            device=device,
            dtype=resolve_precision(config.amp, device),
            channels_last=device.type == "cuda" if config.channels_last == "auto" else bool(config.channels_last),
            num_workers=_default_workers(device) if config.num_workers is None else config.num_workers,
            checkpoint_path=Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None,
            fingerprint=_fingerprint(model, config, train_set),
        )


def _prepare_checkpoint_dir(checkpoint_path: Path) -> None:
    """Before the first epoch, not after it: a folder that cannot take the checkpoint would
    otherwise cost an epoch of training before saying so; a killed save's leftovers go."""
    check_writable_folder(checkpoint_path.parent, "choose another checkpoint_dir")
    for stale in stale_temporaries(checkpoint_path):
        logger.info("removing %s, left by a run killed while saving", stale)
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


@dataclasses.dataclass
class _Optimisation:
    """The optimiser, its schedule, the loss scaler and the shuffling of one run."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    shuffle_generator: torch.Generator
    sampler: RandomSampler

    @classmethod
    def of(cls, model: nn.Module, train_set: Dataset, config: TrainConfig, setup: _Setup) -> "_Optimisation":
        device = setup.device
        optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr,
                                      fused=device.type == "cuda")
        shuffle_generator = torch.Generator()
        sampler = RandomSampler(train_set, generator=shuffle_generator)  # type: ignore[arg-type]
        # drop_last: equal batches keep batch-norm statistics honest and shapes static for compile.
        steps_per_epoch = len(train_set) // config.batch_size  # type: ignore[arg-type]
        total_steps = config.epochs * steps_per_epoch
        pct_start = config.pct_start
        if pct_start * total_steps == 1.0:
            pct_start *= 1.001  # OneCycleLR divides by zero when the warm-up is exactly one step
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=pct_start,
        )
        scaler = torch.amp.GradScaler(device.type, enabled=setup.dtype == torch.float16)
        return cls(optimizer, scheduler, scaler, shuffle_generator, sampler)


def _seed_or_resume(model: nn.Module, parts: _Optimisation, checkpoint: dict[str, Any] | None,
                    config: TrainConfig, setup: _Setup) -> tuple[History, int]:
    """A fresh run seeds every generator; a resumed one restores the checkpoint's state."""
    if checkpoint is None:
        _seed_everything(config.seed)
        parts.shuffle_generator.manual_seed(config.seed)
        history = History()
        start_epoch = 0
    else:
        model.load_state_dict(checkpoint["model"])
        parts.optimizer.load_state_dict(checkpoint["optimizer"])
        parts.scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint["scaler"]:
            parts.scaler.load_state_dict(checkpoint["scaler"])
        _set_rng_state(checkpoint["rng"], parts.shuffle_generator)
        history = History.from_dict(checkpoint["history"])
        start_epoch = int(checkpoint["epoch"])
        logger.info("resuming from %s after epoch %d of %d", setup.checkpoint_path, start_epoch, config.epochs)
    history.starts.append(start_epoch)
    history.device, history.precision = str(setup.device), _precision_name(setup.dtype)
    history.channels_last, history.compiled = setup.channels_last, bool(config.compile)
    return history, start_epoch


def _run_epoch(epoch: int, model: nn.Module, forward_model: nn.Module, train_set: Dataset,
               val_set: Dataset | None, config: TrainConfig, setup: _Setup, parts: _Optimisation,
               history: History) -> None:
    """Train one epoch, validate, and append the epoch's numbers to ``history``."""
    started = time.perf_counter()
    _set_epoch(train_set, epoch)
    # The workers' seeds depend on the epoch only, so a resumed epoch gets the same ones.
    loader = _loader(train_set, config.batch_size, setup.device, setup.num_workers, sampler=parts.sampler,
                     drop_last=True, seed=config.seed * 100_003 + epoch)
    try:
        train_loss, train_acc, images, last_lr = _train_one_epoch(
            forward_model, loader, parts.optimizer, parts.scheduler, parts.scaler, config, setup.device,
            setup.dtype, setup.channels_last, desc=f"epoch {epoch + 1}/{config.epochs}",
        )
    except TrainingDiverged as exc:
        kept = (f"; the last good checkpoint, after epoch {epoch}, stays in {setup.checkpoint_path}"
                if setup.checkpoint_path is not None and epoch > 0 else "")
        raise TrainingDiverged(f"epoch {epoch + 1}/{config.epochs}, {exc}{kept}") from None
    train_seconds = time.perf_counter() - started
    if val_set is not None:
        val_loss, val_acc = evaluate(forward_model, val_set, config.eval_batch_size, setup.device,
                                     num_workers=setup.num_workers, amp=config.amp if setup.dtype else "off",
                                     channels_last=setup.channels_last, progress=config.progress)
    else:
        val_loss = val_acc = float("nan")
    seconds = time.perf_counter() - started
    history.epoch.append(epoch + 1)
    history.train_loss.append(train_loss)
    history.train_acc.append(train_acc)
    history.val_loss.append(val_loss)
    history.val_acc.append(val_acc)
    history.lr.append(last_lr)
    history.epoch_seconds.append(seconds)
    history.images_per_second.append(images / train_seconds)
    history.finished = epoch + 1 == config.epochs
    val_text = "" if val_set is None else f" | val loss {val_loss:.4f} acc {val_acc:.3f}"
    logger.info("epoch %d/%d: train loss %.4f acc %.3f%s | %.1f s, %.0f img/s", epoch + 1, config.epochs,
                train_loss, train_acc, val_text, seconds, images / train_seconds)


def _set_epoch(train_set: Dataset, epoch: int) -> None:
    """Tell a training set that changes with the epoch (one with ``set_epoch``, such as
    :class:`~cam_tutorial.lab.FreshEachEpoch`) which epoch is next; before the epoch's loader is
    built, so that its worker processes get the set as it is then."""
    set_epoch = getattr(train_set, "set_epoch", None)
    if callable(set_epoch):
        set_epoch(epoch)


def _save_epoch(setup: _Setup, parts: _Optimisation, model: nn.Module, history: History,
                config: TrainConfig, epoch: int) -> None:
    """Write ``last.pt`` after an epoch: everything a resumed run needs to go on exactly."""
    atomic_save({
        "format": _FORMAT,
        "fingerprint": setup.fingerprint,
        "epoch": epoch + 1,
        "model": model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict() if parts.scaler.is_enabled() else {},
        "rng": _rng_state(parts.shuffle_generator),
        "history": history.to_dict(),
        "config": dataclasses.asdict(config),
    }, setup.checkpoint_path)

def _load_for_resume(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    if not path.exists():
        return None
    checkpoint = load_checkpoint(path)
    differences = _fingerprint_differences(checkpoint.get("fingerprint", {}), fingerprint)
    if differences:
        raise CheckpointError(
            f"{path} was written by another run ({'; '.join(differences)}), so resuming from it would "
            f"mix two runs: delete {path} or choose another checkpoint_dir"
        )
    return checkpoint


def _train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                     config: TrainConfig, device: torch.device, dtype: torch.dtype | None,
                     channels_last: bool, desc: str) -> tuple[float, float, int, float]:
    model.train()
    # Running sums stay on the device: reading them every step would make the CPU wait for the GPU.
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    # The first diverged step and its loss, kept on the device and read every `log_every` steps,
    # so that watching for divergence does not make the CPU wait for the GPU at every step.
    diverged_at = torch.full((), -1, device=device, dtype=torch.long)
    diverged_loss = torch.zeros((), device=device, dtype=torch.float64)
    step_lrs: list[float] = []
    count = 0
    batches = _progress(loader, desc=desc, leave=False, disable=not config.progress)
    steps = len(loader)
    for step, batch in enumerate(batches, 1):
        images = _to_device(batch[0], device, channels_last)
        labels = torch.as_tensor(batch[1]).to(device, non_blocking=True)
        with _autocast(device, dtype):
            logits = model(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        last_lr = optimizer.param_groups[0]["lr"]  # the rate this step used
        scheduler.step()
        step_loss = loss.detach().double()
        total_loss += step_loss * labels.numel()
        correct += (logits.detach().argmax(1) == labels).sum()
        count += labels.numel()
        step_lrs.append(last_lr)
        first = (diverged_at < 0) & ~(step_loss.abs() <= DIVERGED_LOSS)  # NaN compares false: caught too
        diverged_at = torch.where(first, step, diverged_at)
        diverged_loss = torch.where(first, step_loss, diverged_loss)
        if step % config.log_every == 0 or step == steps:
            bad_step = int(diverged_at.item())
            if bad_step >= 0:
                batches.close()
                rate = step_lrs[bad_step - 1]
                raise TrainingDiverged(
                    f"step {bad_step}/{steps}: training diverged (loss {diverged_loss.item():.4g} at learning "
                    f"rate {rate:.3g}); training stopped: lower lr (e.g. lr={config.lr / 10:.3g}) and train again"
                )
            if config.progress and step % config.log_every == 0:
                batches.set_postfix(loss=f"{total_loss.item() / count:.3f}", refresh=False)
    return total_loss.item() / count, correct.item() / count, count, last_lr


def measure_throughput(model: nn.Module, config: TrainConfig, image_size: int, steps: int = 10,
                       num_classes: int = 10) -> float:
    """Training images per second of :func:`train` under ``config``, on a copy of ``model``.

    Runs two epochs of ``steps`` batches of random images: the first pays the one-time costs
    (``torch.compile``, cuDNN's autotuning, the allocator), the second is timed. The data sit in
    memory, so the figure is the model's, not the data pipeline's.

    Example:
        >>> ips = measure_throughput(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)),
        ...                          TrainConfig(batch_size=8, device="cpu"), image_size=8, steps=2)
        >>> ips > 0
        True
    """
    if steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    model = copy.deepcopy(model)
    count = steps * config.batch_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(count, 3, image_size, image_size, generator=generator)
    labels = torch.randint(0, num_classes, (count,), generator=generator)
    # Two epochs on random images are a measurement, not a run worth logging epoch by epoch.
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        history = train(model, TensorDataset(images, labels), None, config.replace(epochs=2, progress=False))
    finally:
        logger.setLevel(level)
    return history.images_per_second[-1]
