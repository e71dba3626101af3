"""ResNet18B and the VGG16 pair, checked against torchvision as an independent reference."""

import pytest
import torch
import torchvision

from cam_tutorial.config import map_size
from cam_tutorial.models import BuildingBlock, GlobalPool, ResNet18B, vgg16_fc, vgg16_gap


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet18b_with_bias_has_exactly_resnet18_parameter_count():
    # The stride change moves no weights, so the count must match torchvision's ResNet-18.
    assert n_params(ResNet18B(num_classes=10, bias=True)) == n_params(torchvision.models.resnet18(num_classes=10))


def test_resnet18b_without_bias_drops_only_the_classifier_bias():
    assert n_params(ResNet18B(bias=True)) - n_params(ResNet18B(bias=False)) == 10


def test_vgg16_fc_has_exactly_torchvision_vgg16_parameter_count():
    with torch.device("meta"):  # shapes only: 138 M weights are not initialised
        assert n_params(vgg16_fc(1000)) == n_params(torchvision.models.vgg16()) == 138_357_544


def test_fc_head_holds_most_of_vgg16_parameters():
    with torch.device("meta"):
        model = vgg16_fc(1000)
    assert n_params(model.classifier) / n_params(model) > 0.85


@pytest.mark.parametrize("size, side", [(224, 14), (160, 10), (64, 4), (96, 6), (32, 2), (100, 7)])
def test_resnet18b_map_size_is_input_over_16(size, side):
    model = ResNet18B(width=4).eval()
    with torch.no_grad():
        f = model.features(torch.zeros(1, 3, size, size))
    assert f.shape == (1, 32, side, side)
    assert map_size(size) == side


def test_resnet18b_full_width_gives_512x14x14_at_224():
    with torch.no_grad():
        f = ResNet18B().eval().features(torch.zeros(1, 3, 224, 224))
    assert f.shape == (1, 512, 14, 14)


@pytest.mark.parametrize("pooling", ["avg", "max"])
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_resnet18b_poolings_and_shortcuts_classify(pooling, shortcut):
    torch.manual_seed(0)
    model = ResNet18B(num_classes=7, width=4, pooling=pooling, shortcut=shortcut).eval()
    x = torch.randn(3, 3, 64, 80)
    with torch.no_grad():
        f = model.features(x)
        logits = model(x)
    pooled = f.mean(dim=(2, 3)) if pooling == "avg" else f.amax(dim=(2, 3))
    assert logits.shape == (3, 7)
    torch.testing.assert_close(logits, pooled @ model.classifier.weight.T)


def test_shortcut_a_has_no_projection_parameters():
    a, b = ResNet18B(width=8, shortcut="A"), ResNet18B(width=8, shortcut="B")
    projections = sum(n_params(m.shortcut) for m in b.modules() if isinstance(m, BuildingBlock))
    assert projections > 0
    assert n_params(b) - n_params(a) == projections


def test_shortcut_a_is_identity_on_kept_channels_and_zero_on_new_ones():
    block = BuildingBlock(4, 8, stride=2, shortcut="A")
    x = torch.randn(1, 4, 6, 6)
    s = block.shortcut(x)
    assert s.shape == (1, 8, 3, 3)
    torch.testing.assert_close(s[:, :4], x[:, :, ::2, ::2])
    assert torch.count_nonzero(s[:, 4:]) == 0


def test_vgg16_gap_is_the_papers_vggnet_gap():
    model = vgg16_gap(10, width=4).eval()
    with torch.no_grad():
        f = model.features(torch.zeros(2, 3, 224, 224))
    assert f.shape == (2, 64, 14, 14)  # 16 * width channels: 1024 at the standard width
    assert isinstance(model.classifier, torch.nn.Linear)
    assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 10)


def test_vgg16_fc_is_tied_to_its_input_size():
    model = vgg16_fc(10, width=2, image_size=64)
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 10)
    with pytest.raises(ValueError, match="built for 64x64"):
        model(torch.zeros(1, 3, 96, 96))
    with pytest.raises(ValueError, match="multiple of 32"):
        vgg16_fc(10, image_size=100)


