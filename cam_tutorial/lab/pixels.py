"""The lab's drawing primitives, uint8 in and uint8 out, all in integers.

Palettes, textures, surfaces, distractor strokes, anti-aliased polygons and compositing: every
step is integer arithmetic, OpenCV's fixed-point drawing or bit-exact resizing, so the pixels
do not depend on the machine's floating-point or SIMD paths. :mod:`cam_tutorial.lab.render`
composes them into an item.

Example:
    >>> import numpy as np
    >>> from cam_tutorial.lab.pixels import composite
    >>> under = np.zeros((1, 2, 3), np.uint8)
    >>> composite(under, np.array([[0, 255]], np.uint8), np.array([200, 100, 50])).tolist()
    [[[0, 0, 0], [200, 100, 50]]]
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple, Sequence

import cv2
import numpy as np

from cam_tutorial.lab.geometry import SUBPIXEL_BITS

_TEXTURE_NAMES = ("grass", "gravel", "brick", "moon")

#: A polygon ready to draw: ``(outline, hole or None)`` in OpenCV's fixed point.
Polygon = tuple[np.ndarray, "np.ndarray | None"]


@functools.lru_cache(maxsize=1)
def textures() -> tuple[np.ndarray, ...]:
    """Grey-level textures from scikit-image's bundled images, loaded once per process."""
    import skimage.data  # imported here: only the lab needs scikit-image

    found = []
    for name in _TEXTURE_NAMES:
        image = getattr(skimage.data, name)().astype(np.int32)  # each a grey (512, 512) uint8 image
        # Stretch the contrast so every texture spans 0..255 (integer arithmetic, exact).
        lo, hi = int(image.min()), int(image.max())
        found.append(((image - lo) * 255 // max(hi - lo, 1)).astype(np.uint8))
    return tuple(found)


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


def palette(anchors: np.ndarray) -> np.ndarray:
    """A (1, 256, 3) uint8 colour ramp through the anchor colours (k, 3) uint8, evenly spaced."""
    ramp = (_ramp_weights(len(anchors)) @ anchors.astype(np.int64) + 127) // 255
    return ramp.astype(np.uint8).reshape(1, 256, 3)


def colourise(pattern: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Grey pattern (h, w) uint8 -> colour image (h, w, 3) uint8 through a :func:`palette`."""
    return cv2.LUT(cv2.cvtColor(pattern, cv2.COLOR_GRAY2RGB), colours)


def texture_crop(u: Sequence[float], height: int, width: int, zoom: float) -> np.ndarray:
    """A crop of one texture, resized bit-exactly to (height, width); ``u``: 4 uniforms that pick
    the texture, the crop's position and its flips."""
    found = textures()
    tex = found[int(u[0] * len(found))]
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


def composite(under: np.ndarray, alpha: np.ndarray, fill: np.ndarray) -> np.ndarray:
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


def background_pattern(grid: np.ndarray, crop: Sequence[float], zoom: float, mix: float, size: int,
                       clutter: float) -> np.ndarray:
    """The grey pattern under both labs' backgrounds: the noise ``grid`` resized smoothly, mixed
    with a texture crop (``crop``: 4 uniforms; ``zoom``, ``mix``: uniforms), uint16 in [0, 255]."""
    noise = cv2.resize(grid, (size, size), interpolation=cv2.INTER_LINEAR_EXACT)
    tex = texture_crop(crop, size, size, zoom=0.6 + 2.0 * zoom)
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


def surface(*, kind: float, period: float, angle: float, zoom: float, crop: Sequence[float],
            colours: tuple[np.ndarray, np.ndarray], image_size: int, height: int, width: int) -> np.ndarray:
    """An object's surface on its (height, width) patch, from its uniform draws: flat in the
    first colour (``kind < 0.5``, half the objects), stripes at any ``angle`` (``kind < 0.75``;
    their period 3..8 px at 64 px), else a texture ``crop``, between the two close ``colours``."""
    colour_a, colour_b = colours
    if kind < 0.5:
        return colour_a.astype(np.uint16)
    if kind < 0.75:  # integer arithmetic
        stripe = max(3, int(image_size * (0.045 + 0.08 * period)))
        theta = 2 * math.pi * angle
        ca, sa = int(round(1024 * math.cos(theta))), int(round(1024 * math.sin(theta)))
        phase = np.arange(width, dtype=np.int32)[None, :] * ca + np.arange(height, dtype=np.int32)[:, None] * sa
        pattern = (((phase // (stripe * 512)) & 1) * 255).astype(np.uint8)
    else:
        pattern = texture_crop(crop, height, width, zoom=0.5 + 1.5 * zoom)
    return colourise(pattern, palette(np.stack([colour_a, colour_b])))


class Stroke(NamedTuple):
    """One distractor that belongs to no class: a thin line, a small blob or a thin arc."""

    kind: float
    xa: float
    ya: float
    xb: float
    yb: float
    e0: float
    e1: float
    e2: float


def draw_stroke(canvas: np.ndarray, stroke: Stroke, colour: Sequence[int]) -> None:
    """Draw one distractor (a :class:`Stroke`, from its uniform draws) on ``canvas``."""
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


def fill_polygon(target: np.ndarray, outline: np.ndarray, hole: np.ndarray | None, value: int, line: int) -> None:
    """Fill a fixed-point polygon with ``value`` and its hole with 0; ``line`` is OpenCV's
    ``LINE_AA`` (anti-aliased) or ``LINE_8`` (pixel centres inside: the mask)."""
    cv2.fillPoly(target, [outline], value, line, SUBPIXEL_BITS)
    if hole is not None:
        cv2.fillPoly(target, [hole], 0, line, SUBPIXEL_BITS)


def alpha_patch(shapes: Sequence[Polygon], size: int) -> tuple[np.ndarray, int, int]:
    """The anti-aliased alpha of ``shapes`` (fixed-point ``(outline, hole)`` pairs) on the smallest
    patch of the image that holds them, with two pixels of margin for the rim: ``(alpha, x0, y0)``.
    Drawing on a patch instead of the whole image is the same rasterisation, shifted by whole
    pixels, and several times less memory to clear at 224 px, except that the margin can clip a
    faint rim pixel (alpha 2 or so) past the far side: the creatures are pinned as drawn so, the
    shapes lab (pinned too) draws its object on the whole image."""
    corners = np.concatenate([outline for outline, _ in shapes]) >> SUBPIXEL_BITS
    x0, y0 = (int(v) for v in np.maximum(corners.min(0) - 2, 0))
    x1, y1 = (int(v) for v in np.minimum(corners.max(0) + 3, size))
    alpha = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), np.uint8)
    shift = np.array([x0 << SUBPIXEL_BITS, y0 << SUBPIXEL_BITS], dtype=np.int32)
    for outline, hole in shapes:
        fill_polygon(alpha, outline - shift, None if hole is None else hole - shift, 255, cv2.LINE_AA)
    return alpha, x0, y0


def paint(canvas: np.ndarray, patch_alpha: tuple[np.ndarray, int, int],
          fill: np.ndarray | Callable[..., Any]) -> None:
    """Composite ``fill`` (a colour, or a function of the painted rectangle's ``height`` and
    ``width`` that returns its surface) onto ``canvas`` where the :func:`alpha_patch` is non-zero."""
    alpha, x0, y0 = patch_alpha
    px, py, pw, ph = cv2.boundingRect(alpha)
    if pw == 0 or ph == 0:
        return
    patch = canvas[y0 + py:y0 + py + ph, x0 + px:x0 + px + pw]
    painted = fill(height=ph, width=pw) if callable(fill) else fill
    patch[...] = composite(patch, alpha[py:py + ph, px:px + pw], painted)
