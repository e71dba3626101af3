"""Checkpoint files: written atomically, read safely, resumed only by the run that wrote them.

What :func:`~cam_tutorial.train.train` and the zoo (:mod:`cam_tutorial.zoo`) need to keep their
files honest, away from the training loop:

* :func:`atomic_save` writes to a temporary file and renames it over the target, so a crash
  leaves the old file or the new one, never half of one (:func:`remove_stale_temporaries`
  clears what a killed save left);
* :func:`safe_load` reads with ``torch.load(weights_only=True)``, which cannot run code hidden in
  a file, and turns every failure into a :class:`CheckpointError` that names the file, the cause
  and a fix that suits it; :func:`check_format` checks what was read;
* :func:`check_writable_folder` proves a folder takes files before any work that would be lost;
* the resume fingerprint (:func:`run_fingerprint`): what identifies a run (the model's tensors
  and module tree, the data, the settings and an ``identity``), so that :func:`load_checkpoint`
  refuses a checkpoint of another run, naming what differs (:func:`identity_differences`);
* the random state of every generator (:func:`rng_state`), so that a resumed run goes on exactly.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> target = Path(tempfile.mkdtemp()) / "last.pt"
    >>> atomic_save({"format": "demo/1", "epoch": 1}, target)
    >>> safe_load(target, "the demo file", "delete it")["epoch"]
    1
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import pickle
import random
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

__all__ = [
    "CheckpointError",
    "CHECKPOINT_NAME",
    "atomic_save",
    "safe_load",
    "check_format",
    "check_writable_folder",
    "load_checkpoint",
    "identity_differences",
]

logger = logging.getLogger(__name__)

#: File name of the rolling checkpoint inside ``checkpoint_dir``.
CHECKPOINT_NAME = "last.pt"
#: The ``format`` entry of :func:`~cam_tutorial.train.train`'s checkpoints.
CHECKPOINT_FORMAT = "cam_tutorial.train/1"
# What every checkpoint written by train() holds.
CHECKPOINT_KEYS = ("format", "fingerprint", "epoch", "model", "optimizer", "scheduler", "scaler", "rng",
                   "history", "config")
# "Disk quota exceeded" is not defined everywhere (e.g. Windows).
_EDQUOT = getattr(errno, "EDQUOT", errno.ENOSPC)


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from or written: unreadable, foreign, from another
    run, or a folder that cannot take it.
    Used in the appendix."""


