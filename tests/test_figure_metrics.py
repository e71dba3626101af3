"""figure_metrics measures what a reader sees: the smallest drawn text and overlapping panels."""

from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from scripts import figure_metrics as fm  # noqa: E402


@pytest.fixture(autouse=True)
def _close(monkeypatch):
    from matplotlib.figure import Figure

    # install_figure_measurements wraps Figure.savefig for the whole process: undo it after each test
    monkeypatch.setattr(Figure, "savefig", Figure.savefig)
    yield
    plt.close("all")


def _titles_running_into_each_other():
    """Two panels whose one-line titles run into each other, as the intro's first figure did."""
    fig, axes = plt.subplots(1, 2, figsize=(4, 2), gridspec_kw={"wspace": 0.05})
    for ax in axes:
        ax.imshow([[0, 1]])
        ax.axis("off")
    axes[0].set_title("a very long title that runs on", fontsize=10)
    axes[1].set_title("into its neighbour's", fontsize=10)
    return fig


def test_the_smallest_drawn_text_is_measured_in_output_pixels():
    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    ax.set_title("title", fontsize=14)
    ax.tick_params(labelsize=6)
    metrics = fm.measure_figure(fig)
    assert metrics.min_text_px == pytest.approx(6 * 100 / 72)
    assert "6 pt" in metrics.smallest_text and metrics.overlaps == []
    fig.set_dpi(200)
    assert fm.measure_figure(fig).min_text_px == pytest.approx(6 * 200 / 72)


def test_hidden_axes_text_does_not_count():
    fig, ax = plt.subplots(figsize=(3, 3))
    ax.imshow([[0, 1], [1, 0]])
    ax.axis("off")  # tick labels at 10 pt exist but are not drawn
    ax.set_title("shown", fontsize=12)
    assert "shown" in fm.measure_figure(fig).smallest_text
    empty, _ = plt.subplots()
    _.axis("off")
    assert fm.measure_figure(empty).min_text_px is None


def test_a_title_over_the_panel_above_is_an_overlap_and_a_laid_out_grid_is_not():
    fig, axes = plt.subplots(2, 1, figsize=(5, 3))
    for ax in axes:
        ax.imshow([[0, 1]], aspect="auto")
        ax.axis("off")
    axes[1].set_title("a title\non three\nlines", fontsize=16)
    overlaps = fm.measure_figure(fig).overlaps
    assert any("a title on three lines" in o and "covers panel 0" in o for o in overlaps), overlaps
    fig, axes = plt.subplots(2, 3, figsize=(5, 4), layout="constrained")
    for ax in axes.flat:
        ax.imshow([[0, 1]])
        ax.set_title("two\nlines", fontsize=9)
    assert fm.measure_figure(fig).overlaps == []


def test_titles_that_run_into_each_other_overlap():
    assert any("covers" in o for o in fm.measure_figure(_titles_running_into_each_other()).overlaps)


def test_the_png_carries_the_measurements():
    fig, ax = plt.subplots(figsize=(3, 2), dpi=100)
    ax.plot([0, 1])
    ax.set_xlabel("x", fontsize=8)
    data = base64.b64decode(fm.figure_png(fig))
    found = fm.read_figure_metrics(data)
    assert found["min_text_px"] == pytest.approx(8 * 100 / 72, abs=0.01)
    assert found["overlaps"] == [] and "8 pt" in found["smallest_text"]
    import io

    plain = io.BytesIO()
    fig.savefig(plain, format="png")
    assert fm.read_figure_metrics(plain.getvalue()) is None


def test_a_jpeg_comment_carries_the_measurements_and_foreign_comments_are_none():
    import io

    fig = _titles_running_into_each_other()
    metrics = fm.measure_figure(fig)
    jpeg = io.BytesIO()
    fig.savefig(jpeg, format="jpeg", pil_kwargs={"comment": metrics.jpeg_comment()})
    found = fm.read_figure_metrics(jpeg.getvalue())
    assert found["min_text_px"] == pytest.approx(metrics.min_text_px, abs=0.01)
    assert found["overlaps"] == metrics.overlaps and found["overlaps"]
    for comment in (None, "made by a camera", '["a", "list"]'):
        plain = io.BytesIO()
        fig.savefig(plain, format="jpeg", pil_kwargs={"comment": comment} if comment else None)
        assert fm.read_figure_metrics(plain.getvalue()) is None


def test_installed_savefig_measures_every_jpeg_at_its_dpi_and_keeps_a_given_comment(tmp_path):
    import io

    from IPython.core.interactiveshell import InteractiveShell
    from matplotlib.figure import Figure

    assert fm.install_figure_measurements(InteractiveShell.instance())
    assert Figure.savefig.measures_jpeg
    fm.install_figure_measurements(InteractiveShell.instance())  # twice: wrapped once
    assert Figure.savefig.__wrapped__.__name__ == "savefig"
    fig = _titles_running_into_each_other()
    jpeg = io.BytesIO()
    fig.savefig(jpeg, format="jpeg", dpi=200, bbox_inches="tight")
    found = fm.read_figure_metrics(jpeg.getvalue())
    assert found["min_text_px"] == pytest.approx(10 * 200 / 72, abs=0.01) and found["overlaps"]
    assert fig.dpi == 100  # measured at the save's dpi, then given back
    fig.savefig(tmp_path / "by_name.jpg")  # the format from the file's name
    assert fm.read_figure_metrics((tmp_path / "by_name.jpg").read_bytes())["overlaps"]
    fig.savefig(tmp_path / "own.jpg", pil_kwargs={"comment": "mine"})
    assert fm.read_figure_metrics((tmp_path / "own.jpg").read_bytes()) is None
    png = io.BytesIO()
    fig.savefig(png, format="png")  # a PNG saved by hand is not measured: IPython's formatter is
    assert fm.read_figure_metrics(png.getvalue()) is None


