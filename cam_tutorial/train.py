"""Training that uses the GPU well and survives being interrupted.

One function, :func:`train`, runs the loop every chapter needs:

* AdamW with a one-cycle learning rate (warm up, then cosine down), which reaches a good
  model in few epochs;
* mixed precision on a GPU: bfloat16 where the GPU supports it, else float16 with a
  :class:`torch.amp.GradScaler` (e.g. Colab's T4); float32 on the CPU;
* channels-last memory layout and, optionally, :func:`torch.compile`;
* a :class:`~torch.utils.data.DataLoader` with workers and pinned memory on a GPU; batches of
  uint8 images ``(B, H, W, 3)`` are normalised on the device by the dataset's own
  ``normalize_uint8`` (the lab's :meth:`~cam_tutorial.lab.SyntheticShapes.training_view` gives
  exactly the lab's float values), a quarter of the bytes to load;
* a checkpoint after every epoch, written atomically. Calling :func:`train` again with the
  same ``checkpoint_dir`` resumes from the last complete epoch with the model, optimiser,
  schedule, scaler, history and every random state restored, so that on the CPU an
  interrupted and resumed run ends with exactly the weights of an uninterrupted one, whatever
  the number of loader workers before and after. A checkpoint of another model (its module
  tree included, e.g. GAP vs GMP), other data, other settings or another ``identity`` (e.g.
  the zoo's recipe of the model) is refused, not resumed, naming what differs (the files and
  their safe loading: :mod:`cam_tutorial.checkpoints`);
* a divergence guard: a non-finite or exploding loss stops training with
  :class:`TrainingDiverged`, naming the step, the loss and the learning rate.

Evaluation (:func:`~cam_tutorial.evaluation.evaluate`) and the device and precision helpers
training shares with it are in :mod:`cam_tutorial.evaluation`.

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

import copy
import dataclasses
import logging
import math
import numbers
import operator
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset
from tqdm.auto import tqdm

from cam_tutorial.checkpoints import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    atomic_save,
    check_writable_folder,
    json_identity,
    load_checkpoint,
    remove_stale_temporaries,
    restore_rng_state,
    rng_state,
    run_fingerprint,
    seed_everything,
)
from cam_tutorial.config import Preset, default_device
from cam_tutorial.evaluation import (
    AMP_CHOICES,
    batch_to_device,
    default_workers,
    evaluate,
    make_loader,
    progress_bar,
    resolve_precision,
)

__all__ = [
    "FINGERPRINT_FIELDS",
    "TrainConfig",
    "History",
    "TrainingDiverged",
    "train",
    "DIVERGED_LOSS",
    "measure_throughput",
]

logger = logging.getLogger(__name__)

# The fields that change what training computes; a checkpoint written under other values is
# not this run's, so resuming from it would silently mix two runs.
FINGERPRINT_FIELDS = ("epochs", "batch_size", "lr", "weight_decay", "label_smoothing", "pct_start", "seed")
#: A training loss above this (in nats; chance on 1000 classes is 6.9) means the run diverged:
#: no run comes back from logits thousands apart.
DIVERGED_LOSS = 1e4


class TrainingDiverged(RuntimeError):
    """The training loss became non-finite or exploded; the message names the step, the loss and
    the learning rate.
    Used in no chapter directly."""


@dataclass
class TrainConfig:
    """How to train; every field has a default that suits the book's lab.
    Used in the appendix.

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
            :func:`~cam_tutorial.evaluation.inference_channels_last` for why not on the CPU).
        compile: wrap the model in :func:`torch.compile` (pays off on long GPU runs).
        seed: seeds the Python, NumPy and torch generators and the shuffling.
        device: ``"cpu"``, ``"cuda"``...; ``None`` picks CUDA, then MPS, then the CPU.
        eval_batch_size: batch size for validation.
        log_every: batches between progress-bar refreshes of the running loss (each refresh
            waits for the GPU).
        progress: show tqdm progress bars.
        identity: what else makes this run the run it is, as a JSON-able dict (the zoo passes its
            :class:`~cam_tutorial.zoo_recipes.ModelRecipe`'s ``identity()``: architecture, data and lab
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
        self.identity = json_identity(self.identity)
        if self.amp not in AMP_CHOICES:
            raise ValueError(f"unknown amp {self.amp!r}: use one of {', '.join(map(repr, AMP_CHOICES))}")
        if self.channels_last not in (True, False, "auto"):
            raise ValueError(f"channels_last must be True, False or 'auto', got {self.channels_last!r}")
        # Whole numbers of an integer type (True, 1.5 and "3" are refused: a fractional epoch count
        # would fail deep inside the schedule), each at least its least value.
        for name, least in (("epochs", 1), ("batch_size", 1), ("eval_batch_size", 1), ("log_every", 1),
                            ("seed", None), ("num_workers", 0)):
            value = getattr(self, name)
            if value is None and name == "num_workers":
                continue
            if isinstance(value, bool) or not hasattr(type(value), "__index__"):
                raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__}): e.g. {name}=2")
            if least is not None and value < least:
                rule = "a positive integer" if least == 1 else "0 or more (or None)"
                raise ValueError(f"{name} must be {rule}, got {value!r}: e.g. {name}={least}")
            setattr(self, name, operator.index(value))
        for name, fits, rule, example in (
                ("lr", lambda value: value > 0, "be positive", ": e.g. lr=4e-3"),
                ("weight_decay", lambda value: value >= 0, "be 0 or more", ": e.g. weight_decay=5e-4"),
                ("label_smoothing", lambda value: 0 <= value < 1, "lie in [0, 1)", ""),
                ("pct_start", lambda value: 0 < value < 1, "lie in (0, 1)", "")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            setattr(self, name, float(value))
            if not fits(float(value)):
                raise ValueError(f"{name} must {rule}, got {float(value)!r}{example}")

    @classmethod
    def from_preset(cls, preset: Preset, **changes: Any) -> "TrainConfig":
        """The training settings of a preset (epochs, batch size, learning rate), plus ``changes``.

        Example:
            >>> from cam_tutorial.config import get_preset
            >>> TrainConfig.from_preset(get_preset("ci"), seed=1).seed
            1
        """
        return cls(**{"epochs": preset.epochs, "batch_size": preset.batch_size, "lr": preset.lr,
                      "eval_batch_size": preset.eval_batch_size, **changes})

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclass
class History:
    """What happened in each epoch; lists are aligned, one entry per completed epoch.
    Used in no chapter directly.

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


# --------------------------------------------------------------------------- training


def train(model: nn.Module, train_set: Dataset, val_set: Dataset | None, config: TrainConfig | None = None,
          checkpoint_dir: str | os.PathLike | None = None, *, stop_after: int | None = None) -> History:
    """Train ``model`` in place with AdamW and a one-cycle schedule; validate after every epoch.
    Used in chapters 1, 2, 3, 4, 5, 6, 7 and 8, and the appendix.

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
        ~cam_tutorial.checkpoints.CheckpointError: when ``checkpoint_dir`` holds an unreadable checkpoint or one of
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
    run = _Run(model, train_set, config, checkpoint_dir)
    path = run.checkpoint_path
    checkpoint = load_checkpoint(path, run.fingerprint) if path is not None and path.exists() else None
    if checkpoint is not None and checkpoint["history"]["finished"]:
        model.load_state_dict(checkpoint["model"])
        model.eval()
        logger.info("%s holds a finished run of %d epochs: loaded it, nothing to train", path, checkpoint["epoch"])
        return History(**checkpoint["history"])
    if path is not None:
        # Before the first epoch, not after it: a folder that cannot take the checkpoint would
        # otherwise cost an epoch of training before saying so.
        check_writable_folder(path.parent, "choose another checkpoint_dir")
        remove_stale_temporaries(path)
    history = run.start(checkpoint)
    start_epoch = history.starts[-1]
    end_epoch = config.epochs if stop_after is None else min(config.epochs, start_epoch + stop_after)
    with tqdm(range(start_epoch, end_epoch), desc="epochs", initial=start_epoch, total=config.epochs,
              disable=not config.progress) as epochs_bar:  # closed however the loop ends
        for epoch in epochs_bar:
            _run_epoch(run, epoch, train_set, val_set, history)
            epochs_bar.set_postfix(val_acc=f"{history.val_acc[-1]:.3f}", refresh=False)
            if path is not None:
                run.save(history)
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


class _Run:
    """One call of :func:`train`: its settings, where and how it computes, what a checkpoint saves
    (the model, the optimiser, its schedule, the loss scaler, the shuffling) and where."""

    def __init__(self, model: nn.Module, train_set: Dataset, config: TrainConfig,
                 checkpoint_dir: str | os.PathLike | None) -> None:
        """Resolve the settings, move ``model`` to its device and layout, and make a fresh optimiser."""
        self.config, self.model = config, model
        self.device = torch.device(config.device) if config.device is not None else default_device()
        self.dtype = resolve_precision(config.amp, self.device)
        self.channels_last = (self.device.type == "cuda" if config.channels_last == "auto"
                              else bool(config.channels_last))
        self.num_workers = default_workers(self.device) if config.num_workers is None else config.num_workers
        self.checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
        self.fingerprint = run_fingerprint(model, train_set, {name: getattr(config, name) for name in
                                                              (*FINGERPRINT_FIELDS, "identity")})
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.forward_model = torch.compile(model) if config.compile else model
        # Decay only matrices and kernels; decaying norm scales and biases only hurts.
        trained = [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in trained if p.ndim > 1], "weight_decay": config.weight_decay},
                  {"params": [p for p in trained if p.ndim <= 1], "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW(groups, lr=config.lr, fused=self.device.type == "cuda")
        # drop_last: equal batches keep batch-norm statistics honest and shapes static for compile.
        total_steps = config.epochs * (len(train_set) // config.batch_size)  # type: ignore[arg-type]
        pct_start = config.pct_start
        if pct_start * total_steps == 1.0:
            pct_start *= 1.001  # OneCycleLR divides by zero when the warm-up is exactly one step
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=config.lr,
                                                             total_steps=total_steps, pct_start=pct_start)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        self.shuffle_generator = torch.Generator()

    def start(self, checkpoint: dict[str, Any] | None) -> History:
        """A fresh run seeds every generator; a resumed one restores the checkpoint's state."""
        if checkpoint is None:
            seed_everything(self.config.seed)
            self.shuffle_generator.manual_seed(self.config.seed)
            history = History()
        else:
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(checkpoint["scheduler"])
            if checkpoint["scaler"]:  # empty when the scaler was off (float32 or bfloat16)
                self.scaler.load_state_dict(checkpoint["scaler"])
            restore_rng_state(checkpoint["rng"], self.shuffle_generator)
            history = History(**checkpoint["history"])
            logger.info("resuming from %s after epoch %d of %d", self.checkpoint_path, history.epochs_done,
                        self.config.epochs)
        history.starts.append(history.epochs_done)
        history.device = str(self.device)
        history.precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]
        history.channels_last, history.compiled = self.channels_last, bool(self.config.compile)
        return history

    def save(self, history: History) -> None:
        """Write ``last.pt`` after an epoch: everything a resumed run needs to go on exactly."""
        atomic_save({"format": CHECKPOINT_FORMAT, "fingerprint": self.fingerprint, "epoch": history.epochs_done,
                     "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                     "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                     "rng": rng_state(self.shuffle_generator), "history": dataclasses.asdict(history),
                     "config": dataclasses.asdict(self.config)}, self.checkpoint_path)


