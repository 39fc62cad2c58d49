"""Provenance: the versions of the packages and devices behind a result, the run record of a
stage (:func:`write_run_info`), and the identity of a tree of arrays (:func:`tree_digest`)."""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import time
from typing import Any

import jax
import numpy as np

from featcon.io.files import write_json
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


def write_run_info(workdir: str, config, stage: str, extra: dict | None = None) -> dict:
  """Writes ``workdir/<stage>_config.json``: the stage, time, config, versions and ``extra``."""
  info = {"stage": stage, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
          "config": json.loads(config.to_json_best_effort()), "versions": versions()}
  info.update(extra or {})
  write_json(os.path.join(workdir, f"{stage}_config.json"), info, indent=2, sort_keys=True)
  return info


def tree_digest(tree) -> str:
  """SHA-1 over the paths, shapes, dtypes and bytes of every array of a pytree (the identity of
  an encoder's weights, whatever file or training made them)."""
  h = hashlib.sha1()
  for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]:
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{jax.tree_util.keystr(path)}|{a.shape}|{a.dtype}|".encode())
    h.update(a.tobytes())
  return h.hexdigest()
