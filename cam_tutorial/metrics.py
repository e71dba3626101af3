"""MaxBoxAcc and MaxBoxAccV2 (Choe et al., CVPR 2020): how well maps localise, over thresholds.

Chapters 5 and 7 use this module. :func:`max_box_acc` scores a set of maps against their
ground-truth boxes at every threshold at once, and keeps the best threshold for the whole
dataset; :func:`max_box_acc_both` gives MaxBoxAccV2 and the original MaxBoxAcc from one tracing
of the contours. Both follow this package's definition (``protocol="clean"``) or reproduce
Choe et al.'s code exactly (``protocol="wsolevaluation"``; add
``cam_thresholds=FINE_CAM_THRESHOLDS``, their training runs' grid, for numbers comparable with
published ones). The straightforward loop that defines the numbers, ``max_box_acc_reference``,
lives with the tests (``tests/reference/localization.py``), which check that :func:`max_box_acc`
gives the same numbers bit for bit.

Maps and boxes follow :mod:`cam_tutorial.boxes`: boxes ``(x0, y0, x1, y1)`` with exclusive
``x1``, ``y1``; maps 2-D at the boxes' resolution; a map holding NaN or infinity raises
``ValueError``.

Example:
    >>> import numpy as np
    >>> cams = np.zeros((2, 32, 32)); cams[0, 4:12, 4:20] = 1; cams[1, 10:30, 0:8] = 0.5
    >>> print(max_box_acc(cams, [[4, 4, 20, 12], [0, 10, 8, 30]], (0.5,), multi_contour=False))
    MaxBoxAcc 100.0% over 2 images [delta=0.5: 100.0% (tau=0.00)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from cam_tutorial.boxes import as_box_lists, as_maps, box_iou, check_size, check_unit_interval, resize_map

__all__ = [
    "max_box_acc",
    "max_box_acc_both",
    "MaxBoxAccResult",
    "DEFAULT_CAM_THRESHOLDS",
    "FINE_CAM_THRESHOLDS",
]

#: The threshold grid 0.00, 0.01, ..., 0.99 (read-only): that of Choe et al.'s ``evaluation.py``
#: when run on its own (its ``--cam_curve_interval`` default and their README's example).
DEFAULT_CAM_THRESHOLDS: np.ndarray = np.arange(0, 1, 0.01)
DEFAULT_CAM_THRESHOLDS.setflags(write=False)
#: The finer grid 0.000, 0.001, ..., 0.999 (read-only): that of Choe et al.'s training runs
#: (``main.py``'s ``--cam_curve_interval`` default), which their published tables come from. On
#: an 8-bit map it tries every grey level as the cut, where the default grid tries 100 of them.
FINE_CAM_THRESHOLDS: np.ndarray = np.arange(0, 1, 0.001)
FINE_CAM_THRESHOLDS.setflags(write=False)

#: The protocols :func:`max_box_acc` knows: this package's definition ("clean", the default) and
#: Choe et al.'s code's, reproduced exactly ("wsolevaluation").
MAX_BOX_ACC_PROTOCOLS: tuple[str, str] = ("clean", "wsolevaluation")


# --------------------------------------------------------------------------------------------
# MaxBoxAcc and MaxBoxAccV2. The steps without an underscore (normalize_to_uint8, candidate_boxes,
# result_from_best_ious, ...) are shared with the reference loop in tests/reference/localization.py;
# they are not in __all__.
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class MaxBoxAccResult:
    """What :func:`max_box_acc` measured.
    Used in no chapter directly.

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


def normalize_to_uint8(m: np.ndarray) -> np.ndarray:
    """Per-image min-max normalisation, then ``(x * 255)`` truncated to 8 bits.

    A constant map becomes all zeros, as in Choe et al.'s code.
    """
    low, high = m.min(), m.max()
    if high == low:
        return np.zeros(m.shape, dtype=np.uint8)
    return ((m - low) / (high - low) * 255).astype(np.uint8)


