"""The bad-input battery (issue 12) for config, train, zoo and pretrained, kept as tests.

Each case feeds one bad input and asserts the error's type and two fragments of its message: one
that names the problem and one that names the fix. Where a questionable input is in fact fine,
the case asserts the value it gives instead.
"""

from __future__ import annotations

import argparse
import errno
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import TensorDataset

import cam_tutorial.real.pretrained as pretrained_module
from cam_tutorial import zoo
from cam_tutorial.config import ENV_VAR, PRESETS, get_preset
from cam_tutorial.real.inputs import env_flag
from cam_tutorial.checkpoints import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from cam_tutorial.evaluation import resolve_precision
from cam_tutorial.train import History, TrainConfig, TrainingDiverged, train

TINY = get_preset("ci").replace(image_size=32, width=2, vgg_width=2, train_size=40, val_size=20,
                                test_size=20, epochs=1, batch_size=20)
CONFIG = TrainConfig(epochs=1, batch_size=8, lr=1e-2, seed=0, device="cpu", progress=False, num_workers=0)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))


def _data(n: int = 16) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 3, 4, 4, generator=generator), torch.randint(0, 2, (n,), generator=generator))


def _expect(call: Callable[[], Any], error: type[BaseException], problem: str, fix: str) -> str:
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert problem in message, message
    assert fix in message, message
    return message


# --------------------------------------------------------------------------- config

CONFIG_CASES = {
    "unknown preset from the environment": (lambda mp: mp.setenv(ENV_VAR, "huge"), lambda: get_preset(),
                                            ValueError, "unknown preset 'huge'", "use one of ci, cpu, gpu"),
    "unknown preset by name": (None, lambda: get_preset("tiny"), ValueError, "unknown preset 'tiny'", "e.g. "),
    "preset name climbing out of the cache": (None, lambda: PRESETS["ci"].replace(name="../../../../escaped"),
                                              ValueError, "is not allowed", "letters, digits, '_' or '-'"),
    "preset name with a slash": (None, lambda: PRESETS["ci"].replace(name="a/b"), ValueError, "is not allowed",
                                 "no '/'"),
    "empty preset name": (None, lambda: PRESETS["ci"].replace(name=""), ValueError, "is not allowed", "e.g. 'ci_small'"),
    "fractional preset epochs": (None, lambda: PRESETS["ci"].replace(epochs=1.5), ValueError,
                                 "epochs must be a positive integer, got 1.5", "e.g. epochs=32"),
    "zero preset image size": (None, lambda: PRESETS["ci"].replace(image_size=0), ValueError,
                               "image_size must be a positive integer", "e.g. image_size="),
    "NaN preset lr": (None, lambda: PRESETS["ci"].replace(lr=float("nan")), ValueError,
                      "lr must be a finite positive number", "e.g. lr=4e-3"),
    "on/off variable with another word": (lambda mp: mp.setenv("CAM_TUTORIAL_X", "maybe"),
                                          lambda: env_flag("CAM_TUTORIAL_X"), ValueError,
                                          "is neither on nor off", "set it to one of 1, true, yes, on"),
}


@pytest.mark.parametrize("case", CONFIG_CASES, ids=list(CONFIG_CASES))
def test_config_bad_inputs(case, monkeypatch):
    setup, call, error, problem, fix = CONFIG_CASES[case]
    if setup:
        setup(monkeypatch)
    _expect(call, error, problem, fix)


@pytest.mark.parametrize("value, expected", [("false", False), ("OFF", False), ("0", False), ("", None),
                                             ("yes", True)])
def test_config_on_off_words_that_are_fine(monkeypatch, value, expected):
    monkeypatch.setenv("CAM_TUTORIAL_X", value)
    assert env_flag("CAM_TUTORIAL_X") is expected


# --------------------------------------------------------------------------- train: settings

