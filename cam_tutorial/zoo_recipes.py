"""What makes a zoo model the model it is: one frozen recipe, hashed whole into its cache key.

A :class:`ModelRecipe` holds everything that shapes one model's weights: the network (a builder of
:data:`BUILDERS` and its options), the lab data (:class:`LabRecipe`: split sizes, options and
:data:`cam_tutorial.lab.LAB_VERSION`), the training settings (:class:`TrainingRecipe`) and the
seeds. Everything derives from it: the network (:meth:`~ModelRecipe.network`), the data (its
``lab``'s :meth:`~LabRecipe.dataset`), the training settings (:meth:`~ModelRecipe.train_config`,
whose ``identity`` is the recipe's, so that a run resumes only from a run of the same recipe) and
the cache key (:attr:`~ModelRecipe.key`, a hash of :meth:`~ModelRecipe.identity`); a change to any of
them trains a new model rather than reusing an old one. :func:`cam_tutorial.zoo.recipe` makes the
book's recipes; :func:`cache_in_memory` renders a training set once, as fast as memory allows.

Example:
    >>> from cam_tutorial.zoo import recipe
    >>> type(recipe("resnet18b_gap", "ci").network()).__name__
    'ResNet18B'
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from cam_tutorial import lab as lab_module
from cam_tutorial.lab import FreshEachEpoch, SyntheticShapes
from cam_tutorial.models import ResNet18B, vgg16_fc, vgg16_gap
from cam_tutorial.train import TrainConfig

__all__ = ["ModelRecipe", "LabRecipe", "TrainingRecipe", "BUILDERS", "cache_in_memory"]

logger = logging.getLogger(__name__)

#: Training sets up to this size (float32 images) are rendered once and kept in memory: the lab
#: renders every item on each access, which on two CPU cores costs a fifth of a short run.
IN_MEMORY_BYTES = 1 << 30
#: Larger lab sets up to this size as uint8 images (a quarter of float32's) are rendered once too
#: (e.g. 5,000 images at 224 px: 0.75 GB), normalised on the device by training.
IN_MEMORY_UINT8_BYTES = 3 << 30
#: Seed of every model's initial weights: the GAP and GMP ResNets start from the same weights.
MODEL_SEED = 0
#: Seed of the lab's items (chapters draw their own lab sets with it too).
DATA_SEED = 0
#: Seed of training: shuffling, dropout, the loader's workers.
TRAIN_SEED = 0
#: The networks a recipe can build, by the name its ``builder`` holds.
BUILDERS: dict[str, Callable[..., nn.Module]] = {"ResNet18B": ResNet18B, "vgg16_gap": vgg16_gap,
                                                 "vgg16_fc": vgg16_fc}


@dataclass(frozen=True)
class LabRecipe:
    """A zoo model's lab data: the split sizes, the lab's version, and every option passed to
    :class:`~cam_tutorial.lab.SyntheticShapes` (the other fields: a new lab option is a new field).
    Used in no chapter directly.

    Attributes:
        train_size, val_size, test_size: items in each split.
        version: the lab generator's version these items are (:data:`cam_tutorial.lab.LAB_VERSION`).
        image_size: side of the images in pixels.
        seed: the lab's seed.
        region: where the objects lie (``None``: anywhere; ``"left"``: the left half...).
        objects: the lab's kind, ``"shapes"`` (the book's models) or ``"creatures"``.
        fresh_epochs: 0: training reads the same ``train_size`` images every epoch. ``E > 0``:
            the training split holds ``E * train_size`` images and each of ``E`` epochs reads
            ``train_size`` new ones (:class:`~cam_tutorial.lab.FreshEachEpoch`), so no image is
            seen twice and none can be memorised.

    Example:
        >>> from cam_tutorial.lab import LAB_VERSION
        >>> LabRecipe(40, 20, 20, LAB_VERSION, image_size=32, region="left").dataset("val")
        SyntheticShapes(split='val', length=20, image_size=32, seed=0, region='left')
        >>> fresh = LabRecipe(40, 20, 20, LAB_VERSION, image_size=32, fresh_epochs=3)
        >>> len(fresh.dataset("train")), fresh.training_images(progress=False)
        (120, FreshEachEpoch(SyntheticShapes(split='train', length=120, image_size=32, seed=0, region=None), epoch_size=40))
    """

    train_size: int
    val_size: int
    test_size: int
    version: int
    image_size: int
    seed: int = DATA_SEED
    region: str | None = None
    objects: str = "shapes"
    fresh_epochs: int = 0

    def dataset(self, split: str) -> SyntheticShapes:
        """The ``"train"``, ``"val"`` or ``"test"`` split.

        Raises:
            ValueError: for another split, or when the lab's code is another version than the
                recipe's (its items would not be the ones the recipe names).
        """
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}: use 'train', 'val' or 'test'")
        if self.version != lab_module.LAB_VERSION:
            raise ValueError(f"this recipe names items of lab version {self.version}, but the lab is version "
                             f"{lab_module.LAB_VERSION}: make the recipe anew (zoo.recipe(name, preset))")
        length = self.train_size * max(1, self.fresh_epochs) if split == "train" else getattr(self, f"{split}_size")
        return SyntheticShapes(split, length=length, image_size=self.image_size, seed=self.seed, region=self.region,
                               objects=self.objects)

    def training_images(self, progress: bool = True, num_workers: int = 0) -> Dataset:
        """The training split as :func:`~cam_tutorial.train.train` reads it: ``fresh_epochs``
        epochs of new images, or the fixed set rendered once (:func:`cache_in_memory`)."""
        train_split = self.dataset("train")
        if self.fresh_epochs:
            return FreshEachEpoch(train_split, self.train_size)
        return cache_in_memory(train_split, progress, num_workers=num_workers)


@dataclass(frozen=True)
class TrainingRecipe:
    """The training settings that shape the weights: :data:`~cam_tutorial.train.FINGERPRINT_FIELDS`
    of a :class:`~cam_tutorial.train.TrainConfig` (device, precision, workers do not).
    Used in no chapter directly."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    label_smoothing: float
    pct_start: float
    seed: int

    @classmethod
    def of(cls, config: TrainConfig) -> "TrainingRecipe":
        """The weight-shaping settings of ``config``."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class ModelRecipe:
    """Everything that shapes one zoo model's weights under one preset; the cache key, the
    training run's resume fingerprint and its :class:`~cam_tutorial.train.TrainConfig` derive
    from it and from nothing else. Made by :func:`cam_tutorial.zoo.recipe`.
    Used in no chapter directly.

    Attributes:
        name: the zoo name.
        preset: the preset's name (the preset's sizes are in the other fields).
        builder: the network's builder, a key of :data:`BUILDERS`.
        options: the builder's keyword arguments as ``(name, value)`` pairs, sorted by name.
        lab: the training, validation and test data.
        training: the settings of the training run.
        model_seed: seed of the initial weights.
        start: the recipe of the model whose trained weights this one starts from, or ``None``
            for random weights. Under a creatures preset (``pretrain_epochs > 0``) every zoo
            model starts from a network trained on the shapes lab first, as the paper's networks
            start from ImageNet weights: the creatures' class parts are the shapes' polygons, and
            from random weights the GMP twin stayed at chance for the first half of a 16-epoch run.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> from cam_tutorial.zoo import recipe
        >>> r = recipe("vgg16_fc_left", get_preset("ci"))
        >>> r.builder, r.lab.region, r.training.lr == get_preset("ci").lr / 4
        ('vgg16_fc', 'left', True)
        >>> dict(r.options)
        {'batch_norm': True, 'image_size': 64, 'num_classes': 10, 'width': 8}
        >>> r.key == recipe("vgg16_fc_left", get_preset("ci")).key, r.key.startswith("vgg16_fc_left-ci-")
        (True, True)
    """

    name: str
    preset: str
    builder: str
    options: tuple[tuple[str, Any], ...]
    lab: LabRecipe
    training: TrainingRecipe
    model_seed: int = MODEL_SEED
    start: ModelRecipe | None = None

    def network(self) -> nn.Module:
        """The network with random weights drawn from ``model_seed`` (this seeds torch's global
        generator, as :func:`torch.manual_seed` does); what trained weights are loaded into."""
        torch.manual_seed(self.model_seed)
        return BUILDERS[self.builder](**dict(self.options))

    def train_config(self, **run: Any) -> TrainConfig:
        """The :class:`~cam_tutorial.train.TrainConfig` of this model's training run: the recipe's
        settings and identity, plus ``run``: settings that do not shape the weights (``device``,
        ``progress``, ``amp``, ``num_workers``, ``eval_batch_size``...).

        Raises:
            ValueError: when ``run`` sets a weight-shaping field (change the recipe instead).
        """
        owned = sorted(set(run) & ({f.name for f in fields(TrainingRecipe)} | {"identity"}))
        if owned:
            raise ValueError(f"{', '.join(owned)} belong to the recipe: make another one with "
                             "dataclasses.replace(recipe, training=...) instead")
        return TrainConfig(**asdict(self.training), identity=self.identity(), **run)

    def identity(self) -> dict[str, Any]:
        """The recipe as a JSON-able dict (tuples as lists), the network's fields under
        ``architecture``; ``architecture.network`` is a digest of the built network's class and
        tensor shapes, so that a change to a builder's code that changes them changes the identity too."""
        return json.loads(json.dumps({
            "name": self.name,
            "preset": self.preset,
            "architecture": {"builder": self.builder, "options": dict(self.options), "network": self._network_digest()},
            # fresh_epochs only where it is set, so that the keys of models trained on a fixed set stay as they were
            "lab": {k: v for k, v in asdict(self.lab).items() if k != "fresh_epochs" or v},
            "training": asdict(self.training),
            "model_seed": self.model_seed,
            # only where there is one, so that the keys of models trained from scratch stay as they were
            **({"start": self.start.identity()} if self.start is not None else {}),
        }))

    @property
    def key(self) -> str:
        """The cache key, ``<name>-<preset>-<12 hex digits of the identity's hash>``: the file
        name of a shipped checkpoint and the cache entry's folder."""
        # No pixels: the lab's version and options are the data's identity, and a key must not
        # depend on how this machine's libraries render (a shipped checkpoint would go stale on
        # another platform). That the version is bumped whenever the pixels change is tested
        # (tests/test_zoo.py pins a few items' bytes per LAB_VERSION).
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.name}-{self.preset}-{digest}"

    def _network_digest(self) -> str:
        """A digest of the network's class and its tensors' names and shapes, built on the meta device
        (no memory, no draws from the generators). Not its module tree's ``repr``: that may change
        with PyTorch's version, and a key must not (the resume fingerprint, on one machine, has it)."""
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            model = BUILDERS[self.builder](**dict(self.options))
        shapes = [type(model).__name__] + [[name, list(t.shape)] for name, t in model.state_dict().items()]
        return hashlib.sha256(json.dumps(shapes).encode()).hexdigest()[:16]


