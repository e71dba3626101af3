"""Tests of cam_tutorial.cam: the S_c identity, shapes, normalisation, hooks, layer finding, errors."""

from __future__ import annotations

import doctest

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import cam_tutorial.cam as cam_module
from cam_tutorial.cam import (
    CAMExtractor,
    CAMNotApplicableError,
    class_activation_maps,
    normalize_maps,
    upsample_maps,
)
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


@pytest.fixture(scope="module")
def raw_all(model):
    """Raw maps of every class (via top_k = C), logits and features of one batch."""
    with CAMExtractor(model) as cam:
        return cam(_images(), top_k=NUM_CLASSES, upsample=False, normalize=False)


# -- the identity ------------------------------------------------------------------------------


def test_mean_of_map_plus_bias_is_the_logit_for_every_image_and_class(model, raw_all):
    logits = raw_all.logits
    b = model.classifier.bias.detach()
    # maps are ordered by score: put the identity back in class order.
    predicted = raw_all.maps.mean(dim=(2, 3)) + b[raw_all.classes]
    assert torch.allclose(predicted, logits.gather(1, raw_all.classes), atol=1e-5)
    all_maps = class_activation_maps(raw_all.features, model.classifier.weight)
    assert all_maps.shape == (3, NUM_CLASSES, *raw_all.features.shape[-2:])
    assert torch.allclose(all_maps.mean(dim=(2, 3)) + b, logits, atol=1e-5)


def test_all_classes_by_1x1_conv_equals_per_class_weighted_sum(model, raw_all):
    f, W = raw_all.features, model.classifier.weight.detach()
    by_conv = class_activation_maps(f, W)
    for c in range(NUM_CLASSES):
        reference = (W[c][None, :, None, None] * f).sum(dim=1)
        assert torch.allclose(by_conv[:, c], reference, atol=1e-5)
        assert torch.allclose(class_activation_maps(f, W, classes=c), reference, atol=1e-5)


def test_per_image_classes_pick_the_right_maps(model, raw_all):
    f, W = raw_all.features, model.classifier.weight
    wanted = [4, 0, 2]
    all_maps = class_activation_maps(f, W)
    for given in (wanted, torch.tensor(wanted), tuple(wanted)):
        maps = class_activation_maps(f, W, classes=given)
        assert maps.shape == (3, *f.shape[-2:])
        assert torch.allclose(maps, all_maps[torch.arange(3), torch.tensor(wanted)], atol=1e-6)
    with CAMExtractor(model) as cam:
        out = cam(_images(), classes=wanted, upsample=False, normalize=False)
    assert out.classes.tolist() == wanted
    assert torch.allclose(out.maps, all_maps[torch.arange(3), torch.tensor(wanted)], atol=1e-5)


def test_default_class_is_the_prediction_and_top_k_matches_logits_topk(model):
    images = _images(batch=4)
    with CAMExtractor(model) as cam:
        top1 = cam(images)
        top3 = cam(images, top_k=3, normalize=False, upsample=False)
    assert torch.equal(top1.classes, top1.logits.argmax(dim=1))
    assert top1.maps.shape == (4, 64, 64)
    assert torch.equal(top3.classes, top3.logits.topk(3, dim=1).indices)
    assert top3.maps.shape == (4, 3, *top3.features.shape[-2:])
    reference = class_activation_maps(top3.features, model.classifier.weight, top3.classes[:, 1])
    assert torch.allclose(top3.maps[:, 1], reference, atol=1e-6)


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


# -- upsampling and normalisation ----------------------------------------------------------------


def test_maps_are_upsampled_to_the_input_size_and_normalised_per_map(model):
    images = _images(batch=3, size=(64, 96))
    with CAMExtractor(model) as cam:
        out = cam(images, top_k=2)
        raw = cam(images, top_k=2, upsample=False, normalize=False)
    assert out.maps.shape == (3, 2, 64, 96) and out.maps.dtype == torch.float32
    flat = out.maps.flatten(2)
    assert torch.allclose(flat.amin(-1), torch.zeros(3, 2)) and torch.allclose(flat.amax(-1), torch.ones(3, 2))
    expected = normalize_maps(upsample_maps(raw.maps, (64, 96)))
    assert torch.allclose(out.maps, expected, atol=1e-6)


