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
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from cam_tutorial.lab import SPLITS, SyntheticShapes, integral_index, normalization_table
from cam_tutorial.real.inputs import env_flag, image_side, whole_number
from cam_tutorial.real.pretrained import OFFLINE_ENV

__all__ = ["photo_to_tensor", "RealDataset", "load_dataset", "default_data_root"]

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------
# Real data (Colab): Imagenette and Oxford-IIIT Pet
# ----------------------------------------------------------------------------------------------

def default_data_root() -> Path:
    """Where real datasets live unless ``root=`` says otherwise: ``~/.cache/cam_tutorial/data``.
    Used in no chapter directly."""
    return Path.home() / ".cache" / "cam_tutorial" / "data"


def photo_to_tensor(image: "Any", size: int) -> torch.Tensor:
    """A PIL image as the lab's input: RGB, its centre square resized to ``size x size`` (PIL's
    ``ImageOps.fit``), normalised like the lab's images: ``(3, size, size)`` float32.
    Used in no chapter directly.

    Example:
        >>> from PIL import Image
        >>> photo_to_tensor(Image.new("RGB", (40, 30)), 32).shape
        torch.Size([3, 32, 32])
    """
    from PIL import Image, ImageOps

    size = image_side(size)
    rgb = np.asarray(ImageOps.fit(image.convert("RGB"), (size, size), Image.BILINEAR), dtype=np.uint8)
    return torch.from_numpy(cv2.LUT(np.ascontiguousarray(rgb), normalization_table())).permute(2, 0, 1).contiguous()


class RealDataset(Dataset):
    """A real dataset as ``(image, label, box, mask)`` items, like the lab's.
    Used in no chapter directly.

    ``image`` is its centre square, resized to ``image_size`` and normalised like the lab's.
    Where a dataset has no localisation ground truth (Imagenette), ``box`` is four NaNs and
    ``mask`` is all ``False``: test with ``torch.isnan(box).any()`` or ``mask.any()``.
    Build it with :func:`load_dataset`; ``items`` are ``(photo path, label, trimap path or None)``.
    """

    def __init__(self, items: Sequence[tuple[Path, int, Path | None]], image_size: int,
                 class_names: Sequence[str], kind: str) -> None:
        self.items = list(items)
        self.image_size = image_size
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.kind = kind

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"RealDataset({self.kind!r}, items={len(self)}, image_size={self.image_size})"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]:
        from PIL import Image, ImageOps

        path, label, trimap_path = self.items[integral_index(index)]
        image, size = Image.open(path), self.image_size
        mask, box = np.zeros((size, size), dtype=bool), torch.full((4,), float("nan"))
        if trimap_path is not None:
            trimap = Image.open(trimap_path)
            if trimap.size != image.size:
                raise ValueError(f"the trimap {trimap_path} is {trimap.size[0]}x{trimap.size[1]} px but its photo "
                                 f"{path} is {image.size[0]}x{image.size[1]}: they do not belong together; "
                                 "download the dataset again")
            # Trimap: 1 = pet, 2 = background, 3 = boundary (counted as pet).
            values = np.asarray(ImageOps.fit(trimap, (size, size), Image.NEAREST))
            mask = (values == 1) | (values == 3)
            if mask.any():
                x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
                box = torch.tensor([x, y, x + w, y + h], dtype=torch.float32)
        return photo_to_tensor(image, size), label, box, torch.from_numpy(np.ascontiguousarray(mask))


_REAL = {"imagenette": "Imagenette", "pets": "Oxford-IIIT Pet"}


def _source(name: str, root: Path, image_size: int, split: str) -> tuple[Path, str, Callable[[Path], Any]]:
    """Where a real dataset lives under ``root``, the split's name there, and how to download it."""
    import torchvision.datasets as tvd

    if name == "imagenette":
        size, tv_split = ("160px" if image_size <= 160 else "320px"), ("train" if split == "train" else "val")
        return root / f"imagenette2-{size[:-2]}", tv_split, lambda where: tvd.Imagenette(
            str(where), split=tv_split, size=size, download=True)
    tv_split = "trainval" if split == "train" else "test"
    return root / "oxford-iiit-pet", tv_split, lambda where: tvd.OxfordIIITPet(str(where), tv_split, download=True)


