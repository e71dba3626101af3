"""Class Activation Mapping (Zhou et al., CVPR 2016) for a ``features -> pool -> classifier`` network.

A CAM model ends in ``features f (B, K, h, w) -> global average pooling -> one linear layer``,
so the score of class ``c`` is

    S_c = sum_k w_k^c (1/Z) sum_{x,y} f_k(x, y) + b_c = (1/Z) sum_{x,y} M_c(x, y) + b_c,

    M_c(x, y) = sum_k w_k^c f_k(x, y),          Z = h * w.

``M_c`` is the class activation map: how much each position adds to the score of ``c``; its mean
plus the bias *is* the logit. With global *max* pooling (GMP) the maps are computed the same way,
but the score becomes ``sum_k w_k^c max_{x,y} f_k(x, y) + b_c``: the map's mean no longer equals it.

This module holds the kernel (:func:`class_activation_maps`, chapter 5 writes it out), the checked
entry point for networks laid out as ``model.features`` -> ``model.pool`` -> ``model.classifier``
(:func:`compute_cams`: every model the book builds, and EfficientNet-Lite0), and the two steps
after it (:func:`upsample_maps`, :func:`normalize_maps`). Other networks (torchvision's, heads
found by hooks): :class:`cam_tutorial.anymodel.extractor.CAMExtractor`.

Example:
    >>> import torch
    >>> from cam_tutorial.models import ResNet18B
    >>> model = ResNet18B(num_classes=5, width=4).eval()
    >>> out = compute_cams(model, torch.rand(2, 3, 64, 64))
    >>> out.maps.shape, out.classes.shape, out.logits.shape
    (torch.Size([2, 64, 64]), torch.Size([2]), torch.Size([2, 5]))
    >>> float(out.maps.amin()), float(out.maps.amax())
    (0.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cam_tutorial.checks import (
    ClassIndices,
    check_features,
    check_finite,
    check_finite_logits,
    check_image_batch,
    check_model,
    check_on_device_of,
    requested_classes,
)

__all__ = [
    "class_activation_maps",
    "compute_cams",
    "CAMResult",
    "CAMNotApplicableError",
    "upsample_maps",
    "normalize_maps",
]


class CAMNotApplicableError(ValueError):
    """The model's head is not global pooling followed by one linear layer, so CAM does not apply.
    Used in the appendix."""


def class_activation_maps(features: torch.Tensor, fc_weight: torch.Tensor,
                          classes: ClassIndices = None) -> torch.Tensor:
    """Raw class activation maps ``M_c(x, y) = sum_k w_k^c f_k(x, y)`` for a batch (chapters 4, 5).
    Used in chapters 4 and 5, and the appendix.

    The bias is not part of the map: with global average pooling ``M_c.mean() + b_c == S_c``.

    * ``classes=None``: every class, ``(B, C, h, w)``. A weighted sum over channels at each
      position is a 1x1 convolution whose kernels are the rows of ``W``: one ``F.conv2d`` call.
    * ``classes`` an int (the same class for every image) or one index per image (a sequence or
      a ``(B,)`` tensor): ``(B, h, w)``; only the rows of ``W`` asked for are read.
    * ``classes`` a ``(B, k)`` tensor (e.g. top-k indices): ``(B, k, h, w)``.

    Computed in (at least) float32 with autocast off, so maps stay accurate after a float16 pass.
    The kernel checks nothing: :func:`compute_cams` checks its inputs.

    Args:
        features: the last convolutional maps ``f``, ``(B, K, h, w)``, floating point.
        fc_weight: the classifier's weight ``W``, ``(C, K)``.
        classes: which maps; see above.

    Example:
        >>> import torch
        >>> f, W = torch.rand(2, 4, 3, 3), torch.rand(5, 4)
        >>> class_activation_maps(f, W).shape
        torch.Size([2, 5, 3, 3])
        >>> m = class_activation_maps(f, W, classes=[1, 3])
        >>> torch.allclose(m.mean((1, 2)), (f.mean((2, 3)) @ W.T)[[0, 1], [1, 3]])
        True
    """
    dtype = torch.promote_types(torch.promote_types(features.dtype, fc_weight.dtype), torch.float32)
    f = features.detach().to(dtype)
    weight = fc_weight.detach().to(device=f.device, dtype=dtype)
    with torch.autocast(f.device.type, enabled=False):
        if classes is None:
            return F.conv2d(f, weight[:, :, None, None])
        index = torch.as_tensor(classes, device=f.device)
        if index.ndim == 0:
            index = index.expand(len(f))  # one class for every image
        rows = weight[index]  # (B, K) or (B, k, K): only the rows asked for
        return torch.einsum("b...k,bkhw->b...hw", rows, f)


def upsample_maps(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize maps to ``size`` with bilinear interpolation (``align_corners=False``), in float (chapter 5).
    Used in chapter 5, and the appendix.

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
    """Min-max normalise each map to ``[0, 1]``: ``(M - min M) / (max M - min M)`` (chapter 5).
    Used in chapters 1, 4 and 5, and the appendix.

    Every ``(h, w)`` map is scaled on its own (per image, per class). A constant map has no
    "where", so it becomes all zeros, never NaN.

    Args:
        maps: ``(h, w)``, ``(B, h, w)`` or ``(B, k, h, w)``, floating point.
        inplace: overwrite ``maps`` (saves a copy of a large batch of upsampled maps).

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
    check_finite(maps, "maps", "find where they come from (the images, the model's weights, a float16 "
                 "overflow) or replace them first with torch.nan_to_num")
    low, high = maps.flatten(-2).aminmax(dim=-1)
    low, high = low[..., None, None], high[..., None, None]
    span = high - low
    # A constant map: (M - min) is exactly 0 there, so dividing by 1 gives zeros, not 0/0.
    span = torch.where(span > 0, span, torch.ones_like(span))
    if inplace:
        return maps.sub_(low).div_(span)
    return (maps - low) / span


