"""Tests of cam_tutorial.boxes: IoU, the paper's box rule, localisation accuracy and the
baselines, on answers known by hand."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from cam_tutorial.boxes import (
    box_from_cam,
    box_iou,
    boxes_from_cams,
    center_gaussian_maps,
    localization_accuracy,
    resize_map,
)
from tests.localization_inputs import rectangle_map


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


def test_resize_map_resizes_the_float_map_bilinearly():
    # OpenCV's bilinear (half-pixel centres) turns [[1, 0], [0, 0]] into a 4x4 map whose
    # values >= 0.2 are 1, 0.75, 0.5625 and two 0.25s: the top-left 3x3 corner, less its
    # two 0.1875 pixels, whose box is (0, 0, 3, 3).
    cam = np.array([[1.0, 0.0], [0.0, 0.0]])
    assert box_from_cam(resize_map(cam, (4, 4))).tolist() == [0, 0, 3, 3]


def test_boxes_from_cams_batch_and_torch():
    cams = torch.from_numpy(np.stack([rectangle_map(10, 10, (0, 0, 3, 3)),
                                      rectangle_map(10, 10, (5, 2, 9, 10))]))
    assert boxes_from_cams(cams).tolist() == [[0, 0, 3, 3], [5, 2, 9, 10]]


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


def test_localization_accuracy_input_errors():
    with pytest.raises(ValueError, match="lengths differ"):
        localization_accuracy([0, 1], [0], [[0, 0, 1, 1], [0, 0, 1, 1]], [[0, 0, 1, 1]] * 2)
    with pytest.raises(ValueError, match="gt_boxes has 1 entries but there are 2"):
        localization_accuracy([0, 1], [0, 1], [[0, 0, 1, 1]] * 2, [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="1-D"):
        localization_accuracy(np.zeros((2, 5)), [0, 1], [[0, 0, 1, 1]] * 2, [[0, 0, 1, 1]] * 2)


def test_constant_map_under_the_paper_rule_scores_as_the_whole_image_centre_box():
    # A constant map says "everywhere": the paper's rule gives the whole image, which is the
    # centre box covering all of it, so the two score the same on any ground truth.
    rng = np.random.default_rng(3)
    n, height, width = 12, 20, 30
    x0, y0 = rng.uniform(0, 6, n), rng.uniform(0, 4, n)
    gt = np.stack([x0, y0, x0 + rng.uniform(12, 24, n), y0 + rng.uniform(8, 16, n)], axis=1)
    labels = np.zeros(n, dtype=int)
    from_constant = localization_accuracy(labels, labels,
                                          boxes_from_cams(np.full((n, height, width), 0.4)), gt)
    from_centre = localization_accuracy(labels, labels,
                                        np.tile([[0, 0, width, height]], (n, 1)), gt)
    np.testing.assert_array_equal(from_constant.ious, from_centre.ious)
    np.testing.assert_allclose(from_constant.ious, (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
                               / (height * width))  # IoU with the whole image: area fraction
    assert 0 < from_constant.gt_known_loc < 1  # a real comparison, not 0 == 0


# ------------------------------------------------------------------------------- baselines

def test_centre_gaussian_maps_peak_in_the_middle_and_are_symmetric():
    maps = center_gaussian_maps(2, 31, 40)
    assert maps.shape == (2, 31, 40)
    assert np.unravel_index(np.argmax(maps[0]), maps[0].shape) == (15, 19)
    np.testing.assert_allclose(maps[0], maps[0][::-1, ::-1])
    with pytest.raises(ValueError, match="sigma must be > 0"):
        center_gaussian_maps(1, 4, 4, sigma=0)
