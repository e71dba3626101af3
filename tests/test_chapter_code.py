"""The chapters write out the code they teach, and it is the package's code.

Chapter 2 defines ``BuildingBlock`` and ``ResNet18B`` in code cells, chapter 5 the CAM kernel
``class_activation_maps``, chapter 7 the paper's box rule ``box_from_cam`` (d2l's ``#@save`` in
the other direction: the book's copy is for reading, the package's for use). The duplication is
intended and guarded here: the chapter's definition and the package's (``inspect.getsource``)
must have the same syntax tree, docstrings left out, so the chapter may shorten a docstring,
comment differently or break lines elsewhere, and nothing else.
Change one token on either side and these tests fail, as ``test_one_changed_token_*`` shows.
"""

from __future__ import annotations

import ast
import copy
import difflib
import inspect
import io
import json
import keyword
import sys
import textwrap
import tokenize
from pathlib import Path

import pytest

from cam_tutorial.boxes import box_from_cam
from cam_tutorial.cam import class_activation_maps
from cam_tutorial.models import BuildingBlock, ResNet18B

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHAPTER_CODE = [
    ("02_building_resnet18b.ipynb", BuildingBlock),
    ("02_building_resnet18b.ipynb", ResNet18B),
    ("05_computing_cams.ipynb", class_activation_maps),
    ("07_from_cams_to_boxes.ipynb", box_from_cam),
]
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# One-token edits of operators and keywords that keep the code valid Python.
SWAPPED = {"+": "-", "-": "+", "*": "/", "/": "*", "<": ">", ">": "<", "==": "!=", "and": "or", "or": "and",
           "True": "False", "False": "True", "None": "True"}


def _is_docstring(statement: ast.stmt) -> bool:
    return (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str))


def without_docstrings(node: ast.AST) -> ast.AST:
    """A copy of ``node`` with the docstring of every class and function in it removed."""
    node = copy.deepcopy(node)
    for sub in ast.walk(node):
        if isinstance(sub, DEFINITIONS) and sub.body and _is_docstring(sub.body[0]):
            sub.body = sub.body[1:]
    return node


def definition(source: str, name: str) -> ast.AST | None:
    """The top-level class or function ``name`` defined in ``source``, or None."""
    found = [node for node in ast.parse(source).body if isinstance(node, DEFINITIONS) and node.name == name]
    return found[-1] if found else None


def syntax(source: str, name: str) -> str:
    """``ast.dump`` of the definition of ``name`` in ``source``, docstrings removed."""
    node = definition(source, name)
    assert node is not None, f"no top-level definition of {name} in the source"
    return ast.dump(without_docstrings(node))


def cell_source(cell: dict) -> str:
    # IPython magics and shell lines (at the start of a line) are not Python: blank them.
    return "\n".join("" if line.startswith(("%", "!")) else line for line in "".join(cell["source"]).splitlines())


def chapter_cell(notebook: str, name: str) -> tuple[str, str]:
    """(cell id, source) of the one code cell of ``notebook`` that defines ``name`` at top level."""
    cells = json.loads((NOTEBOOKS / notebook).read_text(encoding="utf-8"))["cells"]
    found = [(cell["id"], cell_source(cell)) for cell in cells
             if cell["cell_type"] == "code" and definition(cell_source(cell), name) is not None]
    assert len(found) == 1, f"{notebook}: {len(found)} code cells define {name}; the chapter writes it once"
    return found[0]


def still_matches(edited: str, name: str, expected: str) -> bool:
    """Whether ``edited`` still defines ``name`` with the syntax tree ``expected``."""
    try:
        node = definition(edited, name)
    except SyntaxError:
        return False  # code that no longer parses matches nothing
    return node is not None and ast.dump(without_docstrings(node)) == expected


def package_source(obj: object) -> str:
    return textwrap.dedent(inspect.getsource(obj))


