"""BatchNorm recalibration: the running statistics of a trained (or randomly initialised) network
recomputed from its own training-mode activations on a set of images.

A network trained in a few hundred steps evaluates with running statistics that are still close
to their initialisation (momentum 0.01: ``0.99^120 ~ 0.3`` of the initial value remains after 120
steps), so eval mode computes another function than the one trained in batch-statistics mode.
Recalibration (Ioffe & Szegedy, 2015, Algorithm 2, step 10: the population statistics for
inference; PyTorch's ``torch.optim.swa_utils.update_bn``) sets every BatchNorm layer's running
statistics to the average over ``B`` equal-sized batches of the training-mode batch statistics::

  mean = (1/B) sum_b mean_b(x),   var = (1/B) sum_b  n/(n-1) var_b(x)

where ``x`` is the layer's input in a training-mode forward pass (every earlier layer normalised
with its batch statistics, as during training), ``mean_b``/``var_b`` are over the batch and
spatial axes (``n`` values per channel), and ``var`` is unbiased per batch as in PyTorch's
running-variance update (:class:`featcon.layers.BatchNorm`). Parameters are not changed.
"""
from __future__ import annotations

import logging
import os
from typing import Iterable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from featcon import io
from featcon import layers
from featcon.data import Loader, registry

log = logging.getLogger("featcon")

BATCHNORMS = (layers.BatchNorm, nn.BatchNorm)


def batch_statistics(module, variables, x) -> dict:
  """Every BatchNorm layer's training-mode input statistics on one batch ``x``:
  ``{layer path: {"mean", "var"}}`` (the layout of ``variables["batch_stats"]``), with the
  per-channel mean and the unbiased variance over all axes but the last."""
  stats = {}

  def interceptor(next_fun, args, kwargs, context):
    if isinstance(context.module, BATCHNORMS) and context.method_name == "__call__":
      h = args[0]
      axes = tuple(range(h.ndim - 1))
      n = int(np.prod([h.shape[a] for a in axes]))
      mean = jnp.mean(h, axes)
      var = jnp.mean(jnp.square(h - mean), axes) * (n / max(n - 1, 1))
      stats[context.module.path] = {"mean": mean, "var": var}
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(interceptor):
    module.apply(variables, x, train=True, mutable=["batch_stats"])
  return traverse_util.unflatten_dict({p + (k,): v for p, s in stats.items() for k, v in s.items()})


def recalibrate_batch_stats(module, variables: dict, batches: Iterable) -> dict:
  """``variables`` with ``batch_stats`` replaced by the average over ``batches`` (arrays
  ``(b, H, W, C)`` of one size ``b``) of :func:`batch_statistics` (the formula of the module
  docstring). Raises ValueError when ``variables`` has no ``batch_stats``, when no batch is
  given, or when the batches differ in size."""
  if "batch_stats" not in variables:
    raise ValueError("variables has no 'batch_stats' collection: the module has no BatchNorm "
                     "running statistics to recalibrate")
  fn = jax.jit(lambda v, x: batch_statistics(module, v, x))
  total, count, size = None, 0, None
  for x in batches:
    x = jnp.asarray(x)
    if size is None:
      size = x.shape[0]
    elif x.shape[0] != size:
      raise ValueError(f"batch of size {x.shape[0]} after batches of size {size}: "
                       "recalibration needs equal-sized batches (drop the remainder)")
    s = fn(variables, x)
    total = s if total is None else jax.tree.map(jnp.add, total, s)
    count += 1
  if not count:
    raise ValueError("batches is empty: recalibration needs at least one batch")
  new = jax.tree.map(lambda t: t / count, total)
  old = traverse_util.flatten_dict(variables["batch_stats"])
  got = traverse_util.flatten_dict(new)
  if set(old) != set(got):
    missing = sorted("/".join(k) for k in set(old) ^ set(got))
    raise ValueError(f"recalibrated statistics do not match batch_stats at {missing[:5]}")
  return dict(variables, batch_stats=traverse_util.unflatten_dict(
      {k: got[k].astype(old[k].dtype) for k in old}))


def image_batches(ds: registry.Dataset, image_size: int, batch_size: int, num_images: int,
                  workers: int = 2):
  """The first ``min(num_images, len(ds))`` images of ``ds`` (no augmentation) in full batches
  of ``batch_size`` (the remainder dropped); yields ``(b, H, W, 3)`` arrays."""
  n = min(num_images, len(ds.source))
  if n < batch_size:
    raise ValueError(f"recalibration images={n} is fewer than batch_size={batch_size}")
  loader = Loader(ds.source, batch_size, image_size, workers=workers)
  done = 0
  for batch in loader.eval_iter():
    if done + batch_size > n:
      break
    done += batch_size
    yield np.asarray(batch["image"])


def cache_path(directory: str, config) -> str:
  """``directory/batch_stats_recalibrated_n<images>.npz``."""
  return os.path.join(directory, f"batch_stats_recalibrated_n{int(config.distill.get('bn_recalibration', 0))}.npz")


def recalibration_stamp(variables: dict, config, data_ref: str) -> dict:
  """The provenance stamp (:func:`featcon.io.stamp`) of a recalibration cache: the digest of the
  network's variables (:func:`featcon.io.tree_digest`), the data set reference, the number of
  images, the batch size and the image size."""
  return io.stamp({"variables": io.tree_digest(variables), "data": data_ref,
                   "images": int(config.distill.get("bn_recalibration", 0)),
                   "batch_size": int(config.distill.batch_size),
                   "image_size": int(config.data.image_size)})


def maybe_recalibrated(module, variables: dict, open_ds, config, directory: str,
                       data_ref: str = "") -> dict:
  """``variables`` with BatchNorm statistics recalibrated on the first
  ``config.distill.bn_recalibration`` images of ``open_ds()`` (batches of
  ``config.distill.batch_size``), cached in ``directory`` (:func:`cache_path`; written
  atomically with its provenance stamp, :func:`recalibration_stamp` of ``data_ref``; a corrupt
  file, one whose statistics do not have the network's shapes or are not finite, or one of
  other variables or settings is recomputed with a warning); ``variables`` unchanged when that
  field is 0 or the module has no BatchNorm statistics."""
  n = int(config.distill.get("bn_recalibration", 0))
  if n < 0:
    raise ValueError(f"config.distill.bn_recalibration={n} is not allowed; allowed: 0 (keep the "
                     "running statistics) or a positive number of images")
  if not n or "batch_stats" not in variables:
    return variables
  path = cache_path(directory, config)
  stamp = recalibration_stamp(variables, config, data_ref)
  spec = {"/".join(k): (np.shape(v), "f", True)
          for k, v in traverse_util.flatten_dict(variables["batch_stats"]).items()}
  z = io.load_checked_cache(path, spec, stamp=stamp, what="recalibrated BatchNorm statistics")
  if z is None:
    ds = open_ds()
    batches = image_batches(ds, config.data.image_size, config.distill.batch_size, n,
                            config.data.workers)
    new = recalibrate_batch_stats(module, variables, batches)["batch_stats"]
    flat = {"/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(new).items()}
    io.atomic_write(path, lambda fh: np.savez(fh, **flat, **{io.STAMP_KEY: io.stamp_array(stamp)}),
                    binary=True)
    log.info("BatchNorm statistics recalibrated on %d images of %s:%s -> %s", n, ds.name,
             ds.split, path)
  else:
    flat = {k: z[k] for k in spec}
  stats = traverse_util.unflatten_dict({tuple(k.split("/")): jnp.asarray(v)
                                        for k, v in flat.items()})
  return dict(variables, batch_stats=stats)
