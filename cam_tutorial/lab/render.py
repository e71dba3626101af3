"""Drawing one lab item from its random draws: the shapes lab's and the creatures'.

An item is drawn from a label and a :class:`numpy.random.Generator` seeded with ``(seed, split,
index)`` (:class:`~cam_tutorial.lab.dataset.SyntheticShapes` makes both). Every draw is taken up
front, in two calls (numpy's per-call cost dominates a small item): uniforms for the decisions,
bytes for the colours and the noise grid. The creatures' draws have names (:class:`Draws`,
:class:`~cam_tutorial.lab.pixels.Stroke`, :class:`Decoy`, gathered in a :class:`Scene`); the
shapes lab's are slots of two arrays, read by position, kept exactly as they were so that its
items, and the shipped models trained on them, stay bit-identical.

Example:
    >>> import numpy as np
    >>> from cam_tutorial.lab import SyntheticShapes
    >>> from cam_tutorial.lab.render import render_creature
    >>> lab = SyntheticShapes("val", length=1, image_size=64, objects="creatures")
    >>> canvas, parts = render_creature(lab, 3, np.random.default_rng(0), with_parts=True)
    >>> canvas.shape, canvas.dtype.name, sorted(set(parts.ravel().tolist()))
    ((64, 64, 3), 'uint8', [0, 1, 2, 3, 4, 5])
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, NamedTuple, Sequence

import cv2
import numpy as np

from cam_tutorial.lab.geometry import (
    CLASS_NAMES,
    CREATURE_LENGTH,
    HEAD_RADIUS,
    LIMB_RADIUS,
    MAX_ROTATION,
    MAX_STRETCH,
    SHAPES,
    SUBPIXEL_BITS,
    creature_outline,
    fixed_point,
    rotation,
)
from cam_tutorial.lab.pixels import (
    Polygon,
    Stroke,
    alpha_patch,
    background_pattern,
    colourise,
    draw_stroke,
    fill_polygon,
    paint,
    palette,
    surface,
)

if TYPE_CHECKING:
    from cam_tutorial.lab.dataset import SyntheticShapes

_MIN_CONTRAST = 110.0  # least RGB distance between the object's colour and the background's
_MAX_STROKES, _MAX_DECOYS = 3, 2


def _far_colour(candidates: np.ndarray, reference: np.ndarray, least: float) -> np.ndarray:
    """The first candidate colour at least ``least`` (RGB distance) from every reference colour,
    else the farthest one; exact integer arithmetic."""
    dist2 = ((candidates[:, None, :] - reference[None]) ** 2).sum(-1).min(1)
    ok = np.flatnonzero(dist2 >= least**2)
    return candidates[ok[0] if len(ok) else int(np.argmax(dist2))]


def _background_anchors(base: np.ndarray, offsets: np.ndarray, clutter: float) -> np.ndarray:
    """Three background colours around one base colour: a calm palette, so the object (far from
    all of them) is the one region that stands out in colour."""
    spread = 16 + int(48 * clutter)
    return np.clip(base + (offsets - 128) * spread // 128, 0, 255)


def _with_midpoints(anchors: np.ndarray) -> np.ndarray:
    """The background's colours an object's colour must stay far from: the anchors and their midpoints."""
    return np.concatenate([anchors, (anchors[:-1] + anchors[1:]) // 2])


# ----------------------------------------------------------------------------------------------
# The shapes lab: one polygon per image, its draws read by position.
# ----------------------------------------------------------------------------------------------

def render_shape(lab: SyntheticShapes, label: int, rng: np.random.Generator,
                 with_mask: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """One item of the ``objects="shapes"`` lab: its pixels (uint8 ``(H, W, 3)``) and, with
    ``with_mask``, its mask (uint8 ``(H, W)``, 1 on the object)."""
    # u: uniforms, one slot per decision; b: random bytes for colours and the noise grid.
    u = rng.random(48).tolist()
    b = rng.integers(0, 256, size=112, dtype=np.uint8)
    size = lab.image_size
    cells = 2 + int(u[11] * 5)
    pattern = background_pattern(b[64:64 + cells * cells].reshape(cells, cells), u[12:16], u[0], u[1], size,
                                 lab.clutter)
    anchors = _background_anchors(b[0:3].astype(np.int64), b[3:12].reshape(3, 3).astype(np.int64), lab.clutter)
    canvas = colourise(pattern.astype(np.uint8), palette(anchors))
    # The object's colour: the first of 12 candidates far from every background colour.
    colour_a = _far_colour(b[9:45].reshape(12, 3).astype(np.int64), _with_midpoints(anchors), _MIN_CONTRAST)
    colour_b = np.clip(colour_a + (b[45:48].astype(np.int64) - 128) * 60 // 128, 0, 255)
    for k in range(int(round(lab.clutter * int(1 + u[20] * 3)))):  # distractors of no class
        draw_stroke(canvas, Stroke(*u[24 + 8 * k:32 + 8 * k]), b[48 + 3 * k:51 + 3 * k])
    polygon = _place_shape(lab, label, u)
    alpha = np.zeros((size, size), np.uint8)  # on the whole image, not an alpha_patch: see there
    fill_polygon(alpha, *polygon, 255, cv2.LINE_AA)
    paint(canvas, (alpha, 0, 0), functools.partial(surface, kind=u[7], period=u[8], angle=u[9], zoom=u[10],
                                                   crop=u[16:20], colours=(colour_a, colour_b), image_size=size))
    if not with_mask:
        return canvas, None
    mask = np.zeros((size, size), np.uint8)
    fill_polygon(mask, *polygon, 1, cv2.LINE_8)
    return canvas, mask


def _place_shape(lab: SyntheticShapes, label: int, u: Sequence[float]) -> Polygon:
    """The class's polygon scaled, stretched, rotated and placed inside the region, in fixed point."""
    outline, hole = SHAPES[label]
    lo, hi = lab.size_range
    radius = 0.5 * lab.image_size * (lo + (hi - lo) * u[2])
    stretch = math.exp(math.log(MAX_STRETCH) * (2 * u[3] - 1))  # aspect 1/s .. s
    angle = math.radians(MAX_ROTATION) * (2 * u[4] - 1)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    sx, sy = radius * stretch, radius / stretch
    transform = np.array([[sx * cos_a, sx * sin_a], [-sy * sin_a, sy * cos_a]])
    shape = (outline @ transform, None if hole is None else hole @ transform)
    return _fit_in_region(lab, [shape], 1.0, u[5], u[6])[0][0]


