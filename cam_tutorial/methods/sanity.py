"""Sanity checks for saliency maps: do they depend on the model, and do they point at evidence?

**Model randomisation** (Adebayo et al., 2018). A map that explains a model must change when the
model's weights are destroyed. :func:`cascading_randomization` re-initialises the layers one at a
time from the top (the classifier, then the last block, ...), recomputes the maps after each step
and measures how similar they still are to the original maps with Spearman's rank correlation

    rho = corr(rank(M_original), rank(M_randomised))        (per image, ties get average ranks).

A method whose maps survive a randomised network (rho stays near 1) shows the image, not the model.

**Deletion and insertion** (Petsiuk et al., 2018). If a map ranks pixels by importance, removing
the top-ranked pixels first should make the class probability fall fast (low area under the
*deletion* curve), and restoring them first onto a blurred copy should make it rise fast (high area
under the *insertion* curve). :func:`deletion_insertion_curves` computes both curves for a batch,
with the areas by the trapezoid rule on a ``[0, 1]`` axis of the fraction of pixels changed.

Example:
    >>> import torch
    >>> from cam_tutorial.models import ResNet18B
    >>> model = ResNet18B(num_classes=3, width=4).eval()
    >>> images, maps = torch.rand(2, 3, 32, 32), torch.rand(2, 32, 32)
    >>> curves = deletion_insertion_curves(model, images, [0, 1], maps, steps=8)
    >>> curves.deletion.shape, curves.deletion_auc.shape
    ((2, 9), (2,))
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F
from torch import nn

from cam_tutorial.anymodel.heads import resolve_submodule
from cam_tutorial.checks import ClassIndices, as_class_tensor, check_finite, check_image_batch, check_model

__all__ = [
    "RandomizationResult",
    "CurvesResult",
    "cascading_randomization",
    "randomization_order",
    "spearman_per_map",
    "deletion_insertion_curves",
    "gaussian_blur",
    "random_maps",
]

logger = logging.getLogger(__name__)

MapFunction = Callable[[nn.Module, torch.Tensor, ClassIndices], torch.Tensor]

_MAPS_FIX = ("find where the NaN/Inf come from (the images, the model's weights, a float16 overflow; "
             "compute_cams and grad_cam name which) or replace them first with torch.nan_to_num")


# --------------------------------------------------------------------------------------------
# Rank correlation
# --------------------------------------------------------------------------------------------


def spearman_per_map(maps_a: torch.Tensor, maps_b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation between matching maps, one value per map.
    Used in the appendix.

    Maps with a NaN or an infinity are refused (``ValueError``): a rank of NaN means nothing.

    ``rho = Pearson(rank(a), rank(b))`` over the pixels of each map, with average ranks for ties
    (as ``scipy.stats.spearmanr``). A constant map has no ranking: its correlation is NaN.

    Args:
        maps_a: ``(B, H, W)`` (or ``(B, N)``) maps.
        maps_b: maps of the same shape.

    Returns:
        ``(B,)`` float64 tensor in ``[-1, 1]`` (NaN for a constant map).

    Example:
        >>> import torch
        >>> a = torch.tensor([[1., 2., 3., 4.]])
        >>> spearman_per_map(a, a ** 3).item(), spearman_per_map(a, -a).item()
        (1.0, -1.0)
    """
    if not isinstance(maps_a, torch.Tensor) or not isinstance(maps_b, torch.Tensor):
        raise TypeError("maps must be torch tensors")
    if maps_a.shape != maps_b.shape or maps_a.ndim < 2:
        raise ValueError(f"maps must have the same shape (B, H, W), got {tuple(maps_a.shape)} and {tuple(maps_b.shape)}")
    # sort() puts NaN last and ranks it like a large value: a NaN map would get a finite rho.
    for name, maps in (("maps_a", maps_a), ("maps_b", maps_b)):
        if maps.is_floating_point():
            check_finite(maps, f"the maps {name}", _MAPS_FIX)
    # Ranks of each map's pixels; tied values share the mean of their ranks (scipy's "average").
    flat = (maps.detach().reshape(maps.shape[0], -1).double().cpu().numpy() for maps in (maps_a, maps_b))
    a, b = (torch.from_numpy(scipy.stats.rankdata(x, axis=1)).to(maps_a.device) for x in flat)
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    denominator = (a.square().sum(dim=1) * b.square().sum(dim=1)).sqrt()
    rho = (a * b).sum(dim=1) / denominator
    return torch.where(denominator > 0, rho.clamp(-1, 1), torch.full_like(rho, float("nan")))


