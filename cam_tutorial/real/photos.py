"""Real photographs that ship inside ordinary packages, with boxes annotated for the book.

Eight photographs, all on disk once scikit-image, scikit-learn and matplotlib are installed (no
download): scikit-image's ``chelsea``, ``coffee``, ``astronaut``, ``rocket`` and the left image of
``stereo_motorcycle``; scikit-learn's ``china.jpg`` and ``flower.jpg``; matplotlib's
``grace_hopper.jpg``. Their sources, licences and hand-annotated boxes are in
``cam_tutorial/data/photos.json`` (each :class:`Photo` carries its own); the book's credits page
lists them.

Eight photographs are far too few to *measure* localization; they are enough to *see* it, and to
check that the code that scores a real dataset does the right thing on real maps.

Example:
    >>> photo = load_photo("coffee")
    >>> photo.image.shape, photo.image.dtype, photo.boxes.tolist()
    ((400, 600, 3), dtype('uint8'), [[172, 15, 412, 292]])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Sequence

import numpy as np

__all__ = ["PHOTO_NAMES", "PHOTOS_JSON", "Photo", "load_photo", "load_photos"]

#: The shipped photographs, in the book's order.
PHOTO_NAMES: tuple[str, ...] = (
    "chelsea", "coffee", "astronaut", "rocket", "motorcycle", "china", "flower", "grace_hopper",
)


@dataclass(frozen=True)
class Photo:
    """One photograph and what the book knows about it.
    Used in no chapter directly.

    Attributes:
        name: the key in :data:`PHOTO_NAMES`, e.g. ``"coffee"``.
        image: ``(H, W, 3)`` uint8 RGB.
        boxes: ``(K, 4)`` int64 boxes ``(x0, y0, x1, y1)`` of the main objects in the photo's
            pixels, ``x1``/``y1`` exclusive (annotated by hand for the book).
        objects: what each box holds.
        plausible_classes: ImageNet-1k indices that name the main object (a judgement; may be empty).
        title, package, loader, credit, licence: where the photo comes from and on what terms.
    """

    name: str
    image: np.ndarray = field(repr=False)
    boxes: np.ndarray
    objects: tuple[str, ...]
    plausible_classes: tuple[int, ...]
    title: str
    package: str
    loader: str
    credit: str
    licence: str


#: The photographs' metadata: sources, licences and boxes (package data, its format checked by
#: tests/test_photos.py rather than at every load).
PHOTOS_JSON = resources.files("cam_tutorial") / "data" / "photos.json"


def _need(package: str, module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"this photograph ships with {package}, which is not installed: "
                          f"pip install {package}  (or: pip install 'cam-tutorial[photos]')") from err


def _read_pixels(name: str) -> np.ndarray:
    if name in ("chelsea", "coffee", "astronaut", "rocket"):
        return getattr(_need("scikit-image", "skimage.data"), name)()
    if name == "motorcycle":
        return _need("scikit-image", "skimage.data").stereo_motorcycle()[0]
    if name in ("china", "flower"):
        return _need("scikit-learn", "sklearn.datasets").load_sample_image(f"{name}.jpg")
    if name == "grace_hopper":
        from PIL import Image

        cbook = _need("matplotlib", "matplotlib.cbook")
        with cbook.get_sample_data("grace_hopper.jpg") as handle:
            return np.asarray(Image.open(handle).convert("RGB"))
    raise AssertionError(name)  # names are checked against the JSON first


def load_photo(name: str) -> Photo:
    """One shipped photograph as a :class:`Photo` (uint8 RGB pixels and its annotated boxes).
    Used in no chapter directly.

    Raises:
        ValueError: a name that is not in :data:`PHOTO_NAMES`.
        ImportError: the package that ships the photo is missing (the message says which).
    """
    records = json.loads(PHOTOS_JSON.read_text(encoding="utf-8"))["photos"]
    if name not in records:
        raise ValueError(f"there is no photograph {name!r}; choose one of {', '.join(PHOTO_NAMES)}")
    record = records[name]
    image = np.ascontiguousarray(np.asarray(_read_pixels(name), dtype=np.uint8)[..., :3])
    return Photo(name=name, image=image, boxes=np.asarray(record["boxes"], dtype=np.int64).reshape(-1, 4),
                 objects=tuple(record["objects"]), plausible_classes=tuple(record["plausible_classes"]),
                 **{key: record[key] for key in ("title", "package", "loader", "credit", "licence")})


def load_photos(names: Sequence[str] | None = None) -> list[Photo]:
    """Several shipped photographs (all of :data:`PHOTO_NAMES` by default), in the order asked.
    Used in the appendix."""
    if isinstance(names, str):
        raise TypeError(f"names must be a sequence of names, not one string; use load_photo({names!r}) "
                        f"or load_photos([{names!r}])")
    return [load_photo(n) for n in (PHOTO_NAMES if names is None else names)]
