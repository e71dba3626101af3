"""Where the zoo's trained models live: the files shipped in the package, the cache, the locks.

A shipped file (``cam_tutorial/checkpoints/<key>.pt``) is used only when its bytes match the
manifest committed beside it (:data:`MANIFEST_NAME`); a cache entry's ``final.pt`` (in
:func:`default_cache_dir`, or ``cache_dir``) only when it is the entry's model (its stored name
and cache key are checked; it also stores the recipe's identity, so that a mismatch can say what
differs) and its weights match the digest stored when it was written. Every file is read with
``weights_only=True``; weights with NaN or infinities and scores that are not numbers are
refused. A damaged shipped file asks for a reinstall; a damaged cached one, to be deleted.

Several processes may ask for the same model at once (the book's notebooks run in parallel in
CI): a file lock (:func:`entry_lock`) lets one of them train while the others wait, then read its
result. Files are written atomically, so no process ever reads half a file. The lock lives in the
machine's temporary folder, not next to the weights, because network drives (e.g. Google
Drive's) may not support file locks: in a folder of this user's own (``cam_tutorial-locks-<uid>``,
mode ``0700``, checked without following links), since a folder open to every user lets any of
them plant links there. The weights get the umask's mode, so several users can share one cache;
each takes its own locks, so two users who ask for the same missing model at once may both train
it (to the same weights: files are replaced atomically, never half written).

Example:
    >>> sorted(shipped_digests())[0]
    'resnet18b_gap-ci-78e552a453d1.pt'
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
from filelock import FileLock
from torch import nn

from cam_tutorial.checkpoints import (
    CHECKPOINT_NAME,
    CheckpointError,
    atomic_save,
    check_format,
    identity_differences,
    safe_load,
)
from cam_tutorial.zoo_recipes import ModelRecipe

__all__ = ["CACHE_ENV", "PACKAGED_DIR", "default_cache_dir", "entry_lock", "read_final", "write_final"]

logger = logging.getLogger(__name__)

#: Environment variable naming the cache folder.
CACHE_ENV = "CAM_TUTORIAL_CACHE"
#: Checkpoints shipped inside the package (the ``ci`` and ``cpu`` presets').
PACKAGED_DIR = Path(__file__).resolve().parent / "checkpoints"
#: The file beside the shipped ones that lists their SHA-256, one ``<digest>  <file name>`` line
#: each (``sha256sum``'s format, so ``sha256sum -c SHA256SUMS`` checks them too).
MANIFEST_NAME = "SHA256SUMS"
#: The ``format`` entry of a trained-model file.
ZOO_FORMAT = "cam_tutorial.zoo/1"
#: What every trained-model file holds.
FINAL_KEYS = ("format", "name", "preset", "key", "region", "model", "history", "test_loss", "test_acc")
#: What to do about a damaged shipped file (no cache folder can help).
REINSTALL = ("reinstall cam_tutorial (pip install --force-reinstall from where you installed it; in a clone of "
             "the repository, git checkout cam_tutorial/checkpoints)")


def default_cache_dir() -> Path:
    """``$CAM_TUTORIAL_CACHE`` or ``~/.cache/cam_tutorial``.
    Used in the appendix."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cam_tutorial"


def entry_folder(wanted: ModelRecipe, cache_dir: str | os.PathLike | None) -> Path:
    """The entry folder of recipe ``wanted`` in the cache."""
    if cache_dir is not None and not str(cache_dir).strip():
        raise ValueError("cache_dir is empty: pass a folder, e.g. cache_dir='~/.cache/cam_tutorial', "
                         f"or None for ${CACHE_ENV} or the default")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    entry = root / "models" / wanted.key
    if not entry.resolve().is_relative_to((root / "models").resolve()):  # Preset checks names; be sure
        raise ValueError(f"the cache entry {entry} lies outside {root / 'models'}: the preset name "
                         f"{wanted.preset!r} must be a plain name such as 'ci'")
    return entry


def _recipe_differences(stored: dict[str, Any], wanted: ModelRecipe) -> str:
    """How the recipe a stored model was trained for differs from ``wanted``, as far as the file tells."""
    identity = stored.get("identity")
    if not isinstance(identity, dict):
        return "the file records no recipe, only its key (written before recipes were stored)"
    return "; ".join(identity_differences(identity, wanted.identity(), "file")) or "the same recipe, another key"


