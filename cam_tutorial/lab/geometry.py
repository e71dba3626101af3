"""The lab's geometry: each class's polygon, and a creature's five parts in its own frame.

Every class shape is a unit polygon (an outline, and a hole for the ring), centred on its
bounding box, with its farthest vertex at distance 1. A creature is a body (an ellipse, the same
for every class) and four parts of the class's shape, in units of the body's half-length. The
renderer (:mod:`cam_tutorial.lab.render`) scales, turns and places these polygons, then rounds
their vertices to OpenCV's fixed point (:func:`fixed_point`); every later step is integer.

Example:
    >>> from cam_tutorial.lab.geometry import CLASS_NAMES, SHAPES
    >>> outline, hole = SHAPES[CLASS_NAMES.index("ring")]
    >>> round(float(abs(outline).max()), 6), hole is not None
    (1.0, True)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cam_tutorial.lab.render import Draws

#: The ten classes of the lab, in label order.
CLASS_NAMES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "cross",
    "heart", "crescent", "arrow", "ring", "hourglass",
)

#: The parts of every object, in drawing order; :meth:`SyntheticShapes.part_map` stores part
#: ``k`` as the value ``k + 1`` (0 is background).
PART_NAMES: tuple[str, ...] = ("body", "head", "tail", "limb 1", "limb 2")
#: The parts that carry the class: each has the class's shape, and any one of them suffices to
#: tell the class. The body is the same ellipse for every class (it tells nothing).
CLASS_PARTS: tuple[str, ...] = ("head", "tail", "limb 1", "limb 2")

#: The largest rotation of an object either way, in degrees (a creature's parts turn a little more).
MAX_ROTATION = 20.0
#: The largest change of a shape's aspect ratio: from ``1 / MAX_STRETCH`` to ``MAX_STRETCH``.
MAX_STRETCH = 1.15

#: Polygon vertices carry this many fractional bits (1/16 px) for OpenCV's drawing.
SUBPIXEL_BITS = 4

#: Part radii, in units of the body's half-length (smaller parts learn much more slowly from scratch).
HEAD_RADIUS, TAIL_RADIUS, LIMB_RADIUS = 0.7, 0.55, 0.45
#: How far (in part radii) a part's centre sits outside the body's outline.
PART_OVERLAP = 0.75
#: A creature's length from head to tail, in units of the body's half-length.
CREATURE_LENGTH = 2.0 + PART_OVERLAP * (HEAD_RADIUS + TAIL_RADIUS) + HEAD_RADIUS + TAIL_RADIUS

_BODY_ASPECT = (0.48, 0.62)  # the body's semi-minor axis, a range in units of its half-length
_PART_TURN = 25.0  # each part's own rotation either way, in degrees, on top of the object's
_LIMB_ALONG = 0.45  # limbs sit at most this far from the body's centre along its axis


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


def _normalise(*polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """An outline (and its hole), centred on the union's bounding box and scaled so the farthest
    vertex is at radius 1: ``(outline, hole or None)``."""
    points = np.concatenate(polygons)
    centre = (points.min(0) + points.max(0)) / 2
    radius = np.sqrt(((points - centre) ** 2).sum(1)).max()
    outline, *hole = (((p - centre) / radius).astype(np.float64) for p in polygons)
    return outline, hole[0] if hole else None


def _build_shapes() -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Each class, in label order: (outline, hole or None), as float arrays of (x, y) vertices."""
    w = 0.3  # cross arm half-width
    cross = np.array([(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1), (-w, -1), (-w, -w),
                      (-1, -w), (-1, w), (-w, w), (-w, 1)], dtype=np.float64)
    arrow = np.array([(-1, -0.22), (0.15, -0.22), (0.15, -0.62), (1, 0), (0.15, 0.62),
                      (0.15, 0.22), (-1, 0.22)], dtype=np.float64)
    hourglass = np.array([(-0.75, -1), (0.75, -1), (0.13, 0), (0.75, 1), (-0.75, 1),
                          (-0.13, 0)], dtype=np.float64)
    shapes = {
        "circle": _normalise(_regular(64)),
        "square": _normalise(_regular(4, phase_deg=45.0)),
        "triangle": _normalise(_regular(3)),
        "star": _normalise(_star()),
        "cross": _normalise(cross),
        "heart": _normalise(_heart()),
        "crescent": _normalise(_crescent()),
        "arrow": _normalise(arrow),
        "ring": _normalise(_regular(64), _regular(64, radius=0.55)),
        "hourglass": _normalise(hourglass),
    }
    return [shapes[name] for name in CLASS_NAMES]


#: Each class's unit polygon, in label order: ``(outline, hole or None)``, float (x, y) vertices.
SHAPES: list[tuple[np.ndarray, np.ndarray | None]] = _build_shapes()
_BODY = _regular(48)


# ----------------------------------------------------------------------------------------------
# Placing polygons
# ----------------------------------------------------------------------------------------------

def rotation(degrees: float) -> np.ndarray:
    """The 2x2 matrix that turns row vectors by ``degrees`` (``points @ rotation(d)``)."""
    angle = math.radians(degrees)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    return np.array([[cos_a, sin_a], [-sin_a, cos_a]])


def fixed_point(polygon: np.ndarray, scale: float, offset: np.ndarray) -> np.ndarray:
    """``polygon * scale + offset`` rounded to OpenCV's fixed point (pixels times
    ``2 ** SUBPIXEL_BITS``), as int32."""
    return np.rint(polygon * scale + offset).astype(np.int32)


def creature_outline(label: int, draws: Draws) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """A creature's polygons in its own frame (body half-length 1), turned by up to
    :data:`MAX_ROTATION` degrees either way: body, head, tail and two limbs, each ``(outline, hole
    or None)``; ``draws`` gives the body's aspect, the turns and the limbs' places."""
    outline, hole = SHAPES[label]
    minor = _BODY_ASPECT[0] + (_BODY_ASPECT[1] - _BODY_ASPECT[0]) * draws.aspect
    turn = rotation(MAX_ROTATION * (2 * draws.angle - 1))
    body = _BODY * np.array([1.0, minor])
    placed: list[tuple[np.ndarray, np.ndarray | None]] = [(body @ turn, None)]
    limb_y = minor + PART_OVERLAP * LIMB_RADIUS
    parts = (
        (HEAD_RADIUS, (1.0 + PART_OVERLAP * HEAD_RADIUS, 0.0), draws.head_turn),
        (TAIL_RADIUS, (-1.0 - PART_OVERLAP * TAIL_RADIUS, 0.0), draws.tail_turn),
        (LIMB_RADIUS, (_LIMB_ALONG * (2 * draws.limb1_along - 1), limb_y), draws.limb1_turn),
        (LIMB_RADIUS, (_LIMB_ALONG * (2 * draws.limb2_along - 1), -limb_y), draws.limb2_turn),
    )
    for radius, centre, own in parts:
        spin = rotation(_PART_TURN * (2 * own - 1)) * radius
        shift = np.asarray(centre)
        placed.append(((outline @ spin + shift) @ turn,
                       None if hole is None else (hole @ spin + shift) @ turn))
    return placed
