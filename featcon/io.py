"""Provenance and safe writing, shared by every stage: atomic files, package versions, run records.

Every result featcon writes goes through :func:`atomic_write` (a temporary file in the same
folder, then ``os.replace``), so an interrupted run never leaves a half-written file behind, and
carries :func:`versions` (the packages and devices that made it). Figures of every stage are
written by :func:`save_figure`.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
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


def atomic_write(path: str, write: Callable[[Any], None], binary: bool = False) -> str:
  """Writes a file through a temporary file in the same folder and ``os.replace``.

  In a multi-process run (``jax.distributed``) only process 0 writes; the others return.
  """
  if not distributed.is_main():
    return path
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
  try:
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
