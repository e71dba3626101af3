"""Bad inputs to every public function of cam_tutorial.localize (the attack battery of issue 12).

Each error case asserts the exception type and a message fragment that names the problem, and
one that names the fix. Where an odd input has a correct answer (a torch tensor, a bool map, a
(4,) box, a list of maps), the case asserts that answer's value.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch

from cam_tutorial import localize as loc

NAN_MAP = np.full((12, 12), np.nan)
INF_MAP = np.zeros((12, 12))
INF_MAP[3, 3] = np.inf
GOOD_MAP = np.zeros((12, 12))
GOOD_MAP[2:6, 3:9] = 1.0
GOOD_BOX = [3, 2, 9, 6]
GOOD_MASK = np.zeros((12, 12), dtype=bool)
GOOD_MASK[2:6, 3:9] = True
NAN_MASK = np.where(GOOD_MASK, 1.0, np.nan)


def batch(m: np.ndarray, n: int = 2) -> np.ndarray:
    return np.stack([m] * n)


# (id, call, exception, fragments the message must contain: the problem, then the fix)
ERROR_CASES: list[tuple[str, Callable[[], Any], type, tuple[str, ...]]] = [
    # ---- NaN / Inf maps: every function that takes maps
    ("box_from_cam NaN", lambda: loc.box_from_cam(NAN_MAP), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("box_from_cam Inf", lambda: loc.box_from_cam(INF_MAP), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("box_from_cam NaN tensor", lambda: loc.box_from_cam(torch.from_numpy(NAN_MAP)), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("boxes_from_cams NaN", lambda: loc.boxes_from_cams(batch(NAN_MAP)), ValueError,
     ("cams[0] contains NaN", "np.nan_to_num")),
    ("released NaN", lambda: loc.box_from_cam_released_code(NAN_MAP), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("released Inf", lambda: loc.box_from_cam_released_code(INF_MAP), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("max_box_acc NaN second image",
     lambda: loc.max_box_acc(np.stack([GOOD_MAP, NAN_MAP]), [GOOD_BOX, GOOD_BOX]), ValueError,
     ("cams[1] contains NaN", "np.nan_to_num")),
    ("max_box_acc_reference Inf",
     lambda: loc.max_box_acc_reference(batch(INF_MAP), [GOOD_BOX, GOOD_BOX]), ValueError,
     ("cams[0] contains NaN or infinity", "np.nan_to_num")),
    ("pointing_game NaN", lambda: loc.pointing_game(batch(NAN_MAP), [GOOD_BOX] * 2), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("cam_area_fraction NaN", lambda: loc.cam_area_fraction(NAN_MAP, GOOD_MASK), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    # issue 10: this one returned [1.] before
    ("object_size_coverage NaN",
     lambda: loc.object_size_coverage(batch(NAN_MAP, 1), batch(GOOD_MASK, 1)), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("object_size_coverage Inf one map",
     lambda: loc.object_size_coverage(INF_MAP, GOOD_MASK), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("object_size_coverage -Inf tensor",
     lambda: loc.object_size_coverage(torch.full((1, 4, 4), -np.inf), torch.ones(1, 4, 4)),
     ValueError, ("NaN or infinity", "np.nan_to_num")),
    # ---- NaN masks and boxes
    ("object_size_coverage NaN mask",
     lambda: loc.object_size_coverage(GOOD_MAP, NAN_MASK), ValueError,
     ("mask 0 contains NaN", "np.nan_to_num(mask)")),
    ("cam_area_fraction NaN mask", lambda: loc.cam_area_fraction(GOOD_MAP, NAN_MASK),
     ValueError, ("mask 0 contains NaN", "np.nan_to_num(mask)")),
    ("pointing_game NaN mask",
     lambda: loc.pointing_game(batch(GOOD_MAP, 1), batch(NAN_MASK, 1), kind="mask"),
     ValueError, ("mask 0 contains NaN", "np.nan_to_num(mask)")),
    ("box_iou NaN box", lambda: loc.box_iou([np.nan, 0, 1, 1], GOOD_BOX), ValueError,
     ("boxes_a contains NaN", "drop the images")),
    ("max_box_acc NaN gt box",
     lambda: loc.max_box_acc(batch(GOOD_MAP, 1), [[0, 0, np.inf, 4]]), ValueError,
     ("gt_boxes[0] contains NaN or infinity", "drop the images")),
    # ---- wrong ranks
    ("box_from_cam 3-D", lambda: loc.box_from_cam(batch(GOOD_MAP, 1)), ValueError,
     ("one 2-D map", "cam[0]")),
    ("box_from_cam 1-D", lambda: loc.box_from_cam(np.ones(5)), ValueError,
     ("one 2-D map", "batch function")),
    ("released 3-D", lambda: loc.box_from_cam_released_code(batch(GOOD_MAP)), ValueError,
     ("one 2-D map", "cam[0]")),
    ("boxes_from_cams 2-D", lambda: loc.boxes_from_cams(GOOD_MAP), ValueError,
     ("(N, H, W)", "cam[None]")),
    ("max_box_acc 4-D", lambda: loc.max_box_acc(GOOD_MAP[None, None], [GOOD_BOX]), ValueError,
     ("(N, H, W)", "cams[:, 0]")),
    ("max_box_acc 5-D", lambda: loc.max_box_acc(np.ones((1, 1, 1, 4, 4)), [GOOD_BOX]),
     ValueError, ("(N, H, W)", "np.stack")),
    ("pointing_game 2-D", lambda: loc.pointing_game(GOOD_MAP, [GOOD_BOX]), ValueError,
     ("(N, H, W)", "cam[None]")),
    ("object_size_coverage 4-D",
     lambda: loc.object_size_coverage(GOOD_MAP[None, None], GOOD_MASK[None, None]), ValueError,
     ("(N, H, W)", "cams[:, 0]")),
    ("cam_area_fraction masks 1-D", lambda: loc.cam_area_fraction(batch(GOOD_MAP), np.ones(4)),
     ValueError, ("masks must be (N, H, W)", "one mask per map")),
    ("box_iou (4, 1)", lambda: loc.box_iou(np.ones((4, 1)), GOOD_BOX), ValueError,
     ("(K, 4)", "one row [x0, y0, x1, y1]")),
    ("box_iou (2, 2, 4)", lambda: loc.box_iou(np.ones((2, 2, 4)), GOOD_BOX), ValueError,
     ("(K, 4)", "one row [x0, y0, x1, y1]")),
    ("localization_accuracy scores not labels",
     lambda: loc.localization_accuracy(np.ones((2, 5)), [1, 2], [GOOD_BOX] * 2, [GOOD_BOX] * 2),
     ValueError, ("must be 1-D", "argmax(1)")),
    ("max_box_acc gt (N, 2)", lambda: loc.max_box_acc(batch(GOOD_MAP), np.ones((2, 2))),
     ValueError, ("gt_boxes must be (N, 4)", "(K_i, 4)")),
    # ---- empty inputs
    ("box_from_cam empty", lambda: loc.box_from_cam(np.zeros((0, 5))), ValueError,
     ("is empty", "at least one pixel")),
    ("boxes_from_cams empty list", lambda: loc.boxes_from_cams([]), ValueError,
     ("cams is empty", "at least one map")),
    ("max_box_acc no maps", lambda: loc.max_box_acc(np.zeros((0, 4, 4)), []), ValueError,
     ("cams is empty", "at least one map")),
    ("max_box_acc image without box",
     lambda: loc.max_box_acc(batch(GOOD_MAP, 1), [np.zeros((0, 4))]), ValueError,
     ("gt_boxes[0] holds no box", "at least one")),
    ("localization_accuracy empty", lambda: loc.localization_accuracy([], [], [], []),
     ValueError, ("no predictions", "at least one image")),
    ("object_size_coverage empty", lambda: loc.object_size_coverage([], []), ValueError,
     ("cams is empty", "at least one map")),
    ("max_box_acc empty thresholds",
     lambda: loc.max_box_acc(batch(GOOD_MAP, 1), [GOOD_BOX], cam_thresholds=[]), ValueError,
     ("non-empty 1-D sequence", "one number or a flat list")),
    ("released empty levels", lambda: loc.box_from_cam_released_code(GOOD_MAP, levels=()),
     ValueError, ("levels must be grey levels", "0..254")),
    # ---- boxes with x1 < x0, and (x, y, w, h) given as corners
    ("box_iou x1 < x0", lambda: loc.box_iou([[5, 0, 2, 4]], GOOD_BOX), ValueError,
     ("x1 < x0", "(x, y, x + w, y + h)")),
    ("box_iou xywh read as corners", lambda: loc.box_iou([[6, 6, 3, 2]], GOOD_BOX), ValueError,
     ("x1 < x0 or y1 < y0", "(x, y, x + w, y + h)")),
    ("localization_accuracy pred xywh",
     lambda: loc.localization_accuracy([1], [1], [[6, 6, 3, 2]], [GOOD_BOX]), ValueError,
     ("pred_boxes[0]", "(x, y, x + w, y + h)")),
    ("max_box_acc gt xywh",
     lambda: loc.max_box_acc(batch(GOOD_MAP, 1), [[[3, 2, 9, 6], [8, 8, 2, 2]]]), ValueError,
     ("gt_boxes[0][1]", "(x, y, x + w, y + h)")),
    ("pointing_game box y1 < y0",
     lambda: loc.pointing_game(batch(GOOD_MAP, 1), [[0, 5, 4, 1]], kind="box"), ValueError,
     ("y1 < y0", "(x, y, x + w, y + h)")),
    # ---- thresholds given as percentages
    ("box_from_cam threshold 20", lambda: loc.box_from_cam(GOOD_MAP, 20), ValueError,
     ("fractions, not percentages", "divide percentages by 100")),
    ("boxes_from_cams threshold -0.2", lambda: loc.boxes_from_cams(batch(GOOD_MAP), -0.2),
     ValueError, ("threshold must lie in [0, 1]", "fractions, not percentages")),
    ("box_from_cam threshold NaN", lambda: loc.box_from_cam(GOOD_MAP, float("nan")),
     ValueError, ("threshold must lie in [0, 1]", "fractions")),
    ("max_box_acc iou 50", lambda: loc.max_box_acc(batch(GOOD_MAP, 1), [GOOD_BOX],
                                                   iou_thresholds=(30, 50, 70)), ValueError,
     ("iou_thresholds must lie in (0, 1]", "divide percentages by 100")),
    ("max_box_acc iou 0", lambda: loc.max_box_acc(batch(GOOD_MAP, 1), [GOOD_BOX],
                                                  iou_thresholds=(0.0,)), ValueError,
     ("iou_thresholds must lie in (0, 1]", "fractions")),
    ("max_box_acc_reference taus 0..99",
     lambda: loc.max_box_acc_reference(batch(GOOD_MAP, 1), [GOOD_BOX],
                                       cam_thresholds=np.arange(100)), ValueError,
     ("cam_thresholds must lie in [0, 1]", "divide percentages by 100")),
    ("localization_accuracy iou 50",
     lambda: loc.localization_accuracy([1], [1], [GOOD_BOX], [GOOD_BOX], iou_threshold=50),
     ValueError, ("iou_threshold must lie in (0, 1]", "divide percentages by 100")),
    ("cam_area_fraction threshold 20", lambda: loc.cam_area_fraction(GOOD_MAP, GOOD_MASK, 20),
     ValueError, ("threshold must lie in [0, 1]", "divide percentages by 100")),
    ("center_box area 50", lambda: loc.center_box(10, 10, 50), ValueError,
     ("area_fraction must lie in (0, 1]", "divide percentages by 100")),
    ("center_baseline_boxes area 0", lambda: loc.center_baseline_boxes(2, 10, 10, 0.0),
     ValueError, ("area_fraction must lie in (0, 1]", "fractions")),
    ("released levels as fractions",
     lambda: loc.box_from_cam_released_code(GOOD_MAP, levels=(0.08, 0.39, 0.43)), ValueError,
     ("levels must be grey levels", "not fractions of the maximum")),
    ("released level 255", lambda: loc.box_from_cam_released_code(GOOD_MAP, levels=(20, 255)),
     ValueError, ("levels must be grey levels", "integers in 0..254")),
    ("pointing_game tolerance < 0",
     lambda: loc.pointing_game(batch(GOOD_MAP, 1), [GOOD_BOX], tolerance=-1), ValueError,
     ("tolerance must be a distance >= 0", "reference_size")),
    ("pointing_game tolerance inf",
     lambda: loc.pointing_game(batch(GOOD_MAP, 1), [GOOD_BOX], tolerance=np.inf), ValueError,
     ("tolerance must be a distance >= 0", "finite")),
    ("center_gaussian_maps sigma inf", lambda: loc.center_gaussian_maps(1, 4, 4, np.inf),
     ValueError, ("sigma must be > 0 and finite", "e.g. 0.25")),
    ("center_gaussian_maps sigma 0", lambda: loc.center_gaussian_maps(1, 4, 4, 0.0),
     ValueError, ("sigma must be > 0 and finite", "e.g. 0.25")),
    # ---- size mismatches and bad counts
    ("pointing_game mask size", lambda: loc.pointing_game(
        batch(GOOD_MAP, 1), np.zeros((1, 10, 10), bool), kind="mask"), ValueError,
     ("mask 0 has shape (10, 10) but its map has (12, 12)", "resize the map")),
    ("pointing_game mask count", lambda: loc.pointing_game(
        batch(GOOD_MAP, 2), batch(GOOD_MASK, 3), kind="mask"), ValueError,
     ("3 masks for 2 maps", "one per map")),
    ("pointing_game 4 px wide auto", lambda: loc.pointing_game(
        np.ones((1, 4, 4)), np.ones((1, 4, 4))), ValueError,
     ("masks and boxes look alike", "kind='mask'")),
    ("pointing_game bad kind", lambda: loc.pointing_game(
        batch(GOOD_MAP, 1), [GOOD_BOX], kind="boxes"), ValueError,
     ("kind must be", "'box'")),
    ("pointing_game reference_size 0", lambda: loc.pointing_game(
        batch(GOOD_MAP, 1), [GOOD_BOX], reference_size=0), ValueError,
     ("reference_size", "whole number >= 1")),
    ("cam_area_fraction mask size", lambda: loc.cam_area_fraction(GOOD_MAP, GOOD_MASK[:, :10]),
     ValueError, ("mask 0 has shape (12, 10) but its map has (12, 12)", "resize the map")),
    ("cam_area_fraction mask count", lambda: loc.cam_area_fraction(
        batch(GOOD_MAP, 2), batch(GOOD_MASK, 1)), ValueError, ("1 masks for 2 maps", "one per")),
    ("object_size_coverage mask size", lambda: loc.object_size_coverage(
        batch(GOOD_MAP), np.ones((2, 12, 5))), ValueError,
     ("same shape as its map", "resize the map")),
    ("object_size_coverage mask count", lambda: loc.object_size_coverage(
        batch(GOOD_MAP, 3), batch(GOOD_MASK, 2)), ValueError, ("2 masks for 3 maps", "one per")),
    ("object_size_coverage maps of two sizes", lambda: loc.object_size_coverage(
        [GOOD_MAP, np.ones((4, 4))], [GOOD_MASK, np.ones((4, 4))]), ValueError,
     ("maps of one size", "resize them")),
    ("max_box_acc gt count", lambda: loc.max_box_acc(batch(GOOD_MAP, 3), [GOOD_BOX] * 2),
     ValueError, ("gt_boxes has 2 entries but there are 3 maps", "one entry")),
    ("localization_accuracy lengths", lambda: loc.localization_accuracy(
        [1, 2], [1], [GOOD_BOX] * 2, [GOOD_BOX] * 2), ValueError,
     ("lengths differ", "one of each per image")),
    ("localization_accuracy NaN label", lambda: loc.localization_accuracy(
        [1.0, np.nan], [1, 2], [GOOD_BOX] * 2, [GOOD_BOX] * 2), ValueError,
     ("whole class indices", "argmax(1)")),
    ("localization_accuracy probabilities", lambda: loc.localization_accuracy(
        [0.9, 0.2], [1, 0], [GOOD_BOX] * 2, [GOOD_BOX] * 2), ValueError,
     ("whole class indices", "argmax(1)")),
    ("box_from_cam size 0", lambda: loc.box_from_cam(GOOD_MAP, size=(0, 10)), ValueError,
     ("size must be (height, width)", "size=(H, W)")),
    ("box_from_cam size 3 values", lambda: loc.box_from_cam(GOOD_MAP, size=(10, 10, 3)),
     ValueError, ("size must be (height, width)", "size=(H, W)")),
    ("released size half pixel", lambda: loc.box_from_cam_released_code(GOOD_MAP, size=(20.5, 20)),
     ValueError, ("whole pixels", "size=(H, W)")),
    ("released map too small", lambda: loc.box_from_cam_released_code(np.ones((4, 4))),
     ValueError, ("smaller than 2 * edge_margin - 1 = 9 px", "edge_margin=0")),
    ("released 1 x 1 map", lambda: loc.box_from_cam_released_code(np.ones((1, 1))), ValueError,
     ("the map is 1 x 1 px", "size=(height, width)")),
    ("released margin -1", lambda: loc.box_from_cam_released_code(GOOD_MAP, edge_margin=-1),
     ValueError, ("edge_margin must be an int >= 0", "pixels")),
    ("released margin 2.5", lambda: loc.box_from_cam_released_code(GOOD_MAP, edge_margin=2.5),
     ValueError, ("edge_margin must be an int >= 0", "pixels")),
    ("max_box_acc unknown protocol", lambda: loc.max_box_acc(
        batch(GOOD_MAP, 1), [GOOD_BOX], protocol="choe"), ValueError,
     ("protocol must be one of", "'wsolevaluation' Choe et al.'s code's")),
    ("max_box_acc_reference unknown protocol", lambda: loc.max_box_acc_reference(
        batch(GOOD_MAP, 1), [GOOD_BOX], protocol=None), ValueError,
     ("protocol must be one of", "'clean' is this module's definition")),
    ("max_box_acc size 0", lambda: loc.max_box_acc(batch(GOOD_MAP, 1), [GOOD_BOX], size=(0, 8),
                                                   protocol="wsolevaluation"), ValueError,
     ("size must be (height, width)", "size=(H, W)")),
    ("max_box_acc workers 0", lambda: loc.max_box_acc(batch(GOOD_MAP, 1), [GOOD_BOX], workers=0),
     ValueError, ("workers must be >= 1", "None for the calling thread")),
    ("center_box height 0", lambda: loc.center_box(0, 10), ValueError,
     ("height must be a whole number >= 1", "got 0")),
    ("center_box width NaN", lambda: loc.center_box(10, float("nan")), ValueError,
     ("width must be a whole number >= 1", "nan")),
    ("center_baseline_boxes n 0", lambda: loc.center_baseline_boxes(0, 10, 10), ValueError,
     ("n (the number of images) must be a whole number >= 1", "got 0")),
    ("center_gaussian_maps n 2.5", lambda: loc.center_gaussian_maps(2.5, 4, 4), ValueError,
     ("n (the number of images) must be a whole number >= 1", "2.5")),
    # ---- wrong types
    ("box_from_cam strings", lambda: loc.box_from_cam(np.array([["a", "b"], ["c", "d"]])),
     TypeError, ("must hold numbers", "dtype=float")),
    ("box_iou strings", lambda: loc.box_iou(np.array([["0", "0", "1", "1"]]), GOOD_BOX),
     TypeError, ("must hold numbers", "dtype=float")),
    ("cam_area_fraction string mask", lambda: loc.cam_area_fraction(
        np.ones((2, 2)), np.array([["a", "b"], ["c", "d"]])), TypeError,
     ("must hold numbers or booleans", "dtype")),
    ("box_from_cam threshold string", lambda: loc.box_from_cam(GOOD_MAP, "20%"), ValueError,
     ("threshold must be a number", "[0, 1]")),
]


@pytest.mark.parametrize("call, error, fragments",
                         [case[1:] for case in ERROR_CASES], ids=[case[0] for case in ERROR_CASES])
def test_bad_input_raises_a_clear_error(call, error, fragments):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def _gaussian_batch() -> np.ndarray:
    yy, xx = np.mgrid[0:12, 0:12] + 0.5
    return np.stack([np.exp(-((xx - 5) ** 2 + (yy - 4) ** 2) / 8),
                     np.exp(-((xx - 8) ** 2 + (yy - 8) ** 2) / 4)])


# (id, call, expected value): odd but valid inputs have one right answer.
VALUE_CASES: list[tuple[str, Callable[[], Any], Any]] = [
    ("box_from_cam tensor", lambda: loc.box_from_cam(torch.from_numpy(GOOD_MAP)).tolist(),
     GOOD_BOX),
    ("box_from_cam tensor with grad",
     lambda: loc.box_from_cam(torch.from_numpy(GOOD_MAP).requires_grad_()).tolist(), GOOD_BOX),
    ("box_from_cam float32 tensor",
     lambda: loc.box_from_cam(torch.from_numpy(GOOD_MAP).float()).tolist(), GOOD_BOX),
    ("box_from_cam bool map", lambda: loc.box_from_cam(GOOD_MAP > 0).tolist(), GOOD_BOX),
    ("box_from_cam int map", lambda: loc.box_from_cam(GOOD_MAP.astype(int)).tolist(), GOOD_BOX),
    ("box_from_cam threshold 1 keeps the maximum", lambda: loc.box_from_cam(GOOD_MAP, 1).tolist(),
     GOOD_BOX),
    ("box_from_cam 1 x 1 map", lambda: loc.box_from_cam(np.ones((1, 1))).tolist(), [0, 0, 1, 1]),
    ("box_from_cam size as one int", lambda: loc.box_from_cam(GOOD_MAP, size=24).tolist(),
     loc.box_from_cam(GOOD_MAP, size=(24, 24)).tolist()),
    ("boxes_from_cams list of two sizes",
     lambda: loc.boxes_from_cams([GOOD_MAP, np.ones((3, 5))]).tolist(),
     [GOOD_BOX, [0, 0, 5, 3]]),
    ("released tensor", lambda: loc.box_from_cam_released_code(
        torch.from_numpy(np.pad(GOOD_MAP, 10))).tolist(), [13, 12, 19, 16]),
    ("released 9 x 9 map is allowed", lambda: loc.box_from_cam_released_code(
        np.ones((9, 9))).tolist(), [0, 0, 4, 4]),
    ("released small map upsampled", lambda: loc.box_from_cam_released_code(
        np.ones((2, 2)), size=(20, 20)).tolist(), [0, 0, 15, 15]),
    ("released numpy int levels", lambda: loc.box_from_cam_released_code(
        np.pad(GOOD_MAP, 10), levels=np.array([20], dtype=np.int16)).tolist(), [13, 12, 19, 16]),
    ("box_iou one box (4,)", lambda: loc.box_iou(GOOD_BOX, GOOD_BOX).tolist(), [[1.0]]),
    ("box_iou tensors", lambda: loc.box_iou(torch.tensor([[0, 0, 2, 2]]),
                                            torch.tensor([[1, 0, 3, 2]])).tolist(),
     [[1 / 3]]),
    ("box_iou no boxes", lambda: loc.box_iou(np.zeros((0, 4)), GOOD_BOX).shape, (0, 1)),
    ("box_iou empty boxes", lambda: loc.box_iou([[2, 2, 2, 2]], [[2, 2, 2, 2]]).tolist(),
     [[0.0]]),
    ("localization_accuracy float labels",
     lambda: loc.localization_accuracy(np.array([1.0, 2.0]), torch.tensor([1, 0]),
                                       [GOOD_BOX] * 2, [GOOD_BOX] * 2).top1_loc, 0.5),
    ("max_box_acc tensor equals numpy",
     lambda: loc.max_box_acc(torch.from_numpy(_gaussian_batch()),
                             torch.tensor([[3, 2, 8, 7], [6, 6, 11, 11]])).box_acc.tolist(),
     loc.max_box_acc(_gaussian_batch(), [[3, 2, 8, 7], [6, 6, 11, 11]]).box_acc.tolist()),
    ("max_box_acc tensor thresholds",
     lambda: loc.max_box_acc(
         _gaussian_batch(), [[3, 2, 8, 7], [6, 6, 11, 11]],
         cam_thresholds=torch.tensor([0.1, 0.5], dtype=torch.float64)).cam_thresholds.tolist(),
     [0.1, 0.5]),
    ("max_box_acc size already the map's", lambda: loc.max_box_acc(
        _gaussian_batch(), [[3, 2, 8, 7], [6, 6, 11, 11]], size=12,
        protocol="wsolevaluation").best_iou.tolist(),
     loc.max_box_acc(_gaussian_batch(), [[3, 2, 8, 7], [6, 6, 11, 11]],
                     protocol="wsolevaluation").best_iou.tolist()),
    ("pointing_game tensor masks", lambda: loc.pointing_game(
        torch.from_numpy(batch(GOOD_MAP, 1)), torch.from_numpy(batch(GOOD_MASK, 1)),
        tolerance=0), 1.0),
    ("pointing_game list of (4,) boxes", lambda: loc.pointing_game(
        batch(GOOD_MAP, 1), [np.array(GOOD_BOX)], tolerance=0), 1.0),
    ("cam_area_fraction tensors", lambda: float(loc.cam_area_fraction(
        torch.from_numpy(GOOD_MAP), torch.from_numpy(GOOD_MASK)).object_covered[0]), 1.0),
    ("cam_area_fraction 0/1 float mask", lambda: float(loc.cam_area_fraction(
        GOOD_MAP, GOOD_MASK.astype(float)).precision[0]), 1.0),
    ("object_size_coverage list of maps", lambda: loc.object_size_coverage(
        [GOOD_MAP, GOOD_MAP[::-1]], [GOOD_MASK, GOOD_MASK]).tolist(), [1.0, 0.0]),
    ("object_size_coverage one map tensor", lambda: loc.object_size_coverage(
        torch.from_numpy(GOOD_MAP), torch.from_numpy(GOOD_MASK)).tolist(), [1.0]),
    ("center_box numpy ints", lambda: loc.center_box(np.int64(10), np.int32(20), 0.25).tolist(),
     [5.0, 2.5, 15.0, 7.5]),
    ("center_gaussian_maps shape", lambda: loc.center_gaussian_maps(2.0, 3, 5).shape, (2, 3, 5)),
]


@pytest.mark.parametrize("call, expected", [case[1:] for case in VALUE_CASES],
                         ids=[case[0] for case in VALUE_CASES])
def test_odd_but_valid_input_gives_the_right_value(call, expected):
    result = call()
    if isinstance(expected, float):
        assert result == pytest.approx(expected)
    elif isinstance(expected, list) and expected and isinstance(expected[0], list) \
            and isinstance(expected[0][0], float):
        np.testing.assert_allclose(result, expected)
    else:
        assert result == expected
