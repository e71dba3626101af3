"""Real CAMs on real photographs: EfficientNet-Lite0 (ImageNet weights, offline) on the shipped photos.

The pipeline of one photo, all from one forward pass:

    photo (uint8 RGB) -> TF-Lite preprocessing (shorter side 256, centre crop 224, (x-127)/128)
    -> features f (1, 1280, 7, 7) -> GAP -> Linear(1280, 1000): logits S
    -> M_c = sum_k w_k^c f_k for the top-k classes -> bilinear to 224 -> min-max to [0, 1]
    -> the paper's box (20% of the maximum, largest component), scored against the annotated boxes.

Every map, box and score here is in the coordinates of the *crop* the network saw: the annotated
boxes are mapped into the crop with :meth:`~cam_tutorial.real.efficientnet_lite.CropGeometry.box_to_crop`
(the part of an object outside the crop is cut off, as it is for the network).

Example:
    >>> from cam_tutorial.real.efficientnet_lite import efficientnet_lite0
    >>> from cam_tutorial.real.photos import load_photos
    >>> [coffee] = photo_cams(efficientnet_lite0(), load_photos(["coffee"]))
    >>> coffee.top_class, round(coffee.probability(), 2), tuple(coffee.raw_maps.shape)
    (967, 0.95, (5, 7, 7))
"""

from __future__ import annotations

import logging
import textwrap
from dataclasses import dataclass
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from cam_tutorial.cam import compute_cams, normalize_maps, upsample_maps
from cam_tutorial.real.efficientnet_lite import CropGeometry, crop_photo, imagenet_categories, normalize_crop
from cam_tutorial.boxes import box_from_cam, box_iou
from cam_tutorial.metrics import MaxBoxAccResult, max_box_acc
from cam_tutorial.real.inputs import whole_number
from cam_tutorial.real.photos import Photo
from cam_tutorial.viz import LABEL_SIZE, MAX_FIGURE_WIDTH, balanced_columns, draw_box, overlay

__all__ = [
    "PhotoCAMs", "photo_cams", "box_score_rows", "photo_max_box_acc", "confidence_summary",
    "check_results", "show_top_classes", "show_photo_cams", "show_resolutions",
    "TRUE_BOX_COLOR", "CAM_BOX_COLOR",
]

logger = logging.getLogger(__name__)

#: Colours of the annotated (true) boxes and of the paper's box from the CAM.
TRUE_BOX_COLOR = "lime"
CAM_BOX_COLOR = "red"


