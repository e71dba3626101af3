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

import logging
import weakref
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from cam_tutorial.checks import (
    ClassIndices,
    as_class_tensor,
    check_finite,
    check_finite_logits,
    check_image_batch,
    check_model,
    module_name,
    resolve_submodule,
)
from cam_tutorial.anymodel.heads import (
    CAM_ADVICE,
    CAMNotApplicableError,
    autocast_off,
    choose_feature_layer,
    default_feature_layer,
    find_classifier,
    verify_head,
)

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

def _autocast_on(device: torch.device) -> bool:
    try:
        return torch.is_autocast_enabled(device.type)
    except TypeError:  # torch < 2.4: no device argument
        if device.type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()


# --------------------------------------------------------------------------------------------
# The computation
# --------------------------------------------------------------------------------------------


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
    with autocast_off(features.device):
        if classes is None:
            return F.conv2d(f, weight[:, :, None, None])
        idx = as_class_tensor(classes, batch, num_classes, features.device)
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


# --------------------------------------------------------------------------------------------
# The extractor
# --------------------------------------------------------------------------------------------


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
    """Holds what the hooks capture; kept apart from the extractor so hooks do not pin it.

    Its methods are the hooks: :meth:`capture` on the feature layer, :meth:`record_linear` on
    candidate classifiers, :meth:`probe_hook` on every module while the feature layer is unknown.
    """

    def __init__(self) -> None:
        self.active = False
        self.output: torch.Tensor | None = None
        self.calls = 0
        self.probe: list[tuple[str, torch.Tensor]] = []
        self.linear_outputs: list[tuple[nn.Module, torch.Tensor]] = []

    def reset(self) -> None:
        self.output, self.calls, self.probe, self.linear_outputs = None, 0, [], []

    def capture(self, module: nn.Module, inputs: tuple, output: object) -> None:
        if self.active:
            self.output = output if isinstance(output, torch.Tensor) else None
            self.calls += 1

    def record_linear(self, module: nn.Module, inputs: tuple, output: object) -> None:
        if self.active and isinstance(output, torch.Tensor):
            self.linear_outputs.append((module, output))

    def probe_hook(self, name: str, channels: set[int]) -> Callable:
        """A hook keeping what could be ``f``: 4-D, ``K`` channels, more than one position."""
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if (self.active and isinstance(output, torch.Tensor) and output.ndim == 4
                    and output.shape[1] in channels and output.shape[2] * output.shape[3] > 1):
                self.probe.append((name, output))
        return hook

    def captured_features(self, target_name: str | None) -> torch.Tensor:
        """The feature layer's output of the last pass, checked: one tensor, once, finite."""
        features = self.output
        if features is None:
            raise ValueError(
                f"the target layer {target_name!r} did not output a tensor during the forward pass; "
                "pick the layer whose output feeds the global pooling"
            )
        if self.calls > 1:
            raise ValueError(
                f"the target layer {target_name!r} ran {self.calls} times in one forward pass; "
                "pick a layer that runs once (the one whose output feeds the global pooling)"
            )
        if features.is_floating_point():
            check_finite(features, f"the features of {target_name!r}",
                         "the model overflowed before its head (run it in float32, check its weights)")
        return features


def _remove_handles(handles: list) -> None:
    for handle in handles:
        handle.remove()
    handles.clear()


