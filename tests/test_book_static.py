"""Tests of the book's own static files (``_static/``), run in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
from scripts.check_pages import find_chromium

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium)")

# The page plays what happens on a book page: the MathJax 3 configuration object, the shim, then
# MathJax 3 loading (a new global object whose config is the old one, with typesetPromise), then
# the widget manager typesetting a label the MathJax 2 way.
PAGE = """<html><head><script>window.MathJax = {options: {}}</script>
<script src="widgets-mathjax3.js"></script></head>
<body><span id="label">x</span><pre id="out"></pre><script>
var result = {configHasHub: !!(window.MathJax.Hub && window.MathJax.Hub.Queue), typeset: []};
try { MathJax.Hub.Queue(["Typeset", MathJax.Hub, document.getElementById("label")]); result.early = "ok"; }
catch (error) { result.early = String(error); }
window.MathJax = {version: "3.2.2", config: window.MathJax,
                  typesetPromise: function (elements) { result.typeset.push(elements[0].id); return Promise.resolve(); }};
result.loadedHasHub = !!(window.MathJax.Hub && window.MathJax.Hub.Queue);
MathJax.Hub.Queue(["Typeset", MathJax.Hub, document.getElementById("label")]);
document.getElementById("out").textContent = JSON.stringify(result);
</script></body></html>"""


def test_widget_manager_finds_a_mathjax_hub_that_forwards_to_mathjax_3(tmp_path):
    shutil.copy(ROOT / "_static" / "widgets-mathjax3.js", tmp_path)
    (tmp_path / "page.html").write_text(PAGE)
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (tmp_path / "page.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"'))
    # Before MathJax 3 has loaded, Queue must not throw; afterwards it must hand the element over.
    assert result == {"configHasHub": True, "typeset": ["label"], "early": "ok", "loadedHasHub": True}
