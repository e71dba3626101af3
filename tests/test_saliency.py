"""Tests of cam_tutorial.methods.saliency: Grad-CAM == ReLU(CAM)/Z on GAP models, saliency == finite
differences, batching, no side effects on the model, errors."""

from __future__ import annotations


import pytest
import torch
import torchvision
from torch import nn

from cam_tutorial.anymodel.extractor import CAMExtractor
from cam_tutorial.cam import compute_cams, normalize_maps, upsample_maps
from cam_tutorial.models import ResNet18B, vgg16_fc
from cam_tutorial.methods.saliency import grad_cam, gradient_saliency

NUM_CLASSES = 5


def _tiny_resnet(seed: int = 0) -> ResNet18B:
    torch.manual_seed(seed)
    model = ResNet18B(num_classes=NUM_CLASSES, width=4, bias=True)
    with torch.no_grad():  # weights large enough for distinct, signed maps
        model.classifier.weight.normal_(0, 0.5)
        model.classifier.bias.normal_(0, 0.5)
    return model.eval()


def _images(batch: int = 3, size: int = 64, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.fixture(scope="module")
def model() -> ResNet18B:
    return _tiny_resnet()


# -- Grad-CAM is CAM on a GAP + linear head -----------------------------------------------------


@pytest.mark.parametrize("classes", [None, 2, [0, 4, 1]])
def test_grad_cam_equals_relu_cam_over_z(model, classes):
    images = _images()
    out = compute_cams(model, images, classes, upsample=False, normalize=False)
    z = out.maps.shape[-2] * out.maps.shape[-1]
    got = grad_cam(model, images, classes=classes)
    assert got.shape == out.maps.shape == (3, 4, 4)
    # The relation is exact; the maps have both signs, so the ReLU is exercised.
    assert (out.maps < 0).any() and (out.maps > 0).any()
    assert torch.allclose(got, out.maps.clamp(min=0) / z, rtol=1e-4, atol=1e-7)


def test_grad_cam_upsampled_and_normalised_matches_the_extractors_pipeline(model):
    images = _images()
    raw = compute_cams(model, images, [1, 1, 3], upsample=False, normalize=False).maps
    expected = normalize_maps(upsample_maps(raw.clamp(min=0), 64))
    got = grad_cam(model, images, classes=[1, 1, 3], upsample=True, normalize=True)
    assert got.shape == (3, 64, 64)
    assert torch.allclose(got, expected, atol=1e-5)
    assert float(got.amin()) == 0.0 and float(got.amax()) == 1.0


def test_grad_cam_with_a_named_target_layer_of_a_torchvision_resnet():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=NUM_CLASSES).eval()
    images = _images(batch=2)
    with CAMExtractor(net) as cam:
        out = cam(images, classes=[3, 0], upsample=False, normalize=False)
    got = grad_cam(net, images, classes=[3, 0], target_layer="layer4")
    assert torch.allclose(got, out.maps.clamp(min=0) / 4, rtol=1e-4, atol=1e-7)  # 2x2 maps at 64 px


# -- gradient saliency ----------------------------------------------------------------------------


def test_gradient_saliency_matches_finite_differences():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 4, 3, padding=1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).double().eval()
    image = _images(batch=1, size=8, seed=3, dtype=torch.float64)
    target = 2
    sal = gradient_saliency(net, image, classes=target)
    assert sal.shape == (1, 8, 8) and sal.dtype == torch.float64
    eps = 1e-6
    for y, x in [(0, 0), (3, 5), (7, 2), (4, 4)]:
        slopes = []
        for ch in range(3):
            plus, minus = image.clone(), image.clone()
            plus[0, ch, y, x] += eps
            minus[0, ch, y, x] -= eps
            with torch.no_grad():
                slopes.append((net(plus)[0, target] - net(minus)[0, target]) / (2 * eps))
        expected = torch.stack(slopes).abs().max()
        assert float(expected) > 1e-4  # the pixel matters, so the check means something
        assert torch.isclose(sal[0, y, x], expected, rtol=1e-5, atol=1e-9)


def test_batched_saliency_equals_one_image_at_a_time(model):
    images = _images()
    classes = [4, 0, 2]
    batched = gradient_saliency(model, images, classes=classes)
    assert batched.shape == (3, 64, 64) and (batched >= 0).all()
    for i, c in enumerate(classes):
        alone = gradient_saliency(model, images[i], classes=c)
        assert alone.shape == (1, 64, 64)
        assert torch.allclose(batched[i], alone[0], rtol=1e-4, atol=1e-8)
    # A different class gives a different map: the classes are really used.
    assert not torch.allclose(batched[0], gradient_saliency(model, images[:1], classes=1)[0])


def test_default_class_is_the_prediction(model):
    images = _images()
    with torch.no_grad():
        predicted = model(images).argmax(dim=1)
    assert torch.equal(gradient_saliency(model, images), gradient_saliency(model, images, classes=predicted))
    assert torch.equal(grad_cam(model, images), grad_cam(model, images, classes=predicted))


def test_saliency_works_for_the_fc_model_that_cam_cannot_explain():
    torch.manual_seed(0)
    net = vgg16_fc(num_classes=NUM_CLASSES, width=2, image_size=32).eval()
    sal = gradient_saliency(net, _images(batch=2, size=32), classes=[0, 1])
    assert sal.shape == (2, 32, 32) and bool((sal > 0).any())


def test_no_side_effects_on_the_model(model):
    frozen = _tiny_resnet(seed=2)
    for p in frozen.parameters():
        p.requires_grad_(False)
    for net in (model, frozen):
        before = {k: v.clone() for k, v in net.state_dict().items()}
        gradient_saliency(net, _images())
        maps = grad_cam(net, _images())
        assert maps.shape == (3, 4, 4)
        assert not net.training
        assert all(p.grad is None for p in net.parameters())
        assert all(not m._forward_hooks for m in net.modules())
        assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


# -- errors ----------------------------------------------------------------------------------------


def test_errors_name_the_problem(model):
    images = _images()
    with pytest.raises(ValueError, match="out of range"):
        gradient_saliency(model, images, classes=NUM_CLASSES)
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(model, images, classes=[0, -1, 2])
    with pytest.raises(ValueError, match="one index per image"):
        gradient_saliency(model, images, classes=[0, 1])
    with pytest.raises(TypeError, match="integers"):
        grad_cam(model, images, classes=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        gradient_saliency(model, images[0, 0])
    with pytest.raises(ValueError, match="channels-last"):
        grad_cam(model, images.permute(0, 2, 3, 1))
    with pytest.raises(TypeError, match="float"):
        gradient_saliency(model, (images * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="nn.Module"):
        gradient_saliency("resnet", images)
    with pytest.raises(ValueError, match="no submodule"):
        grad_cam(model, images, target_layer="layer9")
    model.train()
    try:
        with pytest.raises(ValueError, match="eval"):
            grad_cam(model, images)
    finally:
        model.eval()


def test_grad_cam_layer_errors():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=3).eval()
    with pytest.raises(ValueError, match="target_layer"):
        grad_cam(net, _images(batch=1))
    # torchvision's ResNet reuses one ReLU module in every block: it runs many times per pass.
    with pytest.raises(ValueError, match="ran .* times"):
        grad_cam(net, _images(batch=1), target_layer="layer1.0.relu")
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)"):
        grad_cam(net, _images(batch=1), target_layer="fc")
    assert all(not m._forward_hooks for m in net.modules())