def json_identity(identity: Any) -> dict[str, Any] | None:
    """``identity`` as the plain dict a checkpoint stores and loads back equal (or ``None``)."""
    if identity is None:
        return None
    if not isinstance(identity, dict):
        raise ValueError(f"identity must be a dict or None, got {type(identity).__name__}")
    try:
        return json.loads(json.dumps(identity, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"identity must be JSON-able (str keys; str, number, bool, None, list, dict "
                         f"values): {exc}") from None


def _data_identity(dataset: Dataset) -> dict[str, Any]:
    """What identifies a training set cheaply: its own ``repr`` when its class defines one
    (:class:`~cam_tutorial.lab.SyntheticShapes` shows split, size, seed and region) and a hash of
    the bytes and labels of its first, middle and last items (which also tells apart datasets
    without a telling ``repr``, such as a ``TensorDataset``)."""
    length = len(dataset)  # type: ignore[arg-type]
    describes_itself = type(dataset).__repr__ is not object.__repr__
    digest = hashlib.sha256()
    for index in sorted({0, length // 2, length - 1}):
        image, label, *_ = dataset[index]
        digest.update(torch.as_tensor(image).detach().cpu().contiguous().numpy().tobytes())
        digest.update(repr(torch.as_tensor(label).tolist()).encode())
    return {"repr": repr(dataset) if describes_itself else "", "items": digest.hexdigest()[:16]}


def run_fingerprint(model: nn.Module, train_set: Dataset, settings: dict[str, Any]) -> dict[str, Any]:
    """What identifies a run: the architecture (class, every tensor's name and shape, and the
    module tree's ``repr``, which shows constructor options such as ``GlobalPool(mode='max')``),
    the training data, and ``settings``: the config's values that change the computation and its
    ``identity`` (when given). Device, precision and workers may change on resume."""
    return {
        "model": type(model).__name__,
        "tensors": [[name, list(t.shape)] for name, t in model.state_dict().items()],
        "modules": hashlib.sha256(repr(model).encode()).hexdigest()[:16],
        "modules_text": repr(model),
        "train_size": int(len(train_set)),  # type: ignore[arg-type]
        "data": _data_identity(train_set),
        **settings,
    }


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict of dotted paths, e.g. ``{"lab": {"version": 1}}`` -> ``{"lab.version": 1}``."""
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def identity_differences(stored: Any, current: Any, stored_as: str = "checkpoint") -> list[str]:
    """The entries of two identities (:attr:`~cam_tutorial.train.TrainConfig.identity`) that differ, each named by its
    dotted path; the stored one is called ``stored_as`` in the text.
    Used in no chapter directly.

    Example:
        >>> identity_differences({"lab": {"version": 1, "seed": 0}}, {"lab": {"version": 2, "seed": 0}})
        ['identity.lab.version: checkpoint 1 vs now 2']
    """
    if stored is None or current is None:
        return [f"identity: the {stored_as} {'has none' if stored is None else 'has one'}, this run "
                f"{'has none' if current is None else 'has one'} (TrainConfig.identity)"]
    old, new = _flatten(stored, "identity"), _flatten(current, "identity")
    return [f"{path}: {stored_as} {old.get(path, '(absent)')!r} vs now {new.get(path, '(absent)')!r}"
            for path in sorted(set(old) | set(new)) if old.get(path, ...) != new.get(path, ...)]


def _fingerprint_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    differences = []
    for key in sorted(set(stored) | set(current)):
        if key == "modules_text" or stored.get(key) == current.get(key):
            continue
        if key == "tensors":
            differences.append("model parameters (names or shapes)")
        elif key == "modules":  # the first line of the module trees that differs
            lines = zip(str(stored.get("modules_text", "")).splitlines(),
                        str(current.get("modules_text", "")).splitlines())
            text = next((f"{old.strip()!r} vs now {new.strip()!r}" for old, new in lines if old != new),
                        "a different number of modules")
            differences.append(f"model options (module tree): checkpoint {text}")
        elif key == "data":
            differences.append(f"training data: checkpoint {stored.get(key)!r} vs now {current.get(key)!r}")
        elif key == "identity":
            differences.extend(identity_differences(stored.get(key), current.get(key)))
        else:
            differences.append(f"{key}: checkpoint {stored.get(key)!r} vs now {current.get(key)!r}")
    return differences


def rng_state(loader_generator: torch.Generator) -> dict[str, Any]:
    """The state of Python's, NumPy's and torch's generators and of ``loader_generator``, as
    tensors and plain values (what ``weights_only`` loading accepts)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64),
                   "gauss_next": py_state[2]},
        "loader": loader_generator.get_state(),
    }


