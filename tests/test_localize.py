"""Tests of cam_tutorial.localize: answers known by hand; the fast MaxBoxAcc against the loop."""

from __future__ import annotations

import doctest

import cv2
import numpy as np
import pytest
import torch

from cam_tutorial import localize
from cam_tutorial.localize import (
    DEFAULT_CAM_THRESHOLDS,
    FINE_CAM_THRESHOLDS,
    box_from_cam,
    box_from_cam_released_code,
    box_iou,
    boxes_from_cams,
    cam_area_fraction,
    object_size_coverage,
    center_baseline_boxes,
    center_box,
    center_gaussian_maps,
    localization_accuracy,
    max_box_acc,
    max_box_acc_both,
    max_box_acc_reference,
    pointing_game,
)


def rectangle_map(height: int, width: int, box: tuple[int, int, int, int],
                  inside: float = 1.0) -> np.ndarray:
    """Zeros with ``inside`` on the box (x0, y0, x1, y1), x1/y1 exclusive."""
    cam = np.zeros((height, width))
    x0, y0, x1, y1 = box
    cam[y0:y1, x0:x1] = inside
    return cam


def smooth_maps(n: int, size: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sums of 1-4 Gaussian bumps, and one or two random boxes per image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    maps = np.zeros((n, size, size))
    boxes = []
    for i in range(n):
        for _ in range(rng.integers(1, 5)):
            cx, cy = rng.uniform(0, size, 2)
            sigma = rng.uniform(0.04, 0.25) * size
            maps[i] += rng.uniform(0.3, 1.0) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2)
                                                      / (2 * sigma ** 2))
        k = rng.integers(1, 3)
        x0, y0 = rng.uniform(0, 0.6 * size, (2, k))
        w, h = rng.uniform(0.15, 0.4, (2, k)) * size
        boxes.append(np.stack([x0, y0, x0 + w, y0 + h], axis=1))
    return maps, boxes


def test_docstring_examples_run():
    failures, tried = doctest.testmod(localize, optionflags=doctest.ELLIPSIS)
    assert tried >= 8 and failures == 0


# ----------------------------------------------------------------------------------- box_iou

def test_box_iou_by_hand():
    ious = box_iou([[0, 0, 4, 4]], [[0, 0, 4, 4], [2, 0, 6, 4], [0, 0, 4, 2],
                                    [4, 0, 8, 4], [10, 10, 12, 12], [1, 1, 3, 3]])
    # identical; 8 shared of 24; half of it; touching edges share nothing (exclusive x1);
    # disjoint; 4 px inside 16 px.
    np.testing.assert_allclose(ious, [[1.0, 1 / 3, 0.5, 0.0, 0.0, 0.25]])


def test_box_iou_is_pairwise_and_symmetric():
    a = np.array([[0, 0, 4, 4], [1, 1, 5, 7.5]])
    b = np.array([[0, 0, 2, 2], [2, 2, 6, 6], [0.5, 0, 4, 4]])
    ious = box_iou(a, b)
    assert ious.shape == (2, 3)
    np.testing.assert_allclose(ious, box_iou(b, a).T)
    # The float box [1, 1, 5, 7.5] with [2, 2, 6, 6]: overlap 3 x 4 = 12, union 26 + 16 - 12.
    assert ious[1, 1] == pytest.approx(12 / 30)


def test_box_iou_of_empty_boxes_is_zero():
    assert box_iou([[3, 3, 3, 3]], [[3, 3, 3, 3]])[0, 0] == 0.0


def test_box_iou_accepts_one_box_and_tensors():
    ious = box_iou(torch.tensor([0, 0, 4, 4]), torch.tensor([[2, 0, 6, 4]]))
    assert ious.shape == (1, 1) and ious[0, 0] == pytest.approx(1 / 3)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 3)), r"\(K, 4\)"),
    ([[0, 0, -1, 4]], r"x1 < x0.*\(x, y, x \+ w, y \+ h\)"),
    ([[0, 0, np.nan, 4]], "NaN"),
])
def test_box_iou_rejects_bad_boxes(bad, match):
    with pytest.raises(ValueError, match=match):
        box_iou(bad, [[0, 0, 1, 1]])


# ------------------------------------------------------------------------ box_from_cam (paper)

def test_box_from_cam_recovers_a_rectangle():
    assert box_from_cam(rectangle_map(20, 30, (4, 6, 17, 11))).tolist() == [4, 6, 17, 11]


def test_box_from_cam_single_pixel_uses_exclusive_corners():
    cam = np.zeros((8, 8))
    cam[4, 3] = 2.0
    assert box_from_cam(cam).tolist() == [3, 4, 4, 5]


def test_box_from_cam_keeps_the_largest_component():
    cam = rectangle_map(20, 20, (1, 1, 4, 4)) + rectangle_map(20, 20, (8, 9, 18, 13), 0.5)
    # Both are above 20% of the maximum; the second has 40 px against 9.
    assert box_from_cam(cam).tolist() == [8, 9, 18, 13]
    # At 60% of the maximum only the small bright one is left.
    assert box_from_cam(cam, threshold=0.6).tolist() == [1, 1, 4, 4]


def test_box_from_cam_threshold_is_a_fraction_of_the_maximum():
    cam = rectangle_map(30, 30, (5, 5, 25, 25), 0.25) + rectangle_map(30, 30, (10, 12, 15, 20),
                                                                         0.75)
    assert box_from_cam(cam, 0.2).tolist() == [5, 5, 25, 25]      # 0.25 >= 0.2
    assert box_from_cam(cam, 0.25).tolist() == [5, 5, 25, 25]     # at the threshold: kept
    assert box_from_cam(cam, 0.3).tolist() == [10, 12, 15, 20]    # 0.25 < 0.3


def test_box_from_cam_diagonal_pixels_are_connected():
    cam = np.zeros((6, 6))
    cam[1, 1] = cam[2, 2] = cam[3, 3] = 1.0
    assert box_from_cam(cam).tolist() == [1, 1, 4, 4]


@pytest.mark.parametrize("value", [0.0, 5.0, -3.0])
def test_box_from_cam_constant_map_is_the_whole_image(value):
    assert box_from_cam(np.full((7, 9), value)).tolist() == [0, 0, 9, 7]


def test_box_from_cam_negative_only_map_is_measured_from_its_minimum():
    cam = np.full((10, 10), -5.0)
    cam[2:4, 6:9] = -1.0  # the least negative region: 4 of 4 above the minimum
    assert box_from_cam(cam).tolist() == [6, 2, 9, 4]


