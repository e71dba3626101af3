"""Tests for cam_tutorial.train: learning, evaluation, checkpoints, exact resume."""

from __future__ import annotations

import functools
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
from torch.utils.data import TensorDataset

from cam_tutorial.checkpoints import CHECKPOINT_NAME, CheckpointError, identity_differences, load_checkpoint
from cam_tutorial.config import get_preset
from cam_tutorial.evaluation import confusion_matrix, evaluate, inference_channels_last, predict, resolve_precision
from cam_tutorial.train import History, TrainConfig, TrainingDiverged, measure_throughput, train

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


def test_inference_channels_last():
    assert inference_channels_last("auto", torch.device("cpu"))
    assert inference_channels_last("auto", torch.device("cuda"))
    assert not inference_channels_last("auto", torch.device("mps"))
    assert not inference_channels_last(False, torch.device("cuda"))
    assert inference_channels_last(True, torch.device("mps"))
    with pytest.raises(ValueError, match="channels_last must be True, False or 'auto', got 'yes'"):
        inference_channels_last("yes", torch.device("cpu"))


def test_evaluate_and_predict_give_the_same_answers_in_either_layout():
    from cam_tutorial.models import ResNet18B

    torch.manual_seed(0)
    model = ResNet18B(3, width=8).eval()
    data = tiny_data(40, 3, side=32)
    contiguous, nhwc, default = (evaluate(model, data, 16, channels_last=layout) for layout in (False, True, "auto"))
    assert contiguous[1] == nhwc[1] and contiguous[0] == pytest.approx(nhwc[0], rel=1e-5)
    assert default == nhwc  # "auto" is channels-last on the CPU, and repeatable
    assert torch.equal(predict(model, data, 16, channels_last=False)[0], predict(model, data, 16)[0])
    assert model.features.gate[0].weight.is_contiguous()  # the model's weights keep their layout
    # a batch that is not of images passes through unchanged
    flat = TensorDataset(torch.randn(6, 4), torch.zeros(6, dtype=torch.long))
    assert 0.0 <= evaluate(nn.Linear(4, 2), flat, 3, channels_last=True)[1] <= 1.0


def test_training_on_the_cpu_keeps_the_contiguous_layout_by_default():
    model = tiny_model()
    history = train(model, tiny_data(32, 0), None, CONFIG.replace(epochs=1))
    assert not history.channels_last and model[0].weight.is_contiguous()


def test_epoch_log_names_validation_only_when_there_is_a_validation_set(caplog):
    with caplog.at_level("INFO", logger="cam_tutorial.train"):
        train(tiny_model(), tiny_data(32, 0), tiny_data(16, 1), CONFIG.replace(epochs=1))
        train(tiny_model(), tiny_data(32, 0), None, CONFIG.replace(epochs=1))
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 1/1")]
    assert len(epochs) == 2
    assert "| val loss " in epochs[0] and "val" not in epochs[1] and "nan" not in epochs[1]