def restore_rng_state(state: dict[str, Any], loader_generator: torch.Generator) -> None:
    """Put back what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss_next"]))
    loader_generator.set_state(state["loader"])


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (a fresh run's start)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files that saves of ``path`` killed midway left (:func:`atomic_save`);
    only while nobody else writes there (one run per ``checkpoint_dir``, the zoo's lock per entry).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> (folder / ".last.pt.abc.tmp").touch()
        >>> remove_stale_temporaries(folder / "last.pt")
        >>> list(folder.iterdir())
        []
    """
    for stale in sorted(path.parent.glob(f".{path.name}.*.tmp")):  # none where there is no folder
        logger.info("removing %s, left by a process killed while saving", stale)
        stale.unlink(missing_ok=True)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename it over ``path``:
    a crash leaves either the old file or the new one, never half of one.
    Used in no chapter directly.

    The temporary file is a new file made with ``open()``, so it gets the mode the umask gives
    (``0644`` under umask ``022``; :func:`tempfile.mkstemp` would make it ``0600``, unreadable to
    anyone else sharing the cache), under a random name that no other file has.

    Raises:
        OSError: ``errno.ENOSPC`` with a message saying the disk is full and naming the folder;
            the previous file at ``path`` is kept.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "last.pt"
        >>> atomic_save({"epoch": 1}, target)
        >>> torch.load(target)["epoch"], [p.name for p in target.parent.iterdir()]
        (1, ['last.pt'])
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        with open(tmp, "xb") as f:  # "x": a new file, never one that stands there
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        # torch.save reports a failed write from its C++ writer as a RuntimeError without the errno.
        if (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, _EDQUOT)
                or isinstance(exc, RuntimeError) and ("unexpected pos" in str(exc) or "file write failed" in str(exc))):
            raise OSError(errno.ENOSPC, f"disk full: cannot write {path.name} to {path.parent} "
                          f"(any earlier {path.name} there is kept); free space there or choose another "
                          "folder", str(path)) from exc
        raise