def test_box_from_cam_rejects_nan_and_bad_input():
    cam = np.zeros((5, 5))
    cam[2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN.*nan_to_num"):
        box_from_cam(cam)
    with pytest.raises(ValueError, match="2-D"):
        box_from_cam(np.zeros((1, 5, 5)))
    with pytest.raises(ValueError, match=r"threshold must lie in \[0, 1\]"):
        box_from_cam(np.ones((5, 5)), threshold=20)


def test_box_from_cam_resizes_the_float_map_first():
    # OpenCV's bilinear (half-pixel centres) turns [[1, 0], [0, 0]] into a 4x4 map whose
    # values >= 0.2 are 1, 0.75, 0.5625 and two 0.25s: the top-left 3x3 corner, less its
    # two 0.1875 pixels, whose box is (0, 0, 3, 3).
    cam = np.array([[1.0, 0.0], [0.0, 0.0]])
    assert box_from_cam(cam, size=(4, 4)).tolist() == [0, 0, 3, 3]


def test_boxes_from_cams_batch_and_torch():
    cams = torch.from_numpy(np.stack([rectangle_map(10, 10, (0, 0, 3, 3)),
                                      rectangle_map(10, 10, (5, 2, 9, 10))]))
    assert boxes_from_cams(cams).tolist() == [[0, 0, 3, 3], [5, 2, 9, 10]]


# --------------------------------------------------------------------- released code's rule

def test_released_code_recovers_a_small_rectangle():
    cam = rectangle_map(60, 60, (10, 20, 40, 35))
    assert box_from_cam_released_code(cam).tolist() == [10, 20, 40, 35]


def test_released_code_erosion_trims_the_rim_of_a_large_blob():
    # A 100 x 60 block: its deepest pixels lie 30 px from the background, so the rescaled
    # distance of the rim (1 px) is round(255 / 30) = 9 <= 10 and the rim goes; the next ring
    # (2 px, 17) stays: the box shrinks by one pixel on every side.
    cam = rectangle_map(200, 200, (40, 50, 140, 110))
    assert box_from_cam_released_code(cam).tolist() == [41, 51, 139, 109]
    assert box_from_cam_released_code(cam, erode=False).tolist() == [40, 50, 140, 110]


def test_released_code_keeps_five_pixels_from_the_right_and_bottom_edges():
    # A 20 x 20 block in the corner (too small for the erosion to touch it).
    cam = rectangle_map(60, 80, (60, 40, 80, 60))
    assert box_from_cam_released_code(cam).tolist() == [60, 40, 75, 55]
    assert box_from_cam_released_code(cam, edge_margin=0).tolist() == [60, 40, 80, 60]


def test_released_code_and_paper_disagree_on_a_faint_halo():
    # A faint halo at 15% of the maximum: below the paper's 20%, above level 20 of 255 (38).
    cam = rectangle_map(80, 80, (10, 10, 60, 50), 0.15) + rectangle_map(80, 80, (30, 20, 40, 30),
                                                                        0.85)
    assert box_from_cam(cam).tolist() == [30, 20, 40, 30]
    assert box_from_cam_released_code(cam).tolist() == [10, 10, 60, 50]
    # The second box is the core, found at levels 100 and 110; the duplicates are dropped.
    assert box_from_cam_released_code(cam, return_all=True).tolist() == [
        [10, 10, 60, 50], [30, 20, 40, 30]]


def test_released_code_constant_and_nan_maps():
    assert box_from_cam_released_code(np.zeros((30, 40))).tolist() == [0, 0, 35, 25]
    with pytest.raises(ValueError, match="NaN"):
        box_from_cam_released_code(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="levels must be grey levels"):
        box_from_cam_released_code(np.ones((4, 4)), levels=(0.2, 0.5))


def released_maps() -> list[tuple[str, np.ndarray]]:
    """Structured and random maps for the fast-against-reference check (small: the reference
    is the slow loop)."""
    rng = np.random.default_rng(16)
    yy, xx = np.mgrid[0:48, 0:56] + 0.5
    maps = [("noise", rng.random((28, 30))),
            ("sparse noise", rng.random((36, 36)) * (rng.random((36, 36)) > 0.8)),
            ("negative noise", -rng.random((30, 30)) - 0.1),
            ("zero maximum", np.minimum(-rng.random((30, 30)), 0) * (rng.random((30, 30)) > 0.5)),
            ("constant", np.full((20, 24), 3.0)),
            ("zeros", np.zeros((20, 24)))]
    ring = np.exp(-((np.hypot(xx - 28, yy - 24) - 12) ** 2) / 8)
    maps.append(("ring", ring))
    maps.append(("ring and core", ring + np.exp(-(np.hypot(xx - 28, yy - 24) ** 2) / 6)))
    for k in range(8):
        cam = np.zeros((48, 56))
        for _ in range(rng.integers(1, 6)):
            cx, cy, s = rng.uniform(0, 56), rng.uniform(0, 48), rng.uniform(1, 10)
            cam += rng.uniform(0.2, 1) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
        cam[rng.integers(43, 48), rng.integers(0, 56)] = rng.uniform(0.5, 1.5)  # bottom edge
        cam[rng.integers(0, 48), rng.integers(51, 56)] = rng.uniform(0.5, 1.5)  # right edge
        maps.append((f"blobs {k}", cam - (0.3 if k % 2 else 0.0)))
    checker = np.indices((18, 18)).sum(0) % 2 * 1.0
    maps.append(("checkerboard", checker))
    corner = np.zeros((40, 40))
    corner[36:, 36:] = 1.0
    corner[5:10, 5:8] = 0.9
    maps.append(("corner block", corner))
    return maps


_RELEASED_OPTIONS = [{}, {"edge_margin": 0}, {"erode": False}, {"levels": (20,)},
                     {"levels": (110, 20, 100), "edge_margin": 3}]


@pytest.mark.parametrize("options", _RELEASED_OPTIONS, ids=str)
def test_released_code_fast_equals_the_slow_reference(options):
    # The reference is dt_box.cpp's loops one box at a time (list erase with its skip); the
    # fast function finds the first box in one pass and merges with numpy.
    for name, cam in released_maps():
        first = box_from_cam_released_code(cam, **options)
        every = box_from_cam_released_code(cam, return_all=True, **options)
        ref_every = localize._box_from_cam_released_code_reference(cam, return_all=True,
                                                                   **options)
        assert first.tolist() == ref_every[0].tolist(), name
        assert every.tolist() == ref_every.tolist(), name


def test_released_code_first_box_equals_the_reference_on_many_random_maps():
    # The first box is found without the merge (the largest signed area, first on a tie);
    # the reference sorts and merges everything. Random sizes, margins, sparsity and signs.
    rng = np.random.default_rng(17)
    for trial in range(80):
        margin = int(rng.integers(0, 7))
        height, width = (int(v) for v in rng.integers(max(2 * margin - 1, 1), 34, 2))
        cam = rng.random((height, width)) * (rng.random((height, width)) > rng.uniform(0, 0.95))
        cam = cam - rng.choice([0.0, 0.5, 2.0])  # some maps mixed-sign, some negative-only
        options = {"edge_margin": margin, "erode": bool(trial % 3)}
        expected = localize._box_from_cam_released_code_reference(cam, **options)
        assert box_from_cam_released_code(cam, **options).tolist() == expected.tolist(), trial


def test_released_code_contour_in_the_last_pixels_gets_limit_s_negative_sides():
    # Issue 16: a contour at (223, 223) has W - x - 5 = -4: LIMIT makes w = h = -4 (area +16,
    # larger than the 3 x 5 block's 15) and x = y = 219; MATLAB's reordering gives 215..219.
    cam = np.zeros((224, 224))
    cam[223, 223] = 1
    cam[100:105, 40:43] = 1
    assert box_from_cam_released_code(cam).tolist() == [215, 215, 219, 219]
    # With one negative side (x only) the area is negative and the box ranks last, flipped to
    # the left of x = 219: x + w = 219 + (224 - 222 - 5) = 216.
    cam = np.zeros((224, 224))
    cam[100, 222] = 1
    cam[50:60, 50:60] = 1
    boxes = box_from_cam_released_code(cam, return_all=True)
    assert boxes[0].tolist() == [50, 50, 60, 60]
    assert boxes[-1].tolist() == [216, 100, 219, 101]


def test_released_code_negative_only_map_saturates_to_the_whole_image():
    # MATLAB's x ./ max(x(:)) with a negative maximum is >= 1 everywhere: all 255.
    cam = np.full((30, 40), -1.0)
    cam[5:10, 5:10] = -0.01  # the least negative region, which the paper's rule would pick
    assert box_from_cam(cam).tolist() == [5, 5, 10, 10]
    assert box_from_cam_released_code(cam).tolist() == [0, 0, 35, 25]
    assert box_from_cam_released_code(cam, edge_margin=0).tolist() == [0, 0, 40, 30]


def test_released_code_zero_maximum_gives_the_constant_map_box():
    # x ./ 0 is NaN or -Inf, written as 0: the released code writes no box; the documented
    # answer is the whole image less the margin, as for a constant map.
    cam = np.full((30, 40), -1.0)
    cam[10:20, 10:20] = 0.0
    assert box_from_cam_released_code(cam).tolist() == [0, 0, 35, 25]


def test_released_code_merge_skips_the_box_after_an_erased_one():
    # One rectangle gives the same box at all three levels. mergeBBox erases the second copy,
    # then its j++ skips the third (which moved into the erased slot): two copies remain.
    cam = rectangle_map(60, 60, (10, 20, 40, 35))
    assert box_from_cam_released_code(cam, return_all=True).tolist() == [[10, 20, 40, 35]] * 2
    assert box_from_cam_released_code(cam, levels=(20,), return_all=True).tolist() == [
        [10, 20, 40, 35]]


@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (8, 30), (30, 6)])
def test_released_code_refuses_maps_too_small_for_the_edge_margin(shape):
    # Issue 11: ones((1, 1)) gave [-4, -4, -4, -4]. The released clipping can only keep
    # boxes inside maps of at least 2 * 5 - 1 = 9 px a side.
    with pytest.raises(ValueError, match=r"smaller than 2 \* edge_margin - 1 = 9 px.*"
                                         r"size=\(height, width\).*edge_margin=0"):
        box_from_cam_released_code(np.ones(shape))
    height, width = shape
    assert box_from_cam_released_code(np.ones(shape), edge_margin=0).tolist() == [
        0, 0, width, height]
    assert box_from_cam_released_code(np.ones(shape), size=(64, 64)).tolist() == [0, 0, 59, 59]


