"""The losses of Section 3 against closed forms (values and derivatives at chosen points)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from featcon.theory import losses

# Margins y f on both sides of the hinge's kink at 1 and of 0.
F = np.array([-2.0, -0.5, 0.0, 0.25, 0.5, 0.75, 2.0, 3.0])
Y = np.array([1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0])


def _grad(fn, f, t):
  """d/df of the per-example loss, one example at a time (float64)."""
  with jax.enable_x64(True):
    g = jax.vmap(jax.grad(lambda fi, ti: fn(fi, ti)))(jnp.asarray(f, jnp.float64),
                                                      jnp.asarray(t, jnp.float64))
    return np.asarray(g)


def test_hinge_closed_form_and_gradient():
  # max(0, 1 - y f) for y f = -2, -0.5, 0, 0.25, -0.5, 0.75, -2, 3
  expect = np.array([3.0, 1.5, 1.0, 0.75, 1.5, 0.25, 3.0, 0.0])
  np.testing.assert_allclose(losses.hinge(jnp.asarray(F), jnp.asarray(Y)), expect, atol=1e-7)
  # d/df = -y where y f < 1, 0 where y f > 1 (no example sits on the kink)
  np.testing.assert_allclose(_grad(losses.hinge, F, Y), np.where(Y * F < 1, -Y, 0.0), atol=0)


def test_logistic_closed_form_and_gradient():
  m = Y * F
  expect = np.log1p(np.exp(-m))
  np.testing.assert_allclose(losses.logistic(jnp.asarray(F), jnp.asarray(Y)), expect,
                             rtol=1e-6)
  assert float(losses.logistic(jnp.float32(0.0), jnp.float32(1.0))) == pytest.approx(np.log(2))
  # d/df log(1 + exp(-y f)) = -y / (1 + exp(y f))
  np.testing.assert_allclose(_grad(losses.logistic, F, Y), -Y / (1 + np.exp(m)), rtol=1e-12)


def test_mse_averages_over_outputs_and_gradient():
  f = np.array([[1.0, 2.0, -1.0], [0.0, 0.5, 4.0]])
  t = np.array([[0.0, 0.0, 1.0], [0.0, 1.5, 1.0]])
  # (1 + 4 + 4) / 3 and (0 + 1 + 9) / 3
  np.testing.assert_allclose(losses.mse(jnp.asarray(f), jnp.asarray(t)), [3.0, 10 / 3],
                             rtol=1e-7)
  with jax.enable_x64(True):
    g = jax.grad(lambda f: jnp.sum(losses.mse(f, jnp.asarray(t))))(jnp.asarray(f))
  np.testing.assert_allclose(g, 2 * (f - t) / 3, rtol=1e-12)


def test_zero_one_counts_ties_as_errors():
  f = jnp.asarray([0.3, -0.3, 0.0, 2.0, -1.0])
  y = jnp.asarray([1.0, 1.0, 1.0, -1.0, -1.0])
  np.testing.assert_array_equal(losses.zero_one(f, y), [0.0, 1.0, 1.0, 1.0, 0.0])


def test_loss_fn_by_name():
  assert losses.loss_fn("hinge") is losses.hinge
  assert losses.loss_fn("logistic") is losses.logistic
  assert losses.loss_fn("mse") is losses.mse
  with pytest.raises(ValueError, match="train.loss='l1'"):
    losses.loss_fn("l1")
