"""Tests of the notebook scripts: the measured time line, and the conventions check that enforces it."""

from __future__ import annotations

import doctest
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
from scripts import execute_notebooks
from scripts.book_settings import colab_url
from scripts.check_notebooks import problems_of
from scripts.execute_notebooks import set_time_line, time_line
from scripts.smoke_gpu_shape import RECORDER, ClaimRecorder, Outcome, record_asserts, report


def test_doctests_pass():
    result = doctest.testmod(execute_notebooks)
    assert result.attempted > 0 and result.failed == 0


def test_time_line_lists_presets_in_order_and_rounds_long_runs_to_minutes():
    line = time_line({"gpu": {"seconds": 185.0, "machine": "NVIDIA H200"},
                      "cpu": {"seconds": 42.4, "machine": "2 CPU cores"}})
    assert line == ("**Time:** 42 s under the `cpu` preset on 2 CPU cores (measured when these outputs "
                    "were made); 3 min under the `gpu` preset on NVIDIA H200.")


def test_time_line_needs_a_timing():
    with pytest.raises(ValueError, match="at least one timing"):
        time_line({})


def _notebook(time_text: str, timings: dict | None) -> nbformat.NotebookNode:
    stem = "01_fake"
    badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(stem)})"
    code = new_code_cell("print(1)", execution_count=1, outputs=[new_output("stream", text="1\n")])
    nb = new_notebook(cells=[new_markdown_cell(f"# Fake\n\n{badge}\n\n{time_text}\n"), code,
                             new_markdown_cell("## Summary\n\n- x"), new_markdown_cell("## Exercises\n\n1. y")])
    if timings is not None:
        nb.metadata["cam_tutorial"] = {"timings": timings, "time_note": "Nothing is trained."}
    return nb


def _problems(tmp_path: Path, nb: nbformat.NotebookNode) -> list[str]:
    path = tmp_path / "01_fake.ipynb"
    nbformat.write(nb, path)
    return problems_of(path, "- file: notebooks/01_fake\n")


def test_set_time_line_writes_the_line_that_the_check_accepts(tmp_path):
    nb = _notebook("**Time:** about a minute, typed in by hand.", {"cpu": {"seconds": 7, "machine": "2 CPU cores"}})
    assert any("**Time:** line other than the measured one" in p for p in _problems(tmp_path, nb))
    set_time_line(nb)
    assert "typed in by hand" not in nb.cells[0].source
    assert "7 s under the `cpu` preset on 2 CPU cores" in nb.cells[0].source
    assert nb.cells[0].source.rstrip().endswith("Nothing is trained.")
    assert _problems(tmp_path, nb) == []


def test_the_check_accepts_a_time_line_that_carries_the_gpu_estimate(tmp_path):
    nb = _notebook("**Time:** typed.", {"cpu": {"seconds": 7, "machine": "2 CPU cores"}})
    nb.metadata["cam_tutorial"]["gpu_estimate"] = {"card": "T4", "fresh_minutes": [2.0, 3.0],
                                                   "cached_minutes": [0.5, 0.5]}
    set_time_line(nb)
    assert "estimated" in nb.cells[0].source and "T4" in nb.cells[0].source
    assert _problems(tmp_path, nb) == []


def test_check_flags_a_notebook_without_recorded_timings(tmp_path):
    problems = _problems(tmp_path, _notebook("**Time:** 5 s.", None))
    assert problems == ["records no measured time (metadata cam_tutorial.timings): execute it with "
                        "scripts/execute_notebooks.py"]


