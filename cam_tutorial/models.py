"""The book's two model families: ResNet18B and VGG16 with an FC or a GAP head.

Every model here has the same three parts, so that the rest of the package (and the reader)
can treat them alike:

* ``model.features``: an ``nn.Sequential`` from the image to the last convolutional maps
  ``f`` of shape ``(B, K, h, w)``;
* ``model.pool``: how those maps become one vector per image (global average or max pooling
  for the CAM models, ``Flatten`` for the FC model);
* ``model.classifier``: the head; one ``nn.Linear`` for the CAM models.

Example:
    >>> import torch
    >>> from cam_tutorial.models import ResNet18B
    >>> model = ResNet18B(num_classes=10).eval()
    >>> model.features(torch.zeros(1, 3, 224, 224)).shape
    torch.Size([1, 512, 14, 14])
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BuildingBlock", "ResNet18B", "GlobalPool", "shortcut_module", "vgg16_fc", "vgg16_gap"]

#: The smallest input side the ResNet18B accepts: its total stride is 16, so 32 px leaves
#: 2x2 maps, the least on which "where" still means something.
MIN_INPUT_SIZE = 32


class GlobalPool(nn.Module):
    """Global average (``"avg"``) or max (``"max"``) pooling from ``(B, K, h, w)`` to ``(B, K)``.
    Used in chapter 2.

    Average pooling is ``F_k = (1/Z) sum_{x,y} f_k(x, y)`` with ``Z = h * w``; max pooling is
    ``F_k = max_{x,y} f_k(x, y)``.
    """

    def __init__(self, mode: str = "avg") -> None:
        super().__init__()
        if mode not in ("avg", "max"):
            raise ValueError(f"unknown pooling {mode!r}: use 'avg' (GAP) or 'max' (GMP)")
        self.mode = mode

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f.mean(dim=(2, 3)) if self.mode == "avg" else f.amax(dim=(2, 3))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class _SubsampleShortcut(nn.Module):
    """Options A and ``"concat"``: subsample by the stride, then fill the new channels.

    Option A of He et al. (2016) pads them with zeros: the identity where it can be, zeros where
    not. The slide deck's question, ``"concat"``, repeats the input's channels instead, so the
    block adds the same signal to two groups of channels; it needs ``out_channels`` to be a
    multiple of ``in_channels`` (every ResNet stage doubles them). Neither has parameters, which
    is their point.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, fill: str) -> None:
        super().__init__()
        if fill == "concat" and out_channels % in_channels:
            raise ValueError(f"a concatenating shortcut needs out_channels ({out_channels}) to be a multiple of "
                             f"in_channels ({in_channels}); use shortcut='A' or 'B' for these widths")
        self.fill = fill
        self.stride = stride
        self.extra = out_channels - in_channels  # zeros, for A
        self.copies = out_channels // in_channels  # copies of the input, for concat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        if self.fill == "concat":
            return torch.cat([x] * self.copies, dim=1)
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))

    def extra_repr(self) -> str:
        return f"fill={self.fill!r}"


def shortcut_module(in_channels: int, out_channels: int, stride: int = 1, option: str = "B") -> nn.Module:
    """The shortcut ``s(x)`` of a residual block whose input and output shapes may differ.
    Used in chapter 2, and the appendix.

    The identity when the shapes match; otherwise, by ``option``: ``"A"`` subsamples and pads
    with zero channels (no parameters), ``"B"`` is a 1x1 convolution with the block's stride and
    batch norm (torchvision's), ``"B-noBN"`` the same convolution without the batch norm, and
    ``"concat"`` subsamples and repeats the input's channels (no parameters).

    Example:
        >>> import torch
        >>> [tuple(shortcut_module(4, 8, 2, o)(torch.zeros(1, 4, 8, 8)).shape) for o in ("A", "concat")]
        [(1, 8, 4, 4), (1, 8, 4, 4)]
    """
    if option not in ("A", "B", "B-noBN", "concat"):
        raise ValueError(f"unknown shortcut {option!r}: use 'A' (zero "
                         "padding), 'B' (1x1 projection + batch norm), "
                         "'B-noBN' (the projection alone) or 'concat' "
                         "(copies of the input)")
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if option in ("A", "concat"):
        return _SubsampleShortcut(in_channels, out_channels, stride, option)
    projection = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
    if option == "B-noBN":
        return nn.Sequential(projection)
    return nn.Sequential(projection, nn.BatchNorm2d(out_channels))