def _fit_in_region(lab: SyntheticShapes, shapes: list[tuple[np.ndarray, np.ndarray | None]], per_unit: float,
                   x: float, y: float) -> tuple[list[Polygon], float]:
    """Float ``(outline, hole or None)`` polygons at ``per_unit`` pixels a unit, shrunk if need be
    to fit inside the lab's region and placed at the fractions ``x``, ``y`` of the room left
    there, in fixed point; with the pixels a unit they got (both labs place their objects so)."""
    points = np.concatenate([outline for outline, _ in shapes])
    rx0, ry0, rx1, ry1 = lab.region_pixels
    # Vertices stay in [r0 + 0.5, r1 - 1.5]: the mask (pixel centres) and the anti-aliased rim
    # both remain inside the region.
    avail_w, avail_h = rx1 - rx0 - 2.0, ry1 - ry0 - 2.0
    span = np.ptp(points, axis=0)
    per_unit *= min(1.0, avail_w / (span[0] * per_unit), avail_h / (span[1] * per_unit))
    vmin = points.min(0) * per_unit
    width, height = float(span[0] * per_unit), float(span[1] * per_unit)
    ox = rx0 + 0.5 - vmin[0] + (avail_w - width) * x
    oy = ry0 + 0.5 - vmin[1] + (avail_h - height) * y
    one = 1 << SUBPIXEL_BITS
    scale, offset = per_unit * one, np.array([ox * one, oy * one])
    polygons = [(fixed_point(outline, scale, offset), None if hole is None else fixed_point(hole, scale, offset))
                for outline, hole in shapes]
    return polygons, per_unit


# ----------------------------------------------------------------------------------------------
# The creatures: every draw has a name.
# ----------------------------------------------------------------------------------------------

