import pytest
import torch
import torchvision
from torch import nn

from cam_tutorial.models import ResNet18B, vgg16_fc, vgg16_gap
from cam_tutorial.summary import (count_flops, count_parameters, markdown_table, part_table,
                                  receptive_field, stage_table)


def test_flops_of_a_linear_layer_are_two_per_multiply_add():
    layer = nn.Linear(10, 3)
    assert count_flops(layer, torch.zeros(4, 10)) == 2 * 4 * 10 * 3


def test_resnet18b_costs_more_than_resnet18_only_in_its_last_stage():
    x = torch.zeros(1, 3, 224, 224)
    ours = count_flops(ResNet18B().eval(), x)
    reference = count_flops(torchvision.models.resnet18(num_classes=10).eval(), x)
    rows = stage_table(ResNet18B(), 224)
    last_stage = sum(r["mflops"] for r in rows if r["name"].startswith("conv5")) * 1e6
    # Stride 1 instead of 2 in conv5 means 4x the positions there: 3/4 of our conv5 cost is extra
    # (less the stride-2 projection torchvision also has, which is a rounding error here).
    assert ours > reference
    assert abs((ours - reference) - 0.75 * last_stage) / (ours - reference) < 0.02


def test_receptive_field_by_hand():
    # 3x3 conv (r=3), 2x2/2 pool (r=4, j=2), 3x3 conv (r=4+2*2=8)
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3))
    assert receptive_field(net) == 8
    # ResNet-18's main path ends at 435 px; keeping stride 1 in the last stage gives 339 px.
    r18 = torchvision.models.resnet18()
    body = nn.Sequential(r18.conv1, r18.bn1, r18.relu, r18.maxpool, r18.layer1, r18.layer2, r18.layer3, r18.layer4)
    assert receptive_field(body) == 435
    assert receptive_field(ResNet18B().features) == 339


def test_stage_table_shapes_and_parameters_add_up():
    model = ResNet18B(width=8)
    rows = stage_table(model, 64)
    assert [r["name"] for r in rows][0] == "gate" and rows[-1]["output"] == "64x4x4"
    assert sum(r["params"] for r in rows) == count_parameters(model.features)


def test_part_table_shows_where_vgg16_keeps_its_parameters():
    with torch.device("meta"):  # shapes and FLOPs only: no memory, no arithmetic
        fc = {r["part"]: r for r in part_table(vgg16_fc(1000), 224)}
        gap = {r["part"]: r for r in part_table(vgg16_gap(1000), 224)}
    assert fc["classifier"]["params"] == 123_642_856
    assert fc["classifier"]["params_share"] > 0.85 and gap["classifier"]["params_share"] < 0.1
    assert fc["classifier"]["flops_share"] < 0.01


def test_tables_of_a_model_on_the_meta_device_are_those_of_the_model_in_memory():
    torch.manual_seed(0)
    real = vgg16_gap(10, width=4)
    with torch.device("meta"):
        meta = vgg16_gap(10, width=4)
    assert next(meta.parameters()).is_meta
    assert part_table(meta, 64) == part_table(real, 64)
    assert stage_table(meta, 64) == stage_table(real, 64)


def test_markdown_table_formats_and_checks_headers():
    text = markdown_table([{"a": 1234, "b": 0.5, "c": "x"}], formats={"b": "{:.0%}"})
    assert text.splitlines()[2] == "| 1,234 | 50% | x |"
    with pytest.raises(ValueError, match="at least one row"):
        markdown_table([])
    with pytest.raises(ValueError, match="2 headers for 3 columns"):
        markdown_table([{"a": 1, "b": 2, "c": 3}], headers=["a", "b"])


def test_markdown_table_shows_a_dash_for_a_missing_value():
    text = markdown_table([{"a": 0.5, "b": None}], formats={"a": "{:.0%}", "b": "{:.0%}"})
    assert text.splitlines()[-1] == "| 50% | – |"
