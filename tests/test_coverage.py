"""Tests of cam_tutorial.coverage: the pointing game, area fraction, object-size coverage and
part coverage, on answers known by hand."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from cam_tutorial.coverage import cam_area_fraction, object_size_coverage, part_coverage, pointing_game
from tests.localization_inputs import rectangle_map


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


# ---------------------------------------------------------------------------------------------
# part_coverage: which parts of the object a map covers
# ---------------------------------------------------------------------------------------------

def _two_part_object() -> np.ndarray:
    parts = np.zeros((1, 6, 8), np.uint8)
    parts[0, 1:5, 1:3] = 1  # part 0: 8 pixels on the left
    parts[0, 1:5, 5:7] = 2  # part 1: 8 pixels on the right
    return parts


def test_part_coverage_counts_the_parts_a_peaky_map_covers() -> None:
    parts = _two_part_object()
    peaky = np.zeros((1, 6, 8)); peaky[0, 1:5, 1:3] = 1.0; peaky[0, 2, 5] = 0.1  # 0.1 < 20% of max
    broad = np.zeros((1, 6, 8)); broad[0, 1:5, 1:3] = 1.0; broad[0, 1:5, 5:7] = 0.5
    found = part_coverage(peaky, parts, 2)
    assert found.covered.tolist() == [[1.0, 0.0]] and found.parts_covered.tolist() == [1]
    assert part_coverage(broad, parts, 2).parts_covered.tolist() == [2]
    # a lower threshold keeps the 0.1 pixel: 1 of part 1's 8 pixels
    assert part_coverage(peaky, parts, 2, 0.05).covered[0, 1] == pytest.approx(1 / 8)


def test_part_coverage_at_the_object_size_and_the_peak() -> None:
    parts = _two_part_object()
    cam = np.zeros((1, 6, 8)); cam[0, 1:5, 5:7] = 2.0; cam[0, 0, :] = 1.0; cam[0, 5, 0] = 3.0
    found = part_coverage(cam, parts, 2, threshold=None)  # the 16 highest pixels
    assert found.peak_part.tolist() == [-1]  # the maximum (3.0) is on the background
    # the 16 highest: the peak, part 1's 8 pixels, then the top row's 8 (1.0): none of part 0
    assert found.covered.tolist() == [[0.0, 1.0]]
    assert found.peak_shares(2).tolist() == [0.0, 0.0, 1.0]


def test_part_coverage_gives_nan_for_a_missing_part_and_refuses_bad_input() -> None:
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
