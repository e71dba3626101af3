"""The test run's ordering plugin (scripts/pytest_order.py): a notebook's cells stay together, in
order, and the longest work starts first."""

from __future__ import annotations

from types import SimpleNamespace

from scripts import pytest_order


def _items(*nodeids: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(nodeid=n) for n in nodeids]


def test_notebooks_start_first_longest_first_then_slow_tests_then_the_rest_in_order():
    items = _items(
        "tests/test_a.py::test_quick",
        "notebooks/04_from_score_to_map.ipynb::Cell 0",
        "tests/test_zoo.py::test_two_processes_train_once",
        "notebooks/03_training_on_a_gpu.ipynb::Cell 0",
        "notebooks/04_from_score_to_map.ipynb::Cell 1",
        "tests/test_b.py::test_quick",
        "notebooks/03_training_on_a_gpu.ipynb::Cell 1",
        "notebooks/99_new_chapter.ipynb::Cell 0",
    )
    pytest_order.pytest_collection_modifyitems(items)
    assert [i.nodeid for i in items] == [
        "notebooks/03_training_on_a_gpu.ipynb::Cell 0",
        "notebooks/03_training_on_a_gpu.ipynb::Cell 1",
        "notebooks/04_from_score_to_map.ipynb::Cell 0",
        "notebooks/04_from_score_to_map.ipynb::Cell 1",
        "notebooks/99_new_chapter.ipynb::Cell 0",  # unlisted: after the listed ones
        "tests/test_zoo.py::test_two_processes_train_once",
        "tests/test_a.py::test_quick",
        "tests/test_b.py::test_quick",
    ]


def test_a_notebook_is_one_unit_of_work_and_every_package_test_its_own():
    scope = pytest_order.scope_of
    assert scope("notebooks/03_training_on_a_gpu.ipynb::Cell 4") == scope("notebooks/03_training_on_a_gpu.ipynb::Cell 9")
    assert scope("notebooks/03_training_on_a_gpu.ipynb::Cell 4") != scope("notebooks/04_from_score_to_map.ipynb::Cell 4")
    assert scope("tests/test_zoo.py::test_one") != scope("tests/test_zoo.py::test_two")


def test_every_slow_test_prefix_names_a_test_file_that_exists():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for prefix in pytest_order.SLOW_TESTS:
        assert (root / prefix.split("::")[0]).is_file(), prefix