class BuildingBlock(nn.Module):
    """The two-layer residual block of ResNet-18: ``relu(bn(conv(relu(bn(conv(x))))) + s(x))``.
    Used in chapter 2, and the appendix.

    Chapter 2 writes this class out; ``tests/test_chapter_code.py`` checks the two are the same code.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        stride: stride of the first 3x3 convolution (and of the shortcut).
        shortcut: ``"B"`` projects with a 1x1 convolution and batch norm when the shape changes;
            ``"A"`` uses the parameter-free identity with zero padding; ``"B-noBN"`` and
            ``"concat"`` are the variants of :func:`shortcut_module` (which refuses any other).

    Convolutions carry no bias: the batch norm after each would cancel it.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 shortcut: str = "B") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride,
                               padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1,
                               padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = shortcut_module(in_channels, out_channels,
                                                   stride, shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def check_input(x: torch.Tensor, min_size: int, fixed_size: int | None = None) -> None:
    """Fail early, with the fix in the message, unless ``x`` is a ``(B, 3, H, W)`` batch whose sides
    are at least ``min_size`` (chapter 2: the first line of ``ResNet18B.forward``), or exactly
    ``fixed_size`` for a model whose FC head fixes its input size (chapter 1's VGG16).

    The layout is checked before the sizes, so that ``(B, H, W, 3)`` is not read as a 3 px wide image.

    Example:
        >>> import torch
        >>> check_input(torch.zeros(1, 3, 32, 32), min_size=32)
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch tensor of images (B, 3, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"expected a batch of images of shape (B, 3, H, W), got {tuple(x.shape)}; "
                         "for one image (3, H, W) use x.unsqueeze(0)")
    if x.shape[1] != 3 and x.shape[-1] == 3:
        raise ValueError(f"input of shape {tuple(x.shape)} looks channels-last (B, H, W, C): the model wants "
                         "(B, 3, H, W); use x.permute(0, 3, 1, 2)")
    if x.shape[1] != 3:
        raise ValueError(f"expected 3 colour channels (B, 3, H, W), got shape {tuple(x.shape)}; "
                         "repeat a grey channel (x.expand(-1, 3, -1, -1)) or drop an alpha one (x[:, :3])")
    if fixed_size is not None and tuple(x.shape[-2:]) != (fixed_size, fixed_size):
        raise ValueError(
            f"this FC model was built for {fixed_size}x{fixed_size} inputs, got {tuple(x.shape)}: "
            "its first FC layer has one weight per position, so the size is fixed; resize the "
            "images or build the model with image_size set"
        )
    if min(x.shape[-2:]) < min_size:
        raise ValueError(
            f"input of {x.shape[-2]}x{x.shape[-1]} px is too small to pool: this network needs at "
            f"least {min_size}x{min_size} px; resize the images up"
        )


class _CheckInput(nn.Module):
    """:func:`check_input` as the first layer of a VGG16's ``features`` (kept there: removing it
    would shift the index, so the name, of every weight after it)."""

    def __init__(self, min_size: int, fixed_size: int | None = None) -> None:
        super().__init__()
        self.min_size = min_size
        self.fixed_size = fixed_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.min_size, self.fixed_size)
        return x


