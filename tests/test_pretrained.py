"""Tests of cam_tutorial.real.pretrained: offline fallback, cached weights, photographs, the resnet18 ->
ResNet18B weight mapping."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torchvision

import cam_tutorial.real.pretrained as pretrained_module
from cam_tutorial.real.pretrained import can_reach, imagenet_model, photographs, resnet18b_from_torchvision


def test_offline_gives_seeded_random_weights_and_says_so(hub_dir, monkeypatch):
    monkeypatch.setenv("CAM_TUTORIAL_OFFLINE", "1")
    first = imagenet_model("resnet18")
    assert not first.weights_loaded and not first.model.training
    assert "RANDOMLY INITIALISED" in first.note and "CAM_TUTORIAL_OFFLINE" in first.note
    assert "CAM_TUTORIAL_OFFLINE" in first.reason and first.reason in first.note
    second = imagenet_model("resnet18")
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()))
    with pytest.raises(ValueError, match="unknown torchvision model"):
        imagenet_model("resnet19")


def _cache_path(hub_dir, weights) -> Path:
    target = hub_dir / "checkpoints" / weights.url.rsplit("/", 1)[1]
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def test_weights_in_the_hub_cache_are_used_without_a_network(hub_dir, monkeypatch):
    monkeypatch.setenv("CAM_TUTORIAL_OFFLINE", "1")
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    torch.manual_seed(5)
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), _cache_path(hub_dir, weights))
    loaded = imagenet_model("resnet18")
    assert loaded.weights_loaded and "local cache" in loaded.note and "weights_only=True" in loaded.note
    assert torch.equal(loaded.model.fc.weight, reference.fc.weight)
    # torchvision's builder still does its own part: googlenet without auxiliary heads.
    torch.manual_seed(6)
    # torchvision's file holds the auxiliary heads too; its builder drops them after loading.
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    torch.save(reference.state_dict(), _cache_path(hub_dir, torchvision.models.GoogLeNet_Weights.DEFAULT))
    loaded = imagenet_model("googlenet")
    assert loaded.weights_loaded and loaded.model.transform_input and loaded.model.aux1 is None
    assert torch.equal(loaded.model.fc.weight, reference.fc.weight)
    # The substitute for torchvision's file reading is gone afterwards.
    assert "get_state_dict" not in vars(torchvision.models.ResNet18_Weights)


class _WritesAMarker:
    """Unpickling this object opens (creates) the marker file: code run by loading."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_malicious_pickle_in_the_hub_cache_never_runs(hub_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CAM_TUTORIAL_OFFLINE", "1")
    marker = tmp_path / "code_ran"
    target = _cache_path(hub_dir, torchvision.models.ResNet18_Weights.DEFAULT)
    torch.save({"fc.weight": _WritesAMarker(marker)}, target)
    loaded = imagenet_model("resnet18", download=False)
    assert not marker.exists()
    assert not loaded.weights_loaded and "RANDOMLY INITIALISED" in loaded.note
    assert str(target) in loaded.note
    assert "does not load safely" in loaded.note and "delete it" in loaded.note
    assert target.exists()  # left for the user to inspect; the note says to delete it


def test_a_download_ends_in_a_hash_checked_safely_loaded_file(hub_dir, monkeypatch):
    monkeypatch.delenv("CAM_TUTORIAL_OFFLINE", raising=False)
    monkeypatch.setattr(pretrained_module, "can_reach", lambda url, timeout=3.0: True)
    torch.manual_seed(7)
    reference = torchvision.models.resnet18()
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        torch.save(reference.state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    loaded = imagenet_model("resnet18")
    assert loaded.weights_loaded and "downloaded" in loaded.note
    assert calls == [(weights.url, "f37072fd")]  # torch.hub checks the hash while downloading
    assert torch.equal(loaded.model.fc.weight, reference.fc.weight)
    assert sorted(p.name for p in (hub_dir / "checkpoints").iterdir()) == ["resnet18-f37072fd.pth"]


@pytest.mark.parametrize("value, offline", [("1", True), ("true", True), ("YES", True), ("on", True),
                                            ("0", False), ("false", False), ("no", False), (" Off ", False),
                                            ("", False)])
def test_the_offline_variable_is_parsed_as_a_truth_value(hub_dir, monkeypatch, value, offline):
    monkeypatch.setenv("CAM_TUTORIAL_OFFLINE", value)
    monkeypatch.setattr(pretrained_module, "can_reach", lambda url, timeout=3.0: False)
    note = imagenet_model("resnet18").note
    assert ("CAM_TUTORIAL_OFFLINE is set" in note) is offline
    assert ("cannot be reached" in note) is not offline


def test_can_reach_a_listening_port_and_not_a_closed_one():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert can_reach(f"http://127.0.0.1:{port}/x", timeout=2)
    finally:
        server.close()
    assert not can_reach(f"http://127.0.0.1:{port}/x", timeout=2)


def test_photographs_are_normalised_square_crops():
    images, names = photographs(["chelsea", "coffee"], size=48)
    assert images.shape == (2, 3, 48, 48) and names == ["chelsea", "coffee"]
    # Normalised with ImageNet's statistics: roughly zero-centred, clearly not in [0, 1].
    assert float(images.min()) < -0.5 and float(images.max()) > 1.0
    with pytest.raises(ValueError, match="no photograph"):
        photographs(["nope"])


def test_resnet18_weights_map_onto_resnet18b():
    torch.manual_seed(0)
    tv = torchvision.models.resnet18().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so a mis-mapped one shows
        for module in tv.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    ours = resnet18b_from_torchvision(tv.state_dict()).eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x)))))))
        got = ours.features[:-2](x)  # everything up to conv4_2 (torchvision's layer3)
        assert torch.allclose(got, expected, atol=1e-5)
        # conv5_1 keeps stride 1: twice torchvision's resolution, same weights.
        assert ours.features(x).shape[-1] == 2 * tv.layer4(expected).shape[-1]
    assert torch.equal(ours.classifier.weight, tv.fc.weight) and torch.equal(ours.classifier.bias, tv.fc.bias)
    fresh = resnet18b_from_torchvision(tv.state_dict(), num_classes=10)
    assert fresh.classifier.weight.shape == (10, 512) and fresh.classifier.bias is not None
    assert torch.equal(fresh.features.conv5_2.conv2.weight, tv.layer4[1].conv2.weight)


def test_a_foreign_state_dict_is_rejected():
    with pytest.raises(ValueError, match="not a torchvision resnet18"):
        resnet18b_from_torchvision(torchvision.models.resnet34().state_dict())
    partial = {k: v for k, v in torchvision.models.resnet18().state_dict().items() if not k.startswith("layer4")}
    with pytest.raises(ValueError, match="lacks"):
        resnet18b_from_torchvision(partial)
