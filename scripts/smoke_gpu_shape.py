"""Run every notebook with a tiny preset shaped like ``gpu``, on the CPU, into a temporary folder.

Usage:
    python scripts/smoke_gpu_shape.py [--timeout 1800] [--out DIR] [notebooks/NN_name.ipynb ...]

The ``gpu`` preset's code paths (224 px, full width, 14x14 maps, every ``preset.name == "gpu"``
branch) are otherwise only exercised on a GPU. This script replaces ``gpu``'s sizes by a few dozen
images and one epoch (``SMOKE``; the name stays ``gpu`` so those branches run), points the zoo's
cache at a fresh temporary folder (nothing is read from or written to the real cache), executes
copies of the notebooks there (never in place), each to its end (a failing cell does not stop
the rest), and prints, per notebook, pass or fail, the wall time and every failing cell. Nothing here checks that the book's claims hold at these sizes: with 40
training images they need not, so a failing assert is reported with its cell for a person to judge
(a size-dependent claim, or a code path that breaks at 224 px). Not part of CI: it takes tens of
minutes on two cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parents[1]

#: The tiny gpu-shaped sizes: 224 px and full width as under ``gpu``; a few dozen images, one
#: epoch, small batches (chapter 3's throughput table trains 20 steps of each setting).
SMOKE = dict(image_size=224, width=64, vgg_width=64, train_size=40, val_size=20, test_size=20, epochs=1,
             batch_size=4, eval_batch_size=20, probe_image_size=224, probe_train_size=20, probe_test_size=20)

INJECTED = f"""\
# smoke_gpu_shape.py: the gpu preset's code paths at a few dozen images (not a real gpu run)
from cam_tutorial import config as _config
_config.PRESETS["gpu"] = _config.PRESETS["gpu"].replace(**{SMOKE!r})
from cam_tutorial import zoo as _zoo
_zoo.IN_MEMORY_BYTES = 0  # train on the uint8 view, as the real gpu sizes (3.6 GB as float32) do
"""


def run_one(path: Path, out: Path, timeout: int) -> tuple[list[str], float]:
    """Execute a copy of ``path`` to the end (errors do not stop it, so every cell's code path
    runs); returns one line per failing cell (``cell N: AssertionError ...``) and the seconds."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, new_code_cell(INJECTED))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}}, record_timing=False)
    started = time.perf_counter()
    errors = []
    try:
        client.execute()
    except Exception as exc:  # a kernel that died or a cell that timed out
        errors.append(f"stopped: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300])
    seconds = time.perf_counter() - started
    for index, cell in enumerate(nb.cells[1:], 1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first = cell.source.splitlines()[0][:60] if cell.source else ""
                errors.append(f"cell {index} ({first!r}): {output['ename']}: {output['evalue'][:200]}")
    nbformat.write(nb, out / path.name)
    return errors, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--out", type=Path, default=None, help="folder for the executed copies (default: a temp one)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    out = args.out or Path(tempfile.mkdtemp(prefix="cam-smoke-"))
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="cam-smoke-cache-"))
    os.environ.update({"CAM_TUTORIAL_PRESET": "gpu", "CAM_TUTORIAL_CACHE": str(cache),
                       "MPLBACKEND": "module://matplotlib_inline.backend_inline",
                       "OMP_WAIT_POLICY": "PASSIVE",
                       "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    print(f"gpu-shaped smoke run: {SMOKE}\nexecuted copies in {out}; zoo cache {cache}", flush=True)
    failed = 0
    for path in paths:
        errors, seconds = run_one(path.resolve(), out, args.timeout)
        failed += bool(errors)
        print(f"{'FAIL' if errors else 'pass'} {path.name:32s} {seconds:7.0f} s", flush=True)
        for line in errors:
            print(f"     {line}", flush=True)
    shutil.rmtree(cache, ignore_errors=True)
    print(f"{len(paths) - failed} of {len(paths)} notebooks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