class Draws(NamedTuple):
    """One creature's uniform draws in [0, 1), by what they decide."""

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


class Decoy(NamedTuple):
    """A lone part of another class in the clutter (a head-, tail- or limb-sized polygon)."""

    other: float
    x: float
    y: float
    turn: float
    size: float
    same_colour: float


class Scene(NamedTuple):
    """What one creature's renderer needs besides the pixels: its draws and colours."""

    label: int
    draws: Draws
    strokes: list[Stroke]
    decoys: list[Decoy]
    anchors: np.ndarray
    body_colours: tuple[np.ndarray, np.ndarray]
    part_colour: np.ndarray
    decoy_colour: np.ndarray
    stroke_colours: np.ndarray
    noise: np.ndarray
    background_crop: np.ndarray
    fill_crop: np.ndarray


#: One creature's draws, each name with its shape, in drawing order: every uniform comes from one
#: call and every byte from another, split by name.
_UNIFORMS = {"draws": (len(Draws._fields),), "strokes": (_MAX_STROKES, len(Stroke._fields)),
             "decoys": (_MAX_DECOYS, len(Decoy._fields)), "background_crop": (4,), "fill_crop": (4,)}
_BYTES = {"base": (3,), "offsets": (3, 3), "candidates": (24, 3), "tint": (3,),
          "stroke_colours": (_MAX_STROKES, 3), "noise": (6, 6)}
_UNIFORM_COUNT, _BYTE_COUNT = (sum(math.prod(shape) for shape in layout.values()) for layout in (_UNIFORMS, _BYTES))


