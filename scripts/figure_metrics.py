"""Measure what a reader will see of a figure, and store it in the figure's PNG or JPEG.

An image cannot tell how large its text is, and the page check (``scripts/check_pages.py``) needs to
know: a figure drawn 1,500 px wide and shown 690 px wide shrinks its 9-pt titles to 5 px. So the
numbers are taken when the figure is drawn: :func:`measure_figure` draws it once, records every
text that matplotlib actually draws (size in output pixels) and every title, label or tick label
that lands on another panel or on another panel's text, and :func:`install_figure_measurements`
makes every figure a kernel shows carry those numbers: IPython's PNG output as PNG text chunks
(keys :data:`MIN_TEXT_KEY`, :data:`SMALLEST_TEXT_KEY`, :data:`OVERLAPS_KEY`), and every JPEG that
``Figure.savefig`` writes (``cam_tutorial.viz.show_jpeg`` shows photographs that way) as the same
keys, in JSON, in the JPEG's comment segment. The book's execute script installs it in each
notebook's kernel; the page check reads them back (:func:`read_figure_metrics`) and scales them by
the width the browser gives the image.

Example:
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    >>> _ = ax.set_title("hello", fontsize=12)
    >>> metrics = measure_figure(fig)
    >>> round(metrics.min_text_px, 1) <= 12 * 100 / 72, metrics.overlaps
    (True, [])
    >>> sorted(metrics.png_metadata())
    ['cam_tutorial:min_text_px', 'cam_tutorial:overlaps', 'cam_tutorial:smallest_text']
    >>> import io
    >>> jpeg = io.BytesIO()
    >>> fig.savefig(jpeg, format="jpeg", pil_kwargs={"comment": metrics.jpeg_comment()})
    >>> read_figure_metrics(jpeg.getvalue())["overlaps"]
    []
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import matplotlib
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

__all__ = ["FigureMetrics", "measure_figure", "figure_png", "install_figure_measurements", "measuring_savefig",
           "read_figure_metrics",
           "MIN_TEXT_KEY", "SMALLEST_TEXT_KEY", "OVERLAPS_KEY"]

logger = logging.getLogger(__name__)

MIN_TEXT_KEY = "cam_tutorial:min_text_px"
SMALLEST_TEXT_KEY = "cam_tutorial:smallest_text"
OVERLAPS_KEY = "cam_tutorial:overlaps"
#: Pixels (at the figure's dpi) two boxes must share, both ways, to count as overlapping.
OVERLAP_TOLERANCE_PX = 1.5


@dataclass
class FigureMetrics:
    """What :func:`measure_figure` found.

    Attributes:
        min_text_px: the smallest drawn font size, in pixels of the saved PNG (``None``: no text).
        smallest_text: that text, with its size in points, to name it in a report.
        overlaps: one line per text that covers another panel or another panel's text.
        dpi: the pixels per inch the image is saved at.
    """

    min_text_px: float | None
    smallest_text: str
    overlaps: list[str] = field(default_factory=list)
    dpi: float = 100.0

    def png_metadata(self) -> dict[str, str]:
        """The PNG text chunks (``savefig(..., metadata=...)``) that carry these numbers."""
        return {
            MIN_TEXT_KEY: "" if self.min_text_px is None else f"{self.min_text_px:.2f}",
            SMALLEST_TEXT_KEY: self.smallest_text[:200],
            OVERLAPS_KEY: json.dumps(self.overlaps[:20]),
        }

    def jpeg_comment(self) -> str:
        """The JPEG comment (``savefig(..., pil_kwargs={"comment": ...})``): the PNG chunks as JSON."""
        return json.dumps(self.png_metadata())


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "..."


def _drawn_texts(fig: Figure) -> tuple[list[tuple[Text | None, str, float]], RendererAgg]:
    """Draw ``fig`` once on its own renderer; return (artist, line, size in points) of each text line drawn.

    The renderer is handed the artist only for one-line texts, so :meth:`Text.draw` is wrapped for
    the one draw to say which artist each line belongs to.
    """
    renderer = RendererAgg(max(1, int(fig.bbox.width)), max(1, int(fig.bbox.height)), fig.dpi)
    drawn: list[tuple[Text | None, str, float]] = []
    drawing: list[Text] = []
    draw_text, text_draw = renderer.draw_text, Text.draw

    def recording(gc: Any, x: float, y: float, s: str, prop: Any, angle: float, ismath: Any = False,
                  mtext: Text | None = None) -> None:
        if s.strip():
            drawn.append((drawing[-1] if drawing else mtext, s, float(prop.get_size_in_points())))
        draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    def text_drawing(self: Text, renderer: Any) -> None:
        drawing.append(self)
        try:
            text_draw(self, renderer)
        finally:
            drawing.pop()

    renderer.draw_text = recording  # type: ignore[method-assign]
    Text.draw = text_drawing  # type: ignore[method-assign]
    try:
        fig.draw(renderer)
    finally:
        Text.draw = text_draw  # type: ignore[method-assign]
    return drawn, renderer


def _has_content(ax: matplotlib.axes.Axes) -> bool:
    """An axes a reader sees: with its frame and ticks, or with something drawn in it."""
    return ax.get_visible() and (ax.axison or bool(ax.images or ax.lines or ax.patches or ax.collections))


def _overlap(a: Bbox, b: Bbox) -> bool:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width > OVERLAP_TOLERANCE_PX and height > OVERLAP_TOLERANCE_PX


def _related(one: Any, other: Any) -> bool:
    """Whether two axes are the same panel (twins, insets and their parent count as one)."""
    if one is None or other is None:
        return False
    if one is other or other in getattr(one, "child_axes", []) or one in getattr(other, "child_axes", []):
        return True
    twins = one.get_shared_x_axes().get_siblings(one) + one.get_shared_y_axes().get_siblings(one)
    return other in twins and one.bbox.bounds == other.bbox.bounds


def measure_figure(fig: Figure) -> FigureMetrics:
    """Draw ``fig`` and measure its smallest text and the texts that overlap other panels.

    Only texts matplotlib draws count (a hidden axis's tick labels do not). An overlap is a text
    owned by one axes (its title, labels or tick labels) whose box covers another visible axes
    or a text of another axes; figure-level texts (a suptitle, a legend) count against every axes.

    Args:
        fig: the figure, as it will be saved.

    Returns:
        The :class:`FigureMetrics`, in pixels of a PNG saved at ``fig.dpi`` (as IPython saves it).

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> fig, axes = plt.subplots(2, 1, figsize=(3, 2))
        >>> _ = axes[1].set_title("a long title\\nover\\nthree lines", fontsize=14)
        >>> bool(measure_figure(fig).overlaps)
        True
    """
    drawn, renderer = _drawn_texts(fig)
    dpi = float(fig.dpi)
    if not drawn:
        return FigureMetrics(None, "", [], dpi)
    artist, string, points = min(drawn, key=lambda item: item[2])
    smallest = f"{_short(string)!r} ({points:g} pt)"
    boxes, seen = [], set()
    for text, string, _ in drawn:
        if text is None or id(text) in seen:
            continue
        seen.add(id(text))
        string = text.get_text()
        try:
            boxes.append((text, string, text.get_window_extent(renderer)))
        except (RuntimeError, ValueError):  # a text without a renderer-independent extent
            continue
    panels = [ax for ax in fig.get_axes() if _has_content(ax)]
    numbers = {id(ax): i for i, ax in enumerate(fig.get_axes())}
    owners: dict[int, Any] = {}  # tick labels know their figure, not their axes: ask each axes
    for ax in fig.get_axes():
        for text in ax.findobj(Text):
            owners.setdefault(id(text), ax)
    overlaps: list[str] = []
    for text, string, box in boxes:
        owner = owners.get(id(text))
        where = f"panel {numbers[id(owner)]}" if owner is not None else "the figure"
        for ax in panels:
            if not _related(owner, ax) and owner is not ax and _overlap(box, ax.bbox):
                overlaps.append(f"{_short(string)!r} of {where} covers panel {numbers[id(ax)]}")
                break
    for i, (text, string, box) in enumerate(boxes):
        for other, other_string, other_box in boxes[i + 1:]:
            one, two = owners.get(id(text)), owners.get(id(other))
            if one is two or _related(one, two):
                continue
            if _overlap(box, other_box):
                overlaps.append(f"{_short(string)!r} covers {_short(other_string)!r}")
    return FigureMetrics(points * dpi / 72.0, smallest, overlaps, dpi)


def figure_png(fig: Figure, **print_kwargs: Any) -> str | None:
    """IPython's PNG of ``fig`` (base64), carrying :func:`measure_figure`'s numbers as text chunks.

    ``print_kwargs`` go to :func:`IPython.core.pylabtools.print_figure` (default
    ``bbox_inches="tight"``, as the inline backend saves).
    """
    from IPython.core.pylabtools import print_figure

    try:
        metadata = measure_figure(fig).png_metadata()
    except Exception as error:  # a figure that cannot be measured is still shown
        logger.warning("could not measure the figure's text (%s: %s)", type(error).__name__, error)
        metadata = {}
    print_kwargs.setdefault("bbox_inches", "tight")
    return print_figure(fig, "png", base64=True, metadata=metadata, **print_kwargs)


def _measured(fig: Figure, dpi: float) -> FigureMetrics:
    """:func:`measure_figure` at the ``dpi`` the figure is about to be saved at."""
    shown_dpi = fig.dpi
    fig.set_dpi(dpi)
    try:
        return measure_figure(fig)
    finally:
        fig.set_dpi(shown_dpi)


def _saves_jpeg(fname: Any, savefig_kwargs: dict[str, Any]) -> bool:
    """Whether ``Figure.savefig(fname, **savefig_kwargs)`` writes a JPEG (the format, else the name's suffix)."""
    fmt = savefig_kwargs.get("format")
    if fmt is None and isinstance(fname, (str, os.PathLike)):
        fmt = os.path.splitext(os.fspath(fname))[1][1:] or None
    return str(fmt or matplotlib.rcParams["savefig.format"]).lower() in ("jpg", "jpeg")


def measuring_savefig(savefig: Callable[..., Any]) -> Callable[..., Any]:
    """``Figure.savefig`` that stores :func:`measure_figure`'s numbers in every JPEG it writes.

    The JPEG's comment (Pillow's ``comment`` save option) holds :meth:`FigureMetrics.jpeg_comment`,
    measured at the dpi of the save; a ``comment`` the caller gives in ``pil_kwargs`` is kept.
    """
    @functools.wraps(savefig)
    def savefig_measuring_jpeg(self: Figure, fname: Any, **kwargs: Any) -> Any:
        pil_kwargs = dict(kwargs.get("pil_kwargs") or {})
        if _saves_jpeg(fname, kwargs) and "comment" not in pil_kwargs:
            dpi = kwargs.get("dpi", matplotlib.rcParams["savefig.dpi"])
            try:
                pil_kwargs["comment"] = _measured(self, self.dpi if dpi == "figure" else float(dpi)).jpeg_comment()
                kwargs["pil_kwargs"] = pil_kwargs
            except Exception as error:  # a figure that cannot be measured is still saved
                logger.warning("could not measure the figure's text (%s: %s)", type(error).__name__, error)
        return savefig(self, fname, **kwargs)

    savefig_measuring_jpeg.measures_jpeg = True  # type: ignore[attr-defined]
    return savefig_measuring_jpeg


def _set_formatter(shell: Any) -> None:
    formatter = shell.display_formatter.formatters["image/png"]
    if formatter.type_printers.get(Figure) is not figure_png:
        formatter.for_type(Figure, figure_png)


def install_figure_measurements(shell: Any = None) -> bool:
    """Make every figure this IPython kernel shows carry its text measurements, as PNG or as JPEG.

    PNG: IPython's formatter for figures is replaced by :func:`figure_png`. The inline backend
    installs its own PNG formatter when pyplot is first imported (and again on
    ``%matplotlib inline``), so pyplot is imported first and the formatter is set again before the
    figures of every cell are shown. JPEG: a figure shown as JPEG is saved by ``Figure.savefig``
    and displayed as bytes (``cam_tutorial.viz.show_jpeg``), so ``Figure.savefig`` is wrapped by
    :func:`measuring_savefig` in this process (the package itself knows nothing of the book's tooling).

    Args:
        shell: the IPython shell (default: the running one).

    Returns:
        False when there is no IPython shell (a plain Python process: nothing is installed), else True.
    """
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is None:
        return False
    import matplotlib.pyplot as plt

    if not getattr(Figure.savefig, "measures_jpeg", False):
        Figure.savefig = measuring_savefig(Figure.savefig)  # type: ignore[method-assign]
    # pyplot loads its backend on the first figure, and the inline backend sets its formatter then:
    # load it now, so that a first figure shown by plt.show() inside a cell goes through ours.
    plt.switch_backend(matplotlib.rcParams["backend"])
    _set_formatter(shell)

    def _cam_tutorial_png_formatter() -> None:
        _set_formatter(shell)

    for event in ("pre_execute", "post_execute"):
        callbacks = shell.events.callbacks[event]
        if not any(getattr(cb, "__name__", "") == _cam_tutorial_png_formatter.__name__ for cb in callbacks):
            callbacks.insert(0, _cam_tutorial_png_formatter)  # before the inline backend shows figures
    return True


def read_figure_metrics(data: bytes) -> dict[str, Any] | None:
    """The measurements stored in a PNG's text chunks or a JPEG's comment, or None when it carries none.

    Returns:
        ``{"min_text_px": float | None, "smallest_text": str, "overlaps": list[str]}``.
    """
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        chunks = dict(getattr(image, "text", {}) or {})
        comment = image.info.get("comment", b"") if image.format == "JPEG" else b""
    if comment:
        try:
            stored = json.loads(comment.decode("utf-8") if isinstance(comment, bytes) else comment)
        except (UnicodeDecodeError, json.JSONDecodeError):  # a comment some other tool wrote
            stored = None
        chunks = stored if isinstance(stored, dict) else {}
    if MIN_TEXT_KEY not in chunks:
        return None
    value = chunks[MIN_TEXT_KEY]
    return {"min_text_px": float(value) if value else None,
            "smallest_text": chunks.get(SMALLEST_TEXT_KEY, ""),
            "overlaps": json.loads(chunks.get(OVERLAPS_KEY, "[]") or "[]")}
