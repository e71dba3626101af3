"""The plotting helpers that moved out of the notebooks (chapters 5 and 8) and draw_box's spelling."""

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cam_tutorial.plots import flattest_stretch, plot_deletion_insertion, show_quantization_profile  # noqa: E402
from cam_tutorial.viz import show_jpeg  # noqa: E402


def test_the_flattest_stretch_skips_stretches_with_nothing_to_see():
    values = np.zeros((3, 10))
    values[1] = np.linspace(0, 1, 10)  # steep
    values[2, 4:] = np.linspace(0, 0.1, 6)  # gentle, from column 4: steps of 0.02
    row, left = flattest_stretch(values, 4, min_range=0.01)
    assert (row, left) == (2, 2)  # columns 2-5: one step of 0.02, the least range of at least 0.01


def test_the_quantization_profile_shows_fewer_levels_after_the_cast():
    smooth = np.tile(np.linspace(0.30, 0.33, 40), (40, 1))
    fig, profile_float, profile_uint8 = show_quantization_profile(smooth, np.floor(smooth * 255) / 255, 10,
                                                                  "a title")
    assert fig._suptitle.get_text() == "a title"
    assert len(profile_float) == len(profile_uint8) == 10
    assert len(np.unique(profile_uint8)) < len(np.unique(profile_float))
    assert fig.axes[2].get_title().endswith("its flattest stretch of 10 pixels")
    plt.close(fig)


def test_deletion_insertion_curves_are_labelled_with_their_auc():
    result = SimpleNamespace(fractions=np.linspace(0, 1, 5), deletion=np.full((3, 5), 0.5),
                             insertion=np.full((3, 5), 0.25), deletion_auc=np.full(3, 0.5),
                             insertion_auc=np.full(3, 0.25))
    fig = plot_deletion_insertion({"CAM": result}, "curves")
    labels = [ax.get_legend_handles_labels()[1] for ax in fig.axes]
    assert labels == [["CAM (AUC 0.500)"], ["CAM (AUC 0.250)"]]
    plt.close(fig)


def test_show_jpeg_closes_the_figure(capsys):
    fig, _ = plt.subplots()
    show_jpeg(fig)
    assert not plt.fignum_exists(fig.number)
