"""Curves and charts of what the book measures: training curves, confusion matrices, BoxAcc(tau),
part coverage, deletion/insertion curves, and the 8-bit quantisation profile (chapter 5's Going
deeper page).

Pictures of images and maps are in :mod:`cam_tutorial.viz`; both keep to its figure sizes.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from cam_tutorial.viz import LABEL_SIZE, MAX_FIGURE_WIDTH

__all__ = ["plot_history", "plot_confusion_matrix", "plot_box_acc", "plot_part_coverage",
           "plot_deletion_insertion", "show_quantization_profile", "flattest_stretch"]


def plot_history(history: object, title: str | None = None) -> plt.Figure:
    """Training curves: loss, accuracy and learning rate per epoch, train and validation.
    Used in chapter 3.

    One legend, below the panels, names the train and validation curves of both panels: a legend
    inside a panel sits on its curves. The learning rate's axis counts in units of its power of ten
    (``x 1e-3`` above it), so its lowest tick reads 0, not "0.000".

    Args:
        history: a :class:`cam_tutorial.train.History` or a dict with the same lists
            (``epoch``, ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc``, ``lr``).
        title: the figure's title.

    Returns:
        The matplotlib figure (three panels).

    Example:
        >>> fig = plot_history({"epoch": [1, 2], "train_loss": [2.0, 1.0], "val_loss": [1.5, 1.2],
        ...                     "train_acc": [0.4, 0.7], "val_acc": [0.5, 0.6], "lr": [4e-3, 1e-4]})
        >>> len(fig.axes), len(fig.legends), [ax.get_legend() for ax in fig.axes]
        (3, 1, [None, None, None])
    """
    get = history.get if isinstance(history, dict) else lambda k: getattr(history, k)
    epochs = list(get("epoch") or [])
    if not epochs:
        raise ValueError("plot_history needs a history with at least one epoch")
    fig, axes = plt.subplots(1, 3, figsize=(MAX_FIGURE_WIDTH, 3.2), layout="constrained")
    for ax, metric, label in ((axes[0], "loss", "cross-entropy"), (axes[1], "acc", "accuracy")):
        ax.plot(epochs, get(f"train_{metric}"), "o-", label="train (running, during the epoch)")
        ax.plot(epochs, get(f"val_{metric}"), "s-", label="validation (after the epoch)")
        ax.set_ylabel(label)
        ax.set_title(label)
    axes[1].set_ylim(0, 1.02)
    axes[2].plot(epochs, get("lr"), "o-", color="tab:green")
    axes[2].set_ylabel("at the epoch's last step")
    axes[2].set_title("one-cycle learning rate")
    axes[2].set_ylim(bottom=0)
    axes[2].ticklabel_format(axis="y", style="sci", scilimits=(0, 0), useMathText=True)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2,
               fontsize=LABEL_SIZE, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def plot_confusion_matrix(matrix: np.ndarray | torch.Tensor, class_names: Sequence[str] | None = None,
                          title: str | None = None) -> plt.Figure:
    """A confusion matrix: row ``i``, column ``j`` counts items of class ``i`` predicted as ``j``;
    each cell is coloured by its fraction of the true class (rows sum to 1) and shows its count.
    Used in no chapter directly.

    Args:
        matrix: ``(C, C)`` counts (e.g. from :func:`cam_tutorial.evaluation.confusion_matrix`).
        class_names: ``C`` names for the axes.
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
    shown = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(0.45 * c + 2.5, 0.45 * c + 2))
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
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


def plot_part_coverage(coverages: Mapping[str, Any], part_names: Sequence[str], ax: plt.Axes,
                       title: str | None = None) -> plt.Figure:
    """Grouped bars: each part's mean covered share, one bar per method.
    Used in the appendix.

    Args:
        coverages: method name -> :class:`~cam_tutorial.coverage.PartCoverage`.
        part_names: the parts' names, in label order.
        ax: the axes to draw into.
        title: the axes' title.
    """
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
    return ax.figure


def plot_box_acc(results: Mapping[str, Any], deltas: Sequence[float] | None = None,
                 title: str | None = None) -> plt.Figure:
    """BoxAcc as a function of the map threshold tau, one curve per method and IoU threshold delta.
    Used in chapter 7, and the appendix.

    The best tau of each curve is marked: its height is MaxBoxAcc(delta), the threshold chosen
    once for the whole dataset (Choe et al. 2020).

    Args:
        results: name -> a :class:`cam_tutorial.metrics.MaxBoxAccResult` (anything with
            ``cam_thresholds``, ``iou_thresholds``, ``box_acc`` ``(n_tau, n_delta)``).
        deltas: the IoU thresholds to draw (default: all of each result's).
        title: the axes' title.

    Returns:
        The matplotlib figure.
    """
    if not results:
        raise ValueError("plot_box_acc needs at least one result")
    fig, ax = plt.subplots(figsize=(7, 4))
    styles = ["-", "--", ":", "-."]
    for k, (name, result) in enumerate(results.items()):
        taus = np.asarray(result.cam_thresholds)
        box_acc = np.asarray(result.box_acc)
        for j, delta in enumerate(np.asarray(result.iou_thresholds).tolist()):
            if deltas is not None and not any(abs(delta - d) < 1e-9 for d in deltas):
                continue
            best = int(np.argmax(box_acc[:, j]))
            [curve] = ax.plot(taus, box_acc[:, j], styles[k % len(styles)],
                              label=f"{name}, δ={delta:g}: max {box_acc[best, j]:.1%} at τ={taus[best]:.2f}")
            ax.plot(taus[best], box_acc[best, j], "o", color=curve.get_color())
    if not ax.lines:
        raise ValueError(f"none of the results has the IoU thresholds {list(deltas or [])}")
    ax.set_xlabel("map threshold τ (fraction of the maximum)")
    ax.set_ylabel("BoxAcc (fraction of images)")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "BoxAcc(τ): one threshold for the whole dataset; the dots are MaxBoxAcc")
    fig.tight_layout()
    return fig


def flattest_stretch(values: np.ndarray, span: int, min_range: float = 2 / 255) -> tuple[int, int]:
    """``(row, left)`` of the run of ``span`` pixels along a row of ``values`` whose range is the
    smallest of those spanning at least ``min_range`` (so there is something to see).
    Used in no chapter directly.

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
    Used in the appendix.

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
    Used in the appendix.

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
    for ax, kind, panel in zip(axes, ("deletion", "insertion"),
                               ("deletion: lower is better", "insertion: higher is better")):
        for name, result in curves.items():
            auc = getattr(result, f"{kind}_auc").mean()
            ax.plot(result.fractions, getattr(result, kind).mean(0), label=f"{name} (AUC {auc:.3f})")
        ax.set_xlabel("fraction of pixels deleted / inserted")
        ax.set_ylabel("probability of the predicted class")
        ax.set_title(panel)
        ax.legend(fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
