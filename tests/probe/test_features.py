"""Frozen features for the probes (featcon/probe/features.py): the named representation, in eval
mode (BatchNorm running statistics), mean-pooled over tokens or positions, every example once;
against a numpy computation of the same encoder."""
import os

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from featcon import layers
from featcon.data import Loader, registry
from featcon.data.sources import ArraySource
from featcon.probe import features

MEAN = np.array([0.3, -0.2, 0.1], np.float32)
VAR = np.array([4.0, 0.25, 1.5], np.float32)
SCALE = np.array([2.0, 1.0, 0.5], np.float32)
BIAS = np.array([0.1, 0.2, -0.3], np.float32)


class Enc(nn.Module):
  """h = BN(x); embedding = spatial mean of h + 1; intermediates: the map h, tokens 3 h, a
  vector h[:, 0, 0] (already (N, C))."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = layers.BatchNorm(name="bn")(x, train)
    n = x.shape[0]
    return h.mean((1, 2)) + 1.0, {"spatial": h, "tokens": 3.0 * h.reshape(n, -1, 3),
                                  "vec": h[:, 0, 0, :]}


def _setup(n=7, size=8):
  rng = np.random.default_rng(0)
  src = ArraySource(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                    rng.integers(0, 3, n))
  ds = registry.Dataset("toy", "val", src, 3)
  config = ml_collections.ConfigDict({
      "num_devices": 1, "probe": {"feature_batch_size": 4},
      "data": {"image_size": size, "workers": 1}})
  variables = {"params": {"bn": {"scale": jnp.asarray(SCALE), "bias": jnp.asarray(BIAS)}},
               "batch_stats": {"bn": {"mean": jnp.asarray(MEAN), "var": jnp.asarray(VAR)}}}
  # The encoder's input images, as the loader preprocesses them (one batch, no padding).
  x = next(Loader(src, n, size, workers=1).eval_iter())["image"]
  h = (np.asarray(x, np.float64) - MEAN) / np.sqrt(VAR + layers.BN_EPS) * SCALE + BIAS
  return ds, config, variables, h, src.labels


@pytest.mark.parametrize("representation", ["embedding", "spatial", "tokens", "vec"])
def test_features_are_the_named_representation_in_eval_mode(representation):
  ds, config, variables, h, labels = _setup()
  want = {"embedding": h.mean((1, 2)) + 1.0, "spatial": h.mean((1, 2)),
          "tokens": 3.0 * h.mean((1, 2)), "vec": h[:, 0, 0]}[representation]
  f, y = features.extract_features(Enc(), variables, ds, config, representation)
  assert f.shape == (7, 3) and f.dtype == np.float32
  np.testing.assert_allclose(f, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(y, labels)  # every example once, in order (7 = 4 + 3 padded)
  # Training-mode statistics would give another function: the per-channel batch mean of the
  # map is ~0 there, here it is not.
  assert np.min(np.abs(h.mean((0, 1, 2)) - BIAS)) > 0.05


def test_feature_cache_keeps_representations_apart(tmp_path):
  ds, config, variables, h, _ = _setup()
  cache = str(tmp_path / "features")
  for _ in range(2):  # computed, then read back from the cache
    emb, _ = features.cached_features(Enc(), variables, ds, config, cache, "embedding")
    vec, _ = features.cached_features(Enc(), variables, ds, config, cache, "vec")
    np.testing.assert_allclose(emb, h.mean((1, 2)) + 1.0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vec, h[:, 0, 0], rtol=1e-5, atol=1e-5)
  assert len(os.listdir(cache)) == 2
