"""Tests of cam_tutorial.cam: the S_c identity, the kernel, compute_cams, upsampling, normalisation.

The behaviour compute_cams shares with CAMExtractor on the book's models runs for both (the
``cams`` fixture); what only the hooks do is in test_extractor.py.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cam_tutorial.anymodel.extractor import CAMExtractor
from cam_tutorial.cam import (
    CAMNotApplicableError,
    class_activation_maps,
    compute_cams,
    normalize_maps,
    upsample_maps,
)
from cam_tutorial.checks import check_features, requested_classes
from cam_tutorial.models import GlobalPool, ResNet18B, vgg16_fc

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


def _extractor_once(model, images, classes=None, **options):
    with CAMExtractor(model) as cam:
        return cam(images, classes, **options)


@pytest.fixture(scope="module")
def model() -> ResNet18B:
    return _tiny_resnet()


@pytest.fixture(params=[compute_cams, _extractor_once], ids=["compute_cams", "CAMExtractor"])
def cams(request):
    """``cams(model, images, classes=None, **options)`` by each entry point."""
    return request.param


@pytest.fixture(scope="module")
def raw_all(model):
    """Raw maps of every class (via top_k = C), logits and features of one batch."""
    return compute_cams(model, _images(), top_k=NUM_CLASSES, upsample=False, normalize=False)


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


def test_per_image_classes_pick_the_right_maps(model, raw_all, cams):
    f, W = raw_all.features, model.classifier.weight
    wanted = [4, 0, 2]
    all_maps = class_activation_maps(f, W)
    for given in (wanted, torch.tensor(wanted), tuple(wanted)):
        maps = class_activation_maps(f, W, classes=given)
        assert maps.shape == (3, *f.shape[-2:])
        assert torch.allclose(maps, all_maps[torch.arange(3), torch.tensor(wanted)], atol=1e-6)
    out = cams(model, _images(), classes=wanted, upsample=False, normalize=False)
    assert out.classes.tolist() == wanted
    assert torch.allclose(out.maps, all_maps[torch.arange(3), torch.tensor(wanted)], atol=1e-5)


def test_default_class_is_the_prediction_and_top_k_matches_logits_topk(model, cams):
    images = _images(batch=4)
    top1 = cams(model, images)
    top3 = cams(model, images, top_k=3, normalize=False, upsample=False)
    assert torch.equal(top1.classes, top1.logits.argmax(dim=1))
    assert top1.maps.shape == (4, 64, 64)
    assert torch.equal(top3.classes, top3.logits.topk(3, dim=1).indices)
    assert top3.maps.shape == (4, 3, *top3.features.shape[-2:])
    reference = class_activation_maps(top3.features, model.classifier.weight, top3.classes[:, 1])
    assert torch.allclose(top3.maps[:, 1], reference, atol=1e-6)


def test_one_forward_pass_gives_the_models_own_logits_and_features(model):
    images = _images(batch=2)
    out = compute_cams(model, images, top_k=2)
    with torch.no_grad():
        assert torch.equal(out.logits, model(images)) and torch.equal(out.features, model.features(images))


def test_weights_are_read_from_the_live_model_at_each_call():
    # The slides' bug: weights read from a freshly built model. Here a change to the model shows.
    model = _tiny_resnet(seed=3)
    images = _images(batch=2)
    before = compute_cams(model, images, classes=1, upsample=False, normalize=False).maps
    with torch.no_grad():
        model.classifier.weight.mul_(-2)
    after = compute_cams(model, images, classes=1, upsample=False, normalize=False).maps
    assert torch.allclose(after, -2 * before, atol=1e-5)


def test_global_max_pooling_maps_are_computed_the_same_way():
    model = _tiny_resnet(pooling="max")
    out = compute_cams(model, _images(batch=2), upsample=False, normalize=False)
    W, b = model.classifier.weight, model.classifier.bias
    assert torch.allclose(out.features.amax(dim=(2, 3)) @ W.T + b, out.logits, atol=1e-5)
    assert torch.allclose(out.maps, class_activation_maps(out.features, W, out.classes))


# -- upsampling and normalisation ----------------------------------------------------------------


def test_maps_are_upsampled_to_the_input_size_and_normalised_per_map(model, cams):
    images = _images(batch=3, size=(64, 96))
    out = cams(model, images, top_k=2)
    raw = cams(model, images, top_k=2, upsample=False, normalize=False)
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


def test_a_constant_map_gives_zeros_not_nan(cams):
    model = _tiny_resnet()
    with torch.no_grad():
        model.classifier.weight.zero_()  # every map is the constant 0
    out = cams(model, _images(batch=2))
    assert torch.equal(out.maps, torch.zeros_like(out.maps))


# -- inputs ------------------------------------------------------------------------------------


def test_input_errors_name_the_problem_and_the_fix(model, cams):
    images = _images(batch=2)
    cam = functools.partial(cams, model)
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


def test_the_kernel_checks_nothing_and_compute_cams_checks_its_inputs():
    """class_activation_maps is the formula alone; check_features and requested_classes refuse
    what it would misread, and compute_cams runs them on every pass."""
    f, W = torch.rand(2, 4, 3, 3), torch.rand(5, 4)
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)"):
        check_features(f[0], W)
    with pytest.raises(ValueError, match="4 channels"):
        check_features(f, torch.rand(5, 3))
    with pytest.raises(TypeError, match="floating point"):
        check_features(f.long(), W)
    with pytest.raises(ValueError, match=r"must have shape \(C, K\), got \(4,\): read it by name"):
        check_features(f, W[0])  # chapter 5's pitfall 2: a vector read by its place in parameters()
    with pytest.raises(ValueError, match="valid indices are 0 to 4"):
        requested_classes(5, None, batch=2, num_classes=5, device=f.device)
    assert class_activation_maps(f, W, classes=torch.tensor([[0, 4], [1, 2]])).shape == (2, 2, 3, 3)
    assert class_activation_maps(f.half(), W).dtype == torch.float32


class _Layout(nn.Module):
    """features -> pool -> classifier around any three modules."""

    def __init__(self, features: nn.Module, pool: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.features, self.pool, self.classifier = features, pool, classifier


def test_compute_cams_refuses_another_layout_and_points_to_the_extractor():
    with pytest.raises(CAMNotApplicableError, match=r"Linear -> ReLU -> Dropout -> Linear.*CAMExtractor.*Grad-CAM"):
        compute_cams(vgg16_fc(4, width=4, image_size=64).eval(), _images(batch=1))
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    with pytest.raises(CAMNotApplicableError, match=r"model.features -> model.pool -> model.classifier.*"
                                                    r"cam_tutorial.anymodel.extractor.CAMExtractor"):
        compute_cams(plain, _images(batch=1))
    wrong_width = _Layout(nn.Conv2d(3, 4, 3), GlobalPool(), nn.Linear(5, 2)).eval()
    with pytest.raises(ValueError, match="5 inputs per class but features have 4 channels"):
        compute_cams(wrong_width, _images(batch=1))


def test_features_of_one_position_are_refused_with_the_fix(model):
    # ResNet18B's forward refuses 16 px; compute_cams reads model.features directly, so it checks
    # what CAM needs itself: more than one position.
    with pytest.raises(ValueError, match="features are 1x1.*use larger images"):
        compute_cams(model, _images(batch=1, size=16))


# -- execution modes ---------------------------------------------------------------------------


def test_inference_mode_channels_last_and_autocast(model, cams):
    images = _images(batch=2)
    reference = cams(model, images)
    with torch.inference_mode():
        inferred = cams(model, images)
    assert torch.allclose(inferred.maps, reference.maps) and not reference.maps.requires_grad

    cl_model = _tiny_resnet().to(memory_format=torch.channels_last)
    cl = cams(cl_model, images.to(memory_format=torch.channels_last), top_k=2, normalize=False)
    assert cl.features.is_contiguous(memory_format=torch.channels_last)
    raw = cams(cl_model, images, top_k=2, normalize=False)
    assert torch.allclose(cl.maps, raw.maps, atol=1e-4)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = cams(_tiny_resnet(), images)
    assert mixed.maps.dtype == torch.float32 and torch.isfinite(mixed.maps).all()
    assert float(mixed.maps.amin()) == 0.0 and float(mixed.maps.amax()) == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(model, cams):
    images = _images(batch=2)
    on_cpu = cams(model, images, top_k=2)
    on_gpu = cams(_tiny_resnet().cuda(), images.cuda(), top_k=2)
    assert torch.equal(on_gpu.classes.cpu(), on_cpu.classes)
    assert torch.allclose(on_gpu.maps.cpu(), on_cpu.maps, atol=1e-3)


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
