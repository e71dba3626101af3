"""The package's size targets (issue 27), measured from the source: nothing is imported or run.

    python -m benchmarks.package_size            # this checkout
    python -m benchmarks.package_size --root DIR # another checkout, to compare before and after

Prints:
* the package's lines, and each room's (the core modules, then each subpackage);
* the reading set: the modules that define ``ResNet18B``, ``class_activation_maps``, ``train`` and
  ``max_box_acc``, plus every package module they import (imports inside functions included, and
  the ``__init__`` of each package on the way), with its lines and the names in their ``__all__``;
* modules over 600 lines, functions over 50 and classes over 150 (docstrings excluded);
* the CAM module's lines and what it imports from the package;
* private names (``_x``) imported across modules, in the package, tests, benchmarks and scripts.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

READING_SET_NAMES = ("ResNet18B", "class_activation_maps", "train", "max_box_acc")
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_CLASS_LINES = 600, 50, 150


def module_name(root: Path, path: Path) -> str:
    name = ".".join(path.relative_to(root).with_suffix("").parts)
    return name.removesuffix(".__init__")


def docstring_lines(node: ast.AST) -> int:
    body = getattr(node, "body", None)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0].end_lineno - body[0].lineno + 1
    return 0


def code_lines(node: ast.AST) -> int:
    """Lines of a function or class, its docstrings (and its methods' ones) excluded."""
    lines = node.end_lineno - node.lineno + 1 - docstring_lines(node)
    for sub in ast.walk(node):
        if sub is not node and isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                and isinstance(node, ast.ClassDef):
            lines -= docstring_lines(sub)
    return lines


def package_imports(tree: ast.AST, modules: dict[str, Path], package: str) -> set[str]:
    """Package modules a module imports, anywhere in it."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else resolve_relative(package, node.level, node.module)
            if base in modules:
                found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
    return found


def resolve_relative(package: str, level: int, module: str) -> str:
    parts = package.split(".")[: len(package.split(".")) - level + 1]
    return ".".join(parts + [module])


def public_names(tree: ast.AST) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
    return []


def private_imports(root: Path) -> list[str]:
    found = []
    for folder in ("cam_tutorial", "tests", "benchmarks", "scripts"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in (
                        "cam_tutorial", "tests", "benchmarks", "scripts"):
                    found += [f"{path.relative_to(root)}:{node.lineno} {node.module}.{a.name}"
                              for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    root = parser.parse_args(argv).root.resolve()
    paths = sorted((root / "cam_tutorial").rglob("*.py"))
    modules = {module_name(root, p): p for p in paths}
    trees = {m: ast.parse(p.read_text()) for m, p in modules.items()}
    lines = {m: len(p.read_text().splitlines()) for m, p in modules.items()}

    print(f"package: {sum(lines.values())} lines in {len(modules)} modules")
    rooms: dict[str, int] = {}
    for m, n in lines.items():
        parts = m.split(".")
        room = "core" if len(parts) == 2 or (len(parts) == 1) else parts[1] + "/"
        rooms[room] = rooms.get(room, 0) + n
    print("  rooms: " + ", ".join(f"{room} {n}" for room, n in sorted(rooms.items(), key=lambda kv: -kv[1])))

    definers = {}
    for m, tree in trees.items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in READING_SET_NAMES:
                definers.setdefault(node.name, m)
    seen: set[str] = set()
    todo = list(definers.values())
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        package = m if modules[m].name == "__init__.py" else m.rpartition(".")[0]
        todo += package_imports(trees[m], modules, package)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i]) in modules]
    names = sum(len(public_names(trees[m])) for m in seen)
    print(f"reading set ({', '.join(f'{k} in {v}' for k, v in definers.items())}): "
          f"{sum(lines[m] for m in seen)} lines in {len(seen)} modules, {names} names in their __all__")
    for m in sorted(seen):
        print(f"  {m:40s} {lines[m]:5d} lines, {len(public_names(trees[m])):3d} in __all__")

    cam = definers.get("class_activation_maps")
    if cam:
        package = cam.rpartition(".")[0]
        print(f"CAM module {cam}: {lines[cam]} lines, imports from the package: "
              f"{sorted(package_imports(trees[cam], modules, package)) or 'nothing'}")

    over = [f"module {m} {n}" for m, n in lines.items() if n > MAX_MODULE_LINES]
    for m, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and code_lines(node) > MAX_FUNCTION_LINES:
                over.append(f"function {m}.{node.name} {code_lines(node)}")
            if isinstance(node, ast.ClassDef) and code_lines(node) > MAX_CLASS_LINES:
                over.append(f"class {m}.{node.name} {code_lines(node)}")
    print(f"over the limits (module {MAX_MODULE_LINES}, function {MAX_FUNCTION_LINES}, class "
          f"{MAX_CLASS_LINES} lines): {len(over)}")
    for line in over:
        print("  " + line)
    private = private_imports(root)
    print(f"private names imported across modules: {len(private)}")
    for line in private:
        print("  " + line)


if __name__ == "__main__":
    main()
