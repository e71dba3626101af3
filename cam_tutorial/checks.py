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

__all__ = [
    "ClassIndices",
    "as_class_tensor",
    "check_finite",
    "check_finite_logits",
    "check_image_batch",
    "check_model",
    "module_name",
    "nonfinite_parameters",
    "resolve_submodule",
]

ClassIndices = Union[int, Sequence[int], torch.Tensor, None]

_TRAINING_MODE = ("the model is in training mode: call model.eval() first (dropout would change the scores "
                  "and batch norm would update its statistics)")


def check_model(model: object, eval_mode: bool = True) -> None:
    """Raise unless ``model`` is an ``nn.Module`` (in eval mode, when ``eval_mode``).

    Example:
        >>> from torch import nn
        >>> check_model(nn.Linear(2, 2).train(), eval_mode=False)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if eval_mode and model.training:
        raise ValueError(_TRAINING_MODE)


def check_finite(values: torch.Tensor, what: str, fix: str) -> None:
    """Raise ``ValueError`` naming ``what`` and ``fix`` when ``values`` hold a NaN or an infinity.

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


def nonfinite_parameters(model: nn.Module) -> list[str]:
    """Names of the parameters and buffers of ``model`` that hold a NaN or an infinity.

    Example:
        >>> from torch import nn
        >>> nonfinite_parameters(nn.Linear(2, 2))
        []
    """
    named = list(model.named_parameters()) + list(model.named_buffers())
    return [name for name, value in named if value.is_floating_point() and not bool(torch.isfinite(value).all())]


def check_finite_logits(model: nn.Module, logits: torch.Tensor) -> None:
    """NaN/Inf logits: say so, and whether the parameters or the forward pass are to blame.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> check_finite_logits(nn.Linear(2, 2), torch.zeros(1, 2))
    """
    if logits.is_floating_point() and not bool(torch.isfinite(logits.detach()).all()):
        broken = nonfinite_parameters(model)
        where = (f"non-finite parameters or buffers: {', '.join(broken[:5])}" if broken else
                 "its parameters are finite, so the forward pass overflowed (run it in float32, not float16, "
                 "and check the input scale)")
        check_finite(logits, "the logits", f"the model produced them ({where}); fix the model before "
                     "computing maps")


def check_image_batch(images: object) -> torch.Tensor:
    """Validate a batch of images for a classifier: a float ``(B, 3, H, W)`` tensor.

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

    Example:
        >>> import torch
        >>> as_class_tensor([0, 1], batch=2, num_classes=3, device=torch.device("cpu")).tolist()
        [0, 1]
    """
    if isinstance(classes, bool):
        raise TypeError("classes must be an int, a sequence of ints or an integer tensor, got a bool")
    if isinstance(classes, int):
        idx = torch.full((batch,), classes, dtype=torch.long, device=device)
    else:
        idx = _index_tensor(classes, batch, device)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= num_classes):
        bad = idx[(idx < 0) | (idx >= num_classes)][0]
        raise ValueError(f"class index {int(bad)} is out of range: valid indices are 0 to {num_classes - 1}")
    return idx


def _index_tensor(classes: object, batch: int, device: torch.device) -> torch.Tensor:
    """A sequence or tensor of class indices as a ``(B,)`` or ``(B, k)`` LongTensor (range unchecked)."""
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
    return idx.long()


def module_name(model: nn.Module, module: nn.Module) -> str:
    """The dotted name of ``module`` inside ``model`` (``"<model>"`` for the model itself).

    Example:
        >>> from torch import nn
        >>> module_name(nn.Sequential(nn.ReLU(), nn.Linear(2, 2)), nn.Linear(2, 2))
        'Linear'
    """
    for name, sub in model.named_modules():
        if sub is module:
            return name or "<model>"
    return type(module).__name__


def resolve_submodule(model: nn.Module, layer: nn.Module | str, what: str) -> nn.Module:
    """The submodule ``layer`` names (a dotted name) or is; errors list the names there are.

    Example:
        >>> from torch import nn
        >>> type(resolve_submodule(nn.Sequential(nn.ReLU()), "0", "target_layer")).__name__
        'ReLU'
    """
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
