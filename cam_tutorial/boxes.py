"""From maps to boxes: the paper's box rule, IoU, top-1 localisation and the centre baseline.

Chapters 5, 7 and 8 use this module. Everything here works on plain maps and boxes (numpy
arrays, or torch tensors which are moved to the CPU), with numpy and OpenCV only: nothing knows
about a dataset or a model. The other localisation modules build on it:
:mod:`cam_tutorial.metrics` (MaxBoxAcc and MaxBoxAccV2), :mod:`cam_tutorial.released_code` (the
box rule of the authors' released code) and :mod:`cam_tutorial.coverage` (the pointing game, how
much of the object a map covers).

**Box convention.** A box is ``(x0, y0, x1, y1)`` in pixel indices with ``x1`` and ``y1``
*exclusive*: the box of the single pixel at column 3, row 4 is ``(3, 4, 4, 5)``. Its area is
``(x1 - x0) * (y1 - y0)``, and the IoU of two boxes is

.. math:: \\mathrm{IoU}(A, B) = \\frac{|A \\cap B|}{|A| + |B| - |A \\cap B|}

with that area, and 0 when both boxes are empty. Boxes may hold floats (a ground-truth box
need not sit on the pixel grid); boxes made from maps are integers.

**Maps** are 2-D, at the resolution of the boxes they are scored against (upsample first). A
map holding NaN or infinity raises ``ValueError`` everywhere in the localisation modules: such
a map signals a bug upstream (a division by zero in a normalisation, say) and a metric that
quietly scored it would hide that bug. To follow Choe et al.'s code, which scores NaN maps as
zero maps, pass ``np.nan_to_num(cams, nan=0.0)``.

What is here:

* :func:`box_from_cam`: the paper's rule (Zhou et al. 2016, section 3); :func:`boxes_from_cams`
  for a batch.
* :func:`box_iou` and :func:`localization_accuracy` (top-1 and ground-truth-known
  localisation).
* A baseline that looks at no image: :func:`center_gaussian_maps`.
* The input checks the localisation modules share (:func:`as_maps`, :func:`as_boxes`, ...):
  public so that those modules can use them, and left out of ``__all__``.

Example:
    >>> import numpy as np
    >>> cam = np.zeros((8, 10)); cam[2:5, 3:7] = 1.0
    >>> box_from_cam(cam).tolist()
    [3, 2, 7, 5]
    >>> float(box_iou([[3, 2, 7, 5]], [[5, 2, 9, 5]])[0, 0])  # 6 shared pixels of 18
    0.3333333333333333
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = [
    "box_iou",
    "box_from_cam",
    "boxes_from_cams",
    "LocalizationAccuracy",
    "localization_accuracy",
    "center_gaussian_maps",
]


# --------------------------------------------------------------------------------------------
# Input checking: every public function of the localisation modules goes through these, so
# errors read the same everywhere. They carry no underscore because metrics, released_code and
# coverage use them too; they are not in __all__.
# --------------------------------------------------------------------------------------------

def to_numpy(x: Any) -> np.ndarray:
    """A numpy view of ``x``; torch tensors are detached and moved to the CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
    return np.asarray(x)


def as_map(cam: Any, name: str = "cam") -> np.ndarray:
    """One finite 2-D map as float64."""
    m = to_numpy(cam)
    if m.ndim != 2:
        raise ValueError(
            f"{name} must be one 2-D map (H, W), got shape {m.shape}; "
            "for a batch use the batch function, for (1, H, W) use cam[0]"
        )
    if m.size == 0:
        raise ValueError(f"{name} is empty (shape {m.shape}): a map needs at least one pixel; "
                         "check the crop or resize that produced it")
    if not np.issubdtype(m.dtype, np.number) and m.dtype != bool:
        raise TypeError(f"{name} must hold numbers, got dtype {m.dtype}; convert it with "
                        "np.asarray(cam, dtype=float)")
    m = m.astype(np.float64, copy=False)
    if not np.isfinite(m).all():
        raise ValueError(
            f"{name} contains NaN or infinity: fix the map upstream, or pass "
            "np.nan_to_num(cam, nan=0.0) to score it as zeros"
        )
    return m


