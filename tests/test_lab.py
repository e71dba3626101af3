"""Tests for cam_tutorial.lab: the lab (SyntheticShapes), its parts, and denormalize."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cam_tutorial.config import get_preset
from cam_tutorial.lab import (
    CLASS_NAMES,
    CLASS_PARTS,
    LAB_VERSION,
    PART_NAMES,
    SPLITS,
    SyntheticShapes,
    denormalize,
)
from cam_tutorial.lab.dataset import MAX_IMAGE_SIZE, MEAN, STD

def _digest(image: torch.Tensor) -> str:
    return hashlib.sha256(image.numpy().tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Items: types, shapes, determinism
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [32, 64, 97])
def test_item_types_and_shapes(size: int) -> None:
    ds = SyntheticShapes("train", length=12, image_size=size, seed=3)
    image, label, box, mask = ds[5]
    assert image.shape == (3, size, size) and image.dtype == torch.float32
    assert isinstance(label, int) and 0 <= label < 10
    assert box.shape == (4,) and box.dtype == torch.float32
    assert mask.shape == (size, size) and mask.dtype == torch.bool
    assert ds.class_names == CLASS_NAMES and len(CLASS_NAMES) == len(set(CLASS_NAMES)) == 10
    assert ds.label(5) == label


def test_same_item_on_every_call_and_any_length() -> None:
    a = SyntheticShapes("val", length=30, image_size=64, seed=1)
    b = SyntheticShapes("val", length=500, image_size=64, seed=1)
    for i in (0, 7, 29):
        xa, la, ba, ma = a[i]
        xb, lb, bb, mb = b[i]
        assert torch.equal(xa, xb) and la == lb and torch.equal(ba, bb) and torch.equal(ma, mb)
        assert torch.equal(xa, a[i][0])  # twice from the same object
    assert torch.equal(a[-1][0], a[29][0])


def test_seed_changes_items() -> None:
    a = SyntheticShapes("train", length=10, image_size=32, seed=0)
    b = SyntheticShapes("train", length=10, image_size=32, seed=1)
    assert not any(torch.equal(a[i][0], b[i][0]) for i in range(10))


def test_dataloader_workers_give_the_same_batches() -> None:
    ds = SyntheticShapes("test", length=24, image_size=32, seed=2)
    batches = []
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=8, shuffle=False, num_workers=workers)
        batches.append([tuple(t) for t in loader])
    for (x0, y0, b0, m0), (x1, y1, b1, m1) in zip(*batches):
        assert x0.shape == (8, 3, 32, 32) and m0.shape == (8, 32, 32) and b0.shape == (8, 4)
        assert y0.dtype == torch.int64
        assert torch.equal(x0, x1) and torch.equal(y0, y1) and torch.equal(b0, b1) and torch.equal(m0, m1)


def test_render_is_the_unnormalised_item() -> None:
    ds = SyntheticShapes("train", length=4, image_size=48)
    rgb, label, box, mask = ds.render(3)
    image, label2, box2, mask2 = ds[3]
    assert rgb.dtype == np.uint8 and rgb.shape == (48, 48, 3)
    assert label == label2 and torch.equal(torch.tensor(box, dtype=torch.float32), box2)
    assert np.array_equal(mask, mask2.numpy())
    expected = (rgb.astype(np.float64) / 255 - np.array(MEAN)) / np.array(STD)
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Splits, labels, boxes, regions
# ---------------------------------------------------------------------------------------------

def test_splits_are_disjoint() -> None:
    seen: dict[str, str] = {}
    for split in ("train", "val", "test"):
        ds = SyntheticShapes(split, length=60, image_size=32, seed=0)
        for i in range(len(ds)):
            digest = _digest(ds[i][0])
            assert digest not in seen, f"{split}[{i}] repeats {seen[digest]}"
            seen[digest] = f"{split}[{i}]"


def test_labels_balanced_in_every_block_of_ten() -> None:
    ds = SyntheticShapes("train", length=1000, image_size=32, seed=4)
    labels = ds.labels()
    assert np.bincount(labels, minlength=10).tolist() == [100] * 10
    blocks = labels.reshape(-1, 10)
    assert all(sorted(block) == list(range(10)) for block in blocks)
    assert len({tuple(block) for block in blocks}) > 50  # the order inside a block is shuffled
    other = SyntheticShapes("val", length=1000, image_size=32, seed=4).labels()
    assert not np.array_equal(labels, other)


def test_boxes_inside_the_image_and_tight_around_the_mask() -> None:
    size = 64
    ds = SyntheticShapes("train", length=200, image_size=size, seed=5)
    widths = []
    for i in range(len(ds)):
        _, _, box, mask = ds[i]
        x0, y0, x1, y1 = (int(v) for v in box)
        assert box.tolist() == [x0, y0, x1, y1]  # whole pixels
        assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
        m = mask.numpy()
        assert m[:, x0].any() and m[:, x1 - 1].any() and m[y0].any() and m[y1 - 1].any()
        assert m[y0:y1, x0:x1].sum() == m.sum()  # nothing outside the box
        widths.append(max(x1 - x0, y1 - y0) / size)
    # Objects are a meaningful fraction of the image, from small to most of it.
    assert min(widths) >= 0.2 and max(widths) >= 0.75


@pytest.mark.parametrize(
    "region, check",
    [
        ("left", lambda b, s: b[2] <= s / 2),
        ("right", lambda b, s: b[0] >= s / 2),
        ("top", lambda b, s: b[3] <= s / 2),
        ("bottom", lambda b, s: b[1] >= s / 2),
    ],
)
def test_region_confines_the_whole_object(region, check) -> None:
    size = 64
    ds = SyntheticShapes("test", length=60, image_size=size, seed=6, region=region)
    for i in range(len(ds)):
        _, _, box, mask = ds[i]
        assert check(box.tolist(), size), (i, box)
        assert mask.any()


def test_objects_in_a_region_still_move_around() -> None:
    ds = SyntheticShapes("train", length=100, image_size=64, region="left")
    centres = np.array([((b[0] + b[2]) / 2).item() for _, _, b, _ in (ds[i] for i in range(100))])
    assert centres.max() - centres.min() > 10 and centres.max() <= 32


def test_object_stands_out_from_its_surroundings() -> None:
    """The object differs in colour from the ring of background around it, in most images."""
    ds = SyntheticShapes("val", length=100, image_size=64, seed=7)
    contrasts = []
    kernel = np.ones((7, 7), np.uint8)
    for i in range(len(ds)):
        rgb, _, _, mask = ds.render(i)
        inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        ring = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~mask
        if inner.sum() == 0:
            inner = mask
        diff = rgb[inner].astype(float).mean(0) - rgb[ring].astype(float).mean(0)
        contrasts.append(np.linalg.norm(diff))
    assert np.median(contrasts) > 100 and np.mean(np.array(contrasts) > 50) > 0.95


def _hu_features(split: str, n: int, part: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotation-invariant shape features (log Hu moments) of one part's mask in ``n`` items."""
    ds = SyntheticShapes(split, length=n, image_size=96, seed=8, clutter=0.0, objects="creatures")
    rows, labels = [], []
    for i in range(n):
        piece = (ds.part_map(i) == part).astype(np.uint8)
        hu = cv2.HuMoments(cv2.moments(piece, binaryImage=True)).ravel()
        rows.append(-np.sign(hu) * np.log10(np.abs(hu) + 1e-30))
        labels.append(ds.label(i))
    return np.array(rows)[:, :4], np.array(labels)


