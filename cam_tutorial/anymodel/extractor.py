"""CAM for any network: hooks, head discovery and a check of the head, for torchvision's models.

:func:`cam_tutorial.cam.compute_cams` reads ``model.features``, ``model.pool`` and
``model.classifier`` directly. Other networks hide their last convolutional maps inside
``forward``: :class:`CAMExtractor` hooks the layer that outputs them (found by a probe of every
module when not given) for the length of one forward pass, takes the classifier that returns
the logits (not the Linears of a squeeze-excitation block, :mod:`cam_tutorial.anymodel.heads`),
checks once that ``logits == pool(f) @ W.T + b``, and then computes the same maps with the
same kernel, :func:`cam_tutorial.cam.class_activation_maps`.

Example:
    >>> import torch
    >>> from torch import nn
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

import functools
import logging
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cam_tutorial.anymodel.heads import (
    CAM_ADVICE,
    choose_feature_layer,
    could_be_features,
    find_classifier,
    module_name,
    resolve_submodule,
)
from cam_tutorial.cam import (
    CAMNotApplicableError,
    CAMResult,
    cam_result,
    has_cam_layout,
)
from cam_tutorial.checks import (
    ClassIndices,
    check_finite,
    check_finite_logits,
    check_image_batch,
    check_model,
    check_on_device_of,
    requested_classes,
)

__all__ = ["CAMExtractor"]

logger = logging.getLogger(__name__)


def forward_recording(model: nn.Module, images: torch.Tensor, layers: list[tuple[str, nn.Module]],
                      keep: Callable[[object], bool] | None = None) -> tuple[object, list[tuple[str, object]]]:
    """``model(images)``, and the ``(name, output)`` of each of ``layers`` each time it ran, in
    order (only the outputs ``keep`` accepts, if given). The hooks live only during this one pass.
    Used in no chapter directly.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
        >>> _, recorded = forward_recording(model, torch.rand(1, 3, 2, 2), [("0", model[0])])
        >>> [(name, tuple(out.shape)) for name, out in recorded], bool(model[0]._forward_hooks)
        ([('0', (1, 4, 2, 2))], False)
    """
    recorded: list[tuple[str, object]] = []

    def record(name: str, module: nn.Module, inputs: tuple, output: object) -> None:
        if keep is None or keep(output):
            recorded.append((name, output))

    handles = [layer.register_forward_hook(functools.partial(record, name)) for name, layer in layers]
    try:
        return model(images), recorded
    finally:
        for handle in handles:
            handle.remove()


def layer_output(recorded: list[tuple[str, object]], name: str | None) -> torch.Tensor:
    """The one tensor a target layer output in a pass (from :func:`forward_recording`), or a
    ``ValueError`` saying why there is not one.
    Used in no chapter directly.

    Example:
        >>> import torch
        >>> layer_output([("conv", torch.zeros(1, 2, 3, 3))], "conv").shape
        torch.Size([1, 2, 3, 3])
    """
    if len(recorded) > 1:
        raise ValueError(f"the target layer {name!r} ran {len(recorded)} times in one forward pass; pick the layer "
                         "whose output are the last convolutional maps (the input of the global pooling), which "
                         "runs once")
    if not recorded or not isinstance(recorded[0][1], torch.Tensor):
        raise ValueError(f"the target layer {name!r} did not output a tensor during the forward pass; pick the "
                         "layer whose output feeds the global pooling")
    return recorded[0][1]


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
    """Class activation maps and logits from one forward pass of any GAP (or GMP) classifier (chapter 8).
    Used in the appendix.

    It hooks the layer whose output ``f`` feeds the global pooling, reads the weight ``W`` of the
    linear layer after it (from the live model at each call), and returns ``M_c = sum_k w_k^c f_k``
    for the classes asked for, upsampled and normalised.

    Finding the layers (when not given; :mod:`cam_tutorial.anymodel.heads` does the finding and checking):

    * the classifier: ``model.classifier`` if it is an ``nn.Linear`` (the book's models), else an
      ``nn.Linear`` of the model that can be a CAM head: one that does not sit in an
      ``nn.Sequential`` with another weighted layer, an activation or a normalisation (so not the
      Linears of a squeeze-excitation block or an MLP). Of those, the shallowest (then the last
      registered) is taken (name another with ``fc_layer``). If no Linear can be a head
      (mobilenet_v3's Linear-Hardswish-Dropout-Linear, VGG16's FC stack, convnext's LayerNorm),
      CAM does not apply: :class:`CAMNotApplicableError`. Dropout, Identity, Flatten and pooling
      around it are fine (dropout is the identity in eval).
    * the feature layer: ``model.features`` for a model laid out as ``features -> pool ->
      classifier`` (the book's, :func:`~cam_tutorial.cam.has_cam_layout`); otherwise, on the first call, every 4-D output with ``K`` channels and
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

    The hooks live only for the forward pass of each call: nothing stays on the model between
    calls. :meth:`close` (or leaving a ``with`` block) refuses later calls.

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
        self.fc = find_classifier(model, fc_layer)
        self.fc_name = module_name(model, self.fc)
        self.num_classes, self.num_channels = self.fc.weight.shape
        self.pooling: str | None = None  # "avg" or "max", once verified
        self.activation: str | None = None  # "none" or "relu" between f and the pooling
        self._closed = False
        self.target_layer: nn.Module | None = None
        self.target_name: str | None = None
        if target_layer is not None:
            self._set_target(resolve_submodule(model, target_layer, "target_layer"), "given")
        elif has_cam_layout(model):
            self._set_target(model.features, "the model's .features")
        # The layers found are debug detail; the one INFO line is the verification (_log_verified).
        logger.debug("CAMExtractor: classifier %r (%d classes, %d channels)", self.fc_name, self.num_classes,
                     self.num_channels)
        if example is not None:
            self(example)  # settles the feature layer and the pooling now

    def _set_target(self, layer: nn.Module, how: str) -> None:
        self.target_layer = layer
        self.target_name = module_name(self.model, layer)
        logger.debug("CAMExtractor: feature layer %r (%s)", self.target_name, how)

    def close(self) -> None:
        """Refuse later calls (safe to call twice). No hook stays on the model between calls."""
        self._closed = True

    def __enter__(self) -> "CAMExtractor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"CAMExtractor(target_layer={self.target_name!r}, fc_layer={self.fc_name!r}, "
                f"pooling={self.pooling!r})")

    def __call__(
        self,
        images: torch.Tensor,
        classes: ClassIndices = None,
        top_k: int | None = None,
        upsample: bool = True,
        normalize: bool = True,
    ) -> CAMResult:
        """Run the model once; return logits and the class activation maps.

        The arguments, the result and the errors are those of
        :func:`~cam_tutorial.cam.compute_cams` (without ``model``), for any head this extractor
        verified: :class:`~cam_tutorial.cam.CAMNotApplicableError` when the head is not global
        pooling followed by one linear layer. The forward pass runs without gradients.
        """
        if self._closed:
            raise RuntimeError("this CAMExtractor is closed; create a new one")
        images = check_on_device_of(check_image_batch(images), self.fc.weight)
        batch = images.shape[0]
        classes = requested_classes(classes, top_k, batch, self.num_classes, images.device)
        check_model(self.model)
        if self.target_layer is not None:
            layers, keep = [(self.target_name, self.target_layer)], None
        else:  # the probe: every output that could be f
            layers = [(name, m) for name, m in self.model.named_modules() if m is not self.model]
            keep = functools.partial(could_be_features, channels=self.num_channels)
        with torch.no_grad():
            logits, recorded = forward_recording(self.model, images, layers, keep)
        _check_logits(self.model, self.fc, self.fc_name, logits, batch)
        size = tuple(images.shape[-2:]) if upsample else None
        return cam_result(self._features(recorded, logits), self.fc.weight, logits, classes, top_k, size, normalize)

    def _features(self, recorded: list[tuple[str, object]], logits: torch.Tensor) -> torch.Tensor:
        """``f`` of this pass (found and verified on the first call), after the head's ReLU if it has one."""
        if self.target_layer is not None:
            features = layer_output(recorded, self.target_name)
            if features.is_floating_point():
                check_finite(features, f"the features of {self.target_name!r}",
                             "the model overflowed before its head (run it in float32, check its weights)")
            recorded = [(self.target_name, features)]
        if self.pooling is None:
            name, features, (self.pooling, self.activation) = choose_feature_layer(recorded, logits, self.fc,
                                                                                   self.fc_name)
            if self.target_layer is None:
                self._set_target(self.model.get_submodule(name), "found by matching the logits")
            _log_verified(self.pooling, self.activation, self.target_name, self.fc, self.fc_name)
        return F.relu(features) if self.activation == "relu" else features