def as_maps(cams: Any, name: str = "cams") -> list[np.ndarray]:
    """A batch of maps, (N, H, W) or a sequence of 2-D maps (sizes may differ), as float64."""
    if isinstance(cams, (list, tuple)):
        items = list(cams)
    else:
        arr = to_numpy(cams)
        if arr.ndim != 3:
            hint = {2: " (for one map use cam[None])", 4: " (for (N, 1, H, W) use cams[:, 0])"}.get(
                arr.ndim, " (stack 2-D maps with np.stack)")
            raise ValueError(f"{name} must be (N, H, W) or a list of 2-D maps, got shape "
                             f"{arr.shape}{hint}")
        items = list(arr)
    if not items:
        raise ValueError(f"{name} is empty: need at least one map")
    return [as_map(item, f"{name}[{i}]") for i, item in enumerate(items)]


def as_boxes(boxes: Any, name: str = "boxes") -> np.ndarray:
    """Boxes (K, 4) as float64; one box (4,) becomes (1, 4)."""
    b = to_numpy(boxes)
    if b.ndim == 1 and b.shape[0] == 4:
        b = b[None, :]
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must be (K, 4) boxes (x0, y0, x1, y1), got shape {b.shape}; "
                         "give one row [x0, y0, x1, y1] per box")
    if not (np.issubdtype(b.dtype, np.number) or b.dtype == bool):
        raise TypeError(f"{name} must hold numbers, got dtype {b.dtype}; convert it with "
                        "np.asarray(boxes, dtype=float)")
    b = b.astype(np.float64, copy=False)
    if not np.isfinite(b).all():
        raise ValueError(f"{name} contains NaN or infinity: every box needs four finite "
                         "corners; drop the images whose box is missing")
    if (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
        bad = int(np.flatnonzero((b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1]))[0])
        raise ValueError(
            f"{name}[{bad}] = {b[bad].tolist()} has x1 < x0 or y1 < y0: boxes are "
            "(x0, y0, x1, y1) corners; convert (x, y, w, h) with (x, y, x + w, y + h)"
        )
    return b


def as_box_lists(gt_boxes: Any, n: int, name: str = "gt_boxes") -> list[np.ndarray]:
    """Ground truth per image: (N, 4), (N, K, 4) or a list of (K_i, 4) / (4,) arrays."""
    if isinstance(gt_boxes, (list, tuple)):
        items = list(gt_boxes)
    else:
        arr = to_numpy(gt_boxes)
        if arr.ndim == 2 and arr.shape[1] == 4:
            items = list(arr[:, None, :])
        elif arr.ndim == 3 and arr.shape[2] == 4:
            items = list(arr)
        else:
            raise ValueError(f"{name} must be (N, 4), (N, K, 4) or a list of (K_i, 4) arrays, "
                             f"got shape {arr.shape}")
    if len(items) != n:
        raise ValueError(f"{name} has {len(items)} entries but there are {n} maps/predictions: "
                         "give one entry (one or several boxes) per image")
    out = []
    for i, item in enumerate(items):
        b = as_boxes(item, f"{name}[{i}]")
        if len(b) == 0:
            raise ValueError(f"{name}[{i}] holds no box: every image needs at least one")
        out.append(b)
    return out


def check_unit_interval(values: Any, name: str, *, allow_zero: bool = True) -> np.ndarray:
    """One number or a 1-D sequence of fractions in [0, 1] (in (0, 1] without ``allow_zero``),
    as a float64 array."""
    try:
        v = np.atleast_1d(np.asarray(to_numpy(values), dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a 1-D sequence of numbers in [0, 1], "
                         f"got {values!r}") from None
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got {values!r}; "
                         "pass one number or a flat list")
    low_ok = (v >= 0) if allow_zero else (v > 0)
    if not (np.isfinite(v).all() and low_ok.all() and (v <= 1).all()):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        hint = "; divide percentages by 100" if (np.abs(v[np.isfinite(v)]) > 1).any() else ""
        raise ValueError(f"{name} must lie in {interval} (fractions, not percentages), "
                         f"got {values!r}{hint}")
    return v


