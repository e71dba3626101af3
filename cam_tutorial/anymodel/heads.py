"""Finding and verifying a CAM-readable head: global pooling of ``f`` straight into one Linear.

CAM reads a class score as a weighted sum of pooled maps, ``S_c = sum_k w_k^c pool(f_k) + b_c``.
This module answers the two questions that come before any map, with no hooks of its own:

* *which Linear is the classifier, and can it be a CAM head?* (:func:`find_classifier`): a Linear
  in an ``nn.Sequential`` with an activation, a norm or another weighted layer (an MLP head, a
  squeeze-excitation block) cannot be; the structure alone says so.
* *which layer's output is ``f``, and does it obey the identity?* (:func:`choose_feature_layer`,
  :func:`match_head`): ``logits == pool(act(f)) @ W.T + b`` within float tolerance, for average
  or max pooling, with or without a functional ReLU.

:class:`cam_tutorial.anymodel.extractor.CAMExtractor` owns the hooks that record the outputs and calls these.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    >>> fc = find_classifier(model)
    >>> f = model[0](torch.rand(1, 3, 8, 8))
    >>> match_head(f, fc(f.mean(dim=(2, 3))), fc)
    ('avg', 'none')
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from cam_tutorial.cam import CAMNotApplicableError

__all__ = [
    "CAM_ADVICE",
    "choose_feature_layer",
    "could_be_features",
    "find_classifier",
    "head_problem",
    "match_head",
]

logger = logging.getLogger(__name__)

CAM_ADVICE = (
    "CAM needs the last convolutional maps to go through global average (or max) pooling "
    "straight into one linear layer, so that every class score is a weighted sum of pooled maps. "
    "Use a model with that head (e.g. the book's vgg16_gap or ResNet18B, torchvision's resnet, "
    "densenet or efficientnet) or a gradient method such as Grad-CAM; if the model does have that head "
    "and the wrong layers were picked, name them: CAMExtractor(model, target_layer=..., fc_layer=...)"
)

_ACTIVATIONS = tuple(
    cls for cls in vars(nn.modules.activation).values()
    if isinstance(cls, type) and issubclass(cls, nn.Module) and cls is not nn.Module
)
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
_WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd, nn.Bilinear)


def head_problem(model: nn.Module, fc: nn.Module) -> str | None:
    """Why ``fc`` cannot be a CAM head, from the model's structure alone; ``None`` if it can.
    Used in no chapter directly.

    Example:
        >>> from torch import nn
        >>> mlp = nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
        >>> head_problem(mlp, mlp[1][2]).startswith("CAM does not apply")
        True
    """
    for name, parent in model.named_modules():
        if isinstance(parent, nn.Sequential) and parent is not model and any(
            child is fc for child in parent.children()
        ):
            children = list(parent.children())
            if any(isinstance(c, _WEIGHTED + _ACTIVATIONS + _NORMS) for c in children if c is not fc):
                layout = " -> ".join(type(c).__name__ for c in children)
                return (f"CAM does not apply to this model: the head {name!r} is {layout}, "
                        "not global pooling followed by one linear layer. "
                        f"{CAM_ADVICE}.")
    return None


def find_classifier(model: nn.Module, fc_layer: nn.Module | str | None = None) -> nn.Linear:
    """The classifier Linear.
    Used in no chapter directly.

    ``fc_layer`` if given; else ``model.classifier`` if it is a Linear (the book's models); else
    the shallowest (then the last registered) Linear that can be a head.

    Raises:
        CAMNotApplicableError: no Linear, or none that can be a CAM head.
        TypeError: ``fc_layer`` is not a Linear.

    Example:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> find_classifier(model) is model[3]
        True
    """
    if fc_layer is not None:
        fc = resolve_submodule(model, fc_layer, "fc_layer")
    elif isinstance(getattr(model, "classifier", None), nn.Linear):
        fc = model.classifier
    else:
        linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise CAMNotApplicableError(
                f"CAM does not apply to this model: it has no nn.Linear classifier. {CAM_ADVICE}."
            )
        # A Linear in a block with an activation, a norm or another weighted layer (the two
        # Linears of a squeeze-excitation block, an MLP) cannot be a CAM head. Of the rest the
        # shallowest, then the last registered, is the likeliest classifier (resnet's fc,
        # googlenet's fc over its aux heads); another is named with fc_layer.
        heads = [(name, m) for name, m in linears if head_problem(model, m) is None]
        if not heads:
            fc = linears[-1][1]  # the structure check below says why it cannot be the head
        else:
            fc = min(reversed(heads), key=lambda item: item[0].count("."))[1]
    if not isinstance(fc, nn.Linear):
        raise TypeError(f"fc_layer must be an nn.Linear, got {type(fc).__name__}")
    problem = head_problem(model, fc)
    if problem is not None:
        raise CAMNotApplicableError(problem)
    return fc


def match_head(features: torch.Tensor, logits: torch.Tensor, fc: nn.Linear) -> tuple[str, str] | None:
    """Which ``(pooling, activation)`` makes ``pool(act(f)) @ W.T + b`` equal the logits, if any.
    Used in no chapter directly.

    ``pooling`` is ``"avg"`` or ``"max"``, ``activation`` ``"none"`` or ``"relu"``; the tolerance
    is relative to the largest logit (looser in float16/bfloat16).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> fc = nn.Linear(4, 2)
        >>> f = torch.rand(1, 4, 3, 3)
        >>> match_head(f, fc(f.amax(dim=(2, 3))), fc)
        ('max', 'none')
    """
    weight = fc.weight.detach().float()
    bias = fc.bias.detach().float() if fc.bias is not None else 0.0
    target = logits.detach().float()
    low_precision = logits.dtype in (torch.float16, torch.bfloat16) or features.dtype in (
        torch.float16, torch.bfloat16)
    rtol = 2e-2 if low_precision else 1e-3
    tol = 1e-6 + rtol * float(target.abs().max())
    with torch.autocast(features.device.type, enabled=False):  # a check in float32, even under autocast
        f = features.detach().float()
        for activation in ("none", "relu"):
            g = f if activation == "none" else F.relu(f)
            for pooling, pooled in (("avg", g.mean(dim=(2, 3))), ("max", g.amax(dim=(2, 3)))):
                err = float((pooled @ weight.T + bias - target).abs().max())
                if err <= tol:
                    return pooling, activation
    return None


def could_be_features(output: object, channels: int) -> bool:
    """Whether a layer's ``output`` could be ``f``: a 4-D map with ``channels`` channels and more
    than one position.
    Used in no chapter directly.

    Example:
        >>> import torch
        >>> could_be_features(torch.rand(1, 4, 3, 3), 4), could_be_features(torch.rand(1, 4, 1, 1), 4)
        (True, False)
    """
    return (isinstance(output, torch.Tensor) and output.ndim == 4 and output.shape[1] == channels
            and output.shape[2] * output.shape[3] > 1)


def choose_feature_layer(recorded: list[tuple[str, torch.Tensor]], logits: torch.Tensor, fc: nn.Linear,
                         fc_name: str) -> tuple[str, torch.Tensor, tuple[str, str]]:
    """Of the layer outputs recorded in one pass, the last that can be ``f`` and whose pooling
    reproduces the logits.
    Used in no chapter directly.

    ``recorded`` holds ``(layer name, output)`` pairs in the order they ran: the target layer's
    output when it was named, else every output that :func:`could_be_features`.

    Returns ``(layer name, its output, (pooling, activation))``.

    Raises:
        CAMNotApplicableError: no output that can be ``f``, or none that verifies; the message
            names the layers and the classifier.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> fc = nn.Linear(4, 2)
        >>> f = torch.rand(1, 4, 3, 3)
        >>> choose_feature_layer([("conv", f)], fc(f.mean(dim=(2, 3))), fc, "fc")[0]
        'conv'
    """
    channels = fc.weight.shape[1]
    candidates = [(n, out) for n, out in recorded if could_be_features(out, channels)]
    seen: set[int] = set()
    for name, output in reversed(candidates):
        if id(output) in seen:  # a container and its last child record the same tensor
            continue
        seen.add(id(output))
        match = match_head(output, logits, fc)
        if match is not None:
            return name, output, match
    if not candidates:
        shapes = "".join(f"; {n!r} outputs shape {tuple(out.shape)}" for n, out in recorded)
        why = (f"no layer outputs a 4-D map with {channels} channels (the classifier {fc_name!r} takes {channels} "
               f"channels) and more than one position{shapes}; if the input is small the maps may be 1x1: use "
               "larger images")
    else:
        names = " or ".join(repr(n) for n in dict.fromkeys(n for n, _ in candidates))
        why = (f"the logits are not global pooling of {names} followed by {fc_name!r} (checked logits == "
               f"pool(f) @ W.T + b with average and max pooling, for every candidate with {channels} channels), "
               "so the head is not global pooling followed by one linear layer")
    raise CAMNotApplicableError(f"CAM does not apply to this model: {why}. {CAM_ADVICE}.")


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
