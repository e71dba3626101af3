"""Tests for cam_tutorial.checkpoints: safe loading refuses what could run code, and says why a
file cannot be read (the train and zoo batteries check the same through their own files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from cam_tutorial import zoo
from cam_tutorial.checkpoints import CHECKPOINT_NAME, CheckpointError, atomic_save, safe_load
from cam_tutorial.config import get_preset
from cam_tutorial.train import TrainConfig, train

TINY = get_preset("ci").replace(image_size=32, width=2, vgg_width=2, train_size=40, val_size=20,
                                test_size=20, epochs=1, batch_size=20)


class _Payload:
    """A pickle that would create a file when loaded by an unsafe loader."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _plant_payload(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "cam_tutorial.zoo/1", "model": _Payload(marker)}, path)


def test_a_planted_pickle_never_runs_whoever_reads_it(tmp_path):
    proof = tmp_path / "an unsafe load ran it"
    _plant_payload(tmp_path / "proof.pt", proof)
    torch.load(tmp_path / "proof.pt", weights_only=False)  # the payload is real: an unsafe loader runs it
    assert proof.is_dir()
    marker = tmp_path / "the payload ran"
    direct = tmp_path / "file.pt"
    _plant_payload(direct, marker)
    with pytest.raises(CheckpointError, match="holds Python objects other than tensors.*could run code"):
        safe_load(direct, "the file", "delete it")
    final = tmp_path / "cache" / "models" / zoo.recipe("resnet18b_gap", TINY).key / "final.pt"
    _plant_payload(final, marker)
    with pytest.raises(CheckpointError, match=rf"{final}.*could run code"):
        zoo.trained_model("resnet18b_gap", TINY, "cpu", tmp_path / "cache", progress=False)
    run = tmp_path / "run"
    _plant_payload(run / CHECKPOINT_NAME, marker)
    data = torch.utils.data.TensorDataset(torch.randn(16, 3, 4, 4), torch.arange(16) % 2)
    with pytest.raises(CheckpointError, match="could run code"):
        train(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2)), data, None,
              TrainConfig(epochs=1, batch_size=8, device="cpu", progress=False), run)
    assert not marker.exists()


@pytest.mark.parametrize("make, cause, fix", [
    (lambda p: None, "there is no such file", "check the path"),
    (lambda p: p.mkdir(), "it is a folder, not a file", "move the folder away"),
    (lambda p: p.write_bytes(b""), "it is empty (0 bytes", "delete it"),
    (lambda p: p.write_bytes(b"PK\x03\x04 not much"), "it is corrupt or truncated", "delete it"),
    (lambda p: (atomic_save({"w": torch.ones(3)}, p), p.write_bytes(p.read_bytes()[:200])),
     "it is corrupt or truncated", "delete it"),
], ids=["missing", "a folder", "empty", "not a zip", "truncated"])
def test_safe_load_names_the_file_the_cause_and_a_fix_that_suits_it(tmp_path, make, cause, fix):
    path = tmp_path / "weights.pt"
    make(path)
    with pytest.raises(CheckpointError) as info:
        safe_load(path, "the weights", "delete it")
    message = str(info.value)
    assert message.startswith(f"cannot read the weights {path}") and cause in message and fix in message, message
