"""Bad inputs to every public function of cam_tutorial.released_code (the attack battery of issue 12).

Each error case asserts the exception type and a message fragment that names the problem, and
one that names the fix. Where an odd input has a correct answer (a torch tensor, a bool map, a
(4,) box, a list of maps), the case asserts that answer's value.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch

from cam_tutorial.released_code import box_from_cam_released_code
from tests.localization_inputs import (
    GOOD_MAP, INF_MAP, NAN_MAP,
    assert_clear_error,
    assert_right_value,
    batch,
)

# (id, call, exception, fragments the message must contain: the problem, then the fix)
ERROR_CASES: list[tuple[str, Callable[[], Any], type, tuple[str, ...]]] = [
    # ---- NaN / Inf maps: every function that takes maps
    ("released NaN", lambda: box_from_cam_released_code(NAN_MAP), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("released Inf", lambda: box_from_cam_released_code(INF_MAP), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    # ---- wrong ranks
    ("released 3-D", lambda: box_from_cam_released_code(batch(GOOD_MAP)), ValueError,
     ("one 2-D map", "cam[0]")),
    # ---- empty inputs
    ("released empty levels", lambda: box_from_cam_released_code(GOOD_MAP, levels=()),
     ValueError, ("levels must be grey levels", "0..254")),
    # ---- thresholds given as percentages
    ("released levels as fractions",
     lambda: box_from_cam_released_code(GOOD_MAP, levels=(0.08, 0.39, 0.43)), ValueError,
     ("levels must be grey levels", "not fractions of the maximum")),
    ("released level 255", lambda: box_from_cam_released_code(GOOD_MAP, levels=(20, 255)),
     ValueError, ("levels must be grey levels", "integers in 0..254")),
    # ---- size mismatches and bad counts
    ("released size half pixel", lambda: box_from_cam_released_code(GOOD_MAP, size=(20.5, 20)),
     ValueError, ("whole pixels", "size=(H, W)")),
    ("released map too small", lambda: box_from_cam_released_code(np.ones((4, 4))),
     ValueError, ("smaller than 2 * edge_margin - 1 = 9 px", "edge_margin=0")),
    ("released 1 x 1 map", lambda: box_from_cam_released_code(np.ones((1, 1))), ValueError,
     ("the map is 1 x 1 px", "size=(height, width)")),
    ("released margin -1", lambda: box_from_cam_released_code(GOOD_MAP, edge_margin=-1),
     ValueError, ("edge_margin must be an int >= 0", "pixels")),
    ("released margin 2.5", lambda: box_from_cam_released_code(GOOD_MAP, edge_margin=2.5),
     ValueError, ("edge_margin must be an int >= 0", "pixels")),
]


@pytest.mark.parametrize("call, error, fragments",
                         [case[1:] for case in ERROR_CASES], ids=[case[0] for case in ERROR_CASES])
def test_bad_input_raises_a_clear_error(call, error, fragments):
    assert_clear_error(call, error, fragments)


# (id, call, expected value): odd but valid inputs have one right answer.
VALUE_CASES: list[tuple[str, Callable[[], Any], Any]] = [
    ("released tensor", lambda: box_from_cam_released_code(
        torch.from_numpy(np.pad(GOOD_MAP, 10))).tolist(), [13, 12, 19, 16]),
    ("released 9 x 9 map is allowed", lambda: box_from_cam_released_code(
        np.ones((9, 9))).tolist(), [0, 0, 4, 4]),
    ("released small map upsampled", lambda: box_from_cam_released_code(
        np.ones((2, 2)), size=(20, 20)).tolist(), [0, 0, 15, 15]),
    ("released numpy int levels", lambda: box_from_cam_released_code(
        np.pad(GOOD_MAP, 10), levels=np.array([20], dtype=np.int16)).tolist(), [13, 12, 19, 16]),
]


@pytest.mark.parametrize("call, expected", [case[1:] for case in VALUE_CASES],
                         ids=[case[0] for case in VALUE_CASES])
def test_odd_but_valid_input_gives_the_right_value(call, expected):
    assert_right_value(call, expected)
