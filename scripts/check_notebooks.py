"""Check the committed notebooks against the book's conventions.

Each notebook in notebooks/ must: be listed in _toc.yml; store outputs, with no error output;
have execution counts 1..n in order (so it was run top to bottom, once, by the project's script);
open with an "Open in Colab" badge pointing at its own path on the book's repository and branch;
end with a summary and exercises (a Going deeper page, ``deeper_NN_topic``, ends with a link back
to chapter NN instead); and promise, in its first cell's **Time:** line, the time that
scripts/execute_notebooks.py measured and recorded in its metadata. Chapters 1-8's main paths
(every cell before the exercises) must keep within issue 29's budget (``BUDGET``). Exits non-zero, listing every problem, when one fails.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from scripts.book_settings import colab_url
from scripts.execute_notebooks import time_line

ROOT = Path(__file__).resolve().parents[1]

#: Issue 29's budget for chapters 1-8's main paths: prose words in all and per chapter, tables
#: per chapter, shown code lines in all.
BUDGET = {"words": 9000, "words_per_chapter": 1400, "tables_per_chapter": 2, "code_lines": 1100}
EXERCISES = re.compile(r"\s*#+\s*(\d+(\.\d+)*\s*)?(exercises|questions)\b", re.I)
MARKDOWN_TABLE = re.compile(r"^\s*\|.*\|\s*\n\s*\|[\s:|-]+\|\s*$", re.M)
HIDDEN = ("hide-input", "hide-cell", "remove-input", "remove-cell")
_NOT_PROSE = re.compile(r"<details>.*?</details>|```.*?```|\$\$.*?\$\$|\$[^$\n]+\$|\]\([^)]*\)", re.S)


def main_path(cells: list[dict]) -> dict[str, int]:
    r"""What a reader meets before the exercises: prose words, tables, shown code lines, figures.

    A prose word is an alphabetic token of a Markdown cell outside fenced code, ``$...$`` math,
    link targets and ``<details>`` blocks; a table is a Markdown table in prose or in a Markdown
    output, or an HTML table in an output; a shown code line is a non-blank line of a code cell
    without a hide or remove tag; a figure is a PNG or JPEG output.

    Example:
        >>> cells = [{"cell_type": "markdown", "source": "Two words $x + y$ [here](https://a.b)."},
        ...          {"cell_type": "code", "source": "a = 1\n\nb = 2", "metadata": {}, "outputs": [
        ...              {"data": {"text/html": "<table></table>", "image/png": "..."}}]},
        ...          {"cell_type": "markdown", "source": "## Exercises\nNot counted."}]
        >>> main_path(cells)
        {'words': 3, 'tables': 1, 'code_lines': 2, 'figures': 1}
    """
    found = {"words": 0, "tables": 0, "code_lines": 0, "figures": 0}
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            if EXERCISES.match(source):
                break
            found["tables"] += len(MARKDOWN_TABLE.findall(source))
            found["words"] += len(re.findall(r"[A-Za-z][A-Za-z'-]*", _NOT_PROSE.sub(" ", source)))
            continue
        if cell["cell_type"] != "code":
            continue
        if not set(cell.get("metadata", {}).get("tags", [])) & set(HIDDEN):
            found["code_lines"] += sum(1 for line in source.splitlines() if line.strip())
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            found["tables"] += len(MARKDOWN_TABLE.findall("".join(data.get("text/markdown", ""))))
            found["tables"] += "".join(data.get("text/html", "")).count("<table")
            found["figures"] += ("image/png" in data) + ("image/jpeg" in data)
    return found


def budget_report(paths: list[Path]) -> tuple[str, list[str]]:
    """A Markdown table of each chapter's main path, and the budget's lines it breaks."""
    rows, over = [], []
    total = {"words": 0, "tables": 0, "code_lines": 0, "figures": 0}
    for path in paths:
        found = main_path(json.loads(path.read_text())["cells"])
        rows.append(f"| {path.stem} | {found['words']} | {found['tables']} | {found['code_lines']} | "
                    f"{found['figures']} |")
        total = {k: total[k] + found[k] for k in total}
        if found["words"] > BUDGET["words_per_chapter"]:
            over.append(f"{path.stem}: {found['words']} prose words (budget {BUDGET['words_per_chapter']})")
        if found["tables"] > BUDGET["tables_per_chapter"]:
            over.append(f"{path.stem}: {found['tables']} tables (budget {BUDGET['tables_per_chapter']})")
    rows.append(f"| all | {total['words']} | {total['tables']} | {total['code_lines']} | {total['figures']} |")
    if total["words"] > BUDGET["words"]:
        over.append(f"all chapters: {total['words']} prose words (budget {BUDGET['words']})")
    if total["code_lines"] > BUDGET["code_lines"]:
        over.append(f"all chapters: {total['code_lines']} shown code lines (budget {BUDGET['code_lines']})")
    table = "| main path | prose words | tables | shown code lines | figures |\n|---|---|---|---|---|\n"
    return table + "\n".join(rows), over


def problems_of(path: Path, toc: str) -> list[str]:
    found = []
    try:
        nb = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [f"does not parse as JSON: {exc}"]
    cells = nb.get("cells", [])
    if f"notebooks/{path.stem}" not in toc:
        found.append("is not listed in _toc.yml")
    code = [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    if not code:
        found.append("has no code cells")
    if code and not any(c.get("outputs") for c in code):
        found.append("stores no outputs: execute it with scripts/execute_notebooks.py")
    counts = [c.get("execution_count") for c in code]
    if counts != list(range(1, len(code) + 1)):
        found.append(f"execution counts are {counts}, not 1..{len(code)}: re-execute it top to bottom")
    for i, c in enumerate(code):
        if any(o.get("output_type") == "error" for o in c.get("outputs", [])):
            found.append(f"code cell {i + 1} stores an error output")
    head = "".join("".join(c["source"]) for c in cells[:2])
    if colab_url(path.stem) not in head:
        found.append(f"has no 'Open in Colab' badge linking {colab_url(path.stem)} in its first cells")
    meta = nb.get("metadata", {}).get("cam_tutorial", {})
    if not meta.get("timings"):
        found.append("records no measured time (metadata cam_tutorial.timings): execute it with "
                     "scripts/execute_notebooks.py")
    elif cells and time_line(meta["timings"], meta.get("time_note", ""), meta.get("gpu_estimate")) not in "".join(cells[0]["source"]):
        found.append("has a **Time:** line other than the measured one: re-execute it with "
                     "scripts/execute_notebooks.py (its remark lives in metadata cam_tutorial.time_note)")
    tail = " ".join("".join(c["source"]) for c in cells[-3:] if c["cell_type"] == "markdown")
    chapter = re.match(r"deeper_(\d\d)_", path.stem)
    if path.stem.startswith("deeper_") and not chapter:
        found.append("is a Going deeper page whose name does not say its chapter: deeper_NN_topic")
    elif chapter and not re.search(rf"\]\({chapter.group(1)}_[a-z0-9_]+\.ipynb", tail):
        found.append(f"does not end with a link back to chapter {int(chapter.group(1))}, "
                     f"e.g. [Back to chapter {int(chapter.group(1))}]({chapter.group(1)}_....ipynb)")
    elif not chapter and ("summary" not in tail.lower() or "exercise" not in tail.lower()):
        found.append("does not end with a summary and exercises")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the notebooks against the book's conventions.")
    parser.add_argument("--main-path", action="store_true",
                        help="also print each chapter's main path (words, tables, code lines, figures); "
                             "the budget is checked either way")
    args = parser.parse_args(argv)
    toc = (ROOT / "_toc.yml").read_text()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if not notebooks:
        print("no notebooks found in notebooks/")
        return 1
    bad = 0
    for path in notebooks:
        for problem in problems_of(path, toc):
            print(f"{path.relative_to(ROOT)} {problem}")
            bad += 1
    table, over = budget_report([p for p in notebooks if p.stem[:2].isdigit() and p.stem[:2] != "00"])
    if args.main_path:
        print(table)
    for line in over:
        print(f"main path over the budget: {line} (move the depth to a Going deeper page)")
    print(f"checked {len(notebooks)} notebooks: {bad} problem(s), main paths "
          + ("within the budget" if not over else f"{len(over)} over the budget"))
    return 1 if bad or over else 0


if __name__ == "__main__":
    raise SystemExit(main())