def test_a_going_deeper_page_ends_with_a_link_back_to_its_chapter_not_exercises(tmp_path):
    stem = "deeper_06_fake"
    badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(stem)})"
    code = new_code_cell("print(1)", execution_count=1, outputs=[new_output("stream", text="1\n")])
    nb = new_notebook(cells=[new_markdown_cell(f"# Fake\n\n{badge}\n\n**Time:** typed.\n"), code,
                             new_markdown_cell("## Summary\n\n- x")])
    nb.metadata["cam_tutorial"] = {"timings": {"cpu": {"seconds": 7, "machine": "2 CPU cores"}}}
    set_time_line(nb)
    path = tmp_path / f"{stem}.ipynb"
    nbformat.write(nb, path)
    toc = f"- file: notebooks/{stem}\n"
    assert problems_of(path, toc) == ["does not end with a link back to chapter 6, e.g. "
                                      "[Back to chapter 6](06_....ipynb)"]
    nb.cells[-1].source += "\n\n[Back to chapter 6](06_gap_vs_gmp.ipynb)"
    nbformat.write(nb, path)
    assert problems_of(path, toc) == []
    bad = tmp_path / "deeper_fake.ipynb"
    nbformat.write(nb, bad)
    assert any("does not say its chapter" in p for p in problems_of(bad, "notebooks/deeper_fake"))


def test_set_time_line_refuses_a_first_cell_without_a_time_line():
    nb = _notebook("no time here", {"cpu": {"seconds": 7, "machine": "2 CPU cores"}})
    with pytest.raises(ValueError, match=r"no '\*\*Time:\*\*' line"):
        set_time_line(nb)


def _widget(state: dict, model_id: str, visibility: str | None = None, children: tuple = (),
            outputs: tuple = ()) -> None:
    layout = f"{model_id[:-1]}f"
    state[layout] = {"model_name": "LayoutModel", "state": {"visibility": visibility, "display": None}}
    state[model_id] = {"model_name": "OutputModel" if outputs else "HBoxModel", "state": {
        "layout": f"IPY_MODEL_{layout}", "children": [f"IPY_MODEL_{c}" for c in children],
        "outputs": [{"data": {execute_notebooks.WIDGET_VIEW: {"model_id": o}}} for o in outputs]}}


def test_drop_hidden_widgets_removes_closed_bars_and_the_state_only_they_used():
    ids = {name: f"{i:031d}a" for i, name in enumerate(["bar", "bar_part", "panel", "inner", "shown", "stray"], 1)}
    state: dict = {}
    _widget(state, ids["bar_part"])
    _widget(state, ids["bar"], visibility="hidden", children=(ids["bar_part"],))   # a closed leave=False bar
    _widget(state, ids["inner"])
    _widget(state, ids["panel"], outputs=(ids["inner"],))                          # an Output widget's view
    _widget(state, ids["shown"], children=(ids["panel"],))
    _widget(state, ids["stray"])                                                   # no output shows it

    def view(model_id):
        return new_output("display_data", data={execute_notebooks.WIDGET_VIEW: {"model_id": model_id},
                                                "text/plain": "epoch 1/6:   0%|"})
    cell = new_code_cell("run()", execution_count=1,
                         outputs=[view(ids["bar"]), new_output("stream", text="done\n"), view(ids["shown"])])
    nb = new_notebook(cells=[cell])
    nb.metadata["widgets"] = {execute_notebooks.WIDGET_STATE: {"state": state, "version_major": 2}}
    assert execute_notebooks.drop_hidden_widgets(nb) == 1
    assert [o.get("text") or o["data"][execute_notebooks.WIDGET_VIEW]["model_id"] for o in cell.outputs] == \
        ["done\n", ids["shown"]]
    kept = set(nb.metadata["widgets"][execute_notebooks.WIDGET_STATE]["state"])
    assert kept == {ids["shown"], ids["panel"], ids["inner"]} | {f"{ids[k][:-1]}f" for k in ("shown", "panel", "inner")}
    assert execute_notebooks.drop_hidden_widgets(new_notebook(cells=[new_code_cell("x")])) == 0


def _run_recorded(source: str) -> ClaimRecorder:
    """Execute ``source`` with its asserts rewritten, as the smoke run does in cell 7."""
    claims = ClaimRecorder()
    exec(record_asserts(source, 7), {RECORDER: claims})
    return claims