def check_count(value: Any, name: str) -> int:
    """A whole number >= 1 (a side in pixels, a number of images)."""
    try:
        valid = not isinstance(value, bool) and float(value) == int(value) >= 1
    except (TypeError, ValueError, OverflowError):
        valid = False
    if not valid:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def check_size(size: Any) -> tuple[int, int] | None:
    """``size=`` as ``(height, width)``: a pair of whole numbers >= 1, one int for a square, or
    ``None`` (no resize)."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    try:
        valid = len(size) == 2 and all(float(v) == int(v) >= 1 for v in size)
    except (TypeError, ValueError, OverflowError):
        valid = False
    if not valid:
        raise ValueError(f"size must be (height, width) in whole pixels >= 1, or one int, got "
                         f"{size!r}; for an image of H x W pass size=(H, W)")
    return int(size[0]), int(size[1])


def resize_map(m: np.ndarray, size: tuple[int, int] | None,
               interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Resize of a float map to (height, width), bilinear unless told; the float map, never
    8-bit first."""
    if size is None or m.shape == size:
        return m
    return cv2.resize(m, (size[1], size[0]), interpolation=interpolation)


# --------------------------------------------------------------------------------------------
# IoU
# --------------------------------------------------------------------------------------------

def box_iou(boxes_a: Any, boxes_b: Any, *, inclusive: bool = False) -> np.ndarray:
    """Intersection over union of every box in ``boxes_a`` with every box in ``boxes_b``.
    Used in chapter 7, and the appendix.

    With the module's exclusive convention, a box's area is ``(x1 - x0) * (y1 - y0)`` and

    .. math:: \\mathrm{IoU}(A, B) = \\frac{|A \\cap B|}{|A| + |B| - |A \\cap B|},

    defined as 0 when the union is empty (two empty boxes).

    Args:
        boxes_a: ``(N, 4)`` boxes ``(x0, y0, x1, y1)``; one box ``(4,)`` counts as ``(1, 4)``.
        boxes_b: ``(M, 4)`` boxes.
        inclusive: read ``x1`` and ``y1`` as inclusive pixels, every side ``x1 - x0 + 1``, as
            Choe et al.'s code does (:func:`~cam_tutorial.metrics.max_box_acc`'s
            ``protocol="wsolevaluation"``).

    Returns:
        ``(N, M)`` float64 array of IoUs in [0, 1].

    Raises:
        ValueError: for a wrong shape, a non-finite value or a box with ``x1 < x0``.

    Example:
        >>> box_iou([[0, 0, 4, 4]], [[0, 0, 4, 4], [2, 0, 6, 4], [4, 4, 8, 8]]).round(4).tolist()
        [[1.0, 0.3333, 0.0]]
    """
    return _iou(as_boxes(boxes_a, "boxes_a")[:, None, :], as_boxes(boxes_b, "boxes_b")[None, :, :],
                1.0 if inclusive else 0.0)


def _iou(a: np.ndarray, b: np.ndarray, extra: float = 0.0) -> np.ndarray:
    """IoU of boxes ``(..., 4)`` that broadcast against each other, ``extra`` added to every side
    (1 for inclusive corners; adding 0.0 changes no bit)."""
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + extra, 0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + extra, 0, None)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + extra) * (a[..., 3] - a[..., 1] + extra)
    area_b = (b[..., 2] - b[..., 0] + extra) * (b[..., 3] - b[..., 1] + extra)
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


# --------------------------------------------------------------------------------------------
# The paper's rule
# --------------------------------------------------------------------------------------------

