"""Tests for cam_tutorial.real.datasets: load_dataset and the real-data loaders on fake trees."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cam_tutorial.real.datasets import load_dataset
from cam_tutorial.lab import SyntheticShapes, denormalize


def test_load_dataset_lab_and_bad_names() -> None:
    ds = load_dataset("lab", "val", image_size=32, length=7, seed=2, region="left")
    assert isinstance(ds, SyntheticShapes) and len(ds) == 7 and ds.region == "left"
    assert torch.equal(ds[3][0], SyntheticShapes("val", 7, 32, 2, "left")[3][0])
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*'lab'"):
        load_dataset("imagenet", "train", 64)
    with pytest.raises(ValueError, match="region= applies to the lab only"):
        load_dataset("pets", "train", 64, region="left")
    creatures = load_dataset("lab", "val", image_size=32, length=3, objects="creatures")
    assert creatures.objects == "creatures" and torch.equal(
        creatures[1][0], SyntheticShapes("val", 3, 32, objects="creatures")[1][0])
    with pytest.raises(ValueError, match="objects= applies to the lab only"):
        load_dataset("imagenette", "train", 64, objects="creatures")
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("pets", "trainval", 64)


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
