"""The spurious background coordinates (``data.bg_label_corr`` = rho, ``data.k_spurious``;
docs/theory.md, "Spurious background coordinates") against the closed-form moments of their law:

  z_j = v_j - s + (1 - 2 s) rho y   (j among the first k_spurious background coordinates),
  z_j = v_j - s                     (the other background coordinates), v_j ~ D i.i.d.

With y uniform on {-1, +1}: E[z_j | y] = E[v] - s + (1 - 2 s) rho y; Var z_j = Var(v) +
(1 - 2 s)^2 rho^2; Cov(z_i, z_j) = (1 - 2 s)^2 rho^2 for two spurious coordinates, 0 otherwise;
Cov(z_j, y) = (1 - 2 s) rho.
"""
import dataclasses

import jax
import numpy as np
import pytest

from featcon.theory import config as config_lib
from featcon.theory import features
from featcon.theory import program
from featcon.theory import train as theory_train

KC, KB, KSP = 2, 6, 2
VAR = {"uniform": 1 / 12, "bernoulli": 1 / 4}


def _moments(s, rho, dist):
  """Closed-form mean given y = +1 / -1, covariance of the background and Cov(z_bg, y)."""
  g = (1 - 2 * s) * rho
  sp = np.arange(KB) < KSP
  mean_pos = 0.5 - s + g * sp
  mean_neg = 0.5 - s - g * sp
  cov = np.diag(np.full(KB, VAR[dist])) + g ** 2 * np.outer(sp, sp)
  return mean_pos, mean_neg, cov, g * sp


@pytest.mark.parametrize("dist,rho", [("uniform", 0.3), ("bernoulli", -0.6)])
def test_background_matches_its_closed_form_moments(dist, rho):
  n = 200_000
  key = jax.random.PRNGKey(0)
  batch = features.sample(key, n, k_core=KC, k_bg=KB, dist=dist, rho=rho, k_spurious=KSP)
  cases = [(0.0, batch)]
  for s in (0.5, 1.0):  # the paired OOD sets: label term gone, then reversed
    cases.append((s, features.shift_background(jax.random.PRNGKey(1), batch, k_core=KC,
                                               shift=s, dist=dist, rho=rho, k_spurious=KSP)))
  for s, b in cases:
    z, y = np.asarray(b.z[:, KC:], np.float64), np.asarray(b.y, np.float64)
    mean_pos, mean_neg, cov, cov_y = _moments(s, rho, dist)
    np.testing.assert_allclose(z[y > 0].mean(0), mean_pos, atol=5e-3, err_msg=f"s={s}")
    np.testing.assert_allclose(z[y < 0].mean(0), mean_neg, atol=5e-3, err_msg=f"s={s}")
    np.testing.assert_allclose(np.cov(z, rowvar=False), cov, atol=4e-3, err_msg=f"s={s}")
    np.testing.assert_allclose(((z - z.mean(0)) * y[:, None]).mean(0), cov_y, atol=5e-3)
    np.testing.assert_array_equal(np.asarray(b.z[:, :KC]), np.asarray(batch.z[:, :KC]))


def test_no_spurious_coordinates_is_the_label_free_block_bitwise():
  key = jax.random.PRNGKey(4)
  y = features.labels(key, 64)
  plain = features.coefficients(key, (64, KB)) - 1.0
  for rho in (0.0, 0.7):
    got = features.background_block(key, 64, KB, 1.0, y=y, rho=rho, k_spurious=0)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(plain))
  # rho = 0 with spurious coordinates declared draws the same numbers too
  got = features.background_block(key, 64, KB, 0.25, y=y, rho=0.0, k_spurious=KSP)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(features.coefficients(key, (64, KB)) - 0.25))


def test_training_and_evaluation_sets_carry_rho():
  """dyn.bg_label_corr reaches every set a run draws: the fixed set and the ID evaluation set
  have class means 1/2 +- rho on the spurious coordinates, their OOD copies 1/2 - 1 -+ rho."""
  rho = 0.4
  over = {"data": {"d": 40, "k_core": 4, "k_bg": 8, "k_spurious": 3, "bg_label_corr": rho,
                   "n_train": 4000, "n_eval": 4000}, "model": {"width": 8}}
  static, dyn = program.from_config(config_lib.resolve(over))
  assert dyn.bg_label_corr == np.float32(rho) and static.k_spurious == 3
  prob = jax.device_get(theory_train.make_problem(dataclasses.replace(static, path="feature"),
                                                  dyn))
  for x, x_ood, y in ((prob.train_x, prob.train_ood_x, prob.train_y),
                      (prob.eval_x, prob.eval_ood_x, prob.eval_y)):
    for z, sign, s in ((x, 1.0, 0.0), (x_ood, -1.0, 1.0)):
      sp, clean = z[:, 4:7], z[:, 7:]
      for cls in (1.0, -1.0):
        np.testing.assert_allclose(sp[y == cls].mean(0), 0.5 - s + sign * rho * cls, atol=0.03)
        np.testing.assert_allclose(clean[y == cls].mean(0), 0.5 - s, atol=0.03)
  # the online regime's batches draw from the same law
  static_online = dataclasses.replace(static, regime="online", batch=4000, path="feature")
  b = features.sample(jax.random.PRNGKey(0), 4000, **theory_train._data_kwargs(static_online, dyn))
  z, y = np.asarray(b.z), np.asarray(b.y)
  np.testing.assert_allclose(z[y > 0, 4:7].mean(0), 0.5 + rho, atol=0.03)
