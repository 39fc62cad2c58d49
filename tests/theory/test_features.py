"""The feature model of Definition 3.1 against closed-form moments."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from featcon.theory import features

KW = dict(k_core=8, k_bg=8)


def test_dictionary_is_orthonormal_and_deterministic():
  m = features.dictionary(jax.random.PRNGKey(0), 64, 16)
  np.testing.assert_allclose(m.T @ m, np.eye(16), atol=1e-5)
  np.testing.assert_array_equal(m, features.dictionary(jax.random.PRNGKey(0), 64, 16))


@pytest.mark.parametrize("dist,mean,second", [("uniform", 0.5, 1 / 3), ("beta", 0.5, 0.3),
                                              ("bernoulli", 0.5, 0.5)])
def test_coefficient_moments(dist, mean, second):
  u = np.asarray(features.coefficients(jax.random.PRNGKey(1), (200_000,), dist))
  assert u.min() >= 0 and u.max() <= 1
  assert abs(u.mean() - mean) < 5e-3
  assert abs((u ** 2).mean() - second) < 5e-3


def test_id_sample_structure():
  b = features.sample(jax.random.PRNGKey(2), 50_000, shift=0.0, **KW)
  z, y = np.asarray(b.z), np.asarray(b.y)
  assert set(np.unique(y)) == {-1.0, 1.0}
  core, bg = z[:, :8], z[:, 8:]
  # core z_j = y u_j: y * z_j in [0, 1] with mean 1/2
  assert (y[:, None] * core >= 0).all()
  assert abs((y[:, None] * core).mean() - 0.5) < 5e-3
  # background independent of the label: same mean for both classes
  assert abs(bg[y > 0].mean() - bg[y < 0].mean()) < 1e-2
  assert abs(np.corrcoef(bg[:, 0], y)[0, 1]) < 2e-2


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_shift_family(shift):
  b = features.sample(jax.random.PRNGKey(3), 20_000, shift=0.0, **KW)
  o = features.shift_background(jax.random.PRNGKey(4), b, k_core=8, shift=shift)
  np.testing.assert_array_equal(o.z[:, :8], b.z[:, :8])
  bg = np.asarray(o.z[:, 8:])
  assert bg.min() >= -shift - 1e-6 and bg.max() <= 1 - shift + 1e-6
  assert abs(bg.mean() - (0.5 - shift)) < 1e-2


def test_sphere_core_radii():
  b = features.sample(jax.random.PRNGKey(5), 1000, core="sphere", radii=(1.0, 2.0), **KW)
  r = np.linalg.norm(np.asarray(b.z[:, :8]), axis=1)
  np.testing.assert_allclose(r, np.where(np.asarray(b.y) > 0, 1.0, 2.0), rtol=1e-5)


def test_balanced_labels_and_prefix_consistency():
  b = features.sample(jax.random.PRNGKey(6), 10, balanced=True, **KW)
  assert np.asarray(b.y).sum() == 0
  big = features.sample(jax.random.PRNGKey(7), 64, **KW)
  small = features.sample(jax.random.PRNGKey(7), 16, **KW)
  np.testing.assert_array_equal(big.z[:16], small.z)
  np.testing.assert_array_equal(big.y[:16], small.y)


def test_unknown_distribution():
  with pytest.raises(ValueError, match="data.coeff_dist='cauchy'"):
    features.coefficients(jax.random.PRNGKey(0), (2,), "cauchy")


@pytest.mark.parametrize("k_core,k_bg", [(5, 11), (11, 5), (3, 0)])
def test_unequal_core_and_background_sizes(k_core, k_bg):
  """The first k_core columns carry the label (y z_j in [0, 1]); the k_bg others do not."""
  b = features.sample(jax.random.PRNGKey(8), 20_000, k_core=k_core, k_bg=k_bg, shift=0.0)
  z, y = np.asarray(b.z), np.asarray(b.y)
  assert z.shape == (20_000, k_core + k_bg)
  core, bg = z[:, :k_core], z[:, k_core:]
  assert (y[:, None] * core >= 0).all()
  np.testing.assert_allclose((y[:, None] * core).mean(0), 0.5, atol=2e-2)
  np.testing.assert_allclose((core * y[:, None]).mean(0) / np.abs(core).mean(0), 1.0, atol=1e-6)
  if k_bg:
    assert bg.min() >= 0 and bg.max() <= 1
    corr = [abs(np.corrcoef(bg[:, j], y)[0, 1]) for j in range(k_bg)]
    assert max(corr) < 3e-2, corr
  o = features.shift_background(jax.random.PRNGKey(9), b, k_core=k_core, shift=1.0)
  assert o.z.shape == b.z.shape
  np.testing.assert_array_equal(o.z[:, :k_core], b.z[:, :k_core])
  if k_bg:
    assert np.asarray(o.z[:, k_core:]).max() <= 0