TRAIN_CONFIG_CASES = {
    "fractional epochs": (dict(epochs=1.5), "epochs must be an integer, got 1.5", "e.g. epochs=2"),
    "zero epochs": (dict(epochs=0), "epochs must be a positive integer, got 0", "e.g. epochs=1"),
    "boolean epochs": (dict(epochs=True), "epochs must be an integer, got True", "epochs must be an integer"),
    "string batch size": (dict(batch_size="8"), "batch_size must be an integer, got '8'", "e.g. batch_size=2"),
    "infinite lr": (dict(lr=float("inf")), "lr must be a finite number, got inf", "finite"),
    "NaN lr": (dict(lr=float("nan")), "lr must be a finite number, got nan", "finite"),
    "zero lr": (dict(lr=0.0), "lr must be positive, got 0.0", "e.g. lr=4e-3"),
    "negative weight decay": (dict(weight_decay=-1), "weight_decay must be 0 or more, got -1", "e.g. weight_decay=5e-4"),
    "infinite weight decay": (dict(weight_decay=float("inf")), "weight_decay must be a finite number", "finite"),
    "label smoothing of 1": (dict(label_smoothing=1.0), "label_smoothing must lie in [0, 1)", "[0, 1)"),
    "warm-up fraction of 0": (dict(pct_start=0.0), "pct_start must lie in (0, 1)", "(0, 1)"),
    "negative workers": (dict(num_workers=-1), "num_workers must be 0 or more", "(or None)"),
    "fractional workers": (dict(num_workers=1.5), "num_workers must be an integer, got 1.5", "e.g. num_workers=2"),
    "fractional seed": (dict(seed=0.5), "seed must be an integer, got 0.5", "e.g. seed=2"),
    "unknown amp": (dict(amp="fp8"), "unknown amp 'fp8'", "use one of 'auto', 'off', 'bf16', 'fp16'"),
    "channels_last as a word": (dict(channels_last="yes"), "channels_last must be True, False or 'auto'", "got 'yes'"),
}


@pytest.mark.parametrize("case", TRAIN_CONFIG_CASES, ids=list(TRAIN_CONFIG_CASES))
def test_train_config_bad_inputs(case):
    changes, problem, fix = TRAIN_CONFIG_CASES[case]
    _expect(lambda: TrainConfig(**changes), ValueError, problem, fix)


def test_train_config_numpy_numbers_are_fine():
    config = TrainConfig(epochs=np.int64(2), batch_size=np.int32(8), lr=np.float32(0.5), seed=np.int64(3))
    assert (config.epochs, config.batch_size, config.lr, config.seed) == (2, 8, 0.5, 3)
    assert type(config.epochs) is int and type(config.lr) is float


TRAIN_CALL_CASES = {
    "empty checkpoint_dir": (lambda tmp: train(_model(), _data(), None, CONFIG, ""), ValueError,
                             "checkpoint_dir is empty", "e.g. checkpoint_dir='runs/gap'"),
    "zero stop_after": (lambda tmp: train(_model(), _data(), None, CONFIG, stop_after=0), ValueError,
                        "stop_after must be a positive number", "or None"),
    "fewer items than a batch": (lambda tmp: train(_model(), _data(4), None, CONFIG), ValueError,
                                 "fewer than one batch of 8", "lower batch_size or use more data"),
    "learning rate that diverges": (lambda tmp: train(_model(), _data(), None, CONFIG.replace(lr=1e6)),
                                    TrainingDiverged, "training diverged (loss", "lower lr (e.g. lr=1e+05)"),
    "unknown amp for resolve_precision": (lambda tmp: resolve_precision("fp8", torch.device("cpu")), ValueError,
                                          "unknown amp 'fp8'", "use one of"),
    "checkpoint_dir that is a file": (lambda tmp: (tmp / "f").write_text("x") and train(
        _model(), _data(), None, CONFIG, tmp / "f"), CheckpointError, "is a file", "choose another checkpoint_dir"),
}


@pytest.mark.parametrize("case", TRAIN_CALL_CASES, ids=list(TRAIN_CALL_CASES))
def test_train_call_bad_inputs(case, tmp_path):
    call, error, problem, fix = TRAIN_CALL_CASES[case]
    _expect(lambda: call(tmp_path), error, problem, fix)


# --------------------------------------------------------------------------- train: checkpoint files


def _good_checkpoint(folder: Path) -> dict[str, Any]:
    train(_model(), _data(), None, CONFIG.replace(epochs=2), folder, stop_after=1)
    return torch.load(folder / CHECKPOINT_NAME, weights_only=True)


def _write(folder: Path, stored: Any) -> None:
    torch.save(stored, folder / CHECKPOINT_NAME)


def _raise_in_load(exc: BaseException) -> Callable[..., Any]:
    def load(*args: Any, **kwargs: Any) -> Any:
        raise exc
    return load


