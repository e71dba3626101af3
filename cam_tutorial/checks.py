"""Input checks shared by every map method: one wording of each error, one place to fix it.

CAM (:mod:`cam_tutorial.cam`), the gradient methods (:mod:`cam_tutorial.methods.saliency`), the sanity
checks (:mod:`cam_tutorial.methods.sanity`) and the explorer (:mod:`cam_tutorial.book.widgets`) all take a model
in eval mode, a float image batch and class indices; the checks here say what is wrong and how to
fix it, the same way everywhere.

Example:
    >>> import torch
    >>> from torch import nn
    >>> check_image_batch(torch.zeros(3, 8, 8)).shape
    torch.Size([1, 3, 8, 8])
    >>> as_class_tensor(2, batch=3, num_classes=5, device=torch.device("cpu")).tolist()
    [2, 2, 2]
    >>> check_model(nn.Linear(2, 2).eval())
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

__all__ = ["check_model", "check_image_batch", "check_finite"]

ClassIndices = Union[int, Sequence[int], torch.Tensor, None]

_TRAINING_MODE = ("training mode: call model.eval() first (dropout would change the scores and batch norm "
                  "would update its running statistics on every call)")


def check_model(model: object, eval_mode: bool = True) -> None:
    """Raise unless ``model`` is an ``nn.Module`` (with every submodule in eval mode, when ``eval_mode``).
    Used in no chapter directly.

    One submodule in training mode is enough to change the maps and, for a batch norm, its
    running statistics for good: the error names the first such submodule.

    Example:
        >>> from torch import nn
        >>> check_model(nn.Linear(2, 2).train(), eval_mode=False)
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).eval()
        >>> _ = model[1].train()  # one batch norm switched back to training
        >>> check_model(model)
        Traceback (most recent call last):
        ...
        ValueError: the model's submodule '1' (BatchNorm2d) is in training mode: call model.eval() first ...
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not eval_mode:
        return
    for name, module in model.named_modules():
        if module.training:
            what = f"the model's submodule {name!r} ({type(module).__name__})" if name else "the model"
            raise ValueError(f"{what} is in {_TRAINING_MODE}")


