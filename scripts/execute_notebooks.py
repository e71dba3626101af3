"""Execute the book's notebooks in place, the one way the committed outputs are produced.

Usage:
    python scripts/execute_notebooks.py [--preset cpu] [--timeout 1800] [notebooks/NN_name.ipynb ...]

With no paths it runs every notebook in notebooks/ in order. Each runs top to bottom in a fresh
kernel (the environment's ``python3``), with ``CAM_TUTORIAL_PRESET`` set, in the notebooks/
folder, keeping execution counts and saving widget state, so that GitHub, Colab and the static
book all show the same results. A notebook that fails is left unchanged on disk.

Each run's wall time, and the machine it ran on, are kept in the notebook's metadata
(``cam_tutorial.timings``, one entry per preset), and the ``**Time:**`` line of its first cell is
rewritten from them, so the time a reader is promised is the one measured, never typed in.
The line ends with the notebook's own remark, ``cam_tutorial.time_note`` in its metadata.

Every figure's PNG or JPEG carries the size of its smallest text and any titles that cover another panel
(``scripts.figure_metrics``, installed in the kernel before the first cell), which
``scripts/check_pages.py`` reads back to fail figures that the page shrinks below legibility.

Widgets that their code hid before the run ended (tqdm's ``leave=False`` bars, once closed) are
dropped from the outputs, with the saved widget state that only they used: in the static book
each left an empty gap, and on GitHub a line of progress-bar text.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import nbformat

ROOT = Path(__file__).resolve().parents[1]
# Run in the kernel before the first cell: every figure's PNG or JPEG records its text sizes and overlaps.
# The book's tooling lives in scripts/, outside the package: the kernel finds it from the repository root.
KERNEL_SETUP = (f"__import__('sys').path.append({str(ROOT)!r}); "
                "__import__('scripts.figure_metrics', fromlist=['install_figure_measurements'])"
                ".install_figure_measurements()")
PRESETS = ("ci", "cpu", "gpu")
TIME_LINE = re.compile(r"^\*\*Time:\*\*.*$", re.M)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# A model refers to another as "IPY_MODEL_<id>" (children, layout); an Output widget holds views.
_MODEL_REFERENCE = re.compile(r'IPY_MODEL_([0-9a-f]{32})|"model_id": "([0-9a-f]{32})"')


def machine() -> str:
    """The GPU's name, or how many CPU cores: what a timing was measured on."""
    import torch  # imported late: the script's other work needs no torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{os.cpu_count()} CPU cores"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _minutes_range(low: float, high: float) -> str:
    low, high = max(1, round(low)), max(1, round(high))
    return f"{low} min" if low == high else f"{low}-{high} min"


def estimate_phrase(estimate: dict) -> str:
    """The ``gpu`` estimate in words, from ``cam_tutorial.gpu_estimate`` (written by
    ``scripts/write_estimates.py`` from ``benchmarks/estimate.py``).

    Example:
        >>> estimate_phrase({"card": "T4", "fresh_minutes": [7.2, 11.6], "cached_minutes": [0.6, 0.6]})
        'under `gpu`: estimated 7-12 min on a Colab T4 on a fresh session, 1 min with the models in the Drive cache (not yet measured on a card)'
    """
    fresh, cached = estimate["fresh_minutes"], estimate["cached_minutes"]
    text = f"under `gpu`: estimated {_minutes_range(*fresh)} on a Colab {estimate['card']} on a fresh session"
    if [round(v) for v in cached] != [round(v) for v in fresh]:
        text += f", {_minutes_range(*cached)} with the models in the Drive cache"
    return text + " (not yet measured on a card)"


def time_line(timings: dict[str, dict], note: str = "", gpu_estimate: dict | None = None) -> str:
    """The ``**Time:**`` line from measured timings (``{preset: {"seconds": s, "machine": m}}``),
    and, while ``gpu`` is not measured, its estimate (see :func:`estimate_phrase`) if given.

    Example:
        >>> time_line({"cpu": {"seconds": 12.4, "machine": "2 CPU cores"}}, "Nothing is trained.")
        '**Time:** 12 s under the `cpu` preset on 2 CPU cores (measured when these outputs were made); under `gpu`: not yet timed. Nothing is trained.'
    """
    parts = [f"{_duration(t['seconds'])} under the `{name}` preset on {t['machine']}"
             for name in PRESETS if (t := timings.get(name))]
    if not parts:
        raise ValueError("time_line needs at least one timing")
    parts[0] += " (measured when these outputs were made)"
    if "gpu" not in timings:
        parts.append(estimate_phrase(gpu_estimate) if gpu_estimate else "under `gpu`: not yet timed")
    return f"**Time:** {'; '.join(parts)}." + (f" {note}" if note else "")


def set_time_line(nb: nbformat.NotebookNode) -> None:
    """Rewrite the first cell's ``**Time:**`` line from the notebook's recorded timings."""
    meta = nb.metadata.get("cam_tutorial", {})
    line = time_line(meta.get("timings", {}), meta.get("time_note", ""), meta.get("gpu_estimate"))
    first = nb.cells[0]
    if not TIME_LINE.search(first.source):
        raise ValueError("the first cell has no '**Time:**' line to write the measured time into")
    first.source = TIME_LINE.sub(lambda _: line, first.source, count=1)


def drop_hidden_widgets(nb: nbformat.NotebookNode) -> int:
    """Remove the outputs of widgets whose layout their code hid, and the state only they used.

    Returns the number of outputs removed. A notebook without saved widget state is unchanged.
    """
    saved = nb.metadata.get("widgets", {}).get(WIDGET_STATE)
    if not saved:
        return 0
    state = saved["state"]

    def hidden(model_id: str) -> bool:
        layout = state.get(model_id, {}).get("state", {}).get("layout", "")
        look = state.get(layout.removeprefix("IPY_MODEL_"), {}).get("state", {})
        return look.get("visibility") == "hidden" or look.get("display") == "none"

    dropped, roots = 0, []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view and hidden(view["model_id"]):
                dropped += 1
                continue
            if view:
                roots.append(view["model_id"])
            kept.append(output)
        cell.outputs = kept
    reachable: set[str] = set()
    while roots:
        model_id = roots.pop()
        if model_id in reachable or model_id not in state:
            continue
        reachable.add(model_id)
        roots += [a or b for a, b in _MODEL_REFERENCE.findall(json.dumps(state[model_id]["state"]))]
    saved["state"] = {k: v for k, v in state.items() if k in reachable}
    return dropped


def execute(path: Path, preset: str, timeout: int) -> float:
    # Imported here: the conventions check imports this module for time_line alone, and
    # nbformat's schema validator takes a second to import.
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ["CAM_TUTORIAL_PRESET"] = preset
    # Figures must be stored as images, whatever backend the caller's shell chose.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    # Idle OpenMP threads sleep instead of spinning, so parallel kernels do not starve each other.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=True,
        record_timing=False,
        extra_arguments=[f"--IPKernelApp.exec_lines={KERNEL_SETUP}"],
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    drop_hidden_widgets(nb)
    meta = nb.metadata.setdefault("cam_tutorial", {})
    meta["executed_with_preset"] = preset
    meta.setdefault("timings", {})[preset] = {"seconds": round(elapsed, 1), "machine": machine()}
    set_time_line(nb)
    # Atomic write: a half-written notebook never replaces a good one.
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".ipynb", delete=False) as tmp:
        nbformat.write(nb, tmp)
    os.replace(tmp.name, path)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--preset", default="cpu", choices=PRESETS)
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
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
