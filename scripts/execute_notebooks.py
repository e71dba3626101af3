"""Execute the book's notebooks in place, the one way the committed outputs are produced.

Usage:
    python scripts/execute_notebooks.py [--preset cpu] [--timeout 1800] [notebooks/NN_name.ipynb ...]

With no paths it runs every notebook in notebooks/ in order. Each runs top to bottom in a fresh
kernel (the environment's ``python3``), with ``CAM_TUTORIAL_PRESET`` set, in the notebooks/
folder, keeping execution counts and saving widget state, so that GitHub, Colab and the static
book all show the same results. A notebook that fails is left unchanged on disk.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def execute(path: Path, preset: str, timeout: int) -> float:
    nb = nbformat.read(path, as_version=4)
    os.environ["CAM_TUTORIAL_PRESET"] = preset
    # Figures must be stored as images, whatever backend the caller's shell chose.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=True,
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    nb.metadata.setdefault("cam_tutorial", {})["executed_with_preset"] = preset
    # Atomic write: a half-written notebook never replaces a good one.
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".ipynb", delete=False) as tmp:
        nbformat.write(nb, tmp)
    os.replace(tmp.name, path)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--preset", default="cpu", choices=["ci", "cpu", "gpu"])
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    failed = []
    for path in paths:
        print(f"executing {path} under preset {args.preset} ...", flush=True)
        try:
            elapsed = execute(path.resolve(), args.preset, args.timeout)
        except Exception as exc:  # report every failing notebook, then fail
            print(f"FAILED {path}: {type(exc).__name__}: {str(exc)[-2000:]}", flush=True)
            failed.append(path)
            continue
        print(f"  done in {elapsed:.0f} s", flush=True)
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(map(str, failed))}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