def test_released_code_boxes_never_leave_the_image():
    rng = np.random.default_rng(11)
    for trial in range(60):
        margin = int(rng.integers(0, 7))
        height, width = (int(v) for v in rng.integers(max(2 * margin - 1, 1), 20, 2))
        cam = rng.random((height, width)) * (rng.random((height, width)) > 0.6)
        cam[rng.integers(0, height), rng.integers(0, width)] = 2.0  # never all zero
        boxes = box_from_cam_released_code(cam, edge_margin=margin, return_all=True)
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all(), (trial, boxes)
        assert (boxes[:, 0] <= boxes[:, 2]).all() and (boxes[:, 1] <= boxes[:, 3]).all()
        assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all(), (trial, boxes)


def test_released_erosion_uses_the_exact_euclidean_distance():
    # dt.c's distances are sqrt of exact integer squared distances in double precision; check
    # the rescale-and-round against a brute-force distance on random masks.
    rng = np.random.default_rng(5)
    for _ in range(20):
        mask = rng.random((23, 29)) > rng.uniform(0.02, 0.3)
        if mask.all():
            continue
        ys, xs = np.nonzero(~mask)
        grid_y, grid_x = np.mgrid[0:23, 0:29]
        dist = np.sqrt(np.min((grid_y[..., None] - ys) ** 2 + (grid_x[..., None] - xs) ** 2,
                              axis=-1).astype(np.float64))
        expected = np.floor(dist * (255.0 / dist.max()) + 0.5) > 10
        np.testing.assert_array_equal(localize._released_erosion(mask), expected)


# ------------------------------------------------------------------- localization_accuracy

def test_localization_accuracy_by_hand():
    pred_classes = [0, 1, 2, 3]
    true_classes = [0, 1, 0, 3]
    pred_boxes = [[0, 0, 4, 4], [0, 0, 4, 4], [0, 0, 4, 4], [0, 0, 4, 4]]
    gt_boxes = [
        np.array([[0, 0, 4, 4]]),                   # IoU 1
        np.array([[2, 0, 6, 4]]),                   # IoU 1/3: not located
        np.array([[0, 0, 4, 2]]),                   # IoU 0.5: located, wrong class
        np.array([[9, 9, 12, 12], [0, 0, 4, 3]]),  # best of two boxes: 0.75
    ]
    result = localization_accuracy(pred_classes, true_classes, pred_boxes, gt_boxes)
    np.testing.assert_allclose(result.ious, [1.0, 1 / 3, 0.5, 0.75])
    assert result.top1_cls == 0.75
    assert result.gt_known_loc == 0.75   # images 0, 2, 3
    assert result.top1_loc == 0.5        # images 0 and 3: class right and located
    stricter = localization_accuracy(pred_classes, true_classes, pred_boxes, gt_boxes, 0.8)
    assert stricter.gt_known_loc == 0.25 and stricter.top1_loc == 0.25


