"""Real datasets for Colab (Imagenette, Oxford-IIIT Pet) and photographs as the lab's input.

Every dataset here yields ``(image, label, box, mask)`` items like the lab's
(:class:`cam_tutorial.lab.SyntheticShapes`), normalised the same way, so every chapter's code runs
on either. The real ones download on request (Colab); nothing here is needed offline.

Example:
    >>> from cam_tutorial.real.datasets import load_dataset
    >>> image, label, box, mask = load_dataset("lab", "val", image_size=32, length=2)[0]
    >>> tuple(image.shape)
    (3, 32, 32)
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from cam_tutorial.lab import MIN_IMAGE_SIZE, SPLITS, SyntheticShapes, integral_index, normalization_table

__all__ = ["photo_to_tensor", "RealDataset", "load_dataset", "default_data_root"]

logger = logging.getLogger(__name__)

_DEFAULT_LENGTHS = {"train": 10_000, "val": 2_000, "test": 2_000}
_DATA_ROOT_ENV = "CAM_TUTORIAL_DATA"

# ----------------------------------------------------------------------------------------------
# Real data (Colab): Imagenette and Oxford-IIIT Pet
# ----------------------------------------------------------------------------------------------

def default_data_root() -> Path:
    """Where real datasets live: ``$CAM_TUTORIAL_DATA`` or ``~/.cache/cam_tutorial/data``.

    The variable is stripped of surrounding spaces, and a blank one counts as unset (``'  '``
    would otherwise make a folder named by two spaces in the working directory).
    """
    env = os.environ.get(_DATA_ROOT_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cam_tutorial" / "data"


def _resize_centre_crop(image: "Any", size: int, nearest: bool) -> "Any":
    """PIL image: resize so the shorter side is ``size``, then crop the centre ``size x size``."""
    from PIL import Image

    width, height = image.size
    factor = size / min(width, height)
    new_w, new_h = max(size, round(width * factor)), max(size, round(height * factor))
    resample = Image.NEAREST if nearest else Image.BILINEAR
    image = image.resize((new_w, new_h), resample=resample)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def _normalise_pil(image: "Any") -> torch.Tensor:
    rgb = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
    return torch.from_numpy(cv2.LUT(rgb, normalization_table())).permute(2, 0, 1).contiguous()


def photo_to_tensor(image: "Any", size: int) -> torch.Tensor:
    """A PIL image as the lab's input: RGB, shorter side resized to ``size``, centre ``size x size``
    crop, normalised like the lab's images: ``(3, size, size)`` float32.

    Example:
        >>> from PIL import Image
        >>> photo_to_tensor(Image.new("RGB", (40, 30)), 16).shape
        torch.Size([3, 16, 16])
    """
    return _normalise_pil(_resize_centre_crop(image.convert("RGB"), int(size), nearest=False))


def _box_of(mask: np.ndarray) -> torch.Tensor:
    """Tight box (x0, y0, x1, y1), exclusive ends, of a bool mask; NaNs when it is empty."""
    if not mask.any():
        return torch.full((4,), float("nan"))
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    return torch.tensor([x, y, x + w, y + h], dtype=torch.float32)


class RealDataset(Dataset):
    """A real dataset as ``(image, label, box, mask)`` items, like the lab's.

    ``image`` is resized (shorter side to ``image_size``), centre-cropped and normalised like
    the lab's. Where a dataset has no localisation ground truth (Imagenette), ``box`` is four
    NaNs and ``mask`` is all ``False``: test with ``torch.isnan(box).any()`` or ``mask.any()``.
    Build it with :func:`load_dataset`.
    """

    def __init__(self, base: Any, image_size: int, class_names: Sequence[str], kind: str,
                 indices: Sequence[int] | None = None) -> None:
        self.base = base
        self.image_size = image_size
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.kind = kind
        self.indices = list(indices) if indices is not None else list(range(len(base)))

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        return f"RealDataset({self.kind!r}, items={len(self)}, image_size={self.image_size})"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]:
        image, target = self.base[self.indices[integral_index(index)]]
        size = self.image_size
        if self.kind == "pets":
            label, trimap = target
            # Trimap: 1 = pet, 2 = background, 3 = boundary (counted as pet).
            trimap = _resize_centre_crop(trimap, size, nearest=True)
            values = np.asarray(trimap)
            mask = (values == 1) | (values == 3)
            box = _box_of(mask)
        else:
            label = target
            mask = np.zeros((size, size), dtype=bool)
            box = torch.full((4,), float("nan"))
        image = photo_to_tensor(image, size)
        return image, int(label), box, torch.from_numpy(np.ascontiguousarray(mask))


def _missing_message(name: str, root: Path, expected: Path) -> str:
    return (
        f"{name} not found under {root} (expected {expected}). Pass download=True on a machine "
        f"with internet access (e.g. Colab), or point root= at a copy; without real data, use "
        f"the embedded default, load_dataset('lab', ...), which needs no files."
    )


def _download_atomically(name: str, root: Path, folder: str, build: Any) -> None:
    """Download into a temporary folder inside ``root`` and move ``folder`` into place only on
    success, so a failed or interrupted download leaves nothing half-written in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    try:
        build(tmp, True)
        os.replace(tmp / folder, root / folder)
    except Exception as error:
        raise RuntimeError(
            f"downloading {name} into {root} failed ({type(error).__name__}: {error}); nothing was "
            f"kept. Check the internet connection, or use the embedded default, "
            f"load_dataset('lab', ...), which needs no download."
        ) from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_dataset(
    name: str,
    split: str = "train",
    image_size: int = 64,
    length: int | None = None,
    root: str | os.PathLike | None = None,
    download: bool = False,
    seed: int = 0,
    region: str | Sequence[float] | None = None,
    objects: str | None = None,
) -> Dataset:
    """One entry point for the lab and the real datasets; all yield ``(image, label, box, mask)``.

    Args:
        name: ``"lab"`` (:class:`SyntheticShapes`, no files needed), ``"imagenette"``
            (torchvision's Imagenette, 10 ImageNet classes; no boxes: box NaN, mask empty) or
            ``"pets"`` (Oxford-IIIT Pet, 37 breeds; mask and box from the trimap, where the
            boundary band counts as pet). TODO: Imagenette's validation images are ImageNet
            validation images, whose boxes could be joined by file name from ImageNet's
            ``LOC_val_solution.csv`` (a future ``boxes_csv=`` argument).
        split: ``"train"``, ``"val"`` or ``"test"``. Imagenette has train/val: ``"test"`` reads
            val. Pets has trainval/test: ``"train"`` reads trainval, ``"val"`` and ``"test"`` read test.
        image_size: side of the square images.
        length: number of items; for the lab the default is 10,000 (train) or 2,000; for real
            data ``None`` keeps all, else a seeded random subset of that many.
        root: folder of the real datasets (default :func:`default_data_root`).
        download: fetch a missing real dataset (Colab); it lands in ``root`` only when complete.
        seed: the lab's seed, or the seed of the real subset.
        region: the lab only (see :class:`SyntheticShapes`).
        objects: the lab only: ``"shapes"`` (default) or ``"creatures"`` (see :class:`SyntheticShapes`).

    Raises:
        ValueError: unknown name, bad split or size, or a region for real data.
        FileNotFoundError: real data missing and ``download=False``.
        RuntimeError: the download failed (nothing is left in ``root``).

    Example:
        >>> len(load_dataset("lab", "val", image_size=32, length=5))
        5
        >>> # load_dataset("pets", "train", 224, root="data", download=True)   # on Colab
    """
    name = str(name).lower()
    if name == "lab":
        if length is None:
            length = _DEFAULT_LENGTHS.get(split, 2_000)
        return SyntheticShapes(split=split, length=length, image_size=image_size, seed=seed, region=region,
                               objects=objects or "shapes")
    if name not in ("imagenette", "pets"):
        raise ValueError(f"unknown dataset {name!r}: use 'lab' (embedded), 'imagenette' or 'pets'")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(map(repr, SPLITS))}")
    if region is not None or objects is not None:
        raise ValueError(f"{'region' if region is not None else 'objects'}= applies to the lab only: "
                         "real photographs cannot be re-rendered")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be an int >= {MIN_IMAGE_SIZE}, got {image_size!r}")
    if length is not None and (not isinstance(length, (int, np.integer)) or length <= 0):
        raise ValueError(f"length must be a positive int or None, got {length!r}")
    root = Path(root).expanduser() if root is not None else default_data_root()

    import torchvision.datasets as tvd

    if name == "imagenette":
        size = "160px" if image_size <= 160 else "320px"
        folder = f"imagenette2-{size[:-2]}"
        tv_split = "train" if split == "train" else "val"

        def build(where: Path, fetch: bool) -> Any:
            return tvd.Imagenette(str(where), split=tv_split, size=size, download=fetch)

        expected = root / folder / tv_split
        title = "Imagenette"
    else:
        folder = "oxford-iiit-pet"
        tv_split = "trainval" if split == "train" else "test"

        def build(where: Path, fetch: bool) -> Any:
            return tvd.OxfordIIITPet(str(where), split=tv_split, target_types=("category", "segmentation"),
                                     download=fetch)

        expected = root / folder / "annotations" / f"{tv_split}.txt"
        title = "Oxford-IIIT Pet"

    if not (root / folder).exists():
        if not download:
            raise FileNotFoundError(_missing_message(title, root, expected))
        _download_atomically(title, root, folder, build)
    try:
        base = build(root, False)
    except (RuntimeError, FileNotFoundError, OSError) as error:
        raise FileNotFoundError(_missing_message(title, root, expected) + f" ({error})") from error
    if name == "imagenette":
        class_names = [names[0] for names in base.classes]
    else:
        class_names = list(base.classes)
    indices = None
    if length is not None and length < len(base):
        indices = np.sort(np.random.default_rng([seed, SPLITS[split]]).permutation(len(base))[:length])
        indices = [int(i) for i in indices]
    logger.info("loaded %s %s: %d items", title, tv_split, len(base) if indices is None else len(indices))
    return RealDataset(base, int(image_size), class_names, name, indices)