def test_upsample_maps_is_bilinear_without_corner_alignment_and_keeps_leading_dims():
    maps = torch.rand(2, 3, 5, 7)
    up = upsample_maps(maps, (20, 28))
    assert up.shape == (2, 3, 20, 28)
    reference = F.interpolate(maps.reshape(6, 1, 5, 7), size=(20, 28), mode="bilinear", align_corners=False)
    assert torch.allclose(up, reference.reshape(2, 3, 20, 28))
    assert upsample_maps(torch.rand(5, 5), 10).shape == (10, 10)
    assert upsample_maps(torch.rand(4, 5, 5).half(), 10).dtype == torch.float32
    with pytest.raises(TypeError, match="upsample before quantising"):
        upsample_maps(torch.zeros(1, 5, 5, dtype=torch.uint8), 10)


def test_normalize_maps_range_and_constant_maps_become_zeros():
    maps = torch.randn(4, 2, 6, 6) * 10 + 3
    maps[1, 0] = 7.5  # a constant map
    out = normalize_maps(maps)
    assert not torch.isnan(out).any()
    assert torch.equal(out[1, 0], torch.zeros(6, 6))
    flat = out.flatten(2)
    mask = torch.ones(4, 2, dtype=torch.bool)
    mask[1, 0] = False
    assert torch.allclose(flat.amin(-1)[mask], torch.zeros(7)) and torch.allclose(flat.amax(-1)[mask], torch.ones(7))
    assert maps[1, 0, 0, 0] == 7.5  # not in place by default
    same = normalize_maps(maps, inplace=True)
    assert same.data_ptr() == maps.data_ptr() and torch.allclose(same, out)


def test_extractor_gives_zeros_not_nan_for_a_constant_map():
    model = _tiny_resnet()
    with torch.no_grad():
        model.classifier.weight.zero_()  # every map is the constant 0
    with CAMExtractor(model) as cam:
        out = cam(_images(batch=2))
    assert torch.equal(out.maps, torch.zeros_like(out.maps))


# -- hooks -------------------------------------------------------------------------------------


def test_hooks_are_removed_by_close_the_with_block_and_an_exception():
    model = _tiny_resnet()
    cam = CAMExtractor(model)
    assert model.features._forward_hooks
    cam(_images(batch=1))
    cam.close()
    assert _no_hooks(model)
    cam.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        cam(_images(batch=1))
    with CAMExtractor(model) as cam:
        cam(_images(batch=1))
        assert model.features._forward_hooks
    assert _no_hooks(model)
    with pytest.raises(KeyError):
        with CAMExtractor(model) as cam:
            raise KeyError("boom")
    assert _no_hooks(model)


def test_probe_hooks_are_removed_after_detection_and_on_close():
    model = torchvision.models.resnet18(num_classes=5).eval()
    cam = CAMExtractor(model)
    assert sum(bool(m._forward_hooks) for m in model.modules()) > 10  # probing every layer
    cam(torch.rand(1, 3, 64, 64))
    hooked = [name for name, m in model.named_modules() if m._forward_hooks]
    assert hooked == ["layer4"]
    cam.close()
    assert _no_hooks(model)
    unused = CAMExtractor(model)  # closed before any call: the probe hooks go too
    unused.close()
    assert _no_hooks(model)


def test_hooks_only_capture_during_a_call(model):
    with CAMExtractor(model) as cam:
        with torch.no_grad():
            model(_images(batch=1))
        assert cam._store.output is None


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
    with caplog.at_level("DEBUG", logger="cam_tutorial.cam"):
        with CAMExtractor(model) as cam:
            out = cam(torch.rand(1, 3, 64, 64), top_k=5, upsample=False, normalize=False)
    assert (cam.target_name, cam.fc_name, cam.pooling) == (target, fc, "avg")
    assert f"feature layer {target!r}" in caplog.text and f"classifier {fc!r}" in caplog.text
    info = [r.getMessage() for r in caplog.records if r.levelname == "INFO" and r.name == "cam_tutorial.cam"]
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
    with pytest.raises(CAMNotApplicableError, match=r"candidates with 8 channels: features.*Grad-CAM"):
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


# -- inputs ------------------------------------------------------------------------------------


