"""Slow reference implementations of the localisation functions: the loops that define them.

Each is the straightforward version of a fast function in the package, kept out of the package
because only the tests (which check that both give the same numbers, bit for bit) and
``benchmarks/localization.py`` (which times both) need it:

* :func:`max_box_acc_reference`: :func:`cam_tutorial.metrics.max_box_acc`, one threshold and
  one image at a time;
* :func:`box_from_cam_released_code_reference`:
  :func:`cam_tutorial.released_code.box_from_cam_released_code`, statement by statement.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

from cam_tutorial.boxes import box_iou
from cam_tutorial.metrics import (
    DEFAULT_CAM_THRESHOLDS,
    MaxBoxAccResult,
    candidate_boxes,
    check_max_box_acc_inputs,
    normalize_to_uint8,
    result_from_best_ious,
)
from cam_tutorial.released_code import (
    RELEASED_CODE_LEVELS,
    check_released_inputs,
    released_erosion,
    released_gray,
)

__all__ = ["max_box_acc_reference", "box_from_cam_released_code_reference"]


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
    """MaxBoxAcc(V2), the straightforward loop: the readable definition of
    :func:`~cam_tutorial.metrics.max_box_acc`.

    Per image, per threshold: binarise, find contours, make boxes, compute IoUs. Same
    arguments, same result as :func:`~cam_tutorial.metrics.max_box_acc` (the tests check it,
    the benchmark times both); use that one, this one is for reading.
    """
    maps, gts, deltas, taus = check_max_box_acc_inputs(cams, gt_boxes, iou_thresholds,
                                                       cam_thresholds, size, protocol)
    wsol = protocol == "wsolevaluation"
    mode = cv2.RETR_TREE if wsol else cv2.RETR_EXTERNAL
    best_iou = np.zeros((len(maps), len(taus)))
    for i, (m, gt) in enumerate(zip(maps, gts)):
        gray = normalize_to_uint8(m)
        for t, tau in enumerate(taus):
            cut = int(tau * float(gray.max()))
            _, binary = cv2.threshold(gray, cut, 255, cv2.THRESH_BINARY)  # strictly above
            contours, _ = cv2.findContours(binary, mode, cv2.CHAIN_APPROX_SIMPLE)
            if not contours:
                if wsol:  # their box (0, 0, 0, 0), one pixel at the origin
                    best_iou[i, t] = box_iou(np.zeros(4), gt, inclusive=True).max()
                continue  # clean: no candidate box, IoU 0, incorrect
            if not multi_contour:
                contours = [max(contours, key=cv2.contourArea)]
            candidates = candidate_boxes([cv2.boundingRect(c) for c in contours], m.shape,
                                         protocol)
            best_iou[i, t] = box_iou(candidates, gt, inclusive=wsol).max()
    return result_from_best_ious(best_iou, deltas, taus, multi_contour, protocol)



def box_from_cam_released_code_reference(
    cam: Any,
    *,
    size: Any = None,
    levels: Sequence[int] = RELEASED_CODE_LEVELS,
    erode: bool = True,
    edge_margin: int = 5,
) -> np.ndarray:
    """:func:`~cam_tutorial.released_code.box_from_cam_released_code` as the released code's
    loops, one box at a time.

    Slow (a Python loop over every contour's box): kept for the tests and the benchmark, which
    check that the fast function returns the same box. Written from ``dt_box.cpp`` statement by
    statement: ``LIMIT`` on scalars, a stable sort, then ``generate_bbox.m``'s corners of the
    first box (``mergeBBox`` never erases the first).
    """
    m, levels_list, margin = check_released_inputs(cam, size, levels, edge_margin)
    height, width = m.shape

    def limit(v: int, low: int, high: int) -> int:
        return low if v < low else (high if v > high else v)

    def rectangles(gray: np.ndarray, levels_used: list[int]) -> list[tuple[int, int, int, int]]:
        found = []
        for level in levels_used:
            mask = gray > level
            if erode:
                mask = released_erosion(mask)
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP,
                                           cv2.CHAIN_APPROX_SIMPLE)
            for contour in contours:
                x, y, w, h = cv2.boundingRect(contour)
                found.append((limit(x, 0, width - margin), limit(y, 0, height - margin),
                              limit(w, 0, width - x - margin), limit(h, 0, height - y - margin)))
        return found

    rects = rectangles(released_gray(m), levels_list)
    if not rects:
        rects = rectangles(np.full(m.shape, 255, np.uint8), levels_list[:1])
    rects.sort(key=lambda r: -r[2] * r[3])  # list.sort is stable
    x, y, w, h = rects[0]
    return np.array([min(x, x + w), min(y, y + h), max(x, x + w), max(y, y + h)], dtype=np.int64)
