"""Tests of cam_tutorial.metrics: MaxBoxAcc(V2) on answers known by hand, the fast path against
the reference loop, and the wsolevaluation protocol against their algorithm restated."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
import torch

from cam_tutorial import metrics
from cam_tutorial.boxes import box_from_cam, box_iou, boxes_from_cams, center_gaussian_maps
from cam_tutorial.metrics import (
    DEFAULT_CAM_THRESHOLDS,
    FINE_CAM_THRESHOLDS,
    max_box_acc,
    max_box_acc_both,
)
from tests.localization_inputs import rectangle_map
from tests.reference.localization import max_box_acc_reference


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
    # the centred box covering each fraction of the image, with its aspect ratio
    half = np.sqrt(fractions)[:, None] * [width, height, width, height] / 2
    gt = np.array([width / 2, height / 2, width / 2, height / 2]) + half * [-1, -1, 1, 1]
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
    for size in (None, 64):
        every, largest = max_box_acc_both(maps, boxes, size=size, protocol=protocol)
        separate = (max_box_acc(maps, boxes, size=size, protocol=protocol),
                    max_box_acc(maps, boxes, iou_thresholds=(0.5,), multi_contour=False, size=size,
                                protocol=protocol))
        for one, other in zip((every, largest), separate):
            np.testing.assert_array_equal(one.best_iou, other.best_iou)
            np.testing.assert_array_equal(one.box_acc, other.box_acc)
            assert (one.mean, one.multi_contour, one.protocol) == (other.mean, other.multi_contour, other.protocol)
        # the two differ on these maps: the largest contour is not every contour
        assert not np.array_equal(every.best_iou, largest.best_iou)


def test_max_box_acc_fast_equals_reference_on_a_fine_grid():
    # 1000 thresholds map onto at most 256 cuts: the shared cuts must be reused right.
    maps, boxes = smooth_maps(6, 40, seed=2)
    taus = np.linspace(0, 1, 1000)
    reference = max_box_acc_reference(maps, boxes, cam_thresholds=taus)
    fast = max_box_acc(maps, boxes, cam_thresholds=taus)
    np.testing.assert_array_equal(fast.best_iou, reference.best_iou)
    assert (reference.best_iou[:, -1] == 0).all()  # tau = 1: nothing is above the maximum


def test_max_box_acc_traces_each_distinct_mask_once(monkeypatch):
    # Four grey levels (0, 85, 170, 255) leave three different non-empty masks over the 100
    # thresholds: the fast path traces three times, the loop a hundred.
    cam = np.zeros((12, 12))
    cam[1:11, 1:11], cam[3:9, 3:9], cam[5:7, 5:7] = 1, 2, 3
    calls = []
    real = metrics.cv2.findContours

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(metrics.cv2, "findContours", counting)
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
    result = max_box_acc(maps, boxes, (0.5,), taus, size=(28, 28), protocol="wsolevaluation")
    np.testing.assert_array_equal(result.best_iou, best)
    np.testing.assert_array_equal(np.round(result.box_acc[:, 0] * len(maps)), correct[0])
    reference = max_box_acc_reference(maps, boxes, (0.5,), taus, size=28,
                                      protocol="wsolevaluation")
    np.testing.assert_array_equal(reference.best_iou, best)
    # The clean protocol resizes bilinearly: the same as resizing first with resize_map's
    # resize, then scoring at full size.
    upsampled = [cv2.resize(m, (28, 28), interpolation=cv2.INTER_LINEAR) for m in maps]
    np.testing.assert_array_equal(max_box_acc(maps, boxes, (0.5,), taus, size=(28, 28)).best_iou,
                                  max_box_acc(upsampled, boxes, (0.5,), taus).best_iou)


def test_max_box_acc_protocol_is_checked():
    with pytest.raises(ValueError, match="protocol must be one of.*'wsolevaluation'"):
        max_box_acc(np.ones((1, 8, 8)), [[0, 0, 4, 4]], protocol="wsol")
