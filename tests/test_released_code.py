"""Tests of cam_tutorial.released_code: the released code's boxes by hand, and the fast function
against the statement-by-statement reference loop."""

from __future__ import annotations


import numpy as np
import pytest

from cam_tutorial.boxes import box_from_cam
from cam_tutorial.released_code import box_from_cam_released_code, released_erosion
from tests.localization_inputs import rectangle_map
from tests.reference.localization import box_from_cam_released_code_reference


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
    # The reference is dt_box.cpp's loops one box at a time and a stable sort; the fast
    # function finds the first box in one pass.
    for name, cam in released_maps():
        first = box_from_cam_released_code(cam, **options)
        assert first.tolist() == box_from_cam_released_code_reference(cam, **options).tolist(), name


def test_released_code_first_box_equals_the_reference_on_many_random_maps():
    # The first box is found without sorting (the largest signed area, first on a tie);
    # the reference sorts everything. Random sizes, margins, sparsity and signs.
    rng = np.random.default_rng(17)
    for trial in range(80):
        margin = int(rng.integers(0, 7))
        height, width = (int(v) for v in rng.integers(max(2 * margin - 1, 1), 34, 2))
        cam = rng.random((height, width)) * (rng.random((height, width)) > rng.uniform(0, 0.95))
        cam = cam - rng.choice([0.0, 0.5, 2.0])  # some maps mixed-sign, some negative-only
        options = {"edge_margin": margin, "erode": bool(trial % 3)}
        expected = box_from_cam_released_code_reference(cam, **options)
        assert box_from_cam_released_code(cam, **options).tolist() == expected.tolist(), trial


def test_released_code_contour_in_the_last_pixels_gets_limit_s_negative_sides():
    # Issue 16: a contour at (223, 223) has W - x - 5 = -4: LIMIT makes w = h = -4 (area +16,
    # larger than the 3 x 5 block's 15) and x = y = 219; MATLAB's reordering gives 215..219.
    cam = np.zeros((224, 224))
    cam[223, 223] = 1
    cam[100:105, 40:43] = 1
    assert box_from_cam_released_code(cam).tolist() == [215, 215, 219, 219]
    # With one negative side (x only) the area is negative and the box ranks below any other
    # (here, a block's); alone, it is flipped to the left of x = 219:
    # x + w = 219 + (224 - 222 - 5) = 216.
    cam = np.zeros((224, 224))
    cam[100, 222] = 1
    alone = box_from_cam_released_code(cam)
    cam[50:60, 50:60] = 1
    assert box_from_cam_released_code(cam).tolist() == [50, 50, 60, 60]
    assert alone.tolist() == [216, 100, 219, 101]


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
        boxes = box_from_cam_released_code(cam, edge_margin=margin)[None]
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
        np.testing.assert_array_equal(released_erosion(mask), expected)