def test_smoke_run_records_asserts_instead_of_raising():
    source = ("def check(v):\n"
              "    assert v > 0, f'not positive: {v}'\n"
              "    return v\n"
              "total = 0\n"
              "for v in (1, -2):\n"
              "    total += check(v)\n"
              "assert total == -1\n"
              "assert ('τ ≥ 0'\n"
              "        == 'other'), 'two lines'\n")
    rewritten = record_asserts(source, 7)
    assert "assert" not in rewritten and rewritten.count("\n") == source.count("\n")
    records = _run_recorded(source).records  # the failing ones do not raise
    assert [(r["cell"], r["line"], r.get("passed"), r.get("message")) for r in records] == [
        (7, 2, True, None), (7, 2, False, None), (7, 2, None, "not positive: -2"),
        (7, 7, True, None), (7, 8, False, None), (7, 8, None, "two lines")]
    assert records[0]["test"] == "v > 0" and records[4]["test"] == "'τ ≥ 0' == 'other'"


def test_smoke_run_leaves_magics_alone_and_lets_other_exceptions_through():
    magic = "%matplotlib inline\n!pip list\nassert False\n"
    assert record_asserts(magic, 0) == magic
    with pytest.raises(ZeroDivisionError):  # not an assert: a real failure, surfaced
        _run_recorded("assert True\nx = 1 / 0\n")
    with pytest.raises(NameError):  # the condition itself fails to evaluate
        _run_recorded("assert undefined_name > 0, 'never evaluated'\n")
    with pytest.raises(AssertionError):  # checks that raise by themselves stay checks
        _run_recorded("if 1 > 2:\n    pass\nelse:\n    raise AssertionError('a raise is no assert')\n")


def test_smoke_run_counts_unmet_asserts_per_statement():
    outcome = Outcome(seconds=1.0, records=_run_recorded(
        "for v in range(3):\n    assert v < 2, v\nassert True\n").records)
    assert {key: entry["evaluated"] for key, entry in outcome.asserts().items()} == {(7, 2): 3, (7, 3): 1}
    assert list(outcome.unmet()) == [(7, 2)] and outcome.unmet()[(7, 2)]["messages"] == ["2"]
    lines = report("07_x.ipynb", outcome)
    assert lines[0].startswith("pass 07_x.ipynb") and "2 asserts evaluated (4 times), 1 unmet" in lines[0]
    assert lines[1] == "     unmet: cell 7 line 2: assert v < 2 (1 of 3 times)  -- 2"


@pytest.mark.skipif(sys.version_info[:2] == (3, 13), reason="this Python is 3.13: the check would build its venv")
def test_colab_check_without_python_313_says_what_to_install_and_builds_nothing(tmp_path):
    # Only `dirname` on PATH, no pyenv under HOME, and a Python of another version named: the
    # check must refuse before it makes a venv (on any machine, whatever Pythons it has).
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "dirname").symlink_to(shutil.which("dirname"))
    venv = tmp_path / "venv"
    env = {"PATH": str(tools), "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "no-pyenv"),
           "COLAB_PYTHON": sys.executable, "COLAB_VENV": str(venv)}
    done = subprocess.run([shutil.which("bash"), str(ROOT / "scripts" / "colab_check.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "needs Python 3.13" in done.stderr and "pyenv install 3.13" in done.stderr
    assert "COLAB_PYTHON=/path/to/python3.13" in done.stderr
    assert not venv.exists()


def test_ship_models_loads_a_shipped_model_and_prints_its_accuracy(capsys, tmp_path):
    """The maintainers' tool (moved out of the package's zoo): without --ship it only loads or trains."""
    from scripts.ship_models import main

    assert main(["resnet18b_gap", "--preset", "ci", "--cache-dir", str(tmp_path)]) == 0
    assert re.search(r"resnet18b_gap\s+package\s+val acc 0\.\d{3}\s+test acc 0\.942", capsys.readouterr().out)
