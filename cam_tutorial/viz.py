"""Pictures of images and maps: galleries with boxes, CAM overlays, maps of several methods, parts.

Curves and charts of measurements are in :mod:`cam_tutorial.plots`.

Everything here returns or draws matplotlib figures and takes tensors or arrays as the rest of the
package produces them; nothing here computes a result the book measures.
"""

from __future__ import annotations

import io
from typing import Any, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle

__all__ = ["show_gallery", "draw_box", "overlay", "show_map_rows", "show_parts", "show_jpeg",
           "PART_COLORS", "MAX_FIGURE_WIDTH", "LABEL_SIZE"]

#: Widest figure, in inches, of the grids here. The book's text column is about 690 px wide at a
#: 1280 px window and notebooks draw at 100 px per inch, so a wider figure is shrunk and its labels
#: with it; at this width it is shown at its own size (``scripts/check_pages.py`` measures it).
MAX_FIGURE_WIDTH = 6.9
#: Font size, in points, of the panel titles, row names and legends of the grids (12.5 px).
LABEL_SIZE = 9
#: Smallest side, in inches, of a grid's image: a wider grid wraps onto more rows instead.
MIN_PANEL_SIZE = 1.55


def _to_display(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """One image -> ``(H, W, 3)`` RGB or ``(H, W)`` grey float32 array in [0, 1], for ``imshow``.

    Accepts a ``(3, H, W)`` tensor (normalised or in [0, 1]), a ``(1, H, W)`` or ``(H, W)`` grey one,
    an ``(H, W, 3)``, ``(H, W, 1)`` or ``(H, W)`` array, and ``uint8`` in [0, 255]. A grey image
    outside [0, 1] (normalised with some mean and std) is min-max scaled, since the RGB statistics
    do not apply to it; an RGB one is denormalised.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        image = image.float() / 255 if image.dtype == torch.uint8 else image.float()
        if image.ndim == 3 and image.shape[0] == 3 and (image.min() < 0 or image.max() > 1):
            from cam_tutorial.lab import denormalize  # lazy: data is heavier than viz needs

            image = denormalize(image)  # normalised as the models expect
    array = np.asarray(image)
    array = _channels_last(array / 255.0 if array.dtype == np.uint8 else array, isinstance(image, torch.Tensor))
    array = array.astype(np.float32)
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
        raise ValueError(
            f"cannot show an image of shape {tuple(np.shape(image))}: give (3, H, W) or (1, H, W) tensors, "
            "(H, W, 3) arrays or (H, W) grey images (for a batch, pass one image per item)"
        )
    if array.ndim == 2 and array.size and (array.min() < 0 or array.max() > 1):
        low, high = float(array.min()), float(array.max())
        array = (array - low) / (high - low) if high > low else np.zeros_like(array)
    return np.clip(array, 0, 1)


def _channels_last(array: np.ndarray, from_tensor: bool) -> np.ndarray:
    """``(C, H, W)`` -> ``(H, W, C)``, and one channel -> ``(H, W)``.

    Tensors are channels-first by torch convention; arrays are ``(H, W, C)`` unless clearly not.
    """
    if array.ndim == 3 and array.shape[0] in (1, 3) and (from_tensor or array.shape[-1] not in (1, 3)):
        array = np.moveaxis(array, 0, -1)
    return array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array


def _show(ax: plt.Axes, picture: np.ndarray) -> None:
    """``imshow`` of a :func:`_to_display` result: grey images in grey, not in a colormap."""
    if picture.ndim == 2:
        ax.imshow(picture, cmap="gray", vmin=0.0, vmax=1.0)
    else:
        ax.imshow(picture)


def _label_title(label: object, class_names: Sequence[str] | None) -> str:
    """The title of a gallery image: its class name, or the index when there are no names."""
    try:
        index = int(label)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise TypeError(f"labels must be class indices (ints), got {type(label).__name__} {label!r}; "
                        "for free text pass titles= instead") from None
    if not class_names:
        return str(index)
    if not 0 <= index < len(class_names):
        raise ValueError(
            f"label {index} has no name: class_names holds {len(class_names)} names (indices 0 to "
            f"{len(class_names) - 1}); give a name for every class, or leave class_names out to show indices"
        )
    return str(class_names[index])


def draw_box(ax: plt.Axes, box: Sequence[float], color: str = "lime", label: str | None = None,
             linewidth: float = 1.5) -> None:
    """Draw a box ``(x0, y0, x1, y1)`` in pixels (``x1``, ``y1`` exclusive) on ``ax``.
    Used in chapters 4, 5, 6 and 7, and the appendix.

    The box is drawn above the axes' frame and not clipped to it, so that a box along the image's
    edge (one that covers the whole image, say) stays visible instead of hiding under the frame.

    Example:
        >>> fig, ax = plt.subplots()
        >>> draw_box(ax, (2, 2, 8, 6), "red", "predicted")
        >>> len(ax.patches)
        1
        >>> plt.close(fig)
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    if not np.isfinite([x0, y0, x1, y1]).all():
        return  # an unknown box (real data without boxes) draws nothing
    # Pixel i covers [i - 0.5, i + 0.5] in imshow's coordinates.
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color,
                           linewidth=linewidth, label=label, clip_on=False, zorder=3))


