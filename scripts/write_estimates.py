"""Write the ``gpu`` time estimate of ``benchmarks/estimate.py`` into each notebook's metadata.

Usage:
    python scripts/write_estimates.py [notebooks/NN_name.ipynb ...]

Sets ``cam_tutorial.gpu_estimate`` (card, fresh and cached minutes at the slow and fast end of a
T4's effective TFLOP/s) and rewrites the first cell's ``**Time:**`` line, which says "estimated
... not yet measured" until ``scripts/execute_notebooks.py --preset gpu`` records a measured time.
Only metadata and the first cell's time line change; outputs are kept.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

from scripts.execute_notebooks import set_time_line


def _estimate_module():
    spec = importlib.util.spec_from_file_location("cam_estimate", ROOT / "benchmarks" / "estimate.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["cam_estimate"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def gpu_estimates() -> dict[str, dict]:
    """``{notebook stem: gpu_estimate}`` for every notebook, at the module's default rates."""
    from cam_tutorial.config import get_preset

    est = _estimate_module()
    preset = get_preset("gpu")
    loader = est.LOADER_RATE_PER_CORE * est.COLAB_WORKERS * est.COLAB_CPU_FACTOR
    low, high = sorted(est.T4_TFLOPS)
    slow, fast = est.estimate(preset, low, loader), est.estimate(preset, high, loader)
    return {chapter: {"card": "T4", "fresh_minutes": [round(fast[chapter][0], 1), round(slow[chapter][0], 1)],
                      "cached_minutes": [round(fast[chapter][1], 1), round(slow[chapter][1], 1)]}
            for chapter in slow}


def write(nb: nbformat.NotebookNode, estimate: dict) -> None:
    """Store ``estimate`` in ``nb``'s metadata and rewrite its time line (idempotent)."""
    nb.metadata.setdefault("cam_tutorial", {})["gpu_estimate"] = estimate
    set_time_line(nb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    estimates = gpu_estimates()
    for path in paths:
        if path.stem not in estimates:
            raise SystemExit(f"{path}: no estimate for chapter {path.stem!r}; add it to CHAPTER_WORK in "
                             "benchmarks/estimate.py")
        nb = nbformat.read(path, as_version=4)
        write(nb, estimates[path.stem])
        nbformat.write(nb, path)
        print(f"{path.name}: {nb.cells[0].source.splitlines()[-1][:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