def _split_draws(values: np.ndarray, layout: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """``values`` cut into the named, shaped pieces of ``layout``, in its order."""
    ends = np.cumsum([math.prod(shape) for shape in layout.values()])
    pieces = np.split(values, ends[:-1])
    return {name: piece.reshape(shape) for (name, shape), piece in zip(layout.items(), pieces)}


def draw_scene(lab: SyntheticShapes, label: int, rng: np.random.Generator) -> Scene:
    """Every random decision of a creature of class ``label``, each under its own name."""
    u = _split_draws(rng.random(_UNIFORM_COUNT), _UNIFORMS)
    b = _split_draws(rng.integers(0, 256, _BYTE_COUNT, dtype=np.uint8), _BYTES)
    draws = Draws._make(u["draws"].tolist())
    strokes = [Stroke._make(row) for row in u["strokes"].tolist()]
    decoys = [Decoy._make(row) for row in u["decoys"].tolist()]
    strokes = strokes[:int(round(lab.clutter * int(1 + draws.strokes * _MAX_STROKES)))]
    decoys = decoys[:int(round(lab.clutter * int(draws.decoys * (_MAX_DECOYS + 1))))]
    base, offsets, candidates, tint = (b[name].astype(np.int64) for name in ("base", "offsets", "candidates", "tint"))
    cells = 2 + int(draws.noise_cells * 5)
    noise = np.ascontiguousarray(b["noise"][:cells, :cells])
    anchors = _background_anchors(base, offsets, lab.clutter)
    reference = _with_midpoints(anchors)
    body = _far_colour(candidates[:12], reference, _MIN_CONTRAST)
    body_b = np.clip(body + (tint - 128) * 60 // 128, 0, 255)
    # The parts differ from the body as well as from the background, so each shows its shape.
    part = _far_colour(candidates[12:], np.concatenate([reference, body[None], body_b[None]]), _MIN_CONTRAST)
    same = not decoys or decoys[0].same_colour < 0.5  # (no decoys: the colour is never used)
    decoy = part if same else _far_colour(candidates[::-1], reference, _MIN_CONTRAST)
    return Scene(label, draws, strokes, decoys, anchors, (body, body_b), part, decoy, b["stroke_colours"],
                 noise, np.asarray(u["background_crop"].tolist()), np.asarray(u["fill_crop"].tolist()))


def background(scene: Scene, size: int, clutter: float) -> np.ndarray:
    """A creature's background: smooth noise and a texture through a palette of three close colours."""
    pattern = background_pattern(scene.noise, scene.background_crop, scene.draws.texture_zoom,
                                 scene.draws.texture_mix, size, clutter)
    return colourise(pattern.astype(np.uint8), palette(scene.anchors))


class Placed(NamedTuple):
    """A creature as drawn: its polygons and its scale."""

    polygons: list[Polygon]  # fixed-point vertices, body first
    part_scale: float  # pixels per body half-length


def place(lab: SyntheticShapes, scene: Scene) -> Placed:
    """The creature scaled to its drawn length, fitted inside the region, in fixed point."""
    lo, hi = lab.size_range
    length = lab.image_size * (lo + (hi - lo) * scene.draws.size)
    shapes = creature_outline(scene.label, scene.draws)
    return Placed(*_fit_in_region(lab, shapes, length / CREATURE_LENGTH, scene.draws.x, scene.draws.y))


def decoy_polygons(scene: Scene, placed: Placed, size: int) -> list[tuple[int, Polygon]]:
    """The scene's decoys as ``(class, polygon)``: each the lone part of another class that the
    lab draws under the object, in fixed point, where :func:`render_creature` paints it."""
    one = 1 << SUBPIXEL_BITS
    found = []
    for decoy in scene.decoys:
        other = (scene.label + 1 + int(decoy.other * (len(CLASS_NAMES) - 1))) % len(CLASS_NAMES)
        outline, hole = SHAPES[other]
        radius = placed.part_scale * (LIMB_RADIUS + (HEAD_RADIUS - LIMB_RADIUS) * decoy.size)
        spin = rotation(360.0 * decoy.turn) * radius * one
        centre = np.array([radius + decoy.x * (size - 2 * radius), radius + decoy.y * (size - 2 * radius)]) * one
        found.append((other, (np.rint(outline @ spin + centre).astype(np.int32),
                              None if hole is None else np.rint(hole @ spin + centre).astype(np.int32))))
    return found


def _draw_creature(canvas: np.ndarray, scene: Scene, placed: Placed, size: int,
                   with_parts: bool) -> np.ndarray | None:
    """Body, then parts over it, composited in integers where they are (one pixel around the
    mask); with ``with_parts``, the part map from the same polygons without anti-aliasing."""
    (body, _), *parts = placed.polygons
    draws = scene.draws
    body_surface = functools.partial(  # none of it depends on the class
        surface, kind=draws.fill, period=draws.stripe_period, angle=draws.stripe_angle, zoom=draws.fill_zoom,
        crop=scene.fill_crop, colours=scene.body_colours, image_size=size)
    paint(canvas, alpha_patch([(body, None)], size), body_surface)
    paint(canvas, alpha_patch(parts, size), scene.part_colour)
    if not with_parts:
        return None
    part_map = np.zeros((size, size), np.uint8)
    fill_polygon(part_map, body, None, 1, cv2.LINE_8)
    on_parts = np.zeros((size, size), np.uint8)
    for value, (outline, hole) in enumerate(parts, start=2):
        fill_polygon(on_parts, outline, hole, value, cv2.LINE_8)
    np.copyto(part_map, on_parts, where=on_parts > 0)
    return part_map


def render_creature(lab: SyntheticShapes, label: int, rng: np.random.Generator,
                    with_parts: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """One item of the ``objects="creatures"`` lab: its pixels (uint8 ``(H, W, 3)``) and, with
    ``with_parts``, its part map (uint8 ``(H, W)``: 0 background, ``k + 1`` part ``k``)."""
    scene = draw_scene(lab, label, rng)
    canvas = background(scene, lab.image_size, lab.clutter)
    for stroke, colour in zip(scene.strokes, scene.stroke_colours):  # distractors of no class
        draw_stroke(canvas, stroke, colour)
    placed = place(lab, scene)
    # Decoys, lone parts of other classes under the object: the class is in the object's parts,
    # not in any one part-shaped patch of the image.
    if scene.decoys:
        shapes = [polygon for _, polygon in decoy_polygons(scene, placed, lab.image_size)]
        paint(canvas, alpha_patch(shapes, lab.image_size), scene.decoy_colour)
    return canvas, _draw_creature(canvas, scene, placed, lab.image_size, with_parts)
