"""The package's grids fit the book's ~690 px column with panels large enough to see shapes in."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from scripts.figure_metrics import measure_figure  # noqa: E402
from cam_tutorial.viz import MAX_FIGURE_WIDTH, MIN_PANEL_SIZE, show_gallery, show_map_rows  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _panel_inches(fig, ax) -> float:
    return ax.get_position().width * fig.get_size_inches()[0]


def test_a_gallery_of_eight_wraps_to_two_rows_of_four_legible_panels():
    images = torch.rand(8, 3, 16, 16)
    boxes = torch.tensor([[2, 2, 10, 10]] * 8)
    fig = show_gallery(images, labels=list(range(8)), boxes=boxes, pred_boxes=boxes, ncols=8, title="t")
    assert fig.get_size_inches()[0] <= MAX_FIGURE_WIDTH + 1e-9
    rows = {round(ax.get_position().y0, 3) for ax in fig.axes}
    assert len(rows) == 2
    fig.canvas.draw()
    assert min(_panel_inches(fig, ax) for ax in fig.axes) >= 0.8 * MIN_PANEL_SIZE
    metrics = measure_figure(fig)
    assert metrics.min_text_px >= 12 and metrics.overlaps == []  # shown 1:1 in the column


def test_map_rows_wrap_the_images_and_repeat_each_method_row():
    images = torch.rand(8, 3, 16, 16)
    maps = {"CAM": torch.rand(8, 4, 4), "saliency": torch.rand(8, 4, 4)}
    fig = show_map_rows(images, maps, titles={"CAM": [f"IoU 0.{i}" for i in range(8)]})
    assert fig.get_size_inches()[0] <= MAX_FIGURE_WIDTH + 1e-9
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 16
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["CAM", "saliency", "CAM", "saliency"]  # two blocks of four images
    assert measure_figure(fig).overlaps == []


def _rows_and_columns(axes) -> tuple[int, int]:
    return (len({round(ax.get_position().y0, 3) for ax in axes}),
            len({round(ax.get_position().x0, 3) for ax in axes}))


def test_six_images_make_two_rows_of_three_and_no_blank_cell_is_left():
    """Six images wrapped 4 + 2 with a blank block (chapter 8's map rows, chapter 6's parts)."""
    from cam_tutorial.lab import PART_NAMES, SyntheticShapes
    from cam_tutorial.viz import show_parts

    images = torch.rand(6, 3, 16, 16)
    gallery = show_gallery(images, labels=list(range(6)))
    assert len(gallery.axes) == 6 and _rows_and_columns(gallery.axes) == (2, 3)
    rows = show_map_rows(images, {"CAM": torch.rand(6, 4, 4), "saliency": torch.rand(6, 4, 4)})
    assert len(rows.axes) == 12 and all(ax.images for ax in rows.axes)
    assert _rows_and_columns(rows.axes) == (4, 3)
    lab = SyntheticShapes("val", length=6, image_size=32)
    parts = show_parts([lab[i][0] for i in range(6)], lab.part_maps(), PART_NAMES)
    assert len(parts.axes) == 12 and all(ax.images for ax in parts.axes)
    assert _rows_and_columns(parts.axes) == (4, 3)
    assert measure_figure(parts).overlaps == []


def test_rows_that_cannot_be_even_leave_no_axes_behind():
    images = torch.rand(7, 3, 16, 16)
    gallery = show_gallery(images, labels=list(range(7)))
    assert len(gallery.axes) == 7 and _rows_and_columns(gallery.axes) == (2, 4)
    rows = show_map_rows(images[:5], {"CAM": torch.rand(5, 4, 4)})
    assert len(rows.axes) == 5 and _rows_and_columns(rows.axes) == (2, 3)


def test_training_curves_share_one_legend_below_the_panels_and_the_rate_axis_starts_at_0():
    """Chapter 3: the legends sat on the curves and hid half of a "0.000" tick."""
    from cam_tutorial.plots import plot_history

    epochs = list(range(1, 9))
    history = {"epoch": epochs, "train_loss": [2.0, 0.9, 0.5, 0.3, 0.2, 0.15, 0.1, 0.08],
               "val_loss": [1.2, 1.8, 1.2, 0.9, 0.4, 0.2, 0.1, 0.09],
               "train_acc": [0.41, 0.69, 0.82, 0.89, 0.93, 0.95, 0.96, 0.97],
               "val_acc": [0.56, 0.49, 0.65, 0.71, 0.86, 0.94, 0.97, 0.97],
               "lr": [2e-3, 4e-3, 3.7e-3, 3e-3, 2e-3, 1e-3, 3e-4, 4e-8]}
    fig = plot_history(history, title="t")
    assert fig.get_size_inches()[0] <= MAX_FIGURE_WIDTH + 1e-9
    assert [ax.get_legend() for ax in fig.axes] == [None, None, None]
    [legend] = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["train (running, during the epoch)",
                                                          "validation (after the epoch)"]
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    box = legend.get_window_extent(renderer)
    assert all(box.y1 < ax.get_window_extent(renderer).y0 for ax in fig.axes)  # below every panel
    rate = fig.axes[2]
    shown = [t.get_text() for t in rate.get_yticklabels() if t.get_visible() and t.get_text()]
    assert shown[0] == "$\\mathdefault{0}$" and not any("0.000" in t for t in shown), shown
    assert "10^{\u22123}" in rate.yaxis.get_offset_text().get_text()  # a minus sign, not a hyphen
    metrics = measure_figure(fig)
    assert metrics.overlaps == [] and metrics.min_text_px >= 12


def test_chapter_1s_parameter_bars_are_not_covered_by_their_legend(monkeypatch):
    """The legend sat on the VGG16 (FC head) bar; the cell (moved from chapter 1 to its Going deeper
    page) is run on its numbers."""
    import json
    from pathlib import Path

    notebook = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "deeper_01_two_heads.ipynb").read_text())
    [source] = ["".join(c["source"]) for c in notebook["cells"]
                if c["cell_type"] == "code" and "Where VGG16's parameters are" in "".join(c["source"])]
    tables = {name: [{"part": "features", "params": 14.7e6}, {"part": "pool", "params": 0},
                     {"part": "classifier", "params": classifier}]
              for name, classifier in (("VGG16 (FC head)", 123.6e6), ("VGG16-GAP", 0.5e6))}
    monkeypatch.setattr(plt, "show", lambda: None)
    exec(source, {"plt": plt, "tables": tables})
    fig = plt.gcf()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    bars = [patch.get_window_extent(renderer) for patch in fig.axes[0].patches]
    assert legends and bars
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not any(box.overlaps(bar) for bar in bars)
    assert fig.get_size_inches()[0] <= MAX_FIGURE_WIDTH + 1e-9
    assert measure_figure(fig).overlaps == []