CHECKPOINT_CASES = {
    # name: (make the bad file, problem, fix)
    "empty file": (lambda d, mp: (d / CHECKPOINT_NAME).write_bytes(b""), "it is empty (0 bytes", "delete"),
    "truncated file": (lambda d, mp: (d / CHECKPOINT_NAME).write_bytes((d / CHECKPOINT_NAME).read_bytes()[:300]),
                       "corrupt or truncated", "delete"),
    "a folder in its place": (lambda d, mp: ((d / CHECKPOINT_NAME).unlink(), (d / CHECKPOINT_NAME).mkdir()),
                              "it is a folder, not a file", "move the folder away"),
    "no read permission": (lambda d, mp: mp.setattr(torch, "load", _raise_in_load(PermissionError(13, "denied"))),
                           "permission denied", "chmod a+r"),
    "python objects besides tensors": (lambda d, mp: _write(d, {"format": "cam_tutorial.train/1",
                                                                "x": argparse.Namespace(a=1)}),
                                       "holds Python objects other than tensors", "could run code"),
    "newer cam_tutorial format": (lambda d, mp: _write(d, dict(_good_checkpoint_cache[0], format="cam_tutorial.train/2")),
                                  "of format 'cam_tutorial.train/2'", "upgrade cam_tutorial"),
    "newer PyTorch": (lambda d, mp: mp.setattr(torch, "load", _raise_in_load(RuntimeError(
        "Attempted to read a PyTorch file with version 99, but the maximum supported version for reading is 3"))),
                      "written by a newer PyTorch", "upgrade torch"),
    "missing entries": (lambda d, mp: _write(d, {k: v for k, v in _good_checkpoint_cache[0].items()
                                                 if k not in ("optimizer", "rng")}),
                        "lacks the entries 'optimizer', 'rng'", "delete"),
    "a bare state_dict": (lambda d, mp: _write(d, _model().state_dict()),
                          "is not a cam_tutorial training checkpoint", "choose another checkpoint_dir"),
    "another program's format": (lambda d, mp: _write(d, {"format": "someone/3"}), "format 'someone/3'",
                                 "choose another checkpoint_dir"),
}
_good_checkpoint_cache: list[dict[str, Any]] = []


@pytest.mark.parametrize("case", CHECKPOINT_CASES, ids=list(CHECKPOINT_CASES))
def test_train_checkpoint_bad_files(case, tmp_path, monkeypatch):
    make, problem, fix = CHECKPOINT_CASES[case]
    stored = _good_checkpoint(tmp_path)
    _good_checkpoint_cache[:] = [stored]
    make(tmp_path, monkeypatch)
    message = _expect(lambda: train(_model(), _data(), None, CONFIG.replace(epochs=2), tmp_path),
                      CheckpointError, problem, fix)
    assert str(tmp_path / CHECKPOINT_NAME) in message
    if case not in ("empty file", "truncated file", "missing entries", "a bare state_dict",
                    "another program's format", "python objects besides tensors", "newer cam_tutorial format"):
        assert "delete" not in message  # healthy files are not to be deleted


def test_train_checkpoint_that_does_not_exist():
    _expect(lambda: load_checkpoint("/nonexistent/last.pt"), CheckpointError, "there is no such file",
            "check the path")


