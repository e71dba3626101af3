"""Bad inputs to every public function of cam_tutorial.metrics (and of the reference loop beside it, which shares its checks) (the attack battery of issue 12).

Each error case asserts the exception type and a message fragment that names the problem, and
one that names the fix. Where an odd input has a correct answer (a torch tensor, a bool map, a
(4,) box, a list of maps), the case asserts that answer's value.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch

from cam_tutorial.metrics import max_box_acc
from tests.reference.localization import max_box_acc_reference
from tests.localization_inputs import (
    GOOD_BOX, GOOD_MAP, INF_MAP, NAN_MAP,
    assert_clear_error,
    assert_right_value,
    batch,
)

# (id, call, exception, fragments the message must contain: the problem, then the fix)
ERROR_CASES: list[tuple[str, Callable[[], Any], type, tuple[str, ...]]] = [
    # ---- NaN / Inf maps: every function that takes maps
    ("max_box_acc NaN second image",
     lambda: max_box_acc(np.stack([GOOD_MAP, NAN_MAP]), [GOOD_BOX, GOOD_BOX]), ValueError,
     ("cams[1] contains NaN", "np.nan_to_num")),
    ("max_box_acc_reference Inf",
     lambda: max_box_acc_reference(batch(INF_MAP), [GOOD_BOX, GOOD_BOX]), ValueError,
     ("cams[0] contains NaN or infinity", "np.nan_to_num")),
    # ---- NaN masks and boxes
    ("max_box_acc NaN gt box",
     lambda: max_box_acc(batch(GOOD_MAP, 1), [[0, 0, np.inf, 4]]), ValueError,
     ("gt_boxes[0] contains NaN or infinity", "drop the images")),
    # ---- wrong ranks
    ("max_box_acc 4-D", lambda: max_box_acc(GOOD_MAP[None, None], [GOOD_BOX]), ValueError,
     ("(N, H, W)", "cams[:, 0]")),
    ("max_box_acc 5-D", lambda: max_box_acc(np.ones((1, 1, 1, 4, 4)), [GOOD_BOX]),
     ValueError, ("(N, H, W)", "np.stack")),
    ("max_box_acc gt (N, 2)", lambda: max_box_acc(batch(GOOD_MAP), np.ones((2, 2))),
     ValueError, ("gt_boxes must be (N, 4)", "(K_i, 4)")),
    # ---- empty inputs
    ("max_box_acc no maps", lambda: max_box_acc(np.zeros((0, 4, 4)), []), ValueError,
     ("cams is empty", "at least one map")),
    ("max_box_acc image without box",
     lambda: max_box_acc(batch(GOOD_MAP, 1), [np.zeros((0, 4))]), ValueError,
     ("gt_boxes[0] holds no box", "at least one")),
    ("max_box_acc empty thresholds",
     lambda: max_box_acc(batch(GOOD_MAP, 1), [GOOD_BOX], cam_thresholds=[]), ValueError,
     ("non-empty 1-D sequence", "one number or a flat list")),
    # ---- boxes with x1 < x0, and (x, y, w, h) given as corners
    ("max_box_acc gt xywh",
     lambda: max_box_acc(batch(GOOD_MAP, 1), [[[3, 2, 9, 6], [8, 8, 2, 2]]]), ValueError,
     ("gt_boxes[0][1]", "(x, y, x + w, y + h)")),
    # ---- thresholds given as percentages
    ("max_box_acc iou 50", lambda: max_box_acc(batch(GOOD_MAP, 1), [GOOD_BOX],
                                               iou_thresholds=(30, 50, 70)), ValueError,
     ("iou_thresholds must lie in (0, 1]", "divide percentages by 100")),
    ("max_box_acc iou 0", lambda: max_box_acc(batch(GOOD_MAP, 1), [GOOD_BOX],
                                              iou_thresholds=(0.0,)), ValueError,
     ("iou_thresholds must lie in (0, 1]", "fractions")),
    ("max_box_acc_reference taus 0..99",
     lambda: max_box_acc_reference(batch(GOOD_MAP, 1), [GOOD_BOX],
                                   cam_thresholds=np.arange(100)), ValueError,
     ("cam_thresholds must lie in [0, 1]", "divide percentages by 100")),
    # ---- size mismatches and bad counts
    ("max_box_acc gt count", lambda: max_box_acc(batch(GOOD_MAP, 3), [GOOD_BOX] * 2),
     ValueError, ("gt_boxes has 2 entries but there are 3 maps", "one entry")),
    ("max_box_acc unknown protocol", lambda: max_box_acc(
        batch(GOOD_MAP, 1), [GOOD_BOX], protocol="choe"), ValueError,
     ("protocol must be one of", "'wsolevaluation' Choe et al.'s code's")),
    ("max_box_acc_reference unknown protocol", lambda: max_box_acc_reference(
        batch(GOOD_MAP, 1), [GOOD_BOX], protocol=None), ValueError,
     ("protocol must be one of", "'clean' is this module's definition")),
    ("max_box_acc size 0", lambda: max_box_acc(batch(GOOD_MAP, 1), [GOOD_BOX], size=(0, 8),
                                               protocol="wsolevaluation"), ValueError,
     ("size must be (height, width)", "size=(H, W)")),
    ("max_box_acc size 3 values", lambda: max_box_acc(batch(GOOD_MAP, 1), [GOOD_BOX],
                                                      size=(10, 10, 3)), ValueError,
     ("size must be (height, width)", "size=(H, W)")),
]


@pytest.mark.parametrize("call, error, fragments",
                         [case[1:] for case in ERROR_CASES], ids=[case[0] for case in ERROR_CASES])
def test_bad_input_raises_a_clear_error(call, error, fragments):
    assert_clear_error(call, error, fragments)


def _gaussian_batch() -> np.ndarray:
    yy, xx = np.mgrid[0:12, 0:12] + 0.5
    return np.stack([np.exp(-((xx - 5) ** 2 + (yy - 4) ** 2) / 8),
                     np.exp(-((xx - 8) ** 2 + (yy - 8) ** 2) / 4)])


# (id, call, expected value): odd but valid inputs have one right answer.
VALUE_CASES: list[tuple[str, Callable[[], Any], Any]] = [
    ("max_box_acc tensor equals numpy",
     lambda: max_box_acc(torch.from_numpy(_gaussian_batch()),
                         torch.tensor([[3, 2, 8, 7], [6, 6, 11, 11]])).box_acc.tolist(),
     max_box_acc(_gaussian_batch(), [[3, 2, 8, 7], [6, 6, 11, 11]]).box_acc.tolist()),
    ("max_box_acc tensor thresholds",
     lambda: max_box_acc(
         _gaussian_batch(), [[3, 2, 8, 7], [6, 6, 11, 11]],
         cam_thresholds=torch.tensor([0.1, 0.5], dtype=torch.float64)).cam_thresholds.tolist(),
     [0.1, 0.5]),
    ("max_box_acc size already the map's", lambda: max_box_acc(
        _gaussian_batch(), [[3, 2, 8, 7], [6, 6, 11, 11]], size=12,
        protocol="wsolevaluation").best_iou.tolist(),
     max_box_acc(_gaussian_batch(), [[3, 2, 8, 7], [6, 6, 11, 11]],
                 protocol="wsolevaluation").best_iou.tolist()),
    ("max_box_acc size as one int", lambda: max_box_acc(
        _gaussian_batch(), [[3, 2, 8, 7], [6, 6, 11, 11]], size=24).best_iou.tolist(),
     max_box_acc(_gaussian_batch(), [[3, 2, 8, 7], [6, 6, 11, 11]], size=(24, 24)).best_iou.tolist()),
]


@pytest.mark.parametrize("call, expected", [case[1:] for case in VALUE_CASES],
                         ids=[case[0] for case in VALUE_CASES])
def test_odd_but_valid_input_gives_the_right_value(call, expected):
    assert_right_value(call, expected)
