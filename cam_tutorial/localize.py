"""From maps to boxes, and how to score them: the localisation metrics of the CAM literature.

Everything here works on plain maps and boxes (numpy arrays, or torch tensors which are moved to
the CPU), with numpy and OpenCV only: nothing knows about a dataset or a model.

**Box convention.** A box is ``(x0, y0, x1, y1)`` in pixel indices with ``x1`` and ``y1``
*exclusive*: the box of the single pixel at column 3, row 4 is ``(3, 4, 4, 5)``. Its area is
``(x1 - x0) * (y1 - y0)``, and the IoU of two boxes is

.. math:: \\mathrm{IoU}(A, B) = \\frac{|A \\cap B|}{|A| + |B| - |A \\cap B|}

with that area, and 0 when both boxes are empty. Boxes may hold floats (a ground-truth box
need not sit on the pixel grid); boxes made from maps are integers.

**Maps** are 2-D, at the resolution of the boxes they are scored against (upsample first). A
map holding NaN or infinity raises ``ValueError`` everywhere in this module: such a map
signals a bug upstream (a division by zero in a normalisation, say) and a metric that quietly
scored it would hide that bug. To follow Choe et al.'s code, which scores NaN maps as zero
maps, pass ``np.nan_to_num(cams, nan=0.0)``.

What is here:

* :func:`box_from_cam`: the paper's rule (Zhou et al. 2016, section 3); :func:`boxes_from_cams`
  for a batch.
* :func:`box_from_cam_released_code`: what the authors' released code does instead.
* :func:`box_iou` and :func:`localization_accuracy` (top-1 and ground-truth-known localisation).
* :func:`max_box_acc` (MaxBoxAcc and MaxBoxAccV2, Choe et al. CVPR 2020), fast, and
  :func:`max_box_acc_reference`, the straightforward loop that defines it; with
  ``protocol="wsolevaluation"`` both reproduce Choe et al.'s code exactly; add
  ``cam_thresholds=FINE_CAM_THRESHOLDS`` (their training runs' grid) for numbers comparable
  with published ones.
* :func:`pointing_game` (Zhang et al. 2016).
* Baselines that look at no image: :func:`center_box`, :func:`center_baseline_boxes`,
  :func:`center_gaussian_maps`.
* :func:`cam_area_fraction`: how much of the object a map covers; :func:`part_coverage`: which of
  its parts.

Example:
    >>> import numpy as np
    >>> cam = np.zeros((8, 10)); cam[2:5, 3:7] = 1.0
    >>> box_from_cam(cam).tolist()
    [3, 2, 7, 5]
    >>> float(box_iou([[3, 2, 7, 5]], [[5, 2, 9, 5]])[0, 0])  # 6 shared pixels of 18
    0.3333333333333333
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt

__all__ = [
    "DEFAULT_CAM_THRESHOLDS",
    "FINE_CAM_THRESHOLDS",
    "RELEASED_CODE_LEVELS",
    "box_iou",
    "paired_box_iou",
    "box_from_cam",
    "boxes_from_cams",
    "box_from_cam_released_code",
    "LocalizationAccuracy",
    "localization_accuracy",
    "MAX_BOX_ACC_PROTOCOLS",
    "MaxBoxAccResult",
    "max_box_acc",
    "max_box_acc_both",
    "max_box_acc_reference",
    "pointing_game",
    "center_box",
    "center_baseline_boxes",
    "center_gaussian_maps",
    "AreaFraction",
    "cam_area_fraction",
    "object_size_coverage",
    "PartCoverage",
    "part_coverage",
]

logger = logging.getLogger(__name__)

#: The threshold grid 0.00, 0.01, ..., 0.99 (read-only): that of Choe et al.'s ``evaluation.py``
#: when run on its own (its ``--cam_curve_interval`` default and their README's example).
DEFAULT_CAM_THRESHOLDS: np.ndarray = np.arange(0, 1, 0.01)
DEFAULT_CAM_THRESHOLDS.setflags(write=False)
#: The finer grid 0.000, 0.001, ..., 0.999 (read-only): that of Choe et al.'s training runs
#: (``main.py``'s ``--cam_curve_interval`` default), which their published tables come from. On
#: an 8-bit map it tries every grey level as the cut, where the default grid tries 100 of them.
FINE_CAM_THRESHOLDS: np.ndarray = np.arange(0, 1, 0.001)
FINE_CAM_THRESHOLDS.setflags(write=False)

#: The protocols :func:`max_box_acc` knows: this module's definition ("clean", the default) and
#: Choe et al.'s code's, reproduced exactly ("wsolevaluation").
MAX_BOX_ACC_PROTOCOLS: tuple[str, str] = ("clean", "wsolevaluation")

#: The three grey levels (of 255) of the released code's ``generate_bbox.m``.
RELEASED_CODE_LEVELS: tuple[int, int, int] = (20, 100, 110)


# --------------------------------------------------------------------------------------------
# Input checking: every public function goes through these, so errors read the same everywhere.
# --------------------------------------------------------------------------------------------

def _to_numpy(x: Any) -> np.ndarray:
    """A numpy view of ``x``; torch tensors are detached and moved to the CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
    return np.asarray(x)


def _as_map(cam: Any, name: str = "cam") -> np.ndarray:
    """One finite 2-D map as float64."""
    m = _to_numpy(cam)
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


def _as_maps(cams: Any, name: str = "cams") -> list[np.ndarray]:
    """A batch of maps, (N, H, W) or a sequence of 2-D maps (sizes may differ), as float64."""
    if isinstance(cams, (list, tuple)):
        items = list(cams)
    else:
        arr = _to_numpy(cams)
        if arr.ndim != 3:
            hint = " (for one map use cam[None])" if arr.ndim == 2 else ""
            hint = " (for (N, 1, H, W) use cams[:, 0])" if arr.ndim == 4 else hint
            hint = hint or " (stack 2-D maps with np.stack)"
            raise ValueError(f"{name} must be (N, H, W) or a list of 2-D maps, got shape "
                             f"{arr.shape}{hint}")
        items = list(arr)
    if not items:
        raise ValueError(f"{name} is empty: need at least one map")
    maps = []
    for i, item in enumerate(items):
        maps.append(_as_map(item, f"{name}[{i}]"))
    return maps


def _as_boxes(boxes: Any, name: str = "boxes") -> np.ndarray:
    """Boxes (K, 4) as float64; one box (4,) becomes (1, 4)."""
    b = _to_numpy(boxes)
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


def _as_box_lists(gt_boxes: Any, n: int, name: str = "gt_boxes") -> list[np.ndarray]:
    """Ground truth per image: (N, 4), (N, K, 4) or a list of (K_i, 4) / (4,) arrays."""
    if isinstance(gt_boxes, (list, tuple)):
        items = list(gt_boxes)
    else:
        arr = _to_numpy(gt_boxes)
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
        b = _as_boxes(item, f"{name}[{i}]")
        if len(b) == 0:
            raise ValueError(f"{name}[{i}] holds no box: every image needs at least one")
        out.append(b)
    return out


def _check_unit_interval(values: Any, name: str, *, allow_zero: bool = True) -> np.ndarray:
    try:
        v = np.atleast_1d(np.asarray(_to_numpy(values), dtype=np.float64))
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