@dataclass
class PhotoCAMs:
    """One photo through the network: its crop, scores, top-k maps and boxes (crop coordinates).
    Used in no chapter directly.

    Attributes:
        photo: the :class:`~cam_tutorial.real.photos.Photo`.
        crop: ``(S, S, 3)`` uint8, what the network saw (before normalisation).
        geometry: how the crop sits in the photo.
        logits: ``(1000,)`` the model's scores ``S``.
        classes: ``(k,)`` the top-k classes, best first.
        raw_maps: ``(k, h, w)`` the raw maps ``M_c`` (no bias): ``mean(M_c) + b_c == S_c``.
        bias: ``(k,)`` the classifier's bias ``b_c`` of those classes.
        maps: ``(k, S, S)`` the maps upsampled to the crop and min-max normalised.
        true_boxes: ``(K, 4)`` the annotated boxes mapped into the crop.
    """

    photo: Photo
    crop: np.ndarray
    geometry: CropGeometry
    logits: torch.Tensor
    classes: torch.Tensor
    raw_maps: torch.Tensor
    bias: torch.Tensor
    maps: torch.Tensor
    true_boxes: np.ndarray

    @property
    def name(self) -> str:
        return self.photo.name

    @property
    def size(self) -> int:
        """Side of the network's input, in pixels."""
        return self.geometry.size

    @property
    def map_size(self) -> tuple[int, int]:
        """``(h, w)`` of the raw maps: 7x7 at 224 px, 14x14 at 448 px."""
        return tuple(self.raw_maps.shape[-2:])

    @property
    def probabilities(self) -> torch.Tensor:
        """``(1000,)`` softmax of the logits."""
        return self.logits.softmax(dim=0)

    @property
    def top_class(self) -> int:
        return int(self.classes[0])

    def probability(self, rank: int = 0) -> float:
        """Softmax probability of the ``rank``-th class (0: the top one)."""
        return float(self.probabilities[self.classes[rank]])

    def peak(self, rank: int = 0) -> tuple[int, int]:
        """``(x, y)`` of the maximum of the ``rank``-th map, in crop pixels (the first on a tie)."""
        y, x = divmod(int(self.maps[rank].argmax()), self.maps.shape[-1])
        return x, y

    def peak_in_box(self, rank: int = 0, box: int | None = None) -> bool:
        """Whether the ``rank``-th map's maximum lies inside annotated box ``box`` (any if ``None``)."""
        x, y = self.peak(rank)
        boxes = self.true_boxes if box is None else self.true_boxes[[box]]
        return bool(((boxes[:, 0] <= x) & (x < boxes[:, 2]) & (boxes[:, 1] <= y) & (y < boxes[:, 3])).any())

    def paper_box(self, rank: int = 0, threshold: float = 0.2) -> np.ndarray:
        """The paper's box of the ``rank``-th map: largest region above ``threshold`` x max."""
        return box_from_cam(self.maps[rank], threshold)

    def paper_box_iou(self, rank: int = 0, threshold: float = 0.2) -> float:
        """IoU of :meth:`paper_box` with the best-matching annotated box (0 if none is in the crop)."""
        if len(self.true_boxes) == 0:
            return 0.0
        return float(box_iou(self.paper_box(rank, threshold)[None], self.true_boxes).max())


def _true_boxes_in_crop(photo: Photo, geometry: CropGeometry) -> np.ndarray:
    boxes = geometry.box_to_crop(photo.boxes)
    # An object wholly outside the crop leaves an empty box: drop it (the network never saw it).
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[keep]


def photo_cams(model: nn.Module, photos: Sequence[Photo], size: int = 224, top_k: int = 5) -> list[PhotoCAMs]:
    """Run ``model`` once on the photos (one batch) and return each photo's top-k CAMs.
    Used in the appendix.

    Args:
        model: a ``features -> pool -> classifier`` network in eval mode taking TF-Lite-normalised
            input, e.g. :func:`~cam_tutorial.real.efficientnet_lite.efficientnet_lite0`.
        photos: :class:`~cam_tutorial.real.photos.Photo` objects (see :func:`~cam_tutorial.real.photos.load_photos`).
        size: the network's input side: 224 (7x7 maps) or 448 (14x14), say.
        top_k: how many classes' maps to keep per photo.

    Returns:
        One :class:`PhotoCAMs` per photo, in order.
    """
    if isinstance(photos, Photo):
        raise TypeError("photos must be a sequence of Photo objects; wrap one photo in a list: [photo]")
    if not photos:
        raise ValueError("photos is empty; load some with cam_tutorial.real.photos.load_photos()")
    param = next(model.parameters())
    if param.is_meta:
        raise ValueError("the model's weights are meta tensors (shapes without values): load real weights "
                         "first, e.g. model = efficientnet_lite0()")
    prepared = [crop_photo(p.image, size) for p in photos]
    # The images are built here, so they follow the model: its device and its dtype (.half() too).
    batch = torch.stack([normalize_crop(crop) for crop, _ in prepared]).to(param.device, param.dtype)
    out = compute_cams(model, batch, top_k=top_k, upsample=False, normalize=False)
    fc = model.classifier
    raw = out.maps.float().cpu()
    maps = normalize_maps(upsample_maps(raw, size))
    bias = fc.bias.detach().float().cpu() if fc.bias is not None else torch.zeros(fc.out_features)
    results = []
    for i, (photo, (crop, geometry)) in enumerate(zip(photos, prepared)):
        classes = out.classes[i].cpu()
        results.append(PhotoCAMs(photo, crop, geometry, out.logits[i].float().cpu(), classes, raw[i],
                                 bias[classes], maps[i], _true_boxes_in_crop(photo, geometry)))
    return results


