"""Where inputs enter the real room: a count, an image side, a photo, an on/off environment variable.
One check each, shared."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["MAX_IMAGE_SIDE", "image_side", "rgb_photo", "whole_number"]

#: The largest square side accepted: 64x64 maps at stride 32 (8000 px would allocate 1.2-1.7 GB).
MAX_IMAGE_SIDE = 2048
_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off")


def whole_number(value: Any, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``: Python and numpy integers pass; a bool, a
    float (``2.7`` would be truncated) or a string is refused, naming ``name``.
    Used in no chapter directly.

    Example:
        >>> whole_number(True, "length")
        Traceback (most recent call last):
        ...
        TypeError: length must be an int, got bool True
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        most = "" if maximum is None else f" and at most {maximum}"
        raise ValueError(f"{name} must be at least {minimum}{most}, got {value}")
    return int(value)


def image_side(size: Any, name: str = "size") -> int:
    """A square image side in pixels: an int from 32 (the networks' stride) to :data:`MAX_IMAGE_SIDE`.
    Used in no chapter directly."""
    return whole_number(size, f"{name} (pixels; the networks' stride is 32)", 32, MAX_IMAGE_SIDE)


def rgb_photo(photo: Any) -> np.ndarray:
    """A photo as contiguous ``(H, W, 3)`` uint8 RGB: a PIL image of any mode goes through its own
    ``.convert("RGB")`` (a palette image's indices or a CMYK image's inks are not colours);
    a ``(H, W)`` array is grey; an ``(H, W, 4)`` array loses its alpha.
    Used in no chapter directly."""
    from PIL import Image

    if isinstance(photo, Image.Image):
        photo = photo.convert("RGB")
    array = np.asarray(photo)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4) or 0 in array.shape:
        raise ValueError(f"a photo must be (H, W, 3) RGB (or (H, W) grey), got shape {array.shape}; "
                         "for a (3, H, W) tensor use photo.permute(1, 2, 0).numpy()")
    if array.dtype != np.uint8:
        raise TypeError(f"a photo must be uint8 (0-255), got {array.dtype}; "
                        "for floats in [0, 1] use (photo * 255).round().astype(np.uint8)")
    return np.ascontiguousarray(array[..., :3])


def env_flag(name: str) -> bool | None:
    """An on/off environment variable: ``None`` when unset or empty, else its truth value.

    ``1``, ``true``, ``yes`` and ``on`` are true; ``0``, ``false``, ``no`` and ``off`` are false
    (in any case, surrounding spaces ignored).

    Raises:
        ValueError: for any other value, naming the variable and the words it accepts.

    Example:
        >>> import os
        >>> os.environ["CAM_TUTORIAL_EXAMPLE"] = "False"
        >>> env_flag("CAM_TUTORIAL_EXAMPLE"), env_flag("CAM_TUTORIAL_UNSET_EXAMPLE")
        (False, None)
        >>> del os.environ["CAM_TUTORIAL_EXAMPLE"]
    """
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return None
    if value in _TRUE_WORDS:
        return True
    if value in _FALSE_WORDS:
        return False
    raise ValueError(
        f"${name}={os.environ[name]!r} is neither on nor off: set it to one of "
        f"{', '.join(_TRUE_WORDS)} (on) or {', '.join(_FALSE_WORDS)} (off), or unset it"
    )
