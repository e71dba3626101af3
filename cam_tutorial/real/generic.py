"""Deep features for generic localization (Zhou et al. 2016, section 4), offline.

The paper's claim: the features of a GAP network trained on ImageNet are good *generic*
features, and a linear classifier trained on them for a new task (no fine-tuning) gives class
activation maps that localize that task's objects, although the network never saw a box. The
recipe, which this module implements for any network laid out as ``features -> pool ->
classifier`` (the book's models and :mod:`cam_tutorial.real.efficientnet_lite`):

1. freeze the network and compute the pooled features ``F = pool(features(x))``, shape ``(N, K)``,
   once for the new task's images (:func:`pooled_features`);
2. fit one linear layer ``S = F W^T + b`` on them by multinomial logistic regression
   (:func:`fit_linear_head`; full-batch L-BFGS, deterministic);
3. put it behind the frozen layers (:class:`LinearProbe`): the result is again a GAP network with
   one linear layer, so ``M_c = sum_k w_k^c f_k`` is its class activation map and
   :func:`~cam_tutorial.cam.compute_cams` applies unchanged.

The section's second example, a text detector, needs images with text and an exact box around
it: :class:`TextScenes` renders words with OpenCV's Hershey fonts onto crops of photographs that
ship with scikit-image (and onto lab backgrounds), half the items with text and half without.

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from cam_tutorial.models import ResNet18B
    >>> backbone = ResNet18B(num_classes=1000, width=2).eval()
    >>> data = TensorDataset(torch.rand(8, 3, 32, 32), torch.tensor([0, 1] * 4))
    >>> features, labels = pooled_features(backbone, data, batch_size=4, progress=False)
    >>> features.shape, labels.tolist()
    (torch.Size([8, 16]), [0, 1, 0, 1, 0, 1, 0, 1])
    >>> probe = LinearProbe(backbone, fit_linear_head(features, labels, num_classes=2))
    >>> probe(data.tensors[0][:2]).shape
    torch.Size([2, 2])
"""

from __future__ import annotations

import copy
import functools
import logging
import numbers
from typing import Any, Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cam_tutorial.evaluation import model_device, progress_bar
from cam_tutorial.lab import SPLITS, SyntheticShapes, integral_index
from cam_tutorial.real.inputs import image_side, rgb_photo, whole_number

__all__ = [
    "pooled_features", "fit_linear_head", "LinearProbe", "Rendered", "TextScenes", "TEXT_FONTS",
]

logger = logging.getLogger(__name__)

#: OpenCV's Hershey fonts used for the text detector (plain, serif, script; the italic flag varies).
TEXT_FONTS: tuple[int, ...] = (
    cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_PLAIN,
)
_WORDS = ("CAM", "OPEN", "exit", "Sale", "STOP", "cafe", "2016", "Zhou", "GAP", "map", "hotel",
          "bus 42", "Learn", "DEEP", "text", "No.7", "park", "Paris", "LOCAL", "class")
_BACKGROUND_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera", "coins", "immunohistochemistry")


def _require_layout(model: nn.Module) -> None:
    if not all(isinstance(getattr(model, part, None), nn.Module) for part in ("features", "pool")):
        raise TypeError(
            f"{type(model).__name__} lacks the .features and .pool modules this recipe needs "
            "(features -> pool -> classifier, like the book's models and efficientnet_lite0)"
        )


