"""Class Activation Mapping (Zhou et al., CVPR 2016): maps from one forward pass.

A CAM model ends in ``features f (B, K, h, w) -> global average pooling -> one linear layer``,
so the score of class ``c`` is

    S_c = sum_k w_k^c (1/Z) sum_{x,y} f_k(x, y) + b_c = (1/Z) sum_{x,y} M_c(x, y) + b_c,

    M_c(x, y) = sum_k w_k^c f_k(x, y),          Z = h * w.

``M_c`` is the class activation map: how much each position adds to the score of ``c``. Its mean
plus the bias *is* the logit, which is what :class:`CAMExtractor` checks numerically before it
trusts a model. The maps come from the weights of the live model and the features of the same
forward pass that gives the logits: nothing is run twice.

With global *max* pooling (GMP) the same maps are computed the same way (the paper compares GAP
and GMP maps), but the identity becomes ``S_c = sum_k w_k^c max_{x,y} f_k(x, y) + b_c``: the map's
mean no longer equals the score.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from cam_tutorial.cam import CAMExtractor
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
    ...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()
    >>> with CAMExtractor(model, target_layer="1") as cam:
    ...     out = cam(torch.rand(2, 3, 32, 32))
    >>> out.maps.shape, out.classes.shape, out.logits.shape
    (torch.Size([2, 32, 32]), torch.Size([2]), torch.Size([2, 5]))
    >>> float(out.maps.amin()), float(out.maps.amax())
    (0.0, 1.0)
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CAMExtractor",
    "CAMResult",
    "CAMNotApplicableError",
    "class_activation_maps",
    "normalize_maps",
    "upsample_maps",
    "DatasetMaps",
    "maps_for_dataset",
    "cams_for_dataset",
    "check_image_batch",
]

logger = logging.getLogger(__name__)

ClassIndices = Union[int, Sequence[int], torch.Tensor, None]

_ADVICE = (
    "CAM needs the last convolutional maps to go through global average (or max) pooling "
    "straight into one linear layer, so that every class score is a weighted sum of pooled maps. "
    "Use a model with that head (e.g. the book's vgg16_gap or ResNet18B, torchvision's resnet, "
    "densenet or efficientnet) or a gradient method such as Grad-CAM; if the model does have that head "
    "and the wrong layers were picked, name them: CAMExtractor(model, target_layer=..., fc_layer=...)"
)


class CAMNotApplicableError(ValueError):
    """The model's head is not global pooling followed by one linear layer, so CAM does not apply."""


# --------------------------------------------------------------------------------------------
# The computation
# --------------------------------------------------------------------------------------------


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast disabled on ``device`` (so the maps are computed in float32), where torch allows it."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):  # a device type this torch cannot autocast: nothing to turn off
        return contextlib.nullcontext()


def _autocast_on(device: torch.device) -> bool:
    try:
        return torch.is_autocast_enabled(device.type)
    except TypeError:  # torch < 2.4: no device argument
        if device.type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()


def _as_class_tensor(classes: ClassIndices, batch: int, num_classes: int, device: torch.device) -> torch.Tensor:
    """Validate class indices; return a LongTensor of shape (B,) or (B, k) on ``device``."""
    if isinstance(classes, bool):
        raise TypeError("classes must be an int, a sequence of ints or an integer tensor, got a bool")
    if isinstance(classes, int):
        idx = torch.full((batch,), classes, dtype=torch.long, device=device)
    else:
        try:
            idx = torch.as_tensor(classes, device=device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"classes must be an int, a sequence of ints or an integer tensor, got {type(classes).__name__}"
            ) from err
        if idx.dtype == torch.bool or idx.is_floating_point() or idx.is_complex():
            raise TypeError(f"class indices must be integers, got dtype {idx.dtype}; use .long()")
        if idx.ndim == 0:
            idx = idx.expand(batch)
        if idx.ndim not in (1, 2) or idx.shape[0] != batch:
            raise ValueError(
                f"classes must hold one index per image (shape ({batch},)) or k per image (shape ({batch}, k)), "
                f"got shape {tuple(idx.shape)} for a batch of {batch}"
            )
        idx = idx.long()
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= num_classes):
        bad = idx[(idx < 0) | (idx >= num_classes)][0]
        raise ValueError(f"class index {int(bad)} is out of range: valid indices are 0 to {num_classes - 1}")
    return idx