def test_unknown_pooling_and_shortcut_are_clear_errors():
    with pytest.raises(ValueError, match="unknown pooling 'mean'.*'avg'"):
        ResNet18B(pooling="mean")
    with pytest.raises(ValueError, match="unknown shortcut 'C'"):
        ResNet18B(shortcut="C")
    with pytest.raises(ValueError, match="unknown pooling"):
        GlobalPool("sum")


def test_input_too_small_to_pool_is_a_clear_error():
    model = ResNet18B(width=4)
    with pytest.raises(ValueError, match="too small to pool.*at least 32x32"):
        model(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(3, 64, 64))


# --- the shortcut options the slide deck asks about (chapter 2) ------------------------------

def _block_and_shortcut_params(option: str) -> tuple[int, int]:
    block = BuildingBlock(8, 16, stride=2, shortcut=option)
    return n_params(block), n_params(block.shortcut)


def test_shortcut_parameters_per_option():
    from cam_tutorial.models import shortcut_module

    assert n_params(shortcut_module(8, 16, 2, "A")) == 0
    assert n_params(shortcut_module(8, 16, 2, "concat")) == 0
    assert n_params(shortcut_module(8, 16, 2, "B-noBN")) == 8 * 16
    assert n_params(shortcut_module(8, 16, 2, "B")) == 8 * 16 + 2 * 16
    # the residual branch is the same whatever the shortcut
    branches = {o: _block_and_shortcut_params(o) for o in ("A", "B", "B-noBN", "concat")}
    assert len({total - short for total, short in branches.values()}) == 1


def test_concat_shortcut_repeats_the_subsampled_input():
    from cam_tutorial.models import shortcut_module

    x = torch.randn(2, 4, 8, 8)
    s = shortcut_module(4, 12, 2, "concat")(x)
    assert s.shape == (2, 12, 4, 4)
    for copy in range(3):
        assert torch.equal(s[:, 4 * copy:4 * (copy + 1)], x[:, :, ::2, ::2])
    with pytest.raises(ValueError, match="multiple of in_channels"):
        shortcut_module(4, 6, 2, "concat")


def test_every_shortcut_option_builds_a_resnet18b_with_the_same_outputs_shape():
    x = torch.zeros(2, 3, 64, 64)
    counts = {}
    for option in ("A", "B", "B-noBN", "concat"):
        model = ResNet18B(num_classes=5, width=4, shortcut=option).eval()
        assert model(x).shape == (2, 5)
        assert model.features(x).shape == (2, 32, 4, 4)
        counts[option] = n_params(model)
    assert counts["A"] == counts["concat"] < counts["B-noBN"] < counts["B"]
    # the three projections (conv3_1, conv4_1, conv5_1) carry the difference
    assert counts["B"] - counts["B-noBN"] == 2 * (8 + 16 + 32)
    assert counts["B-noBN"] - counts["A"] == 4 * 8 + 8 * 16 + 16 * 32


def test_identity_where_shapes_match_whatever_the_option():
    from cam_tutorial.models import shortcut_module

    for option in ("A", "B", "B-noBN", "concat"):
        assert isinstance(shortcut_module(8, 8, 1, option), torch.nn.Identity)
    with pytest.raises(ValueError, match="unknown shortcut 'C'.*'concat'"):
        shortcut_module(8, 16, 2, "C")


def test_resnet18b_checks_its_input_in_forward_not_in_a_submodule():
    """Chapter 2 writes ResNet18B out: features is the gate and eight blocks, nothing else, and the
    input check is the first line of forward."""
    model = ResNet18B(width=2).eval()
    assert [name for name, _ in model.features.named_children()] == [
        "gate", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv4_1", "conv4_2", "conv5_1", "conv5_2"]
    with pytest.raises(ValueError, match="16x16 px is too small"):
        model(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"looks channels-last.*permute"):
        model(torch.zeros(1, 64, 64, 3))
