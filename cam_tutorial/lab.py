"""The lab (``SyntheticShapes``): a procedurally generated dataset with exact ground truth.

The lab is a synthetic dataset made for studying localisation: ten classes, one object per
image, on a cluttered background, with the ground truth that real datasets rarely have: a pixel
mask, a tight box and a *part map* for every image. Item ``i`` of a split is *generated* from
``(seed, split, i)``, never stored, so it is the same on every call, in every DataLoader worker
and on every machine, and it costs no download. Two kinds of object (:data:`OBJECTS`):

* ``objects="shapes"`` (the default; the ``ci`` preset's): the class's polygon (a circle, a star, a
  heart, ...) is the whole object, scaled so its circumscribed diameter is a fraction ``scale``
  (default 0.45 to 0.9) of the image side, stretched a little (aspect up to ``stretch``),
  rotated (default up to 20 degrees either way), flat, striped or textured; it has one part.
* ``objects="creatures"`` (the book's outputs, the ``cpu`` and ``gpu`` presets), described
  below: a body and four parts that carry the class.

What makes a creature (every random draw comes from ``numpy.random.default_rng([seed, split_id,
i])`` and has a name: :class:`_Draws`, :class:`_Stroke`, :class:`_Decoy` and the colour draws of
:func:`_draw_scene`):

* **class**: one of :data:`CLASS_NAMES`. Labels are balanced exactly: every block of ten
  consecutive items holds each class once, in a seeded order.
* **object**: five parts (:data:`PART_NAMES`). The *body* is an ellipse, the same
  for every class, so it tells nothing. The *head*, the *tail* and two *limbs* all have the
  class's shape (a circle, a star, a heart, ...) at three sizes, spread over the object: the
  head and the tail at the two ends of the body, a limb on each side. Any one of them suffices
  to tell the class, so a network can classify from one part or from all of them, which is the
  choice the paper's GAP vs GMP argument is about. The creature's length is a fraction ``scale``
  (default 0.45 to 0.85) of the image side; it is rotated (default up to 20 degrees either way), each part turned
  a little more, placed at random inside ``region``. The body is flat (half the objects), striped
  or textured in a colour far from the background's; the parts in another colour, far from both.
* **background**: low-frequency noise mixed with a texture cut from images that ship inside
  scikit-image (``grass``, ``gravel``, ``brick``, ``moon``), coloured by a palette of three
  colours around a random one; distractors that belong to no class (thin lines, small blobs,
  thin arcs); and up to two *decoys*: lone parts of other classes, so that no single part-shaped
  patch of the image decides the class.
* **ground truth**: ``mask`` is the object's pixels (polygons filled without anti-aliasing);
  ``box = (x0, y0, x1, y1)`` is tight around it, in pixels, ``x1``/``y1`` exclusive;
  :meth:`SyntheticShapes.part_map` labels each object pixel with its part.

After the polygons' vertices are rounded to 1/16 px, every step works on integers (OpenCV
drawing, bit-exact resizing, integer blending, exact lookup tables for the normalisation), so
the pixels do not depend on the machine's floating-point or SIMD paths. :data:`LAB_VERSION`
names the generator: it enters every zoo model's identity, so a change here never silently
reuses models trained on other pixels.

Example:
    >>> from cam_tutorial.lab import SyntheticShapes, CLASS_NAMES, PART_NAMES
    >>> ds = SyntheticShapes("train", length=20, image_size=64)
    >>> image, label, box, mask = ds[0]
    >>> tuple(image.shape), tuple(mask.shape), CLASS_NAMES[label] in ds.class_names
    ((3, 64, 64), (64, 64), True)
    >>> bool(mask[int(box[1]):int(box[3]), int(box[0]):int(box[2])].sum() == mask.sum())
    True
    >>> creatures = SyntheticShapes("train", length=20, image_size=64, objects="creatures")
    >>> [PART_NAMES[p - 1] for p in sorted(set(creatures.part_map(0).ravel().tolist()) - {0})]
    ['body', 'head', 'tail', 'limb 1', 'limb 2']
"""


from __future__ import annotations

import functools
import logging
import math
import operator
from typing import Any, NamedTuple, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "LAB_VERSION",
    "CLASS_NAMES",
    "MEAN",
    "STD",
    "SPLITS",
    "REGIONS",
    "MIN_IMAGE_SIZE",
    "OBJECTS",
    "PART_NAMES",
    "CLASS_PARTS",
    "SyntheticShapes",
    "LabTrainingImages",
    "FreshEachEpoch",
    "normalize_uint8",
    "denormalize",
    "normalization_table",
    "integral_index",
]

logger = logging.getLogger(__name__)


#: The lab generator's version: any change to what an item renders bumps it, and it enters every
#: zoo cache key and resume fingerprint, so old models are never reused for new pixels.
LAB_VERSION = 1

#: The ten classes of the lab, in label order.
CLASS_NAMES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "cross",
    "heart", "crescent", "arrow", "ring", "hourglass",
)
#: ImageNet's channel means and standard deviations (what pretrained models expect).
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Split names and the ids mixed into each item's seed (so the splits are disjoint).
SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
#: Named regions as fractions ``(x0, y0, x1, y1)`` of the image.
REGIONS: dict[str, tuple[float, float, float, float]] = {
    "left": (0.0, 0.0, 0.5, 1.0),
    "right": (0.5, 0.0, 1.0, 1.0),
    "top": (0.0, 0.0, 1.0, 0.5),
    "bottom": (0.0, 0.5, 1.0, 1.0),
}
#: The smallest image side the lab renders (ResNet18B needs 32 px).
MIN_IMAGE_SIZE = 32
#: A region must leave the object at least this many pixels.
_MIN_REGION_PIXELS = 16

_TEXTURE_NAMES = ("grass", "gravel", "brick", "moon")
_MIN_CONTRAST = 110.0  # least RGB distance between the object's colour and the background's
_SUBPIXEL_BITS = 4  # polygon vertices carry 4 fractional bits (1/16 px) for OpenCV


# ----------------------------------------------------------------------------------------------
# Shapes: unit polygons, centred on their bounding box, farthest vertex at distance 1.
# ----------------------------------------------------------------------------------------------

def _arc(cx: float, cy: float, r: float, start_deg: float, end_deg: float, n: int) -> np.ndarray:
    t = np.deg2rad(np.linspace(start_deg, end_deg, n))
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def _regular(n: int, radius: float = 1.0, phase_deg: float = -90.0) -> np.ndarray:
    return _arc(0.0, 0.0, radius, phase_deg, phase_deg + 360.0 * (n - 1) / n, n)


def _star(points: int = 5, inner: float = 0.42) -> np.ndarray:
    outer = _regular(points)
    inner_pts = _regular(points, inner, -90.0 + 180.0 / points)
    return np.stack([outer, inner_pts], axis=1).reshape(-1, 2)


def _heart(n: int = 48) -> np.ndarray:
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))  # image y points down
    return np.stack([x, y], axis=1)


def _crescent(offset: float = 0.5, inner: float = 0.8, n: int = 40) -> np.ndarray:
    # Unit disc minus a disc of radius `inner` centred at (offset, 0): the outer arc runs the long
    # way round through 180 degrees, the inner arc comes back the same way.
    x = (1 - inner**2 + offset**2) / (2 * offset)
    y = math.sqrt(1 - x * x)
    outer_deg = math.degrees(math.atan2(y, x))
    inner_deg = math.degrees(math.atan2(y, x - offset))
    outer = _arc(0.0, 0.0, 1.0, outer_deg, 360.0 - outer_deg, n)
    back = _arc(offset, 0.0, inner, 360.0 - inner_deg, inner_deg, n)
    return np.concatenate([outer, back])


