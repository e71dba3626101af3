"""Tests of cam_tutorial.book.widgets: the explorer's callbacks, driven from code (no browser)."""

from __future__ import annotations

import datetime
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from cam_tutorial.cam import compute_cams  # noqa: E402
from cam_tutorial.lab import SyntheticShapes  # noqa: E402
from cam_tutorial.boxes import box_from_cam, box_iou  # noqa: E402
from cam_tutorial.models import ResNet18B, vgg16_fc  # noqa: E402
from cam_tutorial.book.widgets import CAMExplorer, load_image_bytes  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def model() -> ResNet18B:
    torch.manual_seed(0)
    net = ResNet18B(num_classes=10, width=4)
    with torch.no_grad():
        net.classifier.weight.normal_(0, 0.5)
    return net.eval()


@pytest.fixture(scope="module")
def dataset() -> SyntheticShapes:
    return SyntheticShapes("test", length=6, image_size=SIZE)


def _decode(png) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(bytes(png))).convert("RGB"))


def test_initial_state_is_the_top_class_of_item_zero(model, dataset):
    explorer = CAMExplorer(model, dataset)
    image = dataset[0][0]
    out = compute_cams(model, image[None], top_k=5)
    assert [v for _, v in explorer.class_choice.options] == out.classes[0].tolist()
    assert explorer.class_choice.value == int(out.classes[0, 0])
    state = explorer.current
    p = out.logits[0].softmax(0)[out.classes[0, 0]]
    assert state["probability"] == pytest.approx(float(p), rel=1e-5)
    assert f"p = {float(p):.3f}" in explorer.scores.value
    assert np.allclose(state["map"], out.maps[0, 0].numpy())
    assert state["box"].tolist() == box_from_cam(out.maps[0, 0].numpy(), 0.2).tolist()
    expected_iou = box_iou(state["box"], dataset[0][2].numpy())[0, 0]
    assert state["iou"] == pytest.approx(expected_iou)
    picture = _decode(explorer.image.value)
    assert picture.shape[0] == picture.shape[1] >= SIZE


def test_changing_class_threshold_and_opacity_redraws(model, dataset):
    explorer = CAMExplorer(model, dataset)
    first_png, first_scores = bytes(explorer.image.value), explorer.scores.value
    second = explorer.class_choice.options[1][1]
    explorer.class_choice.value = second
    assert explorer.current["class"] == second
    assert explorer.scores.value != first_scores and explorer.current["class_name"] in explorer.scores.value
    assert bytes(explorer.image.value) != first_png

    explorer.threshold.value = 0.9
    cam = explorer.current["map"]
    assert explorer.current["box"].tolist() == box_from_cam(cam, 0.9).tolist()
    assert "threshold 0.90" in explorer.scores.value

    before = _decode(explorer.image.value)
    explorer.opacity.value = 0.0  # image only (boxes still drawn): differs from the overlay
    after = _decode(explorer.image.value)
    assert before.shape == after.shape and not np.array_equal(before, after)


def test_the_slider_changes_the_image(model, dataset):
    explorer = CAMExplorer(model, dataset)
    explorer.index.value = 3
    assert explorer.current["source"].startswith("lab image 3")
    assert explorer.index.max == len(dataset) - 1
    top = compute_cams(model, dataset[3][0][None], top_k=5).classes[0].tolist()
    assert [v for _, v in explorer.class_choice.options] == top


