"""The measurement function against a hand computation (numpy, loops) on a small network.

The network has known weights, unequal core and background sizes (k_core = 2, k_bg = 3 in
d = 7) and a masked (padded) neuron, so normalisations, the core/background split and the
width mask all show in the numbers.
"""
import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from featcon.theory import metrics, network
from featcon.theory import program
from featcon.theory import train as theory_train

KC, KB, D, M = 2, 3, 7, 5
MASK = np.array([1.0, 1.0, 1.0, 1.0, 0.0])  # the last neuron is padding


def _problem(rng, task, regime):
  q, r = np.linalg.qr(rng.standard_normal((D, KC + KB)))
  basis = q * np.sign(np.diag(r))
  def data(n):
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    y[:2] = (1.0, -1.0)
    zc = y[:, None] * rng.random((n, KC))
    z, zo = (np.concatenate([zc, rng.random((n, KB)) - s], 1) for s in (0.0, 1.0))
    t = y if task == "classification" else zc
    return z @ basis.T, zo @ basis.T, t, y
  ex, eox, et, ey = data(40)
  tx, tox, tt, ty = data(12) if regime == "fixed" else (None,) * 4
  return theory_train.Problem(M=jnp.asarray(basis, jnp.float32), basis=jnp.asarray(basis, jnp.float32),
                           train_x=tx, train_t=tt, train_y=ty, train_ood_x=tox, eval_x=ex,
                           eval_ood_x=eox, eval_t=et, eval_y=ey, params0=None, w0_input=None)


def _params(rng, task):
  a = np.array([0.5, -0.25, 0.75, -1.0, 3.0])
  if task == "regression":
    a = rng.standard_normal((M, KC))
  return {"W": rng.standard_normal((M, D)), "b": np.array([4.0, -0.2, 0.1, 0.4, 0.0]), "a": a,
          "c": np.float64(0.1) if task == "classification" else np.full(KC, 0.1)}


def _reference(params, prob, task, regime, loss):
  """The measurements of docs/theory.md ("What to measure"), one neuron at a time."""
  W, b, a, c = (np.asarray(params[k], np.float64) for k in ("W", "b", "a", "c"))
  P = W @ np.asarray(prob.basis, np.float64)
  live = [r for r in range(M) if MASK[r]]
  out = {
      "core_corr": np.mean([np.sqrt(sum(P[r, j] ** 2 for j in range(KC))) for r in live]),
      "bg_corr": np.mean([np.sqrt(sum(P[r, KC + j] ** 2 for j in range(KB))) for r in live]),
      "bg_signed": np.mean([P[r, KC + j] for r in live for j in range(KB)]),
  }
  if task == "classification":
    out["core_align"] = np.mean([np.sign(a[r]) * P[r, j] for r in live for j in range(KC)])
  else:
    out["core_align"] = np.nan

  def f(x):
    return np.array([sum(a[r] * max(0.0, W[r] @ xi + b[r]) for r in live) + c for xi in x])

  def risk(x, t):
    fx = f(np.asarray(x, np.float64))
    t = np.asarray(t, np.float64)
    if loss == "hinge":
      per = [max(0.0, 1 - ti * fi) for fi, ti in zip(fx, t)]
    elif loss == "logistic":
      per = [np.log(1 + np.exp(-ti * fi)) for fi, ti in zip(fx, t)]
    else:
      per = [np.mean((fi - ti) ** 2) for fi, ti in zip(fx, t)]
    err = np.mean([ti * fi <= 0 for fi, ti in zip(fx, t)]) if task == "classification" else np.nan
    return np.mean(per), err

  out["id_risk"], out["id_error"] = risk(prob.eval_x, prob.eval_t)
  out["ood_risk"], out["ood_error"] = risk(prob.eval_ood_x, prob.eval_t)
  if regime == "fixed":
    out["train_risk"], out["train_error"] = risk(prob.train_x, prob.train_t)
    out["train_ood_risk"], out["train_ood_error"] = risk(prob.train_ood_x, prob.train_t)
  x, y = np.asarray(prob.eval_x, np.float64), np.asarray(prob.eval_y)
  asym, gaps, pos_rate, neg_rate = [], [], [], []
  for r in range(M):
    pre = x @ W[r] + b[r]
    h_pos, h_neg = pre[y > 0].mean(), pre[y < 0].mean()
    p_pos, p_neg = (pre[y > 0] > 0).mean(), (pre[y < 0] > 0).mean()
    pos_rate.append(p_pos if MASK[r] else np.nan)
    neg_rate.append(p_neg if MASK[r] else np.nan)
    if MASK[r]:
      asym.append(not (h_pos > 0 and h_neg > 0))
      gaps.append(abs(p_pos - p_neg))
  out.update(asym_frac=np.mean(asym), act_rate_gap=np.mean(gaps), act_rate_pos=pos_rate,
             act_rate_neg=neg_rate)
  return out


# Rows measured at once: one block for all 40 evaluation rows; 2 blocks of 16 and 8 rows left
# (the fixed set of 12: one block); 8 blocks of 5 (the fixed set: 2 blocks and 2 rows left).
@pytest.mark.parametrize("block", [128, 16, 5])
@pytest.mark.parametrize("task,regime,loss", [("classification", "fixed", "hinge"),
                                              ("classification", "online", "logistic"),
                                              ("regression", "fixed", "mse")])
def test_measure_matches_hand_computation(task, regime, loss, block, monkeypatch):
  monkeypatch.setattr(metrics, "EVAL_BLOCK", block)
  rng = np.random.default_rng(0)
  prob = _problem(rng, task, regime)
  params = _params(rng, task)
  static = dataclasses.replace(program.Static(), task=task, d=D, k_core=KC, k_bg=KB,
                               regime=regime, width=M, loss=loss, bias=True)
  p32 = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
  got = metrics.measure(static, prob, p32, network.activation("relu"), jnp.asarray(MASK))
  ref = _reference(params, prob, task, regime, loss)
  if task == "regression":
    ref["id_mse"], ref["ood_mse"] = ref["id_risk"], ref["ood_risk"]
  assert set(got) == set(ref)
  for k, v in ref.items():
    np.testing.assert_allclose(np.asarray(got[k], np.float64), v, rtol=2e-5, atol=1e-6,
                               err_msg=k)
  # not vacuous: the asymmetry statistics are strictly between their extremes here
  assert 0 < ref["asym_frac"] < 1 and ref["act_rate_gap"] > 0.05
  assert ref["bg_corr"] > 0.3 and abs(ref["bg_signed"]) > 0.05


def test_feature_correlations_without_background():
  P = jnp.asarray([[3.0, 4.0], [0.0, 1.0]])
  core, bg, signed = metrics.feature_correlations(P, 2, jnp.ones(2))
  assert float(core) == pytest.approx(3.0) and float(bg) == 0 and float(signed) == 0
