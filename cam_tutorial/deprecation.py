"""Old names kept for one release: each call or look-up warns with the new name.

The package spells public names the American way (``normalize_maps``, ``center_box``); the
British names of release 0.1 (``centre_box``, ``normalise_crop``, ...) still work until 0.3 and
emit a :class:`DeprecationWarning` that names the replacement.

Example:
    >>> import warnings
    >>> def center(x):
    ...     return x
    >>> centre = deprecated_alias(center, "centre")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     centre(1)
    1
    >>> str(caught[0].message)
    'centre is deprecated and will be removed in cam_tutorial 0.3: use center'
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, Mapping

__all__ = ["REMOVED_IN", "deprecated_alias", "deprecated_constants"]

REMOVED_IN = "0.3"


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated and will be removed in cam_tutorial {REMOVED_IN}: use {new}",
                  DeprecationWarning, stacklevel=3)


def deprecated_alias(function: Callable, old_name: str) -> Callable:
    """``function`` under its old name: same behaviour, plus a :class:`DeprecationWarning`.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     deprecated_alias(abs, "absolute")(-2)
        2
    """
    @functools.wraps(function)
    def alias(*args: Any, **kwargs: Any) -> Any:
        _warn(old_name, function.__name__)
        return function(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old_name
    alias.__doc__ = f"Deprecated alias of :func:`{function.__name__}` (removed in {REMOVED_IN})."
    return alias


def deprecated_constants(module: str, renamed: Mapping[str, str], namespace: Mapping[str, Any]
                         ) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves old constant names (``{old: new}``) with a warning.

    Example:
        >>> import warnings
        >>> getter = deprecated_constants("m", {"COLOUR": "COLOR"}, {"COLOR": "red"})
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     getter("COLOUR")
        'red'
    """
    def __getattr__(name: str) -> Any:
        if name in renamed:
            _warn(f"{module}.{name}", renamed[name])
            return namespace[renamed[name]]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
