"""Colab set-up shared by every chapter: keep the zoo's trained models on Google Drive.

On Colab the machine, and every model trained on it, is gone when the session ends. Each chapter's
set-up calls :func:`use_drive_cache` once: it mounts Drive (Colab asks you to allow it) and points
``$CAM_TUTORIAL_CACHE`` at a Drive folder, so that a model chapter 3 trained is loaded, not
retrained, by every later chapter and session, and a run cut off by a disconnect resumes from its
last complete epoch. Anywhere but Colab it does nothing.

Example:
    >>> use_drive_cache()  # not on Colab: nothing happens
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path, PurePosixPath

from cam_tutorial.zoo_cache import CACHE_ENV

__all__ = ["in_colab", "use_drive_cache"]

logger = logging.getLogger(__name__)


def in_colab() -> bool:
    """Whether this kernel runs on Google Colab (its ``google.colab`` module is loaded).
    Used in no chapter directly."""
    return "google.colab" in sys.modules


def use_drive_cache(enabled: bool = True, mount_point: str = "/content/drive",
                    folder: str = "cam_tutorial") -> Path | None:
    """On Colab, keep the zoo's models on Google Drive: mount it and set ``$CAM_TUTORIAL_CACHE``.
    Used in chapters 1, 2, 3, 4, 5, 6, 7 and 8, and the appendix.

    One decision: ``enabled=False`` keeps models on the Colab machine (lost with the session).
    A cache folder you set yourself (``$CAM_TUTORIAL_CACHE``) is kept as it is. If mounting
    fails (permission refused, no Drive) or the folder cannot be written (Drive read-only, a file
    of that name), the chapter goes on with the machine's cache and says so.

    Args:
        enabled: whether to use Drive.
        mount_point: where Drive is mounted (Colab's own place by default).
        folder: the cache folder inside "My Drive": a relative path such as ``"cam_tutorial"``
            or ``"models/cam"``, never the Drive's root nor a path that leaves it.

    Raises:
        ValueError: a ``folder`` that is empty, absolute or climbs out of "My Drive" (``..``).

    Returns:
        The cache folder on Drive, or ``None`` when nothing changed (not on Colab, disabled,
        a cache already chosen, or Drive unavailable).
    """
    parts = PurePosixPath(folder).parts if isinstance(folder, str) else ()
    if not parts or parts[0] == "/" or ".." in parts:
        raise ValueError(f"use_drive_cache(folder={folder!r}): the folder must be a relative path inside My Drive "
                         "that does not climb out of it with '..', e.g. folder='cam_tutorial'")
    if not in_colab():
        return None
    if not enabled:
        logger.info("Drive cache off: trained models stay on this Colab machine and go with the session")
        return None
    if os.environ.get(CACHE_ENV, "").strip():
        logger.info("$%s is already %s: keeping it", CACHE_ENV, os.environ[CACHE_ENV])
        return None
    my_drive = Path(mount_point) / "MyDrive"
    if not my_drive.is_dir():
        try:
            from google.colab import drive  # type: ignore[import-not-found]

            drive.mount(mount_point)
        except Exception as exc:  # Colab raises plain exceptions when the user refuses or times out
            logger.warning("could not mount Google Drive (%s): models stay on this machine; to keep them, "
                           "run this cell again and allow access", exc)
            return None
    if not my_drive.is_dir():
        logger.warning("%s is not there after mounting: models stay on this machine", my_drive)
        return None
    cache = my_drive / folder
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=cache):  # Drive mounted read-only lets the folder be, not written
            pass
    except OSError as exc:
        logger.warning("cannot write the Drive folder %s (%s): models stay on this machine; to keep them, make "
                       "it a writable folder or pass another folder=", cache, exc)
        return None
    os.environ[CACHE_ENV] = str(cache)
    logger.info("trained models are cached on Drive in %s: later chapters and sessions reuse them", cache)
    return cache
