"""Where a map lies on the object: the pointing game, and how much of the object (and which of
its parts) the map covers.

Chapters 5 and 6 (GAP against GMP) and the method comparison of chapter 7
(:mod:`cam_tutorial.methods.compare`) use this module. Each function compares maps with the
object's own pixels (a mask, a part map, or boxes made into masks) rather than with a box, so
it says what a box hides: whether the map's peak is on the object, whether the map spreads
over the whole object or one part of it.

Maps follow :mod:`cam_tutorial.boxes`: 2-D, at the masks' resolution; a map holding NaN or
infinity raises ``ValueError``.

Example:
    >>> import numpy as np
    >>> cams = np.zeros((1, 10, 10)); cams[0, 0:4, 0:2] = 1.0; cams[0, 6:10, 6:8] = 0.5
    >>> masks = np.zeros((1, 10, 10), bool); masks[0, 0:4, 0:4] = True  # a 16 px object
    >>> # The peak is on the object; the map's 16 highest pixels cover half of it.
    >>> pointing_game(cams, masks), float(object_size_coverage(cams, masks)[0])
    (1.0, 0.5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from cam_tutorial.boxes import (as_box_lists, as_maps, check_count, check_unit_interval,
                                foreground_mask, to_numpy)

__all__ = [
    "pointing_game",
    "AreaFraction",
    "cam_area_fraction",
    "object_size_coverage",
    "PartCoverage",
    "part_coverage",
]


def _masks_for(masks: Any, maps: list[np.ndarray]) -> list[np.ndarray]:
    """One boolean mask per map (non-zero = object), from ``(N, H, W)`` or a list of 2-D masks,
    each checked against its map's shape."""
    if isinstance(masks, (list, tuple)):
        items = list(masks)
    elif np.ndim(to_numpy(masks)) == 3:
        items = list(to_numpy(masks))
    else:
        raise ValueError(f"masks must be (N, H, W) or a list of 2-D masks, got shape "
                         f"{to_numpy(masks).shape}; give one mask per map, the map's shape")
    if len(items) != len(maps):
        raise ValueError(f"{len(items)} masks for {len(maps)} maps: give one per map")
    out = []
    for i, (item, m) in enumerate(zip(items, maps)):
        mask = to_numpy(item)
        if not (np.issubdtype(mask.dtype, np.number) or mask.dtype == bool):
            raise TypeError(f"mask {i} must hold numbers or booleans, got dtype {mask.dtype}")
        if mask.shape != m.shape:
            raise ValueError(f"mask {i} has shape {mask.shape} but its map has {m.shape}: a mask "
                             "needs the same shape as its map; resize the map (or the mask) to one size")
        if np.issubdtype(mask.dtype, np.floating) and not np.isfinite(mask).all():
            raise ValueError(f"mask {i} contains NaN or infinity: a mask is 0 (background) or "
                             "non-zero (object); fix it upstream or pass np.nan_to_num(mask)")
        out.append(mask != 0)
    return out