def test_an_uploaded_photo_is_resized_and_explained(model, dataset):
    explorer = CAMExplorer(model, dataset)
    photo = np.zeros((50, 80, 3), dtype=np.uint8)
    photo[:, 40:] = 255
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    explorer.upload.value = ({"name": "half.png", "type": "image/png", "size": len(buffer.getvalue()),
                              "content": memoryview(buffer.getvalue()),
                              "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    state = explorer.current
    assert state["source"] == "uploaded half.png" and state["gt_box"] is None and state["iou"] is None
    assert "IoU" not in explorer.scores.value
    tensor = load_image_bytes(buffer.getvalue(), SIZE)
    assert tensor.shape == (3, SIZE, SIZE)
    # Centre crop of a half-black, half-white picture: left half dark, right half bright.
    assert float(tensor[:, :, : SIZE // 2 - 2].mean()) < 0 < float(tensor[:, :, SIZE // 2 + 2:].mean())
    with pytest.raises(ValueError, match="not an image"):
        load_image_bytes(b"not a picture", SIZE)


def test_static_figure_shows_the_same_state(model, dataset):
    explorer = CAMExplorer(model, dataset)
    fig = explorer.figure()
    try:
        axes = fig.axes
        assert len(axes) == 2
        assert explorer.current["class_name"] in axes[1].get_title()
        assert len(axes[1].patches) == 2  # ground truth and CAM box
        assert axes[1].get_legend() is not None
    finally:
        plt.close(fig)


def test_opacity_zero_shows_the_image_itself(model, dataset):
    explorer = CAMExplorer(model, dataset, display_size=SIZE)  # scale 1: one picture pixel per image pixel
    explorer.opacity.value = 0.0
    picture = _decode(explorer.image.value).astype(int)
    from cam_tutorial.lab import denormalize

    expected = np.round(denormalize(dataset[0][0]).permute(1, 2, 0).numpy() * 255).astype(int)
    outline = np.zeros((SIZE, SIZE), dtype=bool)  # where the two boxes are drawn (1 px lines)
    for box in (explorer.current["box"], explorer.current["gt_box"]):
        x0, y0, x1, y1 = (int(v) for v in box)
        outline[y0:y1, [x0, x1 - 1]] = True
        outline[[y0, y1 - 1], x0:x1] = True
    assert picture.shape == expected.shape
    assert np.abs(picture - expected)[~outline].max() <= 1
    assert (np.abs(picture - expected).max(axis=2)[outline] > 1).any()  # and the boxes are there


def test_explorer_errors(model, dataset):
    with pytest.raises(ValueError, match="eval"):
        CAMExplorer(ResNet18B(width=2), dataset)
    from cam_tutorial.cam import CAMNotApplicableError

    with pytest.raises(CAMNotApplicableError):
        CAMExplorer(vgg16_fc(10, width=2, image_size=SIZE).eval(), dataset)


# -- reliability (issue 12/13): ipywidgets 7 uploads, items without boxes, unnamed classes -------


def _png_bytes() -> bytes:
    photo = np.zeros((40, 40, 3), dtype=np.uint8)
    photo[:, 20:] = 255
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("version", ["ipywidgets 7", "ipywidgets 8"])
def test_upload_handles_both_ipywidgets_value_shapes(model, dataset, version):
    data = _png_bytes()
    if version == "ipywidgets 7":  # Colab: a dict {name: {"metadata": ..., "content": bytes}}
        value = {"half.png": {"metadata": {"name": "half.png", "type": "image/png", "size": len(data)},
                              "content": data}}
    else:  # a tuple of dicts with "content" as a memoryview
        value = ({"name": "half.png", "type": "image/png", "size": len(data), "content": memoryview(data)},)
    explorer = CAMExplorer(model, dataset)
    explorer._on_upload({"name": "value", "old": None, "new": value, "owner": explorer.upload})
    assert explorer.current["source"] == "uploaded half.png"
    assert torch.equal(explorer._tensor, load_image_bytes(data, SIZE))


def test_image_label_items_work_and_unnamed_classes_show_their_index(model):
    images = torch.stack([SyntheticShapes("test", length=2, image_size=SIZE)[i][0] for i in range(2)])
    pairs = torch.utils.data.TensorDataset(images, torch.tensor([7, 1]))
    explorer = CAMExplorer(model, pairs, class_names=["zero", "one"])  # names for 2 of the 10 classes
    state = explorer.current
    assert state["gt_box"] is None and state["iou"] is None and "IoU" not in explorer.scores.value
    assert state["source"] == "lab image 0 (true class: class 7)"
    assert _decode(explorer.image.value).shape[:2] == (320, 320)
    explorer.index.value = 1
    assert explorer.current["source"] == "lab image 1 (true class: one)"