def _nearest_centroid_accuracy(part: int) -> float:
    x_train, y_train = _hu_features("train", 400, part)
    x_val, y_val = _hu_features("val", 200, part)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-9
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    centroids = np.stack([x_train[y_train == c].mean(0) for c in range(10)])
    predicted = np.argmin(((x_val[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    return float((predicted == y_val).mean())


def test_the_class_parts_carry_the_class_and_the_body_does_not() -> None:
    """A nearest-centroid classifier on one part's shape: far above chance (10%) for the head,
    near chance for the body (the same ellipse in every class; the parts drawn over its rim cut it
    a little, so its visible pixels keep a trace of the class)."""
    assert _nearest_centroid_accuracy(PART_NAMES.index("head") + 1) > 0.5
    assert _nearest_centroid_accuracy(PART_NAMES.index("body") + 1) < 0.25


def test_part_map_is_the_mask_split_into_parts() -> None:
    ds = SyntheticShapes("test", length=60, image_size=96, seed=4, objects="creatures")
    for i in range(len(ds)):
        _, _, box, mask = ds.render(i)
        parts = ds.part_map(i)
        assert parts.dtype == np.uint8 and parts.shape == (96, 96) and int(parts.max()) <= len(PART_NAMES)
        assert np.array_equal(parts > 0, mask)
        present = np.bincount(parts.ravel(), minlength=len(PART_NAMES) + 1)[1:]
        assert (present > 0).all(), f"item {i}: parts {dict(zip(PART_NAMES, present))}"
    assert set(CLASS_PARTS) == set(PART_NAMES) - {"body"}
    assert [ds.part_names[k] for k in ds.class_parts] == list(CLASS_PARTS)
    shapes = SyntheticShapes("test", length=2, image_size=64)
    assert shapes.part_names == ("object",) and shapes.class_parts == (0,)


def test_parts_are_spread_over_the_object() -> None:
    """Head and tail sit at opposite ends: their centres are about the object's length apart."""
    ds = SyntheticShapes("val", length=40, image_size=128, seed=5, objects="creatures")
    ratios = []
    for i in range(len(ds)):
        parts = ds.part_map(i)
        _, _, (x0, y0, x1, y1), _ = ds.render(i)
        head = np.argwhere(parts == PART_NAMES.index("head") + 1).mean(0)
        tail = np.argwhere(parts == PART_NAMES.index("tail") + 1).mean(0)
        ratios.append(np.linalg.norm(head - tail) / np.hypot(x1 - x0, y1 - y0))
    assert np.median(ratios) > 0.6


def test_objects_are_spread_so_a_centred_box_is_a_weak_guess() -> None:
    ds = SyntheticShapes("test", length=200, image_size=96, objects="creatures")
    boxes = np.array([ds.render(i)[2] for i in range(len(ds))], dtype=float)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2 / 96
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / 96**2
    assert centres.std(0).min() > 0.1 and area.std() > 0.05 and np.median(area) < 0.5


def test_the_lab_version_is_part_of_the_identity() -> None:
    ds = SyntheticShapes("val", length=3, image_size=32)
    creatures = SyntheticShapes("val", length=3, image_size=32, objects="creatures")
    assert ds.version == creatures.version == LAB_VERSION
    assert "objects" not in repr(ds) and "objects='creatures'" in repr(creatures)
    assert ds.part_names == ("object",) and creatures.part_names == PART_NAMES
    assert ds.part_map(1).max() == 1 and np.array_equal(ds.part_map(1) > 0, ds.render(1)[3])


def test_each_draw_decides_one_thing() -> None:
    """Changing one named draw changes what it names and nothing it does not: the object's
    position moves the mask, not the background's colours."""
    from cam_tutorial.lab.render import background, draw_scene, place

    ds = SyntheticShapes("val", length=3, image_size=64, clutter=0.0, objects="creatures")
    scene = draw_scene(ds, ds.label(1), np.random.default_rng([ds.seed, SPLITS[ds.split], 1]))
    moved = scene._replace(draws=scene.draws._replace(x=1.0 - scene.draws.x))
    before = place(ds, scene).polygons[0][0]
    after = place(ds, moved).polygons[0][0]
    assert not np.array_equal(before, after)
    assert np.array_equal(background(scene, 64, 0.0), background(moved, 64, 0.0))


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(split="training"), ValueError, "unknown split 'training'"),
        (dict(image_size=31), ValueError, "too small.*image_size >= 32"),
        (dict(image_size=64.0), TypeError, "image_size must be an int"),
        (dict(length=0), ValueError, "length must be a positive int"),
        (dict(length=-5), ValueError, "length must be a positive int"),
        (dict(seed=-1), ValueError, "seed must be a non-negative int"),
        (dict(region="middle"), ValueError, "unknown region 'middle'.*'left', 'right', 'top', 'bottom'"),
        (dict(region=(0.0, 0.0, 0.5, 1.0)), ValueError, r"unknown region \(0.0, 0.0, 0.5, 1.0\): use None"),
        (dict(scale=(0.9, 0.3)), ValueError, "scale must satisfy"),
        (dict(clutter=2), ValueError, "clutter must be in"),
        (dict(objects="animals"), ValueError, "unknown objects 'animals'"),
    ],
)
def test_bad_arguments_fail_clearly(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        SyntheticShapes(**{"length": 10, **kwargs})


def test_an_image_size_past_the_bound_is_refused_where_it_enters() -> None:
    """Issue 28 item 13: ``image_size=6000`` took about 0.7 GB an item, without a bound or a word."""
    with pytest.raises(ValueError, match=r"image_size=6000 is too large: .* use image_size <= 1024 \(the gpu"):
        SyntheticShapes("train", length=1, image_size=6000)
    assert get_preset("gpu").image_size <= MAX_IMAGE_SIZE == 1024
    largest = SyntheticShapes("train", length=1, image_size=MAX_IMAGE_SIZE)  # the bound itself renders
    assert largest.training_view()[0][0].shape == (1024, 1024, 3)


def test_index_out_of_range() -> None:
    ds = SyntheticShapes("train", length=3, image_size=32)
    with pytest.raises(IndexError, match="out of range"):
        ds[3]


# ---------------------------------------------------------------------------------------------
# denormalize
# ---------------------------------------------------------------------------------------------

def test_denormalize_single_and_batch() -> None:
    ds = SyntheticShapes("train", length=4, image_size=32)
    rgb = ds.render(1)[0]
    single = denormalize(ds[1][0])
    assert single.shape == (3, 32, 32)
    np.testing.assert_allclose(single.permute(1, 2, 0).numpy() * 255, rgb, atol=1e-3)
    batch = torch.stack([ds[i][0] for i in range(4)])
    out = denormalize(batch)
    assert out.shape == batch.shape and torch.allclose(out[1], single)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert float(denormalize(torch.full((3, 2, 2), 100.0)).max()) == 1.0  # clamped
    with pytest.raises(ValueError, match=r"\(3, H, W\) or \(B, 3, H, W\)"):
        denormalize(torch.zeros(4, 32, 32))
    with pytest.raises(TypeError, match="torch.Tensor"):
        denormalize(np.zeros((3, 4, 4)))


# ---------------------------------------------------------------------------------------------
# The gallery figure draws the lab's boxes where they are
# ---------------------------------------------------------------------------------------------

def test_gallery_draws_ground_truth_and_predicted_boxes() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.patches import Rectangle

    from cam_tutorial.viz import show_gallery

    ds = SyntheticShapes("val", length=3, image_size=32)
    images, labels, boxes, _ = next(iter(DataLoader(ds, batch_size=3)))
    fig = show_gallery(images, labels, boxes, pred_boxes=boxes + 1, class_names=CLASS_NAMES, ncols=2,
                       title="lab")
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 3 and axes[0].get_title() == CLASS_NAMES[int(labels[0])]
    rects = [p for p in axes[2].patches if isinstance(p, Rectangle)]
    assert len(rects) == 2
    x0, y0, x1, y1 = boxes[2].tolist()
    assert rects[0].get_xy() == (x0 - 0.5, y0 - 0.5) and rects[0].get_width() == x1 - x0
    import matplotlib.pyplot as plt

    plt.close(fig)
