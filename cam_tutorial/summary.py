"""Counting what a model costs: parameters, FLOPs, output shapes and receptive fields.

Used by the chapters that compare architectures (FC vs GAP heads, ResNet-18 vs ResNet18B). FLOPs
are counted by PyTorch's own ``FlopCounterMode`` (a multiply-add counts as 2 FLOPs), so they cover
convolutions and linear layers, the operations that dominate these networks.

Example:
    >>> from cam_tutorial.models import ResNet18B
    >>> rows = stage_table(ResNet18B(width=8), image_size=64)
    >>> rows[-1]["output"]
    '64x4x4'
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cam_tutorial.evaluation import model_device

__all__ = [
    "count_parameters",
    "count_flops",
    "receptive_field",
    "stage_table",
    "part_table",
    "markdown_table",
]


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``module``.
    Used in chapter 6, and the appendix."""
    return sum(p.numel() for p in module.parameters())


def count_flops(module: nn.Module, inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``module`` on ``inputs`` (a multiply-add counts as 2).
    Used in the appendix."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(inputs)
    return int(counter.get_total_flops())


def receptive_field(features: nn.Module) -> int:
    """Theoretical receptive field, in input pixels, of one unit of the last maps of ``features``.
    Used in the appendix.

    Walks the convolutions and poolings of the main path in order: each layer of kernel ``k``
    widens the field by ``(k - 1) * j``, where ``j`` is the product of the strides before it,
    so ``r = 1 + sum_l (k_l - 1) * prod_{i<l} s_i``. Residual shortcuts are skipped: they never
    see more than the main path.
    """
    field, jump = 1, 1
    skip: set[int] = set()
    for name, m in features.named_modules():
        if name.split(".")[-1] in ("shortcut", "downsample"):  # ours, torchvision's
            skip.update(id(sub) for sub in m.modules())
        if id(m) in skip or not isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            continue
        # an int or a pair (square kernels here); AvgPool2d has no dilation
        k, s, dilation = (int(np.ravel(v)[0]) for v in (m.kernel_size, m.stride, getattr(m, "dilation", 1)))
        field += (dilation * (k - 1)) * jump
        jump *= s
    return field


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(d) for d in t.shape[1:])


def _run_in_turn(model: nn.Module, parts: Iterable[tuple[str, nn.Module]],
                 image_size: int) -> list[tuple[str, nn.Module, torch.Tensor, int]]:
    """``(name, module, output, FLOPs)`` of each of ``parts``, run one after the other on a zero image.

    Runs in eval mode, then gives every submodule of ``model`` its own mode back (a model half in
    train mode, e.g. a frozen backbone under a training head, stays so). The image is made where
    the weights are: a model built on the meta device counts shapes and FLOPs with no memory and
    no arithmetic.
    """
    modes = [(module, module.training) for module in model.modules()]
    x, runs = torch.zeros(1, 3, image_size, image_size, device=model_device(model)), []
    try:
        model.eval()
        for name, module in parts:
            counter = FlopCounterMode(display=False)
            with torch.no_grad(), counter:
                x = module(x)
            runs.append((name, module, x, int(counter.get_total_flops())))
    finally:
        for module, training in modes:
            module.training = training
    return runs


def stage_table(model: nn.Module, image_size: int = 224) -> list[dict[str, Any]]:
    """One row per child of ``model.features``: output shape, parameters, FLOPs, receptive field.
    Used in chapter 2, and the appendix.

    Rows are plain dicts (``name``, ``output``, ``params``, ``mflops``, ``receptive_field``), ready
    for :func:`markdown_table`. Runs one forward pass on zeros in eval mode, then gives every
    submodule back its mode.
    """
    runs = _run_in_turn(model, model.features.named_children(), image_size)
    return [{"name": name, "output": _shape(x), "params": count_parameters(child), "mflops": flops / 1e6,
             "receptive_field": receptive_field(model.features[:i + 1])}
            for i, (name, child, x, flops) in enumerate(runs)]


def part_table(model: nn.Module, image_size: int = 224) -> list[dict[str, Any]]:
    """Parameters and FLOPs of each part of a model (``features``, ``pool``, ``classifier``).
    Used in the appendix.

    Also gives each part's share of the whole, which is how the FC head of VGG16 shows itself:
    it holds most of the parameters but few of the FLOPs. Runs in eval mode, like :func:`stage_table`.

    Example:
        >>> import torch
        >>> from cam_tutorial.models import vgg16_fc
        >>> with torch.device("meta"):  # 138 M weights, none allocated
        ...     rows = part_table(vgg16_fc(1000))
        >>> [f"{r['part']} {r['params_share']:.0%}" for r in rows]
        ['features 11%', 'pool 0%', 'classifier 89%']
    """
    parts = [(part, getattr(model, part)) for part in ("features", "pool", "classifier")]
    rows = [{"part": part, "output": _shape(x), "params": count_parameters(module), "gflops": flops / 1e9}
            for part, module, x, flops in _run_in_turn(model, parts, image_size)]
    total_params = sum(r["params"] for r in rows)
    total_flops = sum(r["gflops"] for r in rows)
    for r in rows:
        r["params_share"] = r["params"] / total_params if total_params else 0.0
        r["flops_share"] = r["gflops"] / total_flops if total_flops else 0.0
    return rows


def _format(value: Any, spec: str | None) -> str:
    if value is None:  # a cell with nothing to say (e.g. a baseline that does not classify)
        return "–"
    if spec is not None:
        return _cell(spec.format(value))
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return _cell(str(value))


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell: ``|`` escaped, line breaks as ``<br>``."""
    return text.replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")


def markdown_table(rows: Sequence[dict[str, Any]], columns: Iterable[str] | None = None,
                   headers: Sequence[str] | None = None, formats: dict[str, str] | None = None) -> str:
    """Render rows (dicts) as a Markdown table, for ``IPython.display.Markdown`` in the notebooks.
    Used in chapters 2, 6, 7 and 8, and the appendix.

    Args:
        rows: one dict per row.
        columns: keys to show, in order (default: the first row's keys).
        headers: column titles (default: the keys).
        formats: ``str.format`` specs per key, e.g. ``{"share": "{:.1%}"}``; by default floats
            print with two decimals and ints with thousands separators.

    A ``|`` in a value or a header is escaped and a line break becomes ``<br>``, so that a cell
    stays one cell.

    Example:
        >>> print(markdown_table([{"a": 1234, "b": 0.5}], formats={"b": "{:.0%}"}))
        | a | b |
        |---|---|
        | 1,234 | 50% |
    """
    if not rows:
        raise ValueError("markdown_table needs at least one row")
    columns = list(columns or rows[0].keys())
    headers = list(headers or columns)
    if len(headers) != len(columns):
        raise ValueError(f"{len(headers)} headers for {len(columns)} columns")
    formats = formats or {}
    lines = ["| " + " | ".join(_cell(str(h)) for h in headers) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_format(r[c], formats.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