# --------------------------------------------------------------------------------------------
# Cascading randomisation
# --------------------------------------------------------------------------------------------


@dataclass
class RandomizationResult:
    """What :func:`cascading_randomization` returns.
    Used in no chapter directly.

    Attributes:
        layers: names of the layers randomised, in order (``layers[i]`` is added at step ``i``;
            after step ``i`` every layer in ``layers[: i + 1]`` is random).
        correlations: ``(len(layers), B)`` Spearman correlation of each image's map after each
            step with its original map.
        original_maps: ``(B, H, W)`` maps of the trained model.
    """

    layers: list[str]
    correlations: np.ndarray
    original_maps: torch.Tensor

    @property
    def mean_correlation(self) -> np.ndarray:
        """``(len(layers),)`` mean over images (NaN maps, i.e. constant ones, left out)."""
        with np.errstate(all="ignore"):
            return np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in self.correlations])


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def randomization_order(model: nn.Module) -> list[str]:
    """The layers to randomise, top (output) first.
    Used in no chapter directly.

    For models with ``.features`` and ``.classifier`` (the book's): the classifier, then each
    child of ``.features`` that has parameters, last first (ResNet18B's blocks ``conv5_2``,
    ``conv5_1``, ..., ``gate``; VGG's individual convolutions). Otherwise the model's top-level
    children with parameters, last first (torchvision's ResNet: ``fc``, ``layer4``, ...,
    ``conv1``); this assumes the children are registered in the order they run.

    Example:
        >>> from cam_tutorial.models import ResNet18B
        >>> randomization_order(ResNet18B(width=2))[:3]
        ['classifier', 'features.conv5_2', 'features.conv5_1']
    """
    names: list[str] = []
    features = getattr(model, "features", None)
    classifier = getattr(model, "classifier", None)
    if isinstance(features, nn.Sequential) and isinstance(classifier, nn.Module):
        if _has_parameters(classifier):
            names.append("classifier")
        names += [f"features.{n}" for n, m in reversed(list(features.named_children())) if _has_parameters(m)]
    else:
        names = [n for n, m in reversed(list(model.named_children())) if _has_parameters(m)]
    if not names:
        raise ValueError("the model has no layer with parameters to randomise")
    return names


def _randomize_(module: nn.Module, name: str) -> None:
    """Back to a random initialisation: every submodule's own ``reset_parameters``.

    Batch norm layers are reset too (weight 1, bias 0, running mean 0, variance 1): their learned
    statistics are part of the trained model.
    """
    resettable = [sub for sub in module.modules() if callable(getattr(sub, "reset_parameters", None))]
    if not resettable:  # left trained, it would pass for a layer the maps do not depend on
        raise ValueError(f"the layer {name!r} has no reset_parameters to randomise it with; leave it out of layers")
    for sub in resettable:
        sub.reset_parameters()
        if isinstance(sub, nn.modules.batchnorm._NormBase) and sub.track_running_stats:
            sub.reset_running_stats()


def cascading_randomization(
    model: nn.Module,
    images: torch.Tensor,
    classes: ClassIndices,
    map_fn: MapFunction,
    seed: int = 0,
    layers: Sequence[str] | None = None,
) -> RandomizationResult:
    """Adebayo et al.'s cascading model randomisation, on a copy of the model.
    Used in the appendix.

    Step ``i`` re-initialises ``layers[i]`` on top of the layers already randomised, then computes
    ``map_fn(model_copy, images, classes)`` and its Spearman correlation with the maps of the
    original model. The caller's model is never modified (a deep copy is randomised).

    Args:
        model: the trained model, in eval mode.
        images: ``(B, 3, H, W)`` batch, on the model's device.
        classes: the class to explain for each image (an int or ``(B,)``), given to ``map_fn`` (which
            checks it) unchanged at every step, so the maps answer the same question of each model.
        map_fn: ``map_fn(model, images, classes) -> (B, H, W)`` maps, e.g.
            ``lambda m, x, c: grad_cam(m, x, c, upsample=True)``.
        seed: seeds the re-initialisation (CPU and CUDA generators, restored afterwards).
        layers: names of the submodules to randomise, top first; default
            :func:`randomization_order`.

    Returns:
        A :class:`RandomizationResult`.

    Raises:
        ValueError: a model in training mode, an unknown layer name, maps of the wrong shape.
    """
    check_model(model)
    names = list(layers) if layers is not None else randomization_order(model)
    for name in names:  # every name checked before the first, long, step
        resolve_submodule(model, name, "layers")
    original = _checked_maps(map_fn, model, images, classes)
    work = copy.deepcopy(model).eval()
    cuda_devices = sorted({p.device.index or 0 for p in work.parameters() if p.device.type == "cuda"})
    correlations = []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        for name in names:
            _randomize_(work.get_submodule(name), name)
            maps = _checked_maps(map_fn, work, images, classes)
            correlations.append(spearman_per_map(original, maps).cpu().numpy())
            logger.info("randomised up to %s: mean Spearman %.3f", name, float(np.nanmean(correlations[-1])))
    return RandomizationResult(
        layers=names,
        correlations=np.stack(correlations),
        original_maps=original.cpu(),
    )


