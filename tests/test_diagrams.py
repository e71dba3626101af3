"""The book's diagrams draw, say what they should, and stay legible at the page's width."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from cam_tutorial.book import diagrams  # noqa: E402
from scripts.figure_metrics import measure_figure  # noqa: E402
from cam_tutorial.models import ResNet18B, vgg16_fc, vgg16_gap  # noqa: E402


def _labels(fig) -> list[str]:
    """Every text of a figure, to test that a diagram says what it should."""
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [t.get_text() for t in fig.texts]


def _legible(fig) -> None:
    metrics = measure_figure(fig)
    assert metrics.min_text_px >= 12, metrics  # >= 9 CSS px even shrunk to 75%
    assert metrics.overlaps == []
    assert fig.get_size_inches()[0] * fig.dpi <= 700  # drawn for the ~690 px column
    plt.close(fig)


def test_stage_shapes_are_measured_from_the_model():
    shapes = dict(diagrams.stage_shapes(ResNet18B(width=8), image_size=64))
    assert list(shapes) == ["input", "gate", "conv2_x", "conv3_x", "conv4_x", "conv5_x"]
    assert shapes["gate"] == (8, 16, 16) and shapes["conv3_x"] == (16, 8, 8)
    assert shapes["conv4_x"] == (32, 4, 4) and shapes["conv5_x"] == (64, 4, 4)  # stride 1 in conv5_x
    full = dict(diagrams.stage_shapes(ResNet18B(), image_size=224))
    assert full["conv5_x"] == (512, 14, 14)


def test_resnet18b_diagram_labels_every_stage_with_its_shape():
    model = ResNet18B(num_classes=10, width=8)
    fig = diagrams.draw_resnet18b_stages(diagrams.stage_shapes(model, 64), 64, 10)
    labels = _labels(fig)
    for name in ("gate", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "GAP", "linear"):
        assert name in labels
    assert "64\u00d74\u00d74" in labels and "64\u219210" in labels
    _legible(fig)
    with pytest.raises(ValueError, match="stage_shapes"):
        diagrams.draw_resnet18b_stages([])


def test_vgg_heads_diagram_shows_both_heads_with_shapes_from_the_models():
    fc = diagrams.vgg_head_shapes(vgg16_fc(10, width=8, image_size=64), 64)
    gap = diagrams.vgg_head_shapes(vgg16_gap(10, width=8), 64)
    assert fc["features"] == (64, 2, 2) and fc["head"] == "fc" and fc["linear"][0] == (256, 512)
    assert gap["features"] == (128, 4, 4) and gap["linear"] == [(128, 10)]
    fig = diagrams.draw_vgg_heads(fc, gap, 64)
    text = "\n".join(_labels(fig))
    assert "VGG16 (FC head)" in text and "VGG16-GAP" in text
    assert "flatten\n256" in text and "GAP\n128" in text and "linear 128\u219210" in text
    _legible(fig)


def test_building_block_diagram_names_both_shortcuts():
    fig = diagrams.draw_building_block()
    text = "\n".join(_labels(fig))
    assert "A: identity, zero-padded" in text and "B: projection" in text
    assert "conv 1\u00d71" in text and "BN" in text and "+" in text
    _legible(fig)


def test_cam_pipeline_diagram_has_every_step():
    fig = diagrams.draw_cam_pipeline(channels=128, side=7, image_size=112, num_classes=5)
    text = "\n".join(_labels(fig))
    for piece in ("features", "128\u00d77\u00d77", "GAP", "linear", "weighted sum", "upsample", "112\u00d7112"):
        assert piece in text
    _legible(fig)
