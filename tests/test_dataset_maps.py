"""Tests of cam_tutorial.dataset_maps: maps, scores and ground truth for a whole dataset, in batches."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from cam_tutorial.anymodel.extractor import CAMExtractor
from cam_tutorial.cam import CAMNotApplicableError, compute_cams
from cam_tutorial.dataset_maps import DatasetMaps, cams_for_dataset, maps_for_dataset
from cam_tutorial.models import ResNet18B, vgg16_gap

NUM_CLASSES = 6


def _tiny_resnet(seed: int = 0, pooling: str = "avg") -> ResNet18B:
    torch.manual_seed(seed)
    model = ResNet18B(num_classes=NUM_CLASSES, width=4, pooling=pooling, bias=True)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
        model.classifier.bias.normal_(0, 0.5)
    return model.eval()


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


@pytest.fixture(scope="module")
def model() -> ResNet18B:
    return _tiny_resnet()


def _boxed_dataset(n: int = 7, size: int = 64) -> torch.utils.data.TensorDataset:
    """Items (image, label, box, mask) like the lab's, with distinct boxes and masks."""
    g = torch.Generator().manual_seed(5)
    images = torch.rand(n, 3, size, size, generator=g)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    boxes = torch.tensor([[i, i, size - i, size - 2 * i] for i in range(n)], dtype=torch.float32)
    masks = torch.rand(n, size, size, generator=g) > 0.5
    return torch.utils.data.TensorDataset(images, labels, boxes, masks)


def test_cams_for_dataset_matches_one_big_batch_for_any_batch_size(model):
    data = _boxed_dataset()
    images, labels, boxes, masks = data.tensors
    whole = compute_cams(model, images, classes=labels)
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
    images, labels = _boxed_dataset().tensors[:2]
    out = cams_for_dataset(model, torch.utils.data.TensorDataset(images, labels), batch_size=4,
                           classes="predicted", progress=False)
    whole = compute_cams(model, images)  # the predicted class by default
    assert torch.equal(out.classes, whole.logits.argmax(1)) and torch.equal(out.labels, labels)
    assert torch.allclose(out.maps, whole.maps, atol=1e-5)
    assert out.boxes is None and out.masks is None


def test_maps_for_dataset_errors_name_the_problem():
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


def test_maps_for_dataset_iterates_the_loader_once_with_a_progress_bar(monkeypatch):
    """tqdm.auto calls iter() on what it wraps: a second iter(loader) would start extra workers."""
    from torch.utils.data import DataLoader

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


def test_dataset_maps_subset_keeps_items_aligned():
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

    from cam_tutorial.cam import normalize_maps, upsample_maps
    from cam_tutorial.models import ResNet18B

    torch.manual_seed(0)
    model = ResNet18B(num_classes=3, width=4).eval()
    data = TensorDataset(torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 0]))
    raw = cams_for_dataset(model, data, batch_size=2, progress=False, upsample=False)
    full = cams_for_dataset(model, data, batch_size=2, progress=False)
    assert raw.maps.shape == (4, 4, 4) and full.maps.shape == (4, 64, 64)
    assert torch.equal(raw.logits, full.logits)
    torch.testing.assert_close(normalize_maps(upsample_maps(raw.maps, 64)), full.maps, atol=1e-5, rtol=0)


@pytest.mark.parametrize("build", [_tiny_resnet, lambda: _tiny_resnet(pooling="max"), lambda: vgg16_gap(NUM_CLASSES, width=4)],
                         ids=["resnet18b_gap", "resnet18b_gmp", "vgg16_gap"])
def test_the_books_models_give_the_extractors_maps_bit_for_bit(build):
    """The book's models go through compute_cams; naming a layer goes through CAMExtractor (hooks):
    the same numbers, to the bit."""
    model = build().eval()
    data = _boxed_dataset(5)
    direct = cams_for_dataset(model, data, batch_size=2, progress=False)
    with CAMExtractor(model, target_layer="features") as extract:
        hooked = maps_for_dataset(lambda x, c: (lambda r: (r.logits, r.maps))(extract(x, classes=c)), data,
                                  batch_size=2, progress=False)
    for name in ("logits", "maps", "classes", "labels", "boxes", "masks"):
        assert torch.equal(getattr(direct, name), getattr(hooked, name)), name
    assert _no_hooks(model)


def test_another_network_is_refused_with_the_extractor_named():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=NUM_CLASSES).eval()
    data = _boxed_dataset(3)
    with pytest.raises(CAMNotApplicableError, match="CAMExtractor"):
        cams_for_dataset(net, data, batch_size=2, progress=False)
    with CAMExtractor(net) as extract:  # what the docstring says to do instead
        found = maps_for_dataset(lambda x, c: (lambda r: (r.logits, r.maps))(extract(x, classes=c)), data,
                                 batch_size=2, progress=False)
    with CAMExtractor(net) as cam:
        whole = cam(data.tensors[0], classes=data.tensors[1])
    assert found.maps.shape == (3, 64, 64)
    torch.testing.assert_close(found.maps, whole.maps, atol=1e-5, rtol=0)
    assert _no_hooks(net)
