"""An interactive CAM explorer for notebooks (ipywidgets 7.6+ or 8; Colab's widget manager runs 7).

Pick an image (an index into a dataset, or a photograph you upload), one of the model's top-5
classes, the overlay's opacity and the box threshold; the map, the box and the scores update as
you move the controls. The model runs once per image (one call of
:class:`~cam_tutorial.anymodel.extractor.CAMExtractor` with ``top_k=5``, so any CAM network works);
changing the class, the opacity or the threshold only redraws.

The picture is an ``ipywidgets.Image`` holding PNG bytes, not a matplotlib ``Output``: its state is
saved with the notebook, so the static book shows the last picture instead of an empty box. For
pages where widgets do not render at all, :meth:`CAMExplorer.figure` draws the same state with
matplotlib.

Example:
    >>> import torch
    >>> from cam_tutorial.lab import SyntheticShapes
    >>> from cam_tutorial.models import ResNet18B
    >>> explorer = CAMExplorer(ResNet18B(width=2).eval(), SyntheticShapes("test", length=4, image_size=32))
    >>> bytes(explorer.image.value[:4])
    b'\\x89PNG'
    >>> explorer.threshold.value = 0.5  # redraws the box at the new threshold
    >>> "threshold 0.50" in explorer.scores.value
    True
"""

from __future__ import annotations

import html
import io
import numbers
from typing import Any, Sequence

import ipywidgets as widgets
import matplotlib
import numpy as np
import torch
from torch import nn

from cam_tutorial.anymodel.extractor import CAMExtractor
from cam_tutorial.checks import check_model
from cam_tutorial.evaluation import model_device
from cam_tutorial.viz import draw_box, overlay

__all__ = ["CAMExplorer", "load_image_bytes", "uploaded_files"]

_TOP_K = 5
_BOX_COLOUR = (255, 40, 40)  # the CAM box: red
_GT_COLOUR = (40, 230, 40)  # the ground truth: green


def load_image_bytes(data: bytes, size: int) -> torch.Tensor:
    """Decode an uploaded image (PNG, JPEG, ...), resize its shorter side to ``size``, crop the
    centre ``size x size`` and normalise it like the lab's images: ``(3, size, size)`` float32.
    Used in no chapter directly."""
    from PIL import Image, UnidentifiedImageError

    from cam_tutorial.real.datasets import photo_to_tensor

    try:
        picture = Image.open(io.BytesIO(bytes(data)))
        picture.load()
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError("the uploaded file is not an image that Pillow can read (use PNG or JPEG)") from err
    return photo_to_tensor(picture, size)


