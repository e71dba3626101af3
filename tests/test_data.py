"""Tests for cam_tutorial.data: the lab (SyntheticShapes), denormalize, and the real-data loaders."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cam_tutorial.data import (
    CLASS_NAMES,
    MEAN,
    STD,
    SyntheticShapes,
    denormalize,
    load_dataset,
)


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
        ((0.25, 0.5, 0.75, 1.0), lambda b, s: b[0] >= s / 4 and b[2] <= 3 * s / 4 and b[1] >= s / 2),
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


def test_class_shapes_are_distinguishable() -> None:
    """Rotation-invariant shape features (log Hu moments of the masks) tell the classes apart:
    a nearest-centroid classifier fitted on train items is far above chance (10%) on val items."""

    def features(split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        ds = SyntheticShapes(split, length=n, image_size=64, seed=8, clutter=0.0)
        rows, labels = [], []
        for i in range(n):
            _, label, _, mask = ds.render(i)
            hu = cv2.HuMoments(cv2.moments(mask.astype(np.uint8), binaryImage=True)).ravel()
            rows.append(-np.sign(hu) * np.log10(np.abs(hu) + 1e-30))
            labels.append(label)
        return np.array(rows)[:, :4], np.array(labels)

    x_train, y_train = features("train", 400)
    x_val, y_val = features("val", 200)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-9
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    centroids = np.stack([x_train[y_train == c].mean(0) for c in range(10)])
    predicted = np.argmin(((x_val[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (predicted == y_val).mean() > 0.5


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
        (dict(region="middle"), ValueError, "unknown region 'middle'"),
        (dict(region=(0.5, 0.0, 0.4, 1.0)), ValueError, "not inside the image"),
        (dict(region=(0.0, 0.0, 1.0)), ValueError, "needs 4 fractions"),
        (dict(region=(0.0, 0.0, 0.1, 1.0)), ValueError, "too small for a recognisable object"),
        (dict(scale=(0.9, 0.3)), ValueError, "scale must satisfy"),
        (dict(clutter=2), ValueError, "clutter must be in"),
        (dict(rotation=270), ValueError, "rotation must be in"),
        (dict(stretch=0.5), ValueError, "stretch must be in"),
    ],
)
def test_bad_arguments_fail_clearly(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        SyntheticShapes(**{"length": 10, **kwargs})


def test_index_out_of_range() -> None:
    ds = SyntheticShapes("train", length=3, image_size=32)
    with pytest.raises(IndexError, match="out of range"):
        ds[3]


def test_load_dataset_lab_and_bad_names() -> None:
    ds = load_dataset("lab", "val", image_size=32, length=7, seed=2, region="left")
    assert isinstance(ds, SyntheticShapes) and len(ds) == 7 and ds.region == "left"
    assert torch.equal(ds[3][0], SyntheticShapes("val", 7, 32, 2, "left")[3][0])
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*'lab'"):
        load_dataset("imagenet", "train", 64)
    with pytest.raises(ValueError, match="region= applies to the lab only"):
        load_dataset("pets", "train", 64, region="left")
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("pets", "trainval", 64)


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
# Real data on tiny fake trees in the layouts torchvision expects
# ---------------------------------------------------------------------------------------------

def _write_jpeg(path: Path, width: int, height: int, colour: tuple[int, int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), colour).save(path, format="JPEG")


def test_imagenette_on_a_fake_tree(tmp_path: Path) -> None:
    # torchvision: <root>/imagenette2-160/<split>/<wnid>/*.JPEG (160px variant for image_size <= 160)
    for split in ("train", "val"):
        for k, wnid in enumerate(("n01440764", "n02102040")):
            for j in range(3):
                _write_jpeg(tmp_path / "imagenette2-160" / split / wnid / f"{wnid}_{j}.JPEG",
                            120 + 10 * j, 90, (200 * k, 50, 100))
    ds = load_dataset("imagenette", "train", image_size=64, root=tmp_path)
    assert len(ds) == 6 and ds.class_names == ("tench", "English springer")
    image, label, box, mask = ds[4]
    assert image.shape == (3, 64, 64) and label == 1
    assert torch.isnan(box).all() and mask.shape == (64, 64) and not mask.any()
    # The picture survives: a flat colour comes back after denormalising.
    np.testing.assert_allclose(denormalize(image).mean((1, 2)).numpy() * 255, (200, 50, 100), atol=4)
    batch = next(iter(DataLoader(ds, batch_size=6)))
    assert batch[0].shape == (6, 3, 64, 64) and batch[3].shape == (6, 64, 64)
    subset = load_dataset("imagenette", "test", image_size=64, root=tmp_path, length=4, seed=1)
    assert len(subset) == 4  # "test" reads Imagenette's val


def test_pets_on_a_fake_tree(tmp_path: Path) -> None:
    from PIL import Image

    # torchvision: <root>/oxford-iiit-pet/images/<id>.jpg, annotations/{trainval,test}.txt,
    # annotations/trimaps/<id>.png with 1 = pet, 2 = background, 3 = boundary.
    base = tmp_path / "oxford-iiit-pet"
    ids = [("Abyssinian_1", 1, 1), ("beagle_1", 2, 2)]
    for image_id, _, _ in ids:
        _write_jpeg(base / "images" / f"{image_id}.jpg", 160, 128, (30, 60, 90))
        trimap = np.full((128, 160), 2, np.uint8)
        trimap[32:96, 48:80] = 3  # boundary ring...
        trimap[36:92, 52:76] = 1  # ...around the pet
        (base / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
        Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{image_id}.png")
    lines = "".join(f"{i} {c} {s} 1\n" for i, c, s in ids)
    for name in ("trainval.txt", "test.txt"):
        (base / "annotations" / name).write_text(lines)

    ds = load_dataset("pets", "train", image_size=64, root=tmp_path)
    assert len(ds) == 2 and ds.class_names == ("Abyssinian", "Beagle")
    image, label, box, mask = ds[1]
    assert image.shape == (3, 64, 64) and label == 1 and mask.dtype == torch.bool
    # 160x128 -> 80x64 (scale 1/2), centre crop drops 8 columns on the left: the pet with its
    # boundary, rows 32:96 and columns 48:80, lands at rows 16:48 and columns 16:32.
    np.testing.assert_allclose(box.numpy(), [16, 16, 32, 48], atol=1)
    x0, y0, x1, y1 = (int(v) for v in box)
    assert mask[y0:y1, x0:x1].float().mean() > 0.9 and mask.sum() == mask[y0:y1, x0:x1].sum()
    assert ds[0][1] == 0


@pytest.mark.parametrize("name, folder", [("imagenette", "imagenette2-320"), ("pets", "oxford-iiit-pet")])
def test_missing_real_data_names_the_lab(tmp_path: Path, name: str, folder: str) -> None:
    with pytest.raises(FileNotFoundError, match=r"load_dataset\('lab', \.\.\.\)"):
        load_dataset(name, "train", image_size=224, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failed_download_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.imagenette as tv_imagenette

    def broken_download(url: str, download_root: str, *args: object, **kwargs: object) -> None:
        # A network that dies halfway: part of an archive and a folder are on disk.
        os.makedirs(Path(download_root) / "imagenette2-160" / "train", exist_ok=True)
        (Path(download_root) / "imagenette2-160.tgz").write_bytes(b"partial")
        raise OSError("connection reset")

    monkeypatch.setattr(tv_imagenette, "download_and_extract_archive", broken_download)
    root = tmp_path / "data"
    with pytest.raises(RuntimeError, match=r"nothing was kept.*load_dataset\('lab', \.\.\.\)"):
        load_dataset("imagenette", "train", image_size=64, root=root, download=True)
    assert list(root.iterdir()) == []


def test_successful_download_is_moved_into_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.imagenette as tv_imagenette

    def fake_download(url: str, download_root: str, *args: object, **kwargs: object) -> None:
        for split in ("train", "val"):
            _write_jpeg(Path(download_root) / "imagenette2-160" / split / "n03888257" / "a.JPEG", 64, 64, (1, 2, 3))

    monkeypatch.setattr(tv_imagenette, "download_and_extract_archive", fake_download)
    ds = load_dataset("imagenette", "val", image_size=64, root=tmp_path, download=True)
    assert len(ds) == 1 and ds.class_names == ("parachute",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imagenette2-160"]


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
