"""BatchNorm recalibration (featcon/distill/batchnorm.py) against a plain numpy reference."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from featcon import models
from featcon import layers
from featcon.distill import batchnorm


class TwoBN(nn.Module):
  """x -> BN -> relu(3h + 1) -> BN: the second layer's input depends on the first layer's
  training-mode (batch-statistics) normalisation."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = layers.BatchNorm(name="bn_a")(x, train)
    h = jax.nn.relu(3.0 * h + 1.0)
    return layers.BatchNorm(name="bn_b")(h, train), {}


def _numpy_reference(batches):
  """Per batch: mean and unbiased variance over (N, H, W) of each layer's training-mode input,
  averaged over the batches."""
  ma, va, mb, vb = [], [], [], []
  for x in batches:
    x = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
    n = x.shape[0]
    m, v = x.mean(0), x.var(0)  # biased: what training-mode normalisation divides by
    ma.append(m)
    va.append(v * n / (n - 1))
    h = np.maximum(3.0 * (x - m) / np.sqrt(v + layers.BN_EPS) + 1.0, 0.0)
    mb.append(h.mean(0))
    vb.append(h.var(0) * n / (n - 1))
  return {"bn_a": {"mean": np.mean(ma, 0), "var": np.mean(va, 0)},
          "bn_b": {"mean": np.mean(mb, 0), "var": np.mean(vb, 0)}}


def test_recalibration_matches_numpy_reference():
  rng = np.random.default_rng(0)
  # Batches with different means and scales per batch, so that the per-batch average differs
  # from the statistics of the pooled images and from any single batch.
  batches = [(rng.normal(size=(4, 5, 5, 3)) * (1 + b) + 2 * b).astype(np.float32)
             for b in range(3)]
  module = TwoBN()
  variables = module.init(jax.random.key(0), jnp.asarray(batches[0]))
  variables = {"params": variables["params"], "batch_stats": jax.tree.map(
      lambda v: v + 7.0, variables["batch_stats"])}  # stale statistics, to be replaced
  new = batchnorm.recalibrate_batch_stats(module, variables, batches)
  ref = _numpy_reference(batches)
  for layer in ("bn_a", "bn_b"):
    for k in ("mean", "var"):
      np.testing.assert_allclose(np.asarray(new["batch_stats"][layer][k]), ref[layer][k],
                                 rtol=1e-4, atol=1e-5, err_msg=f"{layer}/{k}")
  # Parameters are untouched.
  jax.tree.map(np.testing.assert_array_equal, new["params"], variables["params"])
  # The pooled variance differs from the average of per-batch variances (the test would not
  # see a pooled-statistics implementation otherwise).
  pooled = np.concatenate([b.reshape(-1, 3) for b in batches]).var(0, ddof=1)
  assert np.all(np.abs(pooled - ref["bn_a"]["var"]) > 0.1)


@pytest.mark.slow
def test_recalibrated_eval_mode_reproduces_training_mode():
  """On one batch, eval mode with recalibrated statistics computes the training-mode function
  on the EfficientNet-Lite0 student, up to the unbiased n/(n-1) variance factor: compared on the
  stem and the first stages, where n = 64 x 16 x 16 or 64 x 8 x 8 values per channel (the 1 x 1
  maps of the last stages have n = 64, and the factor compounds through a random network)."""
  module = models.make_encoder("efficientnet-lite0", num_classes=0)
  x = jax.random.normal(jax.random.key(1), (64, 32, 32, 3))
  variables = jax.jit(module.init)(jax.random.key(0), x[:1])
  (_, train_inter), _ = jax.jit(lambda v, x: module.apply(v, x, train=True,
                                                          mutable=["batch_stats"]))(variables, x)
  evaluate = jax.jit(lambda v, x: module.apply(v, x, train=False))
  _, stale = evaluate(variables, x)
  new = batchnorm.recalibrate_batch_stats(module, variables, [x])
  _, inter = evaluate(new, x)
  for name in ("stem", "block0", "block1", "block2"):
    err = float(jnp.max(jnp.abs(inter[name] - train_inter[name])))
    stale_err = float(jnp.max(jnp.abs(stale[name] - train_inter[name])))
    scale = float(jnp.max(jnp.abs(train_inter[name])))
    assert err < 2e-3 * scale and stale_err > 0.1 * scale, (name, err, stale_err, scale)


def test_bad_inputs():
  module = TwoBN()
  x = np.ones((2, 3, 3, 2), np.float32)
  variables = module.init(jax.random.key(0), jnp.asarray(x))
  with pytest.raises(ValueError, match="batch_stats"):
    batchnorm.recalibrate_batch_stats(module, {"params": variables["params"]}, [x])
  with pytest.raises(ValueError, match="empty"):
    batchnorm.recalibrate_batch_stats(module, variables, [])
  with pytest.raises(ValueError, match="equal-sized"):
    batchnorm.recalibrate_batch_stats(module, variables, [x, x[:1]])