def show_gallery(images: torch.Tensor | Sequence, labels: Sequence[int] | torch.Tensor | None = None,
                 boxes: torch.Tensor | Sequence | None = None, pred_boxes: torch.Tensor | Sequence | None = None,
                 class_names: Sequence[str] | None = None, ncols: int = 8, title: str | None = None,
                 size: float = 1.6, titles: Sequence[str] | None = None) -> plt.Figure:
    """A grid of images with ground-truth boxes (green) and, optionally, predicted boxes (red).
    Used in chapters 1, 3 and 7, and the appendix.

    Args:
        images: ``(B, 3, H, W)`` tensor (normalised or in [0, 1]), grey ``(B, 1, H, W)`` or
            ``(B, H, W)`` (shown in grey), or a sequence of images.
        labels: class index per image, shown as the title (with ``class_names``, which must
            name every label shown).
        boxes: ground-truth ``(x0, y0, x1, y1)`` per image, in pixels.
        pred_boxes: predicted boxes per image.
        class_names: names for ``labels``.
        ncols: images per row, at most as many as fit at :data:`MIN_PANEL_SIZE` inches each
            (four): more images wrap onto rows of even length (:func:`balanced_columns`: six
            images make two rows of three).
        title: the figure's title.
        size: inches per image, at most; smaller when ``ncols`` images would make the figure wider
            than :data:`MAX_FIGURE_WIDTH`.
        titles: one title per image (e.g. the IoU), shown instead of the label's name.

    Returns:
        The matplotlib figure.
    """
    n = len(images)  # (N, H, W): its items are grey (H, W) images
    if n == 0:
        raise ValueError("show_gallery needs at least one image")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} images: give one label per image")
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images: give one title per image")
    legend = pred_boxes is not None and boxes is not None
    fig, [cells] = _wrapped_grid(n, 1, ncols, size, title, legend)
    for i, ax in enumerate(cells):
        ax.axis("off")
        _show(ax, _to_display(images[i]))
        if titles is not None:
            ax.set_title(titles[i], fontsize=LABEL_SIZE)
        elif labels is not None:
            ax.set_title(_label_title(labels[i], class_names), fontsize=LABEL_SIZE)
        if boxes is not None:
            draw_box(ax, boxes[i], "lime", "ground truth" if i == 0 else None)
        if pred_boxes is not None:
            draw_box(ax, pred_boxes[i], "red", "predicted" if i == 0 else None)
    if legend:
        fig.legend(loc="outside lower center", ncol=2, fontsize=LABEL_SIZE, frameon=False)
    return fig


