"""Bad inputs to every public function of cam_tutorial.coverage (the attack battery of issue 12).

Each error case asserts the exception type and a message fragment that names the problem, and
one that names the fix. Where an odd input has a correct answer (a torch tensor, a bool map, a
(4,) box, a list of maps), the case asserts that answer's value.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch

from cam_tutorial.coverage import cam_area_fraction, object_size_coverage, pointing_game
from tests.localization_inputs import (
    GOOD_BOX, GOOD_MAP, GOOD_MASK, INF_MAP, NAN_MAP, NAN_MASK,
    assert_clear_error,
    assert_right_value,
    batch,
)

# (id, call, exception, fragments the message must contain: the problem, then the fix)
ERROR_CASES: list[tuple[str, Callable[[], Any], type, tuple[str, ...]]] = [
    # ---- NaN / Inf maps: every function that takes maps
    ("pointing_game NaN", lambda: pointing_game(batch(NAN_MAP), [GOOD_BOX] * 2), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("cam_area_fraction NaN", lambda: cam_area_fraction(NAN_MAP, GOOD_MASK), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    # issue 10: this one returned [1.] before
    ("object_size_coverage NaN",
     lambda: object_size_coverage(batch(NAN_MAP, 1), batch(GOOD_MASK, 1)), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("object_size_coverage Inf one map",
     lambda: object_size_coverage(INF_MAP, GOOD_MASK), ValueError,
     ("NaN or infinity", "np.nan_to_num")),
    ("object_size_coverage -Inf tensor",
     lambda: object_size_coverage(torch.full((1, 4, 4), -np.inf), torch.ones(1, 4, 4)),
     ValueError, ("NaN or infinity", "np.nan_to_num")),
    # ---- NaN masks and boxes
    ("object_size_coverage NaN mask",
     lambda: object_size_coverage(GOOD_MAP, NAN_MASK), ValueError,
     ("mask 0 contains NaN", "np.nan_to_num(mask)")),
    ("cam_area_fraction NaN mask", lambda: cam_area_fraction(GOOD_MAP, NAN_MASK),
     ValueError, ("mask 0 contains NaN", "np.nan_to_num(mask)")),
    ("pointing_game NaN mask",
     lambda: pointing_game(batch(GOOD_MAP, 1), batch(NAN_MASK, 1), kind="mask"),
     ValueError, ("mask 0 contains NaN", "np.nan_to_num(mask)")),
    # ---- wrong ranks
    ("pointing_game 2-D", lambda: pointing_game(GOOD_MAP, [GOOD_BOX]), ValueError,
     ("(N, H, W)", "cam[None]")),
    ("object_size_coverage 4-D",
     lambda: object_size_coverage(GOOD_MAP[None, None], GOOD_MASK[None, None]), ValueError,
     ("(N, H, W)", "cams[:, 0]")),
    ("cam_area_fraction masks 1-D", lambda: cam_area_fraction(batch(GOOD_MAP), np.ones(4)),
     ValueError, ("masks must be (N, H, W)", "one mask per map")),
    # ---- empty inputs
    ("object_size_coverage empty", lambda: object_size_coverage([], []), ValueError,
     ("cams is empty", "at least one map")),
    # ---- boxes with x1 < x0, and (x, y, w, h) given as corners
    ("pointing_game box y1 < y0",
     lambda: pointing_game(batch(GOOD_MAP, 1), [[0, 5, 4, 1]], kind="box"), ValueError,
     ("y1 < y0", "(x, y, x + w, y + h)")),
    # ---- thresholds given as percentages
    ("cam_area_fraction threshold 20", lambda: cam_area_fraction(GOOD_MAP, GOOD_MASK, 20),
     ValueError, ("threshold must lie in [0, 1]", "divide percentages by 100")),
    ("pointing_game tolerance < 0",
     lambda: pointing_game(batch(GOOD_MAP, 1), [GOOD_BOX], tolerance=-1), ValueError,
     ("tolerance must be a distance >= 0", "reference_size")),
    ("pointing_game tolerance inf",
     lambda: pointing_game(batch(GOOD_MAP, 1), [GOOD_BOX], tolerance=np.inf), ValueError,
     ("tolerance must be a distance >= 0", "finite")),
    # ---- size mismatches and bad counts
    ("pointing_game mask size", lambda: pointing_game(
        batch(GOOD_MAP, 1), np.zeros((1, 10, 10), bool), kind="mask"), ValueError,
     ("mask 0 has shape (10, 10) but its map has (12, 12)", "resize the map")),
    ("pointing_game mask count", lambda: pointing_game(
        batch(GOOD_MAP, 2), batch(GOOD_MASK, 3), kind="mask"), ValueError,
     ("3 masks for 2 maps", "one per map")),
    ("pointing_game 4 px wide auto", lambda: pointing_game(
        np.ones((1, 4, 4)), np.ones((1, 4, 4))), ValueError,
     ("masks and boxes look alike", "kind='mask'")),
    ("pointing_game bad kind", lambda: pointing_game(
        batch(GOOD_MAP, 1), [GOOD_BOX], kind="boxes"), ValueError,
     ("kind must be", "'box'")),
    ("pointing_game reference_size 0", lambda: pointing_game(
        batch(GOOD_MAP, 1), [GOOD_BOX], reference_size=0), ValueError,
     ("reference_size", "whole number >= 1")),
    ("cam_area_fraction mask size", lambda: cam_area_fraction(GOOD_MAP, GOOD_MASK[:, :10]),
     ValueError, ("mask 0 has shape (12, 10) but its map has (12, 12)", "resize the map")),
    ("cam_area_fraction mask count", lambda: cam_area_fraction(
        batch(GOOD_MAP, 2), batch(GOOD_MASK, 1)), ValueError, ("1 masks for 2 maps", "one per")),
    ("object_size_coverage mask size", lambda: object_size_coverage(
        batch(GOOD_MAP), np.ones((2, 12, 5))), ValueError,
     ("same shape as its map", "resize the map")),
    ("object_size_coverage mask count", lambda: object_size_coverage(
        batch(GOOD_MAP, 3), batch(GOOD_MASK, 2)), ValueError, ("2 masks for 3 maps", "one per")),
    ("object_size_coverage maps of two sizes", lambda: object_size_coverage(
        [GOOD_MAP, np.ones((4, 4))], [GOOD_MASK, np.ones((4, 4))]), ValueError,
     ("maps of one size", "resize them")),
    # ---- wrong types
    ("cam_area_fraction string mask", lambda: cam_area_fraction(
        np.ones((2, 2)), np.array([["a", "b"], ["c", "d"]])), TypeError,
     ("must hold numbers or booleans", "dtype")),
]


@pytest.mark.parametrize("call, error, fragments",
                         [case[1:] for case in ERROR_CASES], ids=[case[0] for case in ERROR_CASES])
def test_bad_input_raises_a_clear_error(call, error, fragments):
    assert_clear_error(call, error, fragments)


# (id, call, expected value): odd but valid inputs have one right answer.
VALUE_CASES: list[tuple[str, Callable[[], Any], Any]] = [
    ("pointing_game tensor masks", lambda: pointing_game(
        torch.from_numpy(batch(GOOD_MAP, 1)), torch.from_numpy(batch(GOOD_MASK, 1)),
        tolerance=0), 1.0),
    ("pointing_game list of (4,) boxes", lambda: pointing_game(
        batch(GOOD_MAP, 1), [np.array(GOOD_BOX)], tolerance=0), 1.0),
    ("cam_area_fraction tensors", lambda: float(cam_area_fraction(
        torch.from_numpy(GOOD_MAP), torch.from_numpy(GOOD_MASK)).object_covered[0]), 1.0),
    ("cam_area_fraction 0/1 float mask", lambda: float(cam_area_fraction(
        GOOD_MAP, GOOD_MASK.astype(float)).precision[0]), 1.0),
    ("object_size_coverage list of maps", lambda: object_size_coverage(
        [GOOD_MAP, GOOD_MAP[::-1]], [GOOD_MASK, GOOD_MASK]).tolist(), [1.0, 0.0]),
    ("object_size_coverage one map tensor", lambda: object_size_coverage(
        torch.from_numpy(GOOD_MAP), torch.from_numpy(GOOD_MASK)).tolist(), [1.0]),
]


@pytest.mark.parametrize("call, expected", [case[1:] for case in VALUE_CASES],
                         ids=[case[0] for case in VALUE_CASES])
def test_odd_but_valid_input_gives_the_right_value(call, expected):
    assert_right_value(call, expected)
