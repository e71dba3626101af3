"""Gradient methods to compare CAM with: backprop saliency and Grad-CAM.

**Gradient saliency** (Simonyan et al., 2014; the "backprop" baseline of the CAM paper's
Table 3) asks how much the score of class ``c`` moves when one pixel moves:

    A_c(x, y) = max_{colour} | dS_c / dI(colour, x, y) |.

It needs nothing of the architecture, so it also works for the fully connected ``vgg16_fc``.

**Grad-CAM** (Selvaraju et al., 2017) weights the channels of a layer's maps ``f`` by the mean
gradient of the score over positions and keeps the positive part:

    alpha_k^c = (1/Z) sum_{x,y} dS_c / df_k(x, y),     L_c = ReLU(sum_k alpha_k^c f_k).

For a CAM model (``f -> global average pooling -> linear W``) the gradient is the same at every
position, ``dS_c / df_k(x, y) = w_k^c / Z``, so ``alpha_k^c = w_k^c / Z`` and
``L_c = ReLU(M_c) / Z``: Grad-CAM *is* CAM there, up to the ReLU and a constant.

Both run one forward and one backward pass for the whole batch: the scores of the chosen classes
are summed (images in an eval-mode batch do not interact, so the gradient of the sum with respect to
one image is the gradient of that image's score), and :func:`torch.autograd.grad` differentiates
with respect to the input (or the layer) only, so no ``.grad`` is left on the model's parameters.

Example:
    >>> import torch
    >>> from cam_tutorial.models import ResNet18B
    >>> model = ResNet18B(num_classes=3, width=4).eval()
    >>> images = torch.rand(2, 3, 64, 64)
    >>> gradient_saliency(model, images).shape, grad_cam(model, images).shape
    (torch.Size([2, 64, 64]), torch.Size([2, 4, 4]))
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from cam_tutorial.anymodel.extractor import forward_recording, layer_output
from cam_tutorial.anymodel.heads import module_name, resolve_submodule
from cam_tutorial.cam import normalize_maps, upsample_maps
from cam_tutorial.checks import (
    ClassIndices,
    check_finite,
    check_finite_logits,
    check_image_batch,
    check_model,
    requested_classes,
)

__all__ = ["gradient_saliency", "grad_cam"]

logger = logging.getLogger(__name__)

_GRADIENT_FIX = ("the backward pass overflowed (run the model in float32, not float16) or a layer's gradient "
                 "is undefined there (e.g. sqrt at 0); check the model's weights with torch.isfinite")


def _summed_score(model: nn.Module, logits: object, classes: ClassIndices, batch: int) -> torch.Tensor:
    """The sum over the batch of each image's score for its class (checked, as the logits are)."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != batch:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the model should return logits of shape ({batch}, C), got {got}")
    idx = requested_classes(classes, None, batch, logits.shape[1], logits.device)
    check_finite_logits(model, logits)
    idx = logits.detach().argmax(dim=1) if idx is None else idx
    return logits.gather(1, idx[:, None]).sum()


