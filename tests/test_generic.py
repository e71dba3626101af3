"""Tests of cam_tutorial.real.generic: frozen features, the linear head, the probe's CAMs, TextScenes."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from cam_tutorial.anymodel.extractor import CAMExtractor
from cam_tutorial.lab import SyntheticShapes
from cam_tutorial.real.generic import LinearProbe, Rendered, TextScenes, fit_linear_head, pooled_features
from cam_tutorial.models import ResNet18B


def _backbone() -> ResNet18B:
    torch.manual_seed(0)
    return ResNet18B(num_classes=1000, width=2).eval()


def test_pooled_features_are_the_pool_of_the_features_in_order():
    model = _backbone()
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    features, labels = pooled_features(model, TensorDataset(images, torch.arange(5)), batch_size=2,
                                       progress=False)
    with torch.no_grad():
        expected = model.pool(model.features(images))
    torch.testing.assert_close(features, expected)
    assert labels.tolist() == [0, 1, 2, 3, 4]


def test_pooled_features_reject_empty_data_and_other_layouts():
    with pytest.raises(ValueError, match="empty"):
        pooled_features(_backbone(), TensorDataset(torch.rand(0, 3, 32, 32), torch.zeros(0)), progress=False)
    with pytest.raises(TypeError, match=r"\.features and \.pool"):
        pooled_features(torch.nn.Linear(3, 2), TensorDataset(torch.rand(2, 3)), progress=False)


def _objective_gradient(head: torch.nn.Linear, features: torch.Tensor, labels: torch.Tensor,
                        weight_decay: float) -> float:
    """The gradient norm of the regularised loss, in the standardised space the fit works in."""
    x = features.double()
    mu, sigma = x.mean(0), x.std(0).clamp_min(1e-6)
    w = (head.weight.double() * sigma).detach().requires_grad_(True)
    b = (head.bias.double() + head.weight.double() @ mu).detach().requires_grad_(True)
    loss = F.cross_entropy(((x - mu) / sigma) @ w.T + b, labels) + 0.5 * weight_decay * w.pow(2).sum()
    loss.backward()
    return float(torch.cat([w.grad.flatten(), b.grad]).norm())


def test_linear_head_is_the_regularised_optimum_on_raw_features():
    rng = torch.Generator().manual_seed(2)
    features = torch.randn(60, 6, generator=rng) * torch.tensor([1.0, 10.0, 0.1, 3.0, 1.0, 1.0]) + 5.0
    labels = torch.randint(0, 3, (60,), generator=rng)
    head = fit_linear_head(features, labels, num_classes=3, weight_decay=1e-2)
    assert head.weight.shape == (3, 6) and head.bias.shape == (3,)
    # The folded head on raw features is the optimum of the standardised problem.
    assert _objective_gradient(head, features, labels, 1e-2) < 1e-4


def test_linear_head_ignores_the_scale_of_a_feature():
    rng = torch.Generator().manual_seed(3)
    features = torch.randn(40, 4, generator=rng)
    labels = (features[:, 0] + 0.3 * torch.randn(40, generator=rng) > 0).long()
    scaled = features * torch.tensor([100.0, 1.0, 1.0, 0.01])
    torch.testing.assert_close(fit_linear_head(features, labels)(features),
                               fit_linear_head(scaled, labels)(scaled), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("features, labels, match", [
    (torch.rand(4, 3, 2), torch.zeros(4), "float tensor"),
    (torch.rand(4, 3), torch.zeros(5), r"labels must be \(N,\)"),
    (torch.tensor([[float("nan"), 1.0], [0.0, 1.0]]), torch.tensor([0, 1]), "NaN"),
    (torch.rand(2, 3), torch.tensor([0, 3]), r"labels must lie in \[0, 2\)"),
])
def test_linear_head_rejects_bad_input(features, labels, match):
    with pytest.raises(ValueError, match=match):
        fit_linear_head(features, labels, num_classes=2 if "lie" in match else None)


def test_probe_maps_are_exact_class_activation_maps():
    backbone = _backbone()
    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    features, _ = pooled_features(backbone, TensorDataset(images, torch.zeros(4)), progress=False)
    head = fit_linear_head(features, torch.tensor([0, 1, 0, 1]))
    probe = LinearProbe(backbone, head)
    assert not probe.training and not any(p.requires_grad for p in probe.parameters())
    with CAMExtractor(probe) as extractor:
        out = extractor(images, classes=1, upsample=False, normalize=False)
    assert extractor.target_name == "features" and extractor.pooling == "avg"
    torch.testing.assert_close(out.maps.mean((1, 2)) + head.bias[1], out.logits[:, 1], atol=1e-5, rtol=1e-5)


def test_probe_rejects_a_head_that_is_not_linear():
    with pytest.raises(TypeError, match="nn.Linear"):
        LinearProbe(_backbone(), torch.nn.Sequential(torch.nn.Linear(16, 2)))


def test_text_scenes_are_deterministic_and_balanced():
    ds = TextScenes("val", length=6, image_size=64)
    for i in range(6):
        first, second = ds.render(i), ds.render(i)
        assert np.array_equal(first[0], second[0]) and first[1:3] == second[1:3]
        assert first[1] == i % 2
    other = TextScenes("test", length=6, image_size=64)
    assert not np.array_equal(ds.render(1)[0], other.render(1)[0])
    assert ds.positives() == [1, 3, 5]


def test_text_boxes_are_tight_around_the_word():
    ds = TextScenes("test", length=20, image_size=96)
    for i in ds.positives():
        _, label, (x0, y0, x1, y1), mask = ds.render(i)
        ys, xs = np.nonzero(mask)
        assert label == 1 and mask.dtype == bool and mask.any()
        assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        # the word covers a real part of the image: 30% to 80% of the width was asked for
        assert (x1 - x0) >= 0.2 * 96
    _, label, box, mask = ds.render(0)
    assert label == 0 and box == (0, 0, 0, 0) and not mask.any()


def test_text_scene_items_are_tensors_and_bad_input_says_so():
    ds = TextScenes("train", length=4, image_size=48)
    image, label, box, mask = ds[1]
    assert image.shape == (3, 48, 48) and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert box.dtype == torch.float32 and mask.shape == (48, 48)
    with pytest.raises(ValueError, match="unknown split"):
        TextScenes("dev")
    with pytest.raises(TypeError, match="indices must be integers"):
        ds.render(1.5)
    with pytest.raises(IndexError, match="out of range"):
        ds.render(4)


def test_rendered_preprocesses_the_lab_and_refuses_datasets_without_render():
    lab = SyntheticShapes("test", length=3, image_size=32)
    ds = Rendered(lab, lambda rgb: torch.from_numpy(rgb).permute(2, 0, 1).float())
    image, label, box, mask = ds[2]
    rgb, label_ref, box_ref, mask_ref = lab.render(2)
    assert torch.equal(image, torch.from_numpy(rgb).permute(2, 0, 1).float())
    assert label == label_ref and box.tolist() == list(box_ref) and torch.equal(mask, torch.from_numpy(mask_ref))
    with pytest.raises(TypeError, match="render"):
        Rendered(TensorDataset(torch.rand(2, 3)), lambda x: x)