def cache_in_memory(dataset: Dataset, progress: bool = True, max_bytes: int | None = None,
                    max_uint8_bytes: int | None = None, num_workers: int = 0) -> Dataset:
    """The training set as fast as memory allows: rendered once, or rendered lean on every access.
    Used in chapter 3, and the appendix.

    In order: the float32 images and labels in a ``TensorDataset`` if they fit in ``max_bytes``
    (the ``ci`` and ``cpu`` models are trained on exactly these); for the lab, else its uint8
    :meth:`~cam_tutorial.lab.SyntheticShapes.training_view` rendered once into a
    ``TensorDataset`` if that fits in ``max_uint8_bytes`` (a quarter of the bytes; training
    normalises it on the device to the same values); else that view itself, rendered on every
    access by the loader's workers without the masks and boxes training never reads; any other
    dataset that does not fit is returned as it is.

    Args:
        dataset: a dataset of ``(image, label, ...)`` items.
        progress: a progress bar while rendering.
        max_bytes: the largest float32 cache (default :data:`IN_MEMORY_BYTES`).
        max_uint8_bytes: the largest uint8 cache (0: never; default :data:`IN_MEMORY_UINT8_BYTES`).
        num_workers: processes that render the uint8 cache (0: this one).

    Example:
        >>> from cam_tutorial.lab import SyntheticShapes
        >>> cached = cache_in_memory(SyntheticShapes("val", length=4, image_size=32), progress=False)
        >>> type(cached).__name__, len(cached), cached[0][0].dtype
        ('TensorDataset', 4, torch.float32)
        >>> lean = cache_in_memory(SyntheticShapes("val", length=4, image_size=32), False, max_bytes=0)
        >>> type(lean).__name__, lean[0][0].dtype
        ('TensorDataset', torch.uint8)
    """
    max_bytes = IN_MEMORY_BYTES if max_bytes is None else max_bytes
    max_uint8_bytes = IN_MEMORY_UINT8_BYTES if max_uint8_bytes is None else max_uint8_bytes
    first = dataset[0][0]
    if len(dataset) * first.numel() * 4 <= max_bytes:  # type: ignore[arg-type]
        images = torch.empty(len(dataset), *first.shape)  # type: ignore[arg-type]
        labels = torch.empty(len(dataset), dtype=torch.long)  # type: ignore[arg-type]
        for i in tqdm(range(len(dataset)), desc="rendering the lab", leave=False, disable=not progress):
            image, label, *_ = dataset[i]
            images[i], labels[i] = image, label
        return TensorDataset(images, labels)
    if not isinstance(dataset, SyntheticShapes):
        return dataset
    view = dataset.training_view()
    if len(dataset) * first.numel() > max_uint8_bytes:
        logger.info("%s does not fit in %.1f GB as uint8: rendering it on every access", dataset,
                    max_uint8_bytes / 1e9)
        return view
    size = dataset.image_size
    images = torch.empty(len(dataset), size, size, 3, dtype=torch.uint8)
    labels = torch.empty(len(dataset), dtype=torch.long)
    loader = DataLoader(view, batch_size=64, num_workers=num_workers, shuffle=False)
    done = 0
    for batch_images, batch_labels in tqdm(loader, desc="rendering the lab (uint8)", leave=False,
                                           disable=not progress):
        images[done:done + len(batch_labels)], labels[done:done + len(batch_labels)] = batch_images, batch_labels
        done += len(batch_labels)
    cached = TensorDataset(images, labels)
    cached.normalize_uint8 = view.normalize_uint8  # type: ignore[attr-defined]  # how training reads them
    return cached
