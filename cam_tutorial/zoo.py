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

Each model under each preset has one frozen :class:`~cam_tutorial.zoo_recipes.ModelRecipe`
(:func:`recipe`): everything that shapes its weights, hashed whole into its cache key; a change to
any of it trains a new model rather than reusing an old one. A shipped checkpoint whose key is not
the recipe's is ignored with a logged warning that says what differs, and the model is trained
into the cache. Every function here takes a preset or its name.

A chapter may train a zoo model by hand (chapter 3 does, to show resuming): :func:`run_folder`
is the entry's checkpoint folder, :func:`train_config` its settings, the recipe's ``lab`` its
data, and :func:`store_run` makes the finished run the entry's model. On Colab,
:func:`cam_tutorial.book.colab.use_drive_cache` puts the whole cache on Google Drive.

Several processes may ask for the same model at once: a lock lets one of them train while the
others wait. Files, locks and their checks (shipped files against a manifest of digests, cached
ones against the digest of their weights) are :mod:`cam_tutorial.zoo_cache`'s.

Example:
    >>> from cam_tutorial.zoo import available_models
    >>> available_models()
    ['resnet18b_gap', 'resnet18b_gmp', 'vgg16_gap_left', 'vgg16_fc_left']
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from cam_tutorial import lab as lab_module
from cam_tutorial import zoo_cache
from cam_tutorial.checkpoints import CHECKPOINT_NAME, check_writable_folder, remove_stale_temporaries
from cam_tutorial.config import PRESETS, Preset, default_device, get_preset
from cam_tutorial.evaluation import default_workers, evaluate, model_device
from cam_tutorial.lab import CLASS_NAMES, SyntheticShapes
from cam_tutorial.train import History, TrainConfig, train
from cam_tutorial.zoo_recipes import (
    DATA_SEED,
    MODEL_SEED,
    TRAIN_SEED,
    LabRecipe,
    ModelRecipe,
    TrainingRecipe,
    cache_in_memory,
)

__all__ = [
    "recipe",
    "ModelInfo",
    "available_models",
    "trained_model",
    "model_dataset",
    "build_model",
    "preset_recipes",
    "train_config",
    "presets_to_compare",
    "run_folder",
    "store_run",
]

logger = logging.getLogger(__name__)

#: Added to a model's name for the shapes-trained network it starts from under a creatures preset
#: (e.g. ``resnet18b_gap_shapes``): the start has its own key, file and cache entry.
START_SUFFIX = "_shapes"
# Evaluation batch of a start's test score (a chapter size, outside every recipe).
_START_EVAL_BATCH = 128


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


def as_preset(preset: Preset | str | None) -> Preset:
    """``preset`` as a :class:`~cam_tutorial.config.Preset`: a preset, its name (``"ci"``), or
    ``None`` for :func:`~cam_tutorial.config.get_preset`'s choice; every zoo function takes all three.

    Example:
        >>> as_preset("ci").name
        'ci'
    """
    if isinstance(preset, Preset):
        return preset
    if preset is not None and not isinstance(preset, str):
        raise TypeError(f"preset must be a Preset, a preset's name or None, got {type(preset).__name__} "
                        f"{preset!r}: e.g. preset='ci' or get_preset('ci')")
    return get_preset(preset)


def recipe(name: str, preset: Preset | str | None = None) -> ModelRecipe:
    """The recipe of zoo model ``name`` under ``preset`` (default :func:`~cam_tutorial.config.get_preset`).
    Used in chapter 3, and the appendix.

    Only the preset's model sizes enter it (image size, widths, split sizes, epochs, batch
    size, learning rate); its chapter sizes (probe sizes, ``sanity_images``...) do not.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> r = recipe("resnet18b_gmp", get_preset("ci"))
        >>> dict(r.options)["pooling"], r.lab.train_size, r.training.epochs
        ('max', 3000, 6)
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}: use one of {', '.join(map(repr, _MODELS))}")
    model = _MODELS[name]
    preset = as_preset(preset)
    config = TrainConfig.from_preset(preset, lr=preset.lr * model.lr_scale, seed=TRAIN_SEED)
    start = None
    creatures = preset.objects != "shapes"
    if creatures and preset.pretrain_epochs > 0:
        source = model.start_from or name
        size = preset.pretrain_image_size if _MODELS[source].small_start and preset.pretrain_image_size \
            else preset.image_size
        shapes = preset.replace(objects="shapes", epochs=preset.pretrain_epochs, pretrain_epochs=0,
                                pretrain_image_size=0, image_size=size)
        start = replace(recipe(source, shapes), name=f"{source}{START_SUFFIX}")
    options = dict(num_classes=len(CLASS_NAMES), **model.options(preset))
    return ModelRecipe(
        name=name, preset=preset.name, builder=model.builder, options=tuple(sorted(options.items())),
        lab=LabRecipe(train_size=preset.train_size, val_size=preset.val_size, test_size=preset.test_size,
                      version=lab_module.LAB_VERSION, image_size=preset.image_size, seed=DATA_SEED,
                      region=model.region, objects=preset.objects,
                      fresh_epochs=config.epochs if creatures and model.fresh_images else 0),
        training=TrainingRecipe.of(config), model_seed=MODEL_SEED, start=start)


@dataclass
class ModelInfo:
    """How a zoo model was made and how well it does.
    Used in no chapter directly.

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


