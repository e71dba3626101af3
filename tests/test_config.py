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


@pytest.mark.parametrize("name", ["../../../../escaped", "a/b", "..", ".hidden", "", "with space", "x" * 65])
def test_preset_names_that_could_leave_a_folder_are_refused(name):
    with pytest.raises(ValueError, match="is not allowed: it becomes part of file names"):
        PRESETS["ci"].replace(name=name)


def test_preset_sizes_must_be_positive_integers():
    with pytest.raises(ValueError, match="preset epochs must be a positive integer, got 1.5"):
        PRESETS["ci"].replace(epochs=1.5)
    with pytest.raises(ValueError, match="preset lr must be a finite positive number"):
        PRESETS["ci"].replace(lr=float("inf"))
    assert PRESETS["ci"].replace(name="ci_small-2").name == "ci_small-2"


CHAPTER_FIELDS = ("throughput_steps", "sanity_images", "curve_images", "curve_steps", "download_weights",
                  "finetune_epochs", "probe_image_size", "probe_train_size", "probe_test_size", "compare_images")
MODEL_FIELDS = ("name", "image_size", "width", "vgg_width", "train_size", "val_size", "test_size", "epochs",
                "batch_size", "lr", "objects", "pretrain_epochs", "pretrain_image_size", "eval_batch_size", "chapter")


def test_a_preset_holds_model_and_data_sizes_and_one_table_of_chapter_sizes():
    import dataclasses

    from cam_tutorial.config import ChapterSizes, Preset

    assert tuple(f.name for f in dataclasses.fields(Preset)) == MODEL_FIELDS
    assert sorted(f.name for f in dataclasses.fields(ChapterSizes)) == sorted(CHAPTER_FIELDS)
    assert all(isinstance(p.chapter, ChapterSizes) for p in PRESETS.values())
    with pytest.raises(ValueError, match="preset chapter must be a ChapterSizes, got dict"):
        PRESETS["ci"].replace(chapter={"sanity_images": 4})


def test_chapter_sizes_are_chosen_by_the_preset_with_the_values_the_notebooks_used():
    values = {name: tuple(getattr(p.chapter, f) for f in CHAPTER_FIELDS) for name, p in PRESETS.items()}
    assert values == {"ci": (2, 8, 12, 12, False, 0, 160, 120, 80, 100),
                      "cpu": (4, 16, 48, 32, True, 0, 224, 500, 300, 1000),
                      "gpu": (20, 16, 48, 32, True, 3, 224, 2000, 1000, 1000)}


def test_chapter_sizes_stay_outside_the_zoo_cache_key():
    from cam_tutorial.zoo import available_models, recipe

    ci = PRESETS["ci"]
    changed = ci.replace(chapter=ci.chapter.replace(
        throughput_steps=3, sanity_images=9, curve_images=13, curve_steps=13,
        download_weights=True, finetune_epochs=1, probe_image_size=64, probe_train_size=7, probe_test_size=7,
        compare_images=7))
    assert all(getattr(changed.chapter, f) != getattr(ci.chapter, f) for f in CHAPTER_FIELDS)
    assert [recipe(n, changed).key for n in available_models()] == [recipe(n, ci).key for n in available_models()]


@pytest.mark.parametrize("field, value, message", [
    ("curve_steps", 0, "curve_steps must be a positive integer"),
    ("throughput_steps", 0, "throughput_steps must be a positive integer"),
    ("probe_image_size", 1.5, "probe_image_size must be a positive integer"),
    ("finetune_epochs", -1, "finetune_epochs must be a non-negative integer"),
    ("download_weights", "yes", "download_weights must be True or False"),
])
def test_bad_chapter_sizes_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        PRESETS["ci"].chapter.replace(**{field: value})


def test_preset_objects_are_the_labs_kinds_and_enter_the_recipe():
    from cam_tutorial.lab import OBJECTS
    from cam_tutorial.zoo import recipe

    # the config's copy cannot drift from the lab's list: it accepts each, and names exactly those
    assert [PRESETS["ci"].replace(objects=kind).objects for kind in OBJECTS] == list(OBJECTS)
    with pytest.raises(ValueError, match=rf"preset objects must be one of {', '.join(map(repr, OBJECTS))}, got"):
        PRESETS["ci"].replace(objects="blob")
    # The book's outputs are on the lab with parts at 10x10 maps or finer; ci stays small, on shapes.
    assert PRESETS["cpu"].objects == "creatures" and PRESETS["cpu"].image_size >= 160
    assert PRESETS["ci"].objects == "shapes"
    ci = PRESETS["ci"]
    creatures = recipe("resnet18b_gap", ci.replace(objects="creatures"))
    assert creatures.lab.objects == "creatures" and creatures.lab.dataset("val").objects == "creatures"
    assert creatures.key != recipe("resnet18b_gap", ci).key
    with pytest.raises(ValueError, match="preset objects must be one of 'shapes', 'creatures', got 'blobs'"):
        ci.replace(objects="blobs")
