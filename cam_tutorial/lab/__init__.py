"""The lab (``SyntheticShapes``): a procedurally generated dataset with exact ground truth.

The lab is a synthetic dataset made for studying localisation: ten classes, one object per
image, on a cluttered background, with the ground truth that real datasets rarely have: a pixel
mask, a tight box and a *part map* for every image. Item ``i`` of a split is *generated* from
``(seed, split, i)``, never stored, so it is the same on every call, in every DataLoader worker
and on every machine, and it costs no download. Two kinds of object (:data:`OBJECTS`):

* ``objects="shapes"`` (the default; the ``ci`` preset's): the class's polygon (a circle, a star, a
  heart, ...) is the whole object, scaled so its circumscribed diameter is a fraction ``scale``
  (default 0.45 to 0.9) of the image side, stretched a little (aspect up to 1.15),
  rotated (up to 20 degrees either way), flat, striped or textured; it has one part.
* ``objects="creatures"`` (the book's outputs, the ``cpu`` and ``gpu`` presets), described
  below: a body and four parts that carry the class.

What makes a creature (every random draw comes from ``numpy.random.default_rng([seed, split_id,
i])`` and has a name: :class:`~cam_tutorial.lab.render.Draws`, :class:`~cam_tutorial.lab.pixels.Stroke`,
:class:`~cam_tutorial.lab.render.Decoy` and the colour draws of :func:`~cam_tutorial.lab.render.draw_scene`):

* **class**: one of :data:`CLASS_NAMES`. Labels are balanced exactly: every block of ten
  consecutive items holds each class once, in a seeded order.
* **object**: five parts (:data:`PART_NAMES`). The *body* is an ellipse, the same
  for every class, so it tells nothing. The *head*, the *tail* and two *limbs* all have the
  class's shape (a circle, a star, a heart, ...) at three sizes, spread over the object: the
  head and the tail at the two ends of the body, a limb on each side. Any one of them suffices
  to tell the class, so a network can classify from one part or from all of them, which is the
  choice the paper's GAP vs GMP argument is about. The creature's length is a fraction ``scale``
  (default 0.45 to 0.85) of the image side; it is rotated (up to 20 degrees either way), each part turned
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

The modules, read in this order: :mod:`~cam_tutorial.lab.geometry` (each class's polygon, a
creature's parts), :mod:`~cam_tutorial.lab.pixels` (integer drawing: palettes, textures,
compositing), :mod:`~cam_tutorial.lab.render` (one item from its draws) and
:mod:`~cam_tutorial.lab.dataset` (:class:`SyntheticShapes`, the training views, the
normalisation).

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

from cam_tutorial.lab.dataset import (
    LAB_VERSION,
    OBJECTS,
    REGIONS,
    SPLITS,
    FreshEachEpoch,
    SyntheticShapes,
    denormalize,
    integral_index,
    normalization_table,
)
from cam_tutorial.lab.geometry import CLASS_NAMES, CLASS_PARTS, PART_NAMES

# What the chapters and the other modules import; the rest (the normalisation's constants and
# the uint8 view's class) is read where it is defined, in cam_tutorial.lab.dataset.
__all__ = [
    "LAB_VERSION",
    "CLASS_NAMES",
    "SPLITS",
    "REGIONS",
    "OBJECTS",
    "PART_NAMES",
    "CLASS_PARTS",
    "SyntheticShapes",
    "FreshEachEpoch",
    "denormalize",
    "normalization_table",
    "integral_index",
]