def test_localization_accuracy_input_errors():
    with pytest.raises(ValueError, match="lengths differ"):
        localization_accuracy([0, 1], [0], [[0, 0, 1, 1], [0, 0, 1, 1]], [[0, 0, 1, 1]] * 2)
    with pytest.raises(ValueError, match="gt_boxes has 1 entries but there are 2"):
        localization_accuracy([0, 1], [0, 1], [[0, 0, 1, 1]] * 2, [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="1-D"):
        localization_accuracy(np.zeros((2, 5)), [0, 1], [[0, 0, 1, 1]] * 2, [[0, 0, 1, 1]] * 2)
    with pytest.raises(ValueError, match=r"iou_threshold must lie in \(0, 1\]"):
        localization_accuracy([0], [0], [[0, 0, 1, 1]], [[0, 0, 1, 1]], iou_threshold=50)


def test_constant_map_under_the_paper_rule_scores_as_the_whole_image_centre_box():
    # A constant map says "everywhere": the paper's rule gives the whole image, which is the
    # centre box covering all of it, so the two score the same on any ground truth.
    rng = np.random.default_rng(3)
    n, height, width = 12, 20, 30
    x0, y0 = rng.uniform(0, 6, n), rng.uniform(0, 4, n)
    gt = np.stack([x0, y0, x0 + rng.uniform(12, 24, n), y0 + rng.uniform(8, 16, n)], axis=1)
    labels = np.zeros(n, dtype=int)
    from_constant = localization_accuracy(labels, labels,
                                          boxes_from_cams(np.full((n, height, width), 0.4)), gt,
                                          0.3)
    from_centre = localization_accuracy(labels, labels,
                                        center_baseline_boxes(n, height, width, 1.0), gt, 0.3)
    np.testing.assert_array_equal(from_constant.ious, from_centre.ious)
    np.testing.assert_allclose(from_constant.ious, (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
                               / (height * width))  # IoU with the whole image: area fraction
    assert 0 < from_constant.gt_known_loc < 1  # a real comparison, not 0 == 0


# ------------------------------------------------------------------------------ max_box_acc

@pytest.mark.parametrize("multi_contour", [True, False])
def test_max_box_acc_rectangle_maps_are_found_at_every_threshold(multi_contour):
    # (A map that is the rectangle everywhere would be constant: see the constant-map test.)
    boxes = [(3, 4, 20, 9), (0, 0, 32, 31), (10, 0, 11, 32)]
    cams = np.stack([rectangle_map(32, 32, b) for b in boxes])
    for fn in (max_box_acc, max_box_acc_reference):
        result = fn(cams, np.array(boxes), multi_contour=multi_contour)
        # 255 inside, 0 outside: every cut below 255 leaves exactly the rectangle.
        assert (result.best_iou == 1.0).all()
        assert (result.box_acc == 1.0).all() and result.mean == 1.0
        assert (result.best_cam_threshold == 0.0).all()


@pytest.mark.parametrize("multi_contour", [True, False])
def test_max_box_acc_perfect_maps_score_one(multi_contour):
    # The object's mask used as its map: the ellipse's box is found at every delta.
    yy, xx = np.mgrid[0:48, 0:48]
    masks, gt = [], []
    for cx, cy, ax, ay in [(20, 24, 10, 5), (30, 14, 6, 12), (24, 24, 20, 20)]:
        mask = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1
        ys, xs = np.nonzero(mask)
        masks.append(mask.astype(float))
        gt.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    result = max_box_acc(np.stack(masks), np.array(gt), multi_contour=multi_contour)
    assert result.max_box_acc.tolist() == [1.0, 1.0, 1.0]


def test_max_box_acc_half_overlap_by_hand():
    cams = rectangle_map(16, 16, (0, 0, 4, 4))[None]
    result = max_box_acc(cams, [[2, 0, 6, 4]])  # IoU 1/3 at every threshold
    assert result.max_box_acc.tolist() == [1.0, 0.0, 0.0]
    assert result.mean == pytest.approx(1 / 3)
    original = max_box_acc(cams, [[2, 0, 6, 4]], iou_thresholds=(0.5,), multi_contour=False)
    assert original.max_box_acc.tolist() == [0.0]


def test_max_box_acc_uses_one_threshold_for_the_whole_dataset():
    # The same two-level map twice: a 0.5 plateau with a 1.0 core. Image 0's object is the
    # plateau (found below tau 0.5), image 1's the core (found from tau 0.5 on): no single
    # tau gets both, so MaxBoxAcc is 0.5 although each image is right somewhere.
    cam = rectangle_map(40, 40, (2, 2, 38, 38), 0.5) + rectangle_map(40, 40, (18, 18, 22, 22),
                                                                     0.5)
    cams = np.stack([cam, cam])
    result = max_box_acc(cams, [[2, 2, 38, 38], [18, 18, 22, 22]])
    assert result.max_box_acc.tolist() == [0.5, 0.5, 0.5]
    assert (result.best_iou.max(axis=1) == 1.0).all()
    taus = result.cam_thresholds
    np.testing.assert_array_equal(result.best_iou[0] == 1.0, (taus * 255).astype(int) < 127)


def test_max_box_acc_v2_scores_every_contour_the_original_only_the_largest():
    cams = (rectangle_map(40, 40, (0, 0, 20, 20)) + rectangle_map(40, 40, (30, 30, 36, 36)))[None]
    gt = [[30, 30, 36, 36]]  # the small blob
    assert max_box_acc(cams, gt, multi_contour=True).mean == 1.0
    assert max_box_acc(cams, gt, multi_contour=False).mean == 0.0


def test_max_box_acc_largest_contour_is_by_polygon_area():
    # A 30-px line has more pixels than a 3x3 square but a contour of area 0 (the square's
    # contour through its pixel centres encloses 2 x 2 = 4): the square is "largest".
    cam = np.zeros((20, 40))
    cam[2, 2:32] = 1.0
    cam[10:13, 10:13] = 1.0
    result = max_box_acc(cam[None], [[10, 10, 13, 13]], multi_contour=False)
    assert result.mean == 1.0
    reference = max_box_acc_reference(cam[None], [[10, 10, 13, 13]], multi_contour=False)
    np.testing.assert_array_equal(result.best_iou, reference.best_iou)


@pytest.mark.parametrize("value", [0.0, 0.7, -2.0])
def test_max_box_acc_constant_map_scores_zero(value):
    # A constant map normalises to zeros: nothing is above any cut, there is no candidate box,
    # and every image is wrong at every threshold, even against the whole-image box.
    cams = np.full((2, 16, 16), value)
    for fn in (max_box_acc, max_box_acc_reference):
        result = fn(cams, [[0, 0, 16, 16], [4, 4, 12, 12]], multi_contour=True)
        assert (result.box_acc == 0).all() and result.mean == 0.0


def test_max_box_acc_no_foreground_at_tau_one_is_wrong():
    cam = np.zeros((10, 10))
    cam[5, 5] = 1.0
    result = max_box_acc(cam[None], [[5, 5, 6, 6]], cam_thresholds=(0.5, 1.0))
    assert result.best_iou.tolist() == [[1.0, 0.0]]
    assert result.box_acc[:, 0].tolist() == [1.0, 0.0]


def test_max_box_acc_threshold_is_a_cut_of_the_8_bit_map_not_of_the_float_map():
    # A core at 1.0 and a halo at 0.201: the paper's rule at 20% keeps the halo, but MaxBoxAcc
    # at tau = 0.2 keeps the grey levels above int(0.2 * 255) = 51, and the halo is level 51.
    cam = rectangle_map(20, 20, (2, 2, 18, 18), 0.201) + rectangle_map(20, 20, (6, 6, 14, 14),
                                                                       0.799)
    assert box_from_cam(cam, 0.2).tolist() == [2, 2, 18, 18]
    result = max_box_acc(cam[None], [[6, 6, 14, 14]], iou_thresholds=(0.5,),
                         cam_thresholds=(0.2,), multi_contour=False)
    assert result.best_iou.tolist() == [[1.0]]
    assert box_from_cam(cam, 52 / 255).tolist() == [6, 6, 14, 14]


@pytest.mark.parametrize("tau", [0.2, 0.35, 0.6])
def test_max_box_acc_largest_region_is_the_paper_rule_at_the_next_grey_level(tau):
    # On maps in [0, 1] with one region at every threshold, the box of MaxBoxAcc (largest
    # contour) at tau is the paper's box at (int(255 tau) + 1) / 255, pixel for pixel: the
    # two differ by the 8-bit cut only (not by >= against >, box corners or contours).
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:48, 0:48] + 0.5
    maps, boxes = [], []
    for _ in range(20):
        cx, cy = rng.uniform(12, 36, 2)
        sigma = rng.uniform(4, 12)
        bump = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))
        maps.append((bump - bump.min()) / (bump.max() - bump.min()))
        x0, y0 = rng.uniform(0, 24, 2)
        boxes.append([x0, y0, x0 + rng.uniform(8, 24), y0 + rng.uniform(8, 24)])
    result = max_box_acc(np.stack(maps), boxes, iou_thresholds=(0.5,), cam_thresholds=(tau,),
                         multi_contour=False)
    paper = boxes_from_cams(np.stack(maps), (int(tau * 255) + 1) / 255)
    expected = [box_iou(b, g)[0, 0] for b, g in zip(paper, boxes)]
    np.testing.assert_array_equal(result.best_iou[:, 0], expected)
    at_tau = [box_iou(b, g)[0, 0] for b, g in zip(boxes_from_cams(np.stack(maps), tau), boxes)]
    assert not np.array_equal(at_tau, expected)  # at tau itself, some boxes are larger