def test_input_errors_name_the_problem_and_the_fix(model):
    images = _images(batch=2)
    with CAMExtractor(model) as cam:
        with pytest.raises(TypeError, match=r"torch.uint8: convert with images.float\(\)"):
            cam((images * 255).to(torch.uint8))
        with pytest.raises(TypeError, match="must be a torch tensor"):
            cam(images.numpy())
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\) or \(3, H, W\)"):
            cam(images[None])
        with pytest.raises(ValueError, match=r"permute\(0, 3, 1, 2\)"):
            cam(images.permute(0, 2, 3, 1))
        with pytest.raises(TypeError, match="torch.float64 but the model is torch.float32"):
            cam(images.double())
        out_of_range = f"class index 6 is out of range: valid indices are 0 to {NUM_CLASSES - 1}"
        with pytest.raises(ValueError, match=out_of_range):
            cam(images, classes=6)
        with pytest.raises(ValueError, match="class index -1 is out of range"):
            cam(images, classes=[0, -1])
        with pytest.raises(ValueError, match="one index per image"):
            cam(images, classes=[0, 1, 2])
        with pytest.raises(TypeError, match="must be integers"):
            cam(images, classes=torch.tensor([0.0, 1.0]))
        with pytest.raises(ValueError, match=f"top_k must be an int from 1 to {NUM_CLASSES}"):
            cam(images, top_k=NUM_CLASSES + 1)
        with pytest.raises(ValueError, match="top_k must be"):
            cam(images, top_k=0)
        with pytest.raises(ValueError, match="either classes or top_k"):
            cam(images, classes=0, top_k=2)
        model.train()
        try:
            with pytest.raises(ValueError, match=r"model.eval\(\)"):
                cam(images)
        finally:
            model.eval()
        single = cam(images[0])
    assert single.maps.shape == (1, 64, 64) and single.logits.shape == (1, NUM_CLASSES)


def test_class_activation_maps_validates_its_inputs():
    f, W = torch.rand(2, 4, 3, 3), torch.rand(5, 4)
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)"):
        class_activation_maps(f[0], W)
    with pytest.raises(ValueError, match="4 channels"):
        class_activation_maps(f, torch.rand(5, 3))
    with pytest.raises(TypeError, match="floating point"):
        class_activation_maps(f.long(), W)
    with pytest.raises(ValueError, match="valid indices are 0 to 4"):
        class_activation_maps(f, W, classes=5)
    assert class_activation_maps(f, W, classes=torch.tensor([[0, 4], [1, 2]])).shape == (2, 2, 3, 3)


# -- execution modes ---------------------------------------------------------------------------


def test_inference_mode_channels_last_and_autocast(model):
    images = _images(batch=2)
    with CAMExtractor(model) as cam:
        reference = cam(images)
        with torch.inference_mode():
            inferred = cam(images)
    assert torch.allclose(inferred.maps, reference.maps) and not reference.maps.requires_grad

    cl_model = _tiny_resnet().to(memory_format=torch.channels_last)
    with CAMExtractor(cl_model) as cam:
        cl = cam(images.to(memory_format=torch.channels_last), top_k=2, normalize=False)
        assert cl.features.is_contiguous(memory_format=torch.channels_last)
        raw = cam(images, top_k=2, normalize=False)
    assert torch.allclose(cl.maps, raw.maps, atol=1e-4)

    with CAMExtractor(_tiny_resnet()) as cam, torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = cam(images)
    assert mixed.maps.dtype == torch.float32 and torch.isfinite(mixed.maps).all()
    assert float(mixed.maps.amin()) == 0.0 and float(mixed.maps.amax()) == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(model):
    images = _images(batch=2)
    with CAMExtractor(model) as cam:
        on_cpu = cam(images, top_k=2)
    gpu_model = _tiny_resnet().cuda()
    with CAMExtractor(gpu_model) as cam:
        on_gpu = cam(images.cuda(), top_k=2)
    assert torch.equal(on_gpu.classes.cpu(), on_cpu.classes)
    assert torch.allclose(on_gpu.maps.cpu(), on_cpu.maps, atol=1e-3)


