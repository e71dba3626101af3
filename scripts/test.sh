#!/usr/bin/env bash
# Run every test of the project: set-up, the notebook conventions check, package tests and nbval
# over every notebook (ci preset) in one pytest run, a book build with warnings as errors, and the
# pages check in headless Chromium.
# Usage: bash scripts/test.sh            (from anywhere; sets itself up first)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CAM_TUTORIAL_PRESET=ci
export PYTHONHASHSEED=0
# Two test processes share two cores: idle OpenMP threads must sleep, not spin, or each starves
# the other (measured: notebook 03 under nbval took 236 s spinning, 80 s passive).
export OMP_WAIT_POLICY=PASSIVE
# Let Python cache compiled bytecode: where PYTHONDONTWRITEBYTECODE is set (this workplace's shell
# sets it) and the installer wrote no .pyc files (uv does not), every process compiled torch,
# matplotlib and scipy from source again: 12 s per import of the package's stack, against 5-6 s
# from cached bytecode (measured here on 2 cores), and the tests start many Python processes
# (test workers, notebook kernels, the tests' own subprocesses).
unset PYTHONDONTWRITEBYTECODE
# Trained models for the notebooks are cached here, inside the checkout, so a clean clone trains
# (or unpacks) them once and parallel notebooks share them.
export CAM_TUTORIAL_CACHE="${CAM_TUTORIAL_CACHE:-$root/.cache/models}"
py="$root/.venv/bin/python"

declare -a stage_names=() stage_secs=()
stage() {  # stage NAME COMMAND...: run a stage, remember how long it took
  local name="$1"; shift
  local start=$(date +%s)
  echo "=== $name"
  local status=0
  "$@" || status=$?
  stage_names+=("$name"); stage_secs+=($(( $(date +%s) - start )))
  return "$status"
}
report() {
  echo "=== stage times"
  for i in "${!stage_names[@]}"; do printf '%-48s %5d s\n' "${stage_names[$i]}" "${stage_secs[$i]}"; done
}
trap report EXIT

stage "set-up" bash scripts/setup.sh

stage "notebook conventions" "$py" -m scripts.check_notebooks
# One pytest run for the package tests, every docstring example in the package (--doctest-modules)
# and nbval over every notebook: scripts/pytest_order.py keeps
# each notebook's cells in one process and starts the longest work first, so that neither test
# process waits for the other at the end (run as two stages, they waited twice: 54 s of 425 s,
# measured on 2 CPU cores).
# Each of the two test processes (and the notebook kernels and subprocesses they start) gets half
# the cores as math threads: on 2 cores, one each. Two processes of two threads on two cores
# oversubscribe them (measured on 2 cores, Intel Xeon: 136-140 s for this stage with the default
# threads, 122 s with one each; chapter 3's throughput cell 13.6 s against 1.0 s run alone).
threads=$(( $(nproc) / 2 )); [ "$threads" -ge 1 ] || threads=1
stage "package tests and notebooks (nbval, ci preset)" env OMP_NUM_THREADS="$threads" \
  "$py" -m pytest -q -p no:cacheprovider \
  -p scripts.pytest_order --nbval-lax --nbval-current-env -n 2 --doctest-modules notebooks tests cam_tutorial
# Beside the tests, the book's stages were no faster: both are bound by the two cores.
stage "book build (-W -n)" "$root/.venv/bin/jupyter-book" build . --warningiserror --nitpick --keep-going --quiet
stage "pages in headless Chromium" "$py" -m scripts.check_pages
echo "all tests passed"
