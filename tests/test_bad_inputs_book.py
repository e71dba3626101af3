"""The bad-input battery (issue 28) for config, summary, the book's room and the methods' room.

Each case is one attempt to misuse the package that used to pass silently or fail unclearly. Where
the input is wrong, the test asserts the error and a message fragment that names the problem and
the fix (and, where it can, that following the advice works); where the package should cope, it
asserts what it gives. Every model and image is tiny.
"""

from __future__ import annotations

import errno
import logging
import pathlib
import sys
import types

import pytest
import torch

from cam_tutorial import zoo_cache
from cam_tutorial.book import colab
from cam_tutorial.book.widgets import CAMExplorer
from cam_tutorial.dataset_maps import DatasetMaps
from cam_tutorial.config import PRESETS, get_preset
from cam_tutorial.lab import SyntheticShapes
from cam_tutorial.methods.compare import localization_report, twin_measures
from cam_tutorial.models import ResNet18B
from cam_tutorial.summary import markdown_table, part_table, stage_table

SIZE = 32


@pytest.fixture(scope="module")
def model() -> ResNet18B:
    torch.manual_seed(0)
    return ResNet18B(num_classes=10, width=4).eval()


@pytest.fixture(scope="module")
def dataset() -> SyntheticShapes:
    return SyntheticShapes("test", length=4, image_size=SIZE)


# -- config (item 9) ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ci\n", "ci\r\n", "a\nb"])
def test_a_preset_name_with_a_line_break_is_refused(name):
    with pytest.raises(ValueError, match="is not allowed: it becomes part of file names.*line breaks"):
        PRESETS["ci"].replace(name=name)


# -- the explorer (item 8) ---------------------------------------------------------------------


def test_a_negative_index_counts_from_the_end_and_moves_the_slider_there(model, dataset):
    explorer = CAMExplorer(model, dataset)
    explorer.show_item(-1)
    assert explorer.index.value == 3 and explorer.current["source"].startswith("lab image 3 ")
    explorer.show_item(-2)
    assert explorer.index.value == 2 and explorer.current["source"].startswith("lab image 2 ")


@pytest.mark.parametrize("index", [4, -5, 1.0, True])
def test_an_index_past_the_dataset_is_refused(model, dataset, index):
    explorer = CAMExplorer(model, dataset)
    with pytest.raises(ValueError, match=r"index must be an integer in \[-4, 3\] \(the dataset has 4 items"):
        explorer.show_item(index)


@pytest.mark.parametrize("option, value, message", [
    ("display_size", -5, r"display_size must be a whole number of pixels in \[1, 4096\], got -5"),
    ("display_size", 320.5, r"display_size must be a whole number of pixels"),
])
def test_explorer_settings_outside_their_sliders_are_refused_not_clipped(model, dataset, option, value, message):
    with pytest.raises(ValueError, match=message):
        CAMExplorer(model, dataset, **{option: value})


def test_explorer_settings_inside_their_range_reach_the_sliders(model, dataset):
    explorer = CAMExplorer(model, dataset, display_size=64)
    assert explorer.display_size == 64


# -- summary (items 10 and 12) -----------------------------------------------------------------


@pytest.mark.parametrize("table", [stage_table, part_table])
def test_the_tables_give_every_submodule_its_mode_back(table):
    net = ResNet18B(width=2).train()
    net.features[1].eval()  # a model half in train mode: one block frozen
    before = [m.training for m in net.modules()]
    table(net, 32)
    assert [m.training for m in net.modules()] == before and net.training and not net.features[1].training


def test_markdown_table_keeps_a_pipe_or_a_line_break_inside_its_cell():
    text = markdown_table([{"name": "a|b", "note": "one\ntwo", "n": 3}], headers=["name | id", "note", "n"])
    lines = text.splitlines()
    assert lines == ["| name \\| id | note | n |", "|---|---|---|", "| a\\|b | one<br>two | 3 |"]
    assert markdown_table([{"x": 0.5}], formats={"x": "{:.0%}|"}).splitlines()[2] == "| 50%\\| |"


# -- the Colab Drive cache (items 11 and 15) ---------------------------------------------------


