"""Figures for the book: galleries with boxes, CAM overlays, training curves.

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

__all__ = ["show_gallery", "draw_box", "overlay", "plot_history", "plot_confusion_matrix",
           "show_map_rows", "show_jpeg", "flattest_stretch", "show_quantization_profile",
           "plot_deletion_insertion", "plot_box_acc", "show_parts", "plot_part_coverage", "PART_COLORS",
           "MAX_FIGURE_WIDTH", "LABEL_SIZE"]

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
        if image.dtype == torch.uint8:
            image = image.float() / 255
        image = image.float()
        if image.ndim == 3 and image.shape[0] == 3:
            if image.min() < 0 or image.max() > 1:  # normalised as the models expect
                from cam_tutorial.lab import denormalize  # lazy: data is heavier than viz needs

                image = denormalize(image)
            image = image.permute(1, 2, 0)
        elif image.ndim == 3 and image.shape[0] == 1:
            image = image[0]
        image = image.numpy()
    array = np.asarray(image)
    if array.dtype == np.uint8:
        array = array / 255.0
    array = array.astype(np.float32)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.moveaxis(array, 0, -1)  # a channels-first array: (C, H, W) -> (H, W, C)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
        raise ValueError(
            f"cannot show an image of shape {tuple(np.shape(image))}: give (3, H, W) or (1, H, W) tensors, "
            "(H, W, 3) arrays or (H, W) grey images (for a batch, pass one image per item)"
        )
    if array.ndim == 2 and array.size and (array.min() < 0 or array.max() > 1):
        low, high = float(array.min()), float(array.max())
        array = (array - low) / (high - low) if high > low else np.zeros_like(array)
    return np.clip(array, 0, 1)


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

    Args:
        images: ``(B, 3, H, W)`` tensor (normalised or in [0, 1]), grey ``(B, 1, H, W)`` or
            ``(B, H, W)`` (shown in grey), or a sequence of images.
        labels: class index per image, shown as the title (with ``class_names``, which must
            name every label shown).
        boxes: ground-truth ``(x0, y0, x1, y1)`` per image, in pixels.
        pred_boxes: predicted boxes per image.
        class_names: names for ``labels``.
        ncols: images per row, at most as many as fit at :data:`MIN_PANEL_SIZE` inches each
            (four): more images wrap onto more rows.
        title: the figure's title.
        size: inches per image, at most; smaller when ``ncols`` images would make the figure wider
            than :data:`MAX_FIGURE_WIDTH`.
        titles: one title per image (e.g. the IoU), shown instead of the label's name.

    Returns:
        The matplotlib figure.
    """
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 3:
        images = images[:, None]  # (N, H, W): a gallery of grey images, one channel each
    n = len(images)
    if n == 0:
        raise ValueError("show_gallery needs at least one image")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} images: give one label per image")
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images: give one title per image")
    ncols = max(1, min(ncols, n, _max_columns()))
    nrows = -(-n // ncols)
    legend = pred_boxes is not None and boxes is not None
    fig, axes = _grid(nrows, ncols, size, bool(title), legend)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        _show(ax, _to_display(images[i]))
        if titles is not None:
            ax.set_title(titles[i], fontsize=LABEL_SIZE)
        elif labels is not None:
            ax.set_title(_label_title(labels[i], class_names), fontsize=LABEL_SIZE)
        if boxes is not None:
            draw_box(ax, boxes[i], "lime", "ground truth" if i == 0 else None)
        if pred_boxes is not None:
            draw_box(ax, pred_boxes[i], "red", "predicted" if i == 0 else None)
    return _finish_grid(fig, title, legend)


def _max_columns(margin: float = 0.0) -> int:
    """How many panels of at least MIN_PANEL_SIZE fit in MAX_FIGURE_WIDTH (less ``margin``)."""
    return max(1, int((MAX_FIGURE_WIDTH - margin) // MIN_PANEL_SIZE))


def _grid(nrows: int, ncols: int, size: float, titled: bool, legend: bool,
          margin: float = 0.0) -> tuple[plt.Figure, np.ndarray]:
    """A grid of square panels of at most ``size`` inches, no wider than MAX_FIGURE_WIDTH.

    ``margin`` is extra width (inches) for row names. Constrained layout leaves room for the
    panel titles, the suptitle and a legend below the grid.
    """
    size = min(size, (MAX_FIGURE_WIDTH - margin) / ncols)
    height = (size + 0.25) * nrows + (0.4 if titled else 0) + (0.35 if legend else 0)
    return plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                        figsize=(size * ncols + margin, height))


def _finish_grid(fig: plt.Figure, title: str | None, legend: bool) -> plt.Figure:
    if title:
        fig.suptitle(title)
    if legend:
        fig.legend(loc="outside lower center", ncol=2, fontsize=LABEL_SIZE, frameon=False)
    return fig


def overlay(
    image: torch.Tensor | np.ndarray,
    cam: torch.Tensor | np.ndarray,
    alpha: float = 0.5,
    colormap: str = "jet",
) -> np.ndarray:
    """Blend a class activation map over an image: ``(1 - alpha) * image + alpha * colormap(cam)``.

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
    img = _as_array(image, "image")
    # Tensors are channels-first by torch convention; arrays are (H, W, C) unless clearly not.
    channels_first = img.ndim == 3 and img.shape[0] in (1, 3) and (
        isinstance(image, torch.Tensor) or img.shape[-1] not in (1, 3))
    if channels_first:
        img = np.moveaxis(img, 0, -1)  # (C, H, W) -> (H, W, C)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3):
        raise ValueError(f"image must be (3, H, W), (H, W, 3) or (H, W), got shape {tuple(img.shape)}")
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
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


def plot_history(history: object, title: str | None = None) -> plt.Figure:
    """Training curves: loss, accuracy and learning rate per epoch, train and validation.

    Args:
        history: a :class:`cam_tutorial.train.History` or a dict with the same lists
            (``epoch``, ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc``, optional ``lr``).
        title: the figure's title.

    Returns:
        The matplotlib figure (three panels, or two without ``lr``).
    """
    get = history.get if isinstance(history, dict) else lambda k, d=None: getattr(history, k, d)
    epochs = list(get("epoch") or [])
    if not epochs:
        raise ValueError("plot_history needs a history with at least one epoch")
    lr = list(get("lr", None) or [])
    fig, axes = plt.subplots(1, 3 if lr else 2, figsize=(MAX_FIGURE_WIDTH if lr else 7.5, 3.4))
    for ax, metric, label in ((axes[0], "loss", "cross-entropy"), (axes[1], "acc", "accuracy")):
        ax.plot(epochs, get(f"train_{metric}"), "o-", label="train (running, during the epoch)")
        ax.plot(epochs, get(f"val_{metric}"), "s-", label="validation (after the epoch)")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[1].set_ylim(0, 1.02)
    axes[1].legend(fontsize=10, loc="lower right")
    if lr:
        axes[2].plot(epochs, lr, "o-", color="tab:green", label="at the epoch's last step")
        axes[2].set_xlabel("epoch")
        axes[2].set_ylabel("learning rate")
        axes[2].set_title("one-cycle learning rate")
        axes[2].legend(fontsize=10)
        axes[2].grid(alpha=0.3)
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(matrix: np.ndarray | torch.Tensor, class_names: Sequence[str] | None = None,
                          normalize: bool = True, title: str | None = None) -> plt.Figure:
    """A confusion matrix: row ``i``, column ``j`` counts items of class ``i`` predicted as ``j``.

    Args:
        matrix: ``(C, C)`` counts (e.g. from :func:`cam_tutorial.train.confusion_matrix`).
        class_names: ``C`` names for the axes.
        normalize: colour by the fraction of each true class (rows sum to 1); cells show counts.
        title: the figure's title (default states the overall accuracy).

    Returns:
        The matplotlib figure.
    """
    counts = np.asarray(matrix.cpu() if isinstance(matrix, torch.Tensor) else matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a confusion matrix is square (C, C), got shape {counts.shape}")
    c = counts.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(c)]
    if len(names) != c:
        raise ValueError(f"{len(names)} class names for a {c}x{c} matrix: pass one name per class")
    shown = counts / np.maximum(counts.sum(1, keepdims=True), 1) if normalize else counts
    fig, ax = plt.subplots(figsize=(0.45 * c + 2.5, 0.45 * c + 2))
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04,
                 label="fraction of the true class" if normalize else "count")
    for i in range(c):
        for j in range(c):
            if counts[i, j]:
                dark = shown[i, j] > 0.6 * (shown.max() or 1)
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    ax.set_xticks(range(c), names, rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(c), names, fontsize=9)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(title or f"confusion matrix (accuracy {accuracy:.1%})")
    fig.tight_layout()
    return fig


def show_map_rows(images: torch.Tensor | Sequence, maps: Mapping[str, Any], boxes: Any = None,
                  pred_boxes: Mapping[str, Any] | None = None, titles: Mapping[str, Sequence[str]] | None = None,
                  size: float = 1.6, title: str | None = None, alpha: float = 0.4,
                  colormap: str = "jet") -> plt.Figure:
    """Maps of several methods on the same images: one row per method, one column per image.

    More images than fit in a row at :data:`MIN_PANEL_SIZE` inches wrap: the rows of every
    method repeat for the next images, below.

    Each cell is :func:`overlay` of the row's map on the column's image, with the ground-truth box
    (green) and the row's predicted box (red).

    Args:
        images: ``(B, 3, H, W)`` tensor (normalised or in [0, 1]) or a sequence of images.
        maps: row name -> ``B`` maps in [0, 1] (``(B, h, w)`` tensor/array or a sequence).
        boxes: ``B`` ground-truth boxes ``(x0, y0, x1, y1)``, shared by every row.
        pred_boxes: row name -> ``B`` predicted boxes (rows not in it draw none).
        titles: row name -> ``B`` cell titles (e.g. the IoU).
        size: inches per cell, at most; smaller when ``B`` columns would make the figure wider
            than :data:`MAX_FIGURE_WIDTH`.
        title: the figure's title.
        alpha, colormap: as for :func:`overlay` (0.4 by default: the shapes stay visible under
            the map).

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
    columns = min(n, _max_columns(margin=0.4))
    chunks = -(-n // columns)
    fig, axes = _grid(len(names) * chunks, columns, size, bool(title), legend, margin=0.4)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for r, name in enumerate(names):
        for i in range(n):
            ax = axes[(i // columns) * len(names) + r, i % columns]
            ax.set_frame_on(True)
            ax.imshow(overlay(_to_display(images[i]), maps[name][i], alpha=alpha, colormap=colormap))
            ax.set_xticks([])
            ax.set_yticks([])
            if boxes is not None:
                draw_box(ax, boxes[i], "lime", "ground truth" if r == 0 and i == 0 else None)
            if pred_boxes is not None and name in pred_boxes:
                draw_box(ax, pred_boxes[name][i], "red", "predicted" if i == 0 and r == 0 else None)
            if titles is not None and name in titles:
                ax.set_title(titles[name][i], fontsize=LABEL_SIZE)
        for chunk in range(chunks):
            axes[chunk * len(names) + r, 0].set_ylabel(name, fontsize=LABEL_SIZE)
    return _finish_grid(fig, title, legend)


#: Colours of the background and the lab's parts in :func:`show_parts` (body, head, tail, limbs).
PART_COLORS = ("#202020", "#9e9e9e", "#e41a1c", "#377eb8", "#4daf4a", "#ff7f00", "#984ea3", "#a65628")


def show_parts(images: torch.Tensor | Sequence, part_maps: Any, part_names: Sequence[str],
               titles: Sequence[str] | None = None, size: float = 1.6, title: str | None = None) -> plt.Figure:
    """Images above their part maps: which pixels belong to which part (a legend names them).

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
    columns = min(n, _max_columns())
    chunks = -(-n // columns)
    fig, axes = _grid(2 * chunks, columns, size, bool(title), True)
    for ax in axes.flat:
        ax.set_axis_off()
    for i in range(n):
        top, bottom = axes[2 * (i // columns), i % columns], axes[2 * (i // columns) + 1, i % columns]
        _show(top, _to_display(images[i]))
        bottom.imshow(palette[np.clip(parts[i], 0, len(part_names))], interpolation="nearest")
        if titles is not None:
            top.set_title(titles[i], fontsize=LABEL_SIZE)
    for k, name in enumerate(part_names):
        axes.flat[0].plot([], [], "s", color=palette[k + 1], label=name)
    if title:
        fig.suptitle(title)
    fig.legend(loc="outside lower center", ncol=len(part_names), fontsize=LABEL_SIZE, frameon=False)
    return fig


def plot_part_coverage(coverages: Mapping[str, Any], part_names: Sequence[str], ax: plt.Axes | None = None,
                       title: str | None = None) -> plt.Figure:
    """Grouped bars: each part's mean covered share, one bar per method.

    Args:
        coverages: method name -> :class:`~cam_tutorial.coverage.PartCoverage`.
        part_names: the parts' names, in label order.
        ax: draw into this axes (default: a new figure).
        title: the axes' title.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 3.4), layout="constrained")
    fig = ax.figure
    names = list(coverages)
    x = np.arange(len(part_names))
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        shares = coverages[name].mean_covered()
        bars = ax.bar(x + (k - (len(names) - 1) / 2) * width, shares, width, label=name)
        ax.bar_label(bars, labels=[f"{v:.0%}" for v in shares], fontsize=LABEL_SIZE, padding=1)
    ax.set_xticks(x, part_names, fontsize=LABEL_SIZE)
    ax.set_ylim(0, 1.3)  # room for the labels above bars near 100% and the legend
    ax.set_ylabel("share of the part covered", fontsize=LABEL_SIZE)
    ax.legend(fontsize=LABEL_SIZE, frameon=False, ncol=len(names), loc="upper center")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_box_acc(results: Mapping[str, Any], deltas: Sequence[float] | None = None, ax: plt.Axes | None = None,
                 title: str | None = None) -> plt.Figure:
    """BoxAcc as a function of the map threshold tau, one curve per method and IoU threshold delta.

    The best tau of each curve is marked: its height is MaxBoxAcc(delta), the threshold chosen
    once for the whole dataset (Choe et al. 2020).

    Args:
        results: name -> a :class:`cam_tutorial.metrics.MaxBoxAccResult` (anything with
            ``cam_thresholds``, ``iou_thresholds``, ``box_acc`` ``(n_tau, n_delta)``).
        deltas: the IoU thresholds to draw (default: all of each result's).
        ax: axes to draw on (default: a new figure).
        title: the axes' title.

    Returns:
        The matplotlib figure.
    """
    if not results:
        raise ValueError("plot_box_acc needs at least one result")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    styles = ["-", "--", ":", "-."]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    curve = 0
    for k, (name, result) in enumerate(results.items()):
        taus = np.asarray(result.cam_thresholds)
        box_acc = np.asarray(result.box_acc)
        for j, delta in enumerate(np.asarray(result.iou_thresholds).tolist()):
            if deltas is not None and not any(abs(delta - d) < 1e-9 for d in deltas):
                continue
            colour = colours[curve % len(colours)]
            curve += 1
            best = int(np.argmax(box_acc[:, j]))
            ax.plot(taus, box_acc[:, j], styles[k % len(styles)], color=colour,
                    label=f"{name}, δ={delta:g}: max {box_acc[best, j]:.1%} at τ={taus[best]:.2f}")
            ax.plot(taus[best], box_acc[best, j], "o", color=colour)
    if curve == 0:
        raise ValueError(f"none of the results has the IoU thresholds {list(deltas or [])}")
    ax.set_xlabel("map threshold τ (fraction of the maximum)")
    ax.set_ylabel("BoxAcc (fraction of images)")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "BoxAcc(τ): one threshold for the whole dataset; the dots are MaxBoxAcc")
    ax.figure.tight_layout()
    return ax.figure


def show_jpeg(fig: plt.Figure, quality: int = 85) -> None:
    """Display ``fig`` in a notebook as a JPEG and close it: photographs and smooth maps compress
    far better than as PNG (the page loads faster, the figure looks the same).

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


def flattest_stretch(values: np.ndarray, span: int, min_range: float = 2 / 255) -> tuple[int, int]:
    """``(row, left)`` of the run of ``span`` pixels along a row of ``values`` whose range is the
    smallest of those spanning at least ``min_range`` (so there is something to see).

    Example:
        >>> ramp = np.tile(np.linspace(0, 1, 8), (3, 1)) * np.array([[1.0], [0.1], [0.5]])
        >>> flattest_stretch(ramp, 4, min_range=0.01)
        (1, 0)
    """
    stretches = np.lib.stride_tricks.sliding_window_view(values, span, axis=1)
    ranges = stretches.max(axis=-1) - stretches.min(axis=-1)
    ranges[ranges < min_range] = np.inf
    row, left = (int(v) for v in np.unravel_index(np.argmin(ranges), ranges.shape))
    return row, left


def show_quantization_profile(float_map: np.ndarray, uint8_map: np.ndarray, span: int,
                              title: str) -> tuple[plt.Figure, np.ndarray, np.ndarray]:
    """A map resized in float beside the same map cast to 8 bits first: the map with the row
    profiled, the error in levels of 255, and the row's flattest stretch of ``span`` pixels
    (:func:`flattest_stretch`) against the 256 levels. Legends at 10 pt: the figure is 10 inches
    wide, so the book shows it at about 0.7 of its size.

    Returns:
        The figure and the two profiles ``(float, 8-bit)`` along that stretch.

    Example:
        >>> smooth = np.tile(np.linspace(0.2, 0.25, 32), (32, 1))
        >>> fig, a, b = show_quantization_profile(smooth, np.floor(smooth * 255) / 255, 8, "demo")
        >>> len(np.unique(b)) < len(np.unique(a))
        True
        >>> plt.close(fig)
    """
    side = float_map.shape[-1]
    row, left = flattest_stretch(float_map, span)
    columns = np.arange(left, left + span)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1, 1, 1.6]},
                             layout="constrained")
    shown_map = axes[0].imshow(float_map, cmap="viridis", vmin=0, vmax=1)
    axes[0].add_patch(Rectangle((left - 0.5, row - 0.5), span, 1, fill=False,
                                edgecolor="red", label="row profiled"))
    axes[0].set_title(f"float map, {side}x{side}")
    axes[0].legend(loc="lower left", fontsize=10)
    fig.colorbar(shown_map, ax=axes[0], fraction=0.046, label="normalised map")
    shown_error = axes[1].imshow((uint8_map - float_map) * 255, cmap="RdBu_r", vmin=-2, vmax=2)
    axes[1].set_title("8-bit first minus float")
    fig.colorbar(shown_error, ax=axes[1], fraction=0.046, label="error (levels of 255)")
    for ax in axes[:2]:
        ax.set_xticks([])
        ax.set_yticks([])
    profile_float, profile_uint8 = float_map[row, columns], uint8_map[row, columns]
    lowest, highest = np.floor(profile_uint8.min() * 255), np.ceil(profile_float.max() * 255)
    for level in np.arange(lowest, highest + 1) / 255:
        axes[2].axhline(level, color="0.85", lw=0.6, zorder=0)
    axes[2].plot(columns, profile_float, "o-", ms=3, label="float")
    axes[2].plot(columns, profile_uint8, "s-", ms=3, drawstyle="steps-mid", label="8-bit first")
    axes[2].set_xlabel("column (pixels)")
    axes[2].set_ylabel("map value")
    axes[2].set_title(f"row {row}: its flattest stretch of {span} pixels")
    axes[2].legend(fontsize=10)
    fig.suptitle(title)
    return fig, profile_float, profile_uint8


def plot_deletion_insertion(curves: Mapping[str, Any], title: str) -> plt.Figure:
    """Mean deletion and insertion curves of several map methods, side by side, each labelled
    with its mean area under the curve (results of
    :func:`cam_tutorial.methods.sanity.deletion_insertion_curves`).

    Example:
        >>> from types import SimpleNamespace
        >>> r = SimpleNamespace(fractions=np.linspace(0, 1, 3), deletion=np.ones((2, 3)),
        ...                     insertion=np.ones((2, 3)), deletion_auc=np.ones(2), insertion_auc=np.ones(2))
        >>> fig = plot_deletion_insertion({"CAM": r}, "demo")
        >>> [ax.get_title() for ax in fig.axes]
        ['deletion: lower is better', 'insertion: higher is better']
        >>> plt.close(fig)
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, result in curves.items():
        axes[0].plot(result.fractions, result.deletion.mean(0),
                     label=f"{name} (AUC {result.deletion_auc.mean():.3f})")
        axes[1].plot(result.fractions, result.insertion.mean(0),
                     label=f"{name} (AUC {result.insertion_auc.mean():.3f})")
    for ax, panel in zip(axes, ["deletion: lower is better", "insertion: higher is better"]):
        ax.set_xlabel("fraction of pixels deleted / inserted")
        ax.set_ylabel("probability of the predicted class")
        ax.set_title(panel)
        ax.legend(fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
