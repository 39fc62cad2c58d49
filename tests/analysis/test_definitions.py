"""The analyses' definitions on cases with a known answer, beside tests/analysis/test_metrics.py:
Grad-CAM's ReLU and upsampling against PyTorch, density on spatial maps by hand, the domain
probe's held-out error and chance level against numpy, the background-swap item distance in
closed form, and the suite's streaming pass (which representation, eval mode, padded batches)
against numpy."""
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from featcon.analysis import gradcam, metrics, suite
from featcon.analysis import representation as rep
from featcon import layers


def test_cam_relu_before_upsampling_against_pytorch():
  torch = pytest.importorskip("torch")
  a = np.array([[[2.0, 1.0], [-1.0, 0.0]], [[0.5, 0.0], [1.0, 1.0]]], np.float32)[None]
  g = np.zeros((1, 2, 2, 2), np.float32)
  g[0, 0, 0], g[0, 1, 1] = [4.0, -2.0], [0.0, 4.0]  # alpha = mean over positions = (1, 0.5)
  # weighted sum A alpha: [[2.5, -1], [0.5, 1.5]]: one negative cell that bilinear upsampling
  # would mix into its neighbours if the ReLU came after it
  cam = np.asarray(gradcam.cam_from(a, g, (4, 4)))[0]
  s = np.einsum("hwc,c->hw", a[0].astype(np.float64), g[0].mean((0, 1)))
  np.testing.assert_allclose(s, [[2.5, -1.0], [0.5, 1.5]])
  up = torch.nn.functional.interpolate(torch.tensor(np.maximum(s, 0))[None, None], size=(4, 4),
                                       mode="bilinear", align_corners=False)[0, 0].numpy()
  np.testing.assert_allclose(cam, up / up.max(), atol=1e-6)


def test_density_on_spatial_maps_by_hand():
  # two examples of 2 x 2 maps, one channel: values [1, 0, 3, 0] and [0, 0, 0, 2]
  x = np.array([[1., 0., 3., 0.], [0., 0., 0., 2.]], np.float32).reshape(2, 2, 2, 1)
  st = metrics.class_stats(x, np.array([0, 1]), 2)
  np.testing.assert_allclose(metrics.unit_means(st), [6 / 8])       # over examples x positions
  assert float(metrics.active_fraction(st)) == pytest.approx((2 / 4 + 1 / 4) / 2)
  np.testing.assert_allclose(metrics.activation_rates(st), [[0.5], [0.25]])
  np.testing.assert_allclose(metrics.class_means(st), [[1.0], [0.5]])


def _numpy_ridge_error(xtr, ytr, xte, yte, k, lam):
  """Held-out 0-1 error of ridge regression on standardised features and centred 1/0 targets."""
  mu, sd = xtr.mean(0), xtr.std(0)
  xs = (xtr - mu) / sd
  t = np.eye(k)[ytr]
  n, d = xs.shape
  w = np.linalg.solve(xs.T @ xs / n + lam * np.eye(d), xs.T @ (t - t.mean(0)) / n)
  pred = (((xte - mu) / sd) @ w + t.mean(0)).argmax(1)
  return float(np.mean(pred != yte))


def test_domain_error_is_the_held_out_error_and_chance_the_majority_rule():
  rng = np.random.default_rng(0)
  # More dimensions than training examples: the probe fits its training set exactly and the
  # held-out error of random domains is near chance, so train and hold-out errors differ.
  x = rng.normal(size=(50, 80))
  d = np.r_[np.zeros(35, int), np.ones(15, int)]
  key = jax.random.PRNGKey(3)
  res = rep.domain_error(x, d, key, holdout=0.4, l2=1e-3)
  tr, te = (np.asarray(i) for i in rep.train_test_split(key, 50, 0.4))
  assert (res["n_train"], res["n_test"]) == (30, 20) == (tr.size, te.size)
  assert res["error"] == pytest.approx(_numpy_ridge_error(x[tr], d[tr], x[te], d[te], 2, 1e-3))
  assert res["train_error"] == 0.0 and res["error"] > 0.15
  majority = int(np.bincount(d[tr]).argmax())
  assert majority == 0
  assert res["chance_error"] == pytest.approx(np.mean(d[te] != majority))


def test_shift_sensitivity_item_distance_in_closed_form():
  # Two items of equal norm 5: every pair i != j is the other item, at distance sqrt(2) / 5.
  a = np.array([[3.0, 4.0], [4.0, 3.0]])
  b = a * 1.2  # the background change scales the representation: rel_change 0.2, cosine 1
  got = rep.shift_sensitivity(a, b, jax.random.PRNGKey(0), pairs=64)
  assert got["item_distance"] == pytest.approx(np.sqrt(2) / 5, rel=1e-12)
  assert got["rel_change"] == pytest.approx(0.2, rel=1e-12)
  assert got["cosine"] == pytest.approx(1.0, rel=1e-12)
  assert got["ratio"] == pytest.approx(0.2 / (np.sqrt(2) / 5), rel=1e-12)


class _Enc(NamedTuple):
  module: nn.Module
  variables: dict


MEAN = np.array([0.5, -0.5], np.float32)
VAR = np.array([2.0, 0.5], np.float32)


class BnNet(nn.Module):
  """act = relu(BN(x)) (N, 2, 2, 2); "rep" = 2 x (the act map flattened); embedding = mean."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    act = jax.nn.relu(layers.BatchNorm(name="bn")(x, train))
    return act.mean((1, 2)), {"act": act, "rep": 2.0 * act.reshape(x.shape[0], -1)}


def test_collect_streams_eval_mode_statistics_and_the_named_representation():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(5, 2, 2, 2)).astype(np.float32)
  y = np.array([0, 1, 1, 0, 1])
  variables = {"params": {"bn": {"scale": jnp.ones(2), "bias": jnp.zeros(2)}},
               "batch_stats": {"bn": {"mean": jnp.asarray(MEAN), "var": jnp.asarray(VAR)}}}
  enc = _Enc(BnNet(), variables)
  act = np.maximum((x.astype(np.float64) - MEAN) / np.sqrt(VAR + layers.BN_EPS), 0)
  for rep_name, want in (("rep", 2.0 * act.reshape(5, -1)), ("embedding", act.mean((1, 2)))):
    stats, reps = suite.collect(enc, x, y, 2, ["act"], rep_name, batch_size=3)  # 3 + 2 padded
    np.testing.assert_allclose(reps, want, rtol=1e-5, atol=1e-6)
  st = stats["act"]
  np.testing.assert_array_equal(st.examples, [2, 3])
  np.testing.assert_array_equal(st.count, [8, 12])
  for c in (0, 1):  # per class: over its examples and the 4 positions
    sel = act[y == c].reshape(-1, 2)
    np.testing.assert_allclose(metrics.class_means(st)[c], sel.mean(0), rtol=1e-5)
    np.testing.assert_allclose(metrics.activation_rates(st)[c], (sel > 0).mean(0), rtol=1e-6)
