"""Tests of cam_tutorial.methods.compare (scoring map methods) and the figures that show it (viz)."""

from __future__ import annotations

import dataclasses
import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cam_tutorial.cam import normalize_maps  # noqa: E402
from cam_tutorial.dataset_maps import DatasetMaps, cams_for_dataset  # noqa: E402
from cam_tutorial.methods.compare import (  # noqa: E402
    CAM_GAP,
    CAM_GMP,
    CENTER,
    ROW_HEADERS,
    SALIENCY,
    center_baseline,
    comparison_rows,
    localization_report,
    method_maps,
    saliency_for_dataset,
)
from cam_tutorial.boxes import box_iou, localization_accuracy  # noqa: E402
from cam_tutorial.metrics import max_box_acc  # noqa: E402
from cam_tutorial.models import ResNet18B  # noqa: E402
from cam_tutorial.methods.saliency import gradient_saliency  # noqa: E402
from cam_tutorial.viz import show_map_rows  # noqa: E402
from cam_tutorial.plots import plot_box_acc

SIZE = 32


def _found(shift: int = 0, masks: bool = True) -> DatasetMaps:
    """Four images with one rectangular object each; each map is that rectangle moved right by
    ``shift`` px. Image 3 is misclassified."""
    boxes = torch.tensor([[4, 4, 20, 12], [0, 20, 8, 30], [10, 10, 30, 30], [2, 2, 12, 28]], dtype=torch.float32)
    maps = torch.zeros(4, SIZE, SIZE)
    object_masks = torch.zeros(4, SIZE, SIZE, dtype=torch.bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
        maps[i, y0:y1, min(x0 + shift, SIZE):min(x1 + shift, SIZE)] = 1.0
        object_masks[i, y0:y1, x0:x1] = True
    labels = torch.tensor([0, 1, 2, 0])
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 1]), 3).float()
    return DatasetMaps(logits=logits, maps=maps, classes=labels, labels=labels, boxes=boxes,
                       masks=object_masks if masks else None)


def test_perfect_maps_score_one_everywhere_except_the_misclassified_image_at_top1():
    report = localization_report(_found(), "perfect")
    row = report.row()
    assert set(row) == set(ROW_HEADERS)
    for key in ("gt_known_loc", "max_box_acc", "max_box_acc_v2", "v2_03", "v2_05", "v2_07", "pointing",
                "object_covered", "area_ratio"):
        assert row[key] == pytest.approx(1.0), key
    assert row["top1_cls"] == row["top1_loc"] == 0.75  # image 3 is located but misclassified
    assert row["method"] == "perfect" and report.boxes.tolist()[0] == [4, 4, 20, 12]


def test_report_numbers_are_those_of_the_scoring_functions():
    found = _found(shift=5)
    report = localization_report(found, "shifted")
    boxes = found.boxes.numpy()
    ious = np.array([box_iou(b, g)[0, 0] for b, g in zip(report.boxes, boxes)])
    assert np.allclose(report.loc.ious, ious)
    expected = localization_accuracy(found.predictions, found.labels, report.boxes, boxes)
    assert report.loc.gt_known_loc == expected.gt_known_loc == np.mean(ious >= 0.5)
    assert 0 < report.loc.gt_known_loc < 1  # the shift breaks the narrow objects only
    v2 = max_box_acc(found.maps.numpy(), boxes)
    assert report.row()["max_box_acc_v2"] == v2.mean
    assert report.row()["v2_07"] == v2.max_box_acc[2]
    # the shifted maps cover only part of each object, and spill no more than they cover
    assert report.row()["object_covered"] < 1 and report.row()["area_ratio"] == pytest.approx(
        np.mean([(min(x1 + 5, SIZE) - x0 - 5) / (x1 - x0) for x0, _, x1, _ in boxes.astype(int).tolist()]))


def test_without_masks_the_measures_fall_back_to_boxes():
    found = _found(masks=False)
    found = dataclasses.replace(found, logits=torch.nn.functional.one_hot(found.labels, 3).float())  # all right
    report = localization_report(found)
    assert report.loc.top1_loc == 1.0 and report.area is None
    assert report.pointing == 1.0 and math.isnan(report.row()["object_covered"])
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        localization_report(DatasetMaps(found.logits, found.maps, found.classes, found.labels))