def _top_pixels(maps: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per map of ``maps`` ``(N, P)``, its ``counts[i]`` highest pixels ``(N, P)`` bool; ties
    broken by position (a stable sort of ``-value``: row-major, first wins)."""
    order = np.argsort(-maps, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None], axis=1)
    return ranks < counts[:, None]


# --------------------------------------------------------------------------------------------
# Pointing game
# --------------------------------------------------------------------------------------------

def _box_mask(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre ``(x + 0.5, y + 0.5)`` lies inside one of the boxes."""
    ys = np.arange(shape[0])[:, None] + 0.5
    xs = np.arange(shape[1])[None, :] + 0.5
    mask = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask |= (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    return mask


def _object_masks(gt_masks_or_boxes: Any, maps: list[np.ndarray], kind: str) -> list[np.ndarray]:
    """Each map's object as a boolean mask of the map's shape, from masks or boxes.

    ``kind`` as in :func:`pointing_game`: ``"auto"`` reads the first image's entry to tell.
    """
    if kind == "auto":
        # Masks are (H, W) per image, boxes (K, 4) (or (4,)): read the first image's entry.
        if isinstance(gt_masks_or_boxes, (list, tuple)):
            first = to_numpy(gt_masks_or_boxes[0]) if len(gt_masks_or_boxes) else np.zeros(0)
        else:
            whole = to_numpy(gt_masks_or_boxes)
            first = whole[0] if whole.ndim == 3 else np.zeros(0)
        if first.ndim == 2 and first.shape[1] == 4 and first.shape == maps[0].shape:
            raise ValueError("maps 4 px wide: masks and boxes look alike; pass kind='mask' or "
                             "kind='box'")
        kind = "mask" if first.ndim == 2 and first.shape[1] != 4 else "box"
    if kind == "box":
        return [_box_mask(b, m.shape) for b, m in
                zip(as_box_lists(gt_masks_or_boxes, len(maps), "gt_masks_or_boxes"), maps)]
    return _masks_for(gt_masks_or_boxes, maps)


def pointing_game(
    cams: Any,
    gt_masks_or_boxes: Any,
    tolerance: float = 15,
    reference_size: int = 224,
    *,
    kind: str = "auto",
    return_hits: bool = False,
) -> float | tuple[float, np.ndarray]:
    """The pointing game (Zhang et al. 2016): does the map's maximum land on the object?
    Used in chapters 5 and 8, and the appendix.

    A hit when the arg-max pixel lies within ``tolerance`` pixels (Euclidean, between pixel
    centres) of an object pixel: the object's mask dilated by a disc of that radius. The
    tolerance is given at ``reference_size`` (15 px at 224, the ImageNet scale) and scaled to
    each map: :math:`t = \\text{tolerance} \\cdot \\sqrt{HW} / \\text{reference\\_size}`
    (the side, for a square map). Ties for the maximum: the first in raster order (row by
    row, ``np.argmax``), so a constant map points at pixel (0, 0).

    Boxes are turned into masks of the pixels whose centre lies inside (for integer boxes,
    exactly the pixels ``x0 <= x < x1``, ``y0 <= y < y1``). An image with an empty mask is a
    miss.

    Args:
        cams: ``(N, H, W)`` maps or a list of 2-D maps.
        gt_masks_or_boxes: masks ``(N, H, W)`` (non-zero = object) or a list of ``(H, W)``
            masks; or boxes ``(N, 4)``, ``(N, K, 4)`` or a list of ``(K_i, 4)``.
        tolerance: pixels at ``reference_size``; 0 demands the maximum on the object.
        reference_size: the image side the tolerance is given for.
        kind: ``"auto"`` (a 3-D array, or per-image arrays shaped like the maps, are masks;
            anything else boxes; for maps 4 px wide say which), ``"mask"`` or ``"box"``.
        return_hits: also return the per-image hits ``(N,)`` bool.

    Returns:
        The hit rate in [0, 1] (and the hits with ``return_hits``).

    Example:
        >>> import numpy as np
        >>> cams = np.zeros((2, 10, 10)); cams[0, 2, 2] = 1; cams[1, 9, 9] = 1
        >>> pointing_game(cams, [[0, 0, 4, 4], [0, 0, 4, 4]], tolerance=0)
        0.5
    """
    maps = as_maps(cams)
    if float(tolerance) < 0 or not np.isfinite(float(tolerance)):
        raise ValueError(f"tolerance must be a distance >= 0 in pixels (finite, given at "
                         f"reference_size), got {tolerance!r}")
    reference_size = check_count(reference_size, "reference_size (a side in pixels)")
    if kind not in ("auto", "mask", "box"):
        raise ValueError(f"kind must be 'auto', 'mask' or 'box', got {kind!r}")

    masks = _object_masks(gt_masks_or_boxes, maps, kind)
    hits = np.zeros(len(maps), dtype=bool)
    for i, (m, mask) in enumerate(zip(maps, masks)):
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            continue
        py, px = np.unravel_index(int(np.argmax(m)), m.shape)
        radius = float(tolerance) * np.sqrt(m.shape[0] * m.shape[1]) / int(reference_size)
        nearest_sq = np.min((ys - py) ** 2 + (xs - px) ** 2)
        hits[i] = nearest_sq <= radius ** 2
    rate = float(hits.mean())
    return (rate, hits) if return_hits else rate


# --------------------------------------------------------------------------------------------
# Coverage: how much of the object a map covers
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class AreaFraction:
    """Per image, how the region a map keeps compares with the object (arrays of shape (N,)).
    Used in no chapter directly.

    With ``A`` the pixels at or above the threshold (the paper's rule, before taking the
    largest component) and ``M`` the object's mask:

    Attributes:
        object_covered: :math:`|A \\cap M| / |M|`, the fraction of the object the map covers.
        area_ratio: :math:`|A| / |M|`, the map's area relative to the object's (1 = same size).
        precision: :math:`|A \\cap M| / |A|`, the fraction of the map's area on the object.
        cam_area: :math:`|A| / (HW)`, the fraction of the image the map keeps.
        object_area: :math:`|M| / (HW)`, the fraction of the image the object fills.

    ``object_covered`` and ``area_ratio`` are NaN for an image with an empty mask (use
    ``np.nanmean``); ``A`` is never empty.
    """

    object_covered: np.ndarray
    area_ratio: np.ndarray
    precision: np.ndarray
    cam_area: np.ndarray
    object_area: np.ndarray

    def means(self) -> dict[str, float]:
        """The mean of each per-image measure over the images (NaN ignored)."""
        return {name: float(np.nanmean(getattr(self, name))) for name in
                ("object_covered", "area_ratio", "precision", "cam_area", "object_area")}


def cam_area_fraction(cams: Any, masks: Any, threshold: float = 0.2) -> AreaFraction:
    """How much of the object each map covers, and how much it spills over.
    Used in the appendix.

    The region ``A`` is the set of pixels the paper's rule keeps, at or above ``threshold``
    times the map's maximum (the same rule and degenerate-map handling as
    :func:`~cam_tutorial.boxes.box_from_cam`, without the largest-component step): a map that
    lights up one part of the object covers little of it; a map that lights up the object and
    its surroundings covers it all with a large ``area_ratio``.

    Args:
        cams: one map ``(H, W)`` or ``(N, H, W)`` / a list of maps.
        masks: the objects' masks, same shapes (non-zero = object).
        threshold: fraction of each map's maximum, in [0, 1].

    Returns:
        An :class:`AreaFraction` of per-image arrays.

    Example:
        >>> import numpy as np
        >>> cam = np.zeros((10, 10)); cam[0:5, 0:4] = 1      # 20 px kept
        >>> mask = np.zeros((10, 10), bool); mask[0:5, 0:8] = True  # 40 px object
        >>> r = cam_area_fraction(cam, mask)
        >>> float(r.object_covered[0]), float(r.area_ratio[0]), float(r.precision[0])
        (0.5, 0.5, 1.0)
    """
    threshold = float(check_unit_interval(threshold, "threshold")[0])
    if np.ndim(to_numpy(cams)) == 2 and not isinstance(cams, (list, tuple)):
        cams, masks = [cams], [masks]
    maps = as_maps(cams)
    # Per image: |A|, |M|, |A ∩ M| and the number of pixels HW.
    kept = [foreground_mask(m, threshold) for m in maps]
    n_kept, n_obj, n_both, n_all = np.array([(a.sum(), o.sum(), (a & o).sum(), a.size)
                                             for a, o in zip(kept, _masks_for(masks, maps))], float).T
    with np.errstate(invalid="ignore", divide="ignore"):
        return AreaFraction(
            object_covered=np.where(n_obj > 0, n_both / n_obj, np.nan),
            area_ratio=np.where(n_obj > 0, n_kept / n_obj, np.nan),
            precision=n_both / n_kept, cam_area=n_kept / n_all, object_area=n_obj / n_all,
        )


def object_size_coverage(cams: Any, masks: Any) -> np.ndarray:
    """Per image, the share of the object covered by the map's ``|M|`` highest-valued pixels.
    Used in chapter 6.

    A threshold-free comparison of maps: each map keeps exactly as many pixels as its object has
    (``|M|``, the mask's size), its highest-valued ones, so a map that keeps more of the image
    gains nothing from it. Returns ``|top_|M|(cam) ∩ M| / |M|`` per image: 1 when the map's
    highest values lie exactly on the object. Ties at the cut are broken by position (row-major,
    first wins), so the result is deterministic. Images with an empty mask give NaN.

    Args:
        cams: ``(N, H, W)`` maps (array or tensor), a list of ``(H, W)`` maps of one size, or
            one ``(H, W)`` map.
        masks: the objects' masks, same shape (non-zero = object).

    Raises:
        ValueError: a map or mask with NaN or infinity, wrong ranks, masks whose shape or
            number differs from the maps'.

    Example:
        >>> import numpy as np
        >>> cam = np.array([[3., 2.], [1., 0.]])
        >>> mask = np.array([[True, False], [True, False]])        # the left column, 2 px
        >>> object_size_coverage(cam, mask)                        # top 2 px: (0,0), (0,1)
        array([0.5])
    """
    if not isinstance(cams, (list, tuple)) and np.ndim(to_numpy(cams)) == 2:
        cams, masks = [cams], [masks]
    map_list = as_maps(cams)
    objects_list = _masks_for(masks, map_list)
    if len({m.shape for m in map_list}) > 1:
        raise ValueError("object_size_coverage needs maps of one size, got "
                         f"{sorted({m.shape for m in map_list})}; resize them to one size")
    inside = np.stack(objects_list).reshape(len(map_list), -1)
    sizes = inside.sum(1)
    top = _top_pixels(np.stack(map_list).reshape(len(map_list), -1), sizes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sizes > 0, (inside & top).sum(1) / sizes, np.nan)


@dataclass(frozen=True)
class PartCoverage:
    """Per image and part, how much of each part a map covers (arrays over N images, P parts).
    Used in no chapter directly.

    Attributes:
        covered: ``(N, P)`` the share of part ``p``'s pixels in the kept region (NaN where the
            image has no pixel of that part).
        parts_covered: ``(N,)`` how many parts have at least half their pixels covered (of
            the parts in :func:`part_coverage`'s ``counted``).
        peak_part: ``(N,)`` the part under the map's maximum: ``p`` for part ``p``, ``-1`` for
            the background.
    """

    covered: np.ndarray
    parts_covered: np.ndarray
    peak_part: np.ndarray

    def mean_covered(self) -> np.ndarray:
        """``(P,)`` each part's mean covered share over the images that show it."""
        with np.errstate(invalid="ignore"):
            return np.array([np.nanmean(column) if np.isfinite(column).any() else np.nan
                             for column in self.covered.T])

    def peak_shares(self, num_parts: int) -> np.ndarray:
        """``(num_parts + 1,)`` the share of images whose maximum lies on each part, the
        background last."""
        counts = np.bincount(np.where(self.peak_part < 0, num_parts, self.peak_part), minlength=num_parts + 1)
        return counts / max(len(self.peak_part), 1)


def part_coverage(cams: Any, part_maps: Any, num_parts: int, threshold: float | None = 0.2, *,
                  counted: Sequence[int] | None = None) -> PartCoverage:
    """Which parts of each object a map covers: the measure behind "GAP covers the whole extent,
    GMP one part".
    Used in the appendix.

    A part map labels each pixel with its part: 0 for the background, ``p + 1`` for part ``p``
    (the lab's :meth:`~cam_tutorial.lab.SyntheticShapes.part_map`). The kept region ``A`` is
    the paper's (pixels at or above ``threshold`` times the map's maximum, as in
    :func:`cam_area_fraction`), or with ``threshold=None`` the map's ``|M|`` highest pixels, a
    region exactly the object's size (as in :func:`object_size_coverage`). Then for part ``p``
    with pixels ``P_p``, ``covered = |A ∩ P_p| / |P_p|``; a part counts as covered from half.

    Args:
        cams: ``(N, H, W)`` maps, at the part maps' resolution.
        part_maps: ``(N, H, W)`` integer part labels in ``[0, num_parts]``.
        num_parts: the number of parts ``P``.
        threshold: the fraction of the maximum, in [0, 1], or ``None`` for object-sized regions.
        counted: the parts ``parts_covered`` counts (default all).

    Raises:
        ValueError: maps with NaN or infinity, part maps of another shape or with labels
            outside ``[0, num_parts]``, or a bad threshold or part index.

    Example:
        >>> import numpy as np
        >>> parts = np.array([[[1, 1, 2, 2]]])          # part 0 on the left, part 1 on the right
        >>> cam = np.array([[[1.0, 0.9, 0.1, 0.0]]])    # the map lights up the left part only
        >>> found = part_coverage(cam, parts, num_parts=2)
        >>> found.covered.tolist(), found.parts_covered.tolist(), found.peak_part.tolist()
        ([[1.0, 0.0]], [1], [0])
    """
    maps = np.stack(as_maps(cams))
    labels = to_numpy(part_maps)
    if labels.shape != maps.shape:
        raise ValueError(f"part_maps have shape {labels.shape}, the maps {maps.shape}: give one part map "
                         "per map, at the maps' resolution (upsample the maps first)")
    num_parts = check_count(num_parts, "num_parts")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0
                        or labels.max() > num_parts):
        raise ValueError(f"part labels must be integers in [0, {num_parts}] (0 = background), got "
                         f"{labels.dtype} in [{labels.min()}, {labels.max()}]")
    if threshold is not None:
        threshold = float(check_unit_interval(threshold, "threshold")[0])
    counted = tuple(range(num_parts)) if counted is None else tuple(int(p) for p in counted)
    if any(not 0 <= p < num_parts for p in counted):
        raise ValueError(f"counted parts must be in [0, {num_parts}), got {counted}")
    if threshold is None:
        sizes = (labels > 0).reshape(len(maps), -1).sum(1)
        kept = _top_pixels(maps.reshape(len(maps), -1), sizes).reshape(maps.shape)
    else:
        kept = np.stack([foreground_mask(m, threshold) for m in maps])
    covered = np.full((len(maps), num_parts), np.nan)
    for p in range(num_parts):
        on = labels == p + 1
        n = on.reshape(len(maps), -1).sum(1)
        hit = (on & kept).reshape(len(maps), -1).sum(1)
        covered[:, p] = np.where(n > 0, hit / np.maximum(n, 1), np.nan)
    peak = labels.reshape(len(maps), -1)[np.arange(len(maps)), maps.reshape(len(maps), -1).argmax(1)]
    counts = (np.nan_to_num(covered[:, list(counted)], nan=0.0) >= 0.5).sum(1)
    return PartCoverage(covered=covered, parts_covered=counts, peak_part=peak.astype(np.int64) - 1)
