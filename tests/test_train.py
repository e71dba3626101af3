"""Tests for cam_tutorial.train: learning, evaluation, checkpoints, exact resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cam_tutorial.config import get_preset
from cam_tutorial.train import (
    CHECKPOINT_NAME,
    CheckpointError,
    History,
    TrainConfig,
    confusion_matrix,
    evaluate,
    load_checkpoint,
    measure_throughput,
    predict,
    resolve_precision,
    train,
)

ROOT = Path(__file__).resolve().parents[1]

# One source for the tiny model and data, executed here and in the subprocess that gets killed,
# so both sides build exactly the same things.
TINY_SOURCE = textwrap.dedent('''
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    def tiny_model(width=6, classes=3):
        torch.manual_seed(123)
        # Batch norm (buffers), dropout (global RNG) and a linear head: everything resume must restore.
        return nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Dropout(0.2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes),
        )

    def tiny_data(n, seed, classes=3, side=12):
        """Class c brightens channel c: learnable in a few epochs."""
        g = torch.Generator().manual_seed(seed)
        labels = torch.randint(0, classes, (n,), generator=g)
        images = torch.randn(n, 3, side, side, generator=g) * 0.5
        images[torch.arange(n), labels] += 1.0
        return TensorDataset(images, labels)
''')
_namespace: dict = {}
exec(TINY_SOURCE, _namespace)
tiny_model, tiny_data = _namespace["tiny_model"], _namespace["tiny_data"]

CONFIG = TrainConfig(epochs=3, batch_size=16, lr=1e-2, seed=7, device="cpu", progress=False, num_workers=0)


def _state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_train_learns_and_history_is_complete():
    model = tiny_model()
    history = train(model, tiny_data(192, 0), tiny_data(96, 1), CONFIG)
    assert isinstance(history, History)
    assert history.epoch == [1, 2, 3] and history.finished and history.starts == [0]
    for name in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds", "images_per_second"):
        assert len(getattr(history, name)) == 3, name
    assert history.val_acc[-1] >= 0.9
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.device == "cpu" and history.precision == "fp32" and not history.channels_last
    assert not model.training  # returned in eval mode
    # The one-cycle schedule ends far below its peak.
    assert history.lr[-1] < CONFIG.lr / 100


def test_evaluate_predict_and_confusion_matrix_agree():
    model = tiny_model()
    data = tiny_data(50, 3)
    loss, acc = evaluate(model, data, batch_size=16)
    predicted, targets = predict(model, data, batch_size=16)
    assert predicted.shape == targets.shape == (50,)
    assert torch.equal(targets, data.tensors[1])
    assert acc == pytest.approx((predicted == targets).float().mean().item())
    with torch.no_grad():
        reference = nn.functional.cross_entropy(model.eval()(data.tensors[0]), data.tensors[1]).item()
    assert loss == pytest.approx(reference, rel=1e-5)
    matrix = confusion_matrix(targets, predicted, 3)
    assert matrix.sum() == 50 and np.trace(matrix) == round(acc * 50)
    assert matrix.sum(1).tolist() == np.bincount(targets.numpy(), minlength=3).tolist()


def test_confusion_matrix_rejects_bad_labels():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix([0, 1], [0], 3)


def test_config_validation_and_presets():
    with pytest.raises(ValueError, match="unknown amp 'fp8'"):
        TrainConfig(amp="fp8")
    with pytest.raises(ValueError, match="channels_last"):
        TrainConfig(channels_last="yes")
    with pytest.raises(ValueError, match="epochs must be a positive"):
        TrainConfig(epochs=0)
    ci = get_preset("ci")
    config = TrainConfig.from_preset(ci, seed=3)
    assert (config.epochs, config.batch_size, config.lr, config.seed) == (ci.epochs, ci.batch_size, ci.lr, 3)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(tiny_model(), tiny_data(8, 0), None, CONFIG)


def test_resolve_precision():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) is None
    assert resolve_precision("off", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    assert resolve_precision("fp16", cpu) is torch.float16


def test_epoch_log_names_validation_only_when_there_is_a_validation_set(caplog):
    with caplog.at_level("INFO", logger="cam_tutorial.train"):
        train(tiny_model(), tiny_data(32, 0), tiny_data(16, 1), CONFIG.replace(epochs=1))
        train(tiny_model(), tiny_data(32, 0), None, CONFIG.replace(epochs=1))
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 1/1")]
    assert len(epochs) == 2
    assert "| val loss " in epochs[0] and "val" not in epochs[1] and "nan" not in epochs[1]


def test_measure_throughput_is_positive_and_logs_no_epochs(caplog):
    with caplog.at_level("INFO", logger="cam_tutorial.train"):
        ips = measure_throughput(tiny_model(), CONFIG, image_size=12, steps=2, num_classes=3)
    assert ips > 0
    assert not [r for r in caplog.records if r.getMessage().startswith("epoch ")]
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        measure_throughput(tiny_model(), CONFIG, image_size=12, steps=0)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_and_channels_last_train(amp):
    model = tiny_model()
    config = CONFIG.replace(epochs=1, amp=amp, channels_last=True)
    history = train(model, tiny_data(64, 0), tiny_data(32, 1), config)
    assert history.precision == amp and history.channels_last
    assert np.isfinite(history.train_loss[0]) and np.isfinite(history.val_loss[0])
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_stop_after_then_resume_matches_uninterrupted(tmp_path):
    train_set, val_set = tiny_data(96, 0), tiny_data(48, 1)
    reference = tiny_model()
    reference_history = train(reference, train_set, val_set, CONFIG)

    resumed = tiny_model()
    first = train(resumed, train_set, val_set, CONFIG, tmp_path, stop_after=1)
    assert first.epoch == [1] and not first.finished
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 1
    # Scramble the global RNGs: resume must restore them, not rely on them.
    torch.manual_seed(999)
    np.random.seed(999)
    fresh = tiny_model()
    second = train(fresh, train_set, val_set, CONFIG, tmp_path)
    assert second.epoch == [1, 2, 3] and second.starts == [0, 1] and second.finished
    assert _state_equal(fresh, reference)
    assert second.val_acc == reference_history.val_acc
    assert second.train_loss == reference_history.train_loss


def test_finished_checkpoint_returns_stored_history_without_training(tmp_path):
    train_set, val_set = tiny_data(64, 0), tiny_data(32, 1)
    trained = tiny_model()
    history = train(trained, train_set, val_set, CONFIG.replace(epochs=2), tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    before = path.read_bytes()
    # weights_only loading works directly: only tensors and plain containers are stored.
    raw = torch.load(path, weights_only=True)
    assert raw["epoch"] == 2 and raw["config"]["lr"] == CONFIG.lr
    fresh = tiny_model()
    started = time.perf_counter()
    again = train(fresh, train_set, val_set, CONFIG.replace(epochs=2), tmp_path)
    assert time.perf_counter() - started < 5
    assert again == history
    assert _state_equal(fresh, trained) and not fresh.training
    assert path.read_bytes() == before


def _expect_refusal(tmp_path: Path, model: nn.Module, config: TrainConfig, match: str) -> None:
    path = tmp_path / CHECKPOINT_NAME
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=match) as info:
        train(model, tiny_data(32, 0), None, config, tmp_path)
    message = str(info.value)
    assert str(path) in message and "delete" in message and "choose another checkpoint_dir" in message
    assert path.read_bytes() == before  # never silently overwritten


def test_truncated_checkpoint_is_refused_and_kept(tmp_path):
    train(tiny_model(), tiny_data(32, 0), None, CONFIG.replace(epochs=1), tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _expect_refusal(tmp_path, tiny_model(), CONFIG.replace(epochs=1), "corrupt or truncated")


def test_plain_state_dict_is_refused_and_kept(tmp_path):
    torch.save(tiny_model().state_dict(), tmp_path / CHECKPOINT_NAME)
    _expect_refusal(tmp_path, tiny_model(), CONFIG, "not a cam_tutorial training checkpoint")


def test_checkpoint_of_another_architecture_or_config_is_refused_and_kept(tmp_path):
    train(tiny_model(width=6), tiny_data(32, 0), None, CONFIG.replace(epochs=2), tmp_path, stop_after=1)
    _expect_refusal(tmp_path, tiny_model(width=8), CONFIG.replace(epochs=2), "model parameters")
    _expect_refusal(tmp_path, tiny_model(width=6), CONFIG.replace(epochs=2, lr=0.5), "lr: checkpoint 0.01 vs now 0.5")


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    """SIGKILL a training process in the middle of epoch 2, resume here, compare with one run."""
    checkpoint_dir = tmp_path / "run"
    marker = tmp_path / "in_epoch_2"
    script = tmp_path / "victim.py"
    script.write_text(TINY_SOURCE + textwrap.dedent(f'''
        import time
        from pathlib import Path
        from torch.utils.data import Dataset
        from cam_tutorial.train import TrainConfig, train

        class StallsInEpochTwo(Dataset):
            """Serves items normally, then stalls half-way through epoch 2 (after the epoch-1
            checkpoint exists) so that the parent can kill the process mid-epoch."""
            def __init__(self, inner):
                self.inner, self.served = inner, 0
            def __len__(self):
                return len(self.inner)
            def __getitem__(self, index):
                self.served += 1
                if self.served == len(self.inner) * 3 // 2:
                    assert Path({str(checkpoint_dir / CHECKPOINT_NAME)!r}).exists()
                    Path({str(marker)!r}).touch()
                    time.sleep(120)
                return self.inner[index]

        config = TrainConfig(**{CONFIG.__dict__!r})
        train(tiny_model(), StallsInEpochTwo(tiny_data(96, 0)), tiny_data(48, 1), config, {str(checkpoint_dir)!r})
    '''))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    victim = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            if victim.poll() is not None:
                pytest.fail(f"the training process ended early: {victim.stderr.read().decode()[-2000:]}")
            assert time.monotonic() < deadline, "the training process never reached epoch 2"
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert load_checkpoint(checkpoint_dir / CHECKPOINT_NAME)["epoch"] == 1

    resumed = tiny_model()
    history = train(resumed, tiny_data(96, 0), tiny_data(48, 1), CONFIG, checkpoint_dir)
    assert history.starts == [0, 1] and history.epoch == [1, 2, 3]

    reference = tiny_model()
    reference_history = train(reference, tiny_data(96, 0), tiny_data(48, 1), CONFIG)
    assert _state_equal(resumed, reference)
    assert history.val_loss == reference_history.val_loss
