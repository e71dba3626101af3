"""Tests of cam_tutorial.anymodel.extractor: hooks, layer finding on any network, the head check.

What CAMExtractor shares with compute_cams on the book's models (the identity, shapes, input
errors, execution modes) is tested for both in test_cam.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from cam_tutorial.anymodel.extractor import CAMExtractor
from cam_tutorial.cam import CAMNotApplicableError, class_activation_maps, compute_cams
from cam_tutorial.models import ResNet18B, vgg16_fc, vgg16_gap

NUM_CLASSES = 6


def _tiny_resnet(seed: int = 0, pooling: str = "avg", width: int = 4) -> ResNet18B:
    """A small ResNet18B with a non-zero bias and weights large enough to give distinct logits."""
    torch.manual_seed(seed)
    model = ResNet18B(num_classes=NUM_CLASSES, width=width, pooling=pooling, bias=True)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
        model.classifier.bias.normal_(0, 0.5)
    return model.eval()


def _images(batch: int = 3, size: int | tuple[int, int] = 64, seed: int = 1) -> torch.Tensor:
    h, w = (size, size) if isinstance(size, int) else size
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


@pytest.fixture(scope="module")
def model() -> ResNet18B:
    return _tiny_resnet()


def test_weights_are_read_from_the_live_model_at_each_call():
    # The slides' bug: weights read from a freshly built model. Here a change to the model shows.
    model = _tiny_resnet(seed=3)
    images = _images(batch=2)
    with CAMExtractor(model) as cam:
        before = cam(images, classes=1, upsample=False, normalize=False).maps
        with torch.no_grad():
            model.classifier.weight.mul_(-2)
        after = cam(images, classes=1, upsample=False, normalize=False).maps
    assert torch.allclose(after, -2 * before, atol=1e-5)


def test_no_hook_stays_on_the_model_and_a_closed_extractor_refuses_calls():
    model = _tiny_resnet()
    cam = CAMExtractor(model)
    assert _no_hooks(model)
    cam(_images(batch=1))
    assert _no_hooks(model)
    cam.close()
    cam.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        cam(_images(batch=1))
    with pytest.raises(KeyError):
        with CAMExtractor(model) as cam:
            raise KeyError("boom")
    assert _no_hooks(model)


def test_the_probe_finds_the_layer_and_leaves_no_hook():
    model = torchvision.models.resnet18(num_classes=5).eval()
    with CAMExtractor(model) as cam:
        assert cam.target_name is None
        cam(torch.rand(1, 3, 64, 64))
        assert cam.target_name == "layer4" and _no_hooks(model)
        cam(torch.rand(1, 3, 64, 64))  # later calls hook layer4 alone, and only during the pass
        assert _no_hooks(model)


# -- layer finding on torchvision models -------------------------------------------------------


@pytest.mark.parametrize(
    "name, build, target, fc",
    [
        ("resnet18", lambda: torchvision.models.resnet18(weights=None, num_classes=5), "layer4", "fc"),
        pytest.param("densenet121", lambda: torchvision.models.densenet121(weights=None, num_classes=5), "features",
                     "classifier", marks=pytest.mark.slow),
        ("efficientnet_b0", lambda: torchvision.models.efficientnet_b0(weights=None, num_classes=5), "features",
         "classifier.1"),
        ("googlenet", lambda: torchvision.models.googlenet(weights=None, num_classes=5, aux_logits=False,
                                                           init_weights=False), "inception5b", "fc"),
    ],
)
def test_torchvision_models_are_found_and_satisfy_the_identity(name, build, target, fc, caplog):
    torch.manual_seed(0)
    model = build().eval()
    with torch.no_grad():
        model.get_submodule(fc).bias.normal_(0, 0.5)
    with caplog.at_level("DEBUG", logger="cam_tutorial.anymodel.extractor"):
        with CAMExtractor(model) as cam:
            out = cam(torch.rand(1, 3, 64, 64), top_k=5, upsample=False, normalize=False)
    assert (cam.target_name, cam.fc_name, cam.pooling) == (target, fc, "avg")
    assert f"feature layer {target!r}" in caplog.text and f"classifier {fc!r}" in caplog.text
    info = [r.getMessage() for r in caplog.records if r.levelname == "INFO" and r.name == "cam_tutorial.anymodel.extractor"]
    assert len(info) == 1 and info[0].startswith("CAMExtractor: verified logits"), info  # one line, not three
    b = model.get_submodule(fc).bias.detach()
    scale = out.logits.abs().max()
    predicted = out.maps.mean(dim=(2, 3)) + b[out.classes]
    assert torch.allclose(predicted, out.logits.gather(1, out.classes), atol=1e-5 * max(1.0, float(scale)))
    assert _no_hooks(model)


def test_global_max_pooling_is_accepted_and_reported():
    model = _tiny_resnet(pooling="max")
    with CAMExtractor(model) as cam:
        out = cam(_images(batch=2), upsample=False, normalize=False)
    assert cam.pooling == "max"
    W, b = model.classifier.weight, model.classifier.bias
    assert torch.allclose(out.features.amax(dim=(2, 3)) @ W.T + b, out.logits, atol=1e-5)
    assert torch.allclose(out.maps, class_activation_maps(out.features, W, out.classes))


def test_vgg16_gap_is_accepted_and_vgg16_fc_is_rejected():
    torch.manual_seed(0)
    with CAMExtractor(vgg16_gap(4, width=4).eval()) as cam:
        assert cam(torch.rand(1, 3, 64, 64)).maps.shape == (1, 64, 64)
    with pytest.raises(CAMNotApplicableError, match=r"Linear -> ReLU -> Dropout -> Linear.*Grad-CAM"):
        CAMExtractor(vgg16_fc(4, width=4, image_size=64).eval())


def test_mobilenet_v3_and_normalised_heads_are_rejected_with_the_reason():
    with pytest.raises(CAMNotApplicableError, match=r"Linear -> Hardswish -> Dropout -> Linear.*one linear layer"):
        CAMExtractor(torchvision.models.mobilenet_v3_small(weights=None, num_classes=5).eval())
    # convnext's head in miniature: a LayerNorm between the pooling and the linear layer.
    convnext_like = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1),
                                  nn.Sequential(nn.Flatten(), nn.LayerNorm(8), nn.Linear(8, 3)))
    with pytest.raises(CAMNotApplicableError, match="Flatten -> LayerNorm -> Linear"):
        CAMExtractor(convnext_like)


class _HiddenMLPHead(nn.Module):
    """GAP then Linear-ReLU-Linear written in forward: no Sequential gives it away."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.fc1 = nn.Linear(8, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(self.features(x).mean(dim=(2, 3)))))


