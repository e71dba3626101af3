"""cam_tutorial.real.concepts: the shapes' masks match the pixels the lab draws."""

import cv2
import numpy as np
import pytest

from cam_tutorial.real.concepts import ShapeConcept, shape_map
from cam_tutorial.lab import CLASS_NAMES, SPLITS, SyntheticShapes
from cam_tutorial.lab.render import draw_scene


@pytest.fixture(scope="module")
def lab():
    return SyntheticShapes("test", length=40, image_size=96, objects="creatures")


def test_decoy_masks_are_where_the_lab_paints_its_decoys(lab):
    checked = off = 0
    for i in range(len(lab)):
        rgb, parts = lab.render(i)[0], lab.part_map(i)
        decoys = (shape_map(lab, i) > 0) & (parts == 0)
        if not decoys.any():
            continue
        scene = draw_scene(lab, lab.label(i), np.random.default_rng([lab.seed, SPLITS[lab.split], i]))
        # inside the decoys, away from the anti-aliased rims (theirs and the creature's drawn over
        # them), the pixels have the decoys' colour (where two decoys overlap, the lab's
        # anti-aliased rim of one can tint a pixel inside the other)
        square = np.ones((3, 3), np.uint8)
        near_creature = cv2.dilate((parts > 0).astype(np.uint8), square) > 0
        inner = (cv2.erode(decoys.astype(np.uint8), square) > 0) & ~near_creature
        off += int((np.abs(rgb[inner].astype(int) - scene.decoy_colour).max(1) > 1).sum())
        checked += int(inner.sum())
    assert checked > 500 and off <= 0.005 * checked, (off, checked)


def test_the_creatures_parts_carry_its_class_and_the_body_none(lab):
    for i in range(10):
        shapes, parts = shape_map(lab, i), lab.part_map(i)
        assert (shapes[parts >= 2] == lab.label(i) + 1).all()
        assert (shapes[parts == 1] == 0).all()


def test_a_concept_spans_classes_and_labels_match_the_masks(lab):
    stars = ShapeConcept(lab, "star")
    labels = stars.labels()
    star = CLASS_NAMES.index("star")
    shown = [i for i in range(len(lab)) if labels[i]]
    assert {lab.label(i) == star for i in shown} == {True, False}  # creatures and decoys
    for i in range(len(lab)):
        image, label, box, mask = stars[i]
        assert label == int(mask.any())
        assert label <= labels[i]  # a decoy the creature hides wholly is drawn, not visible
        if label:
            x0, y0, x1, y1 = (int(v) for v in box)
            assert mask[y0:y1, x0:x1].sum() == mask.sum()


def test_refuses_the_shapes_lab_and_unknown_shapes(lab):
    with pytest.raises(ValueError, match="creatures"):
        ShapeConcept(SyntheticShapes("test", length=2, image_size=64), "star")
    with pytest.raises(ValueError, match="creatures"):
        shape_map(SyntheticShapes("test", length=2, image_size=64), 0)
    with pytest.raises(ValueError, match="unknown shape"):
        ShapeConcept(lab, "mirror")