def test_the_formatter_is_installed_in_an_ipython_shell_and_kept():
    from IPython.core.interactiveshell import InteractiveShell
    from matplotlib.figure import Figure

    shell = InteractiveShell.instance()
    assert fm.install_figure_measurements(shell)
    formatter = shell.display_formatter.formatters["image/png"]
    assert formatter.type_printers[Figure] is fm.figure_png
    formatter.for_type(Figure, lambda fig: None)  # what %matplotlib inline does
    shell.events.trigger("post_execute")
    assert formatter.type_printers[Figure] is fm.figure_png
    assert fm.install_figure_measurements(shell)  # twice: one callback
    names = [getattr(cb, "__name__", "") for cb in shell.events.callbacks["post_execute"]]
    assert names.count("_cam_tutorial_png_formatter") == 1


def test_the_execute_scripts_kernel_stores_measurements_in_every_figure():
    """The first figure too: pyplot loads the inline backend late, which resets the formatter."""
    import os
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    root = Path(__file__).resolve().parents[1]
    from scripts.execute_notebooks import KERNEL_SETUP

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(3, 2))\n"
                                  "ax.set_title('t', fontsize=7)\nplt.show()"),
        nbformat.v4.new_code_cell("fig, ax = plt.subplots(figsize=(3, 2))\nax.plot([0, 1])"),
        nbformat.v4.new_code_cell("from cam_tutorial.viz import show_jpeg\nfig, axes = plt.subplots(1, 2, figsize=(4, 2), gridspec_kw={'wspace': 0.05})\n"
                                  "axes[0].axis('off'); axes[1].axis('off')\naxes[0].set_title('a very long title that runs on')\n"
                                  "axes[1].set_title('into its neighbour', fontsize=8)\nshow_jpeg(fig)"),
    ])
    env = {"MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, kernel_name="python3", timeout=120,
                       extra_arguments=[f"--IPKernelApp.exec_lines={KERNEL_SETUP}"]).execute()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    pngs = [base64.b64decode(o["data"]["image/png"]) for c in nb.cells for o in c.outputs
            if "image/png" in o.get("data", {})]
    assert len(pngs) == 2
    first, second = (fm.read_figure_metrics(p) for p in pngs)
    assert first["min_text_px"] == pytest.approx(7 * 100 / 72, abs=0.01)
    assert second["min_text_px"] == pytest.approx(10 * 100 / 72, abs=0.01)  # tick labels
    [jpeg] = [base64.b64decode(o["data"]["image/jpeg"]) for c in nb.cells for o in c.outputs
              if "image/jpeg" in o.get("data", {})]
    third = fm.read_figure_metrics(jpeg)
    assert third["min_text_px"] == pytest.approx(8 * 100 / 72, abs=0.01)
    assert any("'a very long title that runs on' covers" in o for o in third["overlaps"]), third


def test_the_markdown_pages_images_carry_their_measurements_and_no_overlap():
    """book/images/*, made by scripts/make_figures.py: the intro's JPEG had two titles running together."""
    from pathlib import Path

    from PIL import Image

    images = sorted((Path(__file__).resolve().parents[1] / "book" / "images").glob("*.*"))
    assert {p.suffix for p in images} >= {".png", ".jpg"}
    for path in images:
        found = fm.read_figure_metrics(path.read_bytes())
        assert found is not None, f"{path.name}: remake it with python -m scripts.make_figures"
        assert found["overlaps"] == [], path.name
        with Image.open(path) as image:
            shown = min(1.0, 690 / image.width)  # the book's text column at a 1280 px window
        assert found["min_text_px"] * shown >= 9, (path.name, found)


def test_make_figures_refuses_a_figure_whose_titles_overlap_and_stores_a_jpegs_measurements(tmp_path):
    from scripts.make_figures import save_measured

    with pytest.raises(ValueError, match=r"titles.jpg: not written, its texts overlap: 'a very long title"):
        save_measured(_titles_running_into_each_other(), tmp_path / "titles.jpg")
    assert not list(tmp_path.iterdir())
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_title("one title", fontsize=9)
    save_measured(fig, tmp_path / "fine.jpg", pil_kwargs={"quality": 90})
    found = fm.read_figure_metrics((tmp_path / "fine.jpg").read_bytes())
    assert found["overlaps"] == [] and found["min_text_px"] == pytest.approx(9 * 100 / 72, abs=0.01)
