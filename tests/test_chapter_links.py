"""Each public function's and class's docstring names the chapters that use it (scripts/chapter_links.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from scripts.chapter_links import NO_CHAPTER, chapter_code, rewrite, usage_line

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_docstring_names_the_chapters_whose_code_uses_it():
    code = chapter_code()
    wrong = []
    for path in sorted((ROOT / "cam_tutorial").rglob("*.py")):
        _, changed = rewrite(path.read_text(), code)
        wrong += [f"{path.relative_to(ROOT)}: {line}" for line in changed]
    assert not wrong, ("usage lines missing or wrong (run `python -m scripts.chapter_links --write`):\n"
                       + "\n".join(wrong[:20]))


def test_the_usage_line_lists_chapters_in_order_and_matches_whole_words():
    code = {"1": "from m import cam", "5": "x = cams(images)", "7": "cam(x)", "the quick start": "cam(y)"}
    assert usage_line("cam", code) == "Used in chapters 1 and 7, and the quick start."
    assert usage_line("cams", code) == "Used in chapter 5."
    assert usage_line("nothing", code) == NO_CHAPTER


def test_the_going_deeper_pages_share_one_label_and_leave_the_quick_start_alone(tmp_path, monkeypatch):
    import json

    import scripts.chapter_links as links

    (tmp_path / "notebooks").mkdir()
    for stem, source in (("00_quick_start", "start()"), ("06_gap", "pool()"), ("deeper_06_a", "tol()"),
                         ("deeper_07_b", "calib()")):
        cells = [{"cell_type": "code", "source": source, "metadata": {}, "outputs": []}]
        (tmp_path / "notebooks" / f"{stem}.ipynb").write_text(json.dumps({"cells": cells}))
    monkeypatch.setattr(links, "ROOT", tmp_path)
    code = chapter_code()
    assert usage_line("start", code) == "Used in the quick start."
    assert usage_line("calib", code) == usage_line("tol", code) == "Used in the appendix."
    assert usage_line("pool", code) == "Used in chapter 6."


def test_rewrite_ends_the_first_paragraph_with_the_line_and_keeps_examples_intact():
    source = '''__all__ = ["one", "two", "Three"]


def one():
    """Short."""


def two():
    """Summary over
    two lines.

    Example:
        >>> two()
    """


class Three:
    """Summary.

    Used in chapter 9.
    """
'''
    new, changed = rewrite(source, {"2": "one() two() Three()"})
    assert len(changed) == 3
    tree = ast.parse(new)
    docs = {n.name: ast.get_docstring(n) for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert docs["one"] == "Short.\nUsed in chapter 2."
    assert docs["two"] == "Summary over\ntwo lines.\nUsed in chapter 2.\n\nExample:\n    >>> two()"
    assert docs["Three"] == "Summary.\n\nUsed in chapter 2."
    assert rewrite(new, {"2": "one() two() Three()"})[1] == []  # once right, nothing changes
    assert '    """Short.\n    Used in chapter 2."""\n' in new  # a one-line docstring grows by one line


def test_a_line_that_ends_the_docstring_keeps_its_closing_quotes_when_it_changes():
    source = '__all__ = ["one"]\n\n\ndef one():\n    """Short.\n    Used in chapter 2."""\n'
    new, changed = rewrite(source, {"3": "one()", "the quick start": "one()"})
    assert changed == ["one: Used in chapter 3, and the quick start."]
    assert '    """Short.\n    Used in chapter 3, and the quick start."""\n' in new
    ast.parse(new)
