"""Tests of scripts/check_pages.py on a tiny site it must pass and one it must fail (headless Chromium)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

ROOT = Path(__file__).resolve().parents[1]
from scripts.figure_metrics import MIN_TEXT_KEY, OVERLAPS_KEY, SMALLEST_TEXT_KEY  # noqa: E402
from scripts import check_pages  # noqa: E402

pytestmark = pytest.mark.skipif(
    check_pages.find_chromium() is None, reason="Chromium is not installed (apt-get install -y chromium)"
)


def _png(path: Path, width: int = 12, min_text_px: float | None = 14.0, overlaps: list[str] | None = None) -> None:
    """A PNG as the execute script stores figures: with its measurements (None: without)."""
    info = PngInfo()
    if min_text_px is not None:
        info.add_text(MIN_TEXT_KEY, f"{min_text_px:.2f}")
        info.add_text(SMALLEST_TEXT_KEY, "'label' (10 pt)")
        info.add_text(OVERLAPS_KEY, json.dumps(overlaps or []))
    Image.fromarray(np.full((8, width, 3), 200, dtype=np.uint8)).save(path, pnginfo=info)


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "html"
    (site / "book").mkdir(parents=True)
    (site / "_images").mkdir()
    _png(site / "_images" / "figure.png")
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
        # These tiny local pages make every request before their load event: no need to wait
        # half a second for the network to settle, as the book's pages do.
        code = check_pages.main(["--settle", "0.1", *args])
    return code, out.getvalue()


def test_a_page_whose_figures_load_passes_and_is_photographed(tmp_path):
    site = _site(tmp_path)
    code, out = _run("--build-dir", str(site), "--screenshots", str(tmp_path / "shots"), "book/good.html")
    assert code == 0, out
    assert "1 own images (1 in the text), 1 loaded" in out
    shot = Image.open(tmp_path / "shots" / "book__good.png")
    assert shot.size[0] > 100


def test_a_later_run_in_this_process_takes_the_browser_an_earlier_one_left_running(tmp_path):
    site = _site(tmp_path)
    code, _ = _run("--build-dir", str(site), "--jobs", "1", "book/good.html")
    left = {each.process.pid for each in check_pages.IDLE_BROWSERS}
    assert code == 0 and left and all(each.alive() for each in check_pages.IDLE_BROWSERS)
    code, out = _run("--build-dir", str(site), "--jobs", "1", "book/good.html")
    assert code == 0, out
    assert left & {each.process.pid for each in check_pages.IDLE_BROWSERS}, "a new Chromium was started"


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


def test_pages_checked_at_once_are_reported_in_order_with_their_own_problems(tmp_path):
    site = _site(tmp_path)
    code, out = _run("--build-dir", str(site), "--jobs", "3", "book/broken.html", "book/good.html",
                     "book/missing.html")
    assert code == 1 and "1 of 3 pages passed" in out
    # each page's line, then its own problems under it, in the order the pages were given
    report: dict[str, list[str]] = {}
    for line in out.splitlines()[:-1]:
        if line.startswith(" "):
            report[page].append(line.strip())
        else:
            page = line.split(" (")[0]
            report[page] = []
    assert list(report) == ["FAILED book/broken.html", "ok     book/good.html", "FAILED book/missing.html"]
    assert report["FAILED book/broken.html"] == ["- image did not load: /_images/bad.png"]
    assert report["ok     book/good.html"] == []
    assert "- 404 for /_images/gone.png" in report["FAILED book/missing.html"]
    assert not any("bad.png" in problem for problem in report["FAILED book/missing.html"])
    with pytest.raises(SystemExit):
        check_pages.main(["--build-dir", str(site), "--jobs", "0", "book/good.html"])
    with pytest.raises(SystemExit):
        check_pages.main(["--build-dir", str(site), "--settle", "-1", "book/good.html"])


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


def _figure_page(site: Path, name: str, body: str) -> str:
    (site / "book" / name).write_text(f"<html><body><article>{body}</article></body></html>")
    return f"book/{name}"


def test_a_figure_whose_text_the_page_shrinks_below_9_px_fails(tmp_path):
    site = _site(tmp_path)
    _png(site / "_images" / "wide.png", width=1490, min_text_px=12.5)
    # 1,490 px drawn, 690 px shown: 12.5 px text shows at 5.8 px
    shrunk = _figure_page(site, "shrunk.html", "<img src='../_images/wide.png' style='width:690px'>")
    code, out = _run("--build-dir", str(site), shrunk)
    assert code == 1
    assert "figure wide.png: smallest text 'label' (10 pt) shows 5.8 CSS px (< 9)" in out
    assert "drawn 1490 px wide, shown 690 px" in out
    # the same figure at its natural size passes
    natural = _figure_page(site, "natural.html", "<img src='../_images/wide.png' style='width:1490px'>")
    code, out = _run("--build-dir", str(site), natural)
    assert code == 0, out
    assert "smallest figure text 12.5 CSS px" in out


def test_overlapping_titles_and_unmeasured_figures_fail(tmp_path):
    site = _site(tmp_path)
    _png(site / "_images" / "overlap.png", overlaps=["'row 2' of panel 4 covers panel 0"])
    _png(site / "_images" / "plain.png", min_text_px=None)
    page = _figure_page(site, "bad_figures.html",
                        "<img src='../_images/overlap.png'><img src='../_images/plain.png'>")
    code, out = _run("--build-dir", str(site), page)
    assert code == 1
    assert "figure overlap.png: 'row 2' of panel 4 covers panel 0" in out
    assert "figure plain.png carries no text measurements" in out
    code, out = _run("--build-dir", str(site), "--allow-unmeasured",
                     _figure_page(site, "plain_only.html", "<img src='../_images/plain.png'>"))
    assert code == 0 and "1 figure(s) without measurements" in out


def test_a_jpeg_figure_is_measured_like_a_png(tmp_path):
    """The intro's first figure, a JPEG, had two titles running into each other and passed unmeasured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scripts.figure_metrics import measure_figure

    site = _site(tmp_path)
    fig, axes = plt.subplots(1, 2, figsize=(4, 2), gridspec_kw={"wspace": 0.05})
    for ax, title in zip(axes, ['CAM of "espresso" (p = 0.95, 7x7 map)', "its box: IoU 0.83"]):
        ax.imshow([[0, 1]])
        ax.axis("off")
        ax.set_title(title, fontsize=10)
    fig.savefig(site / "_images" / "titles.jpg", format="jpeg",
                pil_kwargs={"comment": measure_figure(fig).jpeg_comment()})
    plt.close(fig)
    page = _figure_page(site, "jpeg.html", "<img src='../_images/titles.jpg'>")
    code, out = _run("--build-dir", str(site), page)
    assert code == 1
    assert "figure titles.jpg: 'CAM of \"espresso\" (p = 0.95, 7x7 map)' covers 'its box: IoU 0.83'" in out
    Image.new("RGB", (12, 8)).save(site / "_images" / "plain.jpg", comment=b"a camera's comment")
    plain = _figure_page(site, "plain_jpeg.html", "<img src='../_images/plain.jpg'>")
    code, out = _run("--build-dir", str(site), plain)
    assert code == 1 and "figure plain.jpg carries no text measurements" in out
    code, out = _run("--build-dir", str(site), "--allow-unmeasured", plain)
    assert code == 0 and "1 figure(s) without measurements" in out


def test_a_code_line_wider_than_the_column_fails_even_in_a_hidden_cell(tmp_path):
    site = _site(tmp_path)
    style = "<style>article { width: 400px } pre { font-family: monospace; font-size: 13px }</style>"
    fits = _figure_page(site, "code_fits.html", style + "<img src='../_images/figure.png'>"
                        "<div class='cell_input'><pre>x = 1\nprint(x)</pre></div>")
    code, out = _run("--build-dir", str(site), fits)
    assert code == 0, out
    assert "code column" in out
    wide = _figure_page(site, "code_wide.html", style + "<img src='../_images/figure.png'>"
                        "<details><summary>show</summary><div class='cell_input'><pre>"
                        + "y = " + "1 + " * 40 + "1</pre></div></details>")
    code, out = _run("--build-dir", str(site), wide)
    assert code == 1
    assert "a code block is" in out and "its longest line, 165 characters" in out