def test_a_head_that_is_not_gap_plus_linear_is_caught_numerically():
    torch.manual_seed(0)
    model = _HiddenMLPHead().eval()
    with pytest.raises(CAMNotApplicableError, match=r"not global pooling of .*'features' followed by 'fc2' .*"
                                                     r"candidate with 8 channels.*Grad-CAM"):
        CAMExtractor(model)(torch.rand(2, 3, 16, 16))
    with pytest.raises(CAMNotApplicableError, match=r"not global pooling of 'features' followed by 'fc2'"):
        CAMExtractor(model, target_layer="features")(torch.rand(2, 3, 16, 16))
    assert _no_hooks(model)


def test_maps_of_one_position_are_refused_with_the_fix():
    model = torchvision.models.resnet18(num_classes=5).eval()
    with pytest.raises(CAMNotApplicableError, match="1x1: use larger images"):
        with CAMExtractor(model) as cam:
            cam(torch.rand(1, 3, 32, 32))


def test_layers_can_be_given_by_name_or_module_and_are_checked(model):
    with CAMExtractor(model, target_layer="features.conv5_2", fc_layer="classifier") as cam:
        by_name = cam(_images(batch=2), upsample=False, normalize=False)
    with CAMExtractor(model, target_layer=model.features) as cam:
        by_module = cam(_images(batch=2), upsample=False, normalize=False)
    assert torch.allclose(by_name.maps, by_module.maps)
    with pytest.raises(ValueError, match="no submodule 'layer9'.*'features'"):
        CAMExtractor(model, target_layer="layer9")
    with pytest.raises(ValueError, match="not a submodule"):
        CAMExtractor(model, target_layer=nn.ReLU())
    with pytest.raises(TypeError, match="must be an nn.Linear"):
        CAMExtractor(model, fc_layer="features")
    with pytest.raises(CAMNotApplicableError, match="outputs shape"):
        with CAMExtractor(model, target_layer="features.conv4_2") as cam:
            cam(_images(batch=1))
    assert _no_hooks(model)


def test_a_target_layer_that_runs_twice_is_refused():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)
            self.stem = nn.Conv2d(3, 4, 1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.conv(self.conv(self.stem(x))).mean(dim=(2, 3)))

    with pytest.raises(ValueError, match="ran 2 times"):
        with CAMExtractor(Twice().eval(), target_layer="conv") as cam:
            cam(torch.rand(1, 3, 8, 8))


