"""Diagrams of the book's ideas, drawn with matplotlib: boxes, arrows and the shapes between them.

Each function returns a figure sized for the book's text column (:data:`DIAGRAM_WIDTH` inches at
100 dpi, about 690 px) with labels of at least :data:`DIAGRAM_FONT` points, so that they stay
legible at the page's width. Shapes are taken from the models themselves (:func:`stage_shapes`),
never typed in, so a diagram stays true when a preset changes the sizes.

Example:
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from cam_tutorial.models import ResNet18B
    >>> shapes = stage_shapes(ResNet18B(width=8), image_size=64)
    >>> shapes[-1]
    ('conv5_x', (64, 4, 4))
    >>> fig = draw_resnet18b_stages(shapes, image_size=64)
    >>> any(text.get_text() == "conv5_x" for text in fig.axes[0].texts)
    True
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from torch import nn

from cam_tutorial.evaluation import model_device

__all__ = ["draw_cam_pipeline", "draw_building_block", "draw_resnet18b_stages", "draw_vgg_heads",
           "stage_shapes", "vgg_head_shapes", "DIAGRAM_WIDTH", "DIAGRAM_FONT"]

#: Width of every diagram, in inches: the book's text column at 100 dpi.
DIAGRAM_WIDTH = 6.9
#: Font size of the labels, in points (13.9 px at 100 dpi).
DIAGRAM_FONT = 10

COLOURS = {"data": "#dbe9f6", "layer": "#fde7c8", "head": "#d9f0d3", "cam": "#f8d5d5", "skip": "#e8e0f0"}


def _canvas(height: float, xlim: float, ylim: float) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(DIAGRAM_WIDTH, height), dpi=100)
    ax.set_xlim(0, xlim)
    ax.set_ylim(0, ylim)
    ax.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.99)
    return fig, ax


def _box(ax: plt.Axes, x: float, y: float, width: float, height: float, text: str, kind: str = "layer",
         fontsize: float = DIAGRAM_FONT, weight: str = "normal") -> None:
    """A rounded box centred at (x, y) with ``text`` in it."""
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.02,rounding_size=0.08", facecolor=COLOURS[kind],
                                edgecolor="#555555", linewidth=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, weight=weight)


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float], text: str | None = None,
           offset: tuple[float, float] = (0.0, 0.18), colour: str = "#333333",
           connection: str = "arc3") -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color=colour, linewidth=1.2,
                                 connectionstyle=connection, shrinkA=0, shrinkB=0))
    if text:
        ax.text((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1], text,
                ha="center", va="bottom", fontsize=DIAGRAM_FONT - 1, color=colour)


def _shape(shape: Sequence[int]) -> str:
    return "\u00d7".join(str(int(s)) for s in shape)


def stage_shapes(model: nn.Module, image_size: int) -> list[tuple[str, tuple[int, ...]]]:
    """Output shape (without the batch) of each stage of a ResNet18B, measured by a forward pass.
    Used in chapters 2 and 5.

    Blocks named ``convN_M`` are grouped into their stage ``convN_x`` (the shape of its last
    block); other children of ``model.features`` (the gate) keep their names. The input is
    ``(3, image_size, image_size)`` and the last entry is ``model.features``'s output. A model
    built under ``torch.device("meta")`` gives the shapes with no memory and no arithmetic.

    Args:
        model: a :class:`cam_tutorial.models.ResNet18B` (anything with ``features`` and ``classifier``).
        image_size: the side of the square input.

    Returns:
        ``[("input", (3, s, s)), ("gate", ...), ("conv2_x", ...), ..., ("conv5_x", ...)]``.
    """
    shapes = {"input": (3, image_size, image_size)}
    x = torch.zeros(1, 3, image_size, image_size, device=model_device(model))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            for name, child in model.features.named_children():
                x = child(x)
                stage = name.split("_")[0] + "_x" if name.startswith("conv") and "_" in name else name
                shapes[stage] = tuple(x.shape[1:])
    finally:
        model.train(was_training)
    return list(shapes.items())


def vgg_head_shapes(model: nn.Module, image_size: int) -> dict[str, object]:
    """What a VGG's head sees and gives: the feature maps' shape, the head's layers, the classes.
    Used in chapter 1.

    Args:
        model: a :class:`cam_tutorial.models.VGG` from ``vgg16_fc`` or ``vgg16_gap``.
        image_size: the side of the square input (``vgg16_fc`` accepts only the size it was built for).

    Returns:
        ``{"features": (K, h, w), "linear": [(in, out), ...], "head": "fc" or "gap"}``.
    """
    linear = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    return {"features": stage_shapes(model, image_size)[-1][1], "linear": linear,
            "head": getattr(model, "head", "?")}


def draw_cam_pipeline(channels: int = 512, side: int = 14, image_size: int = 224,
                      num_classes: int = 10) -> Figure:
    """The CAM pipeline: features -> GAP -> weights -> weighted sum of maps -> upsampled map.
    Used in chapters 5 and 8.

    Top row, the classifier: the image goes through the convolutional backbone to ``K`` feature
    maps ``f_k``, GAP averages each to one number ``F_k``, the linear layer turns them into class
    scores ``S_c = sum_k w_k^c F_k``. Bottom row, CAM: the same weights ``w_k^c`` sum the maps
    themselves, ``M_c = sum_k w_k^c f_k``, which is upsampled to the image.

    Args:
        channels, side: the feature maps' ``K`` and ``h = w``.
        image_size: the input's side.
        num_classes: ``C``, the classifier's outputs.
    """
    fig, ax = _canvas(3.3, 10.0, 4.8)
    top, bottom = 3.7, 1.2
    _box(ax, 0.85, top, 1.5, 1.0, f"image\n3\u00d7{image_size}\u00d7{image_size}", "data")
    _box(ax, 2.85, top, 1.5, 1.0, "conv\nbackbone", "layer")
    _box(ax, 4.85, top, 1.6, 1.0, f"features $f_k$\n{channels}\u00d7{side}\u00d7{side}", "data")
    _box(ax, 6.85, top, 1.4, 1.0, f"GAP\n$F_k$: {channels}", "layer")
    _box(ax, 8.95, top, 1.8, 1.0, f"linear $W$\nscores $S_c$: {num_classes}", "head")
    for start, end in ((1.6, 2.1), (3.6, 4.05), (5.65, 6.15), (7.55, 8.05)):
        _arrow(ax, (start, top), (end, top))
    _box(ax, 4.85, bottom, 2.3, 1.1, "weighted sum\n$M_c = \\sum_k w_k^c f_k$\n" + f"{side}\u00d7{side}", "cam")
    _box(ax, 8.3, bottom, 2.6, 1.1, "upsample (bilinear)\nand normalise:\n"
         f"map {image_size}\u00d7{image_size}", "cam")
    _arrow(ax, (4.85, top - 0.5), (4.85, bottom + 0.55), "same maps", offset=(0.55, -0.05))
    _arrow(ax, (8.95, top - 0.5), (6.0, bottom + 0.3), "weights $w_k^c$ of class $c$", offset=(1.35, -0.3),
           connection="arc3,rad=-0.15")
    _arrow(ax, (6.0, bottom), (7.0, bottom))
    ax.text(0.15, 2.45, "classify: one forward pass", fontsize=DIAGRAM_FONT, style="italic", color="#444444")
    ax.text(0.15, 0.15, "CAM: the same pass, no extra training", fontsize=DIAGRAM_FONT, style="italic",
            color="#444444")
    return fig


def draw_building_block() -> Figure:
    """The residual building block with shortcut A (zero-padded identity) and B (1x1 projection + BN).
    Used in chapter 2.

    Left, the block: ``conv 3x3 (stride s)``, BN, ReLU, ``conv 3x3``, BN, then the shortcut is
    added and a ReLU follows. Right, the two shortcuts for a block that changes the width
    (``C_in -> C_out``) or the stride: A subsamples and pads the new channels with zeros (no
    parameters); B is a strided 1x1 convolution and BN. When neither changes, both are the identity.
    """
    fig, ax = _canvas(4.6, 10.0, 6.7)
    x, w, h = 1.9, 2.6, 0.55
    rows = ["x: $C_{in}$\u00d7H\u00d7W", "conv 3\u00d73, stride s", "BN, ReLU", "conv 3\u00d73", "BN"]
    ys = [6.15, 5.15, 4.3, 3.45, 2.6]
    for i, (text, y) in enumerate(zip(rows, ys)):
        _box(ax, x, y, w, h, text, "data" if i == 0 else "layer")
        if i:
            _arrow(ax, (x, ys[i - 1] - h / 2), (x, y + h / 2))
    ax.add_patch(plt.Circle((x, 1.55), 0.25, facecolor="white", edgecolor="#333333"))
    ax.text(x, 1.55, "+", ha="center", va="center", fontsize=DIAGRAM_FONT + 4)
    _arrow(ax, (x, ys[-1] - h / 2), (x, 1.8))
    _box(ax, x, 0.55, w, h, "ReLU: $C_{out}$\u00d7H/s\u00d7W/s", "data")
    _arrow(ax, (x, 1.3), (x, 0.55 + h / 2))
    # the shortcut, around the right of the main path
    _arrow(ax, (x + w / 2, 6.15), (x + 0.25, 1.55), "shortcut", offset=(0.85, 0.0), connection="arc3,rad=-0.45",
           colour="#6a3d9a")
    ax.text(6.9, 6.25, "the shortcut, when $C_{out} \\neq C_{in}$ or s > 1:", ha="center",
            fontsize=DIAGRAM_FONT, weight="bold")
    _box(ax, 6.9, 4.95, 5.4, 1.45, "A: identity, zero-padded\ntake every s-th pixel, add $C_{out} - C_{in}$\n"
         "channels of zeros (no parameters)", "skip")
    _box(ax, 6.9, 2.95, 5.4, 1.45, "B: projection\nconv 1\u00d71, stride s ($C_{in} C_{out}$ weights),\n"
         "then BN (as torchvision's ResNet-18)", "skip")
    ax.text(6.9, 1.55, "otherwise both are the identity: x itself", ha="center", fontsize=DIAGRAM_FONT,
            style="italic")
    return fig


def draw_resnet18b_stages(shapes: Sequence[tuple[str, Sequence[int]]], image_size: int | None = None,
                          num_classes: int | None = None) -> Figure:
    """ResNet18B stage by stage, each with the shape of its output (from :func:`stage_shapes`).
    Used in chapter 2.

    Each stage is a box whose height follows its output's side, labelled with its name and
    ``channels x h x w``; GAP and the linear layer close the row.

    Args:
        shapes: ``(name, (C, h, w))`` per stage, in order, the input first.
        image_size: shown in the title line (default: the input's side).
        num_classes: the classifier's outputs, shown in its box (default: ``C``).
    """
    if not shapes:
        raise ValueError("draw_resnet18b_stages needs the stages' shapes: use stage_shapes(model, image_size)")
    largest = max(s[1][-1] for s in shapes)
    k = shapes[-1][1][0]
    # (name, box height, text below, kind): each stage's box height follows its output's side
    columns = [(name, 0.9 + 1.6 * shape[-1] / largest, _shape(shape), "data" if name == "input" else "layer")
               for name, shape in shapes]
    columns += [("GAP", 0.9, str(k), "layer"),
                ("linear", 0.9, f"{k}\u2192{num_classes if num_classes else 'C'}", "head")]
    fig, ax = _canvas(2.4, float(len(columns)) * 1.25, 3.6)
    for i, (name, height, below, kind) in enumerate(columns):
        x = 0.62 + i * 1.25
        _box(ax, x, 2.0, 1.1, height, name, kind, weight="bold")
        ax.text(x, 2.0 - height / 2 - 0.12, below, ha="center", va="top", fontsize=DIAGRAM_FONT - 1)
        if i:
            _arrow(ax, (x - 1.25 + 0.55, 2.0), (x - 0.55, 2.0))
    side = image_size or shapes[0][1][-1]
    ax.text(0.05, 3.55, f"each stage's output (channels\u00d7h\u00d7w) for a {side}\u00d7{side} image; "
            "convN_x: two blocks", fontsize=DIAGRAM_FONT, va="top")
    return fig


def draw_vgg_heads(fc: dict[str, object], gap: dict[str, object], image_size: int) -> Figure:
    """VGG16 with its fully connected head against VGG16-GAP, each with the shapes its head sees.
    Used in chapter 1.

    Args:
        fc, gap: :func:`vgg_head_shapes` of ``vgg16_fc`` and ``vgg16_gap`` models.
        image_size: the input's side, for the first box.
    """
    fig, ax = _canvas(3.2, 10.0, 4.6)
    for y, info, name in ((3.4, fc, "VGG16 (FC head)"), (1.1, gap, "VGG16-GAP")):
        k, h, w = info["features"]  # type: ignore[misc]
        linear = info["linear"]  # type: ignore[assignment]
        ax.text(0.05, y + 0.85, name, fontsize=DIAGRAM_FONT + 1, weight="bold")
        _box(ax, 0.8, y, 1.4, 0.9, f"image\n3\u00d7{image_size}\u00d7{image_size}", "data")
        convs = "conv1_1 ... conv5_3\n+ pool5" if info["head"] == "fc" else "conv1_1 ... conv5_3\n+ conv 3\u00d73"
        _box(ax, 2.8, y, 2.1, 0.9, convs, "layer", fontsize=DIAGRAM_FONT - 1)
        _box(ax, 4.85, y, 1.7, 0.9, f"maps f\n{k}\u00d7{h}\u00d7{w}", "data")
        if info["head"] == "fc":
            _box(ax, 6.65, y, 1.4, 0.9, f"flatten\n{k * h * w:,}", "layer")
            fcs = "\n".join(f"FC {a:,}\u2192{b:,}" for a, b in linear)  # type: ignore[union-attr]
            _box(ax, 8.75, y, 2.3, 1.1, fcs, "head", fontsize=DIAGRAM_FONT - 1)
            note = "one weight per channel and position"
        else:
            _box(ax, 6.65, y, 1.4, 0.9, f"GAP\n{k}", "layer")
            a, b = linear[-1]  # type: ignore[index]
            _box(ax, 8.75, y, 2.3, 0.9, f"linear {a:,}\u2192{b:,}", "head")
            note = "one weight per channel: CAM reads it"
        ax.text(6.65, y - 0.62, note, ha="center", va="top", fontsize=DIAGRAM_FONT - 1, style="italic")
        for start, end in ((1.5, 1.75), (3.85, 4.0), (5.7, 5.95), (7.35, 7.6)):
            _arrow(ax, (start, y), (end, y))
    return fig