@torch.no_grad()
def pooled_features(model: nn.Module, dataset: Dataset, batch_size: int = 64,
                    device: str | torch.device | None = None, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen network's pooled features ``F = pool(features(x))`` and the labels of a dataset.
    Used in chapter 8.

    Args:
        model: a network with ``.features`` and ``.pool`` (left in eval mode).
        dataset: items ``(image, label, ...)``; images preprocessed the way ``model`` expects.
        batch_size: images per forward pass.
        device: where to run; default the model's parameters' device.
        progress: show a progress bar.

    Returns:
        ``(features (N, K) float32, labels (N,) int64)``, on the CPU, in dataset order.
    """
    _require_layout(model)
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("the dataset is empty: nothing to compute features of")
    device = torch.device(device) if device is not None else model_device(model)
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    parts, labels = [], []
    for batch in progress_bar(loader, desc="pooled features", leave=False, disable=not progress):
        parts.append(model.pool(model.features(batch[0].to(device))).float().cpu())
        labels.append(torch.as_tensor(batch[1]).long())
    return torch.cat(parts), torch.cat(labels)


def fit_linear_head(features: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None, *,
                    weight_decay: float = 1e-3, max_iter: int = 200) -> nn.Linear:
    """Multinomial logistic regression ``S = F W^T + b`` on frozen features, as an ``nn.Linear``.
    Used in chapter 8.

    Minimises ``mean_i CE(S_i, y_i) + weight_decay / 2 * ||W||^2`` with full-batch L-BFGS from
    zeros, so the result depends on the data alone. The features are standardised for the fit
    (per-channel mean ``mu`` and deviation ``sigma``) and the standardisation is folded back
    into the layer, ``W = W' / sigma`` and ``b = b' - W mu``, so the head applies to the raw
    pooled features and ``M_c = sum_k w_k^c f_k`` stays an exact class activation map.

    Args:
        features: ``(N, K)`` pooled features.
        labels: ``(N,)`` integer classes.
        num_classes: number of outputs; default ``labels.max() + 1``.
        weight_decay: the L2 penalty on the standardised weights.
        max_iter: L-BFGS iterations.

    Returns:
        A ``nn.Linear(K, num_classes)`` in float32 on the CPU.

    Raises:
        ValueError, TypeError: fewer than two samples, non-finite features, fractional labels or
            counts, a negative or non-finite ``weight_decay``, ``max_iter < 1``.

    Example:
        >>> F_ = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]])
        >>> head = fit_linear_head(F_, torch.tensor([0, 1, 0, 1]))
        >>> head(F_).argmax(1).tolist()
        [0, 1, 0, 1]
    """
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or not features.is_floating_point():
        raise ValueError(f"features must be a float tensor (N, K), got {getattr(features, 'shape', type(features))}")
    if len(features) < 2:
        raise ValueError(f"features hold {len(features)} sample(s): a linear head needs at least two to fit")
    if not torch.isfinite(features).all():
        raise ValueError("features contain NaN or infinity: check the images and the network")
    labels = torch.as_tensor(labels)
    if labels.shape != features.shape[:1]:
        raise ValueError(f"labels must be (N,) = ({features.shape[0]},), got {tuple(labels.shape)}")
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise ValueError(f"labels must be whole class indices, got {labels[labels != labels.round()][0].item():g}")
    labels = labels.long()
    classes = int(labels.max()) + 1 if num_classes is None else whole_number(num_classes, "num_classes", 1)
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"labels must lie in [0, {classes}), got {int(labels.min())}..{int(labels.max())}")
    if not (isinstance(weight_decay, numbers.Real) and 0 <= weight_decay < float("inf")):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    max_iter = whole_number(max_iter, "max_iter", 1)
    x = features.double()
    mu, sigma = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mu) / sigma
    weight = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(z @ weight.T + bias, labels) + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    head = nn.Linear(x.shape[1], classes)
    with torch.no_grad():
        w = weight / sigma
        head.weight.copy_(w.float())
        head.bias.copy_((bias - w @ mu).float())
    return head


class LinearProbe(nn.Module):
    """A frozen network's ``features`` and ``pool`` with a new linear ``classifier``.
    Used in chapter 8.

    The parts are copies of ``backbone``'s, frozen and in eval mode: the caller's network keeps
    every module's mode and its trainable weights. Its layout is the book's, so
    :func:`~cam_tutorial.cam.compute_cams` reads its head.
    """

    def __init__(self, backbone: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        _require_layout(backbone)
        if not isinstance(head, nn.Linear):
            raise TypeError(f"head must be an nn.Linear, got {type(head).__name__}")
        self.features, self.pool = copy.deepcopy(backbone.features), copy.deepcopy(backbone.pool)
        self.classifier = head.to(model_device(backbone))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


class Rendered(Dataset):
    """Items of a dataset that renders uint8 RGB (the lab, :class:`TextScenes`), preprocessed by
    ``transform`` instead of the dataset's own normalisation: ``(transform(rgb), label, box, mask)``.
    Used in chapter 8.

    Example:
        >>> from cam_tutorial.lab import SyntheticShapes
        >>> ds = Rendered(SyntheticShapes("val", length=2, image_size=32), lambda rgb: torch.from_numpy(rgb))
        >>> ds[0][0].dtype, tuple(ds[0][0].shape)
        (torch.uint8, (32, 32, 3))
    """

    def __init__(self, dataset: Any, transform: Callable[[np.ndarray], torch.Tensor]) -> None:
        if not callable(getattr(dataset, "render", None)):
            raise TypeError(f"{type(dataset).__name__} has no render(index) giving uint8 RGB images")
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]:
        rgb, label, box, mask = self.dataset.render(index)
        return (self.transform(rgb), int(label), torch.as_tensor(box, dtype=torch.float32),
                torch.from_numpy(np.ascontiguousarray(mask)))


@functools.lru_cache(maxsize=1)
def _background_photos() -> tuple[np.ndarray, ...]:
    import skimage.data  # the photographs ship inside scikit-image's wheel

    return tuple(rgb_photo(getattr(skimage.data, name)()) for name in _BACKGROUND_PHOTOS)  # grey ones too


class TextScenes(Dataset):
    """Photographs and lab backgrounds, half of them with a word written on them, with the word's
    exact mask and box: the data of the paper's text detector, made offline.
    Used in chapter 8.

    Item ``i`` is rendered from ``(seed, split, i)`` alone. Odd items (label 1, "text") carry one
    word drawn with :func:`cv2.putText` in one of :data:`TEXT_FONTS`, at a random size (its width
    30% to 80% of the image), thickness, slant and position, in a colour far from the background
    under it; even items (label 0, "no text") are the same kind of background without one. The
    background is a random crop of a photograph shipped with scikit-image (half of the items)
    or a lab image (:class:`~cam_tutorial.lab.SyntheticShapes`, its shape included:
    a shape is not text).

    ``render(i)`` gives ``(rgb uint8 (H, W, 3), label, box, mask)``; ``box = (x0, y0, x1, y1)``
    (exclusive ends) is tight around the word's pixels (``mask``), and for a text-free item it
    is all zeros with an empty mask. ``__getitem__`` gives the same with the image as a float
    ``(3, H, W)`` tensor in ``[0, 1]``; wrap the dataset in :class:`Rendered` to preprocess
    for a particular network.

    Example:
        >>> ds = TextScenes("test", length=4, image_size=96)
        >>> rgb, label, box, mask = ds.render(1)
        >>> rgb.shape, label, bool(mask.any())
        ((96, 96, 3), 1, True)
        >>> ds.render(0)[1], bool(ds.render(0)[3].any())
        (0, False)
    """

    class_names: tuple[str, ...] = ("no text", "text")
    num_classes = 2

    def __init__(self, split: str = "train", length: int = 1000, image_size: int = 224, seed: int = 0) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: use one of {', '.join(map(repr, SPLITS))}")
        self.split, self.length = split, whole_number(length, "length")
        self.image_size, self.seed = image_side(image_size, "image_size"), whole_number(seed, "seed", 0)

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return (f"TextScenes(split={self.split!r}, length={self.length}, image_size={self.image_size}, "
                f"seed={self.seed})")

    def _background(self, rng: np.random.Generator, index: int) -> np.ndarray:
        size = self.image_size
        if rng.random() < 0.5:
            photos = _background_photos()
            photo = photos[int(rng.integers(len(photos)))]
            h, w = photo.shape[:2]
            side = int(min(h, w) * rng.uniform(0.35, 1.0))
            y0, x0 = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
            crop = photo[y0:y0 + side, x0:x0 + side]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            return cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)
        # the lab's backgrounds, shapes included: a shape is not text
        lab = SyntheticShapes(self.split, length=index + 1, image_size=size, seed=self.seed + 7919)
        return lab.render(index)[0].copy()

    def render(self, index: int) -> tuple[np.ndarray, int, tuple[int, int, int, int], np.ndarray]:
        """Item ``index``: ``(rgb uint8 (H, W, 3), label, box, mask)``."""
        index = integral_index(index)
        index += self.length if index < 0 else 0
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index, 0x7E47])
        canvas = self._background(rng, index)
        label = index % 2
        size = self.image_size
        mask = np.zeros((size, size), np.uint8)
        if not label:
            return canvas, 0, (0, 0, 0, 0), mask.view(bool)
        word = _WORDS[int(rng.integers(len(_WORDS)))]
        font = TEXT_FONTS[int(rng.integers(len(TEXT_FONTS)))] | (cv2.FONT_ITALIC if rng.random() < 0.25 else 0)
        thickness = max(1, int(round(size / 224 * rng.uniform(1.5, 5.0))))
        (unit_w, unit_h), unit_base = cv2.getTextSize(word, font, 1.0, thickness)
        scale = size * rng.uniform(0.3, 0.8) / max(unit_w, 1)
        (tw, th), base = cv2.getTextSize(word, font, scale, thickness)
        x = int(rng.integers(0, max(1, size - tw)))
        y = int(rng.integers(th + 1, max(th + 2, size - base)))
        cv2.putText(mask, word, (x, y), font, scale, 255, thickness, cv2.LINE_AA)
        region = mask > 0
        # A colour far from the background under the word, so that the word is legible.
        under = canvas[region].astype(np.float64).mean(0) if region.any() else np.full(3, 127.0)
        candidates = rng.integers(0, 256, size=(16, 3))
        colour = candidates[int(np.argmax(((candidates - under) ** 2).sum(1)))]
        alpha = mask[..., None].astype(np.uint16)
        canvas = ((canvas * (255 - alpha) + colour.astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
        bx, by, bw, bh = cv2.boundingRect(region.astype(np.uint8))
        return canvas, 1, (bx, by, bx + bw, by + bh), region

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]:
        rgb, label, box, mask = self.render(index)
        image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
        return image, label, torch.tensor(box, dtype=torch.float32), torch.from_numpy(mask)

    def positives(self) -> list[int]:
        """The indices of the items with text."""
        return list(range(1, self.length, 2))