def _normalise(polygons: list[np.ndarray]) -> list[np.ndarray]:
    """Centre on the union's bounding box and scale so the farthest vertex is at radius 1."""
    points = np.concatenate(polygons)
    centre = (points.min(0) + points.max(0)) / 2
    radius = np.sqrt(((points - centre) ** 2).sum(1)).max()
    return [((p - centre) / radius).astype(np.float64) for p in polygons]


def _build_shapes() -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Each class: (outline, hole or None), as float arrays of (x, y) vertices."""
    w = 0.3  # cross arm half-width
    cross = np.array([(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1), (-w, -1), (-w, -w),
                      (-1, -w), (-1, w), (-w, w), (-w, 1)], dtype=np.float64)
    arrow = np.array([(-1, -0.22), (0.15, -0.22), (0.15, -0.62), (1, 0), (0.15, 0.62),
                      (0.15, 0.22), (-1, 0.22)], dtype=np.float64)
    hourglass = np.array([(-0.75, -1), (0.75, -1), (0.13, 0), (0.75, 1), (-0.75, 1),
                          (-0.13, 0)], dtype=np.float64)
    raw: dict[str, list[np.ndarray]] = {
        "circle": [_regular(64)],
        "square": [_regular(4, phase_deg=45.0)],
        "triangle": [_regular(3)],
        "star": [_star()],
        "cross": [cross],
        "heart": [_heart()],
        "crescent": [_crescent()],
        "arrow": [arrow],
        "ring": [_regular(64), _regular(64, radius=0.55)],
        "hourglass": [hourglass],
    }
    shapes = {}
    for name in CLASS_NAMES:
        polys = _normalise(raw[name])
        shapes[name] = (polys[0], polys[1] if len(polys) > 1 else None)
    return shapes


_SHAPES = _build_shapes()
_SHAPE_LIST = [_SHAPES[name] for name in CLASS_NAMES]


# ----------------------------------------------------------------------------------------------
# Cached resources: textures and the normalisation table, made once per process.
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _textures() -> tuple[np.ndarray, ...]:
    """Grey-level textures from scikit-image's bundled images, loaded once per process."""
    import skimage.data  # imported here: only the lab needs scikit-image

    textures = []
    for name in _TEXTURE_NAMES:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 3:
            image = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
        # Stretch the contrast so every texture spans 0..255 (integer arithmetic, exact).
        lo, hi = int(image.min()), int(image.max())
        image = ((image.astype(np.int32) - lo) * 255 // max(hi - lo, 1)).astype(np.uint8)
        textures.append(np.ascontiguousarray(image))
    return tuple(textures)


@functools.lru_cache(maxsize=1)
def normalization_table() -> np.ndarray:
    """uint8 RGB value -> normalised float32, per channel, as a (1, 256, 3) OpenCV table."""
    values = np.arange(256, dtype=np.float64) / 255.0
    table = np.stack([(values - m) / s for m, s in zip(MEAN, STD)], axis=1)
    return table.astype(np.float32).reshape(1, 256, 3)


@functools.lru_cache(maxsize=1)
def _normalise_planes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same table split per channel: three (1, 256) float32 tables."""
    table = normalization_table()
    return tuple(np.ascontiguousarray(table[0, :, c]).reshape(1, 256) for c in range(3))


@functools.lru_cache(maxsize=4096)
def _block_labels(seed: int, split_id: int, block: int) -> tuple[int, ...]:
    """The labels of items ``10 * block ... 10 * block + 9``: each class once, in seeded order."""
    rng = np.random.default_rng([seed, split_id, block, 0x1ABE1])
    return tuple(int(c) for c in rng.permutation(len(CLASS_NAMES)))


# ----------------------------------------------------------------------------------------------
# Rendering helpers (uint8 in, uint8 out)
# ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _ramp_weights(anchors: int) -> np.ndarray:
    """(256, k) integer weights (summing to 255) of a colour ramp through k evenly spaced anchors."""
    pos = np.arange(256) * (anchors - 1)
    seg = np.minimum(pos // 255, anchors - 2)
    frac = pos - seg * 255
    weights = np.zeros((256, anchors), dtype=np.int64)
    weights[np.arange(256), seg] = 255 - frac
    weights[np.arange(256), seg + 1] += frac
    return weights


def _palette(anchors: np.ndarray) -> np.ndarray:
    """A (1, 256, 3) uint8 colour ramp through the anchor colours (k, 3) uint8, evenly spaced."""
    ramp = (_ramp_weights(len(anchors)) @ anchors.astype(np.int64) + 127) // 255
    return ramp.astype(np.uint8).reshape(1, 256, 3)


def _colourise(pattern: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Grey pattern (h, w) uint8 -> colour image (h, w, 3) uint8 through a palette."""
    return cv2.LUT(cv2.cvtColor(pattern, cv2.COLOR_GRAY2RGB), palette)


def _texture_crop(u: Sequence[float], height: int, width: int, zoom: float) -> np.ndarray:
    """A crop of one texture, resized bit-exactly to (height, width); ``u``: 4 uniforms that pick
    the texture, the crop's position and its flips."""
    textures = _textures()
    tex = textures[int(u[0] * len(textures))]
    th, tw = tex.shape
    ch = min(th, max(2, int(height * zoom)))
    cw = min(tw, max(2, int(width * zoom)))
    y0 = int(u[1] * (th - ch + 1))
    x0 = int(u[2] * (tw - cw + 1))
    flip = int(u[3] * 4)
    crop = tex[y0:y0 + ch, x0:x0 + cw]
    if flip & 1:
        crop = crop[:, ::-1]
    if flip & 2:
        crop = crop[::-1]
    return cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=cv2.INTER_LINEAR_EXACT)


def _parse_region(region: Any) -> tuple[float, float, float, float]:
    known = f"use None, one of {', '.join(map(repr, REGIONS))}, or a tuple of fractions (x0, y0, x1, y1)"
    if region is None:
        return (0.0, 0.0, 1.0, 1.0)
    if isinstance(region, str):
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}: {known}")
        return REGIONS[region]
    try:
        values = tuple(float(v) for v in region)
    except (TypeError, ValueError):
        raise ValueError(f"unknown region {region!r}: {known}") from None
    if len(values) != 4:
        raise ValueError(f"a region tuple needs 4 fractions (x0, y0, x1, y1), got {len(values)}")
    x0, y0, x1, y1 = values
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        raise ValueError(
            f"region {region!r} is not inside the image: need 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1"
        )
    return values


