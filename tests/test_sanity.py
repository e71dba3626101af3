"""Tests of cam_tutorial.methods.sanity: rank correlation against scipy, cascading randomisation, and
deletion / insertion curves on models whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from cam_tutorial.cam import compute_cams
from cam_tutorial.models import ResNet18B
from cam_tutorial.methods.sanity import (
    cascading_randomization,
    deletion_insertion_curves,
    gaussian_blur,
    random_maps,
    randomization_order,
    spearman_per_map,
)

SIZE = 16


class RegionModel(nn.Module):
    """Two classes; logit_0 = a * mean of channel 0 over a square region, logit_1 = 0.

    So p_0 = sigmoid(a * mean over the region): only the region's pixels matter.
    """

    def __init__(self, a: float = 6.0, region: tuple[int, int, int, int] = (4, 8, 4, 8)) -> None:
        super().__init__()
        self.a, self.region = a, region
        self.dummy = nn.Linear(1, 2)  # gives the model a parameter (and 2 outputs for validation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0, y1, x0, x1 = self.region
        s = self.a * x[:, 0, y0:y1, x0:x1].mean(dim=(1, 2))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def _region_map(region=(4, 8, 4, 8), inside: float = 1.0, outside: float = 0.0) -> torch.Tensor:
    m = torch.full((1, SIZE, SIZE), outside)
    y0, y1, x0, x1 = region
    # Decreasing saliency inside the region, so the deletion order within it is fixed too.
    m[0, y0:y1, x0:x1] = inside + torch.linspace(0.5, 0.0, (y1 - y0) * (x1 - x0)).reshape(y1 - y0, x1 - x0)
    return m


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


# -- rank correlation ----------------------------------------------------------------------------


def test_spearman_matches_scipy_with_ties_and_flags_constant_maps():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (4, 6, 6), generator=g).float()  # many ties
    b = torch.randint(0, 5, (4, 6, 6), generator=g).float()
    b[1] = a[1] * 2 + 1  # monotone: rho = 1
    ours = spearman_per_map(a, b).numpy()
    for i in range(4):
        ref = scipy.stats.spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic
        assert ours[i] == pytest.approx(ref, abs=1e-12)
    assert ours[1] == pytest.approx(1.0)
    constant = spearman_per_map(a[:1], torch.zeros(1, 6, 6))
    assert torch.isnan(constant).all()
    with pytest.raises(ValueError, match="same shape"):
        spearman_per_map(a, b[:2])


# -- cascading randomisation ---------------------------------------------------------------------


def _tiny_resnet() -> ResNet18B:
    torch.manual_seed(0)
    model = ResNet18B(num_classes=4, width=4)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
    return model.eval()


def _cam_maps(model, images, classes):
    return compute_cams(model, images, classes).maps


def test_order_is_top_down():
    order = randomization_order(_tiny_resnet())
    assert order[0] == "classifier"
    assert order[1:4] == ["features.conv5_2", "features.conv5_1", "features.conv4_2"]
    assert order[-1] == "features.gate" and "features.check" not in order  # no parameters
    import torchvision

    assert randomization_order(torchvision.models.resnet18(num_classes=3))[:3] == ["fc", "layer4", "layer3"]


def test_a_map_that_ignores_the_model_stays_perfectly_correlated():
    model = _tiny_resnet()
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    result = cascading_randomization(model, images, [0, 1, 2], lambda m, x, c: x.mean(dim=1), seed=0)
    assert result.layers == randomization_order(model)
    assert result.correlations.shape == (len(result.layers), 3)
    np.testing.assert_allclose(result.correlations, 1.0, atol=1e-12)


def test_cam_decorrelates_and_the_callers_model_is_untouched():
    model = _tiny_resnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    result = cascading_randomization(model, images, 1, _cam_maps, seed=0)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert torch.allclose(result.original_maps, _cam_maps(model, images, 1))
    # Once everything is random the maps have nothing to do with the original ones.
    assert abs(result.mean_correlation[-1]) < 0.6
    # The same seed gives the same randomised models.
    again = cascading_randomization(model, images, 1, _cam_maps, seed=0, layers=result.layers[:2])
    np.testing.assert_allclose(again.correlations, result.correlations[:2])


def test_randomization_errors():
    model = _tiny_resnet()
    images = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="no submodule 'layer9'"):
        cascading_randomization(model, images, 0, _cam_maps, layers=["layer9"])
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        cascading_randomization(model, images, 0, lambda m, x, c: x)
    with pytest.raises(ValueError, match="out of range"):
        cascading_randomization(model, images, 7, _cam_maps)
    with pytest.raises(ValueError, match="eval"):
        cascading_randomization(model.train(), images, 0, _cam_maps)


# -- deletion and insertion -----------------------------------------------------------------------


def test_deletion_curve_of_the_right_map_has_the_closed_form():
    model = RegionModel().eval()
    image = torch.ones(1, 3, SIZE, SIZE)
    region_pixels = 16
    steps = 16  # 16 pixels per step: the region (16 pixels, ranked first) goes in step 1
    curves = deletion_insertion_curves(model, image, 0, _region_map(), steps=steps)
    np.testing.assert_allclose(curves.fractions, np.linspace(0, 1, steps + 1))
    expected = [_sigmoid(6.0)] + [0.5] * steps
    np.testing.assert_allclose(curves.deletion[0], expected, rtol=1e-6)
    # Finer steps inside the region: p = sigmoid(a * (R - n) / R) for n pixels deleted.
    fine = deletion_insertion_curves(model, image, 0, _region_map(), steps=256)
    n = np.arange(0, region_pixels + 1)
    np.testing.assert_allclose(fine.deletion[0, : region_pixels + 1],
                               [_sigmoid(6.0 * (region_pixels - k) / region_pixels) for k in n], rtol=1e-6)
    # Insertion from zeros: p = sigmoid(a * n / R), then flat.
    ins = deletion_insertion_curves(model, image, 0, _region_map(), steps=256, insertion_substrate="zero")
    np.testing.assert_allclose(ins.insertion[0, : region_pixels + 1],
                               [_sigmoid(6.0 * k / region_pixels) for k in n], rtol=1e-6)
    assert ins.insertion_auc[0] > 0.95 * _sigmoid(6.0)


def test_the_right_map_beats_the_reversed_and_the_random_map():
    model = RegionModel().eval()
    image = torch.ones(1, 3, SIZE, SIZE)
    maps = torch.cat([_region_map(), _region_map(inside=-1.0, outside=0.0), random_maps(1, SIZE, SIZE, seed=0)])
    curves = deletion_insertion_curves(model, image.expand(3, -1, -1, -1), 0, maps, steps=32,
                                       insertion_substrate="zero", batch_size=7)
    right, reversed_, random_ = curves.deletion_auc
    assert right < random_ < reversed_
    assert curves.insertion_auc[0] > curves.insertion_auc[2] > curves.insertion_auc[1]


def test_a_constant_curve_has_its_value_as_area():
    # A constant image blurs to itself, so inserting its pixels onto the blur changes nothing.
    model = RegionModel(a=2.0).eval()
    image = torch.full((2, 3, SIZE, SIZE), 0.5)
    curves = deletion_insertion_curves(model, image, [0, 1], random_maps(2, SIZE, SIZE), steps=10, blur_sigma=3.0)
    np.testing.assert_allclose(curves.insertion[0], _sigmoid(1.0), rtol=1e-6)
    np.testing.assert_allclose(curves.insertion_auc, [_sigmoid(1.0), 1 - _sigmoid(1.0)], rtol=1e-6)


def test_batching_does_not_change_the_curves():
    model = _tiny_resnet()
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    maps = random_maps(3, 32, 32, seed=1)
    a = deletion_insertion_curves(model, images, [0, 1, 2], maps, steps=5, batch_size=100)
    b = deletion_insertion_curves(model, images, [0, 1, 2], maps, steps=5, batch_size=4)
    np.testing.assert_allclose(a.deletion, b.deletion, rtol=1e-5)
    np.testing.assert_allclose(a.insertion, b.insertion, rtol=1e-5)
    # Both curves end where they must: all deleted is the substrate; all inserted is the image.
    with torch.no_grad():
        p_image = model(images).softmax(1)[torch.arange(3), torch.tensor([0, 1, 2])].numpy()
        p_zero = model(torch.zeros_like(images)).softmax(1)[torch.arange(3), torch.tensor([0, 1, 2])].numpy()
    np.testing.assert_allclose(a.deletion[:, 0], p_image, rtol=1e-5)
    np.testing.assert_allclose(a.insertion[:, -1], p_image, rtol=1e-5)
    np.testing.assert_allclose(a.deletion[:, -1], p_zero, rtol=1e-5)


def test_gaussian_blur_preserves_the_mean_of_a_periodic_pattern_and_smooths_it():
    x = torch.zeros(1, 1, 32, 32)
    x[..., ::2, :] = 1.0
    blurred = gaussian_blur(x, 2.0)
    inner = blurred[..., 8:-8, 8:-8]
    assert torch.allclose(inner, torch.full_like(inner, 0.5), atol=1e-3)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(x, -1.0)


def test_curve_errors():
    model = RegionModel().eval()
    image = torch.ones(1, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="upsample"):
        deletion_insertion_curves(model, image, 0, torch.rand(1, 4, 4))
    with pytest.raises(ValueError, match="steps"):
        deletion_insertion_curves(model, image, 0, _region_map(), steps=0)
    with pytest.raises(ValueError, match="substrate"):
        deletion_insertion_curves(model, image, 0, _region_map(), deletion_substrate="noise")
    with pytest.raises(ValueError, match="out of range"):
        deletion_insertion_curves(model, image, 2, _region_map())
