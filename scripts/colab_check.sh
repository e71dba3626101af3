#!/usr/bin/env bash
# A Colab-like check, run by hand (not in CI; 10 to 35 minutes on 2 cores, by their load):
#   bash scripts/colab_check.sh [notebooks/NN_name.ipynb ...]
# 1. builds a venv from Colab's Python (3.13) with Colab's own versions of torch and of the packages
#    the book touches (scripts/colab_pins.txt);
# 2. runs the notebooks' set-up-cell install, from this checkout instead of the repository URL;
# 3. prints what that install changed, and fails if it changed a pinned package (ipywidgets, numpy,
#    OpenCV...) or torch;
# 4. executes each notebook from a lone copy in a temporary folder outside the repository (so only
#    the installed package is importable, package data included), under the `ci` preset.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${COLAB_VENV:-/tmp/cam-tutorial-colab-venv}"
# Colab's Python: COLAB_PYTHON, else python3.13 on PATH, else pyenv's (a pyenv shim fails unless
# 3.13 is selected, hence the test run rather than `command -v`).
python=""
for candidate in "${COLAB_PYTHON:-}" python3.13 "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.13*/bin/python3.13; do
  if [ -n "$candidate" ] && "$candidate" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then
  echo "colab-check: needs Python 3.13 (Colab's) with its venv module, and found none." >&2
  echo "  Install it (\`pyenv install 3.13\`, or \`apt install python3.13 python3.13-venv\`), or set" >&2
  echo "  COLAB_PYTHON=/path/to/python3.13. Nothing was built." >&2
  exit 2
fi
work="$(mktemp -d /tmp/colab-check.XXXXXX)"
echo "colab-check: $("$python" --version) ($python), venv $venv, work folder $work"
"$python" -m venv --clear "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip
# Colab's torch comes from PyPI here (its CUDA wheels: a few GB, cached by pip after the first run).
"${pip[@]}" install -r scripts/colab_pins.txt
# What runs the notebooks (Colab has its own front end; any recent nbclient will do here), held to
# the pins so that this step cannot move a pinned package before the "before" snapshot.
"${pip[@]}" install -c scripts/colab_pins.txt nbclient nbformat matplotlib tqdm scipy filelock pillow
"${pip[@]}" freeze --all | sort > "$work/before.txt"
# The set-up cell's command (see any notebook's first code cell), from this checkout.
# The extras the set-up cells ask for ("cam-tutorial[photos] @ git+..." in chapters 5 and 8).
extras="$(cat notebooks/*.ipynb | grep -o 'cam-tutorial\[[a-z,]*\] @' | head -1 | grep -o '\[[a-z,]*\]' || true)"
echo "colab-check: pip install \"$root$extras\"  (the set-up cell installs \"git+<repository>$extras\")"
"${pip[@]}" install "$root$extras"
"${pip[@]}" freeze --all | sort > "$work/after.txt"
echo "=== what the install changed (- before, + after)"
diff "$work/before.txt" "$work/after.txt" | grep '^[<>]' | sed 's/^</-/; s/^>/+/' || true
changed=0
for name in $(sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\1/p' scripts/colab_pins.txt); do
  b="$(grep -i "^${name}==" "$work/before.txt" || true)"; a="$(grep -i "^${name}==" "$work/after.txt" || true)"
  if [ "$b" != "$a" ]; then echo "CHANGED: $b -> $a"; changed=1; fi
done
[ "$changed" = 0 ] && echo "colab-check: Colab's ipywidgets, numpy, OpenCV, scikit-image, ipykernel and torch are untouched"
"$venv/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
failed=0
notebooks=("$@"); [ ${#notebooks[@]} -gt 0 ] || notebooks=(notebooks/*.ipynb)
for nb in "${notebooks[@]}"; do
  lone="$work/$(basename "$nb" .ipynb)"; mkdir -p "$lone"; cp "$nb" "$lone/"
  start=$(date +%s)
  # PYDEVD_DISABLE_FILE_VALIDATION: ipykernel 6.17's debugger otherwise warns about Python 3.13's
  # frozen modules at every kernel start (noise only: nothing here debugs).
  if (cd "$lone" && CAM_TUTORIAL_PRESET=ci CAM_TUTORIAL_CACHE="$work/cache" PYTHONPATH= \
        PYDEVD_DISABLE_FILE_VALIDATION=1 \
        "$venv/bin/python" - "$(basename "$nb")" <<'PY'
import sys
import nbformat
from nbclient import NotebookClient

path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
nbformat.write(nb, path)
PY
  ); then
    echo "ok     $nb ($(( $(date +%s) - start )) s, alone in $lone)"
  else
    echo "FAILED $nb ($(( $(date +%s) - start )) s): see above"; failed=1
  fi
done
[ "$changed" = 0 ] && [ "$failed" = 0 ] && echo "colab-check: passed" || { echo "colab-check: FAILED"; exit 1; }