def class_activation_maps(
    features: torch.Tensor, fc_weight: torch.Tensor, classes: ClassIndices = None
) -> torch.Tensor:
    """Raw class activation maps ``M_c(x, y) = sum_k w_k^c f_k(x, y)`` for a batch.

    The bias is not part of the map: with global average pooling
    ``M_c.mean() + b_c == S_c`` (the logit), for every image and class.

    * ``classes=None``: every class, ``(B, C, h, w)``. Since ``M_c`` is a weighted sum over
      channels at each position, all classes at once is a 1x1 convolution whose kernels are the
      rows of ``W``: ``F.conv2d(f, W[:, :, None, None])``; one call, channels-last friendly.
    * ``classes`` an int (the same class for every image) or one index per image (a sequence or
      a ``(B,)`` tensor): ``(B, h, w)``. Only the ``B`` weight rows needed are gathered, so the
      cost is ``B*K*h*w``, not ``B*C*K*h*w``.
    * ``classes`` a ``(B, k)`` tensor (e.g. top-k indices): ``(B, k, h, w)``.

    The result is computed in (at least) float32 with autocast off, so it stays accurate when the
    features come from a float16/bfloat16 forward pass.

    Args:
        features: the last convolutional maps ``f``, shape ``(B, K, h, w)``, floating point.
        fc_weight: the classifier's weight ``W``, shape ``(C, K)``.
        classes: which maps; see above.

    Returns:
        The maps, ``(B, C, h, w)``, ``(B, h, w)`` or ``(B, k, h, w)``.

    Raises:
        TypeError: non-tensor or non-floating inputs, non-integer class indices.
        ValueError: wrong shapes, ``K`` mismatch, class index out of range.

    Example:
        >>> import torch
        >>> f, W = torch.rand(2, 4, 3, 3), torch.rand(5, 4)
        >>> class_activation_maps(f, W).shape
        torch.Size([2, 5, 3, 3])
        >>> m = class_activation_maps(f, W, classes=[1, 3])
        >>> m.shape
        torch.Size([2, 3, 3])
        >>> torch.allclose(m.mean((1, 2)), (f.mean((2, 3)) @ W.T)[[0, 1], [1, 3]])
        True
    """
    if not isinstance(features, torch.Tensor) or not isinstance(fc_weight, torch.Tensor):
        raise TypeError("features and fc_weight must be torch tensors")
    if features.ndim != 4:
        raise ValueError(f"features must have shape (B, K, h, w), got {tuple(features.shape)}")
    if fc_weight.ndim != 2:
        raise ValueError(f"fc_weight must have shape (C, K), got {tuple(fc_weight.shape)}")
    if not features.is_floating_point() or not fc_weight.is_floating_point():
        raise TypeError(
            f"features and fc_weight must be floating point, got {features.dtype} and {fc_weight.dtype}; "
            "use .float()"
        )
    batch, channels = features.shape[:2]
    num_classes = fc_weight.shape[0]
    if fc_weight.shape[1] != channels:
        raise ValueError(
            f"fc_weight has {fc_weight.shape[1]} inputs per class but features have {channels} channels: "
            "the weight must be the linear layer right after the pooling of these features"
        )
    dtype = torch.promote_types(torch.promote_types(features.dtype, fc_weight.dtype), torch.float32)
    weight = fc_weight.detach().to(device=features.device, dtype=dtype)
    f = features.detach().to(dtype)
    with _autocast_off(features.device):
        if classes is None:
            return F.conv2d(f, weight[:, :, None, None])
        idx = _as_class_tensor(classes, batch, num_classes, features.device)
        rows = weight[idx]  # (B, K) or (B, k, K): only the rows asked for
        if idx.ndim == 1:
            return torch.einsum("bk,bkhw->bhw", rows, f)
        return torch.einsum("bnk,bkhw->bnhw", rows, f)


def upsample_maps(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize maps to ``size`` with bilinear interpolation (``align_corners=False``), in float.

    Upsample the float maps, then quantise if you must: quantising to uint8 first (as in the
    original slides) throws away everything between two of 256 levels before interpolating.

    Args:
        maps: ``(h, w)``, ``(B, h, w)`` or ``(B, k, h, w)``, floating point.
        size: output side ``S`` (square) or ``(H, W)``.

    Returns:
        The maps at ``(H, W)``, same leading dimensions, float32 or wider.

    Example:
        >>> import torch
        >>> upsample_maps(torch.rand(2, 7, 7), 224).shape
        torch.Size([2, 224, 224])
    """
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"maps must be a torch tensor, got {type(maps).__name__}")
    if not maps.is_floating_point():
        raise TypeError(
            f"maps must be floating point, got {maps.dtype}: upsample before quantising (use .float())"
        )
    if maps.ndim not in (2, 3, 4):
        raise ValueError(f"maps must have shape (h, w), (B, h, w) or (B, k, h, w), got {tuple(maps.shape)}")
    out_size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
    if len(out_size) != 2 or min(out_size) < 1:
        raise ValueError(f"size must be a positive int or a pair (H, W), got {size!r}")
    lead = maps.shape[:-2]
    x = maps.reshape(-1, 1, *maps.shape[-2:])
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if tuple(x.shape[-2:]) != out_size:
        x = F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)
    return x.reshape(*lead, *out_size)


def normalize_maps(maps: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Min-max normalise each map to ``[0, 1]``: ``(M - min M) / (max M - min M)``.

    Every ``(h, w)`` map is scaled on its own (per image, per class). A constant map has no
    "where", so it becomes all zeros, never NaN.

    Args:
        maps: ``(h, w)``, ``(B, h, w)`` or ``(B, k, h, w)``, floating point.
        inplace: overwrite ``maps`` (saves a copy of a large batch of upsampled maps).

    Returns:
        Maps of the same shape with minimum 0 and maximum 1 (or all 0 when constant).

    Raises:
        TypeError: not a floating-point tensor.
        ValueError: fewer than two dimensions, or a NaN/Inf value (one +Inf pixel would turn its
            map into NaN there and 0 elsewhere).

    Example:
        >>> import torch
        >>> m = normalize_maps(torch.tensor([[[1., 3.], [2., 5.]], [[7., 7.], [7., 7.]]]))
        >>> m[0].tolist(), m[1].tolist()
        ([[0.0, 0.5], [0.25, 1.0]], [[0.0, 0.0], [0.0, 0.0]])
    """
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"maps must be a torch tensor, got {type(maps).__name__}")
    if not maps.is_floating_point():
        raise TypeError(f"maps must be floating point, got {maps.dtype}; use .float()")
    if maps.ndim < 2:
        raise ValueError(f"maps must have at least two dimensions (h, w), got {tuple(maps.shape)}")
    if maps.shape[-1] * maps.shape[-2] == 0:
        return maps if inplace else maps.clone()
    # One +Inf pixel would make its map NaN at that pixel and 0 elsewhere: refuse, do not guess.
    _check_finite(maps, "maps", "find where they come from (the images, the model's weights, a float16 "
                  "overflow) or replace them first with torch.nan_to_num")
    low, high = maps.flatten(-2).aminmax(dim=-1)
    low, high = low[..., None, None], high[..., None, None]
    span = high - low
    # A constant map: (M - min) is exactly 0 there, so dividing by 1 gives zeros, not 0/0.
    span = torch.where(span > 0, span, torch.ones_like(span))
    if inplace:
        return maps.sub_(low).div_(span)
    return (maps - low) / span