def check_writable_folder(folder: str | os.PathLike, fix: str) -> Path:
    """Create ``folder`` if needed and prove that files can be written in it, before any work
    that would be lost if they cannot.
    Used in no chapter directly.

    Args:
        folder: the folder.
        fix: what the user should do instead, e.g. ``"choose another checkpoint_dir"``.

    Returns:
        ``folder`` as a :class:`~pathlib.Path`.

    Raises:
        CheckpointError: when a file stands in the way, permission is denied, the disk is full
            or read-only; the message names the folder, the cause and ``fix``.

    Example:
        >>> import tempfile
        >>> check_writable_folder(tempfile.mkdtemp(), "choose another folder").is_dir()
        True
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()  # a file made there, and gone when closed
    except (FileExistsError, NotADirectoryError) as exc:
        # The first existing part of the path that is not a folder: the file in the way.
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise CheckpointError(f"cannot use {folder} as a folder: {blocker} is a file: "
                              f"move that file away or {fix}") from exc
    except PermissionError as exc:
        raise CheckpointError(f"cannot write to {folder}: permission denied (a read-only or another user's "
                              f"folder?): make it writable or {fix}") from exc
    except OSError as exc:
        cause = {errno.ENOSPC: "the disk is full", _EDQUOT: "the disk is full or the quota used up",
                 errno.EROFS: "the file system is read-only"}.get(exc.errno or 0, exc.strerror or str(exc))
        raise CheckpointError(f"cannot write to {folder}: {cause}: {fix}") from exc
    return folder


# Why torch.load failed, in order: (exception type, a pattern its text matches, the cause, the
# fix; None: the caller's fix for a damaged file). Only damaged files are to be deleted.
_LOAD_FAILURES: tuple[tuple[type[BaseException], str, str, str | None], ...] = (
    (FileNotFoundError, "", "there is no such file (moved or deleted meanwhile?)", "check the path"),
    (IsADirectoryError, "", "it is a folder, not a file",
     "move the folder away (the file will be written again) or check the path"),
    (PermissionError, "", "permission denied (another user's file?)",
     "give this user read access (chmod a+r) or point to another folder; the file itself may be fine"),
    (pickle.UnpicklingError, "weights_only|Unsupported global",
     "it holds Python objects other than tensors and plain containers, which safe loading refuses "
     "because reading them could run code",
     "if it is a file of this package, {fix}; otherwise it is not one of this package's files"),
    (EOFError, "", "it ends early (an interrupted copy or write?)", None),
    (Exception, "maximum supported version|newer version",
     f"it was written by a newer PyTorch than this one ({torch.__version__})",
     "upgrade torch; the file itself may be fine"),
    (Exception, "", "it is corrupt or truncated", None),
)


def safe_load(path: str | os.PathLike, what: str, fix: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with a message that says what is wrong.
    Used in no chapter directly.

    ``weights_only`` loading accepts only tensors and plain containers, so a file cannot run code
    when read. Every failure becomes a :class:`CheckpointError` that names the file, the actual
    cause (missing, a folder, no permission, empty, truncated, disallowed Python objects, written
    by a newer PyTorch) and a fix that suits that cause: only damaged files are to be deleted.

    Args:
        path: the file.
        what: what the file is, for the message, e.g. ``"the checkpoint"``.
        fix: what to do about a damaged file, e.g. ``"delete it or choose another checkpoint_dir"``.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "empty.pt")
        >>> open(path, "wb").close()
        >>> try:
        ...     safe_load(path, "the checkpoint", "delete it")
        ... except CheckpointError as err:
        ...     print(str(err).split(": ", 1)[1])
        it is empty (0 bytes; an interrupted copy or write?): delete it
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise CheckpointError(f"cannot read {what} {path}: it is empty (0 bytes; an interrupted copy or "
                              f"write?): {fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        cause, advice = next((cause, advice) for kind, says, cause, advice in _LOAD_FAILURES
                             if isinstance(exc, kind) and re.search(says, str(exc)))
        lines = str(exc).strip().splitlines()  # the first, at most 200 characters, says enough
        said = lines[0][:200] if lines else f"{type(exc).__name__} without a message"
        raise CheckpointError(f"cannot read {what} {path} ({type(exc).__name__}: {said}): {cause}: "
                              f"{(advice or '{fix}').format(fix=fix)}") from exc


def check_format(stored: Any, path: Path, expected: str, keys: Sequence[str], what: str, fix: str) -> None:
    """Check a loaded file's ``format`` entry and that it holds ``keys``; shared by the zoo.
    Used in no chapter directly.

    Raises:
        CheckpointError: for another program's file (with ``fix``), a file of a newer version of
            this package (upgrade it), or one that lacks entries (naming them).
    """
    if not isinstance(stored, dict) or not isinstance(stored.get("format"), str):
        raise CheckpointError(f"{path} is not {what} (expected format {expected!r}; a bare state_dict or "
                              f"another program's file?): {fix}")
    family, _, version = expected.rpartition("/")
    found = stored["format"]
    if found != expected:
        if found.startswith(family + "/"):
            raise CheckpointError(f"{path} is {what} of format {found!r}, which this version of cam_tutorial "
                                  f"(format {expected!r}) cannot read: upgrade cam_tutorial, or {fix}")
        raise CheckpointError(f"{path} is not {what} (format {found!r}, expected {expected!r}): {fix}")
    missing = [key for key in keys if key not in stored]
    if missing:
        raise CheckpointError(f"{path} lacks the entries {', '.join(map(repr, missing))} of {what} "
                              f"(written by hand or by a broken program?): {fix}")


def load_checkpoint(path: str | os.PathLike, fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read one of :func:`~cam_tutorial.train.train`'s checkpoints safely (``weights_only=True``) and check its
    format; given the ``fingerprint`` of a run (:func:`run_fingerprint`), check that this run wrote it.
    Used in no chapter directly.

    Raises:
        CheckpointError: when the file cannot be read (the message says why: missing, no
            permission, empty, truncated...), is not a complete checkpoint written by
            :func:`~cam_tutorial.train.train` (e.g. a bare ``state_dict``), or was written by another
            run (resuming would mix two runs; the message names what differs); the message names the
            file and the fix.
    """
    path = Path(path)
    fix = f"delete {path} or choose another checkpoint_dir"
    checkpoint = safe_load(path, "the checkpoint", fix)
    check_format(checkpoint, path, CHECKPOINT_FORMAT, CHECKPOINT_KEYS, "a cam_tutorial training checkpoint", fix)
    differences = [] if fingerprint is None else _fingerprint_differences(checkpoint["fingerprint"], fingerprint)
    if differences:
        raise CheckpointError(f"{path} was written by another run ({'; '.join(differences)}), so resuming from "
                              f"it would mix two runs: {fix}")
    return checkpoint