def test_centre_gaussian_finds_any_centred_box():
    # Level sets of the centred Gaussian are centred ellipses with the image's aspect ratio:
    # some threshold fits every centred box of that shape closely.
    n, height, width = 6, 48, 64
    fractions = np.linspace(0.1, 0.8, n)
    gt = np.stack([center_box(height, width, f) for f in fractions])
    result = max_box_acc(center_gaussian_maps(n, height, width), gt)
    assert (result.best_iou.max(axis=1) >= 0.9).all()
    # But one threshold serves the whole dataset: boxes of different sizes need different
    # thresholds, so not every image is right at the strictest delta.
    assert result.max_box_acc[0] == 1.0 and result.max_box_acc[2] < 1.0
    # ... and no threshold makes it find an off-centre box.
    corner = np.tile([[0, 0, 16, 12]], (n, 1))
    assert max_box_acc(center_gaussian_maps(n, height, width), corner).mean == 0.0


@pytest.mark.parametrize("multi_contour", [True, False])
def test_max_box_acc_fast_equals_reference_on_random_maps(multi_contour):
    maps, boxes = smooth_maps(50, 64, seed=0)
    # Make the job harder: a quantised map with plateaus and a noisy one with many contours.
    rng = np.random.default_rng(1)
    maps[0] = np.round(maps[0] * 4)
    maps[1] += 0.2 * rng.random(maps[1].shape)
    fast = max_box_acc(maps, boxes, multi_contour=multi_contour)
    reference = max_box_acc_reference(maps, boxes, multi_contour=multi_contour)
    np.testing.assert_array_equal(fast.best_iou, reference.best_iou)
    np.testing.assert_array_equal(fast.box_acc, reference.box_acc)
    np.testing.assert_array_equal(fast.best_cam_threshold, reference.best_cam_threshold)
    assert fast.mean == reference.mean
    assert 0 < fast.mean < 1 and len(np.unique(fast.best_iou)) > 100  # not a trivial case


@pytest.mark.parametrize("protocol", ["clean", "wsolevaluation"])
def test_both_measures_from_one_tracing_equal_two_separate_calls(protocol):
    maps, boxes = smooth_maps(40, 48, seed=3)
    rng = np.random.default_rng(4)
    maps[0] = np.round(maps[0] * 4)              # plateaus
    maps[1] += 0.3 * rng.random(maps[1].shape)   # many contours
    maps[2] = 0.0                                # nothing above any cut
    for workers, size in ((None, None), (2, 64)):
        every, largest = max_box_acc_both(maps, boxes, workers=workers, size=size, protocol=protocol)
        separate = (max_box_acc(maps, boxes, size=size, protocol=protocol),
                    max_box_acc(maps, boxes, iou_thresholds=(0.5,), multi_contour=False, size=size,
                                protocol=protocol))
        for one, other in zip((every, largest), separate):
            np.testing.assert_array_equal(one.best_iou, other.best_iou)
            np.testing.assert_array_equal(one.box_acc, other.box_acc)
            assert (one.mean, one.multi_contour, one.protocol) == (other.mean, other.multi_contour, other.protocol)
        # the two differ on these maps: the largest contour is not every contour
        assert not np.array_equal(every.best_iou, largest.best_iou)
    with pytest.raises(ValueError, match="largest_iou_thresholds"):
        max_box_acc_both(maps, boxes, largest_iou_thresholds=(1.5,))


def test_max_box_acc_fast_equals_reference_on_a_fine_grid_with_threads():
    # 1000 thresholds map onto at most 256 cuts: the shared cuts must be reused right.
    maps, boxes = smooth_maps(6, 40, seed=2)
    taus = np.linspace(0, 1, 1000)
    reference = max_box_acc_reference(maps, boxes, cam_thresholds=taus)
    for workers in (None, 2):
        fast = max_box_acc(maps, boxes, cam_thresholds=taus, workers=workers)
        np.testing.assert_array_equal(fast.best_iou, reference.best_iou)
    assert (reference.best_iou[:, -1] == 0).all()  # tau = 1: nothing is above the maximum


def test_max_box_acc_traces_each_distinct_mask_once(monkeypatch):
    # Four grey levels (0, 85, 170, 255) leave three different non-empty masks over the 100
    # thresholds: the fast path traces three times, the loop a hundred.
    cam = np.zeros((12, 12))
    cam[1:11, 1:11], cam[3:9, 3:9], cam[5:7, 5:7] = 1, 2, 3
    calls = []
    real = localize.cv2.findContours

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(localize.cv2, "findContours", counting)
    fast = max_box_acc(cam[None], [[3, 3, 9, 9]])
    assert len(calls) == 3
    calls.clear()
    reference = max_box_acc_reference(cam[None], [[3, 3, 9, 9]])
    assert len(calls) == 100
    np.testing.assert_array_equal(fast.best_iou, reference.best_iou)
    # The 10x10 block (IoU 36/100) passes delta 0.3 from tau 0; the 6x6 core needs a cut of
    # at least 85, first reached at tau 0.34 (int(0.33 * 255) = 84).
    assert fast.best_cam_threshold.tolist() == [0.0, 0.34, 0.34]


def test_max_box_acc_accepts_tensors_and_lists_of_maps_of_different_sizes():
    cams = [torch.from_numpy(rectangle_map(20, 30, (1, 2, 10, 12))),
            rectangle_map(40, 16, (0, 30, 16, 40))]
    result = max_box_acc(cams, [torch.tensor([1, 2, 10, 12]), np.array([[0, 30, 16, 40]])])
    assert result.mean == 1.0
    assert "MaxBoxAccV2 100.0% over 2 images" in str(result)


@pytest.mark.parametrize("kwargs, match", [
    (dict(cams=np.zeros((5, 5))), r"\(N, H, W\).*cam\[None\]"),
    (dict(gt_boxes=[[0, 0, 1, 1]] * 3), "3 entries but there are 2 maps"),
    (dict(cam_thresholds=np.arange(0, 100)), r"cam_thresholds must lie in \[0, 1\]"),
    (dict(cam_thresholds=[-0.1, 0.5]), r"cam_thresholds must lie in \[0, 1\]"),
    (dict(iou_thresholds=(0.0, 0.5)), r"iou_thresholds must lie in \(0, 1\]"),
    (dict(gt_boxes=np.zeros((2, 3))), r"\(N, 4\), \(N, K, 4\)"),
    (dict(workers=0), "workers must be >= 1"),
])
def test_max_box_acc_input_errors(kwargs, match):
    args = dict(cams=np.zeros((2, 5, 5)), gt_boxes=[[0, 0, 1, 1]] * 2) | kwargs
    with pytest.raises(ValueError, match=match):
        max_box_acc(**args)


