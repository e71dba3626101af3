"""Check the committed notebooks against the book's conventions.

Each notebook in notebooks/ must: be listed in _toc.yml; store outputs, with no error output;
have execution counts 1..n in order (so it was run top to bottom, once, by the project's script);
open with an "Open in Colab" badge pointing at its own path on the book's repository and branch;
end with a summary and exercises; and promise, in its first cell's **Time:** line, the time that
scripts/execute_notebooks.py measured and recorded in its metadata. Exits non-zero, listing every problem, when one fails.
"""

from __future__ import annotations

import json
from pathlib import Path

from scripts.book_settings import colab_url
from scripts.execute_notebooks import time_line

ROOT = Path(__file__).resolve().parents[1]


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
    tail = " ".join("".join(c["source"]) for c in cells[-3:] if c["cell_type"] == "markdown").lower()
    if "summary" not in tail or "exercise" not in tail:
        found.append("does not end with a summary and exercises")
    return found


def main() -> int:
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
    print(f"checked {len(notebooks)} notebooks: {bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