# --------------------------------------------------------------------------------------------
# The extractor
# --------------------------------------------------------------------------------------------


def _check_finite(values: torch.Tensor, what: str, fix: str) -> None:
    """Raise ``ValueError`` naming ``what`` and ``fix`` when ``values`` hold a NaN or an infinity."""
    finite = torch.isfinite(values.detach())
    if not bool(finite.all()):
        bad = values.detach()[~finite]
        nans = int(torch.isnan(bad).sum())
        raise ValueError(
            f"{what} contain non-finite values ({nans} NaN, {bad.numel() - nans} infinite, "
            f"of {values.numel()}): {fix}"
        )


def check_image_batch(images: object) -> torch.Tensor:
    """Validate a batch of images for a classifier: a float ``(B, 3, H, W)`` tensor.

    A single ``(3, H, W)`` image becomes a batch of one. Integer images, other ranks,
    channels-last layouts, empty batches and NaN/Inf pixels get an error that names the fix.
    Shared by every map method here and in :mod:`cam_tutorial.saliency`.

    Example:
        >>> import torch
        >>> check_image_batch(torch.zeros(3, 8, 8)).shape
        torch.Size([1, 3, 8, 8])
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch tensor (B, 3, H, W), got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(
            f"images have dtype {images.dtype}: convert with images.float() / 255 and normalise them the "
            "way the model was trained"
        )
    if images.ndim == 3:
        images = images.unsqueeze(0)  # one image (3, H, W): a batch of one
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, 3, H, W) or (3, H, W), got {tuple(images.shape)}")
    if images.shape[1] > 4 and images.shape[-1] in (1, 3, 4):
        raise ValueError(
            f"images of shape {tuple(images.shape)} look channels-last (B, H, W, C): the model wants "
            "(B, C, H, W); use images.permute(0, 3, 1, 2)"
        )
    if images.shape[0] == 0:
        raise ValueError(
            f"the batch holds 0 images (shape {tuple(images.shape)}): give at least one image, "
            "e.g. skip empty batches before calling"
        )
    _check_finite(images, "the input images", "check how they were loaded and normalised (a zero std, "
                  "a division by zero) or clean them with torch.nan_to_num")
    return images


@dataclass
class CAMResult:
    """What one :class:`CAMExtractor` call returns.

    Attributes:
        logits: the model's output ``S``, ``(B, C)``, as the model gave it.
        classes: the class of each map: ``(B,)`` LongTensor, or ``(B, k)`` with ``top_k`` (in
            decreasing order of score).
        maps: ``(B, H, W)`` (one class per image) or ``(B, k, H, W)`` (``top_k``), float32;
            ``(H, W)`` is the input size when upsampled, else the feature size ``(h, w)``;
            in ``[0, 1]`` when normalised, else the raw ``M_c`` (no bias).
        features: the last convolutional maps ``f``, ``(B, K, h, w)``, from the same pass.
    """

    logits: torch.Tensor
    classes: torch.Tensor
    maps: torch.Tensor
    features: torch.Tensor


class _FeatureStore:
    """Holds what the hooks capture; kept apart from the extractor so hooks do not pin it."""

    def __init__(self) -> None:
        self.active = False
        self.output: torch.Tensor | None = None
        self.calls = 0
        self.probe: list[tuple[str, torch.Tensor]] = []
        self.linear_outputs: list[tuple[nn.Module, torch.Tensor]] = []


def _remove_handles(handles: list) -> None:
    for handle in handles:
        handle.remove()
    handles.clear()


_ACTIVATIONS = tuple(
    cls for cls in vars(nn.modules.activation).values()
    if isinstance(cls, type) and issubclass(cls, nn.Module) and cls is not nn.Module
)
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
_WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd, nn.Bilinear)


def _module_name(model: nn.Module, module: nn.Module) -> str:
    for name, sub in model.named_modules():
        if sub is module:
            return name or "<model>"
    return type(module).__name__


def _nonfinite_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters and buffers of ``model`` that hold a NaN or an infinity."""
    named = list(model.named_parameters()) + list(model.named_buffers())
    return [name for name, value in named if value.is_floating_point() and not bool(torch.isfinite(value).all())]


def _resolve(model: nn.Module, layer: nn.Module | str, what: str) -> nn.Module:
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError as err:
            children = ", ".join(repr(n) for n, _ in model.named_children())
            raise ValueError(
                f"the model has no submodule {layer!r} for {what}; top-level names are {children} "
                "(use dotted names such as 'layer4' or 'features.8')"
            ) from err
    if not isinstance(layer, nn.Module):
        raise TypeError(f"{what} must be an nn.Module or a submodule name, got {type(layer).__name__}")
    if not any(sub is layer for sub in model.modules()):
        raise ValueError(f"the {what} given is not a submodule of the model")
    return layer