def test_max_box_acc_rejects_nan_naming_the_image():
    cams = np.zeros((3, 8, 8))
    cams[2, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"cams\[2\] contains NaN"):
        max_box_acc(cams, [[0, 0, 1, 1]] * 3)


# ---------------------------------------------------------------------------- pointing game

def test_pointing_game_hits_and_misses_by_hand():
    cams = np.zeros((3, 10, 10))
    cams[0, 2, 2] = 1   # inside the box
    cams[1, 9, 9] = 1   # sqrt(6^2 + 6^2) = 8.49 px from the box's last pixel (3, 3)
    cams[2, 3, 3] = 1   # on the box's last pixel: x1 = 4 is exclusive, pixel 3 is inside
    boxes = [[0, 0, 4, 4]] * 3
    rate, hits = pointing_game(cams, boxes, tolerance=0, reference_size=10, return_hits=True)
    assert hits.tolist() == [True, False, True] and rate == pytest.approx(2 / 3)
    assert pointing_game(cams, boxes, tolerance=8.4, reference_size=10) == pytest.approx(2 / 3)
    assert pointing_game(cams, boxes, tolerance=8.5, reference_size=10) == 1.0


def test_pointing_game_masks_agree_with_boxes():
    cams = np.zeros((2, 10, 10))
    cams[0, 7, 1] = 1
    cams[1, 0, 9] = 1
    masks = np.zeros((2, 10, 10), dtype=bool)
    masks[:, 0:4, 0:4] = True
    boxes = np.array([[0, 0, 4, 4]] * 2)
    for tolerance in (0, 3.9, 4.0, 6.0):
        assert (pointing_game(cams, masks, tolerance, reference_size=10)
                == pointing_game(cams, boxes, tolerance, reference_size=10)
                == pointing_game(cams, list(masks), tolerance, reference_size=10)
                == pointing_game(cams, boxes[:, None, :], tolerance, reference_size=10))
    # (7, 1) is 4 rows below the mask's last row 3: a miss at 3.9, a hit at 4.
    assert pointing_game(cams[:1], masks[:1], 3.9, reference_size=10) == 0.0
    assert pointing_game(cams[:1], masks[:1], 4.0, reference_size=10) == 1.0


def test_pointing_game_tolerance_scales_with_the_image():
    cams = np.zeros((2, 112, 112))
    cams[0, 50, 27] = 1  # 7 px left of the box
    cams[1, 50, 26] = 1  # 8 px left
    boxes = [[34, 40, 60, 60]] * 2
    # 15 px at 224 is 7.5 px at 112.
    _, hits = pointing_game(cams, boxes, tolerance=15, return_hits=True)
    assert hits.tolist() == [True, False]


def test_pointing_game_ties_take_the_first_maximum_in_raster_order():
    cam = np.zeros((10, 10))
    cam[1, 8] = cam[5, 0] = 1.0  # row 1 comes first
    assert pointing_game(cam[None], [[8, 1, 9, 2]], tolerance=0) == 1.0
    assert pointing_game(cam[None], [[0, 5, 1, 6]], tolerance=0) == 0.0


def test_pointing_game_empty_mask_is_a_miss_and_errors_are_clear():
    cams = np.ones((1, 6, 6))
    assert pointing_game(cams, np.zeros((1, 6, 6), dtype=bool)) == 0.0
    with pytest.raises(ValueError, match="mask 0 has shape"):
        pointing_game(cams, np.zeros((1, 5, 5), dtype=bool), kind="mask")
    with pytest.raises(ValueError, match="tolerance must be a distance >= 0"):
        pointing_game(cams, [[0, 0, 1, 1]], tolerance=-1)
    with pytest.raises(ValueError, match="kind must be"):
        pointing_game(cams, [[0, 0, 1, 1]], kind="boxes")
    with pytest.raises(ValueError, match="look alike; pass kind="):
        pointing_game(np.ones((1, 4, 4)), np.ones((1, 4, 4)))
    assert pointing_game(np.ones((1, 4, 4)), np.ones((1, 4, 4)), kind="mask") == 1.0


# ------------------------------------------------------------------------------- baselines

def test_centre_box_covers_the_asked_fraction():
    box = center_box(90, 160, 0.3)
    assert (box[2] - box[0]) * (box[3] - box[1]) == pytest.approx(0.3 * 90 * 160)
    assert (box[0] + box[2]) / 2 == 80 and (box[1] + box[3]) / 2 == 45
    assert center_box(100, 200, 1.0).tolist() == [0, 0, 200, 100]
    assert center_baseline_boxes(3, 100, 200, 0.25).tolist() == [[50, 25, 150, 75]] * 3
    with pytest.raises(ValueError, match=r"area_fraction must lie in \(0, 1\]"):
        center_box(10, 10, 0)


def test_centre_gaussian_maps_peak_in_the_middle_and_are_symmetric():
    maps = center_gaussian_maps(2, 31, 40)
    assert maps.shape == (2, 31, 40)
    assert np.unravel_index(np.argmax(maps[0]), maps[0].shape) == (15, 19)
    np.testing.assert_allclose(maps[0], maps[0][::-1, ::-1])
    with pytest.raises(ValueError, match="sigma must be > 0"):
        center_gaussian_maps(1, 4, 4, sigma=0)


# ---------------------------------------------------------------------------- area fraction

def test_cam_area_fraction_by_hand():
    cam = rectangle_map(10, 10, (0, 0, 6, 5))   # 30 px kept, 0 .. 5 x 0 .. 4
    mask = np.zeros((10, 10), dtype=bool)
    mask[0:5, 2:10] = True                       # 40 px object; 20 px shared
    result = cam_area_fraction(cam, mask)
    assert result.object_covered.tolist() == [0.5]
    assert result.area_ratio.tolist() == [0.75]
    assert result.precision.tolist() == [20 / 30]
    assert result.cam_area.tolist() == [0.3] and result.object_area.tolist() == [0.4]


def test_cam_area_fraction_batches_thresholds_and_empty_masks():
    cams = torch.from_numpy(np.stack([
        rectangle_map(8, 8, (0, 0, 8, 4), 0.3) + rectangle_map(8, 8, (0, 0, 2, 2), 0.7),
        np.ones((8, 8)),
    ]))
    masks = np.zeros((2, 8, 8))
    masks[0, 0:2, 0:2] = 1
    low = cam_area_fraction(cams, masks, threshold=0.2)
    high = cam_area_fraction(cams, masks, threshold=0.5)
    assert low.object_covered[0] == 1.0 and low.area_ratio[0] == 8.0   # 32 px for a 4-px object
    assert high.area_ratio[0] == 1.0 and high.precision[0] == 1.0      # only the core is left
    assert np.isnan(low.object_covered[1]) and low.precision[1] == 0.0  # no object
    assert low.means()["object_covered"] == 1.0                         # NaN ignored
    with pytest.raises(ValueError, match="2 masks for 1 maps|mask 0 has shape"):
        cam_area_fraction(cams[:1], masks)


