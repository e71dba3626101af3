"""Keep each public function's and class's "Used in chapter N." line true (d2l's "Defined in").

Every name in a package module's ``__all__`` that is a function or a class gets, as the last line
of its docstring's first paragraph, one line naming the chapters whose code cells use it, e.g.
``Used in chapters 5 and 7.``, or ``Used in no chapter: ...`` for a name the chapters reach only
through another one. The line is derived from the committed notebooks, so it cannot drift:
``tests/test_chapter_links.py`` fails when a notebook starts or stops using a name.

    python -m scripts.chapter_links          # list the lines that are missing or wrong
    python -m scripts.chapter_links --write  # write them into the docstrings
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^Used in (?:chapters? |no chapter|the quick start|the appendix)[^\n]*$", re.M)
NO_CHAPTER = "Used in no chapter directly."


def chapter_code() -> dict[str, str]:
    """Chapter label (``"1"`` ... ``"8"``, ``"the quick start"``, ``"the appendix"``) -> the source
    of its code cells (the Going deeper pages, ``deeper_*``, share one label)."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        prefix = path.stem.split("_", 1)[0]
        label = (str(int(prefix)) if prefix.isdigit() and int(prefix) > 0
                 else "the appendix" if prefix == "deeper" else "the quick start")
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        found[label] = found.get(label, "") + "\n" + code
    return found


def usage_line(name: str, code: dict[str, str]) -> str:
    """The line for ``name``: the chapters whose code mentions it as a word."""
    used = [label for label, source in code.items() if re.search(rf"\b{re.escape(name)}\b", source)]
    numbers = [u for u in used if u.isdigit()]
    if not used:
        return NO_CHAPTER
    parts = ([f"chapter{'s' if len(numbers) > 1 else ''} " + _join(numbers)] if numbers else []) + \
            [u for u in used if not u.isdigit()]
    return f"Used in {', and '.join(parts)}."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def public_definitions(tree: ast.Module) -> list[ast.FunctionDef | ast.ClassDef]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            names = {e.value for e in node.value.elts if isinstance(e, ast.Constant)}
    return [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names
            and ast.get_docstring(n) is not None]


def rewrite(source: str, code: dict[str, str]) -> tuple[str, list[str]]:
    """``source`` with every public docstring's usage line made right, and what changed."""
    lines = source.splitlines(keepends=True)
    changed = []
    # Bottom up, so that line numbers above stay valid while lines are inserted.
    for node in sorted(public_definitions(ast.parse(source)), key=lambda n: -n.lineno):
        doc = node.body[0]
        text = "".join(lines[doc.lineno - 1:doc.end_lineno])
        want = usage_line(node.name, code)
        new = _with_line(text, want, " " * (doc.col_offset))
        if new != text:
            lines[doc.lineno - 1:doc.end_lineno] = [new]
            changed.append(f"{node.name}: {want}")
    return "".join(lines), changed


def _with_line(text: str, want: str, indent: str) -> str:
    """The docstring's source ``text`` with ``want`` as the last line of its first paragraph."""
    if LINE.search(_dedent(text, indent)):
        return re.sub(rf"^{indent}Used in (?:chapters? |no chapter|the quick start|the appendix)[^\n]*?((?:\"\"\"|\'\'\')?)$",
                      lambda m: indent + want + m.group(1), text, count=1, flags=re.M)
    quote = text.lstrip()[:3]
    body = text.rstrip()
    if "\n" not in body:  # a one-line docstring: """Summary."""
        return f"{body[:-3]}\n{indent}{want}{quote}\n"
    first_blank = re.search(r"\n[ \t]*\n", text)
    if first_blank is None:  # a summary over several lines, then the closing quotes
        end = text.rstrip().rfind(quote)
        return f"{text[:end].rstrip()}\n{indent}{want}{quote}\n"
    cut = first_blank.start()
    return f"{text[:cut]}\n{indent}{want}{text[cut:]}"


def _dedent(text: str, indent: str) -> str:
    return "\n".join(line[len(indent):] if line.startswith(indent) else line for line in text.splitlines())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the lines into the docstrings")
    args = parser.parse_args(argv)
    code = chapter_code()
    wrong = 0
    for path in sorted((ROOT / "cam_tutorial").rglob("*.py")):
        source = path.read_text()
        new, changed = rewrite(source, code)
        for line in changed:
            print(f"{path.relative_to(ROOT)}: {line}")
        wrong += len(changed)
        if args.write and new != source:
            path.write_text(new)
    print(f"{wrong} usage line(s) {'written' if args.write else 'missing or wrong'}")
    return 0 if args.write or not wrong else 1


if __name__ == "__main__":
    raise SystemExit(main())