class CAMExtractor:
    """Class activation maps and logits from one forward pass of a GAP (or GMP) classifier.

    It hooks the layer whose output ``f`` feeds the global pooling, reads the weight ``W`` of the
    linear layer after it (from the live model at each call), and returns ``M_c = sum_k w_k^c f_k``
    for the classes asked for, upsampled and normalised.

    Finding the layers (when not given):

    * the classifier: ``model.classifier`` if it is an ``nn.Linear`` (the book's models), else an
      ``nn.Linear`` of the model that can be a CAM head: one that does not sit in an
      ``nn.Sequential`` with another weighted layer, an activation or a normalisation (so not the
      Linears of a squeeze-excitation block or an MLP). Of those, the shallowest (then the last
      registered) is taken at construction, and when there are several the first call confirms it:
      the Linear whose output *is* the returned logits wins. If no Linear can be a head
      (mobilenet_v3's Linear-Hardswish-Dropout-Linear, VGG16's FC stack, convnext's LayerNorm),
      CAM does not apply: :class:`CAMNotApplicableError`. Dropout, Identity, Flatten and pooling
      around it are fine (dropout is the identity in eval).
    * the feature layer: ``model.features`` for the book's models (``.features``, ``.pool``,
      ``.classifier``); otherwise, on the first call, every 4-D output with ``K`` channels and
      more than one position is recorded, and the last one whose pooling reproduces the logits is
      chosen (``layer4`` for resnet, ``features`` for densenet/efficientnet, ``inception5b``
      for googlenet, ``conv5`` for shufflenet, ``trunk_output`` for regnet).

    Non-finite values (NaN, Inf) in the images, the classifier's weight, the logits, the features or
    the maps raise ``ValueError`` naming which, at every call: a NaN map is never returned.

    Verification (first call): ``logits == pool(f) @ W.T + b`` within float tolerance, with
    ``pool`` global average or global max pooling (recorded in :attr:`pooling`); a functional ReLU
    between ``f`` and the pooling is recognised too. Otherwise :class:`CAMNotApplicableError`
    says why. The chosen layers are logged with ``logging.info``.

    Hooks are removed by :meth:`close`, on leaving a ``with`` block (also on an exception), or
    when the extractor is garbage collected.

    Args:
        model: a classifier in eval mode, returning logits ``(B, C)``.
        target_layer: the layer whose output is ``f`` (module or dotted name); found if ``None``.
        fc_layer: the ``nn.Linear`` after the pooling (module or dotted name); found if ``None``.

    Example:
        >>> import torch
        >>> from cam_tutorial.models import ResNet18B
        >>> model = ResNet18B(num_classes=4, width=4).eval()
        >>> images = torch.rand(3, 3, 64, 64)
        >>> with CAMExtractor(model) as cam:
        ...     out = cam(images, top_k=2)
        >>> out.maps.shape, out.classes.shape
        (torch.Size([3, 2, 64, 64]), torch.Size([3, 2]))
        >>> torch.equal(out.classes, out.logits.topk(2, dim=1).indices)
        True
    """

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module | str | None = None,
        fc_layer: nn.Module | str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        # Linears that could each be the classifier; the first call settles which (see _settle_fc).
        self._fc_candidates: list[nn.Linear] = []
        self.fc = self._find_fc(fc_layer)
        self.fc_name = _module_name(model, self.fc)
        self.num_classes, self.num_channels = self.fc.weight.shape
        self._check_head_structure()
        self.pooling: str | None = None  # "avg" or "max", once verified
        self.activation: str | None = None  # "none" or "relu" between f and the pooling
        self._store = _FeatureStore()
        self._closed = False
        self._handles: list = []
        self._finalizer = weakref.finalize(self, _remove_handles, self._handles)
        self._fc_handles: list = []
        if self._fc_candidates:
            self._install_linear_hooks()
        self.target_layer: nn.Module | None = None
        self.target_name: str | None = None
        if target_layer is not None:
            self._set_target(_resolve(model, target_layer, "target_layer"), "given")
        elif all(hasattr(model, a) for a in ("features", "pool", "classifier")) and isinstance(
            model.features, nn.Module
        ):
            self._set_target(model.features, "the model's .features")
        else:
            self._install_probe()
        # The layers found are debug detail; the one INFO line is the verification (below).
        logger.debug("CAMExtractor: classifier %r (%d classes, %d channels)", self.fc_name, self.num_classes,
                     self.num_channels)

    # -- layer finding -----------------------------------------------------------------------

    def _find_fc(self, fc_layer: nn.Module | str | None) -> nn.Linear:
        if fc_layer is not None:
            fc = _resolve(self.model, fc_layer, "fc_layer")
        elif isinstance(getattr(self.model, "classifier", None), nn.Linear):
            fc = self.model.classifier
        else:
            linears = [(name, m) for name, m in self.model.named_modules() if isinstance(m, nn.Linear)]
            if not linears:
                raise CAMNotApplicableError(
                    f"CAM does not apply to this model: it has no nn.Linear classifier. {_ADVICE}."
                )
            # A Linear in a block with an activation, a norm or another weighted layer (the two
            # Linears of a squeeze-excitation block, an MLP) cannot be a CAM head. Of the rest the
            # shallowest, then the last registered, is the likeliest classifier (resnet's fc,
            # googlenet's fc over its aux heads); with several, the first call checks the logits.
            heads = [(name, m) for name, m in linears if self._head_problem(m) is None]
            if not heads:
                fc = linears[-1][1]  # _check_head_structure says why it cannot be the head
            else:
                fc = min(reversed(heads), key=lambda item: item[0].count("."))[1]
                if len(heads) > 1:
                    self._fc_candidates = [m for _, m in heads]
        if not isinstance(fc, nn.Linear):
            raise TypeError(f"fc_layer must be an nn.Linear, got {type(fc).__name__}")
        return fc

    def _head_problem(self, fc: nn.Module) -> str | None:
        """Why ``fc`` cannot be a CAM head, from the model's structure alone; ``None`` if it can."""
        for name, parent in self.model.named_modules():
            if isinstance(parent, nn.Sequential) and parent is not self.model and any(
                child is fc for child in parent.children()
            ):
                children = list(parent.children())
                if any(isinstance(c, _WEIGHTED + _ACTIVATIONS + _NORMS) for c in children if c is not fc):
                    layout = " -> ".join(type(c).__name__ for c in children)
                    return (f"CAM does not apply to this model: the head {name!r} is {layout}, "
                            "not global pooling followed by one linear layer. "
                            f"{_ADVICE}.")
        return None

    def _check_head_structure(self) -> None:
        """Reject heads that are visibly more than pooling + one linear layer (no forward needed)."""
        problem = self._head_problem(self.fc)
        if problem is not None:
            raise CAMNotApplicableError(problem)

    def _install_linear_hooks(self) -> None:
        """Record the output of every candidate classifier during the first call."""
        store = self._store

        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if store.active and isinstance(output, torch.Tensor):
                store.linear_outputs.append((module, output))

        for linear in self._fc_candidates:
            handle = linear.register_forward_hook(hook)
            self._fc_handles.append(handle)
            self._handles.append(handle)  # so that close() and the finaliser remove it too

    def _settle_fc(self, logits: object) -> None:
        """First call with several candidate classifiers: take the one whose output is the logits."""
        produced = [m for m, out in self._store.linear_outputs if out is logits]
        _remove_handles(self._fc_handles)
        self._fc_candidates, self._store.linear_outputs = [], []
        if produced and produced[-1] is not self.fc:
            self.fc = produced[-1]
            self.fc_name = _module_name(self.model, self.fc)
            self.num_classes, self.num_channels = self.fc.weight.shape
            logger.debug("CAMExtractor: classifier %r returns the logits (%d classes, %d channels)",
                         self.fc_name, self.num_classes, self.num_channels)

    def _set_target(self, layer: nn.Module, how: str) -> None:
        self.target_layer = layer
        self.target_name = _module_name(self.model, layer)
        store = self._store

        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if store.active:
                store.output = output if isinstance(output, torch.Tensor) else None
                store.calls += 1

        self._handles.append(layer.register_forward_hook(hook))
        logger.debug("CAMExtractor: feature layer %r (%s)", self.target_name, how)

    def _install_probe(self) -> None:
        store = self._store
        # Until the first call settles the classifier, any candidate's input width could be K.
        channels = {self.num_channels} | {m.in_features for m in self._fc_candidates}

        for name, module in self.model.named_modules():
            if module is self.model:
                continue

            def hook(module: nn.Module, inputs: tuple, output: object, name: str = name) -> None:
                # Keep only what could be f: 4-D, K channels, more than one position.
                if (store.active and isinstance(output, torch.Tensor) and output.ndim == 4
                        and output.shape[1] in channels and output.shape[2] * output.shape[3] > 1):
                    store.probe.append((name, output))

            self._handles.append(module.register_forward_hook(hook))

    # -- context manager ---------------------------------------------------------------------

    def close(self) -> None:
        """Remove every hook this extractor put on the model (safe to call twice)."""
        self._closed = True
        _remove_handles(self._handles)

    def __enter__(self) -> "CAMExtractor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"CAMExtractor(target_layer={self.target_name!r}, fc_layer={self.fc_name!r}, "
                f"pooling={self.pooling!r})")

    # -- the call ----------------------------------------------------------------------------

    def _check_images(self, images: torch.Tensor) -> torch.Tensor:
        images = check_image_batch(images)
        param = self.fc.weight
        if images.device != param.device:
            raise ValueError(
                f"images are on {images.device} but the model is on {param.device}: "
                f"use images.to({str(param.device)!r})"
            )
        if images.dtype != param.dtype and not _autocast_on(images.device):
            raise TypeError(
                f"images are {images.dtype} but the model is {param.dtype}: use images.to({param.dtype}) "
                "(or run under torch.autocast)"
            )
        return images

    def __call__(
        self,
        images: torch.Tensor,
        classes: ClassIndices = None,
        top_k: int | None = None,
        upsample: bool = True,
        normalize: bool = True,
    ) -> CAMResult:
        """Run the model once; return logits and the class activation maps.

        Args:
            images: ``(B, 3, H, W)`` float tensor (normalised as the model expects), on the model's
                device; a single ``(3, H, W)`` image is treated as a batch of one.
            classes: ``None`` for each image's predicted class; an int for the same class for all;
                one index per image (sequence or ``(B,)`` tensor).
            top_k: maps for the ``k`` best-scoring classes of each image (not with ``classes``).
            upsample: resize the maps to ``(H, W)`` (bilinear, ``align_corners=False``).
            normalize: min-max normalise each map to ``[0, 1]`` (in float, after upsampling);
                ``False`` keeps the raw ``M_c``.

        Returns:
            A :class:`CAMResult`. The forward pass runs without gradients (CAM needs none).

        Raises:
            TypeError: non-float images, non-integer classes.
            ValueError: wrong shapes, device or class range; an empty batch; both ``classes`` and
                ``top_k``; ``top_k`` outside ``1..C``; a model in training mode; NaN or Inf in the
                images, the classifier's weight, the logits, the features or the maps (the message
                says which).
            CAMNotApplicableError: the model's head is not pooling + one linear layer.
        """
        if self._closed:
            raise RuntimeError("this CAMExtractor is closed (its hooks were removed); create a new one")
        images = self._check_images(images)
        batch = images.shape[0]
        if classes is not None and top_k is not None:
            raise ValueError("give either classes or top_k, not both")
        settling = bool(self._fc_candidates)  # the class count is known once the classifier is
        if not settling:
            classes = self._check_request(classes, top_k, batch, images.device)
        if self.model.training:
            raise ValueError(
                "the model is in training mode: call model.eval() first (dropout would change the scores "
                "and batch norm would update its statistics)"
            )

        store = self._store
        store.output, store.calls, store.probe, store.linear_outputs = None, 0, [], []
        store.active = True
        try:
            with torch.no_grad():
                logits = self.model(images)
        finally:
            store.active = False
        if settling:
            self._settle_fc(logits)
            classes = self._check_request(classes, top_k, batch, images.device)
        if not isinstance(logits, torch.Tensor) or logits.shape != (batch, self.num_classes):
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise CAMNotApplicableError(
                f"CAM does not apply to this model: it should return logits of shape ({batch}, {self.num_classes}), "
                f"got {got}. {_ADVICE}."
            )
        self._check_finite_pass(logits)

        if self.target_layer is None:
            features = self._choose_target(logits)
        else:
            features = store.output
            if features is None:
                raise ValueError(
                    f"the target layer {self.target_name!r} did not output a tensor during the forward pass; "
                    "pick the layer whose output feeds the global pooling"
                )
            if store.calls > 1:
                raise ValueError(
                    f"the target layer {self.target_name!r} ran {store.calls} times in one forward pass; "
                    "pick a layer that runs once (the one whose output feeds the global pooling)"
                )
            if features.is_floating_point():
                _check_finite(features, f"the features of {self.target_name!r}",
                              "the model overflowed before its head (run it in float32, check its weights)")
            if self.pooling is None:
                self._verify(features, logits)
        store.output, store.probe = None, []
        if self.activation == "relu":
            features = F.relu(features)

        if top_k is not None:
            classes = logits.topk(top_k, dim=1).indices
        elif classes is None:
            classes = logits.argmax(dim=1)
        maps = class_activation_maps(features, self.fc.weight, classes)
        _check_finite(maps, "the class activation maps", "the features times the classifier's weight "
                      "overflowed; run the model in float32")
        if upsample:
            maps = upsample_maps(maps, tuple(images.shape[-2:]))
        if normalize:
            maps = normalize_maps(maps, inplace=True)
        return CAMResult(logits=logits, classes=classes, maps=maps, features=features)

    def _check_request(self, classes: ClassIndices, top_k: int | None, batch: int,
                       device: torch.device) -> torch.Tensor | None:
        """Validate ``top_k`` and ``classes`` against the classifier; return the classes as a tensor."""
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= self.num_classes:
                raise ValueError(
                    f"top_k must be an int from 1 to {self.num_classes} (the number of classes), got {top_k!r}"
                )
        if classes is not None:
            classes = _as_class_tensor(classes, batch, self.num_classes, device)
            if classes.ndim != 1:
                raise ValueError(f"classes must hold one index per image, got shape {tuple(classes.shape)}; "
                                 "for several classes per image use top_k or class_activation_maps")
        return classes

    def _check_finite_pass(self, logits: torch.Tensor) -> None:
        """NaN/Inf in the classifier or the logits: say which, before anything blames the head."""
        weights = [self.fc.weight] + ([self.fc.bias] if self.fc.bias is not None else [])
        for value in weights:
            _check_finite(value, f"the weights of the classifier {self.fc_name!r}",
                          "the model is broken (a diverged training run?): reload a good checkpoint, or "
                          "retrain with a lower learning rate")
        if logits.is_floating_point() and not bool(torch.isfinite(logits).all()):
            broken = _nonfinite_parameters(self.model)
            where = (f"non-finite parameters or buffers: {', '.join(broken[:5])}" if broken else
                     "its parameters are finite, so the forward pass overflowed (run it in float32, not "
                     "float16, and check the input scale)")
            _check_finite(logits, "the logits", f"the model produced them ({where}); fix the model before "
                          "computing maps")

    # -- verification ------------------------------------------------------------------------

    def _match(self, features: torch.Tensor, logits: torch.Tensor) -> tuple[str, str] | None:
        """Which (pooling, activation) makes ``pool(act(f)) @ W.T + b`` equal the logits, if any."""
        weight = self.fc.weight.detach().float()
        bias = self.fc.bias.detach().float() if self.fc.bias is not None else 0.0
        target = logits.detach().float()
        low_precision = logits.dtype in (torch.float16, torch.bfloat16) or features.dtype in (
            torch.float16, torch.bfloat16)
        rtol = 2e-2 if low_precision else 1e-3
        tol = 1e-6 + rtol * float(target.abs().max())
        with _autocast_off(features.device):
            f = features.detach().float()
            for activation in ("none", "relu"):
                g = f if activation == "none" else F.relu(f)
                for pooling, pooled in (("avg", g.mean(dim=(2, 3))), ("max", g.amax(dim=(2, 3)))):
                    err = float((pooled @ weight.T + bias - target).abs().max())
                    if err <= tol:
                        return pooling, activation
        return None

    def _accept(self, pooling: str, activation: str) -> None:
        self.pooling, self.activation = pooling, activation
        extra = ", after a functional ReLU" if activation == "relu" else ""
        logger.info("CAMExtractor: verified logits == %s-pool(f%s) @ W.T + b at %r (classifier %r)",
                    {"avg": "global average", "max": "global max"}[pooling], extra, self.target_name, self.fc_name)
        if pooling == "max":
            logger.info("CAMExtractor: global max pooling: maps are computed the same way, but the score "
                        "is sum_k w_k max f_k + b, not the map's mean plus b")
        if not bool(self.fc.weight.detach().any()):
            logger.warning("CAMExtractor: the classifier's weight is all zeros, so the check is vacuous")

    def _verify(self, features: torch.Tensor, logits: torch.Tensor) -> None:
        if features.ndim != 4 or features.shape[1] != self.num_channels:
            raise CAMNotApplicableError(
                f"CAM does not apply with this target layer: {self.target_name!r} outputs shape "
                f"{tuple(features.shape)}, but the classifier "
                f"{self.fc_name!r} takes {self.num_channels} channels: f must be (B, {self.num_channels}, h, w). "
                f"{_ADVICE}."
            )
        match = self._match(features, logits)
        if match is None:
            raise CAMNotApplicableError(
                f"CAM does not apply to this model: the logits are not global pooling of {self.target_name!r} "
                f"followed by {self.fc_name!r} "
                f"(checked logits == pool(f) @ W.T + b with average and max pooling), so the head is not global "
                f"pooling followed by one linear layer. {_ADVICE}."
            )
        self._accept(*match)

    def _choose_target(self, logits: torch.Tensor) -> torch.Tensor:
        """First call without a known feature layer: pick the last candidate that verifies."""
        # Before the classifier was settled the probe kept maps of several widths: keep K's.
        candidates = [(n, out) for n, out in self._store.probe if out.shape[1] == self.num_channels]
        seen: set[int] = set()
        for name, output in reversed(candidates):
            if id(output) in seen:
                continue
            seen.add(id(output))
            match = self._match(output, logits)
            if match is not None:
                _remove_handles(self._handles)
                self._set_target(self.model.get_submodule(name), "found by matching the logits")
                self._accept(*match)
                return output
        names = ", ".join(dict.fromkeys(n for n, _ in candidates)) or "none"
        if not candidates:
            why = (f"no layer outputs a 4-D map with {self.num_channels} channels (the classifier's inputs) and "
                   "more than one position; if the input is small the maps may be 1x1: use larger images")
        else:
            why = (f"no layer's output, globally pooled, reproduces the logits through {self.fc_name!r} "
                   f"(candidates with {self.num_channels} channels: {names}); the head is not global pooling "
                   "followed by one linear layer")
        raise CAMNotApplicableError(f"CAM does not apply to this model: {why}. {_ADVICE}.")


