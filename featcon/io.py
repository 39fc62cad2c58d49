"""Provenance and safe writing, shared by every stage: atomic files, package versions, run records.

Every result featcon writes goes through :func:`atomic_write` (a temporary file in the same
folder, then ``os.replace``), so an interrupted run never leaves a half-written file behind, and
carries :func:`versions` (the packages and devices that made it). Figures of every stage are
written by :func:`save_figure`.
"""
from __future__ import annotations

import importlib.metadata
import fnmatch
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
import warnings
import zipfile
from typing import Any, Callable

import jax
import numpy as np

from featcon import distributed
from featcon.version import __version__

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "ml_collections", "numpy",
             "tensorflow-datasets", "scikit-learn", "scikit-image", "Pillow")


def versions() -> dict[str, Any]:
  """Versions of featcon, Python and the installed packages a result depends on (absent ones
  are omitted), the JAX backend and its devices."""
  out = {"featcon": __version__, "python": platform.python_version()}
  for p in _PACKAGES:
    try:
      out[p] = importlib.metadata.version(p)
    except importlib.metadata.PackageNotFoundError:
      pass
  out["jax"] = jax.__version__
  out["numpy"] = np.__version__
  out["platform"] = jax.default_backend()
  out["devices"] = [str(d) for d in jax.devices()]
  return out


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


FIGURE_DPI = 110


def save_figure(fig, path: str, dpi: int = FIGURE_DPI) -> str:
  """Writes a Matplotlib figure atomically, with a tight layout, and closes it.

  The format follows the file name's extension (``.png``, ``.pdf``, ``.svg``, ...).

  Args:
    fig: a ``matplotlib.figure.Figure``.
    path: the file to write.
    dpi: resolution of raster formats, dots per inch (positive).

  Returns:
    ``path``.

  Raises:
    ValueError: for a non-positive ``dpi`` or a path without an extension, before writing.
  """
  if not (isinstance(dpi, (int, float)) and not isinstance(dpi, bool) and dpi > 0):
    raise ValueError(f"save_figure: dpi={dpi!r}; allowed: a positive number")
  fmt = os.path.splitext(path)[1][1:].lower()
  if not fmt:
    raise ValueError(f"save_figure: path={path!r} has no extension; allowed: a file name "
                     "ending in a Matplotlib format such as .png, .pdf or .svg")
  if fig.get_layout_engine() is None:  # a figure made with layout="constrained" keeps it
    fig.tight_layout()
  try:
    atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi), binary=True)
  finally:
    # A figure made through pyplot is registered there until closed; pyplot is then imported.
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
      pyplot.close(fig)
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


def write_run_info(workdir: str, config, stage: str, extra: dict | None = None) -> dict:
  """Writes ``workdir/<stage>_config.json``: the stage, time, config, versions and ``extra``."""
  info = {"stage": stage, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
          "config": json.loads(config.to_json_best_effort()), "versions": versions()}
  info.update(extra or {})
  write_json(os.path.join(workdir, f"{stage}_config.json"), info, indent=2, sort_keys=True)
  return info


# ----------------------------------------------------------------------------------------------
# Safe loading: a corrupt or truncated file is reported with its path and the fix.


class CorruptFileError(ValueError):
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
    warnings.warn(f"{e}: the cache is recomputed", RuntimeWarning, stacklevel=2)
    try:
      os.remove(path)
    except FileNotFoundError:
      pass
    return None


# ----------------------------------------------------------------------------------------------
# Config fingerprints: what determines a stage's results, and refusing to reuse a workdir whose
# results were made under another config.


class ConfigMismatchError(ValueError):
  """A workdir holds results of a config that differs in fields that determine the results."""


def _as_dict(config) -> dict:
  if hasattr(config, "to_json_best_effort"):
    return json.loads(config.to_json_best_effort())
  return json.loads(json.dumps(config, default=str))  # tuples become lists, deep copy


def flatten(config, prefix: str = "") -> dict[str, Any]:
  """``{"a.b.c": value}`` of a nested dict or ConfigDict (tuples as lists)."""
  d = config if isinstance(config, dict) and prefix else _as_dict(config)
  out = {}
  for k, v in d.items():
    if isinstance(v, dict) and v:
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _ignored(field: str, ignore) -> bool:
  return any(fnmatch.fnmatchcase(field, pat) or field.startswith(pat + ".") for pat in ignore)


def result_fields(config, ignore=()) -> dict[str, Any]:
  """The flattened config less the fields matched by ``ignore`` (dotted names, shell patterns
  such as ``"probe.*"``, or a section name standing for everything below it)."""
  return {k: v for k, v in flatten(config).items() if not _ignored(k, ignore)}


def fingerprint(config, ignore=()) -> str:
  """SHA-1 of the fields of ``config`` that determine its results (see :func:`result_fields`)."""
  fields = result_fields(config, ignore)
  return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


_MISSING = "<absent>"


def config_diff(old, new, ignore=()) -> list[tuple[str, Any, Any]]:
  """``[(field, old value, new value)]`` for every field that differs (or exists in only one),
  sorted by field, leaving out those matched by ``ignore``."""
  a, b = result_fields(old, ignore), result_fields(new, ignore)
  return [(k, a.get(k, _MISSING), b.get(k, _MISSING)) for k in sorted(set(a) | set(b))
          if a.get(k, _MISSING) != b.get(k, _MISSING)]


def format_diff(diff) -> str:
  """One line per differing field: ``field: old -> new``."""
  return "\n".join(f"  {k}: {o!r} (recorded) -> {n!r} (now)" for k, o, n in diff)


def check_workdir(record_path: str, config, *, ignore=(), allow_changes: bool = False,
                  what: str = "results", fix: str = "") -> tuple[dict | None, list]:
  """Compares ``config`` with the config recorded in ``record_path`` (a JSON file with a
  ``"config"`` entry) on every field not matched by ``ignore``.

  Returns:
    (the record or None when there is none, the differences ``[(field, old, new)]``; empty or
    allowed by ``allow_changes``).

  Raises:
    ConfigMismatchError: naming each differing field with both values, unless
      ``allow_changes``.
    CorruptFileError: when the record cannot be read (naming the file and the fix).
  """
  if not os.path.exists(record_path):
    return None, []
  record = read_json(record_path, fix="delete it (and the outputs next to it) and rerun, or "
                     "use a new workdir")
  if not isinstance(record, dict) or "config" not in record:
    raise CorruptFileError(f"{record_path!r} holds no 'config' entry; delete it (and the "
                           "outputs next to it) and rerun, or use a new workdir")
  diff = config_diff(record["config"], config, ignore)
  if diff and not allow_changes:
    raise ConfigMismatchError(
        f"{record_path!r} records {what} made under a different config; the fields that "
        f"determine them differ:\n{format_diff(diff)}\n"
        + (fix or "use the recorded values, a new workdir, or delete the old one"))
  return record, diff