def one_token_changes(source: str, name: str) -> list[str]:
    """Copies of ``source``, each with one token of the definition of ``name`` changed: a name or
    a number, a string other than a docstring, or an operator or a keyword swapped for another."""
    node = definition(source, name)
    docstrings = {(sub.body[0].lineno, sub.body[0].col_offset) for sub in ast.walk(node)
                  if isinstance(sub, DEFINITIONS) and sub.body and _is_docstring(sub.body[0])}
    lines = source.splitlines(keepends=True)
    changed = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if not node.lineno <= token.start[0] <= node.end_lineno or token.start in docstrings:
            continue
        text = token.string
        if token.type == tokenize.NAME and not keyword.iskeyword(text):
            new = text + "_"
        elif token.type == tokenize.NUMBER:
            new = text + "1"
        elif token.type == tokenize.STRING:
            quote = min(i for i in (text.find('"'), text.find("'")) if i >= 0)
            new = text[:quote + 1] + "~" + text[quote + 1:]
        elif text in SWAPPED and token.type in (tokenize.OP, tokenize.NAME):
            new = SWAPPED[text]
        else:
            continue
        (row, col), (end_row, end_col) = token.start, token.end
        assert row == end_row, "a one-line token"
        edited = lines[:]
        edited[row - 1] = edited[row - 1][:col] + new + edited[row - 1][end_col:]
        changed.append("".join(edited))
    return changed


@pytest.mark.parametrize("notebook, obj", CHAPTER_CODE, ids=lambda x: getattr(x, "__name__", x))
def test_the_chapter_writes_the_package_code(notebook: str, obj: object) -> None:
    name = obj.__name__
    cell_id, chapter = chapter_cell(notebook, name)
    package = package_source(obj)
    if syntax(chapter, name) != syntax(package, name):
        diff = difflib.unified_diff(
            ast.unparse(without_docstrings(definition(package, name))).splitlines(),
            ast.unparse(without_docstrings(definition(chapter, name))).splitlines(),
            f"{inspect.getsourcefile(obj)} ({name})", f"{notebook}, cell {cell_id}", lineterm="")
        pytest.fail(f"{notebook}'s {name} (cell {cell_id}) is not the package's code; change both "
                    "together:\n" + "\n".join(diff))


@pytest.mark.parametrize("notebook, obj", CHAPTER_CODE, ids=lambda x: getattr(x, "__name__", x))
def test_one_changed_token_on_either_side_breaks_the_match(notebook: str, obj: object) -> None:
    name = obj.__name__
    _, chapter = chapter_cell(notebook, name)
    package = package_source(obj)
    expected = syntax(package, name)
    for side in (chapter, package):
        edits = one_token_changes(side, name)
        assert len(edits) > 50, "every name, number, string, operator and constant of the definition, once"
        unnoticed = [edited for edited in edits if still_matches(edited, name, expected)]
        assert unnoticed == []


def test_docstrings_comments_and_line_breaks_do_not_count() -> None:
    package = package_source(BuildingBlock)
    reflowed = package.replace('"""The two-layer', '"""A shorter docstring.\n\n    The two-layer', 1).replace(
        "        out = self.bn2(self.conv2(out))",
        "        # a comment\n        out = self.bn2(\n            self.conv2(out))")
    assert reflowed != package
    assert syntax(reflowed, "BuildingBlock") == syntax(package, "BuildingBlock")


def test_a_copy_of_chapter_2_with_the_stride_edit_undone_fails(tmp_path: Path, monkeypatch) -> None:
    """The check end to end: the chapter's conv5_1 given ResNet-18's stride 2 is caught, with a diff."""
    original = (NOTEBOOKS / "02_building_resnet18b.ipynb").read_text(encoding="utf-8")
    edited = original.replace("conv5_1=BuildingBlock(4 * w, 8 * w, 1, shortcut)",
                              "conv5_1=BuildingBlock(4 * w, 8 * w, 2, shortcut)")
    assert edited != original
    (tmp_path / "02_building_resnet18b.ipynb").write_text(edited, encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "NOTEBOOKS", tmp_path)
    caught = r"(?s)is not the package.s code.*\+.*conv5_1=BuildingBlock\(4 \* w, 8 \* w, 2"
    with pytest.raises(pytest.fail.Exception, match=caught):
        test_the_chapter_writes_the_package_code("02_building_resnet18b.ipynb", ResNet18B)