def gradient_saliency(model: nn.Module, images: torch.Tensor, classes: ClassIndices = None) -> torch.Tensor:
    """Backprop saliency ``max_colour |dS_c / dI|`` (Simonyan et al., 2014) for a batch.
    Used in chapter 1, and the appendix.

    Args:
        model: any classifier in eval mode returning logits ``(B, C)`` (it need not be a CAM model).
        images: ``(B, 3, H, W)`` float tensor, normalised as the model expects; ``(3, H, W)`` is a
            batch of one.
        classes: ``None`` for each image's predicted class, an int for the same class for all, or one
            index per image (sequence or ``(B,)`` tensor).

    Returns:
        ``(B, H, W)`` non-negative float maps, detached, in the images' dtype. Not normalised
        (use :func:`cam_tutorial.cam.normalize_maps` to compare with other maps).

    Raises:
        TypeError: non-tensor or non-float images, non-integer classes.
        ValueError: wrong image shape, model in training mode, class index out of range.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).eval()
        >>> s = gradient_saliency(model, torch.rand(1, 3, 4, 4), classes=1)
        >>> w = model[1].weight[1].reshape(3, 4, 4)
        >>> torch.allclose(s[0], w.abs().amax(dim=0))  # a linear model's gradient is its weight
        True
    """
    check_model(model)
    x = check_image_batch(images).detach().clone().requires_grad_(True)
    with torch.enable_grad():
        score = _summed_score(model, model(x), classes, x.shape[0])
        (grad,) = torch.autograd.grad(score, x)
    check_finite(grad, "the gradients of the scores", _GRADIENT_FIX)
    return grad.abs().amax(dim=1)


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    classes: ClassIndices = None,
    target_layer: nn.Module | str | None = None,
    upsample: bool = False,
    normalize: bool = False,
) -> torch.Tensor:
    """Grad-CAM maps ``ReLU(sum_k alpha_k^c f_k)``, ``alpha_k^c = mean_{x,y} dS_c/df_k`` (Selvaraju et al., 2017).
    Used in the appendix.

    Args:
        model: any classifier in eval mode returning logits ``(B, C)``.
        images: ``(B, 3, H, W)`` float tensor (``(3, H, W)`` is a batch of one).
        classes: ``None`` for each image's predicted class, an int, or one index per image.
        target_layer: the layer whose output is ``f`` (module or dotted name such as ``"layer4"``);
            default ``model.features`` (the book's models).
        upsample: resize the maps to ``(H, W)`` (bilinear, ``align_corners=False``), as
            :func:`~cam_tutorial.cam.compute_cams` does.
        normalize: min-max normalise each map to ``[0, 1]`` (after upsampling); a map that is all
            zeros (every position negative before the ReLU) stays zeros.

    Returns:
        ``(B, h, w)`` raw maps at the layer's resolution, or ``(B, H, W)`` when upsampled; float32
        or wider, detached.

    Raises:
        TypeError: non-float images, non-integer classes, a target layer that is not a module.
        ValueError: wrong image shape, model in training mode, class out of range, no ``.features``
            and no ``target_layer``, a target layer that does not run exactly once or does not output
            a ``(B, K, h, w)`` tensor.

    Example:
        >>> import torch
        >>> from cam_tutorial.models import ResNet18B
        >>> from cam_tutorial.cam import compute_cams
        >>> model = ResNet18B(num_classes=3, width=4).eval()
        >>> images = torch.rand(2, 3, 64, 64)
        >>> out = compute_cams(model, images, upsample=False, normalize=False)
        >>> Z = out.maps.shape[-1] * out.maps.shape[-2]
        >>> torch.allclose(grad_cam(model, images), out.maps.clamp(min=0) / Z, atol=1e-6)
        True
    """
    check_model(model)
    images = check_image_batch(images)
    layer = resolve_submodule(model, "features" if target_layer is None else target_layer, "target_layer")
    f, grad = _maps_and_gradient(model, layer, images, classes)
    check_finite(grad, "the gradients of the scores", _GRADIENT_FIX)
    dtype = torch.promote_types(f.dtype, torch.float32)
    f, grad = f.detach().to(dtype), grad.to(dtype)
    alpha = grad.mean(dim=(2, 3))  # (B, K)
    maps = F.relu(torch.einsum("bk,bkhw->bhw", alpha, f))
    if upsample:
        maps = upsample_maps(maps, tuple(images.shape[-2:]))
    if normalize:
        maps = normalize_maps(maps, inplace=True)
    return maps


def _maps_and_gradient(model: nn.Module, layer: nn.Module, images: torch.Tensor,
                       classes: ClassIndices) -> tuple[torch.Tensor, torch.Tensor]:
    """``layer``'s output ``f`` (B, K, h, w) in one forward pass, and the gradient of the chosen
    classes' scores with respect to it."""
    # The input needs a gradient so that every activation does, even for a frozen model; the
    # backward pass stops at the layer's output, so nothing before it is differentiated.
    x = images.detach().clone().requires_grad_(True)
    name = module_name(model, layer)
    with torch.enable_grad():
        logits, recorded = forward_recording(model, x, [(name, layer)])
        f = layer_output(recorded, name)
        if f.ndim != 4 or f.shape[0] != x.shape[0]:
            raise ValueError(f"the target layer {name!r} must output maps of shape (B, K, h, w), got {tuple(f.shape)}")
        (grad,) = torch.autograd.grad(_summed_score(model, logits, classes, x.shape[0]), f)
    return f, grad