def check_on_device_of(images: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """Return ``images`` if they are on ``param``'s device and in its dtype (or under autocast).

    Example:
        >>> import torch
        >>> check_on_device_of(torch.zeros(1, 3, 4, 4), torch.zeros(2)).shape
        torch.Size([1, 3, 4, 4])
    """
    if images.device != param.device:
        raise ValueError(
            f"images are on {images.device} but the model is on {param.device}: "
            f"use images.to({str(param.device)!r})"
        )
    if images.dtype != param.dtype and not torch.is_autocast_enabled(images.device.type):
        raise TypeError(
            f"images are {images.dtype} but the model is {param.dtype}: use images.to({param.dtype}) "
            "(or run under torch.autocast)"
        )
    return images


def check_finite(values: torch.Tensor, what: str, fix: str) -> None:
    """Raise ``ValueError`` naming ``what`` and ``fix`` when ``values`` hold a NaN or an infinity.
    Used in no chapter directly.

    Example:
        >>> import torch
        >>> check_finite(torch.ones(2), "the maps", "recompute them")
    """
    finite = torch.isfinite(values.detach())
    if not bool(finite.all()):
        bad = values.detach()[~finite]
        nans = int(torch.isnan(bad).sum())
        raise ValueError(
            f"{what} contain non-finite values ({nans} NaN, {bad.numel() - nans} infinite, "
            f"of {values.numel()}): {fix}"
        )


def broken_weights(model: nn.Module) -> list[str]:
    """The parameters and buffers of ``model`` that make its outputs NaN: non-finite values, and a
    batch norm's negative running variance (eval mode takes its square root).

    Example:
        >>> norm = nn.BatchNorm1d(2)
        >>> norm.running_var[0] = -1.0
        >>> broken_weights(norm)
        ['running_var (negative: a variance cannot be)']
    """
    found = []
    for name, value in [*model.named_parameters(), *model.named_buffers()]:
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            found.append(f"{name} (NaN or infinite)")
        elif name.rpartition(".")[2] == "running_var" and bool((value < 0).any()):
            found.append(f"{name} (negative: a variance cannot be)")
    return found


def check_finite_logits(model: nn.Module, logits: torch.Tensor) -> None:
    """NaN/Inf logits: say so, and whether the parameters or the forward pass are to blame.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> check_finite_logits(nn.Linear(2, 2), torch.zeros(1, 2))
    """
    if logits.is_floating_point() and not bool(torch.isfinite(logits.detach()).all()):
        broken = broken_weights(model)
        where = (f"broken weights: {', '.join(broken[:5])}" if broken else
                 "its parameters are finite, so the forward pass overflowed (run it in float32, not float16, "
                 "and check the input scale)")
        check_finite(logits, "the logits", f"the model produced them ({where}); fix the model before "
                     "computing maps")


def check_image_batch(images: object) -> torch.Tensor:
    """Validate a batch of images for a classifier: a float ``(B, 3, H, W)`` tensor.
    Used in no chapter directly.

    A single ``(3, H, W)`` image becomes a batch of one. Integer images, other ranks,
    channels-last layouts, empty batches and NaN/Inf pixels get an error that names the fix.
    Shared by every map method of the package.

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
    check_finite(images, "the input images", "check how they were loaded and normalised (a zero std, "
                 "a division by zero) or clean them with torch.nan_to_num")
    return images


def as_class_tensor(classes: ClassIndices, batch: int, num_classes: int, device: torch.device) -> torch.Tensor:
    """Validate class indices; return a LongTensor of shape ``(B,)`` or ``(B, k)`` on ``device``.

    One int (or a 0-d tensor) is the same class for every image.

    Example:
        >>> import torch
        >>> as_class_tensor([0, 1], batch=2, num_classes=3, device=torch.device("cpu")).tolist()
        [0, 1]
    """
    if isinstance(classes, bool):
        raise TypeError("classes must be an int, a sequence of ints or an integer tensor, got a bool")
    try:
        idx = torch.as_tensor(classes, device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"classes must be an int, a sequence of ints or an integer tensor, got {type(classes).__name__}"
        ) from err
    if idx.dtype == torch.bool or idx.is_floating_point() or idx.is_complex():
        raise TypeError(f"class indices must be integers, got dtype {idx.dtype}; use .long()")
    if idx.ndim == 0:
        idx = idx.expand(batch).clone()
    if idx.ndim not in (1, 2) or idx.shape[0] != batch:
        raise ValueError(
            f"classes must hold one index per image (shape ({batch},)) or k per image (shape ({batch}, k)), "
            f"got shape {tuple(idx.shape)} for a batch of {batch}"
        )
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= num_classes):
        bad = idx[(idx < 0) | (idx >= num_classes)][0]
        raise ValueError(f"class index {int(bad)} is out of range: valid indices are 0 to {num_classes - 1}")
    return idx.long()


def requested_classes(classes: ClassIndices, top_k: int | None, batch: int, num_classes: int,
                      device: torch.device) -> torch.Tensor | None:
    """Validate ``top_k`` (or ``classes``, one per image) against the classifier; the classes as a tensor.

    Example:
        >>> import torch
        >>> requested_classes([2, 0], None, batch=2, num_classes=3, device=torch.device("cpu")).tolist()
        [2, 0]
    """
    if classes is not None and top_k is not None:
        raise ValueError("give either classes or top_k, not both")
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


def check_features(features: object, fc_weight: torch.Tensor) -> None:
    """Raise unless ``features`` are floating ``(B, K, h, w)`` maps, ``K`` the classifier's inputs, ``h*w > 1``.

    What :func:`cam_tutorial.cam.compute_cams` checks before the kernel (chapter 5, pitfall 2: a
    weight read by its place in ``model.parameters()``).

    Example:
        >>> import torch
        >>> check_features(torch.rand(2, 4, 3, 3), torch.rand(5, 4))
        >>> check_features(torch.rand(2, 4, 3, 3), torch.rand(5, 3))
        Traceback (most recent call last):
        ...
        ValueError: the classifier has 3 inputs per class but features have 4 channels: ...
    """
    if not isinstance(features, torch.Tensor) or features.ndim != 4:
        got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must have shape (B, K, h, w), got {got}")
    if not features.is_floating_point():
        raise TypeError(f"features must be floating point, got {features.dtype}; use .float()")
    if fc_weight.ndim != 2:
        raise ValueError(f"the classifier's weight must have shape (C, K), got {tuple(fc_weight.shape)}: "
                         "read it by name (model.classifier.weight), not by its place in model.parameters()")
    if fc_weight.shape[1] != features.shape[1]:
        raise ValueError(
            f"the classifier has {fc_weight.shape[1]} inputs per class but features have {features.shape[1]} "
            "channels: the classifier must be the linear layer right after the global pooling of these features"
        )
    if features.shape[2] * features.shape[3] < 2:
        raise ValueError(f"the features are {features.shape[2]}x{features.shape[3]}: a map needs more than "
                         "one position; use larger images")
