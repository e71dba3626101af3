"""Bad inputs to every public function of cam_tutorial.boxes (the attack battery of issue 12).

Each error case asserts the exception type and a message fragment that names the problem, and
one that names the fix. Where an odd input has a correct answer (a torch tensor, a bool map, a
(4,) box, a list of maps), the case asserts that answer's value.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch

from cam_tutorial.boxes import (
    box_from_cam,
    box_iou,
    boxes_from_cams,
    center_gaussian_maps,
    localization_accuracy,
)
from tests.localization_inputs import (
    GOOD_BOX, GOOD_MAP, INF_MAP, NAN_MAP,
    assert_clear_error,
    assert_right_value,
    batch,
)

# (id, call, exception, fragments the message must contain: the problem, then the fix)
ERROR_CASES: list[tuple[str, Callable[[], Any], type, tuple[str, ...]]] = [
    # ---- NaN / Inf maps: every function that takes maps
    ("box_from_cam NaN", lambda: box_from_cam(NAN_MAP), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("box_from_cam Inf", lambda: box_from_cam(INF_MAP), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("box_from_cam NaN tensor", lambda: box_from_cam(torch.from_numpy(NAN_MAP)), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("boxes_from_cams NaN", lambda: boxes_from_cams(batch(NAN_MAP)), ValueError,
     ("cams[0] contains NaN", "np.nan_to_num")),
    # ---- NaN masks and boxes
    ("box_iou NaN box", lambda: box_iou([np.nan, 0, 1, 1], GOOD_BOX), ValueError,
     ("boxes_a contains NaN", "drop the images")),
    # ---- wrong ranks
    ("box_from_cam 3-D", lambda: box_from_cam(batch(GOOD_MAP, 1)), ValueError,
     ("one 2-D map", "cam[0]")),
    ("box_from_cam 1-D", lambda: box_from_cam(np.ones(5)), ValueError,
     ("one 2-D map", "batch function")),
    ("boxes_from_cams 2-D", lambda: boxes_from_cams(GOOD_MAP), ValueError,
     ("(N, H, W)", "cam[None]")),
    ("box_iou (4, 1)", lambda: box_iou(np.ones((4, 1)), GOOD_BOX), ValueError,
     ("(K, 4)", "one row [x0, y0, x1, y1]")),
    ("box_iou (2, 2, 4)", lambda: box_iou(np.ones((2, 2, 4)), GOOD_BOX), ValueError,
     ("(K, 4)", "one row [x0, y0, x1, y1]")),
    ("localization_accuracy scores not labels",
     lambda: localization_accuracy(np.ones((2, 5)), [1, 2], [GOOD_BOX] * 2, [GOOD_BOX] * 2),
     ValueError, ("must be 1-D", "argmax(1)")),
    # ---- empty inputs
    ("box_from_cam empty", lambda: box_from_cam(np.zeros((0, 5))), ValueError,
     ("is empty", "at least one pixel")),
    ("boxes_from_cams empty list", lambda: boxes_from_cams([]), ValueError,
     ("cams is empty", "at least one map")),
    ("localization_accuracy empty", lambda: localization_accuracy([], [], [], []),
     ValueError, ("no predictions", "at least one image")),
    # ---- boxes with x1 < x0, and (x, y, w, h) given as corners
    ("box_iou x1 < x0", lambda: box_iou([[5, 0, 2, 4]], GOOD_BOX), ValueError,
     ("x1 < x0", "(x, y, x + w, y + h)")),
    ("box_iou xywh read as corners", lambda: box_iou([[6, 6, 3, 2]], GOOD_BOX), ValueError,
     ("x1 < x0 or y1 < y0", "(x, y, x + w, y + h)")),
    ("localization_accuracy pred xywh",
     lambda: localization_accuracy([1], [1], [[6, 6, 3, 2]], [GOOD_BOX]), ValueError,
     ("pred_boxes[0]", "(x, y, x + w, y + h)")),
    # ---- thresholds given as percentages
    ("box_from_cam threshold 20", lambda: box_from_cam(GOOD_MAP, 20), ValueError,
     ("fractions, not percentages", "divide percentages by 100")),
    ("boxes_from_cams threshold -0.2", lambda: boxes_from_cams(batch(GOOD_MAP), -0.2),
     ValueError, ("threshold must lie in [0, 1]", "fractions, not percentages")),
    ("box_from_cam threshold NaN", lambda: box_from_cam(GOOD_MAP, float("nan")),
     ValueError, ("threshold must lie in [0, 1]", "fractions")),
    ("center_gaussian_maps sigma inf", lambda: center_gaussian_maps(1, 4, 4, np.inf),
     ValueError, ("sigma must be > 0 and finite", "e.g. 0.25")),
    ("center_gaussian_maps sigma 0", lambda: center_gaussian_maps(1, 4, 4, 0.0),
     ValueError, ("sigma must be > 0 and finite", "e.g. 0.25")),
    # ---- size mismatches and bad counts
    ("localization_accuracy lengths", lambda: localization_accuracy(
        [1, 2], [1], [GOOD_BOX] * 2, [GOOD_BOX] * 2), ValueError,
     ("lengths differ", "one of each per image")),
    ("localization_accuracy NaN label", lambda: localization_accuracy(
        [1.0, np.nan], [1, 2], [GOOD_BOX] * 2, [GOOD_BOX] * 2), ValueError,
     ("whole class indices", "argmax(1)")),
    ("localization_accuracy probabilities", lambda: localization_accuracy(
        [0.9, 0.2], [1, 0], [GOOD_BOX] * 2, [GOOD_BOX] * 2), ValueError,
     ("whole class indices", "argmax(1)")),
    ("center_gaussian_maps height 0", lambda: center_gaussian_maps(1, 0, 10), ValueError,
     ("height must be a whole number >= 1", "got 0")),
    ("center_gaussian_maps width NaN", lambda: center_gaussian_maps(1, 10, float("nan")), ValueError,
     ("width must be a whole number >= 1", "nan")),
    ("center_gaussian_maps n 2.5", lambda: center_gaussian_maps(2.5, 4, 4), ValueError,
     ("n (the number of images) must be a whole number >= 1", "2.5")),
    # ---- wrong types
    ("box_from_cam strings", lambda: box_from_cam(np.array([["a", "b"], ["c", "d"]])),
     TypeError, ("must hold numbers", "dtype=float")),
    ("box_iou strings", lambda: box_iou(np.array([["0", "0", "1", "1"]]), GOOD_BOX),
     TypeError, ("must hold numbers", "dtype=float")),
    ("box_from_cam threshold string", lambda: box_from_cam(GOOD_MAP, "20%"), ValueError,
     ("threshold must be a number", "[0, 1]")),
]


@pytest.mark.parametrize("call, error, fragments",
                         [case[1:] for case in ERROR_CASES], ids=[case[0] for case in ERROR_CASES])
def test_bad_input_raises_a_clear_error(call, error, fragments):
    assert_clear_error(call, error, fragments)


# (id, call, expected value): odd but valid inputs have one right answer.
VALUE_CASES: list[tuple[str, Callable[[], Any], Any]] = [
    ("box_from_cam tensor", lambda: box_from_cam(torch.from_numpy(GOOD_MAP)).tolist(),
     GOOD_BOX),
    ("box_from_cam tensor with grad",
     lambda: box_from_cam(torch.from_numpy(GOOD_MAP).requires_grad_()).tolist(), GOOD_BOX),
    ("box_from_cam float32 tensor",
     lambda: box_from_cam(torch.from_numpy(GOOD_MAP).float()).tolist(), GOOD_BOX),
    ("box_from_cam bool map", lambda: box_from_cam(GOOD_MAP > 0).tolist(), GOOD_BOX),
    ("box_from_cam int map", lambda: box_from_cam(GOOD_MAP.astype(int)).tolist(), GOOD_BOX),
    ("box_from_cam threshold 1 keeps the maximum", lambda: box_from_cam(GOOD_MAP, 1).tolist(),
     GOOD_BOX),
    ("box_from_cam 1 x 1 map", lambda: box_from_cam(np.ones((1, 1))).tolist(), [0, 0, 1, 1]),
    ("boxes_from_cams list of two sizes",
     lambda: boxes_from_cams([GOOD_MAP, np.ones((3, 5))]).tolist(),
     [GOOD_BOX, [0, 0, 5, 3]]),
    ("box_iou one box (4,)", lambda: box_iou(GOOD_BOX, GOOD_BOX).tolist(), [[1.0]]),
    ("box_iou tensors", lambda: box_iou(torch.tensor([[0, 0, 2, 2]]),
                                        torch.tensor([[1, 0, 3, 2]])).tolist(),
     [[1 / 3]]),
    ("box_iou no boxes", lambda: box_iou(np.zeros((0, 4)), GOOD_BOX).shape, (0, 1)),
    ("box_iou empty boxes", lambda: box_iou([[2, 2, 2, 2]], [[2, 2, 2, 2]]).tolist(),
     [[0.0]]),
    ("localization_accuracy float labels",
     lambda: localization_accuracy(np.array([1.0, 2.0]), torch.tensor([1, 0]),
                                   [GOOD_BOX] * 2, [GOOD_BOX] * 2).top1_loc, 0.5),
    ("center_gaussian_maps numpy ints", lambda: center_gaussian_maps(np.int64(2), np.int32(3), 4).shape,
     (2, 3, 4)),
    ("center_gaussian_maps shape", lambda: center_gaussian_maps(2.0, 3, 5).shape, (2, 3, 5)),
]


@pytest.mark.parametrize("call, expected", [case[1:] for case in VALUE_CASES],
                         ids=[case[0] for case in VALUE_CASES])
def test_odd_but_valid_input_gives_the_right_value(call, expected):
    assert_right_value(call, expected)
