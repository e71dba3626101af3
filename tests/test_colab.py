"""The Colab set-up (issue 13): Drive mounted and the zoo's cache pointed at it, on Colab only."""

from __future__ import annotations

import sys
import types

import pytest

from cam_tutorial import zoo_cache
from cam_tutorial.book import colab


@pytest.fixture
def fake_colab(monkeypatch, tmp_path):
    """A stand-in ``google.colab`` whose ``drive.mount`` makes ``MyDrive`` appear (or fails)."""
    mounts = []
    drive = types.SimpleNamespace(mount=lambda where: (mounts.append(where), (tmp_path / "drive" / "MyDrive").mkdir(
        parents=True, exist_ok=True)))
    google = types.ModuleType("google")
    module = types.ModuleType("google.colab")
    module.drive = drive  # type: ignore[attr-defined]
    google.colab = module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", module)
    monkeypatch.delenv(zoo_cache.CACHE_ENV, raising=False)
    return types.SimpleNamespace(mounts=mounts, drive=drive, root=tmp_path / "drive")


def test_outside_colab_nothing_happens(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delenv(zoo_cache.CACHE_ENV, raising=False)
    assert not colab.in_colab() and colab.use_drive_cache() is None
    assert zoo_cache.CACHE_ENV not in __import__("os").environ


def test_on_colab_drive_is_mounted_once_and_the_cache_points_at_it(fake_colab, monkeypatch):
    cache = colab.use_drive_cache(mount_point=str(fake_colab.root))
    assert cache == fake_colab.root / "MyDrive" / "cam_tutorial" and cache.is_dir()
    assert zoo_cache.default_cache_dir() == cache and fake_colab.mounts == [str(fake_colab.root)]
    monkeypatch.delenv(zoo_cache.CACHE_ENV)
    colab.use_drive_cache(mount_point=str(fake_colab.root))  # re-running the cell: already mounted
    assert fake_colab.mounts == [str(fake_colab.root)] and zoo_cache.default_cache_dir() == cache


def test_declining_keeps_the_machine_cache(fake_colab):
    assert colab.use_drive_cache(False, mount_point=str(fake_colab.root)) is None
    assert fake_colab.mounts == [] and zoo_cache.default_cache_dir().name == "cam_tutorial"


def test_a_refused_mount_warns_and_goes_on(fake_colab, caplog):
    def refuse(where):
        raise ValueError("mount failed")
    fake_colab.drive.mount = refuse
    assert colab.use_drive_cache(mount_point=str(fake_colab.root)) is None
    assert "could not mount Google Drive (mount failed)" in caplog.text


def test_a_cache_chosen_by_the_reader_is_kept(fake_colab, monkeypatch, tmp_path):
    monkeypatch.setenv(zoo_cache.CACHE_ENV, str(tmp_path / "mine"))
    assert colab.use_drive_cache(mount_point=str(fake_colab.root)) is None
    assert fake_colab.mounts == [] and zoo_cache.default_cache_dir() == tmp_path / "mine"