def _info(stored: dict[str, Any], source: str, path: Path) -> ModelInfo:
    return ModelInfo(name=stored["name"], preset=stored["preset"], key=stored["key"],
                     history=History(**stored["history"]), test_loss=stored["test_loss"],
                     test_acc=stored["test_acc"], region=stored["region"], source=source, path=str(path))


def available_models() -> list[str]:
    """The names :func:`trained_model` accepts.
    Used in no chapter directly."""
    return list(_MODELS)


def presets_to_compare(preset: Preset | str | None = None) -> list[Preset]:
    """``preset`` and every preset for which all zoo models ship with the package, in
    :data:`PRESETS` order: the runs a chapter can set side by side without training any model but
    its own preset's.
    Used in the appendix.

    What ships is read from the checkpoints' file names (``<model>-<preset>-<digest>.pt``);
    whether a file still matches the code is :func:`trained_model`'s business.

    Example:
        >>> [p.name for p in presets_to_compare(get_preset("gpu"))]
        ['ci', 'cpu', 'gpu']
    """
    preset = as_preset(preset)
    shipped: dict[str, set[str]] = {preset.name: set(_MODELS)}
    for path in zoo_cache.PACKAGED_DIR.glob("*.pt"):
        model, _, rest = path.stem.partition("-")
        shipped.setdefault(rest.partition("-")[0], set()).add(model)
    return [preset if name == preset.name else PRESETS[name] for name in PRESETS
            if shipped.get(name, set()) >= set(_MODELS)]


def build_model(name: str, preset: Preset | str | None = None, cache_dir: str | os.PathLike | None = None) -> nn.Module:
    """The network behind ``name`` as the zoo's training starts it: seeded random weights
    (:meth:`~cam_tutorial.zoo_recipes.ModelRecipe.network`), or under a creatures preset the
    weights of its start, the same network trained on the shapes lab (shipped for ``cpu``; trained
    into ``cache_dir`` first elsewhere).
    Used in chapters 3 and 6, and the appendix."""
    return _starting_network(recipe(name, preset), cache_dir, None, True)


def _starting_network(wanted: ModelRecipe, cache_dir: str | os.PathLike | None, device: str | torch.device | None,
                      progress: bool) -> nn.Module:
    model = wanted.network()
    if wanted.start is not None:  # its trained weights, not random ones, are where training starts
        _stored_model(model, wanted.start, _START_EVAL_BATCH, cache_dir, device, progress)
    return model


def preset_recipes(preset: Preset | str | None = None) -> list[ModelRecipe]:
    """The recipes of every zoo model under ``preset`` and of the shapes-trained models they
    start from (each once, starts first): every file the package ships for that preset.
    Used in no chapter directly.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> [r.name for r in preset_recipes(get_preset("cpu"))][:3]
        ['resnet18b_gap_shapes', 'resnet18b_gap', 'resnet18b_gmp']
    """
    found: dict[str, ModelRecipe] = {}
    for wanted in (recipe(name, preset) for name in available_models()):
        if wanted.start is not None:  # a start has no start of its own
            found[wanted.start.key] = wanted.start
        found[wanted.key] = wanted
    return list(found.values())


def model_dataset(name: str, split: str, preset: Preset | str | None = None) -> SyntheticShapes:
    """The lab split that model ``name`` was trained (``"train"``), validated (``"val"``) or
    tested (``"test"``) on, at the preset's sizes; the ``_left`` models' objects lie in the left half.
    Used in chapters 3, 4, 5, 6 and 7, and the appendix.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> ds = model_dataset("vgg16_fc_left", "test", get_preset("ci"))
        >>> ds.region, len(ds) == get_preset("ci").test_size
        ('left', True)
    """
    return recipe(name, preset).lab.dataset(split)


