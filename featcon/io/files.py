"""Safe writing and reading: atomic files, JSON with numpy values, and loaders that report a
corrupt or truncated file with its path and the fix.

Every result featcon writes goes through :func:`atomic_write` (a temporary file in the same
folder, then ``os.replace``), so an interrupted run never leaves a half-written file behind.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
import zipfile
from typing import Any, Callable

import numpy as np

from featcon import distributed
from featcon.errors import FeatconError


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def atomic_write(path: str, write: Callable[[Any], None], binary: bool = False) -> str:
  """Writes a file through a temporary file in the same folder and ``os.replace``.

  The file gets the permissions of an ordinary new file (0666 less the umask, 0644 with the
  usual umask 022), not the 0600 of the temporary file.

  In a multi-process run (``jax.distributed``) only process 0 writes; the others return.
  """
  if not distributed.is_main():
    return path
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
  try:
    os.chmod(tmp, 0o666 & ~_umask())
    with os.fdopen(fd, "wb" if binary else "w") as f:
      write(f)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path


def jsonable(o):
  """``json.dump(default=...)`` for numpy scalars and arrays."""
  if isinstance(o, (np.floating, np.integer, np.bool_)):
    return o.item()
  if isinstance(o, np.ndarray):
    return o.tolist()
  raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str, obj, **kwargs) -> str:
  """``json.dump`` of ``obj`` into ``path``, atomically (numpy values converted)."""
  kwargs.setdefault("default", jsonable)
  return atomic_write(path, lambda f: json.dump(obj, f, **kwargs))


class CorruptFileError(FeatconError, ValueError):
  """A file featcon wrote earlier cannot be read (truncated, corrupt, not what it should be)."""


def read_json(path: str, fix: str = "delete it and rerun the stage that wrote it"):
  """``json.load`` of ``path``; a truncated or corrupt file raises :class:`CorruptFileError`
  naming the file and ``fix``."""
  try:
    with open(path) as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise CorruptFileError(f"{path!r} is corrupt or truncated ({e}); {fix}") from None


def load_npz(path: str, fix: str = "delete it and rerun the stage that wrote it",
             keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
  """Every array of the ``.npz`` file ``path`` (read fully, the file closed); a truncated or
  corrupt file, or one missing any of ``keys``, raises :class:`CorruptFileError` naming the
  file and ``fix``."""
  try:
    with np.load(path, allow_pickle=False) as z:
      out = {k: z[k] for k in z.files}
  except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
    if isinstance(e, FileNotFoundError):
      raise
    raise CorruptFileError(f"{path!r} is corrupt or truncated ({type(e).__name__}: {e}); "
                           f"{fix}") from None
  missing = [k for k in keys if k not in out]
  if missing:
    raise CorruptFileError(f"{path!r} lacks the arrays {missing}; {fix}")
  return out


def load_cache_npz(path: str, keys: tuple[str, ...] = ()) -> dict[str, np.ndarray] | None:
  """A pure cache file: its arrays, or None (with a warning, the file removed) when it is
  corrupt, so that the caller recomputes it."""
  try:
    return load_npz(path, keys=keys)
  except CorruptFileError as e:
    return discard_cache(path, f"{e}: the cache is recomputed", stacklevel=2)


def discard_cache(path: str, message: str, stacklevel: int = 2) -> None:
  """Warns ``message`` (a RuntimeWarning, ``stacklevel`` counted from the caller) and removes
  the cache file ``path`` if it is still there; returns None, a cache loader's "recompute"."""
  warnings.warn(message, RuntimeWarning, stacklevel=stacklevel + 1)
  try:
    os.remove(path)
  except FileNotFoundError:
    pass


STAMP_KEY = "__stamp"


def stamp_array(stamp: dict) -> np.ndarray:
  """A provenance stamp (:func:`featcon.io.records.stamp`) as the 0-d string array that an
  ``.npz`` file stores under :data:`STAMP_KEY` (read back without pickle)."""
  return np.asarray(json.dumps(stamp, sort_keys=True, default=str))


def read_stamp(arrays: dict):
  """The stamp stored in a loaded ``.npz`` (:func:`stamp_array`), or None when it has none or
  it cannot be parsed."""
  raw = arrays.get(STAMP_KEY)
  if raw is None or raw.ndim != 0 or raw.dtype.kind != "U":
    return None
  try:
    return json.loads(str(raw))
  except json.JSONDecodeError:
    return None


def check_arrays(path: str, arrays: dict, spec: dict, fix: str) -> None:
  """Checks the arrays read from ``path`` against what the reader expects.

  Args:
    path: the file (named in the error).
    arrays: ``{name: array}`` as loaded.
    spec: ``{name: (shape, dtype, finite)}``: ``shape`` a tuple whose entries are ints or None
      (any size), or None for any shape; ``dtype`` a numpy dtype, a dtype kind character
      (``"f"``, ``"i"``, ...) or None; ``finite`` whether every value must be finite.
    fix: what to do about a bad file (named in the error).

  Raises:
    CorruptFileError: naming the file, the array, what it holds and what was expected.
  """
  for name, (shape, dtype, finite) in spec.items():
    if name not in arrays:
      raise CorruptFileError(f"{path!r} lacks the array {name!r}; {fix}")
    a = arrays[name]
    if shape is not None and (a.ndim != len(shape) or any(
        s is not None and s != n for s, n in zip(shape, a.shape))):
      want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
      raise CorruptFileError(f"{path!r}: array {name!r} has shape {a.shape}, expected {want}; "
                             f"{fix}")
    if dtype is not None:
      ok = a.dtype.kind == dtype if isinstance(dtype, str) and len(dtype) == 1 \
          else a.dtype == np.dtype(dtype)
      if not ok:
        raise CorruptFileError(f"{path!r}: array {name!r} has dtype {a.dtype}, expected "
                               f"{dtype}; {fix}")
    if finite and a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
      bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
      raise CorruptFileError(f"{path!r}: array {name!r} holds {bad} non-finite value(s); {fix}")

