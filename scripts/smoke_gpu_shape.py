"""Run every notebook with a tiny preset shaped like ``gpu``, on the CPU, into a temporary folder.

Usage:
    python -m scripts.smoke_gpu_shape [--timeout 1800] [--out DIR] [notebooks/NN_name.ipynb ...]

The ``gpu`` preset's code paths (224 px, full width, 14x14 maps, every ``preset.name == "gpu"``
branch) are otherwise only exercised on a GPU. This script replaces ``gpu``'s sizes by a few dozen
images and one epoch (``SMOKE``; the name stays ``gpu`` so those branches run), points the zoo's
cache at a fresh temporary folder (nothing is read from or written to the real cache) and executes
copies of the notebooks there (never in place).

In those copies only, every ``assert cond, msg`` statement of every code cell, top-level or nested
in a function or block, becomes a call of a recorder (:func:`record_asserts`): the condition is
evaluated, the notebook, cell, line and outcome are recorded (and the message when the condition
is false), and nothing is raised, so every line of every cell runs even where a claim does not
hold at these sizes (with 40 training images and one epoch, claims about trained models need not).
Cells that do not parse as Python (IPython magics, ``!`` lines) are left as they are.

The run fails (exit 1) on any exception in any cell (a code path that breaks at 224 px; this
includes ``torch.testing.assert_close`` and other checks that raise by themselves, which are not
``assert`` statements), or on a kernel that dies or a cell that times out. Otherwise it passes,
and prints per notebook its wall time, the number of asserts evaluated and every unmet claim with
its cell, line, condition and message, for a person to judge. Not part of CI: it takes tens of
minutes on two cores.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parents[1]

#: The tiny gpu-shaped sizes: 224 px and full width as under ``gpu``; a few dozen images, one
#: epoch, small batches (chapter 3's throughput table trains 20 steps of each setting).
SMOKE = dict(image_size=224, width=64, vgg_width=64, train_size=40, val_size=20, test_size=20, epochs=1,
             batch_size=4, eval_batch_size=20)
#: The chapters' sizes changed likewise (``preset.chapter``): chapter 8's probes on a few images.
SMOKE_CHAPTER = dict(probe_image_size=224, probe_train_size=20, probe_test_size=20)

INJECTED = f"""\
# smoke_gpu_shape.py: the gpu preset's code paths at a few dozen images (not a real gpu run)
from cam_tutorial import config as _config
_config.PRESETS["gpu"] = _config.PRESETS["gpu"].replace(
    **{SMOKE!r}, chapter=_config.PRESETS["gpu"].chapter.replace(**{SMOKE_CHAPTER!r}))
from cam_tutorial import zoo_recipes as _zoo_recipes
_zoo_recipes.IN_MEMORY_BYTES = 0  # train on the uint8 view, as the real gpu sizes (3.6 GB as float32) do
"""

#: The name the rewritten asserts call (a dunder name: never mangled inside a class body).
RECORDER = "__smoke_claim__"


class ClaimRecorder:
    """What a rewritten ``assert`` calls: ``claim(cell, line, test, value)`` records whether
    ``value`` is true and returns that, and ``claim.message(cell, line, msg)`` records the message
    of one that is not. Records go to a JSON-lines file, one line each, as they happen (a kernel
    that dies keeps what it recorded), or only to :attr:`records` when ``path`` is ``None``."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.records: list[dict] = []

    def __call__(self, cell: int, line: int, test: str, value: object) -> bool:
        passed = bool(value)  # as ``assert`` does: a value without a truth value still raises
        self._write({"cell": cell, "line": line, "test": test, "passed": passed})
        return passed

    def message(self, cell: int, line: int, message: object) -> None:
        self._write({"cell": cell, "line": line, "message": str(message)[:300]})

    def _write(self, record: dict) -> None:
        self.records.append(record)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(record) + "\n")


