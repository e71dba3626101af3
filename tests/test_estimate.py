"""The gpu time estimate (issue 13): computed from FLOP counts and loader rates, within the
budget a free Colab T4 allows, and written into each chapter's time line as an estimate."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
import torch

from cam_tutorial.config import get_preset

ROOT = Path(__file__).resolve().parents[1]

from scripts import execute_notebooks, write_estimates

est = write_estimates._estimate_module()
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def slow_t4():
    preset = get_preset("gpu")
    loader = est.LOADER_RATE_PER_CORE * est.COLAB_WORKERS * est.COLAB_CPU_FACTOR
    return preset, loader, est.estimate(preset, min(est.T4_TFLOPS), loader)


def test_every_chapter_has_its_work_listed():
    assert sorted(est.CHAPTER_WORK(get_preset("gpu"))) == CHAPTERS


def test_the_gpu_preset_fits_a_free_t4_keeping_224_px_and_full_width(slow_t4):
    preset, loader, minutes = slow_t4
    assert (preset.image_size, preset.width, preset.vgg_width) == (224, 64, 64)
    for chapter, (fresh, cached) in minutes.items():
        assert fresh <= 15, (chapter, fresh)
        # chapter 3 trains its own run each time; chapter 8's page on other models fine-tunes on
        # Imagenette on Colab
        if chapter not in ("03_training_on_a_gpu", "deeper_08_other_models"):
            assert cached <= 2, (chapter, cached)
    assert est.estimate_book(preset, min(est.T4_TFLOPS), loader) <= 60


def test_the_estimate_grows_with_the_work():
    preset = get_preset("gpu")
    small = est.estimate(preset, 20.0, 1000.0)["01_fc_vs_gap"][0]
    large = est.estimate(preset.replace(epochs=2 * preset.epochs, pretrain_epochs=2 * preset.pretrain_epochs),
                         20.0, 1000.0)["01_fc_vs_gap"][0]
    fine_tuning_only = est.estimate(preset.replace(epochs=2 * preset.epochs), 20.0, 1000.0)["01_fc_vs_gap"][0]
    assert small < fine_tuning_only < large  # the shapes-lab start is counted too
    slower = est.estimate(preset, 10.0, 1000.0)["01_fc_vs_gap"][0]
    assert large > 1.8 * small - 1 and slower > 1.8 * small - 1


def test_time_line_states_the_estimate_until_measured():
    timings = {"cpu": {"seconds": 30.0, "machine": "2 CPU cores"}}
    guess = {"card": "T4", "fresh_minutes": [7.2, 11.6], "cached_minutes": [0.6, 0.8]}
    line = execute_notebooks.time_line(timings, "", guess)
    assert "estimated 7-12 min on a Colab T4 on a fresh session, 1 min with the models in the Drive cache" in line
    assert "not yet measured" in line
    measured = execute_notebooks.time_line({**timings, "gpu": {"seconds": 600.0, "machine": "Tesla T4"}}, "", guess)
    assert "estimated" not in measured and "10 min under the `gpu` preset on Tesla T4" in measured


def test_writing_the_estimate_touches_metadata_and_the_time_line_only():
    path = ROOT / "notebooks" / "02_building_resnet18b.ipynb"
    nb = nbformat.read(path, as_version=4)
    outputs = [c.get("outputs") for c in nb.cells]
    guess = {"card": "T4", "fresh_minutes": [0.5, 0.5], "cached_minutes": [0.5, 0.5]}
    write_estimates.write(nb, guess)
    once = nbformat.writes(nb)
    write_estimates.write(nb, guess)
    assert nbformat.writes(nb) == once and [c.get("outputs") for c in nb.cells] == outputs
    assert "under `gpu`: estimated 1 min on a Colab T4 on a fresh session (not yet measured" in nb.cells[0].source


def test_the_smoke_preset_is_shaped_like_gpu_and_valid():
    from scripts import smoke_gpu_shape

    gpu = get_preset("gpu")
    smoke = gpu.replace(**smoke_gpu_shape.SMOKE, chapter=gpu.chapter.replace(**smoke_gpu_shape.SMOKE_CHAPTER))
    assert (smoke.name, smoke.image_size, smoke.width, smoke.vgg_width) == ("gpu", 224, 64, 64)
    assert smoke.epochs == 1 and smoke.train_size <= 50 and smoke.train_size >= smoke.batch_size
    assert smoke.chapter.probe_train_size <= 50 and smoke.chapter.throughput_steps == gpu.chapter.throughput_steps
    namespace: dict = {}
    exec(smoke_gpu_shape.INJECTED, namespace)  # what the smoke run prepends to every notebook
    from cam_tutorial import config, zoo_recipes
    try:
        assert config.PRESETS["gpu"] == smoke and zoo_recipes.IN_MEMORY_BYTES == 0
    finally:
        config.PRESETS["gpu"], zoo_recipes.IN_MEMORY_BYTES = gpu, 1 << 30


def test_a_networks_flops_counted_on_the_meta_device_are_those_of_a_real_forward_pass():
    from cam_tutorial.summary import count_flops
    from cam_tutorial.zoo import recipe

    preset = get_preset("ci")
    for name in ("resnet18b_gap", "vgg16_fc_left"):
        real = count_flops(recipe(name, preset).network().eval(),
                           torch.zeros(1, 3, preset.image_size, preset.image_size))
        assert est.forward_gflops(name, preset) == real / 1e9