def _as_mask(mask: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    """One object mask as bool (non-zero = object), checked against its map's shape."""
    m = _to_numpy(mask)
    if not (np.issubdtype(m.dtype, np.number) or m.dtype == bool):
        raise TypeError(f"{name} must hold numbers or booleans, got dtype {m.dtype}")
    if m.shape != shape:
        raise ValueError(f"{name} has shape {m.shape} but its map has {shape}: a mask needs the "
                         "same shape as its map; resize the map (or the mask) to one size")
    if np.issubdtype(m.dtype, np.floating) and not np.isfinite(m).all():
        raise ValueError(f"{name} contains NaN or infinity: a mask is 0 (background) or "
                         "non-zero (object); fix it upstream or pass np.nan_to_num(mask)")
    return m != 0


def _check_count(value: Any, name: str) -> int:
    """A whole number >= 1 (a side in pixels, a number of images)."""
    try:
        valid = not isinstance(value, bool) and float(value) == int(value) >= 1
    except (TypeError, ValueError, OverflowError):
        valid = False
    if not valid:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _check_size(size: Any) -> tuple[int, int] | None:
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


def _resize(m: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Bilinear resize of a float map to (height, width); the float map, never 8-bit first."""
    if size is None or m.shape == size:
        return m
    return cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


# --------------------------------------------------------------------------------------------
# IoU
# --------------------------------------------------------------------------------------------

def box_iou(boxes_a: Any, boxes_b: Any) -> np.ndarray:
    """Intersection over union of every box in ``boxes_a`` with every box in ``boxes_b``.

    With the module's exclusive convention, a box's area is ``(x1 - x0) * (y1 - y0)`` and

    .. math:: \\mathrm{IoU}(A, B) = \\frac{|A \\cap B|}{|A| + |B| - |A \\cap B|},

    defined as 0 when the union is empty (two empty boxes).

    Args:
        boxes_a: ``(N, 4)`` boxes ``(x0, y0, x1, y1)``; one box ``(4,)`` counts as ``(1, 4)``.
        boxes_b: ``(M, 4)`` boxes.

    Returns:
        ``(N, M)`` float64 array of IoUs in [0, 1].

    Raises:
        ValueError: for a wrong shape, a non-finite value or a box with ``x1 < x0``.

    Example:
        >>> box_iou([[0, 0, 4, 4]], [[0, 0, 4, 4], [2, 0, 6, 4], [4, 4, 8, 8]]).round(4).tolist()
        [[1.0, 0.3333, 0.0]]
    """
    return _iou(_as_boxes(boxes_a, "boxes_a")[:, None, :], _as_boxes(boxes_b, "boxes_b")[None, :, :])


def paired_box_iou(boxes_a: Any, boxes_b: Any) -> np.ndarray:
    """The IoU of each box in ``boxes_a`` with the box at the same index in ``boxes_b``.

    The diagonal of :func:`box_iou`, without the ``N x N`` matrix: one predicted box per image
    against that image's ground truth.

    Returns:
        ``(N,)`` float64 array of IoUs in [0, 1].

    Raises:
        ValueError: as :func:`box_iou`, or when the two hold different numbers of boxes.

    Example:
        >>> paired_box_iou([[0, 0, 4, 4], [0, 0, 2, 2]], [[2, 0, 6, 4], [0, 0, 2, 2]]).round(4).tolist()
        [0.3333, 1.0]
    """
    a, b = _as_boxes(boxes_a, "boxes_a"), _as_boxes(boxes_b, "boxes_b")
    if len(a) != len(b):
        raise ValueError(f"paired_box_iou pairs boxes by index: got {len(a)} and {len(b)} boxes; "
                         "use box_iou for every pair")
    return _iou(a, b)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``(..., 4)`` that broadcast against each other."""
    inter_w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


# --------------------------------------------------------------------------------------------
# The paper's rule
# --------------------------------------------------------------------------------------------

def _foreground(m: np.ndarray, threshold: float) -> np.ndarray:
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


def box_from_cam(cam: Any, threshold: float = 0.2, *, size: Any = None) -> np.ndarray:
    """The CAM paper's box: the tight box of the largest region above a fraction of the maximum.

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
    :func:`box_from_cam_released_code`).

    Args:
        cam: one map ``(H, W)``, numpy or torch.
        threshold: the fraction of the maximum, in [0, 1]; the paper uses 0.2.
        size: optional ``(height, width)`` (or one int) to resize the float map to first
            (bilinear), e.g. the image's size when ``cam`` is the raw low-resolution map.

    Returns:
        ``(4,)`` int64 box ``(x0, y0, x1, y1)``, ``x1`` and ``y1`` exclusive.

    Example:
        >>> import numpy as np
        >>> cam = np.zeros((6, 6)); cam[4, 3] = 1.0  # one pixel at x=3, y=4
        >>> box_from_cam(cam).tolist()
        [3, 4, 4, 5]
    """
    threshold = float(_check_unit_interval(threshold, "threshold")[0])
    m = _resize(_as_map(cam), _check_size(size))
    fg = _foreground(m, threshold).astype(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    # Row 0 of stats is the background label; the foreground is never empty here.
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[best, :4])
    return np.array([x, y, x + w, y + h], dtype=np.int64)


def boxes_from_cams(cams: Any, threshold: float = 0.2, *, size: Any = None) -> np.ndarray:
    """:func:`box_from_cam` for a batch ``(N, H, W)`` (or a list of maps): ``(N, 4)`` int64."""
    maps = _as_maps(cams)
    return np.stack([box_from_cam(m, threshold, size=size) for m in maps])


# --------------------------------------------------------------------------------------------
# The released code's rule
# --------------------------------------------------------------------------------------------

def _released_gray(m: np.ndarray) -> np.ndarray:
    """The 8-bit heat map the released pipeline writes, from a float map (step 1 below).

    ``ILSVRC_generate_heatmap.m`` divides the map by its maximum, ``x ./ max(x(:))``, and
    ``imwrite`` stores the result as ``uint8(round(255 * x))`` saturated to 0..255. Hence, for a
    map with a positive maximum, values below 0 become 0; for a negative maximum every ratio is
    at least 1 (a negative over a smaller-magnitude negative) and the whole image saturates to
    255; for a zero maximum the ratios are NaN or -Inf, both written as 0.
    """
    top = m.max()
    if top < 0:
        return np.full(m.shape, 255, dtype=np.uint8)
    if top == 0:
        return np.zeros(m.shape, dtype=np.uint8)
    return np.floor(255.0 * np.clip(m / top, 0.0, 1.0) + 0.5).astype(np.uint8)


def _released_erosion(mask: np.ndarray) -> np.ndarray:
    """The released code's "erosion": drop pixels near the background, relative to the deepest.

    ``dt.c``'s ``dt_binary`` replaces the binary image by its Euclidean distance transform in
    double precision (the distance of each foreground pixel to the nearest background pixel
    inside the image; the image border is not background), rescales it by ``255 / max`` and
    rounds, ``(int)(d * 255 / max + 0.5)``; ``dt_box.cpp`` then keeps the pixels above 10. The
    distances here are scipy's exact ones in float64, the same numbers. An all-foreground or
    all-background image is left unchanged, as there (``double_to_image`` returns early when
    the minimum equals the maximum).
    """
    if mask.all() or not mask.any():
        return mask
    dist = distance_transform_edt(mask)
    rescaled = np.floor(dist * (255.0 / dist.max()) + 0.5)
    return rescaled > 10


def _limit(value: np.ndarray, low: int, high: Any) -> np.ndarray:
    """``dt_box.cpp``'s ``LIMIT(v, L, R)``: ``v < L ? L : (v > R ? R : v)``, L tested first.

    When ``R < L`` (a contour starting within the margin) a value ``>= L`` comes out as the
    negative ``R``: that is how the released code makes negative widths.
    """
    return np.where(value < low, low, np.where(value > high, high, value))


def _released_raw_boxes(gray: np.ndarray, levels: Sequence[int], erode: bool,
                        margin: int) -> np.ndarray:
    """``dt_box.cpp`` up to ``getBBox``: the ``(x, y, w, h)`` rectangles it writes, ``(K, 4)``.

    Levels in the given order, then OpenCV's contour order within a level; widths and heights
    may be negative (see :func:`_limit`).
    """
    height, width = gray.shape
    rects = []
    for level in levels:
        mask = gray > level
        if erode:
            mask = _released_erosion(mask)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP,
                                       cv2.CHAIN_APPROX_SIMPLE)
        rects.extend(cv2.boundingRect(c) for c in contours)
    if not rects:
        return np.zeros((0, 4), dtype=np.int64)
    bx, by, bw, bh = np.array(rects, dtype=np.int64).T
    # The same four lines as getBBox; note the width is limited with the unclipped x.
    x = _limit(bx, 0, width - margin)
    y = _limit(by, 0, height - margin)
    w = _limit(bw, 0, width - bx - margin)
    h = _limit(bh, 0, height - by - margin)
    return np.stack([x, y, w, h], axis=1)


def _released_merge(rects: np.ndarray) -> np.ndarray:
    """``dt_box.cpp``'s ``mergeBBox`` on rectangles sorted largest first, vectorised.

    For each surviving box ``i`` in order, every later box ``j`` with ``big_overlap(i, j)`` is
    erased, except that the C++ loop increments ``j`` after an erase and so never tests the
    box that moved into the erased slot: the box right after an erased one survives this ``i``
    (it may still be erased by a later ``i``). ``big_overlap``: the overlap of the two
    rectangles, ``max(0, min(x12, x22) - max(x11, x21))`` times the same in ``y``, exceeds
    ``t = (int)(max(w_a h_a, w_b h_b) * 0.5)`` (C truncation, toward zero). A rectangle with a
    negative side overlaps nothing; two with negative areas have ``t < 0`` and overlap 0, so
    the later one is erased.

    The overlaps of box ``i`` with all later boxes are one numpy expression; only the erase
    positions are walked in Python, to reproduce the skip.
    """
    x0, y0 = rects[:, 0], rects[:, 1]
    x1, y1 = x0 + rects[:, 2], y0 + rects[:, 3]
    area = rects[:, 2] * rects[:, 3]
    alive = np.arange(len(rects))  # the current vector, as indices into rects
    i = 0
    while i < len(alive) - 1:
        a, tail = alive[i], alive[i + 1:]
        over_x = np.maximum(0, np.minimum(x1[a], x1[tail]) - np.maximum(x0[a], x0[tail]))
        over_y = np.maximum(0, np.minimum(y1[a], y1[tail]) - np.maximum(y0[a], y0[tail]))
        limit = np.trunc(np.maximum(area[a], area[tail]) * 0.5)
        hits = np.flatnonzero(over_x * over_y > limit)
        if hits.size:
            erased, next_tested = [], 0
            for q in hits.tolist():
                if q >= next_tested:  # tested (not the slot right after an erase)
                    erased.append(q)
                    next_tested = q + 2
            alive = np.delete(alive, i + 1 + np.array(erased))
        i += 1
    return rects[alive]


def _matlab_corners(rects: np.ndarray) -> np.ndarray:
    """How ``generate_bbox.m`` reads ``x y w h`` back: corners ``(x, y, x + w, y + h)``, then
    the smaller of each pair first, so a negative width flips the box to the other side."""
    x, y = rects[:, 0], rects[:, 1]
    x_end, y_end = x + rects[:, 2], y + rects[:, 3]
    return np.stack([np.minimum(x, x_end), np.minimum(y, y_end),
                     np.maximum(x, x_end), np.maximum(y, y_end)], axis=1).astype(np.int64)


def _check_released_arguments(levels: Sequence[int], edge_margin: int) -> tuple[list[int], int]:
    levels_arr = np.asarray(levels)
    if (levels_arr.ndim != 1 or levels_arr.size == 0
            or not np.issubdtype(levels_arr.dtype, np.integer)
            or (levels_arr < 0).any() or (levels_arr > 254).any()):
        raise ValueError(f"levels must be grey levels, integers in 0..254 (of 255, not "
                         f"fractions of the maximum), got {levels!r}")
    if isinstance(edge_margin, bool) or not isinstance(edge_margin, (int, np.integer)) \
            or edge_margin < 0:
        raise ValueError(f"edge_margin must be an int >= 0 (pixels), got {edge_margin!r}")
    return levels_arr.tolist(), int(edge_margin)


def _check_released_map_size(shape: tuple[int, int], margin: int) -> None:
    """Maps too small for the margin: the released code's boxes would leave them (issue 11).

    With ``W >= 2 m - 1`` every box stays inside: ``x`` lies in ``[0, W - m]`` and a flipped
    box's far corner ``2 W - x_contour - 2 m`` is at least ``W + 1 - 2 m``.
    """
    smallest = 2 * margin - 1
    if margin and min(shape) < smallest:
        raise ValueError(
            f"the map is {shape[0]} x {shape[1]} px, smaller than 2 * edge_margin - 1 = "
            f"{smallest} px: the released code's edge clipping (dt_box.cpp's LIMIT, "
            f"edge_margin={margin}) puts boxes outside such a map. Resize it to the image "
            f"first (size=(height, width); the released code ran at the image's size), or pass "
            f"edge_margin=0"
        )


def box_from_cam_released_code(
    cam: Any,
    *,
    size: Any = None,
    levels: Sequence[int] = RELEASED_CODE_LEVELS,
    erode: bool = True,
    edge_margin: int = 5,
    return_all: bool = False,
) -> np.ndarray:
    """The box that the authors' released code (zhoubolei/CAM) produces, not the paper's rule.

    The paper says "20% of the maximum, largest connected component". The released pipeline,
    ``ILSVRC_generate_heatmap.m`` (writes the map), ``bboxgenerator/dt_box.cpp`` (finds the
    boxes) and ``generate_bbox.m`` / ``ILSVRC_evaluate_bbox.m`` (read them back), does this
    instead (the mismatch was reported as zhoubolei/CAM issue 47 and never answered). Every
    step below is reproduced exactly, arithmetic included:

    1. **8-bit map.** The map, resized to the image (``size``), is divided by its maximum and
       written as ``uint8(round(255 * m / max))``, saturated to 0..255. With a positive
       maximum, negative values become 0. With a negative maximum (a negative-only map) every
       ratio is at least 1, so the whole image is 255. With a zero maximum (an all-zero map,
       say) every pixel is 0.
    2. **Three levels.** It is thresholded at grey levels 20, 100 and 110 of 255 (``levels``),
       keeping pixels strictly above: 7.8%, 39% and 43% of the maximum, not 20%.
    3. **"Erosion"** (``erode``): each binary image is replaced by its Euclidean distance
       transform (double precision; distance to the nearest background pixel, the image
       border is not background), rescaled as ``(int)(d * 255 / max(d) + 0.5)``, and only
       pixels above 10 are kept. This removes the rim of pixels closer to the background than
       4% of the deepest pixel's distance; a blob less than about 50 px across loses nothing.
       An all-foreground or all-background image is left as it is.
    4. **Rectangles.** Every contour at every level (``findContours`` with ``RETR_CCOMP``, so
       the borders of holes count too; levels in order, then OpenCV's contour order) gives its
       bounding rectangle ``(x, y, w, h)``, clipped by ``LIMIT(v, L, R) = v < L ? L : (v > R ?
       R : v)`` with ``m = edge_margin`` (5):

       ``x' = LIMIT(x, 0, W - m)``, ``y' = LIMIT(y, 0, H - m)``,
       ``w' = LIMIT(w, 0, W - x - m)``, ``h' = LIMIT(h, 0, H - y - m)``

       (the width with the *unclipped* ``x``). A contour starting within the last ``m - 1``
       columns has ``W - x - m < 0`` and gets a negative width; ``edge_margin=0`` makes
       ``LIMIT`` the identity.
    5. **Sort** by ``w' * h'``, largest first (signed: two negative sides give a positive area
       that competes with the others).
    6. **Merge** (``mergeBBox``): for each box in order, each later box whose overlap with it
       exceeds ``(int)(0.5 * max(area_a, area_b))`` is erased; the C++ loop then skips the
       box right after the erased one, so that box is not tested against this one (it is
       reproduced; see :func:`_released_merge`).
    7. **Back in MATLAB**, each ``x y w h`` becomes the corners ``(x, y, x + w, y + h)``,
       reordered to ``(min(x, x + w), min(y, y + h), max(..), max(..))``: a negative width
       flips the box to the left of ``x'``. The first box (the largest, which nothing can
       erase) is the one scored; ``ILSVRC_evaluate_bbox.m`` also reads a second one.

    The boxes are returned in this module's convention, ``(x0, y0, x1, y1)`` with exclusive
    ``x1``, ``y1`` (OpenCV's ``x + w``). Only the first box is needed without ``return_all``:
    it is the first of the largest signed area, found in one pass, and the merge is skipped.

    Departures, all small: the released heat maps went through a JPEG file (lossy) and
    MATLAB's bicubic ``imresize`` in single precision; here the float map is used and resized
    bilinearly. ``std::sort`` is not stable, so the released order of boxes of *equal* area
    depends on libstdc++'s introsort; here the sort is stable (ties keep the level, then the
    contour order). The contours are traced by the OpenCV installed here (the released binary
    was built on OpenCV's old C API). ``dt_box.cpp`` takes exactly three strictly increasing
    levels in 1..254 (and silently uses 30, 90, 150 otherwise); any levels are accepted here.
    Where the released code writes no box at all (a map whose maximum is 0: every pixel is 0
    after step 1, and the MATLAB script then fails on an empty file), the whole image less the
    margin is returned, the box the released code gives for any other constant map. Maps
    smaller than ``2 * edge_margin - 1`` pixels on a side (9 px for the default) raise
    ``ValueError``: there the released clipping makes boxes outside the image; resize the map
    to the image first, or pass ``edge_margin=0``.
    NaN or infinity raise ``ValueError`` (see the module docstring).

    Args:
        cam: one map ``(H, W)``, numpy or torch.
        size: optional ``(height, width)`` to resize the float map to first (bilinear).
        levels: grey levels (0..254) to threshold the 8-bit map at, strictly above.
        erode: apply step 3.
        edge_margin: ``m`` of step 4, in pixels; 0 turns the clipping off.
        return_all: return every box the merge keeps ``(K, 4)``, in the released order,
            instead of the first.

    Returns:
        ``(4,)`` int64 box ``(x0, y0, x1, y1)`` (exclusive ``x1``, ``y1``), or ``(K, 4)`` with
        ``return_all``.

    Raises:
        ValueError: a non-finite map, a map too small for ``edge_margin``, levels that are not
            grey levels, a negative margin.

    Example:
        >>> import numpy as np
        >>> cam = np.zeros((40, 40)); cam[10:20, 5:25] = 1.0
        >>> box_from_cam_released_code(cam).tolist()
        [5, 10, 25, 20]
        >>> corner = np.zeros((224, 224)); corner[223, 223] = 1; corner[100:105, 40:43] = 1
        >>> box_from_cam_released_code(corner).tolist()  # LIMIT's negative sides, flipped
        [215, 215, 219, 219]
    """
    levels_list, margin = _check_released_arguments(levels, edge_margin)
    m = _resize(_as_map(cam), _check_size(size))
    _check_released_map_size(m.shape, margin)
    rects = _released_raw_boxes(_released_gray(m), levels_list, erode, margin)
    if len(rects) == 0:
        # No box written (a zero maximum); the released code's box of a constant map.
        rects = _released_raw_boxes(np.full(m.shape, 255, np.uint8), levels_list[:1], erode,
                                    margin)
    area = rects[:, 2] * rects[:, 3]
    if not return_all:
        # The first of the largest area: what a stable descending sort puts first.
        return _matlab_corners(rects[int(np.argmax(area))][None])[0]
    order = np.argsort(-area, kind="stable")
    return _matlab_corners(_released_merge(rects[order]))


def _box_from_cam_released_code_reference(
    cam: Any,
    *,
    size: Any = None,
    levels: Sequence[int] = RELEASED_CODE_LEVELS,
    erode: bool = True,
    edge_margin: int = 5,
    return_all: bool = False,
) -> np.ndarray:
    """:func:`box_from_cam_released_code` as the released code's loops, one box at a time.

    Slow (O(boxes x kept) in Python): kept for the tests and the benchmark, which check that
    the fast function returns the same boxes. Written from ``dt_box.cpp`` statement by
    statement: ``LIMIT`` on scalars, a stable sort, ``mergeBBox``'s erase loop on a list
    (with its skip), then ``generate_bbox.m``'s corners.
    """
    levels_list, margin = _check_released_arguments(levels, edge_margin)
    m = _resize(_as_map(cam), _check_size(size))
    _check_released_map_size(m.shape, margin)
    height, width = m.shape

    def limit(v: int, low: int, high: int) -> int:
        return low if v < low else (high if v > high else v)

    def rectangles(gray: np.ndarray, levels_used: list[int]) -> list[tuple[int, int, int, int]]:
        found = []
        for level in levels_used:
            mask = gray > level
            if erode:
                mask = _released_erosion(mask)
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP,
                                           cv2.CHAIN_APPROX_SIMPLE)
            for contour in contours:
                x, y, w, h = cv2.boundingRect(contour)
                found.append((limit(x, 0, width - margin), limit(y, 0, height - margin),
                              limit(w, 0, width - x - margin), limit(h, 0, height - y - margin)))
        return found

    rects = rectangles(_released_gray(m), levels_list)
    if not rects:
        rects = rectangles(np.full(m.shape, 255, np.uint8), levels_list[:1])
    rects.sort(key=lambda r: -r[2] * r[3])  # list.sort is stable

    def big_overlap(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
        t = int(max(a[2] * a[3], b[2] * b[3]) * 0.5)  # int() truncates toward zero, as C
        x_overlap = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
        y_overlap = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
        return x_overlap * y_overlap > t

    i = 0
    while i < len(rects):
        j = i + 1
        while j < len(rects):
            if big_overlap(rects[i], rects[j]):
                del rects[j]
            j += 1  # also after an erase: the C++ loop's skip
        i += 1
    corners = [(min(x, x + w), min(y, y + h), max(x, x + w), max(y, y + h))
               for x, y, w, h in rects]
    result = np.array(corners, dtype=np.int64)
    return result if return_all else result[0]


# --------------------------------------------------------------------------------------------
# Top-1 and ground-truth-known localisation
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LocalizationAccuracy:
    """Localisation scores of one set of predictions (fractions in [0, 1]).

    Attributes:
        top1_loc: class right AND best IoU with a ground-truth box >= the IoU threshold.
        gt_known_loc: best IoU >= the threshold, whatever the class (the class is given).
        top1_cls: class right (classification accuracy), for reference.
        ious: per image, the best IoU of its predicted box with its ground-truth boxes.
        iou_threshold: the threshold used.
    """

    top1_loc: float
    gt_known_loc: float
    top1_cls: float
    ious: np.ndarray
    iou_threshold: float


def _best_iou_per_image(pred_boxes: np.ndarray, gt_lists: list[np.ndarray]) -> np.ndarray:
    return np.array([box_iou(pred_boxes[i], gt)[0].max() for i, gt in enumerate(gt_lists)])


def localization_accuracy(
    pred_classes: Any,
    true_classes: Any,
    pred_boxes: Any,
    gt_boxes: Any,
    iou_threshold: float = 0.5,
) -> LocalizationAccuracy:
    """Top-1 localisation (class right and IoU >= 0.5) and ground-truth-known localisation.

    For image ``i`` with best IoU :math:`u_i = \\max_g \\mathrm{IoU}(\\hat b_i, g)` over its
    ground-truth boxes ``g`` (ImageNet's rule: any box of the class counts),

    .. math:: \\text{top-1 loc} = \\tfrac1N \\sum_i [\\hat y_i = y_i]\\,[u_i \\ge \\delta],
              \\qquad \\text{GT-known loc} = \\tfrac1N \\sum_i [u_i \\ge \\delta].

    Pass the boxes of the maps of the *true* class: ground-truth-known localisation needs them,
    and where the class is right they are the predicted class's boxes, so top-1 is unchanged.

    Args:
        pred_classes: ``(N,)`` predicted labels.
        true_classes: ``(N,)`` true labels.
        pred_boxes: ``(N, 4)`` one box per image.
        gt_boxes: ``(N, 4)``, ``(N, K, 4)`` or a list of ``(K_i, 4)`` arrays (several per image).
        iou_threshold: :math:`\\delta` in (0, 1].

    Returns:
        A :class:`LocalizationAccuracy`.

    Example:
        >>> r = localization_accuracy([1, 2], [1, 0], [[0, 0, 4, 4], [0, 0, 4, 4]],
        ...                           [[0, 0, 4, 4], [0, 0, 4, 4]])
        >>> r.top1_loc, r.gt_known_loc
        (0.5, 1.0)
    """
    iou_threshold = float(_check_unit_interval(iou_threshold, "iou_threshold",
                                               allow_zero=False)[0])
    pred, true = _to_numpy(pred_classes), _to_numpy(true_classes)
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
    boxes = _as_boxes(pred_boxes, "pred_boxes")
    if len(true) != n or len(boxes) != n:
        raise ValueError(f"lengths differ: {n} pred_classes, {len(true)} true_classes, "
                         f"{len(boxes)} pred_boxes; give one of each per image")
    ious = _best_iou_per_image(boxes, _as_box_lists(gt_boxes, n))
    located = ious >= iou_threshold
    right = pred == true
    return LocalizationAccuracy(
        top1_loc=float(np.mean(right & located)),
        gt_known_loc=float(np.mean(located)),
        top1_cls=float(np.mean(right)),
        ious=ious,
        iou_threshold=iou_threshold,
    )


# --------------------------------------------------------------------------------------------
# MaxBoxAcc and MaxBoxAccV2
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class MaxBoxAccResult:
    """What :func:`max_box_acc` measured.

    Attributes:
        iou_thresholds: the deltas, ``(n_delta,)``.
        cam_thresholds: the taus, ``(n_tau,)``.
        box_acc: BoxAcc(tau, delta), ``(n_tau, n_delta)``: the curve to plot.
        max_box_acc: MaxBoxAcc(delta) = max over tau of BoxAcc, ``(n_delta,)``.
        best_cam_threshold: the tau reaching it (the smallest on a tie), ``(n_delta,)``.
        mean: mean of ``max_box_acc`` over the deltas (MaxBoxAccV2 with the defaults).
        best_iou: per image and tau, the best IoU of any candidate box, ``(N, n_tau)``; 0 where
            the image has no candidate.
        multi_contour: True when every contour was a candidate (V2), False for the largest.
        protocol: ``"clean"`` or ``"wsolevaluation"`` (see :func:`max_box_acc`).
    """

    iou_thresholds: np.ndarray
    cam_thresholds: np.ndarray
    box_acc: np.ndarray
    max_box_acc: np.ndarray
    best_cam_threshold: np.ndarray
    mean: float
    best_iou: np.ndarray
    multi_contour: bool
    protocol: str = "clean"

    def __str__(self) -> str:
        name = "MaxBoxAccV2" if self.multi_contour else "MaxBoxAcc"
        if self.protocol != "clean":
            name += f" ({self.protocol} protocol)"
        per = ", ".join(f"delta={d:g}: {a:.1%} (tau={t:.2f})" for d, a, t in
                        zip(self.iou_thresholds, self.max_box_acc, self.best_cam_threshold))
        return f"{name} {self.mean:.1%} over {self.best_iou.shape[0]} images [{per}]"


def _normalise_to_uint8(m: np.ndarray) -> np.ndarray:
    """Per-image min-max normalisation, then ``(x * 255)`` truncated to 8 bits.

    A constant map becomes all zeros, as in Choe et al.'s code.
    """
    low, high = m.min(), m.max()
    if high == low:
        return np.zeros(m.shape, dtype=np.uint8)
    return ((m - low) / (high - low) * 255).astype(np.uint8)


def _cuts(cam_thresholds: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """The integer cut of each tau: pixels strictly above ``int(tau * max(gray))`` are kept."""
    return (cam_thresholds * float(gray.max())).astype(np.int64)


def _check_protocol(protocol: Any) -> str:
    if protocol not in MAX_BOX_ACC_PROTOCOLS:
        raise ValueError(f"protocol must be one of {MAX_BOX_ACC_PROTOCOLS}, got {protocol!r}: "
                         "'clean' is this module's definition, 'wsolevaluation' Choe et al.'s "
                         "code's")
    return protocol


def _prepare(cams: Any, gt_boxes: Any, iou_thresholds: Any, cam_thresholds: Any,
             size: Any = None, protocol: str = "clean",
             ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    protocol = _check_protocol(protocol)
    maps = _as_maps(cams)
    gts = _as_box_lists(gt_boxes, len(maps))
    deltas = _check_unit_interval(iou_thresholds, "iou_thresholds", allow_zero=False)
    taus = _check_unit_interval(cam_thresholds, "cam_thresholds")
    target = _check_size(size)
    if target is not None:
        if protocol == "wsolevaluation":
            # Their inference.py: cv2.resize of the float map with INTER_CUBIC.
            maps = [m if m.shape == target else
                    cv2.resize(m, (target[1], target[0]), interpolation=cv2.INTER_CUBIC)
                    for m in maps]
        else:
            maps = [_resize(m, target) for m in maps]
    return maps, gts, deltas, taus


def _box_iou_wsolevaluation(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """wsolevaluation's ``calculate_multiple_iou``: corners read as inclusive pixels.

    Every side is ``x1 - x0 + 1``, the intersection ``max(0, min(x1) - max(x0) + 1)`` (times
    the same in ``y``), and a union ``<= 0`` gives IoU 0.
    """
    a, b = boxes_a[:, None, :], boxes_b[None, :, :]
    inter = (np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
             * np.maximum(0, np.minimum(a[..., 3], b[..., 3])
                          - np.maximum(a[..., 1], b[..., 1]) + 1))
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros(union.shape), where=union > 0)


def _candidate_boxes(rects: Any, shape: tuple[int, int], protocol: str) -> np.ndarray:
    """Boxes ``(K, 4)`` from ``cv2.boundingRect`` rectangles ``(x, y, w, h)``.

    Clean: ``(x, y, x + w, y + h)``. wsolevaluation: the same with ``x1`` clipped to ``W - 1``
    and ``y1`` to ``H - 1``, as their ``compute_bboxes_from_scoremaps`` does.
    """
    xywh = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    if protocol == "wsolevaluation":
        boxes[:, 2] = np.minimum(boxes[:, 2], shape[1] - 1)
        boxes[:, 3] = np.minimum(boxes[:, 3], shape[0] - 1)
    return boxes


def _candidate_ious(boxes: np.ndarray, gt: np.ndarray, protocol: str) -> np.ndarray:
    """Per candidate, the best IoU with the ground-truth boxes, under ``protocol``."""
    if protocol == "wsolevaluation":
        return _box_iou_wsolevaluation(boxes, gt).max(axis=1)
    return box_iou(boxes, gt).max(axis=1)


#: wsolevaluation's box for a threshold that leaves nothing: (0, 0, 0, 0), one pixel for them.
_WSOL_EMPTY_BOX = np.zeros((1, 4))


def _result(best_iou: np.ndarray, deltas: np.ndarray, taus: np.ndarray,
            multi_contour: bool, protocol: str = "clean") -> MaxBoxAccResult:
    box_acc = (best_iou[:, :, None] >= deltas[None, None, :]).mean(axis=0)  # (n_tau, n_delta)
    best_idx = np.argmax(box_acc, axis=0)
    maxima = box_acc[best_idx, np.arange(len(deltas))]
    return MaxBoxAccResult(
        iou_thresholds=deltas.copy(),
        cam_thresholds=taus.copy(),
        box_acc=box_acc,
        max_box_acc=maxima,
        best_cam_threshold=taus[best_idx],
        mean=float(maxima.mean()),
        best_iou=best_iou,
        multi_contour=multi_contour,
        protocol=protocol,
    )


def max_box_acc_reference(
    cams: Any,
    gt_boxes: Any,
    iou_thresholds: Any = (0.3, 0.5, 0.7),
    cam_thresholds: Any = DEFAULT_CAM_THRESHOLDS,
    multi_contour: bool = True,
    *,
    size: Any = None,
    protocol: str = "clean",
) -> MaxBoxAccResult:
    """MaxBoxAcc(V2), the straightforward loop: the readable definition of :func:`max_box_acc`.

    Per image, per threshold: binarise, find contours, make boxes, compute IoUs. Same
    arguments, same result as :func:`max_box_acc` (the tests check it, the benchmark times
    both); use that one, this one is for reading.
    """
    maps, gts, deltas, taus = _prepare(cams, gt_boxes, iou_thresholds, cam_thresholds, size,
                                       protocol)
    wsol = protocol == "wsolevaluation"
    mode = cv2.RETR_TREE if wsol else cv2.RETR_EXTERNAL
    best_iou = np.zeros((len(maps), len(taus)))
    for i, (m, gt) in enumerate(zip(maps, gts)):
        gray = _normalise_to_uint8(m)
        for t, tau in enumerate(taus):
            cut = int(tau * float(gray.max()))
            _, binary = cv2.threshold(gray, cut, 255, cv2.THRESH_BINARY)  # strictly above
            contours, _ = cv2.findContours(binary, mode, cv2.CHAIN_APPROX_SIMPLE)
            if not contours:
                if wsol:  # their one-pixel box at the origin
                    best_iou[i, t] = _candidate_ious(_WSOL_EMPTY_BOX, gt, protocol).max()
                continue  # clean: no candidate box, IoU 0, incorrect
            if not multi_contour:
                contours = [max(contours, key=cv2.contourArea)]
            candidates = _candidate_boxes([cv2.boundingRect(c) for c in contours], m.shape,
                                          protocol)
            best_iou[i, t] = _candidate_ious(candidates, gt, protocol).max()
    return _result(best_iou, deltas, taus, multi_contour, protocol)


def _best_ious_by_mode(m: np.ndarray, gt: np.ndarray, taus: np.ndarray, modes: tuple[bool, ...],
                       protocol: str = "clean") -> list[np.ndarray]:
    """Best IoU per tau for one map, for each ``multi_contour`` value of ``modes`` (the fast path
    of :func:`max_box_acc`): each cut is traced once for all of them."""
    gray = _normalise_to_uint8(m)
    wsol = protocol == "wsolevaluation"
    mode = cv2.RETR_TREE if wsol else cv2.RETR_EXTERNAL
    # A cut that leaves nothing: no candidate (clean), their one-pixel box at the origin (wsol).
    empty = _candidate_ious(_WSOL_EMPTY_BOX, gt, protocol).max() if wsol else 0.0
    cuts = _cuts(taus, gray)
    live = cuts < int(gray.max())  # at or above the maximum nothing is left
    if not live.any():
        return [np.full(len(taus), empty) for _ in modes]
    # Cuts c1 < c2 give the same mask when no pixel has a grey level in (c1, c2]: key each cut
    # by the number of levels present at or below it, and trace each distinct key once (taus
    # with the same integer cut are the common case of this).
    present = np.flatnonzero(np.bincount(gray.ravel(), minlength=256))
    keys = np.searchsorted(present, cuts[live], side="right")
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    distinct = cuts[live][first]
    # The mask at cut c lies inside the rows/columns whose maximum exceeds c: threshold and
    # trace only that window (with an offset, contours come back in image coordinates).
    row_max, col_max = gray.max(axis=1), gray.max(axis=0)
    rows_in = row_max[None, :] > distinct[:, None]
    cols_in = col_max[None, :] > distinct[:, None]
    y_start = np.argmax(rows_in, axis=1)
    y_stop = gray.shape[0] - np.argmax(rows_in[:, ::-1], axis=1)
    x_start = np.argmax(cols_in, axis=1)
    x_stop = gray.shape[1] - np.argmax(cols_in[:, ::-1], axis=1)

    # Per mode: every candidate's rectangle, and how many candidates each cut gave.
    rects: dict[bool, list[tuple[int, int, int, int]]] = {multi: [] for multi in modes}
    counts = {multi: np.empty(len(distinct), dtype=np.int64) for multi in modes}
    for k, cut in enumerate(distinct.tolist()):
        y0, y1, x0, x1 = int(y_start[k]), int(y_stop[k]), int(x_start[k]), int(x_stop[k])
        _, binary = cv2.threshold(gray[y0:y1, x0:x1], cut, 255, cv2.THRESH_BINARY)
        contours, _ = cv2.findContours(binary, mode, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))
        if True in rects:
            rects[True].extend(cv2.boundingRect(c) for c in contours)
            counts[True][k] = len(contours)
        if False in rects:
            largest = contours[0]
            if len(contours) > 1:  # max() keeps the first of equal areas, like np.argmax
                largest = max(contours, key=cv2.contourArea)
            rects[False].append(cv2.boundingRect(largest))
            counts[False][k] = 1
    out = []
    for multi in modes:
        per_candidate = _candidate_ious(_candidate_boxes(rects[multi], m.shape, protocol), gt, protocol)
        starts = np.concatenate([[0], np.cumsum(counts[multi])[:-1]])
        best = np.full(len(taus), empty)
        best[live] = np.maximum.reduceat(per_candidate, starts)[inverse]
        out.append(best)
    return out


def max_box_acc(
    cams: Any,
    gt_boxes: Any,
    iou_thresholds: Any = (0.3, 0.5, 0.7),
    cam_thresholds: Any = DEFAULT_CAM_THRESHOLDS,
    multi_contour: bool = True,
    workers: int | None = None,
    *,
    size: Any = None,
    protocol: str = "clean",
) -> MaxBoxAccResult:
    """MaxBoxAcc and MaxBoxAccV2 (Choe et al., "Evaluating WSOL methods right", CVPR 2020).

    For each map: min-max normalise (a constant map becomes zeros), scale by 255 and truncate
    to 8 bits. For each threshold :math:`\\tau`, keep the pixels strictly above
    ``int(tau * max)`` of the 8-bit map, find the external contours (``cv2.findContours``,
    ``RETR_EXTERNAL``, ``CHAIN_APPROX_SIMPLE``) and take each contour's bounding rectangle
    ``(x, y, w, h)`` as the box ``(x, y, x + w, y + h)``. With ``multi_contour`` (V2) every
    contour's box is a candidate; without, only the contour of largest ``cv2.contourArea``
    (polygon area, the first on a tie), as in Choe et al.'s code. Image ``i`` is correct at
    :math:`(\\tau, \\delta)` when its best IoU over candidates and ground-truth boxes is at
    least :math:`\\delta`; an image with nothing above the cut has no candidate and is wrong.

    .. math:: \\mathrm{BoxAcc}(\\tau, \\delta) = \\tfrac1N \\sum_i
              [\\max_{b, g} \\mathrm{IoU}(b_i(\\tau), g) \\ge \\delta], \\qquad
              \\mathrm{MaxBoxAcc}(\\delta) = \\max_\\tau \\mathrm{BoxAcc}(\\tau, \\delta)

    with one :math:`\\tau` for the whole dataset (not per image). MaxBoxAccV2 is the mean over
    :math:`\\delta \\in \\{0.3, 0.5, 0.7\\}` with all contours (the defaults); the original
    MaxBoxAcc is ``iou_thresholds=(0.5,), multi_contour=False``.

    Because a constant map normalises to zeros, it has no candidate at any threshold and
    scores 0, even against a whole-image box: the protocol gives nothing for a map that says
    nothing. (The paper's rule, :func:`box_from_cam`, instead returns the whole image for it.)

    Departures from Choe et al.'s code (``wsolevaluation``), all deliberate, in the default
    ``protocol="clean"``: boxes use this module's exclusive convention (their IoU adds 1 to
    every width, reading ``x + w`` as an inclusive corner, so their boxes are one pixel wider
    than the contour except at the right and bottom edges, where ``x1`` is clipped to
    ``W - 1``); contours are external only (their code uses ``RETR_TREE``, whose hole borders
    add candidates); a threshold with nothing above it has no candidate (their code scores
    the one-pixel box at the origin instead, the same verdict unless the object is a box of a
    few pixels in that corner); and ``size`` resizes bilinearly (their inference bicubic).
    These make this module's numbers 0.3 to 4.2 points lower than theirs on the same maps.

    ``protocol="wsolevaluation"`` reproduces their code exactly, to compare with published
    numbers (with ``cam_thresholds=FINE_CAM_THRESHOLDS``, their training runs' grid):
    candidates ``(x, y, min(x + w, W - 1), min(y + h, H - 1))``; IoU with ``+ 1`` on every
    side of both boxes (ground truth included, read as inclusive corners) and 0 for a
    union ``<= 0``; ``RETR_TREE`` contours (for the largest-contour MaxBoxAcc too, as there);
    the box ``(0, 0, 0, 0)`` (one pixel for them) where a threshold leaves nothing; and, when
    ``size`` is given, ``cv2.resize`` with ``INTER_CUBIC`` of the float map, as their
    ``inference.py``. Their normalisation (min-max, a constant map becomes zeros) and 8-bit
    cut are the ones above in both protocols. (Their NaN maps become zeros; here they raise,
    see the module docstring.)

    How it is fast (the numbers are those of :func:`max_box_acc_reference`, bit for bit):
    cuts that leave the same pixels (the same integer cut, or no grey level between two cuts)
    are traced once; cuts at or above the map's maximum are skipped;
    each cut is thresholded and traced only inside the rows and columns that reach above it;
    the IoUs of all candidates of an image are computed in one vectorised call.

    Args:
        cams: ``(N, H, W)`` maps or a list of 2-D maps, at the boxes' resolution.
        gt_boxes: ``(N, 4)``, ``(N, K, 4)`` or a list of ``(K_i, 4)`` ground-truth boxes.
        iou_thresholds: the deltas, in (0, 1].
        cam_thresholds: the taus, in [0, 1]; default 0.00, 0.01, ..., 0.99
            (:data:`DEFAULT_CAM_THRESHOLDS`; :data:`FINE_CAM_THRESHOLDS` for published numbers).
        multi_contour: all contours (V2) or the largest only (MaxBoxAcc).
        workers: threads over images (OpenCV releases the GIL); ``None`` or 1 runs in the
            calling thread. See ``benchmarks/localization.py`` for what threads buy.
        size: optional ``(height, width)`` (or one int) to resize every map to first, e.g.
            the image size for raw low-resolution maps: bilinear (clean) or bicubic
            (wsolevaluation).
        protocol: ``"clean"`` (this module's definition) or ``"wsolevaluation"`` (Choe et
            al.'s code, exactly).

    Returns:
        A :class:`MaxBoxAccResult`; ``result.mean`` is the MaxBoxAccV2 number with defaults.

    Raises:
        ValueError: wrong shapes, mismatched lengths, thresholds outside their range,
            non-finite maps.

    Example:
        >>> import numpy as np
        >>> cams = np.zeros((2, 32, 32)); cams[0, 4:12, 4:20] = 1; cams[1, 10:30, 0:8] = 1
        >>> result = max_box_acc(cams, [[4, 4, 20, 12], [0, 10, 8, 30]])
        >>> result.max_box_acc.tolist(), result.mean
        ([1.0, 1.0, 1.0], 1.0)
    """
    maps, gts, deltas, taus = _prepare(cams, gt_boxes, iou_thresholds, cam_thresholds, size,
                                       protocol)
    (best_iou,) = _best_ious_all(maps, gts, taus, (multi_contour,), workers, protocol)
    return _result(best_iou, deltas, taus, multi_contour, protocol)


def _best_ious_all(maps: list[np.ndarray], gts: list[np.ndarray], taus: np.ndarray,
                   modes: tuple[bool, ...], workers: int | None, protocol: str) -> list[np.ndarray]:
    """``(N, n_tau)`` best IoUs for each mode of ``modes``, over threads."""
    n_workers = 1 if workers is None else int(workers)
    if n_workers < 1:
        raise ValueError(f"workers must be >= 1 threads (or None for the calling thread), "
                         f"got {workers!r}")

    def one(i: int) -> list[np.ndarray]:
        return _best_ious_by_mode(maps[i], gts[i], taus, modes, protocol)

    if n_workers == 1 or len(maps) == 1:
        rows = [one(i) for i in range(len(maps))]
    else:
        with ThreadPoolExecutor(max_workers=min(n_workers, os.cpu_count() or 1)) as pool:
            rows = list(pool.map(one, range(len(maps))))
    return [np.stack([row[k] for row in rows]) for k in range(len(modes))]


def max_box_acc_both(
    cams: Any,
    gt_boxes: Any,
    iou_thresholds: Any = (0.3, 0.5, 0.7),
    largest_iou_thresholds: Any = (0.5,),
    cam_thresholds: Any = DEFAULT_CAM_THRESHOLDS,
    workers: int | None = None,
    *,
    size: Any = None,
    protocol: str = "clean",
) -> tuple[MaxBoxAccResult, MaxBoxAccResult]:
    """MaxBoxAccV2 (every contour) and the original MaxBoxAcc (the largest contour) at once.

    The same two results as ``max_box_acc(cams, gt_boxes, iou_thresholds, ...)`` and
    ``max_box_acc(cams, gt_boxes, largest_iou_thresholds, ..., multi_contour=False)``, bit for
    bit, for about half the work: each map is normalised, cut and traced once for both (tracing
    the contours is most of the time). The arguments are those of :func:`max_box_acc`.

    Returns:
        ``(all_contours, largest_contour)``, two :class:`MaxBoxAccResult`.

    Example:
        >>> import numpy as np
        >>> cams = np.zeros((1, 32, 32)); cams[0, 4:12, 4:20] = 1; cams[0, 20:24, 20:24] = 0.5
        >>> every, largest = max_box_acc_both(cams, [[4, 4, 20, 12]])
        >>> every.mean, largest.max_box_acc.tolist()
        (1.0, [1.0])
    """
    maps, gts, deltas, taus = _prepare(cams, gt_boxes, iou_thresholds, cam_thresholds, size,
                                       protocol)
    largest_deltas = _check_unit_interval(largest_iou_thresholds, "largest_iou_thresholds", allow_zero=False)
    every, largest = _best_ious_all(maps, gts, taus, (True, False), workers, protocol)
    return (_result(every, deltas, taus, True, protocol),
            _result(largest, largest_deltas, taus, False, protocol))


# --------------------------------------------------------------------------------------------
# Pointing game
# --------------------------------------------------------------------------------------------

def _box_mask(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre ``(x + 0.5, y + 0.5)`` lies inside one of the boxes."""
    ys = np.arange(shape[0])[:, None] + 0.5
    xs = np.arange(shape[1])[None, :] + 0.5
    mask = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask |= (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    return mask


def pointing_game(
    cams: Any,
    gt_masks_or_boxes: Any,
    tolerance: float = 15,
    reference_size: int = 224,
    *,
    kind: str = "auto",
    return_hits: bool = False,
) -> float | tuple[float, np.ndarray]:
    """The pointing game (Zhang et al. 2016): does the map's maximum land on the object?

    A hit when the arg-max pixel lies within ``tolerance`` pixels (Euclidean, between pixel
    centres) of an object pixel: the object's mask dilated by a disc of that radius. The
    tolerance is given at ``reference_size`` (15 px at 224, the ImageNet scale) and scaled to
    each map: :math:`t = \\text{tolerance} \\cdot \\sqrt{HW} / \\text{reference\\_size}`
    (the side, for a square map). Ties for the maximum: the first in raster order (row by
    row, ``np.argmax``), so a constant map points at pixel (0, 0).

    Boxes are turned into masks of the pixels whose centre lies inside (for integer boxes,
    exactly the pixels ``x0 <= x < x1``, ``y0 <= y < y1``). An image with an empty mask is a
    miss.

    Args:
        cams: ``(N, H, W)`` maps or a list of 2-D maps.
        gt_masks_or_boxes: masks ``(N, H, W)`` (non-zero = object) or a list of ``(H, W)``
            masks; or boxes ``(N, 4)``, ``(N, K, 4)`` or a list of ``(K_i, 4)``.
        tolerance: pixels at ``reference_size``; 0 demands the maximum on the object.
        reference_size: the image side the tolerance is given for.
        kind: ``"auto"`` (a 3-D array, or per-image arrays shaped like the maps, are masks;
            anything else boxes; for maps 4 px wide say which), ``"mask"`` or ``"box"``.
        return_hits: also return the per-image hits ``(N,)`` bool.

    Returns:
        The hit rate in [0, 1] (and the hits with ``return_hits``).

    Example:
        >>> import numpy as np
        >>> cams = np.zeros((2, 10, 10)); cams[0, 2, 2] = 1; cams[1, 9, 9] = 1
        >>> pointing_game(cams, [[0, 0, 4, 4], [0, 0, 4, 4]], tolerance=0)
        0.5
    """
    maps = _as_maps(cams)
    if float(tolerance) < 0 or not np.isfinite(float(tolerance)):
        raise ValueError(f"tolerance must be a distance >= 0 in pixels (finite, given at "
                         f"reference_size), got {tolerance!r}")
    reference_size = _check_count(reference_size, "reference_size (a side in pixels)")
    if kind not in ("auto", "mask", "box"):
        raise ValueError(f"kind must be 'auto', 'mask' or 'box', got {kind!r}")

    if kind == "auto":
        # Masks are (H, W) per image, boxes (K, 4) (or (4,)): read the first image's entry.
        if isinstance(gt_masks_or_boxes, (list, tuple)):
            first = _to_numpy(gt_masks_or_boxes[0]) if len(gt_masks_or_boxes) else np.zeros(0)
        else:
            whole = _to_numpy(gt_masks_or_boxes)
            first = whole[0] if whole.ndim == 3 else np.zeros(0)
        if first.ndim == 2 and first.shape[1] == 4 and first.shape == maps[0].shape:
            raise ValueError("maps 4 px wide: masks and boxes look alike; pass kind='mask' or "
                             "kind='box'")
        kind = "mask" if first.ndim == 2 and first.shape[1] != 4 else "box"

    if kind == "box":
        masks = [_box_mask(b, m.shape) for b, m in
                 zip(_as_box_lists(gt_masks_or_boxes, len(maps), "gt_masks_or_boxes"), maps)]
    else:
        items = (list(gt_masks_or_boxes) if isinstance(gt_masks_or_boxes, (list, tuple))
                 else list(_to_numpy(gt_masks_or_boxes)))
        if len(items) != len(maps):
            raise ValueError(f"gt_masks_or_boxes has {len(items)} masks for {len(maps)} maps: "
                             "give one per map")
        masks = [_as_mask(item, m.shape, f"mask {i}")
                 for i, (item, m) in enumerate(zip(items, maps))]

    hits = np.zeros(len(maps), dtype=bool)
    for i, (m, mask) in enumerate(zip(maps, masks)):
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            continue
        py, px = np.unravel_index(int(np.argmax(m)), m.shape)
        radius = float(tolerance) * np.sqrt(m.shape[0] * m.shape[1]) / int(reference_size)
        nearest_sq = np.min((ys - py) ** 2 + (xs - px) ** 2)
        hits[i] = nearest_sq <= radius ** 2
    rate = float(hits.mean())
    return (rate, hits) if return_hits else rate


# --------------------------------------------------------------------------------------------
# Baselines that look at no image
# --------------------------------------------------------------------------------------------

def center_box(height: int, width: int, area_fraction: float = 0.5) -> np.ndarray:
    """The box centred in an image that covers ``area_fraction`` of it, with its aspect ratio.

    Each side is the image's side times :math:`\\sqrt{\\text{area\\_fraction}}`; the corners
    are floats (the box need not sit on the pixel grid).

    Example:
        >>> center_box(100, 200, 0.25).tolist()
        [50.0, 25.0, 150.0, 75.0]
    """
    height, width = _check_count(height, "height"), _check_count(width, "width")
    fraction = float(_check_unit_interval(area_fraction, "area_fraction", allow_zero=False)[0])
    scale = np.sqrt(fraction)
    half_w, half_h = width * scale / 2, height * scale / 2
    return np.array([width / 2 - half_w, height / 2 - half_h,
                     width / 2 + half_w, height / 2 + half_h])


def center_baseline_boxes(n: int, height: int, width: int,
                          area_fraction: float = 0.5) -> np.ndarray:
    """``n`` copies of :func:`center_box`, ``(n, 4)``: the centre-box guess for every image."""
    n = _check_count(n, "n (the number of images)")
    return np.tile(center_box(height, width, area_fraction), (n, 1))


def center_gaussian_maps(n: int, height: int, width: int, sigma: float = 0.25) -> np.ndarray:
    """Choe et al.'s centre baseline as maps: a Gaussian bump centred in every image.

    :math:`M(x, y) = \\exp(-\\tfrac12[(\\tfrac{x - c_x}{\\sigma W})^2 +
    (\\tfrac{y - c_y}{\\sigma H})^2])` with pixel centres ``x + 0.5`` and the image centre
    ``(W/2, H/2)``; the standard deviation is ``sigma`` times each side, so the level sets are
    centred ellipses with the image's aspect ratio. Scored by :func:`max_box_acc`, its
    thresholds sweep centred boxes of every size and the best size wins, which is what makes
    it the baseline any map must beat.

    Returns:
        ``(n, height, width)`` float64, maximum 1 at the centre.
    """
    n = _check_count(n, "n (the number of images)")
    height, width = _check_count(height, "height"), _check_count(width, "width")
    if not 0 < float(sigma) < np.inf:
        raise ValueError(f"sigma must be > 0 and finite (a fraction of the side, e.g. 0.25), "
                         f"got {sigma!r}")
    ys = (np.arange(height) + 0.5 - height / 2) / (sigma * height)
    xs = (np.arange(width) + 0.5 - width / 2) / (sigma * width)
    bump = np.exp(-0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2))
    return np.broadcast_to(bump / bump.max(), (int(n), int(height), int(width))).copy()


# --------------------------------------------------------------------------------------------
# Coverage: how much of the object a map covers
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class AreaFraction:
    """Per image, how the region a map keeps compares with the object (arrays of shape (N,)).

    With ``A`` the pixels at or above the threshold (the paper's rule, before taking the
    largest component) and ``M`` the object's mask:

    Attributes:
        object_covered: :math:`|A \\cap M| / |M|`, the fraction of the object the map covers.
        area_ratio: :math:`|A| / |M|`, the map's area relative to the object's (1 = same size).
        precision: :math:`|A \\cap M| / |A|`, the fraction of the map's area on the object.
        cam_area: :math:`|A| / (HW)`, the fraction of the image the map keeps.
        object_area: :math:`|M| / (HW)`, the fraction of the image the object fills.
        threshold: the fraction of each map's maximum used.

    ``object_covered`` and ``area_ratio`` are NaN for an image with an empty mask (use
    ``np.nanmean``); ``A`` is never empty.
    """

    object_covered: np.ndarray
    area_ratio: np.ndarray
    precision: np.ndarray
    cam_area: np.ndarray
    object_area: np.ndarray
    threshold: float

    def means(self) -> dict[str, float]:
        """The mean of each per-image measure over the images (NaN ignored)."""
        return {name: float(np.nanmean(getattr(self, name))) for name in
                ("object_covered", "area_ratio", "precision", "cam_area", "object_area")}


def cam_area_fraction(cams: Any, masks: Any, threshold: float = 0.2) -> AreaFraction:
    """How much of the object each map covers, and how much it spills over.

    The region ``A`` is the set of pixels the paper's rule keeps, at or above ``threshold``
    times the map's maximum (the same rule and degenerate-map handling as
    :func:`box_from_cam`, without the largest-component step): a map that lights up one part
    of the object covers little of it; a map that lights up the object and its surroundings
    covers it all with a large ``area_ratio``.

    Args:
        cams: one map ``(H, W)`` or ``(N, H, W)`` / a list of maps.
        masks: the objects' masks, same shapes (non-zero = object).
        threshold: fraction of each map's maximum, in [0, 1].

    Returns:
        An :class:`AreaFraction` of per-image arrays.

    Example:
        >>> import numpy as np
        >>> cam = np.zeros((10, 10)); cam[0:5, 0:4] = 1      # 20 px kept
        >>> mask = np.zeros((10, 10), bool); mask[0:5, 0:8] = True  # 40 px object
        >>> r = cam_area_fraction(cam, mask)
        >>> float(r.object_covered[0]), float(r.area_ratio[0]), float(r.precision[0])
        (0.5, 0.5, 1.0)
    """
    threshold = float(_check_unit_interval(threshold, "threshold")[0])
    if np.ndim(_to_numpy(cams)) == 2 and not isinstance(cams, (list, tuple)):
        cams, masks = [cams], [masks]
    maps = _as_maps(cams)
    mask_items = (list(masks) if isinstance(masks, (list, tuple))
                  else list(_to_numpy(masks)) if _to_numpy(masks).ndim == 3 else None)
    if mask_items is None:
        raise ValueError(f"masks must be (N, H, W) or a list of 2-D masks, got shape "
                         f"{_to_numpy(masks).shape}; give one mask per map, the map's shape")
    if len(mask_items) != len(maps):
        raise ValueError(f"{len(mask_items)} masks for {len(maps)} maps: give one per map")
    covered, ratio, precision, cam_area, object_area = ([] for _ in range(5))
    for i, (m, item) in enumerate(zip(maps, mask_items)):
        mask = _as_mask(item, m.shape, f"mask {i}")
        kept = _foreground(m, threshold)
        n_kept, n_obj, n_both = int(kept.sum()), int(mask.sum()), int((kept & mask).sum())
        covered.append(n_both / n_obj if n_obj else np.nan)
        ratio.append(n_kept / n_obj if n_obj else np.nan)
        precision.append(n_both / n_kept)
        cam_area.append(n_kept / m.size)
        object_area.append(n_obj / m.size)
    return AreaFraction(
        object_covered=np.array(covered), area_ratio=np.array(ratio),
        precision=np.array(precision), cam_area=np.array(cam_area),
        object_area=np.array(object_area), threshold=threshold,
    )


def object_size_coverage(cams: Any, masks: Any) -> np.ndarray:
    """Per image, the share of the object covered by the map's ``|M|`` highest-valued pixels.

    A threshold-free comparison of maps: each map keeps exactly as many pixels as its object has
    (``|M|``, the mask's size), its highest-valued ones, so a map that keeps more of the image
    gains nothing from it. Returns ``|top_|M|(cam) ∩ M| / |M|`` per image: 1 when the map's
    highest values lie exactly on the object. Ties at the cut are broken by position (row-major,
    first wins), so the result is deterministic. Images with an empty mask give NaN.

    Args:
        cams: ``(N, H, W)`` maps (array or tensor), a list of ``(H, W)`` maps of one size, or
            one ``(H, W)`` map.
        masks: the objects' masks, same shape (non-zero = object).

    Raises:
        ValueError: a map or mask with NaN or infinity, wrong ranks, masks whose shape or
            number differs from the maps'.

    Example:
        >>> import numpy as np
        >>> cam = np.array([[3., 2.], [1., 0.]])
        >>> mask = np.array([[True, False], [True, False]])        # the left column, 2 px
        >>> object_size_coverage(cam, mask)                        # top 2 px: (0,0), (0,1)
        array([0.5])
    """
    if not isinstance(cams, (list, tuple)) and np.ndim(_to_numpy(cams)) == 2:
        cams, masks = [cams], [masks]
    map_list = _as_maps(cams)
    mask_list = (list(masks) if isinstance(masks, (list, tuple))
                 else list(_to_numpy(masks)) if np.ndim(_to_numpy(masks)) == 3 else None)
    if mask_list is None:
        raise ValueError(f"masks must be (N, H, W) or a list of 2-D masks, got shape "
                         f"{_to_numpy(masks).shape}; give one mask per map, the map's shape")
    if len(mask_list) != len(map_list):
        raise ValueError(f"{len(mask_list)} masks for {len(map_list)} maps: give one per map")
    objects_list = [_as_mask(item, m.shape, f"mask {i}")
                    for i, (m, item) in enumerate(zip(map_list, mask_list))]
    if len({m.shape for m in map_list}) > 1:
        raise ValueError("object_size_coverage needs maps of one size, got "
                         f"{sorted({m.shape for m in map_list})}; resize them to one size")
    maps, objects = np.stack(map_list), np.stack(objects_list)
    flat, inside = maps.reshape(len(maps), -1), objects.reshape(len(objects), -1)
    sizes = inside.sum(1)
    # A stable sort of -value: equal values keep their row-major order.
    order = np.argsort(-flat, axis=1, kind="stable")
    ranked_inside = np.take_along_axis(inside, order, axis=1)
    top = np.arange(flat.shape[1])[None, :] < sizes[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sizes > 0, (ranked_inside & top).sum(1) / sizes, np.nan)


@dataclass(frozen=True)
class PartCoverage:
    """Per image and part, how much of each part a map covers (arrays over N images, P parts).

    Attributes:
        covered: ``(N, P)`` the share of part ``p``'s pixels in the kept region (NaN where the
            image has no pixel of that part).
        parts_covered: ``(N,)`` how many parts have at least ``min_share`` of their pixels
            covered (of the parts in ``counted``).
        peak_part: ``(N,)`` the part under the map's maximum: ``p`` for part ``p``, ``-1`` for
            the background.
        counted: the parts ``parts_covered`` counts (indices into the P parts).
        threshold: the fraction of each map's maximum that defines the kept region, or
            ``None`` for regions of the object's size (``matched``).
        min_share: the share of its pixels a part needs to count as covered.
    """

    covered: np.ndarray
    parts_covered: np.ndarray
    peak_part: np.ndarray
    counted: tuple[int, ...]
    threshold: float | None
    min_share: float

    def mean_covered(self) -> np.ndarray:
        """``(P,)`` each part's mean covered share over the images that show it."""
        with np.errstate(invalid="ignore"):
            return np.array([np.nanmean(column) if np.isfinite(column).any() else np.nan
                             for column in self.covered.T])

    def peak_shares(self, num_parts: int) -> np.ndarray:
        """``(num_parts + 1,)`` the share of images whose maximum lies on each part, the
        background last."""
        counts = np.bincount(np.where(self.peak_part < 0, num_parts, self.peak_part), minlength=num_parts + 1)
        return counts / max(len(self.peak_part), 1)


def part_coverage(cams: Any, part_maps: Any, num_parts: int, threshold: float | None = 0.2, *,
                  counted: Sequence[int] | None = None, min_share: float = 0.5) -> PartCoverage:
    """Which parts of each object a map covers: the measure behind "GAP covers the whole extent,
    GMP one part".

    A part map labels each pixel with its part: 0 for the background, ``p + 1`` for part ``p``
    (the lab's :meth:`~cam_tutorial.lab.SyntheticShapes.part_map`). The kept region ``A`` is
    the paper's (pixels at or above ``threshold`` times the map's maximum, as in
    :func:`cam_area_fraction`), or with ``threshold=None`` the map's ``|M|`` highest pixels, a
    region exactly the object's size (as in :func:`object_size_coverage`). Then for part ``p``
    with pixels ``P_p``, ``covered = |A ∩ P_p| / |P_p|``.

    Args:
        cams: ``(N, H, W)`` maps, at the part maps' resolution.
        part_maps: ``(N, H, W)`` integer part labels in ``[0, num_parts]``.
        num_parts: the number of parts ``P``.
        threshold: the fraction of the maximum, in [0, 1], or ``None`` for object-sized regions.
        counted: the parts ``parts_covered`` counts (default all).
        min_share: the covered share at which a part counts as covered, in (0, 1].

    Raises:
        ValueError: maps with NaN or infinity, part maps of another shape or with labels
            outside ``[0, num_parts]``, or a bad threshold, share or part index.

    Example:
        >>> import numpy as np
        >>> parts = np.array([[[1, 1, 2, 2]]])          # part 0 on the left, part 1 on the right
        >>> cam = np.array([[[1.0, 0.9, 0.1, 0.0]]])    # the map lights up the left part only
        >>> found = part_coverage(cam, parts, num_parts=2)
        >>> found.covered.tolist(), found.parts_covered.tolist(), found.peak_part.tolist()
        ([[1.0, 0.0]], [1], [0])
    """
    maps = np.stack(_as_maps(cams))
    labels = _to_numpy(part_maps)
    if labels.shape != maps.shape:
        raise ValueError(f"part_maps have shape {labels.shape}, the maps {maps.shape}: give one part map "
                         "per map, at the maps' resolution (upsample the maps first)")
    if isinstance(num_parts, bool) or not isinstance(num_parts, (int, np.integer)) or num_parts < 1:
        raise ValueError(f"num_parts must be a positive int, got {num_parts!r}")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0
                        or labels.max() > num_parts):
        raise ValueError(f"part labels must be integers in [0, {num_parts}] (0 = background), got "
                         f"{labels.dtype} in [{labels.min()}, {labels.max()}]")
    if threshold is not None:
        threshold = float(_check_unit_interval(threshold, "threshold")[0])
    if not 0.0 < float(min_share) <= 1.0:
        raise ValueError(f"min_share must be in (0, 1], got {min_share!r}")
    counted = tuple(range(num_parts)) if counted is None else tuple(int(p) for p in counted)
    if any(not 0 <= p < num_parts for p in counted):
        raise ValueError(f"counted parts must be in [0, {num_parts}), got {counted}")
    if threshold is None:
        sizes = (labels > 0).reshape(len(maps), -1).sum(1)
        order = np.argsort(-maps.reshape(len(maps), -1), axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(order.shape[1])[None], axis=1)
        kept = (ranks < sizes[:, None]).reshape(maps.shape)
    else:
        kept = np.stack([_foreground(m, threshold) for m in maps])
    covered = np.full((len(maps), num_parts), np.nan)
    for p in range(num_parts):
        on = labels == p + 1
        n = on.reshape(len(maps), -1).sum(1)
        hit = (on & kept).reshape(len(maps), -1).sum(1)
        covered[:, p] = np.where(n > 0, hit / np.maximum(n, 1), np.nan)
    peak = labels.reshape(len(maps), -1)[np.arange(len(maps)), maps.reshape(len(maps), -1).argmax(1)]
    counts = (np.nan_to_num(covered[:, list(counted)], nan=0.0) >= min_share).sum(1)
    return PartCoverage(covered=covered, parts_covered=counts, peak_part=peak.astype(np.int64) - 1,
                        counted=counted, threshold=threshold, min_share=float(min_share))