@dataclass
class CAMResult:
    """What :func:`compute_cams` (and ``CAMExtractor``) return (chapter 5).
    Used in no chapter directly.

    Attributes:
        logits: the model's output ``S``, ``(B, C)``.
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


def has_cam_layout(model: nn.Module) -> bool:
    """Whether ``model`` is ``features -> pool -> classifier`` with one ``nn.Linear``, as
    :func:`compute_cams` reads it (chapters 5 and 8).

    Example:
        >>> from cam_tutorial.models import vgg16_fc, vgg16_gap
        >>> has_cam_layout(vgg16_gap(3, width=2)), has_cam_layout(vgg16_fc(3, width=2, image_size=32))
        (True, False)
    """
    parts = [getattr(model, name, None) for name in ("features", "pool", "classifier")]
    return all(isinstance(part, nn.Module) for part in parts) and isinstance(parts[2], nn.Linear)


def _layout_problem(model: nn.Module) -> str:
    head = getattr(model, "classifier", None)
    layout = (f"its classifier is {' -> '.join(type(m).__name__ for m in head.children())}"
              if isinstance(head, nn.Sequential) else
              "it is not laid out as model.features -> model.pool -> model.classifier (one nn.Linear)")
    return (f"CAM does not apply to this model: compute_cams needs global pooling of model.features "
            f"straight into one nn.Linear, but {layout}. "
            "For another layout use cam_tutorial.anymodel.extractor.CAMExtractor (it finds the layers and "
            "checks the head), or a gradient method such as Grad-CAM")


def compute_cams(model: nn.Module, images: torch.Tensor, classes: ClassIndices = None, *,
                 top_k: int | None = None, upsample: bool = True, normalize: bool = True) -> CAMResult:
    """Logits and class activation maps from one forward pass, no hooks (chapter 5).
    Used in chapters 1, 5 and 8, and the quick start, and the appendix.

    ``f = model.features(x)``, ``S = model.classifier(model.pool(f))`` (a dropout between them is
    the identity in eval mode), then ``M_c = sum_k w_k^c f_k`` with ``W`` read from the live model.

    Args:
        model: ``features -> pool -> classifier`` (one ``nn.Linear``), every submodule in eval mode.
        images: ``(B, 3, H, W)`` float tensor (normalised as the model expects), on the model's
            device; a single ``(3, H, W)`` image is treated as a batch of one.
        classes: ``None`` for each image's predicted class; an int for the same class for all;
            one index per image (sequence or ``(B,)`` tensor).
        top_k: maps for the ``k`` best-scoring classes of each image (not with ``classes``).
        upsample: resize the maps to ``(H, W)`` (bilinear, ``align_corners=False``).
        normalize: min-max normalise each map to ``[0, 1]`` (after upsampling); ``False`` keeps
            the raw ``M_c``.

    Raises:
        CAMNotApplicableError: another layout (use ``CAMExtractor``).
        TypeError, ValueError: bad images, device, dtype, classes or ``top_k``; a submodule in
            training mode; NaN or Inf in the images, the classifier, the logits, the features or
            the maps (the message says which); features of one position.
    """
    if not has_cam_layout(model):
        raise CAMNotApplicableError(_layout_problem(model))
    classifier = model.classifier
    check_model(model)
    images = check_on_device_of(check_image_batch(images), classifier.weight)
    wanted = requested_classes(classes, top_k, len(images), classifier.out_features, images.device)
    for value in [classifier.weight] + ([classifier.bias] if classifier.bias is not None else []):
        check_finite(value, "the weights of the classifier 'classifier'", "the model is broken (a diverged "
                     "training run?): reload a good checkpoint, or retrain with a lower learning rate")
    with torch.no_grad():
        features = model.features(images)
        check_features(features, classifier.weight)
        logits = classifier(model.pool(features).flatten(1))
    check_finite_logits(model, logits)
    check_finite(features, "the features of 'features'",
                 "the model overflowed before its head (run it in float32, check its weights)")
    return cam_result(features, classifier.weight, logits, wanted, top_k, images.shape[-2:] if upsample else None, normalize)


def cam_result(features: torch.Tensor, fc_weight: torch.Tensor, logits: torch.Tensor, classes: torch.Tensor | None,
               top_k: int | None, size: tuple[int, ...] | None, normalize: bool) -> CAMResult:
    """The last step of :func:`compute_cams` and ``CAMExtractor``: the maps asked for, checked, resized, normalised."""
    if top_k is not None:
        classes = logits.topk(top_k, dim=1).indices
    elif classes is None:
        classes = logits.argmax(dim=1)
    maps = class_activation_maps(features, fc_weight, classes)
    check_finite(maps, "the class activation maps", "the features times the classifier's weight "
                 "overflowed; run the model in float32")
    maps = upsample_maps(maps, size) if size is not None else maps
    maps = normalize_maps(maps, inplace=True) if normalize else maps
    return CAMResult(logits=logits, classes=classes, maps=maps, features=features)
