"""A pytest plugin for the one test run of ``scripts/test.sh``, where package tests and notebooks
share the two test processes (``pytest -p scripts.pytest_order -n 2 notebooks tests``).

Every cell of a notebook needs the kernel its earlier cells ran in, so a notebook is one unit of
work, sent whole to one process; each package test is a unit of its own. Units start longest
first: the notebooks (chapter 3 trains, 1 and 2 evaluate or train several models), then the
package tests known to be slow, then the rest, so that the short tests fill whichever process
finishes first and neither waits long at the end. Run as two stages (package tests, then
notebooks), the processes waited for each other at the end of each stage.

(xdist's own ``--dist loadgroup`` does not group here: with pytest 9 it cannot rename the tests it
groups.)
"""

from __future__ import annotations

import pytest

#: Notebooks, longest first under the ``ci`` preset (measured on 2 CPU cores). Unlisted notebooks
#: start after these, in the order collected.
NOTEBOOKS_LONGEST_FIRST = ("03_", "deeper_07_protocols", "08_", "deeper_01_", "deeper_06_fair", "01_",
                           "deeper_05_photos", "deeper_07_released", "deeper_05_lab", "07_", "04_", "05_",
                           "deeper_08_other_methods", "deeper_06_parts", "deeper_03_", "deeper_08_other_models",
                           "06_", "02_", "deeper_02_sizes", "00_", "deeper_02_shortcuts")
#: Package tests that take 5 s or more (prefixes of node ids), longest first; they start right
#: after the notebooks. Only the order depends on this list, never what runs.
SLOW_TESTS = (
    "tests/test_zoo.py::test_a_shipped_model_scores_its_stored_test_accuracy_on_the_current_test_split[cpu-",
    "tests/test_zoo.py::test_two_processes_train_once",
    "tests/test_check_pages.py",
    "tests/test_train.py::test_killed_run_resumes_to_the_same_weights",
    "tests/test_figure_metrics.py::test_the_execute_scripts_kernel_stores_measurements_in_every_figure",
)


def _notebook(nodeid: str) -> str | None:
    path = nodeid.partition("::")[0]
    return path if path.endswith(".ipynb") else None


def _rank(item: pytest.Item) -> tuple[int, int]:
    """Where an item starts: notebooks first (longest first), then slow tests, then the rest."""
    notebook = _notebook(item.nodeid)
    if notebook is not None:
        name = notebook.rsplit("/", 1)[-1]
        return 0, next((i for i, p in enumerate(NOTEBOOKS_LONGEST_FIRST) if name.startswith(p)),
                       len(NOTEBOOKS_LONGEST_FIRST))
    slow = next((i for i, p in enumerate(SLOW_TESTS) if item.nodeid.startswith(p)), None)
    return (1, slow) if slow is not None else (2, 0)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort: a notebook's cells, and tests of the same rank, keep their order.
    items.sort(key=_rank)


def scope_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its notebook for a notebook's cell, else itself."""
    return _notebook(nodeid) or nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    from xdist.scheduler import LoadScopeScheduling

    class NotebookScheduling(LoadScopeScheduling):
        """A notebook's cells are one unit; every other test is a unit of its own."""

        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    config.option.loadscopereorder = False  # keep the order set above
    return NotebookScheduling(config, log)