def _tiny(pooling: str, seed: int = 0) -> ResNet18B:
    torch.manual_seed(seed)
    model = ResNet18B(num_classes=3, width=4, pooling=pooling, bias=True)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
    return model.eval()


def _dataset(n: int = 5) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(3)
    images = torch.randn(n, 3, 64, 64, generator=g)
    labels = torch.tensor([0, 1, 2, 0, 1][:n])
    boxes = torch.tensor([[8.0, 8.0, 40.0, 40.0]]).repeat(n, 1)
    masks = torch.zeros(n, 64, 64, dtype=torch.bool)
    masks[:, 8:40, 8:40] = True
    return torch.utils.data.TensorDataset(images, labels, boxes, masks)


def test_saliency_for_dataset_is_normalised_gradient_saliency_of_the_true_class():
    model, data = _tiny("avg"), _dataset()
    images, labels = data.tensors[:2]
    out = saliency_for_dataset(model, data, batch_size=2, progress=False)
    expected = normalize_maps(gradient_saliency(model, images, classes=labels))
    assert torch.allclose(out.maps, expected, atol=1e-5)
    assert torch.equal(out.classes, labels) and out.logits.shape == (5, 3)
    assert float(out.maps.amax()) == pytest.approx(1.0)


def test_centre_baseline_keeps_scores_and_truth_and_peaks_in_the_middle():
    found = _found()
    centre = center_baseline(found)
    assert torch.equal(centre.logits, found.logits) and torch.equal(centre.boxes, found.boxes)
    peak = np.unravel_index(int(centre.maps[0].argmax()), (SIZE, SIZE))
    assert peak in {(15, 15), (15, 16), (16, 15), (16, 16)}
    assert torch.equal(centre.maps[0], centre.maps[3])  # it looks at no image


def test_method_maps_and_table_rows_for_every_method():
    gap, gmp, data = _tiny("avg"), _tiny("max", seed=1), _dataset()
    timings: dict[str, float] = {}
    maps = method_maps(gap, data, gmp, batch_size=4, progress=False, timings=timings)
    assert list(maps) == [CAM_GAP, CAM_GMP, SALIENCY, CENTER] and list(timings) == list(maps)
    assert all(t >= 0 for t in timings.values())
    direct = cams_for_dataset(gmp, data, batch_size=5, progress=False)
    assert torch.allclose(maps[CAM_GMP].maps, direct.maps, atol=1e-5)
    assert torch.equal(maps[CENTER].predictions, maps[CAM_GAP].predictions)
    assert list(method_maps(gap, data, batch_size=4, progress=False)) == [CAM_GAP, SALIENCY, CENTER]
    reports = {name: localization_report(found, name) for name, found in maps.items()}
    rows = comparison_rows(reports)
    assert [r["method"] for r in rows] == list(maps)
    assert comparison_rows(list(reports.values())) == rows
    assert all(0 <= r[k] <= 1 for r in rows for k in ROW_HEADERS if k not in ("method", "area_ratio"))


def test_plot_box_acc_draws_one_curve_per_delta_and_marks_the_maximum():
    result = max_box_acc(_found(shift=3).maps.numpy(), _found().boxes.numpy())
    fig = plot_box_acc({"a": result, "b": result}, deltas=[0.5, 0.7])
    ax = fig.axes[0]
    curves = [line for line in ax.lines if len(line.get_xdata()) > 1]
    dots = [line for line in ax.lines if len(line.get_xdata()) == 1]
    assert len(curves) == 4 and len(dots) == 4
    j = 1  # delta 0.5
    assert dots[0].get_ydata()[0] == result.max_box_acc[j]
    assert dots[0].get_xdata()[0] == result.best_cam_threshold[j]
    assert "τ" in ax.get_xlabel() and ax.get_legend() is not None
    with pytest.raises(ValueError, match="IoU thresholds"):
        plot_box_acc({"a": result}, deltas=[0.9])
    plt.close("all")