def read_final(path: Path, wanted: ModelRecipe, model: nn.Module) -> dict[str, Any]:
    """The stored trained model at ``path`` (a shipped file or a cache entry's ``final.pt``),
    checked to be intact (a shipped file's SHA-256 against the manifest, a cached one's weights
    against their stored digest; finite weights, numeric scores) and to be the model of recipe
    ``wanted``, its weights loaded into ``model``.
    Used in no chapter directly.

    Raises:
        CheckpointError: naming the file, what is wrong and the fix: reinstall the package for a
            shipped file, delete a cached one (it will be retrained).
    """
    shipped = path.parent == PACKAGED_DIR
    fix = REINSTALL if shipped else f"delete {path} (it will be retrained) or choose another cache_dir"
    if shipped:  # the file the package shipped, not a damaged or replaced one
        found, expected = file_digest(path), shipped_digests().get(path.name)
        if found != expected:
            manifest = PACKAGED_DIR / MANIFEST_NAME
            listed = f"the manifest {manifest} lists {expected[:12]}..." if expected else f"{manifest} does not list it"
            raise CheckpointError(f"the shipped model {path} is damaged or was replaced (its SHA-256 is "
                                  f"{found[:12]}..., {listed}): {REINSTALL}")
    stored = safe_load(path, "the trained model", fix)
    check_format(stored, path, ZOO_FORMAT, FINAL_KEYS, "a cam_tutorial zoo model", fix)
    _check_contents(stored, path, fix)
    if stored["name"] != wanted.name:
        raise CheckpointError(f"{path} holds the zoo model {stored['name']!r}, not {wanted.name!r} (copied into "
                              f"the wrong cache entry?): {fix}")
    if stored["key"] != wanted.key:
        raise CheckpointError(f"{path} holds {wanted.name!r} trained for another recipe (cache key "
                              f"{stored['key']!r}, expected {wanted.key!r}; copied from another entry? "
                              f"{_recipe_differences(stored, wanted)}): {fix}")
    try:
        model.load_state_dict(stored["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:  # missing, unexpected or misshapen tensors
        first = str(exc).strip().splitlines()[:2]
        raise CheckpointError(f"the weights in {path} do not fit {stored['name']!r} under this preset "
                              f"({' '.join(first)[:300]}): {fix}") from exc
    return stored


def explain_stale_shipped(wanted: ModelRecipe) -> None:
    """Say why a shipped checkpoint of this model and preset made for another recipe is not used
    (the model is trained instead)."""
    for path in sorted(p for p in PACKAGED_DIR.glob(f"{wanted.name}-{wanted.preset}-*.pt") if p.stem != wanted.key):
        try:
            reason = _recipe_differences(safe_load(path, "the shipped model", "reinstall cam_tutorial"), wanted)
        except CheckpointError as exc:
            reason = str(exc)
        logger.warning("ignoring the shipped %s: it was trained for another recipe than %s (%s); training "
                       "%s into the cache instead (the package's maintainers ship a new one with "
                       "`python -m scripts.ship_models --preset %s --ship`)", path.name, wanted.key, reason,
                       wanted.name, wanted.preset)


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """A SHA-256 of a state dict's names, dtypes, shapes and bytes: stored beside a cached model's
    weights when it is written and checked when it is read, so flipped bytes are caught.

    Example:
        >>> weights_digest({"w": torch.zeros(2)}) == weights_digest({"w": torch.zeros(2)})
        True
        >>> weights_digest({"w": torch.zeros(2)}) == weights_digest({"w": torch.ones(2)})
        False
    """
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)};".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def shipped_digests() -> dict[str, str]:
    """The manifest of the shipped files: file name -> SHA-256 (:data:`MANIFEST_NAME`)."""
    manifest = PACKAGED_DIR / MANIFEST_NAME
    if not manifest.is_file():
        return {}
    return {name: digest for digest, name in (line.split() for line in manifest.read_text().splitlines() if line)}


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_contents(stored: dict[str, Any], path: Path, fix: str) -> None:
    """Refuse a stored model whose weights were damaged, are not finite, or whose scores are not numbers."""
    weights = stored["model"]
    if not isinstance(weights, dict) or not all(isinstance(t, torch.Tensor) for t in weights.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors under 'model': {fix}")
    expected = stored.get("weights_sha256")  # every cached file this version writes has one
    if expected is not None and weights_digest(weights) != expected:
        raise CheckpointError(f"the weights in {path} are damaged (their digest is not the one stored when "
                              f"they were written): {fix}")
    broken = [name for name, t in weights.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if broken:
        raise CheckpointError(f"the weights in {path} hold NaN or infinite values ({', '.join(broken[:3])}"
                              f"{', ...' if len(broken) > 3 else ''}): {fix}")
    for name in ("test_loss", "test_acc"):
        value = stored[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CheckpointError(f"{path} holds {name}={value!r}, not a finite number: {fix}")
    if not isinstance(stored["history"], dict):
        raise CheckpointError(f"{path} holds a history of type {type(stored['history']).__name__}, not a dict: {fix}")


def write_final(stored: dict[str, Any], final_path: Path) -> None:
    """Write a cache entry's ``final.pt`` atomically, with the digest of its weights, and delete
    the run's resume checkpoint beside it.
    Used in no chapter directly."""
    atomic_save({**stored, "weights_sha256": weights_digest(stored["model"])}, final_path)
    remove_resume_checkpoint(final_path.parent / "checkpoints" / CHECKPOINT_NAME)


def _user_id() -> int:
    """This process's user id (0 where there are none)."""
    return os.geteuid() if hasattr(os, "geteuid") else 0  # POSIX; Windows has per-user temp folders


def lock_folder() -> Path:
    """This user's lock folder in the machine's temporary folder: made with mode ``0700`` and
    checked without following links (a link or another user's folder planted at its name is
    refused, never followed: ``chmod`` through a link would change the link's target).

    Raises:
        CheckpointError: when something else stands at its path; the message names it and the fix.

    Example:
        >>> lock_folder().name.startswith("cam_tutorial-locks-")
        True
    """
    folder = Path(tempfile.gettempdir()) / f"cam_tutorial-locks-{_user_id()}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)  # mkdir never follows a link standing at `folder`
    found = os.lstat(folder)
    if not hasattr(os, "geteuid"):  # Windows: the temporary folder is the user's own
        problem = "" if stat.S_ISDIR(found.st_mode) else "not a folder"
    elif stat.S_ISLNK(found.st_mode) or not stat.S_ISDIR(found.st_mode):
        problem = "a link" if stat.S_ISLNK(found.st_mode) else "not a folder"
    elif found.st_uid != _user_id():
        problem = f"owned by user {found.st_uid}, not by this user ({_user_id()})"
    else:
        problem = f"open to other users (mode {stat.S_IMODE(found.st_mode):04o})" if found.st_mode & 0o077 else ""
    if problem:
        raise CheckpointError(f"cannot keep the zoo's locks in {folder}: it is {problem}, where a folder only this "
                              f"user can open (mode 0700) belongs: remove it if it is yours (rm -r '{folder}'), "
                              "or set the TMPDIR environment variable to a folder of your own")
    return folder


def lock_path(final_path: Path) -> Path:
    """The lock file of the cache entry whose model is ``final_path`` (locks stay on the local
    disk: see the module docstring)."""
    digest = hashlib.sha256(str(final_path.resolve()).encode()).hexdigest()[:16]
    return lock_folder() / f"{final_path.stem}-{digest}.lock"


@contextlib.contextmanager
def entry_lock(final_path: Path, wanted: str = "the model") -> Iterator[None]:
    """Hold the lock that lets one process train a cache entry while the others wait.
    Used in no chapter directly."""
    path = lock_path(final_path)
    lock = FileLock(str(path), mode=0o600)
    try:
        try:
            lock.acquire(timeout=0)
        except TimeoutError:
            logger.info("another process is training %s; waiting for it", wanted)
            lock.acquire()
    except OSError as exc:  # a link (ELOOP: lock files are opened without following links), a folder...
        raise CheckpointError(f"cannot lock {path} ({exc.strerror or exc}): remove it (rm -r '{path}'; "
                              "a lock file is made anew)") from exc
    try:
        yield
    finally:
        lock.release()


def remove_resume_checkpoint(path: Path) -> None:
    """Delete a finished run's per-epoch checkpoint once its final weights are stored: it holds
    the optimiser's state too (VGG16-FC's is about 1.6 GB at the ``gpu`` preset), and a finished
    entry is never resumed."""
    with contextlib.suppress(FileNotFoundError):
        size = path.stat().st_size
        path.unlink()
        logger.info("removed %s (%.0f MB), the finished run's resume checkpoint", path, size / 1e6)
    with contextlib.suppress(OSError):  # only when empty
        path.parent.rmdir()