def balanced_columns(count: int, most: int) -> int:
    """Columns for ``count`` panels, at most ``most`` a row, in as few rows as fit and rows as even as can be.

    The fewest rows that hold ``count`` panels at ``most`` a row, then the fewest columns that fill
    those rows: six panels at most four a row make two rows of three, not four and two.

    Example:
        >>> [balanced_columns(n, 4) for n in (1, 4, 5, 6, 7, 8, 9, 16)]
        [1, 4, 3, 3, 4, 4, 3, 4]
    """
    rows = -(-count // most)
    return -(-count // rows)


def _wrapped_grid(count: int, rows: int, most_columns: int, size: float, title: str | None, legend: bool,
                  margin: float = 0.0) -> tuple[plt.Figure, list[list[plt.Axes]]]:
    """A grid of square panels, ``rows`` of them per item, that wraps ``count`` items into blocks.

    A block holds at most ``most_columns`` items, and no more than fit at :data:`MIN_PANEL_SIZE`
    inches in :data:`MAX_FIGURE_WIDTH` less ``margin`` (extra width, in inches, for row names), in
    blocks as even as can be (:func:`balanced_columns`); panels are at most ``size`` inches. Constrained
    layout leaves room for the panel titles, the title and a legend below the grid. The last block's
    cells past the last item are taken out of the figure, so that nothing is drawn there.

    Returns:
        The figure and its cells: ``cells[r][i]`` is row ``r`` of item ``i``.
    """
    fitting = max(1, int((MAX_FIGURE_WIDTH - margin) // MIN_PANEL_SIZE))
    columns = balanced_columns(count, min(most_columns, fitting))
    blocks = -(-count // columns)
    size = min(size, (MAX_FIGURE_WIDTH - margin) / columns)
    height = (size + 0.25) * rows * blocks + (0.4 if title else 0) + (0.35 if legend else 0)
    fig, axes = plt.subplots(rows * blocks, columns, squeeze=False, layout="constrained",
                             figsize=(size * columns + margin, height))
    for ax in axes[-rows:, count - (blocks - 1) * columns:].flat:
        ax.remove()
    if title:
        fig.suptitle(title)
    return fig, [[axes[(i // columns) * rows + r, i % columns] for i in range(count)] for r in range(rows)]


def overlay(
    image: torch.Tensor | np.ndarray,
    cam: torch.Tensor | np.ndarray,
    alpha: float = 0.5,
    colormap: str = "jet",
) -> np.ndarray:
    """Blend a class activation map over an image: ``(1 - alpha) * image + alpha * colormap(cam)``.
    Used in chapters 1, 5 and 7, and the quick start, and the appendix.

    The map is coloured with a matplotlib colormap, which returns RGB. (The classic bug in CAM
    code is ``cv2.applyColorMap``: it returns **BGR**, so blending it with an RGB image, or showing
    it with matplotlib, swaps red and blue and the hottest region looks cold.) A map smaller than
    the image (e.g. the raw 14x14 map) is resized to the image with bilinear interpolation, in float
    (``align_corners=False``, as :func:`cam_tutorial.cam.upsample_maps`), before colouring.

    Args:
        image: ``(3, H, W)`` tensor or ``(H, W, 3)`` array with values in ``[0, 1]`` (denormalise
            first), or ``uint8`` in ``[0, 255]``; ``(H, W)`` grey images are repeated to RGB.
        cam: ``(h, w)`` map in ``[0, 1]`` (e.g. from :func:`cam_tutorial.cam.normalize_maps`),
            tensor or array; ``uint8`` maps are divided by 255.
        alpha: weight of the coloured map, from 0 (the image alone) to 1 (the map alone).
        colormap: a matplotlib colormap name (``"jet"`` as in the paper's figures, ``"inferno"``,
            ``"viridis"``, ...).

    Returns:
        ``(H, W, 3)`` float32 RGB array in ``[0, 1]``, ready for ``plt.imshow``.

    Raises:
        TypeError: inputs that are not tensors/arrays.
        ValueError: wrong shapes, values outside ``[0, 1]``, ``alpha`` outside ``[0, 1]``, an
            unknown colormap.

    Example:
        >>> import numpy as np
        >>> image = np.zeros((32, 32, 3))
        >>> cam = np.zeros((7, 7)); cam[3, 3] = 1.0
        >>> out = overlay(image, cam, alpha=1.0)
        >>> out.shape, out.dtype
        ((32, 32, 3), dtype('float32'))
        >>> red, green, blue = out[16, 16]  # the hot centre is red in RGB order
        >>> bool(red > blue)
        True
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (0 = image only, 1 = map only), got {alpha}")
    img = _channels_last(_as_array(image, "image"), isinstance(image, torch.Tensor))
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"image must be (3, H, W), (H, W, 3) or (H, W), got shape {tuple(img.shape)}")
    img = _unit_range(img, "image", "denormalise it first (cam_tutorial.lab.denormalize)")

    heat = _as_array(cam, "cam")
    heat = np.squeeze(heat) if heat.ndim > 2 else heat
    if heat.ndim != 2:
        raise ValueError(f"cam must be one map of shape (h, w), got shape {tuple(np.shape(cam))}")
    heat = _unit_range(heat, "cam", "normalise it first, e.g. with cam_tutorial.cam.normalize_maps")
    if heat.shape != img.shape[:2]:
        resized = F.interpolate(torch.from_numpy(heat)[None, None], size=img.shape[:2], mode="bilinear",
                                align_corners=False)
        heat = resized[0, 0].clamp_(0.0, 1.0).numpy()

    try:
        cmap = matplotlib.colormaps[colormap]
    except KeyError as err:
        raise ValueError(f"unknown matplotlib colormap {colormap!r}; try 'jet', 'inferno' or 'viridis'") from err
    coloured = cmap(heat)[..., :3]  # RGBA -> RGB
    return ((1.0 - alpha) * img + alpha * coloured).astype(np.float32)


def _as_array(x: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float() if x.is_floating_point() and x.dtype != torch.float64 else x
        return x.numpy()
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"{what} must be a torch tensor or a numpy array, got {type(x).__name__}")


def _unit_range(x: np.ndarray, what: str, fix: str) -> np.ndarray:
    """float32 values in [0, 1]; uint8 is divided by 255; anything else out of range is an error."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{what} must be float in [0, 1] or uint8, got dtype {x.dtype}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{what} has NaN or infinite values")
    low, high = float(x.min()), float(x.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(f"{what} values must lie in [0, 1], got [{low:.3g}, {high:.3g}]: {fix}")
    return np.clip(x, 0.0, 1.0)


def show_map_rows(images: torch.Tensor | Sequence, maps: Mapping[str, Any], boxes: Any = None,
                  pred_boxes: Mapping[str, Any] | None = None, titles: Mapping[str, Sequence[str]] | None = None,
                  size: float = 1.6, title: str | None = None) -> plt.Figure:
    """Maps of several methods on the same images: one row per method, one column per image.
    Used in chapters 6 and 8, and the appendix.

    More images than fit in a row at :data:`MIN_PANEL_SIZE` inches wrap into blocks of even width
    (:func:`balanced_columns`): the rows of every method repeat for the next images, below.

    Each cell is :func:`overlay` of the row's map on the column's image (opacity 0.4: the shapes
    stay visible under the map), with the ground-truth box (green) and the row's predicted box (red).

    Args:
        images: ``(B, 3, H, W)`` tensor (normalised or in [0, 1]) or a sequence of images.
        maps: row name -> ``B`` maps in [0, 1] (``(B, h, w)`` tensor/array or a sequence).
        boxes: ``B`` ground-truth boxes ``(x0, y0, x1, y1)``, shared by every row.
        pred_boxes: row name -> ``B`` predicted boxes (rows not in it draw none).
        titles: row name -> ``B`` cell titles (e.g. the IoU).
        size: inches per cell, at most; smaller when ``B`` columns would make the figure wider
            than :data:`MAX_FIGURE_WIDTH`.
        title: the figure's title.

    Returns:
        The matplotlib figure.
    """
    n, names = len(images), list(maps)
    if n == 0 or not names:
        raise ValueError("show_map_rows needs at least one image and one row of maps")
    for name in names:
        if len(maps[name]) != n:
            raise ValueError(f"row {name!r} has {len(maps[name])} maps for {n} images: give one map per image")
    legend = boxes is not None and bool(pred_boxes)
    fig, cells = _wrapped_grid(n, len(names), n, size, title, legend, margin=0.4)
    for r, (name, row) in enumerate(zip(names, cells)):
        for i, ax in enumerate(row):
            ax.imshow(overlay(_to_display(images[i]), maps[name][i], alpha=0.4))
            ax.set_xticks([])
            ax.set_yticks([])
            if boxes is not None:
                draw_box(ax, boxes[i], "lime", "ground truth" if r == 0 and i == 0 else None)
            if pred_boxes is not None and name in pred_boxes:
                draw_box(ax, pred_boxes[name][i], "red", "predicted" if i == 0 and r == 0 else None)
            if titles is not None and name in titles:
                ax.set_title(titles[name][i], fontsize=LABEL_SIZE)
            if ax.get_subplotspec().is_first_col():
                ax.set_ylabel(name, fontsize=LABEL_SIZE)
    if legend:
        fig.legend(loc="outside lower center", ncol=2, fontsize=LABEL_SIZE, frameon=False)
    return fig


#: Colours of the background and the lab's parts in :func:`show_parts` (body, head, tail, limbs).
PART_COLORS = ("#202020", "#9e9e9e", "#e41a1c", "#377eb8", "#4daf4a", "#ff7f00", "#984ea3", "#a65628")


def show_parts(images: torch.Tensor | Sequence, part_maps: Any, part_names: Sequence[str],
               titles: Sequence[str] | None = None, size: float = 1.6, title: str | None = None) -> plt.Figure:
    """Images above their part maps: which pixels belong to which part (a legend names them).
    Used in the appendix.

    Args:
        images: ``(B, 3, H, W)`` tensor (normalised or in [0, 1]) or a sequence of images.
        part_maps: ``B`` integer maps ``(H, W)``: 0 background, ``p + 1`` part ``p``.
        part_names: the parts' names, in label order.
        titles: ``B`` panel titles (e.g. the class names).
        size, title: as for :func:`show_map_rows`.

    Example:
        >>> from cam_tutorial.lab import PART_NAMES, SyntheticShapes
        >>> lab = SyntheticShapes("val", length=2, image_size=64)
        >>> fig = show_parts([lab[i][0] for i in range(2)], lab.part_maps(), PART_NAMES)
        >>> len(fig.axes)
        4
    """
    parts = np.asarray(_as_array(part_maps, "part_maps"))
    n = len(images)
    if n == 0 or len(parts) != n:
        raise ValueError(f"show_parts needs one part map per image, got {len(parts)} for {n} images")
    if len(part_names) + 1 > len(PART_COLORS):
        raise ValueError(f"show_parts colours at most {len(PART_COLORS) - 1} parts, got {len(part_names)}")
    palette = np.array([matplotlib.colors.to_rgb(c) for c in PART_COLORS[:len(part_names) + 1]])
    fig, (tops, bottoms) = _wrapped_grid(n, 2, n, size, title, True)
    for i, (top, bottom) in enumerate(zip(tops, bottoms)):
        top.set_axis_off()
        bottom.set_axis_off()
        _show(top, _to_display(images[i]))
        bottom.imshow(palette[np.clip(parts[i], 0, len(part_names))], interpolation="nearest")
        if titles is not None:
            top.set_title(titles[i], fontsize=LABEL_SIZE)
    for k, name in enumerate(part_names):
        tops[0].plot([], [], "s", color=palette[k + 1], label=name)
    fig.legend(loc="outside lower center", ncol=len(part_names), fontsize=LABEL_SIZE, frameon=False)
    return fig


def show_jpeg(fig: plt.Figure, quality: int = 85) -> None:
    """Display ``fig`` in a notebook as a JPEG and close it: photographs and smooth maps compress
    far better than as PNG (the page loads faster, the figure looks the same).
    Used in chapter 8, and the appendix.

    Example:
        >>> fig, ax = plt.subplots()
        >>> show_jpeg(fig, quality=70)  # doctest: +ELLIPSIS
        <IPython.core.display.Image object>
    """
    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", dpi=100, bbox_inches="tight", pil_kwargs={"quality": quality})
    plt.close(fig)
    display(Image(buffer.getvalue(), format="jpeg"))