class ResNet18B(nn.Module):
    """ResNet-18 whose last stage keeps stride 1, so a 224x224 image gives 14x14 maps.
    Used in chapters 1, 2, 3, 4, 5, 6, 7 and 8, and the appendix.

    Layout (``w`` = ``width``): gate (7x7/2 conv, BN, ReLU, 3x3/2 max-pool), then four stages of
    two :class:`BuildingBlock` at widths ``w, 2w (stride 2), 4w (stride 2), 8w (stride 1)``,
    global pooling, and one ``nn.Linear``. Total stride 16 instead of ResNet-18's 32.

    Args:
        num_classes: number of outputs of the classifier.
        width: channels of the first stage (64 in ResNet-18); the last stage has ``8 * width``.
        pooling: ``"avg"`` (GAP, what CAM needs) or ``"max"`` (GMP, for the comparison).
        shortcut: ``"B"`` (projection, as in torchvision), ``"A"`` (zero padding), or the
            variants ``"B-noBN"`` and ``"concat"`` (see :func:`shortcut_module`).
        bias: whether the classifier has a bias (the slides' model has none).

    Chapter 2 writes this class out; ``tests/test_chapter_code.py`` checks the two are the same code.

    Example:
        >>> import torch
        >>> ResNet18B(width=16)(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, width: int = 64,
                 pooling: str = "avg", shortcut: str = "B",
                 bias: bool = False) -> None:
        super().__init__()
        if num_classes < 1 or width < 1:
            raise ValueError("num_classes and width must be positive, "
                             f"got {num_classes} and {width}")
        w = width
        gate = nn.Sequential(
            nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.features = nn.Sequential(OrderedDict(
            gate=gate,
            conv2_1=BuildingBlock(w, w, 1, shortcut),
            conv2_2=BuildingBlock(w, w, 1, shortcut),
            conv3_1=BuildingBlock(w, 2 * w, 2, shortcut),
            conv3_2=BuildingBlock(2 * w, 2 * w, 1, shortcut),
            conv4_1=BuildingBlock(2 * w, 4 * w, 2, shortcut),
            conv4_2=BuildingBlock(4 * w, 4 * w, 1, shortcut),
            # The one change from ResNet-18: stride 1, not 2, so the maps
            # stay at conv4_x's resolution (14x14 at 224 px, not 7x7).
            conv5_1=BuildingBlock(4 * w, 8 * w, 1, shortcut),
            conv5_2=BuildingBlock(8 * w, 8 * w, 1, shortcut),
        ))
        self.pool = GlobalPool(pooling)
        self.classifier = nn.Linear(8 * w, num_classes, bias=bias)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, MIN_INPUT_SIZE)
        return self.classifier(self.pool(self.features(x)))


class VGG(nn.Module):
    """VGG16 (configuration D) with either head; build it with :func:`vgg16_fc` or :func:`vgg16_gap`."""

    def __init__(self, features: nn.Sequential, pool: nn.Module, classifier: nn.Module, head: str) -> None:
        super().__init__()
        self.features = features
        self.pool = pool
        self.classifier = classifier
        self.head = head
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def _vgg16_convs(width: int, batch_norm: bool, last: int | str) -> list[nn.Module]:
    """VGG16's convolutions (configuration D, ``"M"`` a 2x2 max-pool) through conv5_3, then ``last``:
    pool5 (``"M"``, the FC model) or the GAP model's extra 3x3 convolution's channels."""
    w = width
    config: list[int | str] = [w, w, "M", 2 * w, 2 * w, "M", 4 * w, 4 * w, 4 * w, "M",
                               8 * w, 8 * w, 8 * w, "M", 8 * w, 8 * w, 8 * w, last]
    layers: list[nn.Module] = []
    channels = 3
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(channels, int(item), 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(int(item)))
        layers.append(nn.ReLU(inplace=True))
        channels = int(item)
    return layers


def vgg16_fc(num_classes: int = 1000, width: int = 64, image_size: int = 224, batch_norm: bool = False) -> VGG:
    """VGG16 with its fully connected head: conv1_1 ... pool5, FC-h, FC-h, FC-``num_classes``.
    Used in chapter 1, and the appendix.

    ``h = 64 * width`` (4096 at the standard width). The first FC layer sees the flattened
    ``8w x (s/32) x (s/32)`` pool5 output, one weight per channel *and position*: the point of
    the book's first chapter. So the model is built for one ``image_size`` (a multiple of 32).
    At the defaults it has exactly torchvision's ``vgg16()`` 138,357,544 parameters.

    Example:
        >>> import torch
        >>> vgg16_fc(10, width=8, image_size=64)(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """
    if image_size % 32 or image_size < 32:
        raise ValueError(f"vgg16_fc needs an image_size that is a multiple of 32 (>= 32), got {image_size}")
    features = nn.Sequential(_CheckInput(MIN_INPUT_SIZE, image_size), *_vgg16_convs(width, batch_norm, last="M"))
    side = image_size // 32
    hidden = 64 * width
    classifier = nn.Sequential(
        nn.Linear(8 * width * side * side, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(hidden, num_classes),
    )
    return VGG(features, nn.Flatten(1), classifier, head="fc")


def vgg16_gap(num_classes: int = 1000, width: int = 64, batch_norm: bool = False) -> VGG:
    """The paper's VGGnet-GAP: VGG16's convolutions through conv5_3 (no pool5), a 3x3 conv of
    ``16 * width`` channels (1024 at the standard width), ReLU, global average pooling, one
    ``nn.Linear``. Total stride 16, so 224 px gives 14x14 maps.
    Used in chapter 1, and the appendix.

    Example:
        >>> import torch
        >>> vgg16_gap(10, width=8).features(torch.zeros(1, 3, 224, 224)).shape
        torch.Size([1, 128, 14, 14])
    """
    features = nn.Sequential(_CheckInput(MIN_INPUT_SIZE), *_vgg16_convs(width, batch_norm, last=16 * width))
    return VGG(features, GlobalPool("avg"), nn.Linear(16 * width, num_classes), head="gap")


def init_weights(model: nn.Module) -> None:
    """He initialisation for convolutions, unit/zero for norms, small normal for linears."""
    if any(p.is_meta for p in model.parameters()):
        # No values to set (a recipe's key builds its network on meta), and PyTorch's meta
        # normal_ would import its compiler, torch._dynamo: 1.5 s in every process that loads a model.
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