# --------------------------------------------------------------------------------------------
# A whole dataset, in batches
# --------------------------------------------------------------------------------------------


@dataclass
class DatasetMaps:
    """One map per item of a dataset, with the scores and the ground truth, in order, on the CPU.

    Attributes:
        logits: ``(N, C)`` float32, the model's scores.
        maps: ``(N, H, W)`` float32, one map per image, of the class in ``classes``.
        classes: ``(N,)`` int64, the class each map is of.
        labels: ``(N,)`` int64, the true classes.
        boxes: ``(N, 4)`` float32 ground-truth boxes ``(x0, y0, x1, y1)``, or ``None`` when the
            dataset's items carry no box (items ``(image, label)``).
        masks: ``(N, H, W)`` bool object masks, or ``None`` when the items carry none.
    """

    logits: torch.Tensor
    maps: torch.Tensor
    classes: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor | None = None
    masks: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def predictions(self) -> torch.Tensor:
        """``(N,)`` predicted classes, ``logits.argmax(1)``."""
        return self.logits.argmax(dim=1)

    def subset(self, keep: torch.Tensor | Sequence[int]) -> "DatasetMaps":
        """The items selected by ``keep``: a boolean mask ``(N,)`` or a sequence of indices.

        Example:
            >>> found = DatasetMaps(logits=torch.eye(3), maps=torch.zeros(3, 4, 4),
            ...                     classes=torch.arange(3), labels=torch.tensor([0, 1, 1]))
            >>> found.subset(found.labels == 1).classes.tolist()
            [1, 2]
        """
        index = torch.as_tensor(keep)
        if index.dtype == torch.bool and index.shape != (len(self),):
            raise ValueError(f"a boolean keep must have shape ({len(self)},), got {tuple(index.shape)}")
        pick = (lambda t: None if t is None else t[index])
        return DatasetMaps(logits=self.logits[index], maps=self.maps[index], classes=self.classes[index],
                           labels=self.labels[index], boxes=pick(self.boxes), masks=pick(self.masks))


