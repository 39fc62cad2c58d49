"""Two-layer networks: activations, init, and gradients against finite differences."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from featcon.theory import losses, network


def test_activations_closed_forms():
  u = np.linspace(-3, 3, 13).astype(np.float32)
  expect = {
      "relu": np.maximum(u, 0),
      "gelu": np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in u]),
      "sigmoid": 1 / (1 + np.exp(-u)),
      "tanh": np.tanh(u),
      "leaky_relu": np.where(u >= 0, u, 0.1 * u),
      "identity": u,
  }
  for name, ref in expect.items():
    np.testing.assert_allclose(network.activation(name)(jnp.asarray(u)), ref, rtol=1e-6,
                               atol=1e-6, err_msg=name)
  with pytest.raises(ValueError, match="model.activation='swish'"):
    network.activation("swish")


def test_switch_activation_matches_static():
  u = jnp.linspace(-2, 2, 9)
  names = ("relu", "tanh", "identity")
  sw = network.switch_activation(names)
  for i, n in enumerate(names):
    np.testing.assert_array_equal(sw(u, jnp.int32(i)), network.activation(n)(u))


def test_init_scales_and_signs():
  p = network.init(jax.random.PRNGKey(0), m=400, d_in=100, fan_in=100, init="pytorch")
  w = np.asarray(p["W"])
  assert np.abs(w).max() <= 0.1 and np.abs(w).max() > 0.099
  np.testing.assert_allclose(w.var(), (0.1 ** 2) / 3, rtol=0.02)  # U(-k, k): k^2 / 3
  a = np.asarray(p["a"])
  np.testing.assert_allclose(a, np.where(np.arange(400) < 200, 1, -1) / 400, rtol=1e-7)
  g = network.init(jax.random.PRNGKey(0), m=400, d_in=100, fan_in=100, init="gaussian",
                   init_scale=2.0)
  np.testing.assert_allclose(np.asarray(g["W"]).std(), 2.0 / 10, rtol=0.02)
  r = network.init(jax.random.PRNGKey(0), m=400, d_in=10, fan_in=10, output_signs="random")
  assert set(np.unique(np.asarray(r["a"]) * 400)) == {-1.0, 1.0}


def test_padded_init_equals_narrow():
  kw = dict(d_in=12, fan_in=12, bias=True, output_init="signs")
  narrow = network.init(jax.random.PRNGKey(3), m=6, **kw)
  padded = network.init(jax.random.PRNGKey(3), m=10, width=6, **kw)
  for k in ("W", "b"):
    np.testing.assert_array_equal(padded[k][:6], narrow[k])
  np.testing.assert_array_equal(padded["a"][:6], narrow["a"])
  x = jax.random.normal(jax.random.PRNGKey(4), (5, 12))
  mask = (jnp.arange(10) < 6).astype(jnp.float32)
  np.testing.assert_allclose(network.apply(padded, x, jax.nn.relu, mask),
                             network.apply(narrow, x, jax.nn.relu), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("act", ["relu", "gelu", "tanh", "sigmoid", "identity"])
@pytest.mark.parametrize("loss", ["hinge", "logistic"])
def test_gradient_matches_finite_differences(act, loss):
  with jax.enable_x64(True):
    key = jax.random.PRNGKey(0)
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    params = {"W": jax.random.normal(k1, (7, 5), jnp.float64) * 0.5,
              "b": jax.random.normal(k2, (7,), jnp.float64) * 0.1,
              "a": jax.random.normal(k3, (7,), jnp.float64),
              "c": jnp.float64(0.1)}
    x = jax.random.normal(k4, (11, 5), jnp.float64)
    y = jnp.where(jax.random.bernoulli(k5, 0.5, (11,)), 1.0, -1.0)
    sigma = network.activation(act)
    lf = losses.loss_fn(loss)
    obj = lambda p: jnp.mean(lf(network.apply(p, x, sigma), y))
    grads = jax.grad(obj)(params)
    eps = 1e-6
    for name in params:
      flat = np.asarray(params[name], np.float64).ravel()
      fd = np.zeros_like(flat)
      for i in range(flat.size):
        e = np.zeros_like(flat)
        e[i] = eps
        plus = dict(params, **{name: jnp.asarray((flat + e).reshape(np.shape(params[name])))})
        minus = dict(params, **{name: jnp.asarray((flat - e).reshape(np.shape(params[name])))})
        fd[i] = (obj(plus) - obj(minus)) / (2 * eps)
      np.testing.assert_allclose(np.asarray(grads[name]).ravel(), fd, rtol=1e-5, atol=1e-8,
                                 err_msg=f"{act}/{loss}/{name}")


def test_mse_regression_gradient():
  with jax.enable_x64(True):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(1), 3)
    params = {"W": jax.random.normal(k1, (6, 4), jnp.float64), "a": jax.random.normal(k2, (6, 3), jnp.float64)}
    x = jax.random.normal(k3, (9, 4), jnp.float64)
    t = x[:, :3] ** 2
    obj = lambda w: jnp.mean(losses.mse(network.apply(dict(params, W=w), x, jax.nn.relu), t))
    g = jax.grad(obj)(params["W"])
    # closed form: d/dW mean_i ||A^T relu(W x_i) - t_i||^2 / 3
    h = x @ np.asarray(params["W"]).T
    r = (np.maximum(h, 0) @ np.asarray(params["a"]) - np.asarray(t)) * 2 / 3 / 9
    ref = ((r @ np.asarray(params["a"]).T) * (h > 0)).T @ np.asarray(x)
    np.testing.assert_allclose(g, ref, rtol=1e-10)


def test_frozen_output_bias_init():
  """The public script's frozen output: weights +-1/m, bias c at its nn.Linear draw.

  c ~ U(-1/sqrt(m), 1/sqrt(m)); the hidden bias ~ U(-1/sqrt(d), 1/sqrt(d)).
  """
  m = 64
  cs = []
  for s in range(400):
    p = network.init(jax.random.PRNGKey(s), m=m, d_in=8, fan_in=8, bias=True,
                     output_init="signs", output_bias_init="pytorch")
    cs.append(float(p["c"]))
    bmax = float(np.abs(np.asarray(p["b"])).max())
    assert bmax <= 1 / np.sqrt(8) and bmax > 0.5 / np.sqrt(8)
  cs = np.asarray(cs)
  assert np.abs(cs).max() <= 1 / np.sqrt(m)
  np.testing.assert_allclose(cs.var(), 1 / (3 * m), rtol=0.2)  # U(-k, k): k^2 / 3
  assert abs(cs.mean()) < 3 * np.sqrt(1 / (3 * m) / 400)
  z = network.init(jax.random.PRNGKey(0), m=m, d_in=8, fan_in=8, bias=True,
                   output_init="signs", output_bias_init="zero")
  assert float(z["c"]) == 0.0
  with pytest.raises(ValueError, match="output_bias_init"):
    network.init(jax.random.PRNGKey(0), m=m, d_in=8, fan_in=8, bias=True, output_bias_init="x")
