"""Tests of scripts/check_pages.py on a tiny site it must pass and one it must fail (headless Chromium)."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
from scripts import check_pages

pytestmark = pytest.mark.skipif(
    check_pages.find_chromium() is None, reason="Chromium is not installed (apt-get install -y chromium)"
)


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "html"
    (site / "book").mkdir(parents=True)
    (site / "_images").mkdir()
    Image.fromarray(np.full((8, 12, 3), 200, dtype=np.uint8)).save(site / "_images" / "figure.png")
    (site / "book" / "good.html").write_text(
        "<html><body><h1>Good</h1><article><img src='../_images/figure.png'></article></body></html>")
    # A logo in the header is not a figure of the text.
    (site / "book" / "logo_only.html").write_text(
        "<html><body><header><img src='../_images/figure.png'></header><article><p>Text</p></article></body></html>")
    (site / "book" / "missing.html").write_text(
        "<html><body><img src='../_images/figure.png'><img src='../_images/gone.png'>"
        "<script src='../_static/gone.js'></script></body></html>")
    (site / "book" / "broken.html").write_text("<html><body><img src='../_images/bad.png'></body></html>")
    (site / "_images" / "bad.png").write_bytes(b"not a png")  # 200, but the browser cannot draw it
    (site / "book" / "text.html").write_text("<html><body><p>No figures</p></body></html>")
    # What MyST-NB makes of a text/markdown table when it renders outputs as CommonMark.
    (site / "book" / "raw_table.html").write_text(
        "<html><head><meta charset='utf-8'></head><body><article><img src='../_images/figure.png'><p>| model | acc |\n|\u2014|\u2014|\n"
        "| GAP | 93% |</p><table><tr><td>| a real table cell |</td></tr></table></article></body></html>")
    return site


def _run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = check_pages.main(list(args))
    return code, out.getvalue()


def test_a_page_whose_figures_load_passes_and_is_photographed(tmp_path):
    site = _site(tmp_path)
    code, out = _run("--build-dir", str(site), "--screenshots", str(tmp_path / "shots"), "book/good.html")
    assert code == 0, out
    assert "1 own images (1 in the text), 1 loaded" in out
    shot = Image.open(tmp_path / "shots" / "book__good.png")
    assert shot.size[0] > 100


def test_missing_files_broken_images_and_figureless_pages_fail(tmp_path):
    site = _site(tmp_path)
    code, out = _run("--build-dir", str(site), "book/missing.html", "book/broken.html", "book/text.html")
    assert code == 1
    assert "404 for /_images/gone.png" in out and "404 for /_static/gone.js" in out
    assert "image did not load: /_images/gone.png" in out
    assert "image did not load: /_images/bad.png" in out
    assert "no image of its own" in out
    assert "0 of 3 pages passed" in out
    code, out = _run("--build-dir", str(site), "book/logo_only.html")
    assert code == 1 and "no image of its own" in out
    code, out = _run("--build-dir", str(site), "--allow-no-figures", "book/text.html")
    assert code == 0, out


def test_a_markdown_table_left_as_text_fails(tmp_path):
    site = _site(tmp_path)
    code, out = _run("--build-dir", str(site), "book/raw_table.html")
    assert code == 1
    assert "a Markdown table shows as text, not as a table: '| model | acc |" in out


def test_a_pattern_checks_every_page_it_matches(tmp_path):
    site = _site(tmp_path)
    code, out = _run("--build-dir", str(site), "book/g*.html")
    assert code == 0 and "1 of 1 pages passed" in out and "book/good.html" in out
    code, out = _run("--build-dir", str(site), "book/nothing*.html")
    assert code == 1


def test_a_page_missing_from_the_build_is_reported(tmp_path):
    code, out = _run("--build-dir", str(_site(tmp_path)), "book/nowhere.html")
    assert code == 1