class _SqueezeExcitation(nn.Module):
    """Squeeze-excitation with its own Linears, in an nn.Sequential (as many implementations)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, channels // 2),
                                nn.ReLU(), nn.Linear(channels // 2, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.se(x)[:, :, None, None]


class _SENet(nn.Module):
    """A GAP classifier whose SE block's Linears are registered after the classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 5)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), _SqueezeExcitation(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


class _Scale(nn.Module):
    def forward(self, f: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return f * gate[:, :, None, None]


class _TopLevelSENet(nn.Module):
    """SE Linears at the top level, the classifier one level down: the structure cannot tell them
    apart, so the classifier is named."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(8, 5))
        self.squeeze = nn.Linear(8, 4)
        self.excite = nn.Linear(4, 8)
        self.scale = _Scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.body(x)
        gate = torch.sigmoid(self.excite(F.relu(self.squeeze(f.mean(dim=(2, 3))))))
        return self.head(self.scale(f, gate).mean(dim=(2, 3)))


@pytest.mark.parametrize("net, fc_layer, fc_name, target_name",
                         [(_SENet, None, "head", "body"), (_TopLevelSENet, "head.1", "head.1", "scale")])
def test_the_classifier_is_the_head_not_an_se_block(net, fc_layer, fc_name, target_name):
    torch.manual_seed(0)
    model = net().eval()
    images = _images(2, 16)
    with CAMExtractor(model, fc_layer=fc_layer) as cam:
        out = cam(images, top_k=3, upsample=False, normalize=False)
        assert cam.fc_name == fc_name and cam.num_classes == 5 and cam.num_channels == 8
        assert cam.target_name == target_name
        again = cam(images, classes=[4, 0], upsample=False, normalize=False)  # later calls: same layers
    assert out.logits.shape == (2, 5) and out.maps.shape == (2, 3, 16, 16)
    fc = model.get_submodule(fc_name)
    # The S_c identity with the classifier found: map mean + bias = logit.
    expected = out.logits.gather(1, out.classes)
    assert torch.allclose(out.maps.mean(dim=(2, 3)) + fc.bias[out.classes], expected, atol=1e-5)
    assert torch.allclose(again.maps.mean(dim=(1, 2)) + fc.bias[[4, 0]], again.logits[[0, 1], [4, 0]], atol=1e-5)
    assert _no_hooks(model)


def test_a_classifier_the_structure_cannot_find_is_refused_with_the_fix():
    # The shallowest Linear that can be a head is taken; here it is the SE block's: the logits'
    # shape says so, and the message says to name the classifier.
    with pytest.raises(CAMNotApplicableError, match=r"logits of shape \(2, 8\), got \(2, 5\).*fc_layer="):
        CAMExtractor(_TopLevelSENet().eval())(_images(2, 16))


def test_head_errors_suggest_naming_the_layers():
    with pytest.raises(CAMNotApplicableError, match=r"fc_layer="):
        CAMExtractor(vgg16_fc(4, width=2, image_size=32).eval())
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(3))
    plain(torch.zeros(1, 3, 8, 8))
    with pytest.raises(CAMNotApplicableError, match=r"target_layer=\.\.\., fc_layer=\.\.\."):
        CAMExtractor(plain.eval())(torch.rand(1, 3, 8, 8))


def _efficientnet_lite0() -> nn.Module:
    from cam_tutorial.real.efficientnet_lite import EfficientNetLite0

    torch.manual_seed(0)
    return EfficientNetLite0(num_classes=5)


@pytest.mark.parametrize("build", [_tiny_resnet, lambda: _tiny_resnet(pooling="max"), lambda: vgg16_gap(4, width=4),
                                   _efficientnet_lite0], ids=["resnet18b_gap", "resnet18b_gmp", "vgg16_gap",
                                                              "efficientnet_lite0"])
def test_the_extractor_gives_compute_cams_results_bit_for_bit_on_the_books_models(build):
    model = build().eval()
    images = _images(batch=2)
    with CAMExtractor(model) as cam:
        hooked = cam(images, top_k=2)
        raw = cam(images, classes=[1, 0], upsample=False, normalize=False)
    direct = compute_cams(model, images, top_k=2)
    for name in ("logits", "classes", "maps", "features"):
        assert torch.equal(getattr(hooked, name), getattr(direct, name)), name
    assert torch.equal(raw.maps, compute_cams(model, images, [1, 0], upsample=False, normalize=False).maps)