def test_show_map_rows_lays_out_methods_by_images_and_checks_lengths():
    found = _found()
    images = torch.rand(4, 3, SIZE, SIZE)
    fig = show_map_rows(images, {"x": found.maps, "y": found.maps.numpy()}, boxes=found.boxes,
                        pred_boxes={"x": found.boxes}, titles={"y": ["a", "b", "c", "d"]}, title="t")
    assert len(fig.axes) == 8
    assert fig.axes[0].get_ylabel() == "x" and fig.axes[4].get_ylabel() == "y"
    assert fig.axes[7].get_title() == "d" and len(fig.axes[0].patches) == 2 and len(fig.axes[4].patches) == 1
    with pytest.raises(ValueError, match="one map per image"):
        show_map_rows(images, {"x": found.maps[:3]})
    plt.close("all")


def test_show_gallery_titles_replace_the_class_names_and_are_checked():
    from cam_tutorial.viz import show_gallery

    images = torch.rand(3, 3, SIZE, SIZE)
    fig = show_gallery(images, labels=[0, 1, 2], titles=["IoU 0.10", "IoU 0.50", "IoU 0.90"],
                       class_names=["a", "b", "c"], boxes=_found().boxes[:3], pred_boxes=_found().boxes[:3])
    assert [ax.get_title() for ax in fig.axes[:3]] == ["IoU 0.10", "IoU 0.50", "IoU 0.90"]
    with pytest.raises(ValueError, match="one title per image"):
        show_gallery(images, titles=["only one"])
    plt.close("all")


@pytest.mark.parametrize("draw", ["gallery", "map_rows"])
def test_wide_grids_fit_the_book_column_and_keep_the_legend_off_the_images(draw):
    """Twelve images would make a 19-inch figure at 1.6 inches each: the book would shrink its labels
    to unreadable; the grid keeps to MAX_FIGURE_WIDTH instead, with the legend below the images."""
    from cam_tutorial.viz import LABEL_SIZE, MAX_FIGURE_WIDTH, show_gallery

    found = _found()
    images = torch.rand(12, 3, SIZE, SIZE)
    boxes = found.boxes[:1].repeat(12, 1)
    if draw == "gallery":
        fig = show_gallery(images, labels=[0] * 12, class_names=["star"], boxes=boxes, pred_boxes=boxes,
                           ncols=12, title="t")
    else:
        fig = show_map_rows(images, {"x": found.maps[:1].repeat(12, 1, 1)}, boxes=boxes, pred_boxes={"x": boxes},
                            titles={"x": ["IoU 0.50"] * 12}, title="t")
    assert fig.get_size_inches()[0] <= MAX_FIGURE_WIDTH + 1e-9
    assert fig.axes[0].title.get_fontsize() == LABEL_SIZE
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    lowest = min(ax.get_window_extent(renderer).y0 for ax in fig.axes)
    assert legend.y1 <= lowest + 1, (legend, lowest)       # below the images, not on them
    plt.close("all")


def test_a_box_along_the_image_edge_is_drawn_above_the_frame():
    from cam_tutorial.viz import draw_box

    fig, ax = plt.subplots()
    ax.imshow(np.zeros((8, 8)))
    draw_box(ax, [0, 0, 8, 8], "red")
    box = ax.patches[0]
    assert not box.get_clip_on() and box.get_zorder() > max(s.get_zorder() for s in ax.spines.values())
    plt.close("all")


def test_twin_measures_are_the_comparison_rows_plus_object_size_coverage():
    from cam_tutorial.methods.compare import twin_measures
    from cam_tutorial.config import get_preset
    from cam_tutorial.coverage import object_size_coverage

    maps = {"GAP": _found(), "GMP": _found(shift=3)}
    reports = {pool: localization_report(found, pool) for pool, found in maps.items()}
    rows = twin_measures(get_preset("ci"), maps=maps)
    assert sorted(rows) == ["GAP", "GMP"]
    for (pool, found), expected in zip(maps.items(), comparison_rows(reports)):
        matched = float(np.nanmean(object_size_coverage(found.maps, found.masks)))
        assert rows[pool] == {**expected, "matched": matched}
    assert twin_measures(get_preset("ci"), maps=maps, reports=reports) == rows


