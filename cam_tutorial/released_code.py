"""The box that the authors' released code (zhoubolei/CAM) draws, which is not the paper's rule.

Chapter 7 and its appendix use this module. The paper says "20% of the maximum, largest
connected component" (:func:`cam_tutorial.boxes.box_from_cam`); the released MATLAB and C++
pipeline thresholds an 8-bit map at three grey levels, erodes, clips boxes near the edges and
keeps the largest. :func:`box_from_cam_released_code` reproduces every step that makes the box
it scores, arithmetic included.
The statement-by-statement loop it replaced, ``box_from_cam_released_code_reference``, lives
with the tests (``tests/reference/localization.py``), which check that both give the same box.

Maps and boxes follow :mod:`cam_tutorial.boxes`: boxes ``(x0, y0, x1, y1)`` with exclusive
``x1``, ``y1``; a map holding NaN or infinity raises ``ValueError``.

Example:
    >>> import numpy as np
    >>> cam = np.zeros((40, 40)); cam[10:20, 5:25] = 1.0; cam[10:20, 25:35] = 0.3
    >>> box_from_cam_released_code(cam).tolist()  # 0.3 of the maximum is above level 20 of 255
    [5, 10, 35, 20]
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt

from cam_tutorial.boxes import as_map, check_size, resize_map

__all__ = ["RELEASED_CODE_LEVELS", "box_from_cam_released_code"]

#: The three grey levels (of 255) of the released code's ``generate_bbox.m``.
RELEASED_CODE_LEVELS: tuple[int, int, int] = (20, 100, 110)

# The steps without an underscore (released_gray, released_erosion, check_released_inputs) are
# shared with the reference loop in tests/reference/localization.py; they are not in __all__.


def released_gray(m: np.ndarray) -> np.ndarray:
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


def released_erosion(mask: np.ndarray) -> np.ndarray:
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
            mask = released_erosion(mask)
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


def check_released_inputs(cam: Any, size: Any, levels: Sequence[int], edge_margin: int,
                          ) -> tuple[np.ndarray, list[int], int]:
    """:func:`box_from_cam_released_code`'s arguments, checked: the map (resized to ``size``),
    ``levels`` as a list of ints and ``edge_margin`` as an int.

    A map too small for the margin raises: the released code's boxes would leave it (issue 11).
    With ``W >= 2 m - 1`` every box stays inside: ``x`` lies in ``[0, W - m]`` and a flipped
    box's far corner ``2 W - x_contour - 2 m`` is at least ``W + 1 - 2 m``.
    """
    levels_arr = np.asarray(levels)
    if (levels_arr.ndim != 1 or levels_arr.size == 0
            or not np.issubdtype(levels_arr.dtype, np.integer)
            or (levels_arr < 0).any() or (levels_arr > 254).any()):
        raise ValueError(f"levels must be grey levels, integers in 0..254 (of 255, not "
                         f"fractions of the maximum), got {levels!r}")
    if isinstance(edge_margin, bool) or not isinstance(edge_margin, (int, np.integer)) \
            or edge_margin < 0:
        raise ValueError(f"edge_margin must be an int >= 0 (pixels), got {edge_margin!r}")
    m = resize_map(as_map(cam), check_size(size))
    smallest = 2 * edge_margin - 1
    if edge_margin and min(m.shape) < smallest:
        raise ValueError(
            f"the map is {m.shape[0]} x {m.shape[1]} px, smaller than 2 * edge_margin - 1 = "
            f"{smallest} px: the released code's edge clipping (dt_box.cpp's LIMIT, "
            f"edge_margin={edge_margin}) puts boxes outside such a map. Resize it to the image "
            f"first (size=(height, width); the released code ran at the image's size), or pass "
            f"edge_margin=0"
        )
    return m, levels_arr.tolist(), int(edge_margin)


def box_from_cam_released_code(
    cam: Any,
    *,
    size: Any = None,
    levels: Sequence[int] = RELEASED_CODE_LEVELS,
    erode: bool = True,
    edge_margin: int = 5,
) -> np.ndarray:
    """The box that the authors' released code (zhoubolei/CAM) produces, not the paper's rule.
    Used in the appendix.

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
       exceeds ``(int)(0.5 * max(area_a, area_b))`` is erased (the C++ loop then skips the box
       right after an erased one). Nothing can erase the first box, so the merge never changes
       it and is not reproduced here.
    7. **Back in MATLAB**, each ``x y w h`` becomes the corners ``(x, y, x + w, y + h)``,
       reordered to ``(min(x, x + w), min(y, y + h), max(..), max(..))``: a negative width
       flips the box to the left of ``x'``. The first box (the largest) is the one scored;
       ``ILSVRC_evaluate_bbox.m`` also reads a second one, which this function does not give.

    The box is returned in the package's convention, ``(x0, y0, x1, y1)`` with exclusive
    ``x1``, ``y1`` (OpenCV's ``x + w``): the first of the largest signed area, found in one pass.

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
    NaN or infinity raise ``ValueError`` (see :mod:`cam_tutorial.boxes`).

    Args:
        cam: one map ``(H, W)``, numpy or torch.
        size: optional ``(height, width)`` to resize the float map to first (bilinear).
        levels: grey levels (0..254) to threshold the 8-bit map at, strictly above.
        erode: apply step 3.
        edge_margin: ``m`` of step 4, in pixels; 0 turns the clipping off.

    Returns:
        ``(4,)`` int64 box ``(x0, y0, x1, y1)`` (exclusive ``x1``, ``y1``).

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
    m, levels_list, margin = check_released_inputs(cam, size, levels, edge_margin)
    rects = _released_raw_boxes(released_gray(m), levels_list, erode, margin)
    if len(rects) == 0:
        # No box written (a zero maximum); the released code's box of a constant map.
        rects = _released_raw_boxes(np.full(m.shape, 255, np.uint8), levels_list[:1], erode,
                                    margin)
    # The first of the largest area: what a stable descending sort puts first.
    x, y, w, h = (int(v) for v in rects[int(np.argmax(rects[:, 2] * rects[:, 3]))])
    # How generate_bbox.m reads x y w h back: corners (x, y, x + w, y + h), then the smaller of
    # each pair first, so a negative width flips the box to the other side.
    return np.array([min(x, x + w), min(y, y + h), max(x, x + w), max(y, y + h)], dtype=np.int64)
