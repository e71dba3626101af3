import pytest
import torch

from cam_tutorial.config import ENV_VAR, PRESETS, get_preset


def test_named_presets_resolve():
    assert get_preset("ci").name == "ci"
    assert get_preset("gpu").image_size == 224 and get_preset("gpu").width == 64


def test_environment_variable_wins(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "CI")
    assert get_preset() is PRESETS["ci"]


def test_default_follows_the_hardware(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert get_preset().name == ("gpu" if torch.cuda.is_available() else "cpu")


def test_unknown_preset_names_the_choices(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "huge")
    with pytest.raises(ValueError, match=r"unknown preset 'huge' \(from \$CAM_TUTORIAL_PRESET\).*ci, cpu, gpu"):
        get_preset()


def test_presets_grow_from_ci_to_gpu():
    ci, cpu, gpu = (PRESETS[n] for n in ("ci", "cpu", "gpu"))
    for field in ("image_size", "width", "train_size"):
        assert getattr(ci, field) <= getattr(cpu, field) <= getattr(gpu, field)


def test_replace_returns_a_changed_copy():
    small = PRESETS["ci"].replace(epochs=1)
    assert small.epochs == 1 and small is not PRESETS["ci"]
    assert PRESETS["ci"].epochs > 1  # the original is untouched
    assert small.image_size == PRESETS["ci"].image_size