def _composite(under: np.ndarray, alpha: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """``round(under * (1 - alpha) + fill * alpha)`` in integers: ``(under * (255 - a) + fill * a
    + 127) // 255`` for uint8 ``under`` (h, w, 3), ``alpha`` (h, w) and ``fill`` (h, w, 3) or (3,).

    Bit-exact with that formula (``floor(v / 255) == (v + 1 + (v >> 8)) >> 8`` for every ``v`` it
    can take, tested), and several times faster: every array is made three-channel up front, since
    numpy's loops over a broadcast axis of length 3 cost about 10 ns an element.
    """
    height, width = alpha.shape
    a3 = cv2.cvtColor(alpha, cv2.COLOR_GRAY2RGB).astype(np.uint16)
    out = under.astype(np.uint16)
    out *= 255 - a3
    if fill.ndim == 1:  # a flat colour: one row pattern, broadcast over rows (a long inner loop)
        row = np.tile(fill.astype(np.uint16), width)
        out += (a3.reshape(height, width * 3) * row).reshape(height, width, 3)
    else:
        fill16 = fill.astype(np.uint16)
        fill16 *= a3
        out += fill16
    out += 128
    out += out >> 8
    out >>= 8
    return out.astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# The creatures: a shared body and four parts of the class's shape, in units of the body's
# half-length (the body is an ellipse with semi-axes 1 and _BODY_ASPECT).
# ----------------------------------------------------------------------------------------------

#: The parts of every object, in drawing order; :meth:`SyntheticShapes.part_map` stores part
#: ``k`` as the value ``k + 1`` (0 is background).
PART_NAMES: tuple[str, ...] = ("body", "head", "tail", "limb 1", "limb 2")
#: The parts that carry the class: each has the class's shape, and any one of them suffices to
#: tell the class. The body is the same ellipse for every class (it tells nothing).
CLASS_PARTS: tuple[str, ...] = ("head", "tail", "limb 1", "limb 2")

#: The two kinds of lab, with their default ``scale`` and ``rotation``: ``"shapes"`` (one
#: polygon per image, the book's lab) and ``"creatures"`` (a body with four class parts).
OBJECTS: dict[str, tuple[tuple[float, float], float]] = {"shapes": ((0.45, 0.9), 20.0),
                                                         "creatures": ((0.45, 0.85), 20.0)}

_BODY_ASPECT = (0.48, 0.62)  # the body's semi-minor axis, a range in units of its half-length
_HEAD, _TAIL, _LIMB = 0.7, 0.55, 0.45  # part radii (smaller parts learn much more slowly from scratch)
_PART_OVERLAP = 0.75  # how far (in part radii) a part's centre sits outside the body's outline
_PART_TURN = 25.0  # each part's own rotation either way, in degrees, on top of the object's
_LIMB_ALONG = 0.45  # limbs sit at most this far from the body's centre along its axis
_BODY = _regular(48)


class _Draws(NamedTuple):
    """One item's uniform draws in [0, 1), by what they decide (drawn in one call, because
    numpy's per-call cost dominates at 64 px)."""

    size: float
    aspect: float
    angle: float
    x: float
    y: float
    fill: float
    stripe_period: float
    stripe_angle: float
    fill_zoom: float
    texture_zoom: float
    texture_mix: float
    noise_cells: float
    head_turn: float
    tail_turn: float
    limb1_turn: float
    limb2_turn: float
    limb1_along: float
    limb2_along: float
    strokes: float
    decoys: float


class _Stroke(NamedTuple):
    """One distractor that belongs to no class: a thin line, a small blob or a thin arc."""

    kind: float
    xa: float
    ya: float
    xb: float
    yb: float
    e0: float
    e1: float
    e2: float


class _Decoy(NamedTuple):
    """A lone part of another class in the clutter (a head-, tail- or limb-sized polygon)."""

    other: float
    x: float
    y: float
    turn: float
    size: float
    same_colour: float


_MAX_STROKES, _MAX_DECOYS = 3, 2


def _rotation(degrees: float) -> np.ndarray:
    angle = math.radians(degrees)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    return np.array([[cos_a, sin_a], [-sin_a, cos_a]])  # row vectors: p @ R rotates p


def _creature(label: int, draws: _Draws, rotation: float) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """The object's polygons in its own frame (body half-length 1), rotated: body, head, tail
    and two limbs, each ``(outline, hole or None)``."""
    outline, hole = _SHAPE_LIST[label]
    minor = _BODY_ASPECT[0] + (_BODY_ASPECT[1] - _BODY_ASPECT[0]) * draws.aspect
    turn = _rotation(rotation * (2 * draws.angle - 1))
    body = _BODY * np.array([1.0, minor])
    placed: list[tuple[np.ndarray, np.ndarray | None]] = [(body @ turn, None)]
    limb_y = minor + _PART_OVERLAP * _LIMB
    parts = (
        (_HEAD, (1.0 + _PART_OVERLAP * _HEAD, 0.0), draws.head_turn),
        (_TAIL, (-1.0 - _PART_OVERLAP * _TAIL, 0.0), draws.tail_turn),
        (_LIMB, (_LIMB_ALONG * (2 * draws.limb1_along - 1), limb_y), draws.limb1_turn),
        (_LIMB, (_LIMB_ALONG * (2 * draws.limb2_along - 1), -limb_y), draws.limb2_turn),
    )
    for radius, centre, own in parts:
        spin = _rotation(_PART_TURN * (2 * own - 1)) * radius
        shift = np.asarray(centre)
        placed.append(((outline @ spin + shift) @ turn,
                       None if hole is None else (hole @ spin + shift) @ turn))
    return placed


def _fixed_point(polygon: np.ndarray, scale: float, offset: np.ndarray) -> np.ndarray:
    """Vertices in OpenCV's fixed point (pixels times 2**_SUBPIXEL_BITS), as int32."""
    return np.rint(polygon * scale + offset).astype(np.int32)


def _far_colour(candidates: np.ndarray, reference: np.ndarray, least: float) -> np.ndarray:
    """The first candidate colour at least ``least`` (RGB distance) from every reference colour,
    else the farthest one; exact integer arithmetic."""
    dist2 = ((candidates[:, None, :] - reference[None]) ** 2).sum(-1).min(1)
    ok = np.flatnonzero(dist2 >= least**2)
    return candidates[ok[0] if len(ok) else int(np.argmax(dist2))]


def _check_options(split: str, length: int, image_size: int, seed: int, scale: tuple[float, float],
                   clutter: float, rotation: float) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(map(repr, SPLITS))}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length <= 0:
        raise ValueError(f"length must be a positive int, got {length!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise TypeError(f"image_size must be an int, got {type(image_size).__name__}")
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"image_size={image_size} is too small: the lab renders at least "
            f"{MIN_IMAGE_SIZE} px (the models need 32 px); use image_size >= {MIN_IMAGE_SIZE}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    lo, hi = (float(s) for s in scale)
    if not 0.05 <= lo <= hi <= 1.0:
        raise ValueError(f"scale must satisfy 0.05 <= min <= max <= 1, got {scale!r}")
    if not 0.0 <= float(clutter) <= 1.0:
        raise ValueError(f"clutter must be in [0, 1], got {clutter!r}")
    if not 0.0 <= float(rotation) <= 180.0:
        raise ValueError(f"rotation must be in [0, 180] degrees, got {rotation!r}")


def _region_pixels(region: Any, fractions: tuple[float, ...], image_size: int) -> tuple[int, int, int, int]:
    bounds = tuple(round(f * image_size) for f in fractions)
    if min(bounds[2] - bounds[0], bounds[3] - bounds[1]) < _MIN_REGION_PIXELS:
        raise ValueError(
            f"region {region!r} is {bounds[2] - bounds[0]}x{bounds[3] - bounds[1]} px at "
            f"image_size={image_size}: too small for a recognisable object; give it at least "
            f"{_MIN_REGION_PIXELS} px a side"
        )
    return bounds  # type: ignore[return-value]


class _Scene(NamedTuple):
    """What one item's renderer needs besides the pixels: its draws and colours."""

    label: int
    draws: _Draws
    strokes: list[_Stroke]
    decoys: list[_Decoy]
    anchors: np.ndarray
    body_colours: tuple[np.ndarray, np.ndarray]
    part_colour: np.ndarray
    decoy_colour: np.ndarray
    stroke_colours: np.ndarray
    noise: np.ndarray
    background_crop: np.ndarray
    fill_crop: np.ndarray


# ----------------------------------------------------------------------------------------------
# The lab
# ----------------------------------------------------------------------------------------------

class SyntheticShapes(Dataset):
    """The lab: ten classes of shapes (or creatures) on cluttered backgrounds, with a mask, a box
    and a part map per image.

    Each item is ``(image, label, box, mask)``:

    * ``image``: float32 tensor ``(3, H, W)``, normalised with :data:`MEAN` and :data:`STD`
      (``(x / 255 - mean) / std`` per channel);
    * ``label``: int in ``[0, 10)``, an index into :data:`CLASS_NAMES`;
    * ``box``: float32 tensor ``(4,)`` = ``(x0, y0, x1, y1)`` in pixels, tight around the mask,
      ``x1``/``y1`` exclusive (``x1 = last column with mask + 1``);
    * ``mask``: bool tensor ``(H, W)``, the object's pixels (for creatures: body and parts).

    :meth:`part_map` gives which part each pixel belongs to (:attr:`part_names`); :attr:`class_parts`
    says which of them carry the class (their indices in :attr:`part_names`).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``; the splits are disjoint.
        length: number of items (item ``i`` does not depend on ``length``).
        image_size: side of the square images in pixels (>= 32); rendered at that size directly.
        seed: the dataset's seed (a non-negative int).
        region: where the whole object lies: ``None`` (anywhere), ``"left"``, ``"right"``,
            ``"top"``, ``"bottom"`` (halves) or fractions ``(x0, y0, x1, y1)`` of the image.
        objects: ``"shapes"`` (one polygon, the default) or ``"creatures"`` (a body and four class
            parts); see the module's docstring.
        scale: range of the object's size as fractions of the image side: a shape's
            circumscribed diameter, a creature's length (head to tail); default per kind
            (:data:`OBJECTS`). In a region, the range shrinks to fit: at most the region's short
            side, from at most 60% of that.
        clutter: from 0 (smooth background, no texture, no distractors) to 1 (the default).
        rotation: the largest rotation of the object either way, in degrees (180: any angle);
            default per kind.
        stretch: the largest aspect-ratio change of a shape (1: none; creatures ignore it).

    Example:
        >>> ds = SyntheticShapes("val", length=10, image_size=64, region="left")
        >>> all(float(ds[i][2][2]) <= 32 for i in range(len(ds)))
        True
    """

    def __init__(self, split: str = "train", length: int = 10_000, image_size: int = 64, seed: int = 0,
                 region: str | Sequence[float] | None = None, *, objects: str = "shapes",
                 scale: tuple[float, float] | None = None, clutter: float = 1.0, rotation: float | None = None,
                 stretch: float = 1.15) -> None:
        if objects not in OBJECTS:
            raise ValueError(f"unknown objects {objects!r}: use one of {', '.join(map(repr, OBJECTS))}")
        default_scale, default_rotation = OBJECTS[objects]
        scale = default_scale if scale is None else scale
        rotation = default_rotation if rotation is None else rotation
        _check_options(split, length, image_size, seed, scale, clutter, rotation)
        if not 1.0 <= float(stretch) <= 2.0:
            raise ValueError(f"stretch must be in [1, 2], got {stretch!r}")
        fractions = _parse_region(region)
        self.split, self.length, self.image_size, self.seed = split, int(length), int(image_size), int(seed)
        self.region, self.region_fractions, self.objects = region, fractions, objects
        # Pixel bounds of the region: the object's mask stays inside [x0, x1) x [y0, y1).
        self.region_pixels = _region_pixels(region, fractions, self.image_size)
        self.scale = (float(scale[0]), float(scale[1]))
        # In a region, sizes are drawn from a range that fits it, so objects still move around:
        # the largest is the region's short side, the smallest at most 60% of that.
        short = min(fractions[2] - fractions[0], fractions[3] - fractions[1])
        hi_eff = min(self.scale[1], short)
        self._size_range = (min(self.scale[0], 0.6 * hi_eff), hi_eff)
        self.clutter, self.rotation, self.stretch = float(clutter), float(rotation), float(stretch)
        self.version = LAB_VERSION
        self.part_names: tuple[str, ...] = PART_NAMES if objects == "creatures" else ("object",)
        # The parts that tell the class, as indices into part_names: the creatures' four (not the
        # shared body); a shape's one part, the whole object.
        self.class_parts: tuple[int, ...] = (tuple(PART_NAMES.index(name) for name in CLASS_PARTS)
                                             if objects == "creatures" else (0,))
        self.class_names: tuple[str, ...] = CLASS_NAMES
        self.num_classes = len(CLASS_NAMES)

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        kind = "" if self.objects == "shapes" else f", objects={self.objects!r}"
        return (f"SyntheticShapes(split={self.split!r}, length={self.length}, image_size={self.image_size}, "
                f"seed={self.seed}, region={self.region!r}{kind})")

    def label(self, index: int) -> int:
        """The label of item ``index``, without rendering it."""
        index = self._check_index(index)
        return _block_labels(self.seed, SPLITS[self.split], index // 10)[index % 10]

    def labels(self) -> np.ndarray:
        """All labels, in item order (cheap: no rendering)."""
        return np.array([self.label(i) for i in range(self.length)], dtype=np.int64)

    def _check_index(self, index: int) -> int:
        index = integral_index(index)
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} items")
        return index

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]:
        rgb, label, box, mask = self.render(index)
        # Normalise through a lookup table per channel, straight into planar (3, H, W) memory:
        # exact for every uint8 value and faster than float arithmetic plus a transpose.
        image = np.empty((3, self.image_size, self.image_size), dtype=np.float32)
        for plane, table, out in zip(cv2.split(rgb), _normalise_planes(), image):
            cv2.LUT(plane, table, dst=out)
        return torch.from_numpy(image), label, torch.tensor(box, dtype=torch.float32), torch.from_numpy(mask)

    def render(self, index: int) -> tuple[np.ndarray, int, tuple[int, int, int, int], np.ndarray]:
        """Item ``index`` before normalisation: ``(rgb uint8 (H, W, 3), label, box, mask)``."""
        canvas, label, parts = self._render(self._check_index(index), with_parts=True)
        mask = parts > 0
        x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
        return canvas, label, (x, y, x + w, y + h), mask

    def part_map(self, index: int) -> np.ndarray:
        """Which part each pixel of item ``index`` shows: uint8 ``(H, W)``, 0 for the background
        and ``k + 1`` for part ``part_names[k]`` (the creatures' :data:`PART_NAMES`; the
        shapes lab has one part, the object); ``part_map(i) > 0`` is the mask.

        Example:
            >>> ds = SyntheticShapes("test", length=4, image_size=96, objects="creatures")
            >>> sorted(set(ds.part_map(0).ravel().tolist())) == list(range(len(PART_NAMES) + 1))
            True
        """
        return self._render(self._check_index(index), with_parts=True)[2]

    def part_maps(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """The part maps of ``indices`` (default: every item, in order), ``(N, H, W)`` uint8."""
        chosen = range(self.length) if indices is None else indices
        return np.stack([self.part_map(i) for i in chosen])

    def render_image(self, index: int) -> tuple[np.ndarray, int]:
        """Item ``index``'s ``(rgb uint8 (H, W, 3), label)`` only: the pixels :meth:`render` gives,
        without drawing the masks (what training reads, and faster)."""
        canvas, label, _ = self._render(self._check_index(index), with_parts=False)
        return canvas, label

    def training_view(self) -> "LabTrainingImages":
        """This dataset as training reads it: uint8 ``(3, H, W)`` images and labels, normalised on
        the device by :func:`normalize_uint8` (see :class:`LabTrainingImages`)."""
        return LabTrainingImages(self)

    def fresh_each_epoch(self, epoch_size: int) -> "FreshEachEpoch":
        """This dataset read ``epoch_size`` new images per epoch (see :class:`FreshEachEpoch`)."""
        return FreshEachEpoch(self, epoch_size)

    def _render(self, index: int, with_parts: bool) -> tuple[np.ndarray, int, np.ndarray | None]:
        if self.objects == "shapes":
            canvas, label, _, mask = _render_shape(self, index, with_parts)
            return canvas, label, None if mask is None else mask.view(np.uint8)
        scene = _draw_scene(self, index)
        canvas = _background(scene, self.image_size, self.clutter)
        _draw_strokes(canvas, scene)
        polygons = _place(self, scene)
        _draw_decoys(canvas, scene, polygons, self.image_size)
        parts = _draw_creature(canvas, scene, polygons, self.image_size, with_parts)
        if parts is not None and not parts.any():  # cannot happen at scale >= 0.05 and 32 px
            raise RuntimeError(f"item {index} of {self!r} rendered an empty mask; please report this")
        return canvas, scene.label, parts


def _render_shape(lab: "SyntheticShapes", index: int, with_mask: bool
                  ) -> tuple[np.ndarray, int, tuple[int, int, int, int] | None, np.ndarray | None]:
    """One item of the ``objects="shapes"`` lab: its pixels, label, box and mask.

    The draws of this first lab are slots of two arrays (``u``: uniforms, ``b``: bytes), read by
    position; they are kept exactly so that its items, and the shipped models trained on them,
    stay bit-identical (``tests/test_lab_training_view.py`` pins them). The creatures' draws are
    named (:class:`_Draws`).
    """
    label = lab.label(index)
    rng = np.random.default_rng([lab.seed, SPLITS[lab.split], index])
    # All of the item's draws in two calls (numpy's per-call overhead dominates at 64 px):
    # u: uniforms, one slot per decision; b: random bytes for colours and the noise grid.
    u = rng.random(48).tolist()
    b = rng.integers(0, 256, size=112, dtype=np.uint8)
    size = lab.image_size
    clutter = lab.clutter

    canvas, anchors = _shape_background(u, b, size, clutter)

    # -- object colour: the first of 12 candidates far from every background colour ----------
    reference = np.concatenate([anchors, (anchors[:-1] + anchors[1:]) // 2])  # + midpoints
    candidates = b[9:45].reshape(12, 3).astype(np.int64)
    dist2 = ((candidates[:, None, :] - reference[None]) ** 2).sum(-1).min(1)  # exact integers
    ok = np.flatnonzero(dist2 >= _MIN_CONTRAST**2)
    colour_a = candidates[ok[0] if len(ok) else int(np.argmax(dist2))]
    colour_b = np.clip(colour_a + (b[45:48].astype(np.int64) - 128) * 60 // 128, 0, 255)

    _shape_strokes(canvas, u, b, clutter)

    # -- the object: scale, stretch, rotate, place inside the region -------------------------
    outline, hole = _SHAPE_LIST[label]
    lo, hi = lab._size_range
    radius = 0.5 * size * (lo + (hi - lo) * u[2])
    stretch = math.exp(math.log(lab.stretch) * (2 * u[3] - 1))  # aspect 1/s .. s
    angle = math.radians(lab.rotation) * (2 * u[4] - 1)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    sx, sy = radius * stretch, radius / stretch
    transform = np.array([[sx * cos_a, sx * sin_a], [-sy * sin_a, sy * cos_a]])
    outline_px = outline @ transform
    rx0, ry0, rx1, ry1 = lab.region_pixels
    # Vertices stay in [r0 + 0.5, r1 - 1.5]: the mask (pixel centres) and the anti-aliased
    # rim both remain inside the region.
    avail_w, avail_h = rx1 - rx0 - 2.0, ry1 - ry0 - 2.0
    vmin, vmax = outline_px.min(0), outline_px.max(0)
    width, height = float(vmax[0] - vmin[0]), float(vmax[1] - vmin[1])
    shrink = min(1.0, avail_w / width, avail_h / height)
    ox = rx0 + 0.5 - vmin[0] * shrink + (avail_w - width * shrink) * u[5]
    oy = ry0 + 0.5 - vmin[1] * shrink + (avail_h - height * shrink) * u[6]
    one = 1 << _SUBPIXEL_BITS
    scale, offset = shrink * one, np.array([ox * one, oy * one])
    polys = [np.rint(outline_px * scale + offset).astype(np.int32)]
    if hole is not None:
        polys.append(np.rint(hole @ transform * scale + offset).astype(np.int32))

    alpha = np.zeros((size, size), np.uint8)
    cv2.fillPoly(alpha, polys[:1], 255, cv2.LINE_AA, _SUBPIXEL_BITS)
    if hole is not None:
        cv2.fillPoly(alpha, polys[1:], 0, cv2.LINE_AA, _SUBPIXEL_BITS)
    mask = box = None
    if with_mask:
        mask = np.zeros((size, size), np.uint8)
        cv2.fillPoly(mask, polys[:1], 1, cv2.LINE_8, _SUBPIXEL_BITS)
        if hole is not None:
            cv2.fillPoly(mask, polys[1:], 0, cv2.LINE_8, _SUBPIXEL_BITS)
        x, y, w, h = cv2.boundingRect(mask)
        if w == 0 or h == 0:  # cannot happen at scale >= 0.05 and 32 px; guard anyway
            raise RuntimeError(f"item {index} of {lab!r} rendered an empty mask; please report this")
        box, mask = (x, y, x + w, y + h), mask.view(bool)

    # Composite only where the anti-aliased object is (one pixel around the mask), in integers.
    px, py, pw, ph = cv2.boundingRect(alpha)
    fill = _shape_fill(lab.image_size, u, ph, pw, colour_a, colour_b)
    patch = canvas[py:py + ph, px:px + pw]
    patch[...] = _composite(patch, alpha[py:py + ph, px:px + pw], fill)
    return canvas, label, box, mask


def _shape_background(u: Sequence[float], b: np.ndarray, size: int, clutter: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The shapes lab's background (smooth noise and a texture through a 3-colour palette) and
    its palette's anchor colours, from the item's positional draws."""
    cells = 2 + int(u[11] * 5)
    pattern = _background_pattern(b[64:64 + cells * cells].reshape(cells, cells), u[12:16], u[0], u[1], size,
                                  clutter)
    # Three background colours around one base colour: a calm palette, so the object (far
    # from all of them) is the one region that stands out in colour.
    spread = 16 + int(48 * clutter)
    anchors = np.clip(b[0:3].astype(np.int64) + (b[3:12].reshape(3, 3).astype(np.int64) - 128) * spread // 128,
                      0, 255)
    canvas = _colourise(pattern.astype(np.uint8), _palette(anchors))
    return canvas, anchors


def _shape_strokes(canvas: np.ndarray, u: Sequence[float], b: np.ndarray, clutter: float) -> None:
    """The shapes lab's distractors (they belong to no class): thin lines, small blobs, thin arcs."""
    for k in range(int(round(clutter * int(1 + u[20] * 3)))):
        _draw_stroke(canvas, _Stroke(*u[24 + 8 * k:32 + 8 * k]), b[48 + 3 * k:51 + 3 * k])


def _shape_fill(image_size: int, u: Sequence[float], height: int, width: int, colour_a: np.ndarray,
                colour_b: np.ndarray) -> np.ndarray:
    """The object's surface on its (height, width) patch: flat (half the objects), stripes
    or a texture, between two close colours."""
    if u[7] < 0.5:  # flat colour
        return colour_a.astype(np.uint16)
    if u[7] < 0.75:  # stripes at any angle, period 3..8 px at 64 px (integer arithmetic)
        period = max(3, int(image_size * (0.045 + 0.08 * u[8])))
        theta = 2 * math.pi * u[9]
        ca, sa = int(round(1024 * math.cos(theta))), int(round(1024 * math.sin(theta)))
        phase = np.arange(width, dtype=np.int32)[None, :] * ca + np.arange(height, dtype=np.int32)[:, None] * sa
        pattern = (((phase // (period * 512)) & 1) * 255).astype(np.uint8)
    else:  # a texture crop
        pattern = _texture_crop(u[16:20], height, width, zoom=0.5 + 1.5 * u[10])
    palette = _palette(np.stack([colour_a, colour_b]))
    return _colourise(pattern, palette)



#: One creature's draws, each name with its shape, in drawing order: every uniform comes from one
#: call and every byte from another (numpy's per-call cost dominates a small item), split by name.
_UNIFORMS = {"draws": (len(_Draws._fields),), "strokes": (_MAX_STROKES, len(_Stroke._fields)),
             "decoys": (_MAX_DECOYS, len(_Decoy._fields)), "background_crop": (4,), "fill_crop": (4,)}
_BYTES = {"base": (3,), "offsets": (3, 3), "candidates": (24, 3), "tint": (3,),
          "stroke_colours": (_MAX_STROKES, 3), "noise": (6, 6)}
_UNIFORM_COUNT, _BYTE_COUNT = (sum(math.prod(shape) for shape in layout.values()) for layout in (_UNIFORMS, _BYTES))


def _split_draws(values: np.ndarray, layout: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """``values`` cut into the named, shaped pieces of ``layout``, in its order."""
    pieces, start = {}, 0
    for name, shape in layout.items():
        size = math.prod(shape)
        pieces[name] = values[start:start + size].reshape(shape)
        start += size
    return pieces


def _draw_scene(lab: SyntheticShapes, index: int) -> _Scene:
    """Every random decision of item ``index``, each under its own name."""
    label = lab.label(index)
    rng = np.random.default_rng([lab.seed, SPLITS[lab.split], index])
    u = _split_draws(rng.random(_UNIFORM_COUNT), _UNIFORMS)
    b = _split_draws(rng.integers(0, 256, _BYTE_COUNT, dtype=np.uint8), _BYTES)
    draws = _Draws._make(u["draws"].tolist())
    strokes = [_Stroke._make(row) for row in u["strokes"].tolist()]
    decoys = [_Decoy._make(row) for row in u["decoys"].tolist()]
    strokes = strokes[:int(round(lab.clutter * int(1 + draws.strokes * _MAX_STROKES)))]
    decoys = decoys[:int(round(lab.clutter * int(draws.decoys * (_MAX_DECOYS + 1))))]
    base, offsets, candidates, tint = (b[name].astype(np.int64) for name in ("base", "offsets", "candidates", "tint"))
    stroke_colours = b["stroke_colours"]
    cells = 2 + int(draws.noise_cells * 5)
    noise = np.ascontiguousarray(b["noise"][:cells, :cells])
    background_crop, fill_crop = u["background_crop"].tolist(), u["fill_crop"].tolist()
    # Three background colours around one base colour: a calm palette, so the object (far from
    # all of them) is the one region that stands out in colour.
    spread = 16 + int(48 * lab.clutter)
    anchors = np.clip(base + (offsets - 128) * spread // 128, 0, 255)
    reference = np.concatenate([anchors, (anchors[:-1] + anchors[1:]) // 2])  # + midpoints
    body = _far_colour(candidates[:12], reference, _MIN_CONTRAST)
    body_b = np.clip(body + (tint - 128) * 60 // 128, 0, 255)
    # The parts differ from the body as well as from the background, so each shows its shape.
    part = _far_colour(candidates[12:], np.concatenate([reference, body[None], body_b[None]]), _MIN_CONTRAST)
    same = not decoys or decoys[0].same_colour < 0.5  # (no decoys: the colour is never used)
    decoy = part if same else _far_colour(candidates[::-1], reference, _MIN_CONTRAST)
    return _Scene(label, draws, strokes, decoys, anchors, (body, body_b), part, decoy, stroke_colours,
                  noise, np.asarray(background_crop), np.asarray(fill_crop))


def _background_pattern(grid: np.ndarray, crop: Sequence[float], zoom: float, mix: float, size: int,
                        clutter: float) -> np.ndarray:
    """The grey pattern under both labs' backgrounds: the noise ``grid`` resized smoothly, mixed
    with a texture crop (``crop``: 4 uniforms; ``zoom``, ``mix``: uniforms), uint16 in [0, 255]."""
    noise = cv2.resize(grid, (size, size), interpolation=cv2.INTER_LINEAR_EXACT)
    tex = _texture_crop(crop, size, size, zoom=0.6 + 2.0 * zoom)
    tex_weight = int(256 * clutter * (0.15 + 0.35 * mix))
    # (noise * (256 - w) + tex * w) >> 8 in uint16, in place (no temporaries at 224 px).
    pattern = noise.astype(np.uint16)
    pattern *= 256 - tex_weight
    tex16 = tex.astype(np.uint16)
    tex16 *= tex_weight
    pattern += tex16
    pattern >>= 8
    if clutter < 1.0:
        # Less clutter: squeeze the pattern towards mid-grey (fewer colours, less texture).
        keep = int(256 * (0.25 + 0.75 * clutter))
        pattern = (pattern * keep + 128 * (256 - keep)) >> 8
    return pattern


def _background(scene: _Scene, size: int, clutter: float) -> np.ndarray:
    """Smooth noise and a texture through a palette of three close colours."""
    pattern = _background_pattern(scene.noise, scene.background_crop, scene.draws.texture_zoom,
                                  scene.draws.texture_mix, size, clutter)
    return _colourise(pattern.astype(np.uint8), _palette(scene.anchors))


def _draw_stroke(canvas: np.ndarray, stroke: _Stroke, colour: Sequence[int]) -> None:
    """One distractor that belongs to no class: a thin line, a small blob or a thin arc."""
    size = canvas.shape[0]
    thin = max(1, size // 64)
    colour = tuple(int(c) for c in colour)
    pa = (int(stroke.xa * size), int(stroke.ya * size))
    if stroke.kind < 1 / 3:
        cv2.line(canvas, pa, (int(stroke.xb * size), int(stroke.yb * size)), colour, thin, cv2.LINE_AA)
    elif stroke.kind < 2 / 3:
        r = max(1, int(size * (0.015 + 0.03 * stroke.e0)))
        cv2.ellipse(canvas, pa, (r, max(1, int(r * (0.5 + 0.5 * stroke.e1)))), float(int(stroke.e2 * 180)),
                    0.0, 360.0, colour, -1, cv2.LINE_AA)
    else:
        r = max(3, int(size * (0.08 + 0.2 * stroke.e0)))
        start = int(stroke.e1 * 360)
        cv2.ellipse(canvas, pa, (r, r), 0.0, float(start), float(start + 60 + int(stroke.e2 * 150)),
                    colour, thin, cv2.LINE_AA)


def _draw_strokes(canvas: np.ndarray, scene: _Scene) -> None:
    """The creature's distractors that belong to no class."""
    for stroke, colour in zip(scene.strokes, scene.stroke_colours):
        _draw_stroke(canvas, stroke, colour)


class _Placed(NamedTuple):
    polygons: list[tuple[np.ndarray, np.ndarray | None]]  # fixed-point vertices, body first
    part_scale: float  # pixels per body half-length


def _place(lab: SyntheticShapes, scene: _Scene) -> _Placed:
    """The creature scaled to its drawn length, fitted inside the region, in fixed point."""
    draws = scene.draws
    shapes = _creature(scene.label, draws, lab.rotation)
    points = np.concatenate([outline for outline, _ in shapes])
    lo, hi = lab._size_range
    length = lab.image_size * (lo + (hi - lo) * draws.size)
    per_unit = length / (2.0 + _PART_OVERLAP * (_HEAD + _TAIL) + _HEAD + _TAIL)  # head-to-tail span
    rx0, ry0, rx1, ry1 = lab.region_pixels
    # Vertices stay in [r0 + 0.5, r1 - 1.5]: the mask (pixel centres) and the anti-aliased rim
    # both remain inside the region.
    avail_w, avail_h = rx1 - rx0 - 2.0, ry1 - ry0 - 2.0
    span = np.ptp(points, axis=0)
    per_unit *= min(1.0, avail_w / (span[0] * per_unit), avail_h / (span[1] * per_unit))
    vmin = points.min(0) * per_unit
    width, height = float(span[0] * per_unit), float(span[1] * per_unit)
    ox = rx0 + 0.5 - vmin[0] + (avail_w - width) * draws.x
    oy = ry0 + 0.5 - vmin[1] + (avail_h - height) * draws.y
    one = 1 << _SUBPIXEL_BITS
    scale, offset = per_unit * one, np.array([ox * one, oy * one])
    polygons = [(_fixed_point(outline, scale, offset), None if hole is None else _fixed_point(hole, scale, offset))
                for outline, hole in shapes]
    return _Placed(polygons, per_unit)


def _fill(target: np.ndarray, outline: np.ndarray, hole: np.ndarray | None, value: int, line: int) -> None:
    cv2.fillPoly(target, [outline], value, line, _SUBPIXEL_BITS)
    if hole is not None:
        cv2.fillPoly(target, [hole], 0, line, _SUBPIXEL_BITS)


def _alpha_patch(shapes: Sequence[tuple[np.ndarray, np.ndarray | None]], size: int) -> tuple[np.ndarray, int, int]:
    """The anti-aliased alpha of ``shapes`` (fixed-point ``(outline, hole)`` pairs) on the smallest
    patch of the image that holds them, with two pixels of margin for the rim: ``(alpha, x0, y0)``.
    Drawing on a patch instead of the whole image is the same rasterisation, shifted by whole
    pixels, and several times less memory to clear at 224 px."""
    corners = np.concatenate([outline for outline, _ in shapes]) >> _SUBPIXEL_BITS
    x0, y0 = (int(v) for v in np.maximum(corners.min(0) - 2, 0))
    x1, y1 = (int(v) for v in np.minimum(corners.max(0) + 3, size))
    alpha = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), np.uint8)
    shift = np.array([x0 << _SUBPIXEL_BITS, y0 << _SUBPIXEL_BITS], dtype=np.int32)
    for outline, hole in shapes:
        _fill(alpha, outline - shift, None if hole is None else hole - shift, 255, cv2.LINE_AA)
    return alpha, x0, y0


def _paint(canvas: np.ndarray, patch_alpha: tuple[np.ndarray, int, int], fill: Any) -> None:
    """Composite ``fill`` (a colour, or a function of the painted rectangle's height and width
    that returns its surface) onto ``canvas`` where the patch's alpha is non-zero."""
    alpha, x0, y0 = patch_alpha
    px, py, pw, ph = cv2.boundingRect(alpha)
    if pw == 0 or ph == 0:
        return
    patch = canvas[y0 + py:y0 + py + ph, x0 + px:x0 + px + pw]
    surface = fill(ph, pw) if callable(fill) else fill
    patch[...] = _composite(patch, alpha[py:py + ph, px:px + pw], surface)


def _draw_decoys(canvas: np.ndarray, scene: _Scene, placed: _Placed, size: int) -> None:
    """Lone parts of other classes, drawn under the object: the class is in the object's parts,
    not in any one part-shaped patch of the image."""
    if not scene.decoys:
        return
    one = 1 << _SUBPIXEL_BITS
    shapes = []
    for decoy in scene.decoys:
        other = (scene.label + 1 + int(decoy.other * (len(CLASS_NAMES) - 1))) % len(CLASS_NAMES)
        outline, hole = _SHAPE_LIST[other]
        radius = placed.part_scale * (_LIMB + (_HEAD - _LIMB) * decoy.size)
        spin = _rotation(360.0 * decoy.turn) * radius * one
        centre = np.array([radius + decoy.x * (size - 2 * radius), radius + decoy.y * (size - 2 * radius)]) * one
        shapes.append((np.rint(outline @ spin + centre).astype(np.int32),
                       None if hole is None else np.rint(hole @ spin + centre).astype(np.int32)))
    _paint(canvas, _alpha_patch(shapes, size), scene.decoy_colour)


def _draw_creature(canvas: np.ndarray, scene: _Scene, placed: _Placed, size: int,
                   with_parts: bool) -> np.ndarray | None:
    """Body, then parts over it, composited in integers where they are (one pixel around the
    mask); with ``with_parts``, the part map from the same polygons without anti-aliasing."""
    (body, _), *parts = placed.polygons
    _paint(canvas, _alpha_patch([(body, None)], size), lambda height, width: _body_fill(scene, size, height, width))
    _paint(canvas, _alpha_patch(parts, size), scene.part_colour)
    if not with_parts:
        return None
    part_map = np.zeros((size, size), np.uint8)
    _fill(part_map, body, None, 1, cv2.LINE_8)
    on_parts = np.zeros((size, size), np.uint8)
    for value, (outline, hole) in enumerate(parts, start=2):
        _fill(on_parts, outline, hole, value, cv2.LINE_8)
    np.copyto(part_map, on_parts, where=on_parts > 0)
    return part_map


def _body_fill(scene: _Scene, size: int, height: int, width: int) -> np.ndarray:
    """The body's surface on its (height, width) patch: flat (half the objects), stripes or a
    texture, between two close colours; none of it depends on the class."""
    draws = scene.draws
    colour_a, colour_b = scene.body_colours
    if draws.fill < 0.5:
        return colour_a.astype(np.uint16)
    if draws.fill < 0.75:  # stripes at any angle, period 3..8 px at 64 px (integer arithmetic)
        period = max(3, int(size * (0.045 + 0.08 * draws.stripe_period)))
        theta = 2 * math.pi * draws.stripe_angle
        ca, sa = int(round(1024 * math.cos(theta))), int(round(1024 * math.sin(theta)))
        phase = np.arange(width, dtype=np.int32)[None, :] * ca + np.arange(height, dtype=np.int32)[:, None] * sa
        pattern = (((phase // (period * 512)) & 1) * 255).astype(np.uint8)
    else:
        pattern = _texture_crop(scene.fill_crop, height, width, zoom=0.5 + 1.5 * draws.fill_zoom)
    return _colourise(pattern, _palette(np.stack([colour_a, colour_b])))


# ----------------------------------------------------------------------------------------------
# Display
# ----------------------------------------------------------------------------------------------

def integral_index(index: object) -> int:
    """``index`` as an int: Python and numpy integers pass, ``1.7`` or ``"3"`` is a ``TypeError``.

    ``int(1.7)`` would quietly give item 1, so non-integral indices are refused, not truncated.
    """
    if isinstance(index, bool):
        raise TypeError(f"dataset indices must be integers, got the bool {index!r}; use int(index)")
    try:
        return operator.index(index)
    except TypeError:
        raise TypeError(
            f"dataset indices must be integers, got {type(index).__name__} {index!r}; use an int "
            "(int(i) once you know i is whole; numpy integers work too)"
        ) from None


class LabTrainingImages(Dataset):
    """A lab dataset as training reads it: ``(image uint8 (H, W, 3), label)`` items.

    The pixels are :meth:`SyntheticShapes.render`'s, as rendered (channels last), without the
    mask, box and float conversion that training never reads: a batch is a quarter of the float
    batch's bytes to collate and copy. :func:`~cam_tutorial.train.train` (and ``evaluate``)
    normalise uint8 batches on the device with the dataset's :func:`normalize_uint8`, exactly the
    float32 values of the lab's ``__getitem__`` (in channels-last memory), so a model trains on
    the same numbers either way.

    Example:
        >>> lab = SyntheticShapes("val", length=4, image_size=32)
        >>> image, label = lab.training_view()[1]
        >>> image.dtype, tuple(image.shape), bool((normalize_uint8(image[None])[0] == lab[1][0]).all())
        (torch.uint8, (32, 32, 3), True)
    """

    def __init__(self, lab: SyntheticShapes) -> None:
        if not isinstance(lab, SyntheticShapes):
            raise TypeError(f"LabTrainingImages wraps a SyntheticShapes, got {type(lab).__name__}: "
                            "use SyntheticShapes(...).training_view()")
        self.lab = lab

    def __len__(self) -> int:
        return len(self.lab)

    def __repr__(self) -> str:
        return f"LabTrainingImages({self.lab!r})"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        rgb, label = self.lab.render_image(index)
        return torch.from_numpy(rgb), label

    def normalize_uint8(self, images: torch.Tensor) -> torch.Tensor:
        """A batch of these images as the model's input (training asks the dataset)."""
        return normalize_uint8(images)


class FreshEachEpoch(Dataset):
    """A lab split read ``epoch_size`` new images at a time: epoch ``e`` serves items
    ``e * epoch_size ... (e + 1) * epoch_size - 1`` of ``lab`` (as :class:`LabTrainingImages`
    does, uint8 ``(H, W, 3)`` images and labels), so no image is seen twice in a run.

    The lab can draw as many images as we like, and a network that sees each one once cannot
    memorise them. :func:`~cam_tutorial.train.train` calls :meth:`set_epoch` before each epoch,
    the convention of :class:`torch.utils.data.distributed.DistributedSampler`; the loader is
    built anew for every epoch, so its worker processes see the epoch too. Every block of ten
    items holds each class once, so an ``epoch_size`` that is a multiple of ten keeps every
    epoch's labels balanced.

    Args:
        lab: the split to draw from; it needs ``epochs * epoch_size`` items for ``epochs`` epochs.
        epoch_size: images per epoch.

    Example:
        >>> lab = SyntheticShapes("train", length=30, image_size=32)
        >>> fresh = lab.fresh_each_epoch(10)
        >>> fresh.set_epoch(2)
        >>> len(fresh), bool((fresh[0][0] == lab.training_view()[20][0]).all()), fresh.epochs
        (10, True, 3)
    """

    def __init__(self, lab: SyntheticShapes, epoch_size: int) -> None:
        if not isinstance(lab, SyntheticShapes):
            raise TypeError(f"FreshEachEpoch draws from a SyntheticShapes, got {type(lab).__name__}: "
                            "use SyntheticShapes(...).fresh_each_epoch(epoch_size)")
        epoch_size = integral_index(epoch_size)
        if not 1 <= epoch_size <= len(lab):
            raise ValueError(f"epoch_size must lie in [1, {len(lab)}] (the lab's length), got {epoch_size}: "
                             "make the lab epochs * epoch_size items long")
        self.lab, self.epoch_size, self.epoch = lab, epoch_size, 0
        self._images = lab.training_view()  # the one place that says how training reads an item
        self.normalize_uint8 = self._images.normalize_uint8

    @property
    def epochs(self) -> int:
        """How many epochs of fresh images the lab holds."""
        return len(self.lab) // self.epoch_size

    def set_epoch(self, epoch: int) -> None:
        """Serve epoch ``epoch``'s images (counted from 0).

        Raises:
            ValueError: when the lab holds fewer than ``epoch + 1`` epochs of images.
        """
        epoch = integral_index(epoch)
        if not 0 <= epoch < self.epochs:
            raise ValueError(f"epoch {epoch} is out of range: {self.lab!r} holds {self.epochs} epochs of "
                             f"{self.epoch_size} images; make it longer (epochs * epoch_size items)")
        self.epoch = epoch

    def __len__(self) -> int:
        return self.epoch_size

    def __repr__(self) -> str:
        return f"FreshEachEpoch({self.lab!r}, epoch_size={self.epoch_size})"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = integral_index(index)
        if not 0 <= index < self.epoch_size:
            raise IndexError(f"index {index} out of range for an epoch of {self.epoch_size} items")
        return self._images[self.epoch * self.epoch_size + index]


@functools.lru_cache(maxsize=8)
def _device_table(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalisation table flattened to 768 entries (value * 3 + channel), and the channel
    offsets, on ``device``."""
    table = torch.from_numpy(normalization_table().reshape(-1).copy()).to(device)
    return table, torch.arange(3, device=device)


def normalize_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 images ``(B, H, W, 3)`` -> float32 ``(B, 3, H, W)`` normalised with :data:`MEAN` and
    :data:`STD`, on the images' device, through the same per-channel table as the lab's
    ``__getitem__`` (so the values are identical, bit for bit, not merely close). The result is
    a channels-last view (what a GPU convolution wants); ``.contiguous()`` makes it planar.

    Example:
        >>> x = torch.tensor([[[[0, 255, 128]]]], dtype=torch.uint8)
        >>> y = normalize_uint8(x)
        >>> tuple(y.shape), [round(v, 3) for v in y.flatten().tolist()]
        ((1, 3, 1, 1), [-2.118, 2.429, 0.426])
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"normalize_uint8 takes uint8 images (B, H, W, 3), got {images.dtype} "
                         f"{tuple(images.shape)}: pass a batch of LabTrainingImages items")
    table, channels = _device_table(str(images.device))
    return table[images.long() * 3 + channels].permute(0, 3, 1, 2)


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation for display: ``x * std + mean``, clamped to ``[0, 1]``.

    Args:
        images: a normalised image ``(3, H, W)`` or batch ``(B, 3, H, W)``, floating point.

    Returns:
        A float tensor of the same shape with values in ``[0, 1]``.

    Raises:
        TypeError: not a tensor, or an integer (hence not normalised) image.
        ValueError: not ``(3, H, W)`` or ``(B, 3, H, W)``.

    Example:
        >>> ds = SyntheticShapes("val", length=2, image_size=32)
        >>> x = denormalize(ds[0][0])
        >>> float(x.min()) >= 0 and float(x.max()) <= 1
        True
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"denormalize expects a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(
            f"denormalize expects normalised float images, got dtype {images.dtype}: integer images are "
            "not normalised, so there is nothing to undo; show them as they are, or use images.float() / 255 "
            "for values in [0, 1]"
        )
    if images.ndim not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(
            f"denormalize expects (3, H, W) or (B, 3, H, W), got shape {tuple(images.shape)}"
        )
    images = images.detach().float()
    mean = torch.tensor(MEAN, dtype=images.dtype, device=images.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=images.dtype, device=images.device).view(3, 1, 1)
    return (images * std + mean).clamp(0.0, 1.0)
