"""The book's trained models, trained once per preset and cached.

``trained_model("resnet18b_gap")`` gives the same network in every chapter: trained
deterministically (fixed seeds) on the lab's training split at the preset's sizes, validated on
its validation split and scored on its test split. The first call trains it (a progress bar
shows how long); later calls load it from the cache in well under a second.

Where the weights come from, in order:

1. ``cam_tutorial/checkpoints/`` inside the package: small checkpoints (about 3 MB each) shipped
   for the ``ci`` and ``cpu`` presets, so that continuous integration need not train, and a
   reader without a GPU (whose default preset is ``cpu``) gets the book's own models at once;
2. the cache folder: ``cache_dir``, else ``$CAM_TUTORIAL_CACHE``, else ``~/.cache/cam_tutorial``.
   On Colab, point it at Google Drive (``/content/drive/MyDrive/cam_tutorial``) so that trained
   models, and the per-epoch checkpoints of a run in progress, outlive the session;
3. training, which writes per-epoch checkpoints to the cache (a run killed half-way resumes
   from its last complete epoch) and then the final weights, deleting the per-epoch checkpoint
   (it holds the optimiser's state too: 1.6 GB for VGG16-FC at the ``gpu`` preset).

Each model under each preset has one :class:`ModelRecipe` (:func:`recipe`): its architecture
and options, the lab's split sizes, options and version (:data:`cam_tutorial.lab.LAB_VERSION`),
the training settings and the seeds. Everything derives from it: the network
(:meth:`ModelRecipe.build`), the data (:meth:`~ModelRecipe.dataset`), the training settings
(:meth:`~ModelRecipe.train_config`, whose ``identity`` is the recipe's, so that a run resumes only
from a run of the same recipe) and the cache key (:attr:`~ModelRecipe.key`, a hash of
:meth:`~ModelRecipe.identity`); a change to any of them trains a new model rather than reusing an
old one. A shipped checkpoint whose key is not the recipe's is ignored with a logged warning
that says what differs, and the model is trained into the cache.

A chapter may train a zoo model by hand (chapter 3 does, to show resuming): :func:`run_folder`
is the entry's checkpoint folder, :func:`train_config` its settings, and :func:`store_run` makes
the finished run the entry's model. On Colab, :func:`cam_tutorial.book.colab.use_drive_cache` puts
the whole cache on Google Drive.

Several processes may ask for the same model at once (the book's notebooks run in parallel in
CI): a file lock lets one of them train while the others wait, then read its result. Files are
written atomically, so no process ever reads half a file. The lock lives in the machine's
temporary folder, not next to the weights, because network drives (e.g. Google Drive's) may not
support file locks: in a folder of this user's own (``cam_tutorial-locks-<uid>``, mode ``0700``,
checked without following links), since a folder open to every user lets any of them plant links
there. The weights get the umask's mode, so several users can share one cache; each takes its
own locks, so two users who ask for the same missing model at once may both train it (to the
same weights: files are replaced atomically, never half written).

A cached ``final.pt`` is used only when it is the entry's model (its stored name and cache key
are checked; it also stores the recipe's identity, so that a mismatch can say what differs), and
every file is read with ``weights_only=True``.

Example:
    >>> from cam_tutorial.zoo import available_models
    >>> available_models()
    ['resnet18b_gap', 'resnet18b_gmp', 'vgg16_gap_left', 'vgg16_fc_left']
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from filelock import FileLock
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from cam_tutorial import lab as lab_module
from cam_tutorial.config import PRESETS, Preset, default_device, get_preset
from cam_tutorial.lab import CLASS_NAMES, SyntheticShapes
from cam_tutorial.models import ResNet18B, vgg16_fc, vgg16_gap
from cam_tutorial.checkpoints import (
    CHECKPOINT_NAME,
    CheckpointError,
    atomic_save,
    check_format,
    check_writable_folder,
    identity_differences,
    remove_stale_temporaries,
    safe_load,
)
from cam_tutorial.evaluation import evaluate, model_device
from cam_tutorial.train import History, TrainConfig, train

__all__ = [
    "ModelRecipe",
    "Architecture",
    "LabRecipe",
    "TrainingRecipe",
    "recipe",
    "BUILDERS",
    "MODEL_SEED",
    "DATA_SEED",
    "TRAIN_SEED",
    "ModelInfo",
    "available_models",
    "trained_model",
    "model_info",
    "model_dataset",
    "training_images",
    "build_model",
    "preset_recipes",
    "START_SUFFIX",
    "train_config",
    "shipped_presets",
    "presets_to_compare",
    "cache_in_memory",
    "run_folder",
    "store_run",
    "default_cache_dir",
    "CACHE_ENV",
    "PACKAGED_DIR",
]

logger = logging.getLogger(__name__)

#: Environment variable naming the cache folder.
CACHE_ENV = "CAM_TUTORIAL_CACHE"
#: Checkpoints shipped inside the package (the ``ci`` and ``cpu`` presets').
PACKAGED_DIR = Path(__file__).resolve().parent / "checkpoints"
_FORMAT = "cam_tutorial.zoo/1"
# What every trained-model file holds.
_FINAL_KEYS = ("format", "name", "preset", "key", "region", "model", "history", "test_loss", "test_acc")
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
#: The networks a recipe can build, by the name its ``architecture.builder`` holds.
BUILDERS: dict[str, Callable[..., nn.Module]] = {"ResNet18B": ResNet18B, "vgg16_gap": vgg16_gap,
                                                 "vgg16_fc": vgg16_fc}
#: Added to a model's name for the shapes-trained network it starts from under a creatures preset
#: (e.g. ``resnet18b_gap_shapes``): the start has its own key, file and cache entry.
START_SUFFIX = "_shapes"
# Evaluation batch of a start's test score (a chapter size, outside every recipe).
_START_EVAL_BATCH = 128
# LabRecipe's fields that are not SyntheticShapes options.
_LAB_SIZES = ("train_size", "val_size", "test_size")
_LAB_NOT_OPTIONS = (*_LAB_SIZES, "version", "fresh_epochs")


@dataclass(frozen=True)
class Architecture:
    """Which network to build, and the builder's keyword arguments.

    Attributes:
        builder: a key of :data:`BUILDERS`.
        options: the builder's keyword arguments as ``(name, value)`` pairs, sorted by name.

    Example:
        >>> arch = Architecture.of("ResNet18B", num_classes=10, width=2, pooling="max")
        >>> arch.kwargs, type(arch.build()).__name__
        ({'num_classes': 10, 'pooling': 'max', 'width': 2}, 'ResNet18B')
    """

    builder: str
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, builder: str, **options: Any) -> "Architecture":
        """The architecture ``builder(**options)``."""
        if builder not in BUILDERS:
            raise ValueError(f"unknown builder {builder!r}: use one of {', '.join(map(repr, BUILDERS))}")
        return cls(builder, tuple(sorted(options.items())))

    @property
    def kwargs(self) -> dict[str, Any]:
        """The builder's keyword arguments as a dict."""
        return dict(self.options)

    def build(self) -> nn.Module:
        """The network, initialised from torch's global generator (seed it first)."""
        return BUILDERS[self.builder](**self.kwargs)