@pytest.fixture
def fake_colab(monkeypatch, tmp_path):
    """A stand-in ``google.colab`` whose ``drive.mount`` makes ``MyDrive`` appear."""
    drive = types.SimpleNamespace(mount=lambda where: (tmp_path / "drive" / "MyDrive").mkdir(parents=True,
                                                                                             exist_ok=True))
    module = types.ModuleType("google.colab")
    module.drive = drive  # type: ignore[attr-defined]
    google = types.ModuleType("google")
    google.colab = module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", module)
    monkeypatch.delenv(zoo_cache.CACHE_ENV, raising=False)
    return tmp_path


@pytest.mark.parametrize("folder", ["../../x", "", ".", "/absolute/x", "a/../../x", None])
def test_a_drive_folder_outside_my_drive_or_its_root_is_refused(fake_colab, folder):
    if folder == "/absolute/x":  # an absolute path, inside this test's folder should it be written
        folder = str(fake_colab / "x")
    with pytest.raises(ValueError, match=r"the folder must be a relative path inside My Drive.*folder='cam_tutorial'"):
        colab.use_drive_cache(mount_point=str(fake_colab / "drive"), folder=folder)
    assert not (fake_colab / "x").exists() and zoo_cache.CACHE_ENV not in __import__("os").environ


def test_a_drive_folder_that_is_a_file_falls_back_to_the_machine(fake_colab, caplog):
    (fake_colab / "drive" / "MyDrive").mkdir(parents=True)
    (fake_colab / "drive" / "MyDrive" / "cam_tutorial").write_text("not a folder")
    with caplog.at_level(logging.WARNING):
        assert colab.use_drive_cache(mount_point=str(fake_colab / "drive")) is None
    assert "cannot write the Drive folder" in caplog.text and "make it a writable folder" in caplog.text
    assert zoo_cache.CACHE_ENV not in __import__("os").environ


def test_a_read_only_drive_falls_back_to_the_machine(fake_colab, caplog, monkeypatch):
    (fake_colab / "drive" / "MyDrive").mkdir(parents=True)
    real_mkdir = pathlib.Path.mkdir

    def read_only(self, *args, **kwargs):
        if "MyDrive" in str(self):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    with caplog.at_level(logging.WARNING):
        assert colab.use_drive_cache(mount_point=str(fake_colab / "drive")) is None
    assert "Read-only file system" in caplog.text and "models stay on this machine" in caplog.text


# -- methods.compare (items 12 and 14) ---------------------------------------------------------


@pytest.mark.parametrize("size", [True, 2.5, "5"])
def test_twin_measures_refuses_a_test_size_that_is_not_a_whole_number(size):
    with pytest.raises(ValueError, match=r"test_size must lie in \[1, 500\] \(a whole number"):
        twin_measures(get_preset("ci"), "cpu", test_size=size)


def _found(boxes: list[list[float]]) -> DatasetMaps:
    n = len(boxes)
    maps = torch.zeros(n, SIZE, SIZE)
    maps[:, 4:12, 4:20] = 1
    return DatasetMaps(logits=torch.eye(n), maps=maps, classes=torch.arange(n), labels=torch.arange(n),
                       boxes=torch.tensor(boxes))


def test_localization_on_a_dataset_without_boxes_says_to_use_one_with_boxes():
    nan = float("nan")
    with pytest.raises(ValueError, match=r"no ground-truth boxes \(Imagenette's are all NaN\).*'pets'") as err:
        localization_report(_found([[nan] * 4, [nan] * 4]), "imagenette")
    assert "drop the images" not in str(err.value)


def test_localization_with_some_boxes_missing_gives_advice_that_works():
    found = _found([[4.0, 4, 20, 12], [float("nan")] * 4, [4.0, 4, 20, 12]])
    with pytest.raises(ValueError, match=r"1 of the 3 ground-truth boxes are missing \(NaN\).*found.subset"):
        localization_report(found, "some")
    report = localization_report(found.subset(~found.boxes.isnan().any(dim=1)), "some")  # the advice
    assert report.row()["top1_loc"] == 1.0 and len(report.boxes) == 2