def train_config(name: str, preset: Preset | str | None = None) -> TrainConfig:
    """The settings model ``name`` is trained with under ``preset``: its recipe's (the preset's,
    except for a per-model learning rate where the preset's does not train that architecture),
    carrying the recipe's identity, so that a run of it resumes only from a run of the same recipe.
    Used in chapters 1 and 3, and the appendix.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> ci = get_preset("ci")
        >>> train_config("vgg16_gap_left", ci).lr == ci.lr, train_config("vgg16_fc_left", ci).lr == ci.lr / 4
        (True, True)
    """
    preset = as_preset(preset)
    return recipe(name, preset).train_config(progress=False, eval_batch_size=preset.eval_batch_size)


def run_folder(name: str, preset: Preset | str | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder where the zoo keeps the per-epoch checkpoint of ``name``'s training run: pass
    it as ``train(..., checkpoint_dir=...)`` (with :func:`train_config` and the zoo's data) to
    train the zoo's own model by hand, resumable, then hand the result to :func:`store_run`.
    Used in chapter 3.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> folder = run_folder("resnet18b_gap", get_preset("ci"), "/tmp/zoo")
        >>> folder.parent.parent.name, folder.parent.name == recipe("resnet18b_gap", get_preset("ci")).key
        ('models', True)
    """
    return zoo_cache.entry_folder(recipe(name, preset), cache_dir) / "checkpoints"


def store_run(name: str, model: nn.Module, history: History, preset: Preset | str | None = None,
              cache_dir: str | os.PathLike | None = None) -> ModelInfo:
    """Store a model trained by hand as the zoo's ``name`` (so :func:`trained_model` loads it in
    every later chapter): scores it on the test split, writes the entry's ``final.pt`` and
    deletes the run's ``last.pt``.
    Used in chapter 3.

    Raises:
        ValueError: when ``history`` is not a finished run of :func:`train_config`'s length, or
            the model's tensors are not the zoo architecture's.
    """
    preset = as_preset(preset)
    wanted = recipe(name, preset)
    epochs = wanted.training.epochs
    if not history.finished or history.epoch != list(range(1, epochs + 1)):
        raise ValueError(f"store_run takes a finished run of {epochs} epochs, got epochs {history.epoch} "
                         f"(finished={history.finished}): train with train_config({name!r}, preset) to the end")
    wrapper = ("module" if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else
               "_orig_mod" if isinstance(getattr(model, "_orig_mod", None), nn.Module) else None)
    if wrapper is not None:  # its tensors' names carry the wrapper's prefix
        raise ValueError(f"store_run takes the network itself, not its {type(model).__name__} wrapper: pass "
                         f"model.{wrapper} (the network it wraps)")
    reference = wanted.network().state_dict()
    weights = model.state_dict()
    if weights.keys() != reference.keys() or any(weights[k].shape != reference[k].shape for k in reference):
        raise ValueError(f"the model is not the zoo's {name!r} under preset {preset.name!r}: build it with "
                         f"build_model({name!r}, preset)")
    final_path = zoo_cache.entry_folder(wanted, cache_dir) / "final.pt"
    check_writable_folder(final_path.parent, "choose another cache_dir (or $CAM_TUTORIAL_CACHE)")
    with zoo_cache.entry_lock(final_path):
        stored = _store(wanted, preset.eval_batch_size, model, history, final_path,
                        default_workers(model_device(model)))
    logger.info("stored %s as the zoo's model in %s: test acc %.3f", name, final_path, stored["test_acc"])
    return _info(stored, "trained", final_path)


def trained_model(name: str, preset: Preset | str | None = None, device: str | torch.device | None = None,
                  cache_dir: str | os.PathLike | None = None, progress: bool = True,
                  with_info: bool = False) -> nn.Module | tuple[nn.Module, ModelInfo]:
    """A trained zoo model in eval mode: from the package, the cache, or trained now.
    Used in chapters 1, 4, 5, 6, 7 and 8, and the appendix.

    Args:
        name: one of :func:`available_models`.
        preset: sizes and training settings, or a preset's name (``"ci"``); default
            :func:`~cam_tutorial.config.get_preset`.
        device: where to put the model (and to train it); default CUDA, then MPS, then the CPU.
        cache_dir: folder of trained models; default ``$CAM_TUTORIAL_CACHE`` or
            ``~/.cache/cam_tutorial`` (on Colab a Drive folder keeps them across sessions).
        progress: progress bars while training.
        with_info: also return a :class:`ModelInfo` (curves, test accuracy, provenance).

    Returns:
        The model, or ``(model, info)`` with ``with_info=True``.

    Raises:
        ValueError: for an unknown name (the message lists the known ones), an empty
            ``cache_dir`` or the meta device (a model there holds no weights).
        ~cam_tutorial.checkpoints.CheckpointError: when a stored file is unreadable, damaged or
            holds another model, or the cache cannot be written; the message names the file or
            folder and the fix.

    Example:
        >>> from cam_tutorial.config import get_preset
        >>> tiny = get_preset("ci").replace(image_size=32, width=2, train_size=40, val_size=20,
        ...                                 test_size=20, epochs=1, batch_size=20)
        >>> import tempfile
        >>> model, info = trained_model("resnet18b_gap", tiny, "cpu", tempfile.mkdtemp(), False, True)
        >>> info.source, model.training
        ('trained', False)
    """
    preset = as_preset(preset)
    if device is not None and torch.device(device).type == "meta":
        raise ValueError("device='meta' holds shapes, not weights, so the trained model would have none: pass "
                         "'cpu' or 'cuda' (for shapes only, build_model(name, preset).to('meta'))")
    wanted = recipe(name, preset)
    model = wanted.network()
    stored, source, path = _stored_model(model, wanted, preset.eval_batch_size, cache_dir, device, progress)
    model.to(device if device is not None else default_device()).eval()
    # The preset in the line: a chapter that loads another preset's models shows which numbers are whose.
    logger.info("%s (%s) under preset %r, from %s: test accuracy %.3f", name, _MODELS[name].description,
                preset.name, source, stored["test_acc"])
    if with_info:
        return model, _info(stored, source, path)
    return model


def _stored_model(model: nn.Module, wanted: ModelRecipe, eval_batch_size: int, cache_dir: str | os.PathLike | None,
                  device: str | torch.device | None, progress: bool) -> tuple[dict[str, Any], str, Path]:
    """Load into ``model`` the stored weights of recipe ``wanted``: the package's, the cache's, or
    trained now into the cache (by this process, or by another that held the lock); return the
    stored file's contents, its source and its path."""
    entry = zoo_cache.entry_folder(wanted, cache_dir)
    packaged = zoo_cache.PACKAGED_DIR / f"{wanted.key}.pt"
    if packaged.exists():
        return zoo_cache.read_final(packaged, wanted, model), "package", packaged
    final_path, source = entry / "final.pt", "cache"
    if not final_path.exists():
        with zoo_cache.entry_lock(final_path, wanted.name):
            if not final_path.exists():  # else trained by the process we waited for
                zoo_cache.explain_stale_shipped(wanted)
                _train_and_store(wanted, eval_batch_size, cache_dir, device, progress)
                source = "trained"
    stored = zoo_cache.read_final(final_path, wanted, model)
    zoo_cache.remove_resume_checkpoint(entry / "checkpoints" / CHECKPOINT_NAME)  # left by a run killed after saving
    return stored, source, final_path


def _train_and_store(wanted: ModelRecipe, eval_batch_size: int, cache_dir: str | os.PathLike | None,
                     device: str | torch.device | None, progress: bool) -> None:
    entry = zoo_cache.entry_folder(wanted, cache_dir)
    config = wanted.train_config(device=None if device is None else str(device), progress=progress,
                                 eval_batch_size=eval_batch_size)
    # Before training, not after: a read-only cache would otherwise cost the whole run.
    check_writable_folder(entry, "choose another cache_dir (or $CAM_TUTORIAL_CACHE)")
    remove_stale_temporaries(entry / "final.pt")  # we hold the entry's lock: nobody else writes here
    model = _starting_network(wanted, cache_dir, device, progress)
    if wanted.start is not None:
        logger.info("%s starts from %s's trained weights", wanted.name, wanted.start.name)
    logger.info("training %s under preset %r (cached afterwards in %s)", wanted.name, wanted.preset, entry)
    started = time.perf_counter()
    workers = default_workers(torch.device(config.device or default_device()))  # what train picks
    history = train(model, wanted.lab.training_images(progress, workers),
                    cache_in_memory(wanted.lab.dataset("val"), progress, num_workers=workers), config,
                    checkpoint_dir=entry / "checkpoints")
    stored = _store(wanted, eval_batch_size, model, history, entry / "final.pt", workers)
    logger.info("trained %s in %.0f s: val acc %.3f, test acc %.3f", wanted.name, time.perf_counter() - started,
                history.val_acc[-1], stored["test_acc"])


def _store(wanted: ModelRecipe, eval_batch_size: int, model: nn.Module, history: History, final_path: Path,
           workers: int) -> dict[str, Any]:
    """Score ``model`` on the test split, write the entry's ``final.pt``, delete its ``last.pt``."""
    test_set = wanted.lab.dataset("test")
    test_loss, test_acc = evaluate(model, test_set.training_view(), eval_batch_size, num_workers=workers)
    stored = {
        "format": zoo_cache.ZOO_FORMAT, "name": wanted.name, "preset": wanted.preset, "key": wanted.key,
        "region": wanted.lab.region, "identity": wanted.identity(),
        "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "history": asdict(history), "test_loss": test_loss, "test_acc": test_acc,
    }
    zoo_cache.write_final(stored, final_path)
    return stored
