"""Frozen features for linear probes: an encoder's embedding or a pooled intermediate of every
example of a data set (eval mode, sharded over the devices), cached on disk, and the flattened
pixels that the baseline "standard models" read.
"""
from __future__ import annotations

import contextlib
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from featcon import io
from featcon import progress as progress_lib
from featcon import distributed
from featcon import training as train_lib
from featcon.data import Loader, registry
from featcon.version import __version__


def _pool(x):
  x = jnp.asarray(x)
  return x if x.ndim == 2 else x.reshape(x.shape[0], -1, x.shape[-1]).mean(axis=1)


def _represent(module, v, x, representation: str = "embedding"):
  """The rows :func:`extract_features` returns for the images ``x``: the embedding, or the
  named intermediate representation mean-pooled over its token/spatial axes."""
  emb, inter = module.apply(v, x, train=False)
  return emb if representation == "embedding" else _pool(inter[representation])


def extract_features(module, variables, ds: registry.Dataset, config,
                     representation: str = "embedding") -> tuple[np.ndarray, np.ndarray]:
  """Frozen features (eval mode) of every example: the embedding, or a named intermediate
  (token/spatial axes mean-pooled). Returns (features float32 (N, D), labels (N,))."""
  fc = config.probe
  mesh = train_lib.make_mesh(config.num_devices)
  repl, batch_sh = train_lib.shardings(mesh)
  bs = fc.feature_batch_size
  bs = max(len(mesh.devices.flat), bs - bs % len(mesh.devices.flat))

  fwd = jax.jit(functools.partial(_represent, module, representation=representation))

  variables = jax.device_put(variables, repl)
  feats, labels = [], []
  loader = Loader(ds.source, bs, config.data.image_size, workers=config.data.workers)
  bar = progress_lib.Bar(-(-len(ds.source) // bs) if hasattr(ds.source, "__len__") else None,
                         f"features {ds.name}:{ds.split}", True, unit="batch")
  # closing: an error or Ctrl-C stops the prefetch thread before the exception propagates
  with contextlib.closing(loader.eval_iter(sharding=batch_sh)) as batches:
    for batch in batches:
      valid, feat, label = distributed.gather((batch["valid"], fwd(variables, batch["image"]),
                                               batch["label"]))
      feats.append(feat[valid])
      labels.append(label[valid])
      bar()
  bar.close()
  return np.concatenate(feats).astype(np.float32), np.concatenate(labels)


variables_digest = io.tree_digest  # the identity of an encoder's weights


def feature_dim(module, variables, image_size: int, representation: str = "embedding") -> int:
  """The width D of :func:`extract_features`' rows, by abstract evaluation (nothing runs)."""
  x = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  fwd = functools.partial(_represent, module, representation=representation)
  return int(jax.eval_shape(fwd, variables, x).shape[-1])


def features_stamp(encoder_digest: str, ds: registry.Dataset, config,
                   representation: str) -> dict:
  """The provenance stamp (:func:`featcon.io.stamp`) of a feature cache: the encoder's weights
  (:func:`variables_digest`), the data set, its split and size, the representation and the
  image size, and the featcon version (the extraction code)."""
  return io.stamp({"encoder": encoder_digest, "data": f"{ds.name}:{ds.split}",
                   "examples": len(ds.source), "representation": representation,
                   "image_size": int(config.data.image_size), "featcon": __version__})


def cached_features(module, variables, ds, config, cache_dir: str,
                    representation: str = "embedding", encoder_digest: str | None = None):
  """extract_features, cached as ``cache_dir/<name>_<split>_n<size>_<representation>.npz``
  (written atomically, with its provenance stamp, :func:`features_stamp`).

  A cached file is read only when its stamp equals the current one and its arrays are what
  this encoder gives: ``features`` float32 (N, D) and finite (D by :func:`feature_dim`),
  ``labels`` integer (N,); otherwise it is recomputed, with a warning naming the file and the
  reason. ``encoder_digest`` (:func:`variables_digest` of ``variables``) may be passed to
  avoid hashing the weights once per data set."""
  path = os.path.join(cache_dir, f"{ds.name}_{ds.split}_n{len(ds.source)}_{representation}.npz")
  digest = encoder_digest or variables_digest(variables)
  stamp = features_stamp(digest, ds, config, representation)
  n = len(ds.source)
  dim = feature_dim(module, variables, config.data.image_size, representation)
  z = io.load_checked_cache(path, {"features": ((n, dim), np.float32, True),
                                   "labels": ((n,), "i", False)}, stamp=stamp,
                            what="cached features")
  if z is not None:
    return z["features"], z["labels"]
  f, y = extract_features(module, variables, ds, config, representation)
  io.atomic_write(path, lambda fh: np.savez(fh, features=f, labels=y, **{
      io.STAMP_KEY: io.stamp_array(stamp)}), binary=True)
  return f, y


def pixel_features(ds: registry.Dataset, config) -> tuple[np.ndarray, np.ndarray]:
  """Flattened CLIP-normalised pixels (the input of the baseline "standard models")."""
  loader = Loader(ds.source, 256, config.data.image_size, workers=config.data.workers)
  feats, labels = [], []
  for b in loader.eval_iter():
    feats.append(b["image"][b["valid"]].reshape(int(b["valid"].sum()), -1))
    labels.append(b["label"][b["valid"]])
  return np.concatenate(feats), np.concatenate(labels)