def test_object_size_coverage_matches_a_per_image_loop_and_ignores_monotone_rescaling():
    rng = np.random.default_rng(3)
    cams = rng.random((6, 9, 11))
    masks = rng.random((6, 9, 11)) < rng.uniform(0.05, 0.6, size=(6, 1, 1))
    expected = []
    for cam, mask in zip(cams, masks):
        k = int(mask.sum())
        top = np.zeros(cam.size, bool)
        top[np.argsort(cam.ravel())[::-1][:k]] = True          # values are distinct: no ties
        expected.append((top & mask.ravel()).sum() / k)
    result = object_size_coverage(cams, masks)
    np.testing.assert_allclose(result, expected)
    # Threshold-free: any increasing transform of a map keeps its ranking, so the result.
    np.testing.assert_allclose(object_size_coverage(np.exp(5 * cams) + 2, masks), result)
    np.testing.assert_allclose(object_size_coverage(torch.from_numpy(cams), torch.from_numpy(masks)), result)


def test_object_size_coverage_breaks_ties_by_position_and_flags_empty_masks():
    flat = np.ones((1, 4, 4))                                    # every pixel ties
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 0, :2] = True                                        # the first two pixels, row-major
    assert object_size_coverage(flat, mask)[0] == 1.0
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 3, 2:] = True                                        # the last two pixels
    assert object_size_coverage(flat, mask)[0] == 0.0
    result = object_size_coverage(np.stack([flat[0], flat[0]]), np.stack([mask[0], np.zeros((4, 4), bool)]))
    assert result[0] == 0.0 and np.isnan(result[1])
    with pytest.raises(ValueError, match="same shape"):
        object_size_coverage(np.ones((2, 4, 4)), np.ones((2, 4, 5)))


# ------------------------------------------------------- max_box_acc, wsolevaluation protocol