#: ``compute(images, classes)`` -> ``(logits (B, C), maps (B, H, W))``; ``classes`` is ``None``
#: for "each image's predicted class".
MapFunction = Callable[[torch.Tensor, Union[torch.Tensor, None]], "tuple[torch.Tensor, torch.Tensor]"]


def maps_for_dataset(
    compute: MapFunction,
    dataset: torch.utils.data.Dataset,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    *,
    classes: str = "label",
    progress: bool = True,
    num_workers: int = 0,
    desc: str = "maps",
) -> DatasetMaps:
    """Run any map method over a whole dataset in batches (with a progress bar); collect on the CPU.

    The dataset's items are ``(image, label)``, ``(image, label, box)`` or
    ``(image, label, box, mask)`` (the book's lab and real-data loaders give all four); boxes
    and masks are collected when present. Items are read in order, never shuffled.

    Args:
        compute: ``compute(images, classes) -> (logits, maps)`` for one batch on ``device``;
            ``classes`` is a ``(B,)`` tensor of the classes to map, or ``None`` for the
            predicted ones. :func:`cams_for_dataset` passes a :class:`CAMExtractor`.
        dataset: a map-style dataset of such items.
        batch_size: images per batch.
        device: where the batches go.
        classes: ``"label"`` (maps of the true class, what ground-truth-known localisation
            needs; where the prediction is right it is also the predicted class's map) or
            ``"predicted"``.
        progress: show a ``tqdm`` bar.
        num_workers: DataLoader workers (0 reads in this process).
        desc: the bar's label.

    Returns:
        A :class:`DatasetMaps`.

    Raises:
        ValueError: an unknown ``classes``, an empty dataset, a bad ``batch_size``, or a
            ``compute`` that returns the wrong shapes.
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    if classes not in ("label", "predicted"):
        raise ValueError(f"classes must be 'label' (the true class) or 'predicted', got {classes!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("the dataset is empty: nothing to map")
    device = torch.device(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("logits", "maps", "classes", "labels",
                                                            "boxes", "masks")}
    # The bar is driven by hand: tqdm.auto's asyncio class calls iter() on what it wraps, and a
    # second iter(loader) would start a second set of workers (and their prefetching).
    bar = tqdm(total=len(loader), desc=desc, leave=False, disable=not progress)
    with bar:
        for batch in loader:
            _collect_batch(batch, compute, device, classes, parts)
            bar.update(1)
    joined = {k: torch.cat(v) if v else None for k, v in parts.items()}
    return DatasetMaps(**joined)  # type: ignore[arg-type]


def _collect_batch(batch: object, compute: MapFunction, device: torch.device, classes: str,
                   parts: dict[str, list[torch.Tensor]]) -> None:
    """One batch of :func:`maps_for_dataset`: run ``compute`` and append its results to ``parts``."""
    if not isinstance(batch, (list, tuple)) or len(batch) < 2:
        raise ValueError("dataset items must be (image, label[, box[, mask]]) tuples")
    images = batch[0].to(device, non_blocking=True)
    labels = torch.as_tensor(batch[1]).long()
    wanted = labels.to(device) if classes == "label" else None
    logits, maps = compute(images, wanted)
    if logits.ndim != 2 or logits.shape[0] != len(images) or maps.ndim != 3 or maps.shape[0] != len(images):
        raise ValueError(f"compute must return logits (B, C) and maps (B, H, W) for a batch of {len(images)}, "
                         f"got {tuple(logits.shape)} and {tuple(maps.shape)}")
    logits = logits.detach().float().cpu()
    parts["logits"].append(logits)
    parts["maps"].append(maps.detach().float().cpu())
    parts["classes"].append(labels if classes == "label" else logits.argmax(dim=1))
    parts["labels"].append(labels)
    if len(batch) > 2:
        parts["boxes"].append(torch.as_tensor(batch[2]).float())
    if len(batch) > 3:
        parts["masks"].append(torch.as_tensor(batch[3]).bool())


def cams_for_dataset(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    batch_size: int = 128,
    device: str | torch.device | None = None,
    *,
    classes: str = "label",
    progress: bool = True,
    num_workers: int = 0,
    target_layer: nn.Module | str | None = None,
    fc_layer: nn.Module | str | None = None,
) -> DatasetMaps:
    """Class activation maps (upsampled, normalised) and logits for every item of a dataset.

    One :class:`CAMExtractor` and one forward pass per batch; see :func:`maps_for_dataset` for
    the items, ``classes`` and what is returned.

    Args:
        model: a CAM classifier in eval mode.
        dataset: items ``(image, label[, box[, mask]])``.
        batch_size: images per batch.
        device: where the batches go; default: the model's parameters' device.
        classes: ``"label"`` (true class) or ``"predicted"``.
        progress: show a ``tqdm`` bar.
        num_workers: DataLoader workers.
        target_layer, fc_layer: as for :class:`CAMExtractor`.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> from cam_tutorial.models import ResNet18B
        >>> model = ResNet18B(num_classes=3, width=4).eval()
        >>> data = TensorDataset(torch.rand(5, 3, 64, 64), torch.tensor([0, 1, 2, 0, 1]))
        >>> out = cams_for_dataset(model, data, batch_size=2, progress=False)
        >>> out.maps.shape, out.logits.shape, out.classes.tolist(), out.boxes
        (torch.Size([5, 64, 64]), torch.Size([5, 3]), [0, 1, 2, 0, 1], None)
    """
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    with CAMExtractor(model, target_layer, fc_layer) as extractor:

        def compute(images: torch.Tensor, wanted: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
            result = extractor(images, classes=wanted)
            return result.logits, result.maps

        return maps_for_dataset(compute, dataset, batch_size, device, classes=classes, progress=progress,
                                num_workers=num_workers, desc="class activation maps")
