#!/usr/bin/env bash
# Build the book's HTML from the committed notebooks and print where it is.
# Usage: bash scripts/build_book.sh [--execute [PRESET]]
#   --execute re-executes every notebook first under PRESET (default: cpu), on the embedded
#   lab dataset, with scripts/execute_notebooks.py, so the outputs are produced the one way.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
execute=""; preset="cpu"
while [ $# -gt 0 ]; do
  case "$1" in
    --execute) execute=1; if [ $# -gt 1 ] && [[ "$2" != --* ]]; then preset="$2"; shift; fi ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (use --execute [ci|cpu|gpu])" >&2; exit 2 ;;
  esac
  shift
done
# Cached bytecode halves each Python process's imports (why: scripts/test.sh); re-executing
# starts a kernel per notebook.
unset PYTHONDONTWRITEBYTECODE
bash scripts/setup.sh
py="$root/.venv/bin/python"
if [ -n "$execute" ]; then
  "$py" -m scripts.make_figures
  "$py" -m scripts.execute_notebooks --preset "$preset"
fi
"$root/.venv/bin/jupyter-book" build . --quiet
echo "The book is at: $root/_build/html/index.html"
