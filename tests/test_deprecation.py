"""The British names of release 0.1 still work, warn, and name their replacement."""

import importlib

import pytest

OLD_FUNCTIONS = [
    ("localize", "centre_box", "center_box", (8, 8)),
    ("localize", "centre_baseline_boxes", "center_baseline_boxes", (2, 8, 8)),
    ("localize", "centre_gaussian_maps", "center_gaussian_maps", (2, 8, 8)),
]
OLD_CONSTANTS = [
    ("compare", "CENTRE", "CENTER"),
    ("realcam", "TRUE_BOX_COLOUR", "TRUE_BOX_COLOR"),
    ("realcam", "CAM_BOX_COLOUR", "CAM_BOX_COLOR"),
]


@pytest.mark.parametrize("module, old, new, args", OLD_FUNCTIONS)
def test_an_old_function_name_warns_and_gives_the_same_result(module, old, new, args):
    mod = importlib.import_module(f"cam_tutorial.{module}")
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated .* use {new}"):
        result = getattr(mod, old)(*args)
    assert (result == getattr(mod, new)(*args)).all()


@pytest.mark.parametrize("module, old, new", OLD_CONSTANTS)
def test_an_old_constant_name_warns_and_gives_the_same_value(module, old, new):
    mod = importlib.import_module(f"cam_tutorial.{module}")
    with pytest.warns(DeprecationWarning, match=f"use {new}"):
        assert getattr(mod, old) == getattr(mod, new)


def test_the_other_aliases_point_at_the_new_functions():
    from cam_tutorial import compare, efficientnet_lite

    assert compare.centre_baseline.__wrapped__ is compare.center_baseline
    assert efficientnet_lite.normalise_crop.__wrapped__ is efficientnet_lite.normalize_crop


def test_an_unknown_name_is_still_an_attribute_error():
    from cam_tutorial import realcam

    with pytest.raises(AttributeError, match="no attribute 'NOPE'"):
        realcam.NOPE  # noqa: B018


def test_the_examples_in_deprecation_run():
    import doctest

    import cam_tutorial.deprecation as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