def check_results(results: Sequence[PhotoCAMs], what: str = "results") -> list[PhotoCAMs]:
    """``results`` as a non-empty list of :class:`PhotoCAMs` (what every summary and figure here takes).
    Used in no chapter directly."""
    results = [results] if isinstance(results, PhotoCAMs) else list(results)
    if not results or not all(isinstance(r, PhotoCAMs) for r in results):
        raise ValueError(f"{what} must be a non-empty list of PhotoCAMs, got {results!r:.80}: make them with "
                         "photo_cams(model, load_photos())")
    return results


def box_score_rows(results: Sequence[PhotoCAMs], categories: Sequence[str] | None = None,
                   threshold: float = 0.2) -> list[dict]:
    """One row per photo: top class, its probability, and the IoU of the paper's box.
    Used in the appendix.

    Columns: ``photo``, ``class``, ``probability``, ``iou`` (best over the annotated boxes),
    ``correct`` (``iou >= 0.5``, the paper's criterion) and ``whole_image_iou``, the IoU of the
    box that is the whole crop: the baseline a map must beat (an object that fills the crop
    makes any box that covers it look good).
    """
    categories = list(categories) if categories is not None else imagenet_categories()
    rows = []
    for r in results:
        iou = r.paper_box_iou(0, threshold)
        whole = np.array([[0, 0, r.size, r.size]])
        whole_iou = float(box_iou(whole, r.true_boxes).max()) if len(r.true_boxes) else 0.0
        rows.append({"photo": r.name, "class": categories[r.top_class], "probability": r.probability(),
                     "iou": iou, "correct": "yes" if iou >= 0.5 else "no", "whole_image_iou": whole_iou})
    return rows


def photo_max_box_acc(results: Sequence[PhotoCAMs], **kwargs: object) -> MaxBoxAccResult:
    """MaxBoxAccV2 (:func:`~cam_tutorial.metrics.max_box_acc`) of the top-1 maps against the
    annotated boxes, all in crop coordinates. ``kwargs`` go to ``max_box_acc``.
    Used in the appendix."""
    results = check_results(results)
    maps = np.stack([r.maps[0].numpy() for r in results])
    return max_box_acc(maps, [r.true_boxes for r in results], **kwargs)


def confidence_summary(results: Sequence[PhotoCAMs]) -> dict[str, float]:
    """How sure the model is, and how often its top class names the main object.
    Used in the appendix.

    Keys: ``mean_top_probability`` (mean softmax of the top class), ``plausible`` (share of the
    photos with plausible classes whose top class is one of them), ``n_judged`` (how many photos
    have plausible classes), and ``gap`` = ``mean_top_probability - plausible`` over those photos:
    near 0 for a calibrated model, negative when it is less sure than it is right (``plausible``
    and ``gap`` are NaN when no photo has plausible classes: nothing to judge).
    """
    results = check_results(results)
    judged = [r for r in results if r.photo.plausible_classes]
    confidence_judged = float(np.mean([r.probability() for r in judged])) if judged else float("nan")
    plausible = float(np.mean([r.top_class in r.photo.plausible_classes for r in judged])) if judged else float("nan")
    return {
        "mean_top_probability": float(np.mean([r.probability() for r in results])),
        "plausible": plausible,
        "n_judged": float(len(judged)),
        "gap": confidence_judged - plausible,
    }


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _short(name: str, width: int) -> str:
    """``name`` cut to ``width`` characters with an ellipsis: a long class name overlaps the next title."""
    return name if len(name) <= width else name[: width - 1] + "…"


