"""The main-path measure of issue 29 (scripts/check_notebooks.py): what it counts and what it leaves out."""

from __future__ import annotations

import json

from scripts.check_notebooks import BUDGET, budget_report, main_path


def markdown(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code(text: str, tags: tuple[str, ...] = (), outputs: tuple[dict, ...] = ()) -> dict:
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": text, "outputs": list(outputs)}


def test_details_math_fenced_code_and_link_targets_are_not_prose():
    cells = [markdown("One two.\n<details><summary>Hint</summary>\nfour five six\n</details>\n"
                      "$$a b c$$ and $d$ [link](https://example.org/many/words/here)\n```python\nx y z\n```")]
    assert main_path(cells)["words"] == 4  # One, two, and, link


def test_folded_code_is_not_shown_and_the_exercises_end_the_main_path():
    cells = [code("a = 1\n\nb = 2\n"), code("plot()\nmore()\n", tags=("hide-input",)),
             markdown("| a | b |\n|---|---|\n| 1 | 2 |"), markdown("## Exercises\n\nmany words here"),
             code("not counted\n")]
    assert main_path(cells) == {"words": 2, "tables": 1, "code_lines": 2, "figures": 0}  # a, b


def test_tables_and_figures_in_outputs_count():
    out = {"output_type": "display_data", "data": {"text/markdown": "| x |\n|---|\n| 1 |", "image/jpeg": "..."}}
    html = {"output_type": "execute_result", "data": {"text/html": "<table><tr><td>1</td></tr></table>"}}
    assert main_path([code("show()", outputs=(out, html))]) == {"words": 0, "tables": 2, "code_lines": 1,
                                                                "figures": 1}


def test_the_report_names_each_chapter_over_its_budget(tmp_path):
    words = " ".join(["word"] * (BUDGET["words_per_chapter"] + 1))
    tables = "\n\n".join(["| a |\n|---|\n| 1 |"] * (BUDGET["tables_per_chapter"] + 1))
    for name, cells in (("01_long", [markdown(words)]), ("02_tables", [markdown(tables)]), ("03_fine", [markdown("ok")])):
        (tmp_path / f"{name}.ipynb").write_text(json.dumps({"cells": cells}))
    table, over = budget_report(sorted(tmp_path.glob("*.ipynb")))
    assert over == [f"01_long: {BUDGET['words_per_chapter'] + 1} prose words (budget {BUDGET['words_per_chapter']})",
                    f"02_tables: {BUDGET['tables_per_chapter'] + 1} tables (budget {BUDGET['tables_per_chapter']})"]
    assert "| 03_fine | 1 | 0 | 0 | 0 |" in table


def test_the_quick_start_shows_at_most_15_lines_of_code():
    """Issue 29: a real photograph to a real CAM in at most 15 lines (set-up and checks folded)."""
    from pathlib import Path

    cells = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "00_quick_start.ipynb").read_text())["cells"]
    assert 0 < main_path(cells)["code_lines"] <= 15


def test_the_conventions_check_fails_when_a_chapter_is_over_the_budget(tmp_path, monkeypatch, capsys):
    """The test command runs scripts/check_notebooks.py: a chapter over the budget fails it."""
    import scripts.check_notebooks as check

    (tmp_path / "notebooks").mkdir()
    words = " ".join(["word"] * (BUDGET["words_per_chapter"] + 1))
    (tmp_path / "notebooks" / "01_long.ipynb").write_text(json.dumps({"cells": [markdown(words)]}))
    (tmp_path / "_toc.yml").write_text("- file: notebooks/01_long\n")
    monkeypatch.setattr(check, "ROOT", tmp_path)
    monkeypatch.setattr(check, "problems_of", lambda path, toc: [])  # only the budget is under test
    assert check.main([]) == 1
    assert f"01_long: {BUDGET['words_per_chapter'] + 1} prose words" in capsys.readouterr().out
    (tmp_path / "notebooks" / "01_long.ipynb").write_text(json.dumps({"cells": [markdown("short")]}))
    assert check.main([]) == 0
