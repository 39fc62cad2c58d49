"""Hand-computed checks of featcon.analysis.metrics (F.2 rates, F.3 selectivity, G.2 density)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from featcon.analysis import metrics

# 4 examples, 2 channels, classes [0, 0, 1, 1].
ACTS = np.array([[1., 0.], [3., 0.], [0., 2.], [0., 0.]], np.float32)
LABELS = np.array([0, 0, 1, 1])


def test_rates_and_means_by_hand():
  st = metrics.class_stats(ACTS, LABELS, 2)
  np.testing.assert_allclose(metrics.activation_rates(st), [[1., 0.], [0., .5]])
  np.testing.assert_allclose(metrics.class_means(st), [[2., 0.], [0., 1.]])
  np.testing.assert_allclose(metrics.class_mean_rates(st), [.5, .25])
  np.testing.assert_allclose(metrics.rate_asymmetry(st), [1., .5])


def test_spatial_positions_count_as_observations():
  x = np.array([[[1.], [-1.]], [[0.], [2.]]], np.float32)[None]  # (1, 2, 2, 1)
  st = metrics.class_stats(x, np.array([0]), 1)
  assert float(metrics.activation_rates(st)[0, 0]) == 0.5      # 2 of 4 positions > 0
  assert float(metrics.class_means(st)[0, 0]) == 0.5           # (1 - 1 + 0 + 2) / 4
  tokens = x.reshape(1, 4, 1)                                   # (N, T, C) gives the same
  np.testing.assert_allclose(metrics.class_means(metrics.class_stats(tokens, [0], 1)), [[.5]])


def test_selectivity_by_hand():
  means = np.array([[4.], [1.], [1.]])
  assert float(metrics.selectivity(means, "morcos", eps=0)[0]) == pytest.approx(3 / 5)
  assert float(metrics.selectivity(means, "all", eps=0)[0]) == pytest.approx(1 / 3)
  assert float(metrics.selectivity(np.ones((5, 1)))[0]) == pytest.approx(0.0)
  one_class = np.array([[2.], [0.], [0.]])
  assert float(metrics.selectivity(one_class, eps=0)[0]) == pytest.approx(1.0)


def test_selectivity_rejects_bad_input():
  with pytest.raises(ValueError, match="mode='max'.*morcos"):
    metrics.selectivity(np.ones((2, 1)), "max")
  with pytest.raises(ValueError, match="means.shape"):
    metrics.selectivity(np.ones((1, 3)))


def test_density_by_hand():
  st = metrics.class_stats(ACTS, LABELS, 2)
  np.testing.assert_allclose(metrics.unit_means(st), [1., .5])
  # fraction of units active per example: .5, .5, .5, 0
  assert float(metrics.active_fraction(st)) == pytest.approx(0.375)
  s = metrics.density_summary(st, threshold=0.75)
  assert s["frac_units_above"] == 0.5 and s["mean_unit_activation"] == pytest.approx(0.75)


def test_streaming_and_masking_match_one_batch():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((10, 3, 3, 4)).astype(np.float32)
  y = rng.integers(0, 3, 10)
  whole = metrics.class_stats(x, y, 3)
  parts = metrics.add_stats(metrics.class_stats(x[:6], y[:6], 3),
                            metrics.class_stats(x[6:], y[6:], 3))
  padded = metrics.class_stats(np.concatenate([x, np.ones_like(x[:2])]),
                               np.r_[y, [-1, -1]], 3)   # label -1 rows are ignored
  for other in (parts, padded):
    for a, b in zip(whole, other):
      np.testing.assert_allclose(a, b, rtol=1e-6)


def test_class_stats_jits():
  f = jax.jit(metrics.class_stats, static_argnums=2)
  st = f(jnp.asarray(ACTS), jnp.asarray(LABELS), 2)
  np.testing.assert_allclose(metrics.class_means(st), [[2., 0.], [0., 1.]])


def test_bad_shape_raises():
  with pytest.raises(ValueError, match="acts.ndim=1"):
    metrics.class_stats(np.ones(3), np.zeros(3, int), 2)
