"""The package's shape, checked: small units, no private names across modules, no preset branches.

The limits come from issue 16: no function over 80 lines and no class over 150 lines in
``cam_tutorial`` (docstrings not counted); no ``from .x import _private`` nor ``module._private``
across modules; no notebook code cell that branches on a preset's name (sizes that differ per
preset are :class:`cam_tutorial.config.Preset` fields, or a chapter's own sizes in ``preset.chapter``).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cam_tutorial"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 150


def _docstring_lines(node: ast.AST) -> set[int]:
    lines: set[int] = set()
    for sub in ast.walk(node):
        body = getattr(sub, "body", None)
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                lines |= set(range(first.lineno, first.end_lineno + 1))
    return lines


def code_lines(node: ast.AST) -> int:
    """Lines a function or class spans, its own and its nested docstrings excluded."""
    return len(set(range(node.lineno, node.end_lineno + 1)) - _docstring_lines(node))


def _units(tree: ast.Module, module: str):
    """(qualified name, node) of every function and class, nested ones included."""
    stack = [(module, node) for node in tree.body]
    while stack:
        prefix, node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}.{node.name}"
            yield name, node
            stack.extend((name, child) for child in node.body)


def _modules() -> list[tuple[str, ast.Module]]:
    return [(path.stem, ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(PACKAGE.glob("*.py"))]


def oversized_units() -> list[str]:
    """Functions over 80 lines and classes over 150, as ``module.qualname (lines)``."""
    found = []
    for module, tree in _modules():
        for name, node in _units(tree, module):
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if code_lines(node) > limit:
                found.append(f"{name} ({code_lines(node)} lines, limit {limit})")
    return found


def private_imports() -> list[str]:
    """``from <package module> import _x`` and ``<package module>._x`` uses, as ``module:line name``."""
    package_modules = {path.stem for path in PACKAGE.glob("*.py")}
    found = []
    for module, tree in _modules():
        imported_modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = (node.module or "").split(".")[-1]
                inside = node.level > 0 or (node.module or "").startswith("cam_tutorial")
                for alias in node.names:
                    if inside and alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{module}:{node.lineno} {source}.{alias.name}")
                    if inside and alias.name in package_modules:
                        imported_modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("cam_tutorial."):
                        imported_modules.add(alias.asname or alias.name.split(".")[-1])
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in imported_modules and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.append(f"{module}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def _mentions_preset_name(node: ast.AST) -> bool:
    return any(isinstance(sub, ast.Attribute) and sub.attr == "name" and isinstance(sub.value, ast.Name)
               and sub.value.id == "preset" for sub in ast.walk(node))


def preset_name_branches(source: str) -> list[str]:
    """Lines of notebook code that branch on ``preset.name``: a comparison or a lookup keyed by it."""
    # IPython magics and shell lines (at the start of a line) are not Python: blank them.
    lines = ["" if line.startswith(("%", "!")) else line for line in source.splitlines()]
    tree = ast.parse("\n".join(lines))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and _mentions_preset_name(node):
            found.append(f"line {node.lineno}: comparison with preset.name")
        elif isinstance(node, ast.Subscript) and _mentions_preset_name(node.slice):
            found.append(f"line {node.lineno}: lookup keyed by preset.name")
    return found


def test_checker_sees_what_it_should() -> None:
    tree = ast.parse("def f():\n    '''doc\n    doc'''\n" + "    x = 1\n" * 3)
    assert code_lines(tree.body[0]) == 4
    assert preset_name_branches('n = 8 if preset.name == "ci" else 16')
    assert preset_name_branches('steps = {"ci": 2}[preset.name]')
    assert not preset_name_branches('print(f"preset {preset.name!r}")')


def test_no_oversized_function_or_class() -> None:
    assert oversized_units() == [], "split these into smaller functions or classes"


def test_no_private_name_crosses_a_module() -> None:
    assert private_imports() == [], "give shared helpers a public name in one module"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_notebook_branches_on_a_preset_name(path: Path) -> None:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = {i: preset_name_branches("".join(cell["source"])) for i, cell in enumerate(cells)
             if cell["cell_type"] == "code"}
    found = {i: hits for i, hits in found.items() if hits}
    assert found == {}, "make the size a Preset or ChapterSizes field (cam_tutorial/config.py) instead"


def test_the_readme_lists_every_module() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    core = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    missing = sorted(m for m in core if f"`cam_tutorial.{m}`" not in readme)
    rooms = {path.parent.name: sorted(p.stem for p in path.parent.glob("*.py") if p.stem != "__init__")
             for path in PACKAGE.glob("*/__init__.py")}
    for room, modules in rooms.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| `cam_tutorial.{room}` |")), "")
        missing += [f"{room}.{m}" for m in modules if f"`{m}`" not in row]
    assert missing == [], "add each to the module tables (the core's, or its room's row) in README.md"


def test_no_test_or_script_edits_sys_path() -> None:
    files = [*ROOT.glob("tests/*.py"), *ROOT.glob("scripts/*.py"), *ROOT.glob("benchmarks/*.py")]
    edits = sorted(str(p.relative_to(ROOT)) for p in files
                   if "sys.path.insert" in p.read_text(encoding="utf-8") and p.name != "test_architecture.py")
    assert edits == [], "import through the package (python -m scripts.x; pytest's pythonpath) instead"


def package_imports(path: Path) -> set[str]:
    """The ``cam_tutorial`` modules a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cam_tutorial"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("cam_tutorial")}
    return found


def test_the_cam_module_is_one_screen_of_reading_on_configuration_and_checks():
    """Issue 27: the CAM module a learner reads whole, 300 lines at most, docstrings included,
    importing nothing from the package but configuration and input checks."""
    cam = PACKAGE / "cam.py"
    assert len(cam.read_text(encoding="utf-8").splitlines()) <= 300
    assert package_imports(cam) <= {"cam_tutorial.config", "cam_tutorial.checks"}


#: Modules whose docstrings show runnable examples; the test command runs every one of them
#: (``--doctest-modules cam_tutorial``). These had a ``doctest.testmod`` test each before.
MODULES_WITH_EXAMPLES = (
    "boxes", "cam", "checks", "coverage", "metrics", "released_code", "viz", "zoo", "anymodel.extractor",
    "anymodel.heads", "methods.compare", "methods.saliency", "methods.sanity", "real.efficientnet_lite",
    "real.generic", "real.concepts", "real.photos", "real.pretrained", "real.realcam", "book.widgets", "lab",
    "lab.geometry", "lab.pixels", "lab.render", "lab.dataset",
)


def test_the_modules_keep_their_runnable_examples() -> None:
    import doctest
    import importlib

    finder = doctest.DocTestFinder()
    missing = [name for name in MODULES_WITH_EXAMPLES
               if not any(t.examples for t in finder.find(importlib.import_module(f"cam_tutorial.{name}")))]
    assert missing == [], "these modules lost their docstring examples"
    lab_examples = sum(len(t.examples) for name in MODULES_WITH_EXAMPLES if name.startswith("lab")
                       for t in finder.find(importlib.import_module(f"cam_tutorial.{name}")))
    assert lab_examples >= 8  # what test_lab_fresh_epochs required of the lab's modules
