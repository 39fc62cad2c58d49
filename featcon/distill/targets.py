"""Cached teacher targets: the frozen teacher's representation ``t(x_i)`` of every image of a
distillation set, computed once and read by every distillation on that set
(``config.distill.cached_targets``), instead of a teacher forward pass at every step.

The distillation objective is unchanged (:func:`featcon.distill.student.distill_loss` with
``block_weight = 0``): ``L = mean_{b,k} (s(x_b)_k - t(x_b)_k)^2`` with ``t(x_b)`` read from the
cache row of the batch's source index ``b`` (:class:`TargetLoader`). The teacher is in eval
mode, so its output per image does not depend on the batch: the cached run equals the uncached
one up to floating-point reduction order (tested).

A cache file ``<dir>/targets_<fingerprint>.npz`` holds ``targets`` float32 (N, D), ``labels``
and the fingerprint (:func:`featcon.io.fingerprint`) of the teacher's variables (every array's
bytes), the data set reference, its size limit and the image size; a file whose stored
fingerprint differs is never read.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from featcon import io
from featcon.data.loader import Loader
from featcon.probe import features

log = logging.getLogger("featcon")


variables_digest = features.variables_digest  # the identity of the teacher's weights


def targets_fingerprint(teacher_digest: str, data_ref: str, limit: int, image_size: int,
                        representation: str = "embedding") -> str:
  """``io.fingerprint`` of what the targets depend on."""
  return io.fingerprint({"teacher": teacher_digest, "data": data_ref, "limit": int(limit),
                         "image_size": int(image_size), "representation": representation})


def teacher_targets(module, variables, ds, config, cache_dir: str, data_ref: str,
                    limit: int) -> tuple[np.ndarray, str]:
  """``(targets (N, D) float32, path)``: the teacher's embeddings of every example of ``ds``
  (in source order), read from or written to the cache of the module docstring."""
  fp = targets_fingerprint(variables_digest(variables), data_ref, limit, config.data.image_size)
  path = os.path.join(cache_dir, f"targets_{fp[:16]}.npz")
  if os.path.exists(path):
    z = io.load_cache_npz(path, keys=("targets", "labels", "fingerprint"))
    if z is not None and str(z["fingerprint"]) == fp and len(z["targets"]) == len(ds.source):
      log.info("teacher targets read from %s", path)
      return z["targets"], path
  t, y = features.extract_features(module, variables, ds, config)
  os.makedirs(cache_dir, exist_ok=True)
  io.atomic_write(path, lambda fh: np.savez(fh, targets=t, labels=y, fingerprint=fp),
                  binary=True)
  log.info("teacher targets of %d images (%s) cached in %s", len(t), data_ref, path)
  return t, path


class TargetLoader(Loader):
  """A training loader whose batches also carry ``target``: the cached teacher targets of the
  batch's source indices (``targets[i]`` is the target of ``source[i]``)."""

  def __init__(self, source, targets: np.ndarray, batch_size, resolution, **kw):
    super().__init__(source, batch_size, resolution, **kw)
    if len(targets) != len(source):
      raise ValueError(f"targets hold {len(targets)} rows for a source of {len(source)} "
                       "examples")
    self.targets = np.asarray(targets, np.float32)

  def train_batch(self, step: int, rows: slice | None = None) -> dict[str, np.ndarray]:
    batch = super().train_batch(step, rows)
    _, idx = self.batch_indices(step, rows)
    batch["target"] = self.targets[idx]
    return batch
