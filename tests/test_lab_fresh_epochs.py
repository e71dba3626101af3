"""Tests for cam_tutorial.lab.FreshEachEpoch and train()'s epoch hook: new lab images every epoch."""

from __future__ import annotations

import pytest
import torch

from cam_tutorial.lab import FreshEachEpoch, SyntheticShapes
from cam_tutorial.models import ResNet18B
from cam_tutorial.train import TrainConfig, train


def _lab(length: int = 40) -> SyntheticShapes:
    return SyntheticShapes("train", length=length, image_size=32)


def test_each_epoch_serves_its_own_slice_of_the_lab():
    lab = _lab()
    fresh = FreshEachEpoch(lab, 10)
    assert fresh.epochs == 4 and len(fresh) == 10
    view = lab.training_view()
    for epoch in (0, 3):
        fresh.set_epoch(epoch)
        for i in (0, 9):
            image, label = fresh[i]
            expected, expected_label = view[epoch * 10 + i]
            assert torch.equal(image, expected) and label == expected_label
    fresh.set_epoch(0)
    assert not torch.equal(fresh[0][0], view[10][0])  # another epoch, other pixels


def test_every_epoch_is_balanced_when_its_size_is_a_multiple_of_ten():
    fresh = FreshEachEpoch(_lab(60), 20)
    for epoch in range(fresh.epochs):
        fresh.set_epoch(epoch)
        counts = torch.bincount(torch.tensor([fresh[i][1] for i in range(len(fresh))]), minlength=10)
        assert counts.tolist() == [2] * 10


@pytest.mark.parametrize("call,match", [
    (lambda: FreshEachEpoch(_lab().training_view(), 10), "draws from a SyntheticShapes"),
    (lambda: FreshEachEpoch(_lab(), 0), r"epoch_size must lie in \[1, 40\]"),
    (lambda: FreshEachEpoch(_lab(), 41), r"epoch_size must lie in \[1, 40\]"),
    (lambda: FreshEachEpoch(_lab(), 10).set_epoch(4), "epoch 4 is out of range.*holds 4 epochs"),
])
def test_bad_input_is_refused_with_the_fix(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call()


def test_index_out_of_the_epoch_is_an_index_error():
    with pytest.raises(IndexError, match="epoch of 10 items"):
        FreshEachEpoch(_lab(), 10)[10]


def test_train_reads_every_epochs_own_images():
    """train() calls set_epoch before each epoch: the epochs read disjoint items, each once."""
    lab = _lab(48)
    fresh = FreshEachEpoch(lab, 16)
    seen: list[tuple[int, int]] = []
    get_item = FreshEachEpoch.__getitem__

    def spy(self, index):
        seen.append((self.epoch, index))
        return get_item(self, index)

    torch.manual_seed(0)
    model = ResNet18B(num_classes=10, width=2)
    config = TrainConfig(epochs=3, batch_size=8, device="cpu", progress=False, num_workers=0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FreshEachEpoch, "__getitem__", spy)
        train(model, fresh, None, config)
    # the fingerprint reads a few items of epoch 0 first; then each epoch reads all of its own
    read = seen[-48:]
    for epoch in range(3):
        assert sorted(i for e, i in read[16 * epoch:16 * (epoch + 1)] if e == epoch) == list(range(16))


def test_loader_workers_started_after_set_epoch_render_that_epoch():
    """On a GPU train() renders in worker processes; a loader built after set_epoch (as train
    builds one every epoch) hands its workers that epoch's items."""
    lab = _lab(48)
    fresh, view = FreshEachEpoch(lab, 16), lab.training_view()
    for epoch in (2, 0):
        fresh.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(fresh, batch_size=8, num_workers=2)
        images = torch.cat([batch for batch, _ in loader])
        assert torch.equal(images, torch.stack([view[16 * epoch + i][0] for i in range(16)]))


def test_train_refuses_more_epochs_than_the_lab_holds():
    model = ResNet18B(num_classes=10, width=2)
    config = TrainConfig(epochs=3, batch_size=8, device="cpu", progress=False, num_workers=0)
    with pytest.raises(ValueError, match="holds 2 epochs of items, fewer than the 3 epochs"):
        train(model, FreshEachEpoch(_lab(32), 16), None, config)