def test_train_disk_full_while_saving(tmp_path, monkeypatch):
    import cam_tutorial.checkpoints as checkpoints

    def full(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", full)
    message = _expect(lambda: train(_model(), _data(), None, CONFIG, tmp_path), OSError, "disk full",
                      "free space there or choose another folder")
    assert str(tmp_path) in message


# --------------------------------------------------------------------------- zoo


def _zoo_stored() -> dict[str, Any]:
    model = zoo.build_model("resnet18b_gap", TINY)
    return {"format": "cam_tutorial.zoo/1", "name": "resnet18b_gap", "preset": TINY.name,
            "key": zoo.recipe("resnet18b_gap", TINY).key, "region": None, "model": model.state_dict(),
            "history": {}, "test_loss": 1.0, "test_acc": 0.5}


def _plant(cache: Path, content: Any) -> Path:
    target = cache / "models" / zoo.recipe("resnet18b_gap", TINY).key / "final.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        torch.save(content, target)
    return target


ZOO_FILE_CASES = {
    "empty final.pt": (lambda: b"", "it is empty (0 bytes", "it will be retrained"),
    "truncated final.pt": (lambda: b"PK\x03\x04 not much", "corrupt or truncated", "it will be retrained"),
    "another model's file": (lambda: dict(_zoo_stored(), name="resnet18b_gmp"),
                             "holds the zoo model 'resnet18b_gmp', not 'resnet18b_gap'", "it will be retrained"),
    "another recipe's file": (lambda: dict(_zoo_stored(), key="resnet18b_gap-ci-000000000000"),
                              "trained for another recipe", "it will be retrained"),
    "weights that do not fit": (lambda: dict(_zoo_stored(), model=zoo.build_model("vgg16_gap_left", TINY).state_dict()),
                                "do not fit 'resnet18b_gap'", "it will be retrained"),
    "newer zoo format": (lambda: dict(_zoo_stored(), format="cam_tutorial.zoo/2"), "of format 'cam_tutorial.zoo/2'",
                         "upgrade cam_tutorial"),
    "missing entries": (lambda: {k: v for k, v in _zoo_stored().items() if k != "test_acc"},
                        "lacks the entries 'test_acc'", "it will be retrained"),
    "python objects besides tensors": (lambda: dict(_zoo_stored(), history=argparse.Namespace()),
                                       "holds Python objects other than tensors", "could run code"),
    "a bare state_dict": (lambda: _zoo_stored()["model"], "is not a cam_tutorial zoo model", "it will be retrained"),
    # Issue 28 item 4: damaged files that loaded as healthy models.
    "weights changed after writing": (lambda: dict(_zoo_stored(), weights_sha256="0" * 64),
                                      "are damaged (their digest is not the one stored", "it will be retrained"),
    "all-NaN weights": (lambda: dict(_zoo_stored(), model={k: torch.full_like(v, float("nan")) if v.is_floating_point()
                                                          else v for k, v in _zoo_stored()["model"].items()}),
                        "hold NaN or infinite values", "it will be retrained"),
    "a string test_acc": (lambda: dict(_zoo_stored(), test_acc="0.9"), "holds test_acc='0.9', not a finite number",
                          "it will be retrained"),
    "a NaN test_loss": (lambda: dict(_zoo_stored(), test_loss=float("nan")), "holds test_loss=nan", "it will be retrained"),
}


@pytest.mark.parametrize("case", ZOO_FILE_CASES, ids=list(ZOO_FILE_CASES))
def test_zoo_bad_cached_files(case, tmp_path):
    content, problem, fix = ZOO_FILE_CASES[case]
    target = _plant(tmp_path, content())
    before = target.read_bytes()
    message = _expect(lambda: zoo.trained_model("resnet18b_gap", TINY, "cpu", tmp_path, progress=False),
                      CheckpointError, problem, fix)
    assert str(target) in message
    assert target.read_bytes() == before  # refused, never overwritten


ZOO_CALL_CASES = {
    "unknown model": (lambda tmp: zoo.trained_model("resnet50", TINY), ValueError, "unknown model 'resnet50'",
                      "use one of 'resnet18b_gap'"),
    "empty cache_dir": (lambda tmp: zoo.trained_model("resnet18b_gap", TINY, "cpu", "", progress=False), ValueError,
                        "cache_dir is empty", "e.g. cache_dir="),
    "unknown split": (lambda tmp: zoo.model_dataset("resnet18b_gap", "dev", TINY), ValueError, "unknown split 'dev'",
                      "use 'train', 'val' or 'test'"),
    "cache_dir that is a file": (lambda tmp: (tmp / "f").write_text("x") and zoo.trained_model(
        "resnet18b_gap", TINY, "cpu", tmp / "f", progress=False), CheckpointError, "is a file",
        "choose another cache_dir"),
    # Issue 28 item 12: a model on the meta device has no weights.
    "meta device": (lambda tmp: zoo.trained_model("resnet18b_gap", "ci", "meta", tmp), ValueError,
                    "device='meta' holds shapes, not weights", "pass 'cpu' or 'cuda'"),
    "a preset that is neither a Preset nor a name": (lambda tmp: zoo.recipe("resnet18b_gap", 3), TypeError,
                                                     "preset must be a Preset, a preset's name or None, got int",
                                                     "e.g. preset='ci'"),
    # Issue 28 item 14: the advice for a wrapped model is to unwrap it, not to build another.
    "store_run of a DataParallel model": (lambda tmp: zoo.store_run(
        "resnet18b_gap", nn.DataParallel(zoo.build_model("resnet18b_gap", TINY)), _finished(), TINY, tmp), ValueError,
        "not its DataParallel wrapper", "pass model.module"),
    "store_run of a torch.compile'd model": (lambda tmp: zoo.store_run(
        "resnet18b_gap", torch.compile(zoo.build_model("resnet18b_gap", TINY)), _finished(), TINY, tmp), ValueError,
        "not its OptimizedModule wrapper", "pass model._orig_mod"),
}


def _finished() -> History:
    return History(epoch=[1], val_acc=[0.5], epoch_seconds=[1.0], finished=True)


def test_zoo_takes_a_preset_by_its_name(tmp_path):
    """Issue 28 item 15: trained_model("resnet18b_gap", "ci") raised AttributeError."""
    model, info = zoo.trained_model("resnet18b_gap", "ci", "cpu", tmp_path, progress=False, with_info=True)
    assert info.source == "package" and info.preset == "ci" and not model.training
    assert zoo.recipe("vgg16_fc_left", "cpu") == zoo.recipe("vgg16_fc_left", get_preset("cpu"))
    assert zoo.train_config("vgg16_gap_left", "ci") == zoo.train_config("vgg16_gap_left", get_preset("ci"))
    assert zoo.run_folder("resnet18b_gmp", "ci", tmp_path) == zoo.run_folder("resnet18b_gmp", get_preset("ci"), tmp_path)


@pytest.mark.parametrize("case", ZOO_CALL_CASES, ids=list(ZOO_CALL_CASES))
def test_zoo_call_bad_inputs(case, tmp_path):
    call, error, problem, fix = ZOO_CALL_CASES[case]
    _expect(lambda: call(tmp_path), error, problem, fix)


# --------------------------------------------------------------------------- pretrained


PRETRAINED_CALL_CASES = {
    "unknown model": (lambda mp: None, lambda: pretrained_module.imagenet_model("resnet19"), ValueError,
                      "unknown torchvision model 'resnet19'", "e.g. resnet18"),
    "offline variable with another word": (lambda mp: mp.setenv("CAM_TUTORIAL_OFFLINE", "sometimes"),
                                           lambda: pretrained_module.imagenet_model("resnet18"), ValueError,
                                           "CAM_TUTORIAL_OFFLINE='sometimes' is neither on nor off", "or unset it"),
    "unknown photograph": (lambda mp: None, lambda: pretrained_module.photographs(["nope"]), ValueError,
                           "no photograph 'nope'", "choose one of chelsea"),
}


@pytest.mark.parametrize("case", PRETRAINED_CALL_CASES, ids=list(PRETRAINED_CALL_CASES))
def test_pretrained_bad_inputs(case, hub_dir, monkeypatch):
    setup, call, error, problem, fix = PRETRAINED_CALL_CASES[case]
    setup(monkeypatch)
    _expect(call, error, problem, fix)


def _resnet34_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return torchvision.models.resnet34().state_dict()


PRETRAINED_FILE_CASES = {
    # name: (file content, what the note must say)
    "empty file": (lambda: b"", "did not load"),
    "not a state dict": (lambda: {"weights": argparse.Namespace()}, "does not load safely"),
    "tensors of another architecture": (_resnet34_state, "did not load"),
}


@pytest.mark.parametrize("case", PRETRAINED_FILE_CASES, ids=list(PRETRAINED_FILE_CASES))
def test_pretrained_bad_cached_files_fall_back_and_say_why(case, hub_dir, monkeypatch):
    """A cached weight file that fails a check is not used: the documented fallback (random
    weights) with a note that names the file and the reason."""
    content, reason = PRETRAINED_FILE_CASES[case]
    monkeypatch.setenv("CAM_TUTORIAL_OFFLINE", "1")
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    target = hub_dir / "checkpoints" / weights.url.rsplit("/", 1)[1]
    target.parent.mkdir(parents=True)
    value = content()
    target.write_bytes(value) if isinstance(value, bytes) else torch.save(value, target)
    loaded = pretrained_module.imagenet_model("resnet18", download=False)
    assert not loaded.weights_loaded
    assert "RANDOMLY INITIALISED" in loaded.note and reason in loaded.note and str(target) in loaded.note