def wsolevaluation_restated(cams: list[np.ndarray], gt_boxes: list[list[list[int]]],
                            cam_thresholds: np.ndarray, iou_percents: tuple[int, ...],
                            multi_contour: bool, size: tuple[int, int] | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Choe et al.'s evaluation, restated step by step from their code's logic (inference.py's
    resize and normalize_scoremap, evaluation.py's compute_bboxes_from_scoremaps,
    calculate_multiple_iou and BoxEvaluator): per image and threshold the best IoU, and per
    IoU threshold the number of correct images at each cam threshold (their accuracy is that
    count * 100 / N)."""
    best = np.zeros((len(cams), len(cam_thresholds)))
    correct = {p: np.zeros(len(cam_thresholds)) for p in iou_percents}
    for i, cam in enumerate(cams):
        cam = np.array(cam, dtype=np.float64)
        if size is not None:
            cam = cv2.resize(cam, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        if cam.min() == cam.max():
            cam = np.zeros_like(cam)
        else:
            cam -= cam.min()
            cam /= cam.max()
        height, width = cam.shape
        image = np.expand_dims((cam * 255).astype(np.uint8), 2)
        boxes_per_threshold = []
        for threshold in cam_thresholds:
            _, binary = cv2.threshold(image, int(threshold * np.max(image)), 255,
                                      cv2.THRESH_BINARY)
            contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
            if len(contours) == 0:
                boxes_per_threshold.append([[0, 0, 0, 0]])
                continue
            if not multi_contour:
                contours = [max(contours, key=cv2.contourArea)]
            found = []
            for contour in contours:
                x, y, w, h = cv2.boundingRect(contour)
                found.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
            boxes_per_threshold.append(found)
        for t, boxes in enumerate(boxes_per_threshold):
            ious = []
            for a in boxes:
                for b in gt_boxes[i]:
                    inter = (max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
                             * max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1))
                    union = ((a[2] - a[0] + 1) * (a[3] - a[1] + 1)
                             + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter)
                    ious.append(inter / union if union > 0 else 0.0)
            best[i, t] = max(ious)
        for p in iou_percents:
            correct[p][np.where(best[i] >= p / 100)[0]] += 1
    return best, np.array([correct[p] for p in iou_percents])


def wsolevaluation_maps() -> tuple[list[np.ndarray], list[list[list[int]]]]:
    """Rings (holes: RETR_TREE's extra contours), noise, several blobs, objects at the right and
    bottom edges (the W - 1 clip), a constant map and a corner object (the empty-threshold box)."""
    rng = np.random.default_rng(15)
    yy, xx = np.mgrid[0:40, 0:48] + 0.5
    maps, boxes = [], []
    for k in range(4):  # rings, some with a core
        cx, cy, radius = rng.uniform(14, 34), rng.uniform(12, 28), rng.uniform(5, 11)
        cam = np.exp(-((np.hypot(xx - cx, yy - cy) - radius) ** 2) / 6)
        if k % 2:
            cam += 0.6 * np.exp(-(np.hypot(xx - cx, yy - cy) ** 2) / 4)
        maps.append(cam)
        boxes.append([[int(cx - radius), int(cy - radius), int(cx + radius), int(cy + radius)]])
    for _ in range(4):  # several blobs, two ground-truth boxes
        cam = np.zeros((40, 48))
        for _ in range(3):
            cx, cy, s = rng.uniform(0, 48), rng.uniform(0, 40), rng.uniform(2, 8)
            cam += rng.uniform(0.3, 1) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
        maps.append(cam)
        x0, y0 = (int(v) for v in rng.integers(0, 30, 2))
        boxes.append([[x0, y0, x0 + 15, y0 + 9], [2, 3, 20, 30]])
    maps.append(rng.random((40, 48)))
    boxes.append([[10, 10, 30, 30]])
    edge = np.zeros((40, 48))
    edge[25:, 30:] = 1.0
    maps.append(edge)
    boxes.append([[30, 25, 47, 39]])
    maps.append(np.full((40, 48), 0.3))
    boxes.append([[0, 0, 1, 1]])
    corner = np.zeros((40, 48))
    corner[0, 0] = 1.0
    maps.append(corner)
    boxes.append([[0, 0, 0, 0]])
    return maps, boxes


@pytest.mark.parametrize("grid", ["every 0.05", "fine"])
@pytest.mark.parametrize("multi_contour", [True, False])
def test_max_box_acc_wsolevaluation_protocol_matches_their_algorithm(multi_contour, grid):
    maps, boxes = wsolevaluation_maps()
    taus = FINE_CAM_THRESHOLDS if grid == "fine" else np.arange(0, 1, 0.05)
    best, correct = wsolevaluation_restated(maps, boxes, taus, (30, 50, 70), multi_contour)
    for run in (max_box_acc, max_box_acc_reference):
        result = run(maps, boxes, (0.3, 0.5, 0.7), taus, multi_contour,
                     protocol="wsolevaluation")
        np.testing.assert_array_equal(result.best_iou, best)
        np.testing.assert_array_equal(np.round(result.box_acc.T * len(maps)), correct)
        np.testing.assert_array_equal(np.round(result.max_box_acc * len(maps)),
                                      correct.max(axis=1))
        assert result.protocol == "wsolevaluation" and "wsolevaluation" in str(result)
    # The clean default is a different number on these maps (one pixel wider boxes etc.).
    clean = max_box_acc(maps, boxes, (0.3, 0.5, 0.7), taus, multi_contour)
    assert not np.array_equal(clean.best_iou, best)


def test_the_fine_grid_cuts_an_8_bit_map_at_every_grey_level_and_the_default_at_100():
    assert len(FINE_CAM_THRESHOLDS) == 1000 and FINE_CAM_THRESHOLDS[-1] == pytest.approx(0.999)
    assert not FINE_CAM_THRESHOLDS.flags.writeable and not DEFAULT_CAM_THRESHOLDS.flags.writeable
    # a normalised map's maximum is 255: the cut of tau is int(tau * 255)
    assert set((FINE_CAM_THRESHOLDS * 255).astype(int)) == set(range(255))
    assert len(set((DEFAULT_CAM_THRESHOLDS * 255).astype(int))) == 100
    # at whatever maximum an 8-bit map reaches, the default grid's cuts are among the fine grid's
    # (so the fine grid never scores lower)
    for top in range(1, 256):
        assert set((DEFAULT_CAM_THRESHOLDS * top).astype(int)) <= set((FINE_CAM_THRESHOLDS * top).astype(int))


def test_max_box_acc_wsolevaluation_protocol_upsamples_bicubically():
    rng = np.random.default_rng(7)
    maps = [rng.random((7, 7)) for _ in range(5)] + [np.full((7, 7), 2.0)]
    boxes = [[[int(v) for v in (*rng.integers(0, 12, 2), *rng.integers(14, 27, 2))]]
             for _ in maps]
    taus = np.arange(0, 1, 0.1)
    best, correct = wsolevaluation_restated(maps, boxes, taus, (50,), True, size=(28, 28))
    result = max_box_acc(maps, boxes, (0.5,), taus, size=(28, 28), protocol="wsolevaluation",
                         workers=2)
    np.testing.assert_array_equal(result.best_iou, best)
    np.testing.assert_array_equal(np.round(result.box_acc[:, 0] * len(maps)), correct[0])
    reference = max_box_acc_reference(maps, boxes, (0.5,), taus, size=28,
                                      protocol="wsolevaluation")
    np.testing.assert_array_equal(reference.best_iou, best)
    # The clean protocol resizes bilinearly: the same as resizing first with box_from_cam's
    # resize, then scoring at full size.
    upsampled = [cv2.resize(m, (28, 28), interpolation=cv2.INTER_LINEAR) for m in maps]
    np.testing.assert_array_equal(max_box_acc(maps, boxes, (0.5,), taus, size=(28, 28)).best_iou,
                                  max_box_acc(upsampled, boxes, (0.5,), taus).best_iou)


def test_max_box_acc_protocol_is_checked():
    with pytest.raises(ValueError, match="protocol must be one of.*'wsolevaluation'"):
        max_box_acc(np.ones((1, 8, 8)), [[0, 0, 4, 4]], protocol="wsol")


def test_paired_box_iou_is_the_diagonal_of_box_iou():
    from cam_tutorial.localize import paired_box_iou

    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 50, size=(20, 4))
    boxes = np.concatenate([corners[:, :2], corners[:, :2] + corners[:, 2:]], axis=1)
    others = boxes[::-1] + 3.0
    assert np.array_equal(paired_box_iou(boxes, others), np.diag(box_iou(boxes, others)))
    with pytest.raises(ValueError, match="pairs boxes by index: got 20 and 3"):
        paired_box_iou(boxes, others[:3])


# ---------------------------------------------------------------------------------------------
# part_coverage: which parts of the object a map covers
# ---------------------------------------------------------------------------------------------

def _two_part_object() -> np.ndarray:
    parts = np.zeros((1, 6, 8), np.uint8)
    parts[0, 1:5, 1:3] = 1  # part 0: 8 pixels on the left
    parts[0, 1:5, 5:7] = 2  # part 1: 8 pixels on the right
    return parts


def test_part_coverage_counts_the_parts_a_peaky_map_covers() -> None:
    from cam_tutorial.localize import part_coverage

    parts = _two_part_object()
    peaky = np.zeros((1, 6, 8)); peaky[0, 1:5, 1:3] = 1.0; peaky[0, 2, 5] = 0.1  # 0.1 < 20% of max
    broad = np.zeros((1, 6, 8)); broad[0, 1:5, 1:3] = 1.0; broad[0, 1:5, 5:7] = 0.5
    found = part_coverage(peaky, parts, 2)
    assert found.covered.tolist() == [[1.0, 0.0]] and found.parts_covered.tolist() == [1]
    assert part_coverage(broad, parts, 2).parts_covered.tolist() == [2]
    # a lower threshold keeps the 0.1 pixel: 1 of part 1's 8 pixels
    assert part_coverage(peaky, parts, 2, 0.05).covered[0, 1] == pytest.approx(1 / 8)
    assert part_coverage(peaky, parts, 2, 0.05, min_share=0.1).parts_covered.tolist() == [2]


def test_part_coverage_at_the_object_size_and_the_peak() -> None:
    from cam_tutorial.localize import part_coverage

    parts = _two_part_object()
    cam = np.zeros((1, 6, 8)); cam[0, 1:5, 5:7] = 2.0; cam[0, 0, :] = 1.0; cam[0, 5, 0] = 3.0
    found = part_coverage(cam, parts, 2, threshold=None)  # the 16 highest pixels
    assert found.peak_part.tolist() == [-1]  # the maximum (3.0) is on the background
    # the 16 highest: the peak, part 1's 8 pixels, then the top row's 8 (1.0): none of part 0
    assert found.covered.tolist() == [[0.0, 1.0]]
    assert found.peak_shares(2).tolist() == [0.0, 0.0, 1.0]


def test_part_coverage_gives_nan_for_a_missing_part_and_refuses_bad_input() -> None:
    from cam_tutorial.localize import part_coverage

    parts = _two_part_object()
    parts[parts == 2] = 0
    found = part_coverage(np.ones((1, 6, 8)), parts, 2, counted=[0, 1])
    assert found.covered[0, 0] == 1.0 and np.isnan(found.covered[0, 1]) and found.parts_covered.tolist() == [1]
    assert np.isnan(found.mean_covered()[1])
    with pytest.raises(ValueError, match="part_maps have shape"):
        part_coverage(np.ones((1, 6, 8)), parts[:, :3], 2)
    with pytest.raises(ValueError, match=r"part labels must be integers in \[0, 1\]"):
        part_coverage(np.ones((1, 6, 8)), _two_part_object(), 1)
    with pytest.raises(ValueError, match="threshold must lie in"):
        part_coverage(np.ones((1, 6, 8)), parts, 2, 20)
    with pytest.raises(ValueError, match="counted parts"):
        part_coverage(np.ones((1, 6, 8)), parts, 2, counted=[2])
    with pytest.raises(ValueError, match="NaN|nan|finite"):
        part_coverage(np.full((1, 6, 8), np.nan), parts, 2)