@dataclass(frozen=True)
class LabRecipe:
    """A zoo model's lab data: the split sizes, the lab's version, and every option passed to
    :class:`~cam_tutorial.lab.SyntheticShapes` (the other fields: a new lab option is a new field).

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

    def options(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~cam_tutorial.lab.SyntheticShapes` (all but sizes and version)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _LAB_NOT_OPTIONS}

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
        return SyntheticShapes(split, length=length, **self.options())

    def training_images(self, progress: bool = True, num_workers: int = 0) -> Dataset:
        """The training split as :func:`~cam_tutorial.train.train` reads it: ``fresh_epochs``
        epochs of new images, or the fixed set rendered once (:func:`cache_in_memory`)."""
        train_split = self.dataset("train")
        if self.fresh_epochs:
            return train_split.fresh_each_epoch(self.train_size)
        return cache_in_memory(train_split, progress, num_workers=num_workers)

    def identity(self) -> dict[str, Any]:
        """The fields as a dict; ``fresh_epochs`` only where it is set, so that the keys of models
        trained on a fixed set stay as they were."""
        found = asdict(self)
        if not self.fresh_epochs:
            del found["fresh_epochs"]
        return found


@dataclass(frozen=True)
class TrainingRecipe:
    """The training settings that shape the weights: :data:`~cam_tutorial.train.FINGERPRINT_FIELDS`
    of a :class:`~cam_tutorial.train.TrainConfig` (device, precision, workers do not)."""

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
    from it and from nothing else. Made by :func:`recipe`.

    Attributes:
        name: the zoo name.
        preset: the preset's name (the preset's sizes are in the other fields).
        architecture: the network and its options.
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
        >>> r = recipe("vgg16_fc_left", get_preset("ci"))
        >>> r.architecture.builder, r.lab.region, r.training.lr == get_preset("ci").lr / 4
        ('vgg16_fc', 'left', True)
        >>> r.key == recipe("vgg16_fc_left", get_preset("ci")).key, r.key.startswith("vgg16_fc_left-ci-")
        (True, True)
    """

    name: str
    preset: str
    architecture: Architecture
    lab: LabRecipe
    training: TrainingRecipe
    model_seed: int = MODEL_SEED
    start: ModelRecipe | None = None

    def network(self) -> nn.Module:
        """The network with random weights drawn from ``model_seed`` (this seeds torch's global
        generator, as :func:`torch.manual_seed` does); what trained weights are loaded into."""
        torch.manual_seed(self.model_seed)
        return self.architecture.build()

    def build(self, cache_dir: str | os.PathLike | None = None, device: str | torch.device | None = None,
              progress: bool = True) -> nn.Module:
        """The network as training starts it: :meth:`network`, then, when the recipe has a
        ``start``, that model's trained weights (from the package or the cache in ``cache_dir``,
        trained first if neither has them)."""
        model = self.network()
        if self.start is not None:
            stored, _, path = _stored_model(self.start, _START_EVAL_BATCH, self.start.network(),
                                            _entry(self.start, cache_dir), device, progress)
            _load_weights(model, stored, path)
        return model

    def dataset(self, split: str) -> SyntheticShapes:
        """The lab's ``"train"``, ``"val"`` or ``"test"`` split (see :meth:`LabRecipe.dataset`)."""
        return self.lab.dataset(split)

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
        """The recipe as a JSON-able dict (tuples as lists); ``architecture.network`` is a digest
        of the built network's class and tensor shapes, so that a change to a builder's code that
        changes them changes the identity too."""
        return json.loads(json.dumps({
            "name": self.name,
            "preset": self.preset,
            "architecture": {"builder": self.architecture.builder, "options": self.architecture.kwargs,
                             "network": _network_digest(self.architecture)},
            "lab": self.lab.identity(),
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


def _network_digest(architecture: Architecture) -> str:
    """A digest of the network's class and its tensors' names and shapes, built on the meta device
    (no memory, no draws from the generators). Not its module tree's ``repr``: that may change
    with PyTorch's version, and a key must not (the resume fingerprint, on one machine, has it)."""
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        model = architecture.build()
    shapes = [type(model).__name__] + [[name, list(t.shape)] for name, t in model.state_dict().items()]
    return hashlib.sha256(json.dumps(shapes).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _ZooModel:
    """One zoo model's own facts; the preset gives the sizes."""

    builder: str
    options: Callable[[Preset], dict[str, Any]]
    region: str | None
    description: str
    #: The model's peak learning rate as a multiple of the preset's.
    lr_scale: float = 1.0
    #: Under a creatures preset, the model whose shapes-trained weights this one starts from
    #: (``None``: its own). The GMP twin starts where the GAP twin does, so the twins share
    #: their initial weights.
    start_from: str | None = None
    #: Whether its start trains at the preset's ``pretrain_image_size`` (the fully convolutional
    #: ResNets: their weights fit any size) rather than at its own size (the VGG16 pair of
    #: chapter 1: VGG16-FC's head is sized for one image size, and the pair is trained alike).
    small_start: bool = False
    #: Whether, under a creatures preset, every epoch reads new lab images (``LabRecipe.fresh_epochs``).
    #: The twins need it: trained on one fixed set of 6,000 images under ``cpu``, both reached
    #: 99.9% train accuracy and GMP generalised worse (89.6% vs 95.2% test accuracy), so their gap
    #: was over-fitting. The VGG16 pair of chapter 1 asks where, not how well.
    fresh_images: bool = False


# The only place each zoo model's facts live.
_MODELS: dict[str, _ZooModel] = {
    "resnet18b_gap": _ZooModel(
        "ResNet18B", lambda p: dict(width=p.width, pooling="avg"), None,
        "ResNet18B with global average pooling: the book's CAM model", small_start=True,
        fresh_images=True),
    "resnet18b_gmp": _ZooModel(
        "ResNet18B", lambda p: dict(width=p.width, pooling="max"), None,
        "the same ResNet18B with global max pooling (same seed, same data)", start_from="resnet18b_gap",
        small_start=True, fresh_images=True),
    "vgg16_gap_left": _ZooModel(
        "vgg16_gap", lambda p: dict(width=p.vgg_width, batch_norm=True), "left",
        "VGG16-GAP (batch norm) trained on objects confined to the left half"),
    "vgg16_fc_left": _ZooModel(
        "vgg16_fc", lambda p: dict(width=p.vgg_width, image_size=p.image_size, batch_norm=True), "left",
        "VGG16 with its FC head (batch norm) trained on objects confined to the left half",
        # At the preset's rate (AdamW, 4e-3) the three wide FC layers never leave chance (measured:
        # 10.0% validation accuracy after 6 epochs under `cpu`); a quarter of it trains them.
        lr_scale=0.25),
}


def recipe(name: str, preset: Preset | None = None) -> ModelRecipe:
    """The recipe of zoo model ``name`` under ``preset`` (default :func:`~cam_tutorial.config.get_preset`).

    Only the preset's model sizes enter it (image size, widths, split sizes, epochs, batch
    size, learning rate); its chapter sizes (probe sizes, ``sanity_images``...) do not.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> r = recipe("resnet18b_gmp", get_preset("ci"))
        >>> r.architecture.kwargs["pooling"], r.lab.train_size, r.training.epochs
        ('max', 3000, 6)
    """
    model = _zoo_model(name)
    preset = preset or get_preset()
    config = TrainConfig.from_preset(preset, lr=preset.lr * model.lr_scale, seed=TRAIN_SEED)
    start = None
    creatures = preset.objects != "shapes"
    if creatures and preset.pretrain_epochs > 0:
        source = model.start_from or name
        size = preset.pretrain_image_size if _zoo_model(source).small_start and preset.pretrain_image_size \
            else preset.image_size
        shapes = preset.replace(objects="shapes", epochs=preset.pretrain_epochs, pretrain_epochs=0,
                                pretrain_image_size=0, image_size=size)
        start = replace(recipe(source, shapes), name=f"{source}{START_SUFFIX}")
    return ModelRecipe(
        name=name, preset=preset.name,
        architecture=Architecture.of(model.builder, num_classes=len(CLASS_NAMES), **model.options(preset)),
        lab=LabRecipe(train_size=preset.train_size, val_size=preset.val_size, test_size=preset.test_size,
                      version=lab_module.LAB_VERSION, image_size=preset.image_size, seed=DATA_SEED,
                      region=model.region, objects=preset.objects,
                      fresh_epochs=config.epochs if creatures and model.fresh_images else 0),
        training=TrainingRecipe.of(config), model_seed=MODEL_SEED, start=start)


def _with_starts(recipes: list[ModelRecipe]) -> list[ModelRecipe]:
    """``recipes`` and the recipes they start from, each once, starts first."""
    found: dict[str, ModelRecipe] = {}
    for wanted in recipes:
        if wanted.start is not None:
            found.update((r.key, r) for r in _with_starts([wanted.start]))
        found[wanted.key] = wanted
    return list(found.values())


@dataclass
class ModelInfo:
    """How a zoo model was made and how well it does.

    Attributes:
        name: the zoo name.
        preset: the preset's name (its sizes are part of ``key``).
        key: the cache key: name, preset name and a hash of everything that shapes the weights.
        history: the training curves (:class:`~cam_tutorial.train.History`).
        test_loss, test_acc: cross-entropy and accuracy on the lab's test split.
        region: where the objects lay in the training images (``None``: anywhere).
        source: ``"package"``, ``"cache"`` or ``"trained"`` (this call trained it).
        path: the file the weights came from (or were written to).
    """

    name: str
    preset: str
    key: str
    history: History
    test_loss: float
    test_acc: float
    region: str | None
    source: str
    path: str

    @property
    def val_acc(self) -> float:
        """Validation accuracy after the last epoch."""
        return self.history.val_acc[-1]

    @property
    def train_seconds(self) -> float:
        """Wall time of training, summed over epochs (as measured when it was trained)."""
        return float(sum(self.history.epoch_seconds))


def available_models() -> list[str]:
    """The names :func:`trained_model` accepts."""
    return list(_MODELS)


def _zoo_model(name: str) -> _ZooModel:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}: use one of {', '.join(map(repr, _MODELS))}")
    return _MODELS[name]


def shipped_presets() -> list[str]:
    """The presets for which every zoo model ships with the package, in :data:`PRESETS` order.

    Read from the checkpoints' file names (``<model>-<preset>-<digest>.pt``); whether a file
    still matches the code is :func:`trained_model`'s business.
    """
    found: dict[str, set[str]] = {}
    for path in PACKAGED_DIR.glob("*.pt") if PACKAGED_DIR.is_dir() else []:
        model, _, rest = path.stem.partition("-")
        found.setdefault(rest.partition("-")[0], set()).add(model)
    return [name for name in PRESETS if found.get(name, set()) >= set(_MODELS)]


def presets_to_compare(preset: Preset | None = None) -> list[Preset]:
    """``preset`` and every shipped preset, in :data:`PRESETS` order: the runs a chapter can set
    side by side without training any model but its own preset's.

    Example:
        >>> [p.name for p in presets_to_compare(get_preset("gpu"))]
        ['ci', 'cpu', 'gpu']
    """
    preset = preset or get_preset()
    names = set(shipped_presets()) | {preset.name}
    return [preset if name == preset.name else PRESETS[name] for name in PRESETS if name in names]


def build_model(name: str, preset: Preset | None = None, cache_dir: str | os.PathLike | None = None) -> nn.Module:
    """The network behind ``name`` as the zoo's training starts it (:meth:`ModelRecipe.build` of
    :func:`recipe`): seeded random weights, or under a creatures preset the weights of its start,
    the same network trained on the shapes lab (shipped for ``cpu``; trained into ``cache_dir``
    first elsewhere)."""
    return recipe(name, preset).build(cache_dir)


def preset_recipes(preset: Preset | None = None) -> list[ModelRecipe]:
    """The recipes of every zoo model under ``preset`` and of the shapes-trained models they
    start from (each once, starts first): every file the package ships for that preset.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> [r.name for r in preset_recipes(get_preset("cpu"))][:3]
        ['resnet18b_gap_shapes', 'resnet18b_gap', 'resnet18b_gmp']
    """
    preset = preset or get_preset()
    return _with_starts([recipe(name, preset) for name in available_models()])


def model_dataset(name: str, split: str, preset: Preset | None = None) -> SyntheticShapes:
    """The lab split that model ``name`` was trained (``"train"``), validated (``"val"``) or
    tested (``"test"``) on, at the preset's sizes; the ``_left`` models' objects lie in the left half.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> ds = model_dataset("vgg16_fc_left", "test", get_preset("ci"))
        >>> ds.region, len(ds) == get_preset("ci").test_size
        ('left', True)
    """
    return recipe(name, preset).dataset(split)


def training_images(name: str, preset: Preset | None = None, progress: bool = True) -> Dataset:
    """What model ``name`` is trained on under ``preset``, as :func:`~cam_tutorial.train.train`
    reads it: under a creatures preset the twins read ``train_size`` new lab images every epoch
    (a :class:`~cam_tutorial.lab.FreshEachEpoch`), every other model one fixed set rendered once
    (:func:`cache_in_memory`). The zoo trains on exactly this.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> cpu = get_preset("cpu")
        >>> fresh = training_images("resnet18b_gmp", cpu)
        >>> type(fresh).__name__, len(fresh) == cpu.train_size, fresh.epochs == cpu.epochs
        ('FreshEachEpoch', True, True)
    """
    return recipe(name, preset).lab.training_images(progress)


def default_cache_dir() -> Path:
    """``$CAM_TUTORIAL_CACHE`` or ``~/.cache/cam_tutorial``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cam_tutorial"


def train_config(name: str, preset: Preset | None = None) -> TrainConfig:
    """The settings model ``name`` is trained with under ``preset``: its recipe's (the preset's,
    except for a per-model learning rate where the preset's does not train that architecture),
    carrying the recipe's identity, so that a run of it resumes only from a run of the same recipe.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> ci = get_preset("ci")
        >>> train_config("vgg16_gap_left", ci).lr == ci.lr, train_config("vgg16_fc_left", ci).lr == ci.lr / 4
        (True, True)
    """
    preset = preset or get_preset()
    return recipe(name, preset).train_config(progress=False, eval_batch_size=preset.eval_batch_size)


def _recipe_differences(stored: dict[str, Any], wanted: ModelRecipe) -> str:
    """How the recipe a stored model was trained for differs from ``wanted``, as far as the file tells."""
    identity = stored.get("identity")
    if not isinstance(identity, dict):
        return "the file records no recipe, only its key (written before recipes were stored)"
    return "; ".join(identity_differences(identity, wanted.identity(), "file")) or "the same recipe, another key"


def _read_final(path: Path, wanted: ModelRecipe) -> dict[str, Any]:
    """The stored trained model at ``path``, checked to be the model of recipe ``wanted``."""
    fix = f"delete {path} (it will be retrained) or choose another cache_dir"
    stored = safe_load(path, "the trained model", fix)
    check_format(stored, path, _FORMAT, _FINAL_KEYS, "a cam_tutorial zoo model", fix)
    if stored["name"] != wanted.name:
        raise CheckpointError(f"{path} holds the zoo model {stored['name']!r}, not {wanted.name!r} (copied into "
                              f"the wrong cache entry?): {fix}")
    if stored["key"] != wanted.key:
        raise CheckpointError(f"{path} holds {wanted.name!r} trained for another recipe (cache key "
                              f"{stored['key']!r}, expected {wanted.key!r}; copied from another entry? "
                              f"{_recipe_differences(stored, wanted)}): {fix}")
    return stored


def _stale_shipped(wanted: ModelRecipe) -> list[Path]:
    """Shipped checkpoints of ``wanted``'s model and preset made for another recipe."""
    if not PACKAGED_DIR.is_dir():
        return []
    return sorted(path for path in PACKAGED_DIR.glob(f"{wanted.name}-{wanted.preset}-*.pt")
                  if path.stem != wanted.key)


def _explain_stale_shipped(wanted: ModelRecipe) -> None:
    """Say why a shipped checkpoint of this model and preset is not used (it is trained instead)."""
    for path in _stale_shipped(wanted):
        try:
            reason = _recipe_differences(safe_load(path, "the shipped model", "reinstall cam_tutorial"), wanted)
        except CheckpointError as exc:
            reason = str(exc)
        logger.warning("ignoring the shipped %s: it was trained for another recipe than %s (%s); training "
                       "%s into the cache instead (the package's maintainers ship a new one with "
                       "`python -m cam_tutorial.zoo --preset %s --ship`)", path.name, wanted.key, reason,
                       wanted.name, wanted.preset)


def _load_weights(model: nn.Module, stored: dict[str, Any], path: Path) -> None:
    try:
        model.load_state_dict(stored["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:  # missing, unexpected or misshapen tensors
        first = str(exc).strip().splitlines()[:2]
        raise CheckpointError(f"the weights in {path} do not fit {stored['name']!r} under this preset "
                              f"({' '.join(first)[:300]}): delete {path} (it will be retrained) or choose "
                              "another cache_dir") from exc


def _info(stored: dict[str, Any], source: str, path: Path) -> ModelInfo:
    return ModelInfo(name=stored["name"], preset=stored["preset"], key=stored["key"],
                     history=History.from_dict(stored["history"]), test_loss=stored["test_loss"],
                     test_acc=stored["test_acc"], region=stored["region"], source=source, path=str(path))


def _user_id() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else 0  # POSIX; Windows has per-user temp folders


def lock_folder() -> Path:
    """This user's lock folder in the machine's temporary folder: made with mode ``0700`` and
    checked without following links (a link or another user's folder planted at its name is
    refused, never followed: ``chmod`` through a link would change the link's target).

    Raises:
        CheckpointError: when something else stands at its path; the message names it and the fix.

    Example:
        >>> lock_folder().name.startswith("cam_tutorial-locks-")
        True
    """
    folder = Path(tempfile.gettempdir()) / f"cam_tutorial-locks-{_user_id()}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)  # mkdir never follows a link standing at `folder`
    found = os.lstat(folder)
    if not hasattr(os, "geteuid"):  # Windows: the temporary folder is the user's own
        problem = "" if stat.S_ISDIR(found.st_mode) else "not a folder"
    elif stat.S_ISLNK(found.st_mode) or not stat.S_ISDIR(found.st_mode):
        problem = "a link" if stat.S_ISLNK(found.st_mode) else "not a folder"
    elif found.st_uid != _user_id():
        problem = f"owned by user {found.st_uid}, not by this user ({_user_id()})"
    else:
        problem = f"open to other users (mode {stat.S_IMODE(found.st_mode):04o})" if found.st_mode & 0o077 else ""
    if problem:
        raise CheckpointError(f"cannot keep the zoo's locks in {folder}: it is {problem}, where a folder only this "
                              f"user can open (mode 0700) belongs: remove it if it is yours (rm -r '{folder}'), "
                              "or set the TMPDIR environment variable to a folder of your own")
    return folder


def lock_path(final_path: Path) -> Path:
    """The lock file of the cache entry whose model is ``final_path`` (locks stay on the local
    disk: see the module docstring)."""
    digest = hashlib.sha256(str(final_path.resolve()).encode()).hexdigest()[:16]
    return lock_folder() / f"{final_path.stem}-{digest}.lock"


@contextlib.contextmanager
def _entry_lock(final_path: Path, wanted: str = "the model") -> Iterator[None]:
    """Hold the lock that lets one process train a cache entry while the others wait."""
    path = lock_path(final_path)
    lock = FileLock(str(path), mode=0o600)
    try:
        try:
            lock.acquire(timeout=0)
        except TimeoutError:
            logger.info("another process is training %s; waiting for it", wanted)
            lock.acquire()
    except OSError as exc:  # a link (ELOOP: lock files are opened without following links), a folder...
        raise CheckpointError(f"cannot lock {path} ({exc.strerror or exc}): remove it (rm -r '{path}'; "
                              "a lock file is made anew)") from exc
    try:
        yield
    finally:
        lock.release()


def cache_in_memory(dataset: Dataset, progress: bool = True, max_bytes: int | None = None,
                    max_uint8_bytes: int | None = None, num_workers: int = 0) -> Dataset:
    """The training set as fast as memory allows: rendered once, or rendered lean on every access.

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


def _render_workers(config: TrainConfig) -> int:
    """Processes that render the lab for the zoo's training: the config's loader workers, else
    what :func:`~cam_tutorial.train.train` would pick (none on the CPU, a few on a GPU)."""
    if config.num_workers is not None:
        return config.num_workers
    return min(4, os.cpu_count() or 1) if torch.device(config.device or default_device()).type == "cuda" else 0


def _remove_resume_checkpoint(path: Path) -> None:
    """Delete a finished run's per-epoch checkpoint once its final weights are stored: it holds
    the optimiser's state too (VGG16-FC's is about 1.6 GB at the ``gpu`` preset), and a finished
    entry is never resumed."""
    with contextlib.suppress(FileNotFoundError):
        size = path.stat().st_size
        path.unlink()
        logger.info("removed %s (%.0f MB), the finished run's resume checkpoint", path, size / 1e6)
    with contextlib.suppress(OSError):  # only when empty
        path.parent.rmdir()


def _train_and_store(wanted: ModelRecipe, eval_batch_size: int, model: nn.Module, entry: Path, final_path: Path,
                     device: str | torch.device | None, progress: bool) -> dict[str, Any]:
    config = wanted.train_config(device=None if device is None else str(device), progress=progress,
                                 eval_batch_size=eval_batch_size)
    # Before training, not after: a read-only cache would otherwise cost the whole run.
    check_writable_folder(entry, "choose another cache_dir (or $CAM_TUTORIAL_CACHE)")
    remove_stale_temporaries(final_path)  # we hold the entry's lock: nobody else writes here
    if wanted.start is not None:  # its trained weights, not random ones, are where training starts
        model.load_state_dict(wanted.build(entry.parent.parent, device, progress).state_dict())
        logger.info("%s starts from %s's trained weights", wanted.name, wanted.start.name)
    logger.info("training %s under preset %r (cached afterwards in %s)", wanted.name, wanted.preset, entry)
    started = time.perf_counter()
    workers = _render_workers(config)
    history = train(model, wanted.lab.training_images(progress, workers),
                    cache_in_memory(wanted.dataset("val"), progress, num_workers=workers), config,
                    checkpoint_dir=entry / "checkpoints")
    stored = _store(wanted, eval_batch_size, model, history, final_path, workers)
    logger.info("trained %s in %.0f s: val acc %.3f, test acc %.3f", wanted.name, time.perf_counter() - started,
                history.val_acc[-1], stored["test_acc"])
    return stored


def _store(wanted: ModelRecipe, eval_batch_size: int, model: nn.Module, history: History, final_path: Path,
           workers: int) -> dict[str, Any]:
    """Score ``model`` on the test split, write the entry's ``final.pt``, delete its ``last.pt``."""
    test_set = wanted.dataset("test")
    test_loss, test_acc = evaluate(model, test_set.training_view(), eval_batch_size, num_workers=workers)
    stored = {
        "format": _FORMAT, "name": wanted.name, "preset": wanted.preset, "key": wanted.key,
        "region": wanted.lab.region, "identity": wanted.identity(),
        "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "history": history.to_dict(), "test_loss": test_loss, "test_acc": test_acc,
    }
    atomic_save(stored, final_path)
    _remove_resume_checkpoint(final_path.parent / "checkpoints" / CHECKPOINT_NAME)
    return stored


def _entry(wanted: ModelRecipe, cache_dir: str | os.PathLike | None) -> Path:
    """The entry folder of recipe ``wanted`` in the cache."""
    if cache_dir is not None and not str(cache_dir).strip():
        raise ValueError("cache_dir is empty: pass a folder, e.g. cache_dir='~/.cache/cam_tutorial', "
                         f"or None for ${CACHE_ENV} or the default")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    entry = root / "models" / wanted.key
    if not entry.resolve().is_relative_to((root / "models").resolve()):  # Preset checks names; be sure
        raise ValueError(f"the cache entry {entry} lies outside {root / 'models'}: the preset name "
                         f"{wanted.preset!r} must be a plain name such as 'ci'")
    return entry


def run_folder(name: str, preset: Preset | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder where the zoo keeps the per-epoch checkpoint of ``name``'s training run: pass
    it as ``train(..., checkpoint_dir=...)`` (with :func:`train_config` and the zoo's data) to
    train the zoo's own model by hand, resumable, then hand the result to :func:`store_run`.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> folder = run_folder("resnet18b_gap", get_preset("ci"), "/tmp/zoo")
        >>> folder.parent.parent.name, folder.parent.name == recipe("resnet18b_gap", get_preset("ci")).key
        ('models', True)
    """
    return _entry(recipe(name, preset), cache_dir) / "checkpoints"


def store_run(name: str, model: nn.Module, history: History, preset: Preset | None = None,
              cache_dir: str | os.PathLike | None = None) -> ModelInfo:
    """Store a model trained by hand as the zoo's ``name`` (so :func:`trained_model` loads it in
    every later chapter): scores it on the test split, writes the entry's ``final.pt`` and
    deletes the run's ``last.pt``.

    Raises:
        ValueError: when ``history`` is not a finished run of :func:`train_config`'s length, or
            the model's tensors are not the zoo architecture's.
    """
    preset = preset or get_preset()
    wanted = recipe(name, preset)
    config = wanted.train_config(progress=False, eval_batch_size=preset.eval_batch_size)
    if not history.finished or history.epoch != list(range(1, config.epochs + 1)):
        raise ValueError(f"store_run takes a finished run of {config.epochs} epochs, got epochs {history.epoch} "
                         f"(finished={history.finished}): train with train_config({name!r}, preset) to the end")
    reference = wanted.network().state_dict()
    weights = model.state_dict()
    if weights.keys() != reference.keys() or any(weights[k].shape != reference[k].shape for k in reference):
        raise ValueError(f"the model is not the zoo's {name!r} under preset {preset.name!r}: build it with "
                         f"build_model({name!r}, preset)")
    entry = _entry(wanted, cache_dir)
    final_path = entry / "final.pt"
    check_writable_folder(entry, "choose another cache_dir (or $CAM_TUTORIAL_CACHE)")
    with _entry_lock(final_path):
        stored = _store(wanted, preset.eval_batch_size, model, history, final_path,
                        _render_workers(config.replace(device=str(model_device(model)))))
    logger.info("stored %s as the zoo's model in %s: test acc %.3f", name, final_path, stored["test_acc"])
    return _info(stored, "trained", final_path)


def trained_model(name: str, preset: Preset | None = None, device: str | torch.device | None = None,
                  cache_dir: str | os.PathLike | None = None, progress: bool = True,
                  with_info: bool = False) -> nn.Module | tuple[nn.Module, ModelInfo]:
    """A trained zoo model in eval mode: from the package, the cache, or trained now.

    Args:
        name: one of :func:`available_models`.
        preset: sizes and training settings; default :func:`~cam_tutorial.config.get_preset`.
        device: where to put the model (and to train it); default CUDA, then MPS, then the CPU.
        cache_dir: folder of trained models; default ``$CAM_TUTORIAL_CACHE`` or
            ``~/.cache/cam_tutorial`` (on Colab a Drive folder keeps them across sessions).
        progress: progress bars while training.
        with_info: also return a :class:`ModelInfo` (curves, test accuracy, provenance).

    Returns:
        The model, or ``(model, info)`` with ``with_info=True``.

    Raises:
        ValueError: for an unknown name (the message lists the known ones), or an empty
            ``cache_dir``.
        CheckpointError: when a cached file is unreadable or holds another model, or the cache
            cannot be written; the message names the file or folder and the fix.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> tiny = get_preset("ci").replace(image_size=32, width=2, train_size=40, val_size=20,
        ...                                 test_size=20, epochs=1, batch_size=20)
        >>> import tempfile
        >>> model, info = trained_model("resnet18b_gap", tiny, "cpu", tempfile.mkdtemp(), False, True)
        >>> info.source, model.training
        ('trained', False)
    """
    preset = preset or get_preset()
    wanted = recipe(name, preset)
    entry = _entry(wanted, cache_dir)
    model = wanted.network()
    stored, source, path = _stored_model(wanted, preset.eval_batch_size, model, entry, device, progress)
    _load_weights(model, stored, path)
    model.to(device if device is not None else default_device()).eval()
    logger.info("%s (%s) from %s: test accuracy %.3f", name, _zoo_model(name).description, source,
                stored["test_acc"])
    if with_info:
        return model, _info(stored, source, path)
    return model


def _stored_model(wanted: ModelRecipe, eval_batch_size: int, model: nn.Module, entry: Path,
                  device: str | torch.device | None, progress: bool) -> tuple[dict[str, Any], str, Path]:
    """The stored model of recipe ``wanted``, its source and file: the package's, the cache's, or
    trained now into the cache (by this process, or by another that held the lock)."""
    packaged = PACKAGED_DIR / f"{wanted.key}.pt"
    final_path = entry / "final.pt"
    if packaged.exists():
        return _read_final(packaged, wanted), "package", packaged
    if final_path.exists():
        stored = _read_final(final_path, wanted)
        _remove_resume_checkpoint(entry / "checkpoints" / CHECKPOINT_NAME)  # left by a run killed after saving
        return stored, "cache", final_path
    with _entry_lock(final_path, wanted.name):
        if final_path.exists():  # trained by the process we waited for
            return _read_final(final_path, wanted), "cache", final_path
        _explain_stale_shipped(wanted)
        return _train_and_store(wanted, eval_batch_size, model, entry, final_path, device, progress), "trained", final_path


def model_info(name: str, preset: Preset | None = None, cache_dir: str | os.PathLike | None = None,
               progress: bool = True) -> ModelInfo:
    """The :class:`ModelInfo` of a zoo model (training it first if nothing has it yet)."""
    _, info = trained_model(name, preset, "cpu", cache_dir, progress, with_info=True)  # type: ignore[misc]
    return info


def main(argv: list[str] | None = None) -> int:
    """``python -m cam_tutorial.zoo [--preset ci] [--ship] [names...]``: train (or load) the zoo's
    models and print their accuracy; ``--ship`` copies them into the package's checkpoints folder
    (replacing stale ones of that preset), as done for the ``ci`` and ``cpu`` presets."""
    import argparse
    import shutil

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("names", nargs="*", default=available_models())
    parser.add_argument("--preset", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--ship", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    preset = get_preset(args.preset)
    if args.ship:
        PACKAGED_DIR.mkdir(exist_ok=True)
        current = {wanted.key for wanted in preset_recipes(preset)}
        for stale in PACKAGED_DIR.glob(f"*-{preset.name}-*.pt"):
            if stale.stem not in current:
                logger.info("removing stale %s", stale)
                stale.unlink()
    for name in args.names:
        _, info = trained_model(name, preset, cache_dir=args.cache_dir, with_info=True)  # type: ignore[misc]
        print(f"{name:16s} {info.source:8s} val acc {info.val_acc:.3f}  test acc {info.test_acc:.3f}  "
              f"trained in {info.train_seconds:.0f} s")
        if not args.ship:
            continue
        start = recipe(name, preset).start
        files = [(info.key, Path(info.path))]
        if start is not None:  # trained on the way (or already in the cache); ships beside the model
            files.append((start.key, _entry(start, args.cache_dir) / "final.pt"))
        for key, path in files:
            target = PACKAGED_DIR / f"{key}.pt"
            if path == target or target.exists():
                continue
            shutil.copyfile(path, target.with_suffix(".tmp"))
            os.replace(target.with_suffix(".tmp"), target)
            print(f"  shipped {target} ({target.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
