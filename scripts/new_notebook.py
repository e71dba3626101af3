"""Create a notebook skeleton with the book's standard opening and closing cells.

Usage (from the repository root): python -m scripts.new_notebook 05_computing_cams "Computing CAMs" "what you learn 1" "..."

Every notebook opens with an "Open in Colab" badge, what the reader will learn, one set-up
cell that installs the package on Colab and one preset cell; it ends with a summary and
exercises. This script writes those cells so that every chapter starts the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from scripts.book_settings import REPOSITORY_URL, colab_url

ROOT = Path(__file__).resolve().parents[1]

SETUP = f'''# Set-up: on Colab, install the book's package (a few seconds); elsewhere use your environment.
import importlib.util
import subprocess
import sys

if "google.colab" in sys.modules and importlib.util.find_spec("cam_tutorial") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+{REPOSITORY_URL}.git"], check=True)'''

PRESET = '''# The preset sets every size in this notebook: `ci` (tiny, for tests), `cpu` (the book's
# outputs) or `gpu` (full size, 224 px). Set CAM_TUTORIAL_PRESET to choose one;
# the default is gpu where CUDA is available, else cpu.
import logging

from cam_tutorial.config import default_device, get_preset

logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
preset = get_preset()
device = default_device()
print(f"preset={preset.name}, device={device}")
preset'''


def skeleton(stem: str, title: str, learn: list[str]) -> nbformat.NotebookNode:
    badge = (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
             f"({colab_url(stem)})")
    bullets = "\n".join(f"- {item}" for item in learn) or "- ..."
    cells = [
        new_markdown_cell(f"# {title}\n\n{badge}\n\n**What you will learn**\n\n{bullets}\n\n"
                          "**Time:** under the `ci` preset ... s on 2 CPU cores; under `gpu` ... on a GPU."),
        new_code_cell(SETUP),
        new_code_cell(PRESET),
        new_markdown_cell("## Summary\n\n- ..."),
        new_markdown_cell("## Exercises\n\n1. ..."),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["accelerator"] = "GPU"
    nb.metadata["colab"] = {"provenance": []}
    return nb


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    stem, title, *learn = argv
    path = ROOT / "notebooks" / f"{stem}.ipynb"
    if path.exists():
        print(f"{path} exists; not overwriting it")
        return 1
    nbformat.write(skeleton(stem, title, learn), path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