def record_asserts(source: str, cell: int) -> str:
    """``source`` with every ``assert cond, msg`` (nested ones too) replaced by
    ``__smoke_claim__(cell, line, 'cond', (cond)) or __smoke_claim__.message(cell, line, (msg))``
    on the same lines, so that line numbers stay; ``msg`` is evaluated only when ``cond`` is
    false, as in an ``assert``. A source that does not parse (IPython magics) comes back as it is.

    >>> print(record_asserts("x = 1\\nif x:\\n    assert x > 2, 'small'", 4))
    x = 1
    if x:
        __smoke_claim__(4, 3, 'x > 2', (x > 2)) or __smoke_claim__.message(4, 3, ('small'))
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    data = source.encode("utf-8")  # ast's column offsets count UTF-8 bytes
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    asserts = [node for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    for node in sorted(asserts, key=lambda n: (n.lineno, n.col_offset), reverse=True):
        test = ast.get_source_segment(source, node.test)
        call = f"{RECORDER}({cell}, {node.lineno}, {' '.join(test.split())!r}, ({test}))"
        if node.msg is not None:
            call += f" or {RECORDER}.message({cell}, {node.lineno}, ({ast.get_source_segment(source, node.msg)}))"
        begin = starts[node.lineno - 1] + node.col_offset
        end = starts[node.end_lineno - 1] + node.end_col_offset
        data = data[:begin] + call.encode("utf-8") + data[end:]
    return data.decode("utf-8")


@dataclass
class Outcome:
    """One notebook's smoke run: seconds, exceptions (real failures) and the recorded asserts."""

    seconds: float
    errors: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)

    def asserts(self) -> dict[tuple[int, int], dict]:
        """Per assert statement ``(cell, line)``: its test, evaluations, failures and messages."""
        found: dict[tuple[int, int], dict] = {}
        for record in self.records:
            entry = found.setdefault((record["cell"], record["line"]),
                                     {"test": "", "evaluated": 0, "unmet": 0, "messages": []})
            if "message" in record:
                if record["message"] not in entry["messages"]:
                    entry["messages"].append(record["message"])
            else:
                entry["test"] = record["test"]
                entry["evaluated"] += 1
                entry["unmet"] += not record["passed"]
        return found

    def unmet(self) -> dict[tuple[int, int], dict]:
        return {key: entry for key, entry in self.asserts().items() if entry["unmet"]}


def prepared(path: Path, claims: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` with its asserts rewritten and two cells in front: the recorder
    (writing to ``claims``) and :data:`INJECTED`. Cell numbers in records are the original's."""
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source = record_asserts(cell.source, index)
    recorder = (f"from scripts.smoke_gpu_shape import ClaimRecorder as _ClaimRecorder\n"
                f"{RECORDER} = _ClaimRecorder({str(claims)!r})")
    nb.cells[:0] = [new_code_cell(recorder), new_code_cell(INJECTED)]
    return nb


def run_one(path: Path, out: Path, timeout: int) -> Outcome:
    """Execute a prepared copy of ``path`` to the end (an exception does not stop it, so every
    cell's code path runs) and collect the exceptions, one line per failing cell, and the asserts."""
    claims = out / f"{path.stem}.claims.jsonl"
    claims.unlink(missing_ok=True)
    nb = prepared(path, claims)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}}, record_timing=False)
    started = time.perf_counter()
    outcome = Outcome(seconds=0.0)
    try:
        client.execute()
    except Exception as exc:  # a kernel that died or a cell that timed out
        outcome.errors.append(f"stopped: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300])
    outcome.seconds = time.perf_counter() - started
    for index, cell in enumerate(nb.cells[2:]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first = cell.source.splitlines()[0][:60] if cell.source else ""
                evalue = " | ".join(line for line in output["evalue"].splitlines() if line.strip())
                outcome.errors.append(f"cell {index} ({first!r}): {output['ename']}: {evalue[:300]}")
    if claims.exists():
        outcome.records = [json.loads(line) for line in claims.read_text(encoding="utf-8").splitlines()]
    nbformat.write(nb, out / path.name)
    return outcome


def report(name: str, outcome: Outcome) -> list[str]:
    """The lines printed for one notebook."""
    asserts, unmet = outcome.asserts(), outcome.unmet()
    evaluations = sum(entry["evaluated"] for entry in asserts.values())
    counted = f"{len(asserts)} asserts evaluated" + (f" ({evaluations} times)" if evaluations != len(asserts) else "")
    lines = [f"{'FAIL' if outcome.errors else 'pass'} {name:32s} {outcome.seconds:6.0f} s  {counted}, "
             f"{len(unmet)} unmet"]
    lines += [f"     exception: {line}" for line in outcome.errors]
    for (cell, line), entry in sorted(unmet.items()):
        times = "" if entry["evaluated"] == 1 else f" ({entry['unmet']} of {entry['evaluated']} times)"
        message = f"  -- {'; '.join(entry['messages'])}" if entry["messages"] else ""
        lines.append(f"     unmet: cell {cell} line {line}: assert {entry['test'][:160]}{times}{message}")
    return lines


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
    print(f"gpu-shaped smoke run: {SMOKE}, chapter sizes {SMOKE_CHAPTER}\nexecuted copies in {out}; "
          f"zoo cache {cache}", flush=True)
    failed = total = unmet = 0
    for path in paths:
        outcome = run_one(path.resolve(), out.resolve(), args.timeout)
        failed += bool(outcome.errors)
        total, unmet = total + len(outcome.asserts()), unmet + len(outcome.unmet())
        print("\n".join(report(path.name, outcome)), flush=True)
    shutil.rmtree(cache, ignore_errors=True)
    print(f"smoke: {len(paths) - failed}/{len(paths)} notebooks ran every cell"
          f"{'' if not failed else f' without an exception ({failed} raised: listed above)'}; "
          f"{unmet} of {total} asserts unmet at toy sizes (listed above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