def _imagenette_items(folder: Path, split: str) -> tuple[list[tuple[Path, int, None]], list[str]]:
    """torchvision's layout: ``<folder>/<split>/<wnid>/*.JPEG``; hidden folders (``.ipynb_checkpoints``) skipped."""
    from torchvision.datasets import Imagenette

    known = getattr(Imagenette, "_WNID_TO_CLASS", {})
    split_root = folder / split
    wnids = sorted(p.name for p in split_root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if split_root.is_dir() else []
    stray = [w for w in wnids if known and w not in known]
    if stray:
        raise ValueError(f"{split_root / stray[0]} is not an Imagenette class folder (those are WordNet ids such "
                         "as n01440764): move it out of the dataset")
    items = [(path, label, None) for label, wnid in enumerate(wnids)
             for path in sorted((split_root / wnid).iterdir()) if path.suffix.lower() == ".jpeg"]
    return items, [known.get(w, (w,))[0] for w in wnids]


def _pets_items(folder: Path, split: str) -> tuple[list[tuple[Path, int, Path]], list[str]]:
    """torchvision's layout: ``annotations/<split>.txt`` lines ``<id> <class 1-37> <species> <breed id>``
    (blank lines skipped), ``images/<id>.jpg``, ``annotations/trimaps/<id>.png``."""
    listing = folder / "annotations" / f"{split}.txt"
    rows = [(n, line.split()) for n, line in enumerate(listing.read_text().splitlines(), 1) if line.strip()] \
        if listing.is_file() else []
    bad = next(((n, row) for n, row in rows if len(row) != 4 or not row[1].isdigit()), None)
    if bad:
        raise ValueError(f"{listing}, line {bad[0]}: expected '<image id> <class> <species> <breed id>', got "
                         f"{' '.join(bad[1])!r}; download the dataset again")
    items = [(folder / "images" / f"{id_}.jpg", int(label) - 1, folder / "annotations" / "trimaps" / f"{id_}.png")
             for _, (id_, label, *_rest) in rows]
    names = dict(sorted({(label, path.stem.rsplit("_", 1)[0]) for path, label, _ in items}))
    return items, [" ".join(part.title() for part in names[k].split("_")) for k in sorted(names)]


def _missing_message(title: str, folder: Path) -> str:
    if not folder.exists():
        advice = "Pass download=True on a machine with internet access (e.g. Colab)"
    else:  # the download is skipped whenever the folder exists, so download=True alone cannot help
        advice = f"{folder} exists but holds no {title} images: delete it, then pass download=True"
    return (f"{title} not found under {folder.parent}. {advice}, or point root= at a copy; without real "
            "data, use the embedded default, load_dataset('lab', ...), which needs no files.")


def _download_atomically(title: str, folder: Path, download: bool, fetch: Callable[[Path], Any]) -> None:
    """Download into a temporary folder beside ``folder`` and move it into place only on success,
    so a failed or interrupted download leaves nothing half-written; a copy that another process
    finished meanwhile is kept (and used)."""
    if not download:
        raise FileNotFoundError(_missing_message(title, folder))
    if env_flag(OFFLINE_ENV):
        raise FileNotFoundError(f"{title} is not under {folder.parent}, and {OFFLINE_ENV}="
                                f"{os.environ[OFFLINE_ENV].strip()!r} forbids downloads: unset it on a machine with "
                                "internet access, or point root= at a copy, or use load_dataset('lab', ...)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
    try:
        try:
            fetch(tmp)
        except Exception as error:
            raise RuntimeError(
                f"downloading {title} into {folder.parent} failed ({type(error).__name__}: {error}); nothing was "
                f"kept. Check the internet connection, or use the embedded default, "
                f"load_dataset('lab', ...), which needs no download."
            ) from error
        try:
            os.replace(tmp / folder.name, folder)
        except OSError:
            if not folder.is_dir():
                raise
            logger.info("%s: another process finished the same download first; using its copy", title)
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
    Used in the appendix.

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
            data ``None`` keeps all, else a seeded random subset of that many (at most all).
        root: folder of the real datasets (default :func:`default_data_root`).
        download: fetch a missing real dataset (Colab); it lands in ``root`` only when complete.
            ``CAM_TUTORIAL_OFFLINE=1`` forbids it.
        seed: the lab's seed, or the seed of the real subset.
        region: the lab only (see :class:`SyntheticShapes`).
        objects: the lab only: ``"shapes"`` (default) or ``"creatures"`` (see :class:`SyntheticShapes`).

    Raises:
        ValueError: unknown name, bad split, size or length, a region for real data, or a
            dataset folder that does not hold the expected files (the message names the file).
        FileNotFoundError: real data missing and ``download=False`` (or downloads forbidden).
        RuntimeError: the download failed (nothing is left in ``root``).

    Example:
        >>> len(load_dataset("lab", "val", image_size=32, length=5))
        5
        >>> # load_dataset("pets", "train", 224, root="data", download=True)   # on Colab
    """
    name = str(name).lower()
    if name == "lab":
        if length is None:
            length = 10_000 if split == "train" else 2_000
        return SyntheticShapes(split=split, length=length, image_size=image_size, seed=seed, region=region,
                               objects=objects or "shapes")
    if name not in _REAL:
        raise ValueError(f"unknown dataset {name!r}: use 'lab' (embedded), 'imagenette' or 'pets'")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(map(repr, SPLITS))}")
    if region is not None or objects is not None:
        raise ValueError(f"{'region' if region is not None else 'objects'}= applies to the lab only: "
                         "real photographs cannot be re-rendered")
    image_size = image_side(image_size, "image_size")
    length = None if length is None else whole_number(length, "length")
    root = Path(root).expanduser() if root is not None else default_data_root()
    folder, tv_split, fetch = _source(name, root, image_size, split)
    if not folder.exists():
        _download_atomically(_REAL[name], folder, download, fetch)
    items, class_names = (_imagenette_items if name == "imagenette" else _pets_items)(folder, tv_split)
    if not items:
        raise FileNotFoundError(_missing_message(_REAL[name], folder))
    if length is not None and length > len(items):
        raise ValueError(f"length={length}, but {_REAL[name]} {tv_split} has {len(items)} images in {folder}: "
                         f"pass length=None for all of them, or at most {len(items)}")
    if length is not None:
        keep = np.sort(np.random.default_rng([seed, SPLITS[split]]).permutation(len(items))[:length])
        items = [items[int(i)] for i in keep]
    logger.info("loaded %s %s: %d items", _REAL[name], tv_split, len(items))
    return RealDataset(items, image_size, class_names, name)