def check_max_box_acc_inputs(cams: Any, gt_boxes: Any, iou_thresholds: Any, cam_thresholds: Any,
                             size: Any = None, protocol: str = "clean",
                             ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """:func:`max_box_acc`'s arguments, checked: the maps (resized to ``size`` as ``protocol``
    does), each image's ground-truth boxes, the deltas and the taus."""
    if protocol not in MAX_BOX_ACC_PROTOCOLS:
        raise ValueError(f"protocol must be one of {MAX_BOX_ACC_PROTOCOLS}, got {protocol!r}: "
                         "'clean' is this module's definition, 'wsolevaluation' Choe et al.'s "
                         "code's")
    maps = as_maps(cams)
    gts = as_box_lists(gt_boxes, len(maps))
    deltas = check_unit_interval(iou_thresholds, "iou_thresholds", allow_zero=False)
    taus = check_unit_interval(cam_thresholds, "cam_thresholds")
    # Their inference.py: cv2.resize of the float map with INTER_CUBIC.
    interpolation = cv2.INTER_CUBIC if protocol == "wsolevaluation" else cv2.INTER_LINEAR
    target = check_size(size)
    return [resize_map(m, target, interpolation) for m in maps], gts, deltas, taus


def candidate_boxes(rects: Any, shape: tuple[int, int], protocol: str) -> np.ndarray:
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


def result_from_best_ious(best_iou: np.ndarray, deltas: np.ndarray, taus: np.ndarray,
                          multi_contour: bool, protocol: str = "clean") -> MaxBoxAccResult:
    """BoxAcc over the images and its maximum over the taus, from the best IoUs ``(N, n_tau)``."""
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


def _distinct_cuts(gray: np.ndarray, cuts: np.ndarray,
                    ) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """The cuts that leave different pixels of ``gray``, and where to trace each.

    Returns the distinct cuts ``(K,)``, the index into them of each of ``cuts``, and per distinct
    cut the window ``(y0, y1, x0, x1)`` of the rows and columns that reach above it.
    """
    # Cuts c1 < c2 give the same mask when no pixel has a grey level in (c1, c2]: key each cut
    # by the number of levels present at or below it, and trace each distinct key once (taus
    # with the same integer cut are the common case of this).
    present = np.flatnonzero(np.bincount(gray.ravel(), minlength=256))
    keys = np.searchsorted(present, cuts, side="right")
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    distinct = cuts[first]
    # The mask at cut c lies inside the rows/columns whose maximum exceeds c: threshold and
    # trace only that window (with an offset, contours come back in image coordinates).
    row_max, col_max = gray.max(axis=1), gray.max(axis=0)
    rows_in = row_max[None, :] > distinct[:, None]
    cols_in = col_max[None, :] > distinct[:, None]
    y_start = np.argmax(rows_in, axis=1)
    y_stop = gray.shape[0] - np.argmax(rows_in[:, ::-1], axis=1)
    x_start = np.argmax(cols_in, axis=1)
    x_stop = gray.shape[1] - np.argmax(cols_in[:, ::-1], axis=1)
    windows = np.stack([y_start, y_stop, x_start, x_stop], axis=1).tolist()
    return distinct, inverse, windows


def _best_ious_by_mode(m: np.ndarray, gt: np.ndarray, taus: np.ndarray, modes: tuple[bool, ...],
                       protocol: str = "clean") -> list[np.ndarray]:
    """Best IoU per tau for one map, for each ``multi_contour`` value of ``modes`` (the fast path
    of :func:`max_box_acc`): each cut is traced once for all of them."""
    gray = normalize_to_uint8(m)
    wsol = protocol == "wsolevaluation"
    mode = cv2.RETR_TREE if wsol else cv2.RETR_EXTERNAL
    # A cut that leaves nothing: no candidate (clean), their box (0, 0, 0, 0) (wsol: one pixel at
    # the origin, their corners being inclusive).
    empty = box_iou(np.zeros(4), gt, inclusive=True).max() if wsol else 0.0
    # The integer cut of each tau: pixels strictly above int(tau * max(gray)) are kept.
    cuts = (taus * float(gray.max())).astype(np.int64)
    live = cuts < int(gray.max())  # at or above the maximum nothing is left
    if not live.any():
        return [np.full(len(taus), empty) for _ in modes]
    distinct, inverse, windows = _distinct_cuts(gray, cuts[live])
    # Per mode: every candidate's rectangle, and how many candidates each cut gave.
    rects: dict[bool, list[tuple[int, int, int, int]]] = {multi: [] for multi in modes}
    counts = {multi: np.empty(len(distinct), dtype=np.int64) for multi in modes}
    for k, (cut, (y0, y1, x0, x1)) in enumerate(zip(distinct.tolist(), windows)):
        _, binary = cv2.threshold(gray[y0:y1, x0:x1], cut, 255, cv2.THRESH_BINARY)
        contours, _ = cv2.findContours(binary, mode, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))
        if True in rects:
            rects[True].extend(cv2.boundingRect(c) for c in contours)
            counts[True][k] = len(contours)
        if False in rects:
            # max() keeps the first of equal areas, like np.argmax
            rects[False].append(cv2.boundingRect(max(contours, key=cv2.contourArea)))
            counts[False][k] = 1
    out = []
    for multi in modes:
        # wsolevaluation's calculate_multiple_iou reads every corner as an inclusive pixel.
        candidates = candidate_boxes(rects[multi], m.shape, protocol)
        per_candidate = box_iou(candidates, gt, inclusive=wsol).max(axis=1)
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
    *,
    size: Any = None,
    protocol: str = "clean",
) -> MaxBoxAccResult:
    """MaxBoxAcc and MaxBoxAccV2 (Choe et al., "Evaluating WSOL methods right", CVPR 2020).
    Used in chapter 7, and the appendix.

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
    nothing. (The paper's rule, :func:`~cam_tutorial.boxes.box_from_cam`, instead returns the
    whole image for it.)

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
    see :mod:`cam_tutorial.boxes`.)

    How it is fast (the numbers are those of ``max_box_acc_reference``, bit for bit):
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
    maps, gts, deltas, taus = check_max_box_acc_inputs(cams, gt_boxes, iou_thresholds, cam_thresholds, size,
                                       protocol)
    best_iou = np.stack([_best_ious_by_mode(m, gt, taus, (multi_contour,), protocol)[0]
                         for m, gt in zip(maps, gts)])
    return result_from_best_ious(best_iou, deltas, taus, multi_contour, protocol)


def max_box_acc_both(
    cams: Any,
    gt_boxes: Any,
    iou_thresholds: Any = (0.3, 0.5, 0.7),
    cam_thresholds: Any = DEFAULT_CAM_THRESHOLDS,
    *,
    size: Any = None,
    protocol: str = "clean",
) -> tuple[MaxBoxAccResult, MaxBoxAccResult]:
    """MaxBoxAccV2 (every contour) and the original MaxBoxAcc (the largest contour) at once.
    Used in the appendix.

    The same two results as ``max_box_acc(cams, gt_boxes, iou_thresholds, ...)`` and the
    original MaxBoxAcc, ``max_box_acc(cams, gt_boxes, (0.5,), ..., multi_contour=False)``, bit for
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
    maps, gts, deltas, taus = check_max_box_acc_inputs(cams, gt_boxes, iou_thresholds, cam_thresholds, size,
                                       protocol)
    rows = [_best_ious_by_mode(m, gt, taus, (True, False), protocol) for m, gt in zip(maps, gts)]
    every, largest = (np.stack(column) for column in zip(*rows))
    return (result_from_best_ious(every, deltas, taus, True, protocol),
            result_from_best_ious(largest, np.array([0.5]), taus, False, protocol))