def test_a_nan_loss_in_evaluate_blames_what_is_broken_not_float16():
    """Issue 28 item 14: a batch norm's negative running variance was blamed on a float16 overflow."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    data = tiny_data(8, 0)
    with torch.no_grad():
        model[1].running_var[1] = -1.0
    with pytest.raises(ValueError, match=r"weights are broken: 1.running_var \(negative: a variance cannot be\)") as info:
        evaluate(model, data)
    assert "float16" not in str(info.value) and "amp" not in str(info.value)
    with torch.no_grad():
        model[1].running_var.fill_(1.0)
        model[0].weight.mul_(1e38)  # sound but huge: the float32 forward pass overflows
    with pytest.raises(ValueError, match="weights are sound and the forward pass ran in float32: check the inputs"):
        evaluate(model, data)


def test_uint8_images_are_normalised_by_their_dataset_or_refused():
    # Training imports no dataset's statistics: the dataset that yields uint8 images says how.
    images, labels = torch.randint(0, 256, (16, 4, 4, 3), dtype=torch.uint8), torch.arange(16) % 2
    plain = TensorDataset(images, labels)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    with pytest.raises(ValueError, match="TensorDataset yields uint8 images but has no normalize_uint8"):
        train(model, plain, None, CONFIG.replace(epochs=1))
    with pytest.raises(ValueError, match="give it one"):
        evaluate(model, plain)
    scaled = TensorDataset(images, labels)
    scaled.normalize_uint8 = lambda batch: batch.permute(0, 3, 1, 2).float() / 255  # its own statistics
    as_float = TensorDataset(images.permute(0, 3, 1, 2).float() / 255, labels)
    assert evaluate(model, scaled, 8) == evaluate(model, as_float, 8)


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


def test_a_checkpoint_of_another_identity_is_refused_naming_the_entry(tmp_path):
    """TrainConfig.identity (the zoo's recipe) is part of the fingerprint: resuming under another
    one is refused, naming each differing entry by its dotted path; the same one resumes."""
    identity = {"lab": {"version": 1, "region": "left"}, "architecture": {"options": {"width": 2}}}
    config = CONFIG.replace(epochs=2, identity=identity)
    train(tiny_model(), tiny_data(32, 0), None, config, tmp_path, stop_after=1)
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["fingerprint"]["identity"] == identity
    newer_lab = {**identity, "lab": {"version": 2, "region": "left"}}
    _expect_refusal(tmp_path, tiny_model(), config.replace(identity=newer_lab),
                    r"identity\.lab\.version: checkpoint 1 vs now 2")
    wider = {**identity, "architecture": {"options": {"width": 3}}}
    _expect_refusal(tmp_path, tiny_model(), config.replace(identity=wider),
                    r"identity\.architecture\.options\.width: checkpoint 2 vs now 3")
    _expect_refusal(tmp_path, tiny_model(), config.replace(identity=None),
                    r"identity: the checkpoint has one, this run has none")
    history = train(tiny_model(), tiny_data(32, 0), None, config.replace(identity=dict(identity)), tmp_path)
    assert history.starts == [0, 1] and history.finished


def test_identity_is_stored_as_its_json_round_trip_and_checked():
    config = TrainConfig(identity={"region": (0.0, 0.0, 0.5, 1.0), "n": 1})
    assert config.identity == {"n": 1, "region": [0.0, 0.0, 0.5, 1.0]}
    assert TrainConfig().identity is None
    with pytest.raises(ValueError, match="identity must be a dict or None, got list"):
        TrainConfig(identity=[1])
    with pytest.raises(ValueError, match="identity must be JSON-able"):
        TrainConfig(identity={"model": nn.Linear(1, 1)})
    with pytest.raises(ValueError, match="identity must be JSON-able"):
        TrainConfig(identity={"lr": float("nan")})
    assert identity_differences({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}, "file") == [
        "identity.a.c: file '(absent)' vs now 2"]


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


# --------------------------------------------------------------------------- reliability (issue 12)

# progress=False still built the bar (disabled), and the bar's constructor the extra iterator.
LAB_CONFIG = TrainConfig(epochs=2, batch_size=16, lr=4e-3, seed=3, device="cpu", progress=False, num_workers=0)


def _lab(region=None, length=48):
    from cam_tutorial.lab import SyntheticShapes

    return SyntheticShapes("train", length=length, image_size=32, seed=0, region=region)


@functools.lru_cache(maxsize=1)
def _rendered_lab():
    """The lab's items rendered once: rendering on every access would dominate these tests."""
    from cam_tutorial.zoo_recipes import cache_in_memory

    return cache_in_memory(_lab(), progress=False)


def _lab_model(pooling="avg"):
    from cam_tutorial.models import ResNet18B

    torch.manual_seed(0)
    return ResNet18B(10, width=2, pooling=pooling)


def _max_abs_difference(a: nn.Module, b: nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa)


def test_worker_count_changes_nothing(tmp_path):
    """tqdm.auto's bar once built a second, prefetching loader iterator per epoch, so the
    shuffling depended on the number of workers."""
    data = _rendered_lab()
    results = {}
    for workers in (0, 2):
        model = _lab_model()
        history = train(model, data, None, LAB_CONFIG.replace(num_workers=workers))
        results[workers] = model, history.train_loss
    assert results[0][1] == results[2][1]
    assert _state_equal(results[0][0], results[2][0])


def test_resume_with_another_worker_count_gives_the_same_weights(tmp_path):
    data = _rendered_lab()
    straight = _lab_model()
    train(straight, data, None, LAB_CONFIG)
    interrupted = _lab_model()
    train(interrupted, data, None, LAB_CONFIG, tmp_path, stop_after=1)
    resumed = _lab_model()
    history = train(resumed, data, None, LAB_CONFIG.replace(num_workers=2), tmp_path)
    assert history.starts == [0, 1]
    difference = _max_abs_difference(straight, resumed)
    print(f"max abs weight difference, 2 epochs straight (workers=0) vs 1 + resume (workers=2): {difference}")
    assert difference == 0.0 and _state_equal(straight, resumed)


def test_resume_refuses_other_model_options_and_other_data(tmp_path):
    data = _lab(length=16)
    train(_lab_model("avg"), data, None, LAB_CONFIG, tmp_path, stop_after=1)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(CheckpointError, match=r"model options \(module tree\).*GlobalPool\(mode='avg'\).*"
                                              r"GlobalPool\(mode='max'\)"):
        train(_lab_model("max"), data, None, LAB_CONFIG, tmp_path)
    with pytest.raises(CheckpointError, match="training data: .*region=None.*region='left'"):
        train(_lab_model("avg"), _lab("left", length=16), None, LAB_CONFIG, tmp_path)
    # Data without a telling repr (a TensorDataset) are told apart by their items.
    other = tiny_data(32, 0)
    train(tiny_model(), other, None, CONFIG.replace(epochs=2), tmp_path / "t", stop_after=1)
    with pytest.raises(CheckpointError, match="training data"):
        train(tiny_model(), tiny_data(32, 1), None, CONFIG.replace(epochs=2), tmp_path / "t")
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before


def test_divergence_stops_training_and_says_so(tmp_path):
    config = CONFIG.replace(epochs=3, lr=1.0)
    train(tiny_model(), tiny_data(32, 0), None, config, tmp_path, stop_after=1)
    kept = (tmp_path / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(TrainingDiverged, match=r"epoch 1/2, step \d+/2: training diverged \(loss .* at learning "
                                               r"rate .*\); training stopped: lower lr \(e.g. lr=1e\+05\)"):
        train(tiny_model(), tiny_data(32, 0), None, CONFIG.replace(epochs=2, lr=1e6))
    # A run that diverges after a good epoch keeps that epoch's checkpoint and says where it is.
    model = tiny_model()
    with torch.no_grad():
        model[-1].weight.mul_(1e6)  # logits far apart: a loss far above DIVERGED_LOSS from the start
    with pytest.raises(TrainingDiverged, match="epoch 1/2"):
        train(model, tiny_data(32, 0), None, CONFIG.replace(epochs=2, lr=1e6), tmp_path / "fresh")
    assert not (tmp_path / "fresh" / CHECKPOINT_NAME).exists()
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == kept


def test_divergence_after_a_good_epoch_keeps_its_checkpoint(tmp_path, monkeypatch):
    import cam_tutorial.train as train_module

    original = train_module.train_one_epoch
    calls = []

    def second_epoch_explodes(model, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            with torch.no_grad():
                model[-1].weight.mul_(1e9)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_one_epoch", second_epoch_explodes)
    with pytest.raises(TrainingDiverged, match=r"epoch 2/3, step 1/2: .*the last good checkpoint, after epoch 1, "
                                               r"stays in .*last.pt"):
        train(tiny_model(), tiny_data(32, 0), None, CONFIG, tmp_path)
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 1


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_checkpoints_get_the_umask_mode(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        train(tiny_model(), tiny_data(32, 0), None, CONFIG.replace(epochs=1), tmp_path)
    finally:
        os.umask(previous)
    assert (tmp_path / CHECKPOINT_NAME).stat().st_mode & 0o777 == mode


def test_an_unwritable_checkpoint_dir_fails_before_the_first_epoch(tmp_path, monkeypatch):
    import cam_tutorial.checkpoints as checkpoints
    import cam_tutorial.train as train_module

    def no_training(*args, **kwargs):
        raise AssertionError("an epoch ran before the folder was checked")

    monkeypatch.setattr(train_module, "train_one_epoch", no_training)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(CheckpointError, match=r"blocker.*move that file away or choose another checkpoint_dir"):
        train(tiny_model(), tiny_data(32, 0), None, CONFIG, blocker)
    with pytest.raises(CheckpointError, match=r"move that file away"):
        train(tiny_model(), tiny_data(32, 0), None, CONFIG, blocker / "run")

    def read_only(*args, **kwargs):  # the tests run as root, who may write anywhere: pretend
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(checkpoints.tempfile, "TemporaryFile", read_only)
    with pytest.raises(CheckpointError, match=r"cannot write to .*permission denied.*make it writable or choose "
                                              r"another checkpoint_dir"):
        train(tiny_model(), tiny_data(32, 0), None, CONFIG, tmp_path / "ro")


def test_temporaries_of_a_save_killed_midway_are_removed(tmp_path):
    stale = tmp_path / f".{CHECKPOINT_NAME}.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".other.pt.abc123.tmp"  # not this checkpoint's: left alone
    other.write_bytes(b"x")
    train(tiny_model(), tiny_data(32, 0), None, CONFIG.replace(epochs=1), tmp_path)
    assert not stale.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.abc123.tmp", CHECKPOINT_NAME]


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"),
                                     RuntimeError("[enforce fail at inline_container.cc:783] . unexpected pos "
                                                  "1728 vs 1616")], ids=["ENOSPC", "torch-unexpected-pos"])
def test_a_full_disk_says_so_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, failure):
    import cam_tutorial.checkpoints as checkpoints

    train(tiny_model(), tiny_data(32, 0), None, CONFIG, tmp_path, stop_after=1)
    kept = (tmp_path / CHECKPOINT_NAME).read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise failure

    monkeypatch.setattr(checkpoints.torch, "save", full_disk)
    with pytest.raises(OSError, match=rf"disk full: cannot write last.pt to {tmp_path}.*free space there") as info:
        train(tiny_model(), tiny_data(32, 0), None, CONFIG, tmp_path)
    assert info.value.errno == 28
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]  # no temporary left


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((8, 0), torch.bfloat16),
                                                  ((9, 0), torch.bfloat16), ((6, 1), torch.float16)],
                         ids=["T4", "A100", "H100", "P100"])
def test_auto_precision_follows_the_compute_capability(monkeypatch, capability, expected):
    # torch counts emulated bf16 as supported (True on a T4): it must not decide.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision("auto", torch.device("cuda")) is expected
