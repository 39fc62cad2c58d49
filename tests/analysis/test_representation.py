"""Domain probe (G.1, Table 5) and PCA (Figure 14) on separable and inseparable toy data."""
import jax
import numpy as np
import pytest

from featcon.analysis import representation as rep


def test_separable_domains_have_zero_error():
  rng = np.random.default_rng(0)
  x = np.r_[rng.normal(-3, .1, (50, 2)), rng.normal(3, .1, (50, 2))]
  d = np.r_[np.zeros(50, int), np.ones(50, int)]
  res = rep.domain_error(x, d, jax.random.PRNGKey(0))
  assert res["error"] == 0.0 and res["train_error"] == 0.0
  assert res["n_test"] == 30 and res["n_train"] == 70


def test_identical_features_give_exactly_half_error():
  # Every point appears once in each domain: any classifier is wrong on exactly one copy.
  x = np.random.default_rng(1).normal(size=(20, 3))
  xx, dd = np.r_[x, x], np.r_[np.zeros(20, int), np.ones(20, int)]
  probe = rep.fit_ridge_probe(xx, dd, 2)
  assert float(rep.probe_error(probe, xx, dd)) == 0.5


def test_same_distribution_is_near_chance():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(400, 5))
  d = rng.integers(0, 2, 400)
  res = rep.domain_error(x, d, jax.random.PRNGKey(0))
  assert 0.35 < res["error"] < 0.65


def test_probe_recovers_a_linear_rule():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(300, 4))
  y = (x[:, 0] - 2 * x[:, 2] > 0).astype(int)
  assert float(rep.probe_error(rep.fit_ridge_probe(x, y, 2), x, y)) < 0.05


def test_pca_of_a_line():
  t = np.linspace(-1, 1, 21)
  x = np.c_[t, 2 * t, np.zeros_like(t)] + 5.0
  proj, expl = rep.pca_2d(x)
  assert proj.shape == (21, 2)
  np.testing.assert_allclose(expl, [1.0, 0.0], atol=1e-6)
  np.testing.assert_allclose(np.abs(proj[:, 0]), np.abs(t) * np.sqrt(5), atol=1e-5)


def test_bad_inputs():
  with pytest.raises(ValueError, match="at least 2"):
    rep.domain_error(np.ones((10, 2)), np.zeros(10, int), jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="holdout=1.5"):
    rep.train_test_split(jax.random.PRNGKey(0), 10, 1.5)