def _checked_maps(map_fn: MapFunction, net: nn.Module, images: torch.Tensor, classes: ClassIndices) -> torch.Tensor:
    """``map_fn(net, images, classes)``, refused unless ``(B, H, W)``; detached, float32."""
    batch = images.shape[0]
    out = map_fn(net, images, classes)
    if not isinstance(out, torch.Tensor) or out.ndim != 3 or out.shape[0] != batch:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"map_fn must return maps of shape (B, H, W) = ({batch}, H, W), got {got}")
    return out.detach().float()


# --------------------------------------------------------------------------------------------
# Deletion and insertion
# --------------------------------------------------------------------------------------------


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` images, ``sigma`` in pixels, edges replicated.
    Used in no chapter directly.

    The kernel spans ``+-3 sigma``; replicate padding (not reflection) works for any image size
    and keeps a constant image exactly constant. ``sigma = 0`` returns a copy.

    Example:
        >>> import torch
        >>> x = torch.full((1, 3, 8, 8), 0.5)
        >>> torch.allclose(gaussian_blur(x, 2.0), x)
        True
    """
    if sigma < 0:
        raise ValueError(f"blur sigma must be >= 0 pixels, got {sigma}")
    if sigma == 0:
        return images.clone()
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    x = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def random_maps(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """``(B, H, W)`` uniform random maps: the baseline a real saliency map must beat.
    Used in the appendix."""
    return torch.rand(batch, height, width, generator=torch.Generator().manual_seed(seed))


@dataclass
class CurvesResult:
    """What :func:`deletion_insertion_curves` returns (numpy arrays).
    Used in no chapter directly.

    Attributes:
        fractions: ``(steps + 1,)`` fraction of pixels deleted / inserted, from 0 to 1.
        deletion: ``(B, steps + 1)`` probability of the class as the top pixels are deleted.
        insertion: ``(B, steps + 1)`` probability as the top pixels are restored onto the substrate.
        deletion_auc: ``(B,)`` area under each deletion curve (lower is better).
        insertion_auc: ``(B,)`` area under each insertion curve (higher is better).
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: np.ndarray
    insertion_auc: np.ndarray


def _substrate(images: torch.Tensor, kind: str | float, blur_sigma: float) -> torch.Tensor:
    if kind == "blur":
        return gaussian_blur(images, blur_sigma)
    if kind == "zero":
        return torch.zeros_like(images)
    raise ValueError(f"unknown substrate {kind!r}: use 'zero' (the dataset mean colour of normalised "
                     "images) or 'blur' (a Gaussian-blurred copy)")


def deletion_insertion_curves(
    model: nn.Module,
    images: torch.Tensor,
    classes: ClassIndices,
    maps: torch.Tensor,
    steps: int = 32,
    blur_sigma: float = 5.0,
    deletion_substrate: str = "zero",
    insertion_substrate: str = "blur",
    batch_size: int = 128,
) -> CurvesResult:
    """Deletion and insertion curves (Petsiuk et al., 2018) of saliency ``maps``, batched.
    Used in the appendix.

    Pixels are ranked by decreasing map value (ties by position). At step ``k`` of ``steps`` the
    top ``round(k / steps * H * W)`` pixels are

    * *deleted*: replaced by the deletion substrate; by default ``"zero"``, zeros of the normalised
      image, i.e. the dataset's mean colour (what the model sees as "nothing");
    * *inserted*: copied from the image onto the insertion substrate; by default ``"blur"``, the
      image blurred with a Gaussian of ``blur_sigma`` pixels (shapes gone, colours kept, so the
      curve measures the return of the *structure* the map points at).

    and the softmax probability of each image's class is recorded. Every (image, step) variant is
    built with one ``torch.where`` and classified in batches of ``batch_size``. Areas use the
    trapezoid rule over the fraction of pixels, so a constant curve ``p`` has area ``p``.

    Args:
        model: a classifier in eval mode returning logits.
        images: ``(B, 3, H, W)`` normalised images.
        classes: the class of each image (an int or ``(B,)``).
        maps: ``(B, H, W)`` saliency maps at the image size (higher = more important).
        steps: number of steps (``steps + 1`` points from 0 to all pixels).
        blur_sigma: standard deviation of the blur, in pixels.
        deletion_substrate: ``"zero"`` or ``"blur"``.
        insertion_substrate: ``"blur"`` or ``"zero"``.
        batch_size: images per forward pass.

    Returns:
        A :class:`CurvesResult`.

    Raises:
        ValueError: a model in training mode, maps not ``(B, H, W)`` at the image size, ``steps`` < 1,
            an unknown substrate, a class out of range, NaN/Inf in the maps or the images.
    """
    images, class_idx = _checked_curve_inputs(model, images, classes, maps, steps, batch_size)
    batch, _, height, width = images.shape
    deleted_to = _substrate(images, deletion_substrate, blur_sigma)
    inserted_onto = _substrate(images, insertion_substrate, blur_sigma)

    pixels = height * width
    counts = torch.round(torch.linspace(0, pixels, steps + 1, dtype=torch.float64)).long().to(images.device)
    # rank[b, y, x] = position of the pixel in decreasing order of saliency (0 = most salient).
    order = maps.detach().reshape(batch, -1).float().argsort(dim=1, descending=True, stable=True)
    rank = order.argsort(dim=1).reshape(batch, 1, height, width).to(images.device)  # the inverse permutation

    deletion, insertion = _class_probabilities(model, images, class_idx, deleted_to, inserted_onto, rank, counts,
                                               batch_size)
    fractions = counts.cpu().double() / pixels
    return CurvesResult(
        fractions=fractions.numpy(),
        deletion=deletion.numpy(),
        insertion=insertion.numpy(),
        deletion_auc=torch.trapezoid(deletion, fractions, dim=1).numpy(),
        insertion_auc=torch.trapezoid(insertion, fractions, dim=1).numpy(),
    )


def _checked_curve_inputs(model: nn.Module, images: torch.Tensor, classes: ClassIndices, maps: torch.Tensor,
                          steps: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The images as a batch and the classes as ``(B,)`` indices; refuse what
    :func:`deletion_insertion_curves` cannot measure, naming the argument."""
    check_model(model)
    images = check_image_batch(images)
    batch, _, height, width = images.shape
    if not isinstance(maps, torch.Tensor) or maps.shape != (batch, height, width):
        got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise ValueError(f"maps must have shape (B, H, W) = {(batch, height, width)}, got {got}; "
                         "upsample them to the image size first")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    # argsort ranks NaN like a large value, so NaN maps would give finite, meaningless curves.
    if maps.is_floating_point():
        check_finite(maps, "the maps", _MAPS_FIX)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    with torch.no_grad():  # the number of classes, from one image, to check the classes before the long run
        class_idx = as_class_tensor(classes, batch, model(images[:1]).shape[1], images.device)
    if class_idx.ndim != 1:
        raise ValueError("classes must hold one index per image")
    return images, class_idx


def _class_probabilities(model: nn.Module, images: torch.Tensor, class_idx: torch.Tensor, deleted_to: torch.Tensor,
                         inserted_onto: torch.Tensor, rank: torch.Tensor, counts: torch.Tensor,
                         batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The probability of each image's class for every (image, step) variant, deleted and inserted:
    two ``(B, steps + 1)`` float64 tensors on the CPU, classified in chunks of ``batch_size``."""
    batch, points = images.shape[0], len(counts)
    jobs = torch.cartesian_prod(torch.arange(batch), torch.arange(points)).to(images.device)  # (B*(S+1), 2)
    deletion: list[torch.Tensor] = []
    insertion: list[torch.Tensor] = []
    with torch.no_grad():
        for chunk in jobs.split(batch_size):
            b, k = chunk.unbind(1)
            changed = rank[b] < counts[k][:, None, None, None]  # (n, 1, H, W): the top pixels
            for curve, variant in ((deletion, torch.where(changed, deleted_to[b], images[b])),
                                   (insertion, torch.where(changed, images[b], inserted_onto[b]))):
                curve.append(model(variant).float().softmax(dim=1).gather(1, class_idx[b][:, None])[:, 0])
    return tuple(torch.cat(curve).reshape(batch, points).cpu().double() for curve in (deletion, insertion))