def _check_on_device_of(images: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """Images on the classifier's device, in its dtype (or under autocast)."""
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


def _requested_classes(classes: ClassIndices, top_k: int | None, batch: int, num_classes: int,
                       device: torch.device) -> torch.Tensor | None:
    """Validate ``top_k`` and ``classes`` against the classifier; return the classes as a tensor."""
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= num_classes:
            raise ValueError(
                f"top_k must be an int from 1 to {num_classes} (the number of classes), got {top_k!r}"
            )
    if classes is not None:
        classes = as_class_tensor(classes, batch, num_classes, device)
        if classes.ndim != 1:
            raise ValueError(f"classes must hold one index per image, got shape {tuple(classes.shape)}; "
                             "for several classes per image use top_k or class_activation_maps")
    return classes


def _check_logits(model: nn.Module, fc: nn.Linear, fc_name: str, logits: object, batch: int) -> None:
    """Logits of shape ``(B, C)``; NaN/Inf in the classifier or the logits named before anything else."""
    num_classes = fc.weight.shape[0]
    if not isinstance(logits, torch.Tensor) or logits.shape != (batch, num_classes):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise CAMNotApplicableError(
            f"CAM does not apply to this model: it should return logits of shape ({batch}, {num_classes}), "
            f"got {got}. {CAM_ADVICE}."
        )
    for value in [fc.weight] + ([fc.bias] if fc.bias is not None else []):
        check_finite(value, f"the weights of the classifier {fc_name!r}",
                     "the model is broken (a diverged training run?): reload a good checkpoint, or "
                     "retrain with a lower learning rate")
    check_finite_logits(model, logits)


def _log_verified(pooling: str, activation: str, target_name: str | None, fc: nn.Linear, fc_name: str) -> None:
    """The one INFO line of a verified head (and a warning when the check was vacuous)."""
    extra = ", after a functional ReLU" if activation == "relu" else ""
    logger.info("CAMExtractor: verified logits == %s-pool(f%s) @ W.T + b at %r (classifier %r)",
                {"avg": "global average", "max": "global max"}[pooling], extra, target_name, fc_name)
    if pooling == "max":
        logger.info("CAMExtractor: global max pooling: maps are computed the same way, but the score "
                    "is sum_k w_k max f_k + b, not the map's mean plus b")
    if not bool(fc.weight.detach().any()):
        logger.warning("CAMExtractor: the classifier's weight is all zeros, so the check is vacuous")


class CAMExtractor:
    """Class activation maps and logits from one forward pass of a GAP (or GMP) classifier.

    It hooks the layer whose output ``f`` feeds the global pooling, reads the weight ``W`` of the
    linear layer after it (from the live model at each call), and returns ``M_c = sum_k w_k^c f_k``
    for the classes asked for, upsampled and normalised.

    Finding the layers (when not given; :mod:`cam_tutorial.anymodel.heads` does the finding and checking):

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

    Give ``example`` (a batch the model accepts) to settle all of this at construction: the
    extractor runs one pass then, and :attr:`target_name`, :attr:`fc_name` and :attr:`pooling`
    are known before the first real call.

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
        example: optional images to run once at construction, so the layers and the pooling are
            found and verified there rather than on the first call.

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
        >>> import torchvision
        >>> net = torchvision.models.resnet18(num_classes=3).eval()
        >>> with CAMExtractor(net, example=torch.rand(1, 3, 64, 64)) as cam:
        ...     print(cam.target_name, cam.fc_name, cam.pooling)
        layer4 fc avg
    """

    def __init__(
        self,
        model: nn.Module,
        target_layer: nn.Module | str | None = None,
        fc_layer: nn.Module | str | None = None,
        example: torch.Tensor | None = None,
    ) -> None:
        check_model(model, eval_mode=False)
        self.model = model
        # Linears that could each be the classifier; the first call settles which (see _settle_fc).
        self.fc, self._fc_candidates = find_classifier(model, fc_layer)
        self._name_classifier()
        self.pooling: str | None = None  # "avg" or "max", once verified
        self.activation: str | None = None  # "none" or "relu" between f and the pooling
        self._store = _FeatureStore()
        self._closed = False
        self._handles: list = []
        self._finalizer = weakref.finalize(self, _remove_handles, self._handles)
        self._fc_handles = [linear.register_forward_hook(self._store.record_linear)
                            for linear in self._fc_candidates]
        self._handles.extend(self._fc_handles)  # so that close() and the finaliser remove them too
        self.target_layer: nn.Module | None = None
        self.target_name: str | None = None
        if target_layer is not None:
            self._set_target(resolve_submodule(model, target_layer, "target_layer"), "given")
        elif default_feature_layer(model) is not None:
            self._set_target(default_feature_layer(model), "the model's .features")
        else:
            self._install_probe()
        # The layers found are debug detail; the one INFO line is the verification (_accept).
        logger.debug("CAMExtractor: classifier %r (%d classes, %d channels)", self.fc_name, self.num_classes,
                     self.num_channels)
        if example is not None:
            self(example)  # settles the classifier, the feature layer and the pooling now

    # -- hooks -------------------------------------------------------------------------------

    def _name_classifier(self) -> None:
        self.fc_name = module_name(self.model, self.fc)
        self.num_classes, self.num_channels = self.fc.weight.shape

    def _settle_fc(self, logits: object) -> None:
        """First call with several candidate classifiers: take the one whose output is the logits."""
        produced = [m for m, out in self._store.linear_outputs if out is logits]
        _remove_handles(self._fc_handles)
        self._fc_candidates, self._store.linear_outputs = [], []
        if produced and produced[-1] is not self.fc:
            self.fc = produced[-1]
            self._name_classifier()
            logger.debug("CAMExtractor: classifier %r returns the logits (%d classes, %d channels)",
                         self.fc_name, self.num_classes, self.num_channels)

    def _set_target(self, layer: nn.Module, how: str) -> None:
        self.target_layer = layer
        self.target_name = module_name(self.model, layer)
        self._handles.append(layer.register_forward_hook(self._store.capture))
        logger.debug("CAMExtractor: feature layer %r (%s)", self.target_name, how)

    def _install_probe(self) -> None:
        # Until the first call settles the classifier, any candidate's input width could be K.
        channels = {self.num_channels} | {m.in_features for m in self._fc_candidates}
        for name, module in self.model.named_modules():
            if module is not self.model:
                self._handles.append(module.register_forward_hook(self._store.probe_hook(name, channels)))

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
        images = _check_on_device_of(check_image_batch(images), self.fc.weight)
        batch = images.shape[0]
        if classes is not None and top_k is not None:
            raise ValueError("give either classes or top_k, not both")
        settling = bool(self._fc_candidates)  # the class count is known once the classifier is
        if not settling:
            classes = _requested_classes(classes, top_k, batch, self.num_classes, images.device)
        check_model(self.model)
        logits = self._forward(images)
        if settling:
            self._settle_fc(logits)
            classes = _requested_classes(classes, top_k, batch, self.num_classes, images.device)
        _check_logits(self.model, self.fc, self.fc_name, logits, batch)
        features = self._features(logits)
        if top_k is not None:
            classes = logits.topk(top_k, dim=1).indices
        elif classes is None:
            classes = logits.argmax(dim=1)
        maps = class_activation_maps(features, self.fc.weight, classes)
        check_finite(maps, "the class activation maps", "the features times the classifier's weight "
                     "overflowed; run the model in float32")
        if upsample:
            maps = upsample_maps(maps, tuple(images.shape[-2:]))
        if normalize:
            maps = normalize_maps(maps, inplace=True)
        return CAMResult(logits=logits, classes=classes, maps=maps, features=features)

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        """The model's output, with the hooks recording (and only then)."""
        self._store.reset()
        self._store.active = True
        try:
            with torch.no_grad():
                return self.model(images)
        finally:
            self._store.active = False

    def _features(self, logits: torch.Tensor) -> torch.Tensor:
        """``f`` of this pass (verified on the first call), after the head's ReLU if it has one."""
        if self.target_layer is None:
            name, features, match = choose_feature_layer(self._store.probe, logits, self.fc, self.fc_name)
            _remove_handles(self._handles)
            self._set_target(self.model.get_submodule(name), "found by matching the logits")
            self._accept(*match)
        else:
            features = self._store.captured_features(self.target_name)
            if self.pooling is None:
                self._accept(*verify_head(features, logits, self.fc, self.target_name, self.fc_name))
        self._store.output, self._store.probe = None, []
        return F.relu(features) if self.activation == "relu" else features

    def _accept(self, pooling: str, activation: str) -> None:
        self.pooling, self.activation = pooling, activation
        _log_verified(pooling, activation, self.target_name, self.fc, self.fc_name)


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
    upsample: bool = True,
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
        upsample: resize the maps to the images' size (bilinear); ``False`` keeps them at the
            feature maps' resolution (normalised), e.g. for a protocol that upsamples its own way
            (:func:`~cam_tutorial.localize.max_box_acc` with ``size=``).

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
            result = extractor(images, classes=wanted, upsample=upsample)
            return result.logits, result.maps

        return maps_for_dataset(compute, dataset, batch_size, device, classes=classes, progress=progress,
                                num_workers=num_workers, desc="class activation maps")