def _run_epoch(run: _Run, epoch: int, train_set: Dataset, val_set: Dataset | None, history: History) -> None:
    """Train one epoch, validate, and append the epoch's numbers to ``history``."""
    config = run.config
    started = time.perf_counter()
    _set_epoch(train_set, epoch)
    # The workers' seeds depend on the epoch only, so a resumed epoch gets the same ones.
    loader = make_loader(train_set, config.batch_size, run.device, run.num_workers, drop_last=True,
                         sampler=RandomSampler(train_set, generator=run.shuffle_generator),  # type: ignore[arg-type]
                         seed=config.seed * 100_003 + epoch)
    try:
        train_loss, train_acc, images, last_lr = train_one_epoch(run.forward_model, loader, run,
                                                                 desc=f"epoch {epoch + 1}/{config.epochs}")
    except TrainingDiverged as exc:
        kept = (f"; the last good checkpoint, after epoch {epoch}, stays in {run.checkpoint_path}"
                if run.checkpoint_path is not None and epoch > 0 else "")
        raise TrainingDiverged(f"epoch {epoch + 1}/{config.epochs}, {exc}{kept}") from None
    train_seconds = time.perf_counter() - started
    if val_set is not None:
        val_loss, val_acc = evaluate(run.forward_model, val_set, config.eval_batch_size, run.device,
                                     num_workers=run.num_workers, amp=config.amp,
                                     channels_last=run.channels_last, progress=config.progress)
    else:
        val_loss = val_acc = float("nan")
    seconds = time.perf_counter() - started
    for name, value in dict(epoch=epoch + 1, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                            val_acc=val_acc, lr=last_lr, epoch_seconds=seconds,
                            images_per_second=images / train_seconds).items():
        getattr(history, name).append(value)
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


def train_one_epoch(model: nn.Module, loader: DataLoader, run: _Run, desc: str) -> tuple[float, float, int, float]:
    """One pass over ``loader`` (:func:`train`'s inner loop): ``(mean loss, accuracy, images, last
    learning rate)``; :class:`TrainingDiverged` at the first non-finite or exploding loss."""
    config, device, optimizer, scaler = run.config, run.device, run.optimizer, run.scaler
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
    batches = progress_bar(loader, desc=desc, leave=False, disable=not config.progress)
    steps = len(loader)
    for step, batch in enumerate(batches, 1):
        images = batch_to_device(batch[0], device, run.channels_last, loader.dataset)
        labels = torch.as_tensor(batch[1]).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=run.dtype, enabled=run.dtype is not None):
            logits = model(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        last_lr = optimizer.param_groups[0]["lr"]  # the rate this step used
        run.scheduler.step()
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
    Used in the appendix.

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