def test_docstring_examples_run():
    result = doctest.testmod(cam_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 6 and result.failed == 0


# -- overlay (cam_tutorial.viz) ----------------------------------------------------------------


def test_overlay_blends_in_rgb_order_and_resizes_the_map():
    import matplotlib
    import numpy as np

    from cam_tutorial.viz import overlay

    rng = np.random.default_rng(0)
    image = rng.random((32, 48, 3))
    cam = np.zeros((8, 12))
    cam[4, 6] = 1.0
    coloured = overlay(image, cam, alpha=1.0)
    assert coloured.shape == (32, 48, 3) and coloured.dtype == np.float32
    assert 0.0 <= coloured.min() and coloured.max() <= 1.0
    # jet: hot is red, cold is blue, in RGB order (cv2.applyColorMap would give BGR).
    hot, cold = coloured[17, 25], coloured[0, 0]
    assert hot[0] > hot[2] and cold[2] > cold[0]
    up = upsample_maps(torch.from_numpy(cam).float(), (32, 48)).clamp(0, 1).numpy()
    assert np.allclose(coloured, matplotlib.colormaps["jet"](up)[..., :3], atol=1e-5)
    assert np.allclose(overlay(image, cam, alpha=0.0), image, atol=1e-6)
    half = overlay(image, cam, alpha=0.25, colormap="inferno")
    inferno = matplotlib.colormaps["inferno"](up)[..., :3]
    assert np.allclose(half, 0.75 * image + 0.25 * inferno, atol=1e-5)
    # A (3, H, W) tensor gives the same as the (H, W, 3) array; a uint8 image is scaled by 1/255.
    as_tensor = overlay(torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(cam), alpha=0.5)
    assert np.allclose(as_tensor, overlay(image, cam, alpha=0.5), atol=1e-6)
    as_uint8 = overlay((image * 255).round().astype(np.uint8), cam, alpha=0.5)
    assert np.allclose(as_uint8, overlay(image, cam, alpha=0.5), atol=2.5e-3)


def test_overlay_errors_name_the_fix():
    import numpy as np

    from cam_tutorial.viz import overlay

    image, cam = np.zeros((16, 16, 3)), np.zeros((4, 4))
    with pytest.raises(ValueError, match="denormalise"):
        overlay(image - 1.5, cam)
    with pytest.raises(ValueError, match="normalize_maps"):
        overlay(image, cam + 3.0)
    with pytest.raises(ValueError, match=r"one map of shape \(h, w\)"):
        overlay(image, np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"\(3, H, W\), \(H, W, 3\)"):
        overlay(np.zeros((16, 16, 5)), cam)
    with pytest.raises(ValueError, match="alpha must be in"):
        overlay(image, cam, alpha=1.5)
    with pytest.raises(ValueError, match="unknown matplotlib colormap"):
        overlay(image, cam, colormap="not-a-map")
    with pytest.raises(TypeError, match="numpy array"):
        overlay([[0.0]], cam)


# -- a whole dataset in batches ----------------------------------------------------------------


def _boxed_dataset(n: int = 7, size: int = 64) -> torch.utils.data.TensorDataset:
    """Items (image, label, box, mask) like the lab's, with distinct boxes and masks."""
    g = torch.Generator().manual_seed(5)
    images = torch.rand(n, 3, size, size, generator=g)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    boxes = torch.tensor([[i, i, size - i, size - 2 * i] for i in range(n)], dtype=torch.float32)
    masks = torch.rand(n, size, size, generator=g) > 0.5
    return torch.utils.data.TensorDataset(images, labels, boxes, masks)


def test_cams_for_dataset_matches_one_big_batch_for_any_batch_size(model):
    from cam_tutorial.cam import cams_for_dataset

    data = _boxed_dataset()
    images, labels, boxes, masks = data.tensors
    with CAMExtractor(model) as cam:
        whole = cam(images, classes=labels)
    for batch_size in (1, 3, 7, 100):  # 3 leaves a short last batch
        out = cams_for_dataset(model, data, batch_size=batch_size, progress=False)
        assert out.maps.shape == (7, 64, 64) and out.maps.dtype == torch.float32
        assert torch.allclose(out.maps, whole.maps, atol=1e-5)
        assert torch.allclose(out.logits, whole.logits, atol=1e-5)
        assert torch.equal(out.classes, labels) and torch.equal(out.labels, labels)
        assert torch.equal(out.boxes, boxes) and torch.equal(out.masks, masks)
        assert torch.equal(out.predictions, whole.logits.argmax(1)) and len(out) == 7
    assert _no_hooks(model)


def test_cams_for_dataset_predicted_classes_and_items_without_ground_truth(model):
    from cam_tutorial.cam import cams_for_dataset

    images, labels = _boxed_dataset().tensors[:2]
    out = cams_for_dataset(model, torch.utils.data.TensorDataset(images, labels), batch_size=4,
                           classes="predicted", progress=False)
    with CAMExtractor(model) as cam:
        whole = cam(images)  # the predicted class by default
    assert torch.equal(out.classes, whole.logits.argmax(1)) and torch.equal(out.labels, labels)
    assert torch.allclose(out.maps, whole.maps, atol=1e-5)
    assert out.boxes is None and out.masks is None


def test_maps_for_dataset_errors_name_the_problem():
    from cam_tutorial.cam import maps_for_dataset

    data = _boxed_dataset(3)

    def good(images, classes):
        return torch.zeros(len(images), 2), torch.zeros(len(images), 8, 8)

    with pytest.raises(ValueError, match="'label' .* or 'predicted'"):
        maps_for_dataset(good, data, classes="true")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        maps_for_dataset(good, data, batch_size=0)
    with pytest.raises(ValueError, match="dataset is empty"):
        maps_for_dataset(good, torch.utils.data.TensorDataset(torch.zeros(0, 3)))
    with pytest.raises(ValueError, match=r"maps \(B, H, W\) for a batch of 3"):
        maps_for_dataset(lambda x, c: (torch.zeros(3, 2), torch.zeros(3, 1, 8, 8)), data, progress=False)


# -- reliability (issue 12): one iterator per pass, the classifier that returns the logits ------


def test_maps_for_dataset_iterates_the_loader_once_with_a_progress_bar(monkeypatch):
    """tqdm.auto calls iter() on what it wraps: a second iter(loader) would start extra workers."""
    from torch.utils.data import DataLoader

    from cam_tutorial.cam import maps_for_dataset

    calls = []
    original_iter = DataLoader.__iter__

    def counting_iter(self):
        calls.append(1)
        return original_iter(self)

    monkeypatch.setattr(DataLoader, "__iter__", counting_iter)
    data = _boxed_dataset(5)
    out = maps_for_dataset(lambda x, c: (torch.zeros(len(x), 2), torch.zeros(len(x), 4, 4)), data,
                           batch_size=2, progress=True)
    assert len(calls) == 1
    assert len(out) == 5 and out.boxes.shape == (5, 4)


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
    """SE Linears at the top level, the classifier one level down: only the logits tell them apart."""

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


@pytest.mark.parametrize("net, fc_name, target_name", [(_SENet, "head", "body"), (_TopLevelSENet, "head.1", "scale")])
def test_the_classifier_is_the_linear_that_returns_the_logits_not_an_se_block(net, fc_name, target_name):
    torch.manual_seed(0)
    model = net().eval()
    images = _images(2, 16)
    with CAMExtractor(model) as cam:
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


def test_head_errors_suggest_naming_the_layers():
    with pytest.raises(CAMNotApplicableError, match=r"fc_layer="):
        CAMExtractor(vgg16_fc(4, width=2, image_size=32).eval())
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(3))
    plain(torch.zeros(1, 3, 8, 8))
    with pytest.raises(CAMNotApplicableError, match=r"target_layer=\.\.\., fc_layer=\.\.\."):
        CAMExtractor(plain.eval())(torch.rand(1, 3, 8, 8))