def test_twin_measures_on_the_first_test_images_only():
    """``test_size`` measures the shipped twins on the first items of the test split: the same
    rows as their maps of exactly those items."""
    from cam_tutorial.dataset_maps import cams_for_dataset
    from cam_tutorial.methods.compare import twin_measures
    from cam_tutorial.config import get_preset
    from cam_tutorial.lab import SyntheticShapes
    from cam_tutorial.zoo import model_dataset, trained_model

    ci = get_preset("ci")
    full = model_dataset("resnet18b_gap", "test", ci)
    first = SyntheticShapes("test", length=40, image_size=full.image_size, objects=full.objects)
    maps = {pool: cams_for_dataset(trained_model(f"resnet18b_{pool.lower()}", ci, "cpu", progress=False),
                                   first, 20, "cpu", progress=False) for pool in ("GAP", "GMP")}
    assert twin_measures(ci, "cpu", test_size=40) == twin_measures(ci, maps=maps)
    for wrong in (0, ci.test_size + 1):
        with pytest.raises(ValueError, match=rf"test_size must lie in \[1, {ci.test_size}\]"):
            twin_measures(ci, "cpu", test_size=wrong)
# --- calibration: tau chosen on held-out boxes, reported on test (Choe et al. 2020) ----------

def _blob_maps(centres_and_halves, side=32):
    """Maps that are a bright square with a dimmer halo, so the best tau depends on the box."""
    maps = np.zeros((len(centres_and_halves), side, side))
    for i, (c, half) in enumerate(centres_and_halves):
        maps[i, c - 2 * half:c + 2 * half, c - 2 * half:c + 2 * half] = 0.5
        maps[i, c - half:c + half, c - half:c + half] = 1.0
    return maps


def test_calibrated_box_acc_uses_the_held_out_threshold_on_test():
    from cam_tutorial.methods.compare import calibrated_box_acc
    from cam_tutorial.metrics import max_box_acc

    maps = _blob_maps([(16, 4), (16, 4)])
    inner = [[12, 12, 20, 20]] * 2      # the bright core: a high tau finds it
    outer = [[8, 8, 24, 24]] * 2        # the halo: only a low tau finds it
    taus = np.linspace(0, 0.9, 10)
    held_out = max_box_acc(maps, inner, iou_thresholds=(0.5,), cam_thresholds=taus)
    test = max_box_acc(maps, outer, iou_thresholds=(0.5,), cam_thresholds=taus)
    result = calibrated_box_acc(held_out, test)
    assert result.chosen_threshold[0] >= 0.5           # the core's threshold, chosen on held-out
    assert result.test_best_threshold[0] < 0.5          # test would have liked the halo's
    assert result.calibrated[0] == 0.0 and result.test_max[0] == 1.0
    assert result.optimism[0] == 1.0 and result.iou_thresholds[0] == 0.5


def test_calibrated_box_acc_on_the_same_split_is_max_box_acc():
    from cam_tutorial.methods.compare import calibrated_box_acc
    from cam_tutorial.metrics import max_box_acc

    maps = _blob_maps([(16, 4), (12, 3), (18, 5)])
    boxes = [[12, 12, 20, 20], [6, 6, 18, 18], [13, 13, 23, 23]]
    result_v2 = max_box_acc(maps, boxes)
    same = calibrated_box_acc(result_v2, result_v2)
    np.testing.assert_array_equal(same.calibrated, result_v2.max_box_acc)
    assert not same.optimism.any()


def test_calibrated_box_acc_refuses_mismatched_thresholds():
    from cam_tutorial.methods.compare import calibrated_box_acc
    from cam_tutorial.metrics import max_box_acc

    maps = _blob_maps([(16, 4)])
    a = max_box_acc(maps, [[12, 12, 20, 20]], cam_thresholds=np.linspace(0, 0.9, 10))
    b = max_box_acc(maps, [[12, 12, 20, 20]])
    with pytest.raises(ValueError, match="same cam_thresholds"):
        calibrated_box_acc(a, b)