def uploaded_files(value: Any) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of each file in a ``FileUpload.value``, whichever ipywidgets made it (what
    the explorer's upload button reads, chapter 8).
    Used in no chapter directly.

    ipywidgets 8 gives a tuple of dicts ``{"name", "type", "size", "content" (memoryview), ...}``;
    ipywidgets 7 (Colab) gives a dict ``{name: {"metadata": {...}, "content": bytes}}``.

    Example:
        >>> uploaded_files(({"name": "a.png", "content": memoryview(b"PNG")},))
        [('a.png', b'PNG')]
        >>> uploaded_files({"b.png": {"metadata": {"name": "b.png"}, "content": b"PNG"}})
        [('b.png', b'PNG')]
    """
    if isinstance(value, dict):  # ipywidgets 7
        entries = list(value.items())
    elif isinstance(value, (tuple, list)):  # ipywidgets 8
        entries = [(entry.get("name", "upload") if isinstance(entry, dict) else "upload", entry) for entry in value]
    else:
        raise TypeError(f"an upload's value should be a tuple (ipywidgets 8) or a dict (ipywidgets 7), got "
                        f"{type(value).__name__}; upgrade ipywidgets to 7.6 or later")
    files = []
    for name, entry in entries:
        if not isinstance(entry, dict) or "content" not in entry:
            raise ValueError(f"the uploaded file {name!r} has no 'content': this ipywidgets version's FileUpload "
                             "is not supported; use ipywidgets 7.6 or later, or call explorer.show_bytes(data)")
        files.append((str(name), bytes(entry["content"])))
    return files


def _png_with_boxes(rgb: np.ndarray, scale: int, boxes: Sequence[tuple[Any, tuple[int, int, int]]]) -> bytes:
    """``rgb`` enlarged ``scale`` times, with each ``(box, colour)`` drawn on it (boxes in the small
    image's pixels, exclusive ends), as PNG bytes."""
    import cv2
    from PIL import Image

    picture = np.ascontiguousarray(np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1))
    for box, colour in boxes:
        x0, y0, x1, y1 = (int(round(float(v) * scale)) for v in box)
        cv2.rectangle(picture, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), colour, max(1, scale // 2))
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()


class CAMExplorer(widgets.VBox):
    """The interactive CAM explorer for ``model`` on ``dataset`` (items ``(image, label[, box[, mask]])``).
    Used in the appendix.

    Display it as a cell's last expression. It starts at item 0, threshold 0.2 (the paper's) and
    opacity 0.5.

    Args:
        model: a CAM classifier (global pooling + one linear layer) in eval mode.
        dataset: e.g. :class:`~cam_tutorial.lab.SyntheticShapes`.
        class_names: names of the classes; default ``dataset.class_names``.
        display_size: the picture's side, in screen pixels.

    Attributes (the controls, public so that they can be driven from code and tests):
        index: ``IntSlider`` over the dataset's items.
        upload: ``FileUpload`` for a photograph (resized to the model's input size).
        class_choice: ``Dropdown`` of the top-5 classes with their probabilities.
        opacity: ``FloatSlider`` of the overlay's opacity.
        threshold: ``FloatSlider`` of the box threshold (fraction of the map's maximum).
        image: ``Image`` with the current overlay as PNG bytes.
        scores: ``HTML`` with the class, probability, logit, box and IoU.
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: Any,
        class_names: Sequence[str] | None = None,
        *,
        display_size: int = 320,
    ) -> None:
        check_model(model)
        if len(dataset) == 0:
            raise ValueError("the dataset is empty")
        if isinstance(display_size, bool) or not isinstance(display_size, numbers.Integral) \
                or not 1 <= display_size <= 4096:
            raise ValueError(f"display_size must be a whole number of pixels in [1, 4096], got {display_size!r}: "
                             "e.g. display_size=320")
        self.model, self.dataset, self.display_size = model, dataset, int(display_size)
        self.image_size = int(getattr(dataset, "image_size", 0) or _dataset_item(dataset, 0)[0].shape[-1])
        names = class_names if class_names is not None else getattr(dataset, "class_names", None)
        self.class_names = list(names) if names is not None else None

        style, layout = {"description_width": "80px"}, widgets.Layout(width="420px")
        self.index = widgets.IntSlider(value=0, min=0, max=len(dataset) - 1, description="lab image", style=style,
                                       layout=layout, continuous_update=False)
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload a photo")
        self.class_choice = widgets.Dropdown(description="class", style=style, layout=layout)
        self.opacity = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="opacity",
                                           style=style, layout=layout, readout_format=".2f")
        self.threshold = widgets.FloatSlider(value=0.2, min=0.0, max=1.0, step=0.05, description="threshold",
                                             style=style, layout=layout, readout_format=".2f")
        self.image = widgets.Image(format="png", width=self.display_size, height=self.display_size)
        self.scores = widgets.HTML()
        legend = widgets.HTML("<span style='color:#e02828'>&#9632;</span> CAM box (largest region above "
                              "threshold &times; max) &nbsp; <span style='color:#28e628'>&#9632;</span> ground truth")
        super().__init__([
            widgets.HBox([self.index, self.upload]), self.class_choice, self.opacity, self.threshold,
            self.image, self.scores, legend,
        ])

        self._source, self._tensor, self._gt_box = "", None, None
        self._top: dict[int, tuple[float, float, np.ndarray]] = {}  # class -> probability, logit, map
        self._updating = False
        self.index.observe(lambda change: self.show_item(change["new"]), names="value")
        self.upload.observe(self._on_upload, names="value")
        for control in (self.class_choice, self.opacity, self.threshold):
            control.observe(lambda change: self.redraw(), names="value")
        self.show_item(0)

    # -- inputs ----------------------------------------------------------------------------------

    def show_item(self, index: int) -> None:
        """Explain item ``index`` of the dataset (what the slider does; a negative index counts from
        the end, as in Python, and moves the slider there).

        Items without a box (``(image, label)``) or with an unknown one (NaNs) draw no ground truth.
        """
        count = len(self.dataset)
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not -count <= index < count:
            raise ValueError(f"index must be an integer in [{-count}, {count - 1}] (the dataset has {count} items; "
                             f"a negative index counts from the end), got {index!r}")
        position = int(index) % count
        if self.index.value != position:  # e.g. index -1: move the slider, whose observer shows the item
            self.index.value = position
            return
        image, label, box = _dataset_item(self.dataset, position)
        gt = box if box is not None and np.isfinite(box).all() else None
        self._set_image(image, f"lab image {position} (true class: {self._name(label)})", gt)

    def show_bytes(self, data: bytes, name: str = "upload") -> None:
        """Explain an uploaded image given as file bytes (what the upload button does)."""
        self._set_image(load_image_bytes(data, self.image_size), f"uploaded {name}", None)

    def _on_upload(self, change: dict) -> None:
        files = uploaded_files(change["new"])
        if files:
            name, data = files[-1]  # one file (multiple=False); the latest if a version keeps several
            self.show_bytes(data, name)

    def _set_image(self, image: torch.Tensor, source: str, gt_box: np.ndarray | None) -> None:
        self._tensor = image.detach().float().cpu()
        self._source, self._gt_box = source, gt_box
        with CAMExtractor(self.model) as cam:
            out = cam(self._tensor[None].to(model_device(self.model)), top_k=min(_TOP_K, cam.num_classes))
        logits = out.logits[0].float()
        probabilities = logits.softmax(dim=0)
        self._top = {int(c): (float(probabilities[c]), float(logits[c]), m)
                     for c, m in zip(out.classes[0], out.maps[0].float().cpu().numpy())}
        self._updating = True  # one redraw for the new image, not one per control changed
        try:
            self.class_choice.options = [(f"{self._name(c)} (p = {p:.3f})", c) for c, (p, _, _) in self._top.items()]
            self.class_choice.value = next(iter(self._top))
        finally:
            self._updating = False
        self.redraw()

    def _name(self, c: int) -> str:
        # A class past the names given (a model with more outputs than names) shows its index.
        known = self.class_names is not None and 0 <= c < len(self.class_names)
        return str(self.class_names[c]) if known else f"class {c}"

    # -- output ----------------------------------------------------------------------------------

    @property
    def current(self) -> dict[str, Any]:
        """The state shown: source, class, probability, logit, map, box, threshold, IoU."""
        from cam_tutorial.boxes import box_from_cam, box_iou  # boxes pulls in OpenCV: only when drawing

        c = self.class_choice.value
        probability, logit, cam = self._top[c]
        box = box_from_cam(cam, float(self.threshold.value))
        iou = None if self._gt_box is None else float(box_iou(box, self._gt_box)[0, 0])
        return {
            "source": self._source, "class": c, "class_name": self._name(c), "probability": probability,
            "logit": logit, "map": cam, "box": box, "gt_box": self._gt_box, "threshold": float(self.threshold.value),
            "iou": iou,
        }

    def _rgb_image(self) -> np.ndarray:
        from cam_tutorial.lab import denormalize

        return denormalize(self._tensor).permute(1, 2, 0).numpy()

    def redraw(self) -> None:
        """Recompute the box for the chosen class and threshold; redraw the picture and scores."""
        if self._updating or self.class_choice.value is None:
            return
        state = self.current
        rgb = np.round(overlay(self._rgb_image(), state["map"], float(self.opacity.value)) * 255).astype(np.uint8)
        boxes = [(state["gt_box"], _GT_COLOUR)] if state["gt_box"] is not None else []
        self.image.value = _png_with_boxes(rgb, max(1, self.display_size // self.image_size),
                                           boxes + [(state["box"], _BOX_COLOUR)])
        self.scores.value = _scores_html(state)

    def figure(self, figsize: tuple[float, float] = (8.0, 4.0)) -> "matplotlib.figure.Figure":
        """The current state as a matplotlib figure: the image with boxes, and the overlay.

        Use it right after displaying the widget, so pages that cannot run widgets show the same.
        """
        import matplotlib.pyplot as plt

        state, rgb = self.current, self._rgb_image()
        fig, axes = plt.subplots(1, 2, figsize=figsize)
        axes[0].imshow(rgb)
        axes[0].set_title(state["source"])
        axes[1].imshow(overlay(rgb, state["map"], float(self.opacity.value)))
        axes[1].set_title(f"CAM of '{state['class_name']}' (p = {state['probability']:.2f})")
        for ax in axes:
            if state["gt_box"] is not None:
                draw_box(ax, state["gt_box"], np.array(_GT_COLOUR) / 255, "ground truth", linewidth=2)
            draw_box(ax, state["box"], np.array(_BOX_COLOUR) / 255,
                     f"CAM box, threshold {state['threshold']:.2f}", linewidth=2)
            ax.set_xlabel("x (pixels)")
            ax.set_ylabel("y (pixels)")
        axes[1].legend(loc="lower right", fontsize=8)
        iou = f", IoU {state['iou']:.2f}" if state["iou"] is not None else ""
        fig.suptitle(f"CAM explorer: a static copy of the widget's state{iou}")
        fig.tight_layout()
        return fig


def _scores_html(state: dict[str, Any]) -> str:
    """The line under the picture: source, class, probability, logit, box, threshold, IoU."""
    iou = f" &middot; IoU with ground truth {state['iou']:.2f}" if state["iou"] is not None else ""
    return (
        f"{html.escape(state['source'])}: <b>{html.escape(state['class_name'])}</b> "
        f"p = {state['probability']:.3f} (logit {state['logit']:.2f}) &middot; box "
        f"{tuple(int(v) for v in state['box'])} at threshold {state['threshold']:.2f}{iou}"
    )


def _dataset_item(dataset: Any, index: int) -> tuple[torch.Tensor, int, np.ndarray | None]:
    """``(image, label, box or None)`` of item ``index``: items ``(image, label[, box[, mask]])``."""
    item = dataset[int(index)]
    if not isinstance(item, (tuple, list)) or len(item) < 2 or not isinstance(item[0], torch.Tensor):
        got = f"a {len(item)}-tuple" if isinstance(item, (tuple, list)) else type(item).__name__
        raise TypeError(
            f"dataset items must be (image, label), (image, label, box) or (image, label, box, mask) "
            f"with image a (3, H, W) tensor, got {got}; wrap the dataset so that its items look like that"
        )
    box = None
    if len(item) > 2 and item[2] is not None:
        box = np.asarray(item[2], dtype=np.float64).reshape(-1)
        if box.shape != (4,):
            raise ValueError(f"item {int(index)} has a box of shape {tuple(np.shape(item[2]))}: a box is four "
                             "numbers (x0, y0, x1, y1) in pixels")
    return item[0], int(item[1]), box
