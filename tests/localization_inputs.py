"""Maps, boxes and masks shared by the tests of boxes, metrics, released_code and coverage.

``rectangle_map`` draws a test map; the ``GOOD_*`` and ``NAN_*`` inputs, :func:`batch` and the
two ``assert_*`` checks are the attack battery of issue 12, split over one
``test_bad_inputs_<module>.py`` per module.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest


def rectangle_map(height: int, width: int, box: tuple[int, int, int, int],
                  inside: float = 1.0) -> np.ndarray:
    """Zeros with ``inside`` on the box (x0, y0, x1, y1), x1/y1 exclusive."""
    cam = np.zeros((height, width))
    x0, y0, x1, y1 = box
    cam[y0:y1, x0:x1] = inside
    return cam


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


def assert_clear_error(call: Callable[[], Any], error: type, fragments: tuple[str, ...]) -> None:
    """``call`` raises ``error`` with a message holding every fragment (the problem, the fix)."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def assert_right_value(call: Callable[[], Any], expected: Any) -> None:
    """``call`` returns ``expected`` (floats, and lists of lists of floats, up to rounding)."""
    result = call()
    if isinstance(expected, float):
        assert result == pytest.approx(expected)
    elif isinstance(expected, list) and expected and isinstance(expected[0], list) \
            and isinstance(expected[0][0], float):
        np.testing.assert_allclose(result, expected)
    else:
        assert result == expected