def foreground_mask(m: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels at or above ``threshold`` times the map's maximum (see :func:`box_from_cam`)."""
    top = m.max()
    if top <= 0:
        # No positive value: "a fraction of the maximum" would lie above the maximum. Measure
        # from the minimum instead; a constant map then has every pixel at its maximum.
        m = m - m.min()
        top = m.max()
        if top == 0:
            return np.ones(m.shape, dtype=bool)
    return m >= threshold * top


def box_from_cam(cam: Any, threshold: float = 0.2) -> np.ndarray:
    """The CAM paper's box: the tight box of the largest region above a fraction of the maximum.
    Used in chapter 7, and the appendix.

    Zhou et al. (2016, section 3): keep the pixels whose value is at least ``threshold`` times
    the map's maximum, take the largest connected component (8-connected, largest pixel count,
    the first in raster order on a tie; OpenCV ``connectedComponentsWithStats``), return its
    tight box.

    Degenerate maps have a defined answer, never an exception:

    * a constant map (all zeros included): every pixel equals the maximum, so every pixel is
      kept and the box is the whole image ``(0, 0, W, H)``;
    * a map with no positive value (negative-only): the fraction is measured from the minimum,
      ``m - m.min() >= threshold * (m.max() - m.min())``, so its least negative region wins;
    * NaN or infinity: ``ValueError`` (see the module docstring).

    This is the rule the paper states; the authors' released code does something else (see
    :func:`~cam_tutorial.released_code.box_from_cam_released_code`).

    Args:
        cam: one map ``(H, W)``, numpy or torch.
        threshold: the fraction of the maximum, in [0, 1]; the paper uses 0.2.

    Returns:
        ``(4,)`` int64 box ``(x0, y0, x1, y1)``, ``x1`` and ``y1`` exclusive.

    Example:
        >>> import numpy as np
        >>> cam = np.zeros((6, 6)); cam[4, 3] = 1.0  # one pixel at x=3, y=4
        >>> box_from_cam(cam).tolist()
        [3, 4, 4, 5]
    """
    threshold = float(check_unit_interval(threshold, "threshold")[0])
    fg = foreground_mask(as_map(cam), threshold).astype(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    # Row 0 of stats is the background label; the foreground is never empty here.
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[best, :4])
    return np.array([x, y, x + w, y + h], dtype=np.int64)


def boxes_from_cams(cams: Any, threshold: float = 0.2) -> np.ndarray:
    """:func:`box_from_cam` for a batch ``(N, H, W)`` (or a list of maps): ``(N, 4)`` int64.
    Used in chapters 5 and 8, and the appendix."""
    maps = as_maps(cams)
    return np.stack([box_from_cam(m, threshold) for m in maps])


# --------------------------------------------------------------------------------------------
# Top-1 and ground-truth-known localisation
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LocalizationAccuracy:
    """Localisation scores of one set of predictions (fractions in [0, 1]).
    Used in no chapter directly.

    Attributes:
        top1_loc: class right AND best IoU with a ground-truth box >= 0.5.
        gt_known_loc: best IoU >= 0.5, whatever the class (the class is given).
        top1_cls: class right (classification accuracy), for reference.
        ious: per image, the best IoU of its predicted box with its ground-truth boxes.
    """

    top1_loc: float
    gt_known_loc: float
    top1_cls: float
    ious: np.ndarray


def localization_accuracy(
    pred_classes: Any,
    true_classes: Any,
    pred_boxes: Any,
    gt_boxes: Any,
) -> LocalizationAccuracy:
    """Top-1 localisation (class right and IoU >= 0.5) and ground-truth-known localisation.
    Used in chapter 7, and the appendix.

    For image ``i`` with best IoU :math:`u_i = \\max_g \\mathrm{IoU}(\\hat b_i, g)` over its
    ground-truth boxes ``g`` (ImageNet's rule: any box of the class counts),

    .. math:: \\text{top-1 loc} = \\tfrac1N \\sum_i [\\hat y_i = y_i]\\,[u_i \\ge 0.5],
              \\qquad \\text{GT-known loc} = \\tfrac1N \\sum_i [u_i \\ge 0.5].

    Pass the boxes of the maps of the *true* class: ground-truth-known localisation needs them,
    and where the class is right they are the predicted class's boxes, so top-1 is unchanged.

    Args:
        pred_classes: ``(N,)`` predicted labels.
        true_classes: ``(N,)`` true labels.
        pred_boxes: ``(N, 4)`` one box per image.
        gt_boxes: ``(N, 4)``, ``(N, K, 4)`` or a list of ``(K_i, 4)`` arrays (several per image).

    Returns:
        A :class:`LocalizationAccuracy`.

    Example:
        >>> r = localization_accuracy([1, 2], [1, 0], [[0, 0, 4, 4], [0, 0, 4, 4]],
        ...                           [[0, 0, 4, 4], [0, 0, 4, 4]])
        >>> r.top1_loc, r.gt_known_loc
        (0.5, 1.0)
    """
    pred, true = to_numpy(pred_classes), to_numpy(true_classes)
    if pred.ndim != 1 or true.ndim != 1:
        raise ValueError(f"pred_classes and true_classes must be 1-D (N,) label arrays, got "
                         f"shapes {pred.shape} and {true.shape}; from scores, take argmax(1)")
    n = len(pred)
    if n == 0:
        raise ValueError("no predictions (pred_classes is empty): need at least one image")
    for labels, what in ((pred, "pred_classes"), (true, "true_classes")):
        if np.issubdtype(labels.dtype, np.floating) and not (
                np.isfinite(labels).all() and (labels == np.round(labels)).all()):
            raise ValueError(f"{what} must hold whole class indices, got {labels[:5]!r} "
                             f"(dtype {labels.dtype}); from scores, take argmax(1)")
    boxes = as_boxes(pred_boxes, "pred_boxes")
    if len(true) != n or len(boxes) != n:
        raise ValueError(f"lengths differ: {n} pred_classes, {len(true)} true_classes, "
                         f"{len(boxes)} pred_boxes; give one of each per image")
    ious = np.array([_iou(box, gt).max() for box, gt in zip(boxes, as_box_lists(gt_boxes, n))])
    located = ious >= 0.5
    right = pred == true
    return LocalizationAccuracy(
        top1_loc=float(np.mean(right & located)),
        gt_known_loc=float(np.mean(located)),
        top1_cls=float(np.mean(right)),
        ious=ious,
    )

# --------------------------------------------------------------------------------------------
# A baseline that looks at no image
# --------------------------------------------------------------------------------------------

def center_gaussian_maps(n: int, height: int, width: int, sigma: float = 0.25) -> np.ndarray:
    """Choe et al.'s centre baseline as maps: a Gaussian bump centred in every image.
    Used in the appendix.

    :math:`M(x, y) = \\exp(-\\tfrac12[(\\tfrac{x - c_x}{\\sigma W})^2 +
    (\\tfrac{y - c_y}{\\sigma H})^2])` with pixel centres ``x + 0.5`` and the image centre
    ``(W/2, H/2)``; the standard deviation is ``sigma`` times each side, so the level sets are
    centred ellipses with the image's aspect ratio. Scored by
    :func:`~cam_tutorial.metrics.max_box_acc`, its thresholds sweep centred boxes of every size
    and the best size wins, which is what makes it the baseline any map must beat.

    Returns:
        ``(n, height, width)`` float64, maximum 1 at the centre.
    """
    n = check_count(n, "n (the number of images)")
    height, width = check_count(height, "height"), check_count(width, "width")
    if not 0 < float(sigma) < np.inf:
        raise ValueError(f"sigma must be > 0 and finite (a fraction of the side, e.g. 0.25), "
                         f"got {sigma!r}")
    ys = (np.arange(height) + 0.5 - height / 2) / (sigma * height)
    xs = (np.arange(width) + 0.5 - width / 2) / (sigma * width)
    bump = np.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2))
    return np.broadcast_to(bump / bump.max(), (int(n), int(height), int(width))).copy()