def test_dataset_maps_subset_keeps_items_aligned():
    from cam_tutorial.cam import DatasetMaps

    found = DatasetMaps(logits=torch.arange(12.0).reshape(4, 3), maps=torch.arange(4.0)[:, None, None].expand(4, 2, 2),
                        classes=torch.tensor([2, 1, 0, 2]), labels=torch.tensor([2, 0, 0, 1]),
                        boxes=torch.arange(16.0).reshape(4, 4), masks=None)
    part = found.subset(found.labels == 0)
    assert len(part) == 2 and part.classes.tolist() == [1, 0] and part.masks is None
    assert part.maps[:, 0, 0].tolist() == [1.0, 2.0] and part.boxes[:, 0].tolist() == [4.0, 8.0]
    assert found.subset([3]).labels.tolist() == [1]
    with pytest.raises(ValueError, match="boolean keep"):
        found.subset(torch.tensor([True, False]))


def test_cams_for_dataset_can_keep_the_feature_resolution() -> None:
    """upsample=False gives the maps at the last feature maps' size; upsampled bilinearly and
    normalised, they are the default's maps."""
    from torch.utils.data import TensorDataset

    from cam_tutorial.cam import cams_for_dataset, normalize_maps, upsample_maps
    from cam_tutorial.models import ResNet18B

    torch.manual_seed(0)
    model = ResNet18B(num_classes=3, width=4).eval()
    data = TensorDataset(torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 0]))
    raw = cams_for_dataset(model, data, batch_size=2, progress=False, upsample=False)
    full = cams_for_dataset(model, data, batch_size=2, progress=False)
    assert raw.maps.shape == (4, 4, 4) and full.maps.shape == (4, 64, 64)
    assert torch.equal(raw.logits, full.logits)
    torch.testing.assert_close(normalize_maps(upsample_maps(raw.maps, 64)), full.maps, atol=1e-5, rtol=0)