def show_top_classes(result: PhotoCAMs, categories: Sequence[str] | None = None, top_k: int = 5) -> plt.Figure:
    """The paper's top-5 figure: the photo, then the CAM of each of its ``top_k`` best classes,
    each labelled with the class name and its softmax probability.
    Used in the appendix."""
    categories = list(categories) if categories is not None else imagenet_categories()
    top_k = min(top_k, len(result.classes))
    width = min(MAX_FIGURE_WIDTH, 1.7 * (top_k + 1))
    fig, axes = plt.subplots(1, top_k + 1, figsize=(width, width / (top_k + 1) + 0.75), layout="constrained")
    axes[0].imshow(result.crop)
    axes[0].set_title(f"{result.name}\n(input, {result.size} px)", fontsize=LABEL_SIZE)
    for rank in range(top_k):
        ax = axes[rank + 1]
        ax.imshow(overlay(result.crop, result.maps[rank]))
        ax.set_title(f"{_short(categories[int(result.classes[rank])], 18)}\np = {result.probability(rank):.2f}",
                     fontsize=LABEL_SIZE)
    for ax in axes:
        ax.set(xticks=[], yticks=[])
    return fig


def show_photo_cams(results: Sequence[PhotoCAMs], categories: Sequence[str] | None = None,
                    columns: int = 4, title: str | None = None) -> plt.Figure:
    """Each photo with the CAM of its top class, the annotated boxes (green) and the paper's box
    from the CAM (red); titles give the class, its probability and the box's IoU.
    Used in the appendix."""
    categories = list(categories) if categories is not None else imagenet_categories()
    results = check_results(results)
    columns = balanced_columns(len(results), whole_number(columns, "columns"))  # six photos: two rows of three, no blank cell
    rows = -(-len(results) // columns)
    side = MAX_FIGURE_WIDTH / columns
    fig, axes = plt.subplots(rows, columns, figsize=(MAX_FIGURE_WIDTH, rows * (side + 0.7) + (0.55 if title else 0)),
                             layout="constrained", squeeze=False)
    for ax in axes.flat:
        ax.set(xticks=[], yticks=[])
        ax.set_axis_off()
    for ax, r in zip(axes.flat, results):
        ax.set_axis_on()
        ax.imshow(overlay(r.crop, r.maps[0]))
        for box in r.true_boxes:
            draw_box(ax, box, TRUE_BOX_COLOR, linewidth=2)
        draw_box(ax, r.paper_box(), CAM_BOX_COLOR, linewidth=2)
        # three short lines: one long line overlaps the next panel's title at this width
        ax.set_title(f"{r.name}\n{_short(categories[r.top_class], 20)} ({r.probability():.2f})\n"
                     f"IoU {r.paper_box_iou():.2f}", fontsize=LABEL_SIZE)
    if title:
        fig.suptitle(textwrap.fill(title, 90), fontsize=LABEL_SIZE + 1)
    return fig


def show_resolutions(by_size: Mapping[int, Sequence[PhotoCAMs]], categories: Sequence[str] | None = None,
                     names: Sequence[str] | None = None) -> plt.Figure:
    """The same photos at several input sizes: one row per size, the top-1 CAM over the crop,
    titled with the class, its probability and the raw map's size (7x7, 14x14).
    Used in the appendix."""
    categories = list(categories) if categories is not None else imagenet_categories()
    sizes = list(by_size)
    chosen = [check_results([r for r in by_size[s] if names is None or r.name in names], f"by_size[{s}]")
              for s in sizes]
    if not chosen:
        raise ValueError("by_size is empty: give {size: photo_cams(model, photos, size)} for one size or more")
    columns = len(chosen[0])
    side = min(2.5, MAX_FIGURE_WIDTH / (columns + 0.3))
    fig, axes = plt.subplots(len(sizes), columns, figsize=(side * columns + 0.3, len(sizes) * (side + 0.5)),
                             layout="constrained", squeeze=False)
    for row, (size, results) in enumerate(zip(sizes, chosen)):
        for ax, r in zip(axes[row], results):
            ax.imshow(overlay(r.crop, r.maps[0]))
            h, w = r.map_size
            ax.set_title(f"{_short(categories[r.top_class], 16)}, p = {r.probability():.2f}\n{size} px, {h}x{w} map",
                         fontsize=LABEL_SIZE)
            ax.set(xticks=[], yticks=[])
    return fig

